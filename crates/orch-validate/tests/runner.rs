//! The runner, gates and retention with real processes and real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use orch_core::TaskId;
use orch_core::run::{AttemptId, RunId, Stage};
use orch_validate::runner::is_alive;
use orch_validate::{
    Artifacts, CancellationToken, CommandSpec, Environment, GateSpec, Kept, Outcome, Program,
    Retention, Stream, run, run_gate,
};

fn spec(dir: &Path, program: Program, timeout_ms: u64) -> CommandSpec {
    CommandSpec {
        program,
        cwd: dir.to_path_buf(),
        env: Environment::inherit(&["PATH".to_string()], vec![]),
        timeout: Duration::from_millis(timeout_ms),
        kill_grace: Duration::from_millis(300),
        log_path: dir.join("logs/cmd.log"),
        log_cap: 1 << 20,
        stdin: None,
        capture_stdout: None,
        hard_kill: None,
        log_frame: false,
    }
}

fn sh(s: &str) -> Program {
    Program::Shell(s.to_string())
}

/// Waits for the background grandchild's pid file.
async fn grandchild_pid(dir: &Path) -> u32 {
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(dir.join("pid"))
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the grandchild never wrote its pid");
}

/// Waits up to `within` for `pid` to be gone.
async fn dead_within(pid: u32, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if !is_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !is_alive(pid)
}

const GRANDCHILD: &str = "sleep 300 & echo $! > pid; wait";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_is_dead_after_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        &spec(dir.path(), sh(GRANDCHILD), 500),
        &CancellationToken::new(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, Outcome::TimedOut);
    let pid = grandchild_pid(dir.path()).await;
    assert!(
        dead_within(pid, Duration::from_secs(2)).await,
        "grandchild {pid} survived a timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_is_dead_after_a_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let started = Instant::now();
    let r = run(&spec(dir.path(), sh(GRANDCHILD), 60_000), &cancel, None)
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Canceled);
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = grandchild_pid(dir.path()).await;
    assert!(
        dead_within(pid, Duration::from_secs(2)).await,
        "grandchild {pid} survived a cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchild_is_dead_after_the_future_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), sh(GRANDCHILD), 60_000);
    let cancel = CancellationToken::new();
    let fut = run(&s, &cancel, None);
    // Drop the runner mid-run.
    let r = tokio::time::timeout(Duration::from_millis(500), fut).await;
    assert!(r.is_err(), "the command should still have been running");
    let pid = grandchild_pid(dir.path()).await;
    assert!(
        dead_within(pid, Duration::from_secs(2)).await,
        "grandchild {pid} survived a drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_are_killed_when_the_main_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    // The shell exits at once, leaving a background child holding the pipes.
    let r = run(
        &spec(dir.path(), sh("sleep 300 & echo $! > pid; exit 0"), 60_000),
        &CancellationToken::new(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, Outcome::Exited(0));
    assert!(r.duration < Duration::from_secs(5), "{:?}", r.duration);
    let pid = grandchild_pid(dir.path()).await;
    assert!(
        dead_within(pid, Duration::from_secs(2)).await,
        "leftover {pid} survived its parent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ignored_means_sigkill_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    // `trap '' TERM` makes the shell and its children ignore SIGTERM.
    let mut s = spec(
        dir.path(),
        sh("trap '' TERM; echo $$ > pid; sleep 300"),
        300,
    );
    s.kill_grace = Duration::from_millis(700);
    let started = Instant::now();
    let r = run(&s, &CancellationToken::new(), None).await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.outcome, Outcome::TimedOut);
    assert!(
        took >= Duration::from_millis(1000),
        "killed before the grace period ended: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let pid = grandchild_pid(dir.path()).await;
    assert!(dead_within(pid, Duration::from_secs(1)).await);
}

/// With `hard_kill`, the runner has no grace of its own: a SIGTERM-ignoring process
/// lives on after the cancel until the caller (orch's core, through the engine) fires
/// the hard kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hard_kill_the_caller_decides_when_sigkill_comes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        dir.path(),
        sh("trap '' TERM; echo $$ > pid; sleep 300"),
        60_000,
    );
    s.kill_grace = Duration::from_millis(100);
    let kill = CancellationToken::new();
    s.hard_kill = Some(kill.clone());
    let cancel = CancellationToken::new();
    let path = dir.path().to_path_buf();
    let (c, k) = (cancel.clone(), kill.clone());
    let driver = tokio::spawn(async move {
        let pid = grandchild_pid(&path).await;
        c.cancel();
        // Far past the runner's kill_grace: still alive, since only the caller kills.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let alive = is_alive(pid);
        k.cancel();
        (pid, alive)
    });
    let r = run(&s, &cancel, None).await.unwrap();
    let (pid, alive_before_kill) = driver.await.unwrap();
    assert!(
        alive_before_kill,
        "the runner killed on its own grace timer"
    );
    assert_eq!(r.outcome, Outcome::Canceled);
    assert!(dead_within(pid, Duration::from_secs(1)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_of_output_is_capped_without_stalling() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        dir.path(),
        sh("yes 0123456789 | head -c 1073741824; echo END"),
        120_000,
    );
    s.log_cap = 1 << 20;
    let r = run(&s, &CancellationToken::new(), None).await.unwrap();
    assert_eq!(r.outcome, Outcome::Exited(0));
    assert_eq!(r.output_bytes, (1 << 30) + 4);
    assert!(r.log_truncated);
    let log = std::fs::read(&r.log_path).unwrap();
    assert!(log.len() < (1 << 20) + 200, "log is {} bytes", log.len());
    assert!(log.starts_with(b"0123456789\n0123456789\n"));
    // 2^30 is not a multiple of 11: the last line is cut to one byte before END.
    assert!(log.ends_with(b"0123456789\n0END\n"));
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("bytes of output cut here"));
    assert_eq!(r.tail.last().unwrap(), "0END");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        &spec(
            dir.path(),
            Program::Argv(vec!["orch-no-such-program".into(), "x".into()]),
            5_000,
        ),
        &CancellationToken::new(),
        None,
    )
    .await
    .unwrap();
    match &r.outcome {
        Outcome::FailedToStart(m) => assert!(
            m.starts_with("program `orch-no-such-program` not found (PATH="),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let log = std::fs::read_to_string(&r.log_path).unwrap();
    assert!(log.contains("orch-no-such-program"), "{log}");
    // A missing working directory is the runner's error, naming it.
    let mut s = spec(dir.path(), sh("true"), 5_000);
    s.cwd = dir.path().join("gone");
    let e = run(&s, &CancellationToken::new(), None).await.unwrap_err();
    assert!(
        e.to_string().contains("gone") && e.to_string().contains("does not exist"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_signals_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let c = CancellationToken::new();
    let code = run(&spec(dir.path(), sh("exit 7"), 5_000), &c, None)
        .await
        .unwrap();
    assert_eq!(code.outcome, Outcome::Exited(7));
    let ok = run(
        &spec(dir.path(), Program::Argv(vec!["true".into()]), 5_000),
        &c,
        None,
    )
    .await
    .unwrap();
    assert!(ok.outcome.success());
    let sig = run(&spec(dir.path(), sh("kill -USR1 $$"), 5_000), &c, None)
        .await
        .unwrap();
    assert_eq!(sig.outcome, Outcome::Signaled(10));
    let segv = run(&spec(dir.path(), sh("kill -SEGV $$"), 5_000), &c, None)
        .await
        .unwrap();
    assert_eq!(segv.outcome, Outcome::Signaled(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_an_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), sh("env | sort"), 5_000);
    s.env = Environment {
        parent: vec![
            ("PATH".into(), std::env::var("PATH").unwrap()),
            ("HOME".into(), "/home/x".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "hunter2".into()),
        ],
        allow: vec!["PATH".into(), "HOME".into(), "LANG".into()],
        set: vec![
            ("ORCH_TASK_ID".into(), "12".into()),
            ("HOME".into(), "/override".into()),
        ],
    };
    let r = run(&s, &CancellationToken::new(), None).await.unwrap();
    let out = std::fs::read_to_string(&r.log_path).unwrap();
    assert!(!out.contains("AWS_SECRET_ACCESS_KEY"), "{out}");
    assert!(out.contains("ORCH_TASK_ID=12"), "{out}");
    assert!(out.contains("HOME=/override"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("PATH=")), "{out}");
    assert!(
        !out.contains("LANG="),
        "an allowed but unset variable stays unset: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_stream_live_and_the_tail_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(100);
    let r = run(
        &spec(
            dir.path(),
            sh("echo one; echo two >&2; printf three"),
            5_000,
        ),
        &CancellationToken::new(),
        Some(tx),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while let Ok(l) = rx.try_recv() {
        got.push((l.stream, l.text));
    }
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        vec![
            (Stream::Stdout, "one".into()),
            (Stream::Stdout, "three".into()),
            (Stream::Stderr, "two".into())
        ]
    );
    // The log interleaves the streams by whole lines, never mid-line.
    let mut tail = r.tail.clone();
    tail.sort();
    assert_eq!(tail, vec!["one", "three", "two"]);
}

fn gate(dir: &Path, commands: &[&str], keep_going: bool) -> GateSpec {
    GateSpec {
        stage: Stage::Worker,
        commands: commands.iter().map(|s| s.to_string()).collect(),
        cwd: dir.to_path_buf(),
        env: Environment::inherit(&["PATH".to_string()], vec![]),
        timeout: Duration::from_secs(5),
        kill_grace: Duration::from_millis(200),
        log_dir: dir.join("artifacts"),
        log_cap: 1 << 20,
        keep_going,
        hard_kill: None,
        lines: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_stop_at_the_first_failure_and_summarise_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = CancellationToken::new();
    let r = run_gate(
        &gate(
            dir.path(),
            &[
                "echo building",
                "echo 'assertion failed: 2 + 2 == 5'; exit 3",
                "echo never",
            ],
            false,
        ),
        &c,
    )
    .await
    .unwrap();
    assert!(!r.passed);
    assert_eq!(r.commands.len(), 2);
    assert_eq!(r.commands[1].exit_code, Some(3));
    assert_eq!(r.skipped, vec!["echo never"]);
    assert!(r.commands[0].log_path.ends_with("artifacts/worker-1.log"));
    assert!(r.commands[1].log_path.ends_with("artifacts/worker-2.log"));
    assert_eq!(
        r.summary(),
        "worker validation failed: `echo 'assertion failed: 2 + 2 == 5'; exit 3` exited with code 3\n\
         last lines of its output:\nassertion failed: 2 + 2 == 5\n"
    );
    let all = run_gate(&gate(dir.path(), &["false", "true"], true), &c)
        .await
        .unwrap();
    assert_eq!((all.passed, all.commands.len()), (false, 2));
    let pass = run_gate(&gate(dir.path(), &["true", "echo ok"], false), &c)
        .await
        .unwrap();
    assert!(pass.passed);
    let empty = run_gate(&gate(dir.path(), &[], false), &c).await.unwrap();
    assert!(empty.passed && empty.commands.is_empty());
}

fn attempt(task: i64, n: u32) -> AttemptId {
    AttemptId {
        task: TaskId(task),
        number: n,
    }
}

fn make(a: &Artifacts, run: &str, at: AttemptId, kept: Kept, bytes: usize, age_secs: u64) {
    let run = RunId(run.into());
    let dir = a.attempt_dir(&run, at).unwrap();
    std::fs::write(dir.join("agent.log"), vec![b'x'; bytes]).unwrap();
    a.set_outcome(&run, at, kept).unwrap();
    let t = SystemTime::now() - Duration::from_secs(age_secs);
    for f in ["agent.log", ".outcome"] {
        std::fs::File::options()
            .write(true)
            .open(dir.join(f))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

#[test]
fn retention_keeps_and_removes_the_right_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = Artifacts::new(dir.path().join("artifacts"));
    // Four runs, newest first: r4, r3, r2, r1 (r1 is still live).
    make(&a, "r1", attempt(1, 1), Kept::Succeeded, 100, 4000);
    make(&a, "r1", attempt(2, 1), Kept::Failed, 100, 4000);
    make(&a, "r2", attempt(1, 1), Kept::Succeeded, 100, 3000);
    make(&a, "r2", attempt(3, 1), Kept::Failed, 100, 3000);
    make(&a, "r3", attempt(1, 1), Kept::Succeeded, 100, 2000);
    make(&a, "r3", attempt(4, 2), Kept::Failed, 100, 2000);
    make(&a, "r4", attempt(5, 1), Kept::Succeeded, 100, 1000);
    let live: BTreeSet<RunId> = [RunId("r1".into())].into();
    let report = a
        .gc(
            Retention {
                keep_runs: 2,
                failed_factor: 2,
                max_bytes: 10_000,
            },
            &live,
        )
        .unwrap();
    let root = a.root();
    // r2 is past keep_runs: its success goes, its failure stays (within 2 x 2 runs).
    let removed = |r: &orch_validate::GcReport| -> Vec<std::path::PathBuf> {
        r.removed.iter().map(|(p, _)| p.clone()).collect()
    };
    assert_eq!(removed(&report), vec![root.join("r2/1/1")]);
    assert!(root.join("r2/3/1/agent.log").exists());
    assert!(root.join("r1/1/1").exists(), "live runs are never touched");
    assert_eq!(report.freed_bytes, 100 + "succeeded\n".len() as u64);

    // A tight byte budget (the live run's 217 bytes count too): the oldest non-live
    // successes go first, then the oldest failures.
    let report = a
        .gc(
            Retention {
                keep_runs: 10,
                failed_factor: 2,
                max_bytes: 350,
            },
            &live,
        )
        .unwrap();
    assert_eq!(
        removed(&report),
        vec![
            root.join("r3/1/1"),
            root.join("r4/5/1"),
            root.join("r2/3/1")
        ]
    );
    assert!(!root.join("r2").exists(), "emptied run directories go too");
    assert!(root.join("r3/4/2").exists() && root.join("r1/2/1").exists());
    assert!(report.kept_bytes <= 350);
}

#[test]
fn artifact_paths_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let a = Artifacts::new(dir.path().join("artifacts"));
    for bad in ["../x", "..", "a/b", "", ".hidden", "r 1"] {
        assert!(
            a.attempt_dir(&RunId(bad.into()), attempt(1, 1)).is_err(),
            "{bad:?}"
        );
    }
    let p = a
        .attempt_dir(&RunId("r20261124-1".into()), attempt(12, 3))
        .unwrap();
    assert_eq!(p, a.root().join("r20261124-1/12/3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_fed_and_stdout_can_be_captured_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), sh("tr a-z A-Z; echo to-stderr >&2"), 5_000);
    s.stdin = Some(b"hello planner\n".to_vec());
    s.capture_stdout = Some(8);
    let r = run(&s, &CancellationToken::new(), None).await.unwrap();
    assert!(r.outcome.success());
    assert_eq!(
        r.stdout.as_deref(),
        Some(&b"HELLO PL"[..]),
        "captured up to its limit, stderr apart"
    );
    let log = std::fs::read_to_string(&r.log_path).unwrap();
    assert!(
        log.contains("HELLO PLANNER") && log.contains("to-stderr"),
        "{log}"
    );
}

/// Starts `script` in its own process group, as a crashed orch would have left it.
fn orphan(script: &str, run: Option<&str>) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(script).process_group(0);
    c.env_remove(orch_validate::RUN_TAG);
    if let Some(r) = run {
        c.env(orch_validate::RUN_TAG, r);
    }
    c.spawn().unwrap()
}

#[test]
fn leftover_groups_of_a_dead_run_are_found_and_stopped_whole() {
    use orch_validate::procs::{pid_alive, stop_groups, tagged};
    let dir = tempfile::tempdir().unwrap();
    let run = format!("procs-test-{}", std::process::id());
    let other = format!("{run}-other");
    let pidfile = dir.path().join("pid");
    // An agent with a grandchild, one that ignores SIGTERM, and another run's agent.
    let mut agent = orphan(
        &format!("sleep 300 & echo $! > {}; wait", pidfile.display()),
        Some(&run),
    );
    let mut stubborn = orphan("trap '' TERM; while :; do sleep 0.1; done", Some(&run));
    let mut bystander = orphan("sleep 300", Some(&other));
    let mut untagged = orphan("sleep 300", None);
    let grandchild: i32 = (0..200)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
        })
        .unwrap();
    let found = tagged(|r| r == run);
    let pids: BTreeSet<i32> = found.iter().map(|p| p.pid).collect();
    assert!(pids.contains(&(agent.id() as i32)), "{found:?}");
    assert!(pids.contains(&grandchild), "{found:?}");
    assert!(pids.contains(&(stubborn.id() as i32)), "{found:?}");
    assert!(found.iter().all(|p| p.run == run));
    assert!(!pids.contains(&(bystander.id() as i32)));

    let stopped = stop_groups(|r| r == run, Duration::from_millis(500));
    assert_eq!(stopped.terminated, vec![agent.id() as i32], "{stopped:?}");
    assert_eq!(stopped.killed, vec![stubborn.id() as i32], "{stopped:?}");
    assert!(agent.wait().unwrap().signal().is_some());
    assert!(stubborn.wait().unwrap().signal() == Some(9));
    assert!(!pid_alive(grandchild), "the grandchild went with its group");
    assert!(tagged(|r| r == run).is_empty());
    // Other runs and untagged processes are not touched.
    assert!(bystander.try_wait().unwrap().is_none());
    assert!(untagged.try_wait().unwrap().is_none());
    // Their whole groups go: `Child::kill` would stop only `sh`, and leave `sleep`.
    for c in [&mut bystander, &mut untagged] {
        let group = nix::unistd::Pid::from_raw(c.id() as i32);
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
        c.wait().unwrap();
    }
    assert!(!pid_alive(bystander.id() as i32));
    assert!(pid_alive(std::process::id() as i32));
}

/// A gate's log says what ran and how it ended, around the command's own output.
#[tokio::test]
async fn a_gate_log_opens_with_its_command_and_closes_with_its_exit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = gate(dir.path(), &["echo checking; exit 3"], false);
    let result = orch_validate::run_gate(&spec, &CancellationToken::new())
        .await
        .unwrap();
    let log = std::fs::read_to_string(&result.commands[0].log_path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "$ echo checking; exit 3");
    assert_eq!(lines[1], "checking");
    assert!(
        lines[2].starts_with("[orch: exited with code 3 after "),
        "{log}"
    );
    // The frame is not the command's output: its tail is only what it printed.
    assert_eq!(result.commands[0].tail, vec!["checking"]);
}
