//! A live run against a changing and hostile world, through the real binary: board
//! changes from another terminal are obeyed, SIGTERM and SIGHUP leave no process, a
//! store locked past its busy timeout is waited out, a ref moved outside orch is
//! reported, hooks an agent plants never run, and hostile text and settings are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use orch_testkit::{Sandbox, git, tagged_with, wait_for};
use serde_json::Value;

/// The binary under test.
const ORCH: &str = env!("CARGO_BIN_EXE_orch");

/// `orch run --agent-cmd AGENT EXTRA...` in the background, its stderr piped.
fn spawn_run(s: &Sandbox, agent: &str, extra: &[&str]) -> Child {
    let mut args = vec!["run", "--agent-cmd", agent];
    args.extend_from_slice(extra);
    s.cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The id of the newest run, once it has started.
fn run_id(s: &Sandbox) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the run never started");
        if let Some(id) = s.json(&["run", "list"])[0]["id"].as_str() {
            return id.to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An agent that appends its task id to `order` and, for the task titled `gate`, waits
/// until `release` exists.
fn agent(s: &Sandbox) -> (String, PathBuf, PathBuf) {
    let (order, release) = (s.dir().join("order"), s.dir().join("release"));
    let a = format!(
        "echo $ORCH_TASK_ID >> {o}; if [ \"$ORCH_TASK_TITLE\" = gate ]; then while [ ! -e {r} ]; do sleep 0.1; done; fi; echo $ORCH_TASK_ID > t$ORCH_TASK_ID.txt",
        o = order.display(),
        r = release.display()
    );
    (a, order, release)
}

#[test]
fn board_changes_during_a_run_are_obeyed() {
    let s = Sandbox::new(ORCH);
    for title in ["gate", "two", "three", "four", "five"] {
        s.ok(&["task", "add", title]);
    }
    let (agent, order, release) = agent(&s);
    let run = spawn_run(&s, &agent, &["--concurrency", "1"]);
    wait_for("task 1's agent", 30, || order.exists());
    // Another terminal changes the board while task 1 runs.
    s.ok(&["task", "cancel", "3"]);
    s.ok(&["task", "move", "4", "blocked"]);
    s.ok(&["task", "rm", "5"]);
    s.ok(&["task", "add", "six"]);
    s.ok(&["task", "edit", "2", "--after", "6"]);
    s.ok(&["task", "add", "seven"]);
    // The run polls the board twice a second.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&release, "").unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let statuses: Vec<_> = (1..=7).map(|i| s.status(i)).collect();
    let want = ["done", "done", "canceled", "blocked", "", "done", "done"];
    for (i, w) in want.iter().enumerate() {
        let got = statuses[i].clone().unwrap_or_default();
        assert_eq!(&got, w, "task {}: {statuses:?}\n{stderr}", i + 1);
    }
    let ran: Vec<String> = std::fs::read_to_string(&order)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let pos = |t: &str| ran.iter().position(|x| x == t);
    assert!(
        pos("6") < pos("2"),
        "task 2 ran before its new dependency 6: {ran:?}"
    );
    assert!(
        pos("3").is_none() && pos("4").is_none() && pos("5").is_none(),
        "{ran:?}"
    );
}

#[test]
fn a_forced_move_of_a_running_task_ends_its_attempt_and_is_never_a_second_done() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "gate"]);
    s.ok(&["task", "add", "other"]);
    let (agent, order, release) = agent(&s);
    let run = spawn_run(&s, &agent, &["--concurrency", "1"]);
    wait_for("task 1's agent", 30, || order.exists());
    s.ok(&[
        "task",
        "move",
        "1",
        "done",
        "--force",
        "--reason",
        "done by hand",
    ]);
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(s.status(1).as_deref(), Some("done"));
    assert_eq!(s.status(2).as_deref(), Some("done"));
    let events = s.json(&["events", "--task", "1"]);
    let kinds = |kind: &str, has: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind && e["reason"].as_str().is_some_and(|r| r.contains(has)))
            .count()
    };
    assert_eq!(kinds("task.override", "done by hand"), 1, "{events:#}");
    assert_eq!(
        kinds("task.moved", "-> done"),
        0,
        "the run never marks it done again: {events:#}"
    );
    assert_eq!(
        kinds("run.task_taken", "moved to done by a person"),
        1,
        "{events:#}"
    );
    drop(release);
}

fn signal_leaves_no_process(sig: nix_signal::Sig) {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "sleeper"]);
    let pid_file = s.dir().join("agent.pid");
    let agent = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
    let mut run = spawn_run(&s, &agent, &[]);
    let id = run_id(&s);
    wait_for("the agent", 30, || pid_file.exists());
    nix_signal::send(run.id(), sig);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = run.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "orch did not drain");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "a drained run exits 130");
    wait_for("no tagged process", 5, || tagged_with(&id).is_empty());
    assert_eq!(
        s.status(1).as_deref(),
        Some("backlog"),
        "a drained task is released"
    );
}

#[test]
fn sigterm_mid_run_leaves_no_process() {
    signal_leaves_no_process(nix_signal::Sig::Term);
}

#[test]
fn sighup_mid_run_leaves_no_process() {
    signal_leaves_no_process(nix_signal::Sig::Hup);
}

#[test]
fn a_store_locked_past_its_busy_timeout_is_waited_out() {
    let s = Sandbox::new(ORCH);
    for title in ["gate", "two", "three"] {
        s.ok(&["task", "add", title]);
    }
    let (agent, order, release) = agent(&s);
    let run = spawn_run(&s, &agent, &["--concurrency", "1"]);
    wait_for("task 1's agent", 30, || order.exists());
    // Another process holds the database exclusively for 15 s, past the 10 s busy timeout.
    let db = s.repo().join(".orch/orch.db");
    let mut lock = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sqlite3 is installed (.ci/run installs it)");
    {
        use std::io::Write;
        let stdin = lock.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN EXCLUSIVE; SELECT count(*) FROM tasks;").unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&release, "").unwrap();
    std::thread::sleep(Duration::from_secs(15));
    {
        use std::io::Write;
        writeln!(lock.stdin.as_mut().unwrap(), "COMMIT;").unwrap();
    }
    drop(lock.stdin.take());
    lock.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for t in 1..=3 {
        assert_eq!(s.status(t).as_deref(), Some("done"), "{stderr}");
    }
    let ran = std::fs::read_to_string(&order).unwrap();
    assert_eq!(ran.lines().count(), 3, "no work was redone: {ran}");
}

#[test]
fn a_ref_moved_outside_orch_is_reported_not_trusted() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "mover"]);
    // The agent moves the integration ref behind orch's back.
    let agent = "echo x > x.txt; evil=$(git -c user.name=a -c user.email=a@a commit-tree 'HEAD^{tree}' -p HEAD -m evil) && git update-ref refs/heads/orch/integration $evil";
    let out = s.cmd(&["run", "--agent-cmd", agent]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a run whose ref was moved is no success: {stderr}"
    );
    assert_ne!(s.status(1).as_deref(), Some("done"), "{stderr}");
    let events = s.json(&["events"]).to_string();
    assert!(events.contains("moved outside orch"), "{events}");
}

#[test]
fn json_events_stream_the_run_as_json_lines() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "one"]);
    s.ok(&["task", "add", "two"]);
    let agent = "echo hello from $ORCH_TASK_ID; echo x > t$ORCH_TASK_ID.txt";
    let out = s
        .cmd(&[
            "run",
            "--json-events",
            "--agent-cmd",
            agent,
            "--validate",
            "echo gate says hi",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types.last(), Some(&"summary"), "{types:?}");
    assert_eq!(types[types.len() - 2], "ended", "{types:?}");
    let journal: Vec<&Value> = lines.iter().filter(|l| l["type"] == "journal").collect();
    assert!(
        journal.iter().any(|l| l["kind"] == "run.head_advanced"),
        "{lines:#?}"
    );
    let dones = journal
        .iter()
        .filter(|l| l["event"]["event"] == "task_moved" && l["event"]["to"] == "done")
        .count();
    assert_eq!(dones, 2, "{lines:#?}");
    // The journal on the stream is the journal in the store, event for event.
    let stored = s.json(&[
        "events",
        "--run",
        lines.last().unwrap()["run"].as_str().unwrap(),
    ]);
    let kinds = |v: &[&Value]| {
        v.iter()
            .map(|l| l["kind"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let stored: Vec<&Value> = stored
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !["run.created", "lease.acquired"].contains(&e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds(&journal), kinds(&stored));
    assert!(
        lines.iter().any(|l| l["type"] == "output"
            && l["line"]
                .as_str()
                .is_some_and(|x| x.starts_with("hello from"))),
        "no agent output line: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["type"] == "output"
            && l["stage"] == "worker"
            && l["line"] == "gate says hi"),
        "no gate output line: {lines:#?}"
    );
}

#[test]
fn diagnostics_go_to_stderr_as_json_with_run_attempt_and_command_spans() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "one"]);
    let out = s
        .cmd(&[
            "-v",
            "--log-format",
            "json",
            "run",
            "--agent-cmd",
            "echo x > x.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let diag: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = diag
        .iter()
        .find(|d| d["fields"]["message"] == "started" && d["span"]["kind"] == "spawn_agent")
        .unwrap_or_else(|| panic!("no spawn_agent span: {stderr}"));
    let spans: Vec<&str> = started["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(spans, ["run", "attempt", "command"], "{started}");
    // Without -v, orch says nothing of its own beyond the progress.
    let quiet = s.cmd(&["run", "--agent-cmd", "true"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("INFO"));
}

/// splitmix64, for the seeded schedule of board changes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a person asked of a task, and so what its end must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Done,
    Canceled,
    /// A cancel of a running task is a request to its run: if the task lands before
    /// the run picks it up, it is done.
    CancelRequested,
    Blocked,
    Removed,
}

/// A 20-task run while another terminal cancels, blocks, removes, edits and adds tasks
/// at seeded moments (`ORCH_BOARD_SEED` replays one): every change the CLI accepted is
/// obeyed, and the run never fails.
#[test]
fn a_run_obeys_every_change_another_terminal_makes() {
    let seed = std::env::var("ORCH_BOARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    eprintln!("board-change seed {seed} (replay with ORCH_BOARD_SEED={seed})");
    let mut rng = Rng(seed);
    let s = Sandbox::new(ORCH);
    let mut want: BTreeMap<i64, Want> = BTreeMap::new();
    // Enough work that the run outlasts the changes below (at most 5.4 s), now that
    // agents start while earlier work integrates.
    for i in 1..=40 {
        s.ok(&["task", "add", &format!("t{i}")]);
        want.insert(i, Want::Done);
    }
    let log = s.dir().join("log");
    let agent = format!(
        "echo start $ORCH_TASK_ID >> {l}; sleep 0.3; echo $ORCH_TASK_ID > t$ORCH_TASK_ID.txt; echo end $ORCH_TASK_ID >> {l}",
        l = log.display()
    );
    let run = spawn_run(&s, &agent, &["--concurrency", "2"]);
    let mut after: Vec<(i64, i64)> = Vec::new();
    let mut next_id = 41;
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(150 + rng.below(300)));
        let t = 1 + rng.below(next_id as u64 - 1) as i64;
        let status = s.status(t);
        let accepted = |r: &Output| r.status.success();
        match rng.below(5) {
            0 if status.as_deref() != Some("done") => {
                let out = s.cmd(&["task", "cancel", &t.to_string()]).output().unwrap();
                if accepted(&out) {
                    // Claimed since its status was read: the cancel is a request the
                    // run obeys, unless the attempt ends first. The answer says which.
                    let requested =
                        String::from_utf8_lossy(&out.stdout).contains("cancel requested");
                    let w = if requested {
                        Want::CancelRequested
                    } else {
                        Want::Canceled
                    };
                    want.insert(t, w);
                }
            }
            1 if status.as_deref() == Some("backlog") => {
                if accepted(
                    &s.cmd(&["task", "move", &t.to_string(), "blocked"])
                        .output()
                        .unwrap(),
                ) {
                    want.insert(t, Want::Blocked);
                }
            }
            2 if status.as_deref() == Some("backlog") => {
                if accepted(&s.cmd(&["task", "rm", &t.to_string()]).output().unwrap()) {
                    want.insert(t, Want::Removed);
                }
            }
            3 if status.as_deref() == Some("backlog") => {
                // A new task the waiting one must now come after.
                s.ok(&["task", "add", &format!("t{next_id}")]);
                want.insert(next_id, Want::Done);
                if accepted(
                    &s.cmd(&[
                        "task",
                        "edit",
                        &t.to_string(),
                        "--after",
                        &next_id.to_string(),
                    ])
                    .output()
                    .unwrap(),
                ) {
                    after.push((t, next_id));
                }
                next_id += 1;
            }
            _ => {
                s.ok(&["task", "add", &format!("t{next_id}"), "--priority", "5"]);
                want.insert(next_id, Want::Done);
                next_id += 1;
            }
        }
    }
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "the run failed: {stderr}"
    );
    for (t, w) in &want {
        let got = s.status(*t);
        let expected = match w {
            Want::Done => Some("done"),
            Want::Canceled => Some("canceled"),
            Want::CancelRequested if got.as_deref() == Some("done") => Some("done"),
            Want::CancelRequested => Some("canceled"),
            Want::Blocked => Some("blocked"),
            Want::Removed => None,
        };
        // A task blocked after it depended on a canceled or blocked one waits forever:
        // it stays in the backlog, which is obedience too.
        let waiting = *w == Want::Done
            && got.as_deref() == Some("backlog")
            && after.iter().any(|(a, b)| a == t && want[b] != Want::Done);
        assert!(
            got.as_deref() == expected || waiting,
            "task {t}: wanted {w:?}, got {got:?} (seed {seed})\n{stderr}"
        );
    }
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let at = |what: &str| lines.lines().position(|l| l == what);
    for (a, b) in after {
        if let (Some(start), Some(end)) = (at(&format!("start {a}")), at(&format!("end {b}"))) {
            assert!(
                start > end,
                "task {a} started before its new dependency {b} ended (seed {seed})"
            );
        }
    }
    for (t, w) in &want {
        if matches!(w, Want::Blocked | Want::Removed) {
            // Blocked and removed only while in the backlog: their claims were refused.
            assert!(
                at(&format!("start {t}")).is_none(),
                "{w:?} task {t} ran (seed {seed})"
            );
        }
    }
}

/// An agent plants a `post-commit` hook and an fsmonitor in the shared `.git`, and the
/// user has a hook of their own: none of them runs when orch commits the agent's
/// leftovers, so none sees orch's environment.
#[test]
fn hooks_and_fsmonitors_never_run_and_what_an_agent_plants_is_undone() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "plant"]);
    let seen = s.dir().join("hook-saw-env");
    let hooks = s.repo().join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let user_hook = hooks.join("post-commit");
    std::fs::write(
        &user_hook,
        format!("#!/bin/sh\nenv > {}.user\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&user_hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = format!(
        "d=$(git rev-parse --git-common-dir); printf '#!/bin/sh\\nenv > {s}.agent\\n' > $d/hooks/post-index-change; chmod +x $d/hooks/post-index-change; git config core.fsmonitor 'env > {s}.fsmonitor; true'; echo x > x.txt",
        s = seen.display()
    );
    let out = s
        .cmd(&["run", "--agent-cmd", &agent])
        .env("SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    // Planting them is the agent's failure, and orch undoes it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("changed the repository's shared git files (config changed; hooks/post-index-change added); orch undid it"),
        "{stderr}"
    );
    assert!(
        !hooks.join("post-index-change").exists(),
        "the planted hook stayed"
    );
    let config = std::fs::read_to_string(s.repo().join(".git/config")).unwrap();
    assert!(!config.contains("fsmonitor"), "{config}");
    assert!(user_hook.exists(), "the user's own hook was touched");
    for who in ["user", "agent", "fsmonitor"] {
        let p = format!("{}.{who}", seen.display());
        assert!(
            !Path::new(&p).exists(),
            "the {who} hook ran: {:?}",
            std::fs::read_to_string(&p)
        );
    }
}

/// An agent that moves the user's branches onto its work or makes tags fails, and each
/// is put back (what it pointed at stays under refs/orch/undone/), a checked-out branch
/// too when the checkout's files did not follow the move.
#[test]
fn refs_an_agent_moves_outside_its_branch_are_put_back_and_named() {
    let rev = |s: &Sandbox, r: &str| {
        let o = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", r])
            .current_dir(s.repo())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let agent = "echo x > x.txt; git add x.txt; git -c user.name=a -c user.email=a@a commit -qm work; git update-ref refs/heads/main HEAD; git tag evil HEAD";
    // main checked out nowhere: put back.
    let s = Sandbox::new(ORCH);
    git(&s.repo(), &["switch", "-q", "-c", "feature"]);
    s.ok(&["task", "add", "mover"]);
    let main = rev(&s, "main");
    let out = s
        .cmd(&["run", "--agent-cmd", agent, "--max-attempts", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("refs/heads/main moved from"), "{stderr}");
    assert!(stderr.contains("put back"), "{stderr}");
    assert_eq!(rev(&s, "main"), main, "main was not put back");
    assert_eq!(rev(&s, "refs/tags/evil"), "", "the tag stayed");
    assert_ne!(
        rev(&s, "refs/orch/undone/heads/main"),
        "",
        "the agent's commit was lost"
    );
    // main checked out by the user, whose files did not follow the move: put back,
    // which makes the checkout consistent again.
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "mover"]);
    let main = rev(&s, "main");
    let out = s
        .cmd(&["run", "--agent-cmd", agent, "--max-attempts", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("put back"), "{stderr}");
    assert_eq!(rev(&s, "main"), main);
    let status = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(s.repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    assert!(status.stdout.is_empty(), "{status:?}");
}

/// Submodules are checked out in attempt and integration worktrees, from the local
/// `.git/modules` copy (the URL in `.gitmodules` is unreachable here), so gates that
/// need their files pass; `worktrees.submodules = false` leaves them empty.
#[test]
fn submodules_are_checked_out_from_the_local_copy() {
    let s = Sandbox::new(ORCH);
    let sub = s.dir().join("sub-src");
    std::fs::create_dir(&sub).unwrap();
    git(&sub, &["init", "-q", "-b", "main"]);
    std::fs::write(sub.join("lib.txt"), "library\n").unwrap();
    git(&sub, &["add", "lib.txt"]);
    git(
        &sub,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "lib",
        ],
    );
    let url = sub.display().to_string();
    git(
        &s.repo(),
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &url,
            "vendor/lib",
        ],
    );
    git(
        &s.repo(),
        &[
            "config",
            "--file",
            ".gitmodules",
            "submodule.vendor/lib.url",
            "https://invalid.example/lib.git",
        ],
    );
    git(&s.repo(), &["add", ".gitmodules", "vendor/lib"]);
    git(
        &s.repo(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "vendor lib",
        ],
    );
    s.ok(&["task", "add", "uses the library"]);
    let gate = "test -f vendor/lib/lib.txt";
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            "--agent-cmd",
            "echo x > x.txt",
            "--validate",
            gate,
            "--integrate-validate",
            gate,
            "--max-attempts",
            "1",
        ];
        a.extend_from_slice(extra);
        s.cmd(&a).output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.status(1).as_deref(), Some("done"));
    s.ok(&["task", "add", "without submodules"]);
    let out = run(&["-c", "worktrees.submodules=false"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.status(2).as_deref(), Some("failed"));
}

/// `agent.sandbox = "bwrap"`: the agent can commit on its own branch, but cannot
/// write into the user's checkout, the user's home or the shared .git. Skipped where
/// `bwrap` is not installed (`.ci/run` installs it).
#[test]
fn a_sandboxed_agent_writes_only_its_worktree() {
    // bubblewrap installed and able to make a sandbox here (orch's own preflight).
    if let Err(why) = orch_engine::agents::sandbox::check_bwrap() {
        eprintln!("skipped: {why}");
        return;
    }
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "boxed"]);
    let (repo, home) = (s.repo(), s.home());
    let agent = format!(
        "echo x > {r}/evil.txt; echo x > {h}/evil.txt; echo x > $(git rev-parse --git-common-dir)/hooks/evil; echo work > work.txt; git add work.txt && git -c user.name=a -c user.email=a@a commit -qm 'agent work'",
        r = repo.display(),
        h = home.display()
    );
    let out = s
        .cmd(&["run", "--agent-cmd", &agent, "-c", "agent.sandbox=bwrap"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(s.status(1).as_deref(), Some("done"));
    for p in [
        repo.join("evil.txt"),
        home.join("evil.txt"),
        repo.join(".git/hooks/evil"),
    ] {
        assert!(!p.exists(), "the sandboxed agent wrote {}", p.display());
    }
    let log = Command::new("git")
        .args(["log", "--format=%s", "orch/integration"])
        .current_dir(&repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("agent work"),
        "its own commit"
    );
}

#[test]
fn hostile_text_and_settings_are_refused_and_secrets_stay_hidden() {
    let s = Sandbox::new(ORCH);
    // NUL and escape sequences in a title are bad input; in a body, NUL is. (A NUL
    // cannot travel in argv, so it comes in a board file and a body file.)
    let out = s.cmd(&["task", "add", "red \u{1b}[31m"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an escape sequence in a title was accepted"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("control characters"));
    let board = s.dir().join("board.toml");
    std::fs::write(&board, "[[task]]\nkey = \"k\"\ntitle = \"a\\u0000b\"\n").unwrap();
    let out = s
        .cmd(&["board", "import", board.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a NUL in a title was imported");
    let body = s.dir().join("body.md");
    std::fs::write(&body, b"x\0y").unwrap();
    let out = s
        .cmd(&["task", "add", "ok", "--body-file", body.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a NUL in a body was accepted");
    // A body may hold an escape sequence; it is shown escaped, never sent raw.
    s.ok(&["task", "add", "shown", "--body", "look \u{1b}]0;pwned\u{7}"]);
    let shown = String::from_utf8(s.ok(&["task", "show", "1"]).stdout).unwrap();
    assert!(
        !shown.contains('\u{1b}') && shown.contains("\\x1b]0;pwned\\x07"),
        "{shown}"
    );
    // .orch/ is private whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.repo().join(".orch"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // A database password is never printed.
    let url = "database_url=postgres://orch:hunter2@127.0.0.1:1/db";
    for args in [
        &["-c", url, "config", "show"][..],
        &["--json", "-c", url, "config", "show"][..],
    ] {
        let out = s.ok(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("hunter2") && text.contains("orch:***@127.0.0.1"),
            "{text}"
        );
    }
    // Worktrees inside the checkout are refused before anything is recorded.
    let out = s
        .cmd(&["-c", "worktrees.root=wt", "run", "--agent-cmd", "true"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is inside the repository"));
    assert_eq!(
        s.json(&["run", "list"]).as_array().unwrap().len(),
        0,
        "a refused run left a record"
    );
}

/// Inputs a user can fix are exit 2, with a message that says how; nothing is recorded.
#[test]
fn fixable_run_inputs_exit_2_and_record_nothing() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "one"]);
    let cases: [(&[&str], &str); 6] = [
        (
            &["run", "--agent-cmd", "true", "--base", "no-such-branch"],
            "cannot resolve \"no-such-branch\"",
        ),
        (
            &["run", "--agent-cmd", "true", "--task", "999"],
            "--task 999: no such task",
        ),
        // The user's checked-out branch as the integration line would move under
        // their checkout.
        (
            &[
                "-c",
                "run.integration_branch=main",
                "run",
                "--agent-cmd",
                "true",
            ],
            "run.integration_branch \"main\" is checked out in ",
        ),
        // Durations past their sane maximum, and ports past 65535, name the key and
        // where it was set.
        (
            &[
                "-c",
                "policy.backoff=999999999999h",
                "run",
                "--agent-cmd",
                "true",
            ],
            "command line (-c policy.backoff): policy.backoff 41666666666d15h is too long: allowed up to 1d",
        ),
        (
            &["-c", "agent.timeout=30d", "task", "list"],
            "agent.timeout 30d is too long: allowed up to 7d",
        ),
        (
            &[
                "-c",
                "worktrees.port_base=65530",
                "-c",
                "validate.integration_slots=1",
                "run",
                "--agent-cmd",
                "true",
            ],
            "gives 5 slots (worktrees.pool_max, or run.concurrency + the integration depth when it is 0) ports up to 65579",
        ),
    ];
    for (args, says) in cases {
        let out = s.cmd(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // A branch named `orch` blocks orch's namespace: said plainly, before any record.
    git(&s.repo(), &["branch", "orch"]);
    let out = s.cmd(&["run", "--agent-cmd", "true"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a branch named `orch` exists"), "{stderr}");
    git(&s.repo(), &["branch", "-D", "orch"]);
    assert_eq!(s.json(&["run", "list"]).as_array().unwrap().len(), 0);
    // A bad preset lists only real ones; with --json, a refused command line is JSON.
    let out = s.cmd(&["run", "--agent", "foo"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("expected one of claude, codex, gemini, aider, opencode"),
        "{stderr}"
    );
    let out = s
        .cmd(&["--json", "run", "--no-such-flag"])
        .output()
        .unwrap();
    let err: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(err["error"]["exit_code"], 2);
    // A repository with no commits says to make one.
    let empty = s.dir().join("empty");
    std::fs::create_dir(&empty).unwrap();
    git(&empty, &["init", "-q"]);
    let repo = empty.to_str().unwrap();
    s.ok(&["--repo", repo, "init"]);
    s.ok(&["--repo", repo, "task", "add", "one"]);
    let out = s
        .cmd(&["--repo", repo, "run", "--agent-cmd", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no commits yet; make a first commit"),
        "{stderr}"
    );
}

/// Output a person can follow: short commit ids in the progress, the failed tasks named
/// with why and where their logs are, a history that does not repeat itself, and a dry
/// cleanup that does not say "nothing" above what it keeps.
#[test]
fn output_a_person_can_follow() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "lands"]);
    s.ok(&["task", "add", "fails"]);
    let agent = "if [ \"$ORCH_TASK_TITLE\" = fails ]; then exit 3; fi; echo x > x$ORCH_TASK_ID.txt";
    let out = s
        .cmd(&["run", "--agent-cmd", agent, "--max-attempts", "1"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let long = stderr
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.len() == 40 && w.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!long, "a full commit id in the progress: {stderr}");
    assert!(
        stdout.contains("#2 failed: agent-error (exit code 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("every attempt, and why: orch run show"),
        "{stdout}"
    );
    let shown = String::from_utf8(s.ok(&["task", "show", "1"]).stdout).unwrap();
    assert!(
        !shown.contains("in_progress: backlog -> in_progress"),
        "{shown}"
    );
    let dry = String::from_utf8(s.ok(&["cleanup", "--dry-run"]).stdout).unwrap();
    assert!(
        !(dry.contains("Nothing to clean up") && dry.contains("would keep")),
        "{dry}"
    );
}

/// Two runs started at the same moment get distinct ids, and share the board.
#[test]
fn two_runs_started_at_once_do_not_collide() {
    let s = Sandbox::new(ORCH);
    for i in 1..=6 {
        s.ok(&["task", "add", &format!("t{i}")]);
    }
    let agent = "echo $ORCH_TASK_ID > t$ORCH_TASK_ID.txt";
    let a = spawn_run(&s, agent, &[]);
    let b = spawn_run(&s, agent, &[]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let runs = s.json(&["run", "list"]);
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#}");
    for t in 1..=6 {
        assert_eq!(s.status(t).as_deref(), Some("done"));
    }
}

/// SIGTERM and SIGHUP without another dependency.
mod nix_signal {
    pub enum Sig {
        Term,
        Hup,
    }
    pub fn send(pid: u32, sig: Sig) {
        let name = match sig {
            Sig::Term => "TERM",
            Sig::Hup => "HUP",
        };
        // The shell's own `kill`: no procps package needed.
        let st = std::process::Command::new("sh")
            .args(["-c", &format!("kill -{name} {pid}")])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// The database removed under a live run: the run notices at its next write and
/// stops with the reason, instead of completing into a file no one will read; and
/// nothing writes a new database in its place.
#[test]
fn a_database_removed_mid_run_stops_the_run_with_the_reason() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "gate"]);
    let (agent, order, release) = agent(&s);
    let run = spawn_run(&s, &agent, &[]);
    wait_for("the agent", 30, || order.exists());
    let db = s.repo().join(".orch/orch.db");
    for f in ["orch.db", "orch.db-wal", "orch.db-shm"] {
        let _ = std::fs::remove_file(s.repo().join(".orch").join(f));
    }
    std::fs::write(&release, "").unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("was removed while orch had it open"),
        "{stderr}"
    );
    assert!(
        !db.exists(),
        "a new database was written in place of the removed one"
    );
}

/// A task a person cancels during a run is not a failure of the run: the summary
/// says it was canceled, and the run exits 0 when the rest is done.
#[test]
fn a_task_canceled_during_a_run_is_counted_as_canceled_not_failed() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "gate"]);
    s.ok(&["task", "add", "two"]);
    let (agent, order, _release) = agent(&s);
    let child = s
        .cmd(&["run", "--agent-cmd", &agent, "--concurrency", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("task 1's agent", 30, || order.exists());
    s.ok(&["task", "cancel", "1"]);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("tasks: 1 done   0 failed") && stdout.contains("1 canceled"),
        "{stdout}"
    );
    assert_eq!(s.status(1).as_deref(), Some("canceled"));
}

/// A daemon an agent starts with `setsid env -i` (no run tag, its own session) does
/// not outlive the run: orch is a child subreaper, so the daemon becomes its child,
/// and orch stops what is left when the run ends.
#[test]
fn a_setsid_daemon_an_agent_leaves_does_not_outlive_the_run() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "daemon"]);
    // A sleep long and odd enough to be this test's alone.
    let secs = 3000 + std::process::id() % 1000;
    let marker = format!("sleep\0{secs}\0");
    let agent = format!(
        "setsid env -i /bin/sleep {secs} </dev/null >/dev/null 2>&1 & sleep 1; echo x > x.txt"
    );
    let out = s.cmd(&["run", "--agent-cmd", &agent]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let alive: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.ends_with(marker.as_bytes()))
        })
        .collect();
    for pid in &alive {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(
        alive.is_empty(),
        "the daemon outlived the run: {alive:?}\n{stderr}"
    );
    assert!(stderr.contains("that agents left running"), "{stderr}");
}

/// An agent plants links in its artifacts directory: `x.log` to a secret (read by
/// whoever looks at its logs) and `worker-1.log` to a file of the user's (which the
/// worker gate's log would overwrite), and links a later attempt's directory to
/// elsewhere. `orch logs` names the link and serves nothing through it; the gate's log
/// replaces the link, and the user's file stays as it was.
#[test]
fn links_an_agent_plants_among_its_logs_are_never_followed() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "plant"]);
    let secret = s.dir().join("secret.txt");
    std::fs::write(&secret, "the-secret-line\n").unwrap();
    let victim = s.dir().join("victim.txt");
    std::fs::write(&victim, "the user's own file\n").unwrap();
    let elsewhere = s.dir().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let agent = format!(
        "d=$(dirname \"$ORCH_PROMPT_FILE\"); ln -s {secret} $d/x.log; ln -s {victim} $d/worker-1.log; ln -s {elsewhere} $d/../2; echo x > x.txt",
        secret = secret.display(),
        victim = victim.display(),
        elsewhere = elsewhere.display(),
    );
    let out = s
        .cmd(&[
            "run",
            "--agent-cmd",
            &agent,
            "--validate",
            "echo gate-ran; false",
            "--max-attempts",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the user's own file\n",
        "the gate's log was written through a link"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "the second attempt's files went through a linked directory"
    );
    let logs = s
        .cmd(&["logs", "--task", "1", "--attempt", "1"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr),
    );
    assert!(logs.status.success(), "{stderr}");
    assert!(!stdout.contains("the-secret-line"), "{stdout}");
    assert!(stderr.contains("x.log is not a regular file"), "{stderr}");
    assert!(stdout.contains("gate-ran"), "{stdout}");
}

/// An agent whose structured output reports `u64::MAX` tokens and a negative cost:
/// the sums saturate (no panic, no wrap), the cost is refused as malformed and
/// journaled, and the run ends as usual instead of waiting for ever.
#[test]
fn absurd_usage_saturates_and_a_negative_cost_is_refused_not_a_wedge() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "absurd"]);
    let max = u64::MAX;
    let result = format!(
        r#"{{"type":"assistant","message":{{"id":"m1","usage":{{"input_tokens":{max},"output_tokens":{max}}}}}}}
{{"type":"assistant","message":{{"id":"m2","usage":{{"input_tokens":{max}}}}}}}
{{"type":"result","usage":{{"input_tokens":{max},"output_tokens":{max}}},"total_cost_usd":-1,"num_turns":{max}}}"#
    );
    let script = s.dir().join("agent.sh");
    std::fs::write(
        &script,
        format!("cat <<'EOF'\n{result}\nEOF\necho x > x.txt\n"),
    )
    .unwrap();
    let agent = format!("sh {}", script.display());
    let mut child = s
        .cmd(&[
            "run",
            "--agent-cmd",
            &agent,
            "-c",
            "agent.output=claude-stream-json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run never ended: its attempt stayed running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(s.status(1).as_deref(), Some("done"));
    let events = s.json(&["events"]);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"attempt.report_refused"), "{kinds:?}");
    let usage = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "attempt.usage")
        .expect("the attempt's usage is journaled");
    let text = usage.to_string();
    assert!(text.contains(&max.to_string()), "{text}");
    assert!(!text.contains("cost"), "a negative cost was kept: {text}");
}

/// The bytes of the user's HEAD and index, and what `git status` says.
fn checkout_state(repo: &Path) -> (Vec<u8>, Vec<u8>, String) {
    let status = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    (
        std::fs::read(repo.join(".git/HEAD")).unwrap(),
        std::fs::read(repo.join(".git/index")).unwrap(),
        String::from_utf8(status.stdout).unwrap(),
    )
}

/// An agent points its worktree's `.git` at the user's repository, or deletes its
/// worktree: orch runs no git in it (the user's HEAD, index and files stay byte for
/// byte), the attempt fails as the agent's (`agent-error`, naming what it did, not
/// `infrastructure`), the pool replaces the worktree, and the retry lands.
#[test]
fn an_agent_that_breaks_its_worktree_fails_and_the_users_checkout_is_untouched() {
    let s = Sandbox::new(ORCH);
    std::fs::write(s.repo().join("notes.txt"), "the user's own\n").unwrap();
    let before = checkout_state(&s.repo());
    let cases = [
        (
            "hijack",
            "c=$(git rev-parse --git-common-dir); echo x > x.txt; printf 'gitdir: %s\\n' \"$c\" > .git",
            "its .git points at",
        ),
        (
            "vanish",
            "cd / && rm -rf \"$ORCH_WORKTREE\"",
            "the worktree is gone",
        ),
    ];
    for (task, (title, hostile, says)) in cases.into_iter().enumerate() {
        let task_id = format!("\"task_id\":{}", task + 1);
        s.ok(&["task", "add", title]);
        let agent =
            format!("if [ \"$ORCH_ATTEMPT\" = 1 ]; then {hostile}; else echo ok > {title}.txt; fi");
        let out = s
            .cmd(&[
                "run",
                "--agent-cmd",
                &agent,
                "--max-attempts",
                "2",
                "-c",
                "policy.backoff=0s",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{title}: {stderr}");
        let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
        let failed = events
            .lines()
            .filter(|l| l.contains(&task_id))
            .find(|l| l.contains("agent-error") && l.contains("broke its worktree"))
            .unwrap_or_else(|| panic!("{title}: no agent-error for the broken worktree"));
        assert!(failed.contains(says), "{title}: {failed}");
        assert_eq!(
            checkout_state(&s.repo()),
            before,
            "{title}: the user's checkout changed"
        );
    }
    let statuses: Vec<String> = (1..=2).map(|t| s.status(t).unwrap()).collect();
    assert_eq!(statuses, ["done", "done"]);
    assert!(!s.repo().join("x.txt").exists());
    let log = Command::new("git")
        .args(["log", "--format=%s", "main"])
        .current_dir(s.repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "init");
}

/// The user deletes the run's base branch while an agent runs: that is the user's
/// doing, not the agent's. The attempt is not failed, the move is journaled, and main
/// is not re-created (its commit is kept under refs/orch/undone/).
#[test]
fn a_base_the_user_deletes_mid_run_is_not_blamed_on_the_agent_or_recreated() {
    let s = Sandbox::new(ORCH);
    git(&s.repo(), &["switch", "-q", "-c", "feature"]);
    s.ok(&["task", "add", "slow"]);
    let (started, release) = (s.dir().join("started"), s.dir().join("release"));
    let agent = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.05; done; echo x > x.txt",
        started.display(),
        release.display()
    );
    let child = s
        .cmd(&["run", "--agent-cmd", &agent, "-c", "run.base=main"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the agent", 30, || started.exists());
    let main = {
        let o = Command::new("git")
            .args(["rev-parse", "main"])
            .current_dir(s.repo())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    git(&s.repo(), &["branch", "-q", "-D", "main"]);
    std::fs::write(&release, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(s.status(1).as_deref(), Some("done"), "{stderr}");
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    assert!(
        !events
            .lines()
            .any(|l| l.contains("attempt.moved") && l.contains("agent-error")),
        "{events}"
    );
    let moved = events
        .lines()
        .find(|l| l.contains("run.user_refs_moved"))
        .expect("the user's deletion is journaled");
    assert!(moved.contains("refs/heads/main moved from"), "{moved}");
    let refs = Command::new("git")
        .args(["for-each-ref", "--format=%(refname) %(objectname)"])
        .current_dir(s.repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    let refs = String::from_utf8(refs.stdout).unwrap();
    assert!(
        !refs.contains("refs/heads/main "),
        "main was re-created: {refs}"
    );
    assert!(
        refs.contains(&format!("refs/orch/undone/heads/main {main}")),
        "{refs}"
    );
}

/// An agent commits symlinks out of the repository: the attempt fails, naming each;
/// a link inside the repository lands; `policy.symlinks = "allow"` lets them all land.
#[test]
fn symlinks_out_of_the_repository_fail_the_attempt_unless_allowed() {
    let s = Sandbox::new(ORCH);
    s.ok(&["task", "add", "links"]);
    let agent =
        "mkdir -p d; echo hi > d/f; ln -s /etc/passwd pw; ln -s ../../x d/up; ln -s d/f inside";
    let out = s
        .cmd(&["run", "--agent-cmd", agent, "--max-attempts", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("symlinks that leave the repository (d/up -> ../../x, pw -> /etc/passwd)"),
        "{stderr}"
    );
    s.ok(&["task", "add", "inside only"]);
    s.ok(&[
        "run",
        "--agent-cmd",
        "echo hi > g; ln -s g link",
        "--task",
        "2",
    ]);
    assert_eq!(s.status(2).as_deref(), Some("done"));
    s.ok(&["task", "retry", "1"]);
    s.ok(&["run", "--agent-cmd", agent, "-c", "policy.symlinks=allow"]);
    assert_eq!(s.status(1).as_deref(), Some("done"));
}

/// The disk fills up mid-run (the agent fills a small tmpfs that holds the repository,
/// its database and its worktrees; the user frees it two seconds later): the full disk
/// is named as such, never as a missing agent or a held lock; it spends no attempt (the
/// task lands with `--max-attempts 1`); claiming and the store's writes wait for space,
/// and the run ends well once it returns. Run inside a private mount namespace
/// (`unshare`), so the test needs no privileges beyond user namespaces.
#[test]
fn a_full_disk_is_named_waited_out_and_spends_no_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let (disk, out) = (tmp.path().join("disk"), tmp.path().join("out"));
    std::fs::create_dir_all(&disk).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    // Task one's agent fills the disk; task two's writes once it is free again (its
    // own write failing on the full disk would be the agent's failure, not orch's).
    let agent = format!(
        "if [ \"$ORCH_TASK_ID\" != 1 ]; then while [ ! -e {o}/filled ] || [ -e {d}/filler ]; do sleep 0.05; done; elif [ ! -e {o}/filled ]; then dd if=/dev/zero of={d}/filler bs=1M count=64 2>/dev/null; touch {o}/filled; fi; echo $ORCH_TASK_ID > t$ORCH_TASK_ID.txt",
        o = out.display(),
        d = disk.display()
    );
    let script = format!(
        r#"set -e
mount -t tmpfs -o size=24m tmpfs {d}
export HOME={d} XDG_DATA_HOME={d}/data XDG_CONFIG_HOME={d}/config
mkdir {d}/repo && cd {d}/repo
git init -q -b main && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m init
{orch} init > /dev/null
{orch} task add one > /dev/null && {orch} task add two > /dev/null
set +e
(while [ ! -e {o}/filled ]; do sleep 0.05; done; sleep 2; rm -f {d}/filler) &
{orch} run --agent-cmd '{agent}' --max-attempts 1 -c run.store_patience=60s -c policy.quota_backoff=1s > {o}/stdout 2> {o}/stderr
echo $? > {o}/rc
{orch} --json task list > {o}/tasks.json
{orch} --json events > {o}/events.json
"#,
        d = disk.display(),
        o = out.display(),
        orch = env!("CARGO_BIN_EXE_orch"),
    );
    let ran = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .output()
        .unwrap();
    assert!(ran.status.success(), "the scenario could not run: {ran:?}");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    let (stderr, events) = (read("stderr"), read("events.json"));
    assert!(
        out.join("filled").exists(),
        "the agent never filled the disk"
    );
    assert_eq!(read("rc").trim(), "0", "{stderr}");
    let tasks: Value = serde_json::from_str(&read("tasks.json")).unwrap();
    let statuses: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "done"], "{stderr}");
    assert!(
        events.contains("no space left on device (ENOSPC)"),
        "{events}"
    );
    for wrong in [
        "not found on PATH",
        "held the write lock",
        "held its write lock",
    ] {
        assert!(!stderr.contains(wrong), "{wrong}: {stderr}");
        assert!(!events.contains(wrong), "{wrong}: {events}");
    }
}

/// Diagnostics that cannot be written (stderr on a full disk: `/dev/full`) are
/// dropped, never a panic: the exit code is the command's own.
#[test]
fn an_unwritable_stderr_never_panics() {
    let s = Sandbox::new(ORCH);
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let refused = s
        .cmd(&["task", "move", "999", "done"])
        .stderr(full())
        .status()
        .unwrap();
    assert_eq!(refused.code(), Some(2), "a refusal, not a panic");
    s.ok(&["task", "add", "one"]);
    let run = s
        .cmd(&["run", "--agent-cmd", "echo x > x.txt"])
        .stdout(full())
        .stderr(full())
        .status()
        .unwrap();
    assert_eq!(run.code(), Some(0));
    assert_eq!(s.status(1).as_deref(), Some("done"));
}
