//! How work lands, through the real binary and real git: one integration line across
//! runs, `run.finish` and `orch land` (a checkout never touched unless clean and asked,
//! a target that moved on merged and validated first, pushes never forced), history
//! people can read whatever `GIT_*` the caller has set, and a run with nothing to claim
//! that creates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use orch_testkit::{Sandbox, git};
use serde_json::Value;

/// A repository whose own identity is Ada's, with orch set up and its `orch.toml`
/// committed.
fn sandbox() -> Sandbox {
    let s = Sandbox::empty(env!("CARGO_BIN_EXE_orch"));
    std::fs::create_dir(s.repo()).unwrap();
    s.git(&["init", "-q", "-b", "main"]);
    s.git(&["config", "user.name", "Ada Lovelace"]);
    s.git(&["config", "user.email", "ada@example.com"]);
    s.git(&["commit", "-q", "--allow-empty", "-m", "init"]);
    s.ok(&["init"]);
    s.git(&["add", "orch.toml"]);
    s.git(&["commit", "-q", "-m", "Configure orch"]);
    s
}

/// Where `rev` points.
fn rev(s: &Sandbox, rev: &str) -> String {
    s.git(&["rev-parse", rev])
}

/// Commits `file` on `branch` the way a person would, in a checkout of their own,
/// which is then removed: `branch` moves on and no worktree has it checked out.
fn commit_on(s: &Sandbox, branch: &str, file: &str) {
    let wt = s.dir().join("elsewhere");
    s.git(&["worktree", "add", "-q", wt.to_str().unwrap(), branch]);
    std::fs::write(wt.join(file), "by hand\n").unwrap();
    git(&wt, &["add", file]);
    git(&wt, &["commit", "-q", "-m", &format!("Add {file}")]);
    s.git(&["worktree", "remove", wt.to_str().unwrap()]);
}

/// An agent that writes `t<id>.txt`; a task whose body says `needs N` fails unless
/// `tN.txt` is in its worktree.
const AGENT: &str = "n=$(sed -n 's/.*needs \\([0-9]*\\).*/\\1/p' \"$ORCH_PROMPT_FILE\" | head -1); if [ -n \"$n\" ] && [ ! -e t$n.txt ]; then echo \"t$n.txt is missing\"; exit 1; fi; echo $ORCH_TASK_ID > t$ORCH_TASK_ID.txt";

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", "--agent-cmd", AGENT, "--max-attempts", "1"];
    a.extend_from_slice(extra);
    a
}

#[test]
fn one_line_across_runs_reads_like_history_and_lands_on_main() {
    let s = sandbox();
    for t in ["Add the lexer", "Add the parser", "Write the docs"] {
        s.add(t, &[]);
    }
    s.ok(&run_args(&[]));
    // Run B builds on run A's work: task 4 needs task 1's file.
    s.add("Use the lexer", &["--after", "1", "--body", "needs 1"]);
    s.ok(&run_args(&[]));
    assert_eq!(s.statuses(), ["done"; 4]);
    let files = git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]);
    assert_eq!(files, "orch.toml\nt1.txt\nt2.txt\nt3.txt\nt4.txt");
    let log = git(
        &s.repo(),
        &["log", "--format=%an <%ae> %cn %s", "orch/integration"],
    );
    assert!(
        log.contains("Ada Lovelace <ada@example.com> Ada Lovelace Merge task-4: Use the lexer")
            && log.contains("Ada Lovelace <ada@example.com> Ada Lovelace Add the lexer"),
        "{log}"
    );
    assert!(!log.contains("Mallory") && !log.contains("orch:"), "{log}");
    let trailers = git(
        &s.repo(),
        &["log", "-1", "--format=%(trailers)", "orch/integration^2"],
    );
    assert!(
        trailers.starts_with("Orch-Task: task-4\nOrch-Run: r"),
        "{trailers}"
    );
    // The user works on another branch; main is checked out nowhere.
    git(&s.repo(), &["switch", "-q", "-c", "feature"]);
    std::fs::write(s.repo().join("notes.txt"), "mine\n").unwrap();
    let status = s.json(&["-c", "run.base=main", "status"]);
    assert_eq!(status["target"]["name"], "main");
    assert_eq!(status["target"]["ahead"].as_u64(), Some(8), "{status}");
    assert_eq!(status["target"]["tasks"].as_array().unwrap().len(), 4);
    s.ok(&["-c", "run.base=main", "land"]);
    assert_eq!(rev(&s, "main"), rev(&s, "orch/integration"));
    assert_eq!(git(&s.repo(), &["branch", "--show-current"]), "feature");
    assert_eq!(git(&s.repo(), &["status", "--porcelain"]), "?? notes.txt");
    assert!(
        !s.repo().join("t1.txt").exists(),
        "the user's files were touched"
    );
    let text = String::from_utf8(s.ok(&["-c", "run.base=main", "status"]).stdout).unwrap();
    assert!(text.contains("main holds all of it"), "{text}");
}

#[test]
fn a_checked_out_target_moves_only_when_clean() {
    let s = sandbox();
    s.add("One", &[]);
    let before = rev(&s, "main");
    let o = s.ok(&run_args(&["-c", "run.finish=fast-forward"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("merge --ff-only"), "{err}");
    assert_eq!(rev(&s, "main"), before, "a checked-out main was moved");
    // Dirty (a tracked file changed): refused, nothing touched.
    let toml = std::fs::read_to_string(s.repo().join("orch.toml")).unwrap();
    std::fs::write(s.repo().join("orch.toml"), format!("{toml}# wip\n")).unwrap();
    // Nothing moved: exit 4, and JSON says what did not land and why.
    let o = s.run(&["land", "--update-checkout"]);
    assert_eq!(o.status.code(), Some(4));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("not landed: ") && out.contains("uncommitted changes"),
        "{out}"
    );
    let o = s.run(&["--json", "land", "--update-checkout"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["landed"], serde_json::json!([]));
    assert!(
        j["not_landed"][0]
            .as_str()
            .unwrap()
            .contains("uncommitted changes"),
        "{j}"
    );
    assert_eq!(rev(&s, "main"), before);
    assert!(!s.repo().join("t1.txt").exists());
    std::fs::write(s.repo().join("orch.toml"), toml).unwrap();
    // An untracked file where the fast-forward writes one is in the way, as it is for
    // `git merge --ff-only`.
    std::fs::write(s.repo().join("t1.txt"), "mine\n").unwrap();
    let o = s.run(&["land", "--update-checkout"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(rev(&s, "main"), before);
    std::fs::remove_file(s.repo().join("t1.txt")).unwrap();
    // Clean but for an untracked file the fast-forward leaves alone: told to leave the
    // files, orch prints the command; else the ref and the files move.
    std::fs::write(s.repo().join("scratch.txt"), "mine\n").unwrap();
    let o = s.run(&["land", "--no-update-checkout"]);
    assert_eq!(o.status.code(), Some(4));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("merge --ff-only"), "{out}");
    assert_eq!(rev(&s, "main"), before);
    let o = s.ok(&["land"]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("main"), "says what it did: {out}");
    assert_eq!(rev(&s, "main"), rev(&s, "orch/integration"));
    assert!(s.repo().join("t1.txt").exists());
    assert_eq!(git(&s.repo(), &["status", "--porcelain"]), "?? scratch.txt");
}

#[test]
fn a_base_that_moved_on_is_merged_validated_and_landed() {
    let s = sandbox();
    git(&s.repo(), &["switch", "-q", "-c", "feature"]);
    let release = s.dir().join("release");
    let started = s.dir().join("started");
    // Task "Wait" holds its agent until the test has moved main on.
    let agent = format!(
        "if [ \"$ORCH_TASK_TITLE\" = Wait ]; then touch {}; while [ ! -e {} ]; do sleep 0.1; done; fi; {AGENT}",
        started.display(),
        release.display()
    );
    let args = |finish: &'static str| {
        vec![
            "run".to_owned(),
            "--agent-cmd".into(),
            agent.clone(),
            "-c".into(),
            "run.base=main".into(),
            "-c".into(),
            format!("run.finish={finish}"),
            "--integrate-validate".into(),
            "test ! -e broken.txt".into(),
        ]
    };
    let run = |finish: &'static str| {
        let a = args(finish);
        s.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    s.add("One", &[]);
    assert!(run("leave").status.success());
    // The user commits to main beside the line: the next run merges main in and
    // validates the merge before it builds on it, then lands on main at its end.
    commit_on(&s, "main", "user.txt");
    let (line, user_main) = (rev(&s, "orch/integration"), rev(&s, "main"));
    s.add("Two", &[]);
    assert!(run("fast-forward").status.success());
    let head = rev(&s, "main");
    assert_eq!(head, rev(&s, "orch/integration"));
    for f in ["t1.txt", "t2.txt", "user.txt"] {
        git(&s.repo(), &["cat-file", "-e", &format!("{head}:{f}")]);
    }
    git(
        &s.repo(),
        &["merge-base", "--is-ancestor", &user_main, &head],
    );
    git(&s.repo(), &["merge-base", "--is-ancestor", &line, &head]);
    // Mid-run, the user commits to main again: the finish merges it in, validates the
    // merge, and lands.
    s.add("Wait", &[]);
    let a = args("fast-forward");
    let child = s
        .cmd(&a.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the agent never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    commit_on(&s, "main", "midrun.txt");
    let moved = rev(&s, "main");
    std::fs::write(&release, "").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let head = rev(&s, "main");
    assert_eq!(head, rev(&s, "orch/integration"));
    git(&s.repo(), &["merge-base", "--is-ancestor", &moved, &head]);
    git(&s.repo(), &["cat-file", "-e", &format!("{head}:t3.txt")]);
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    for what in [
        "merged the base (main)",
        "merged the target main",
        "fast-forwarded to the validated",
    ] {
        assert!(events.contains(what), "{what}: {events}");
    }
    // A base whose merge fails the integration gate stops the run before it claims.
    s.add("On the line", &[]);
    assert!(run("leave").status.success());
    commit_on(&s, "main", "broken.txt");
    s.add("Five", &[]);
    let o = run("leave");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("fails the integration gate"), "{err}");
    assert_eq!(s.statuses()[4], "backlog");
}

#[test]
fn a_push_never_overwrites_what_someone_else_pushed() {
    let s = sandbox();
    let remote = s.dir().join("remote.git");
    git(s.dir(), &["init", "-q", "--bare", remote.to_str().unwrap()]);
    git(
        &s.repo(),
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&s.repo(), &["push", "-q", "origin", "main"]);
    s.add("One", &[]);
    s.ok(&run_args(&["-c", "run.finish=push"]));
    assert_eq!(
        git(&remote, &["rev-parse", "orch/integration"]),
        rev(&s, "orch/integration")
    );
    // Someone else pushes to the line first.
    let other = s.dir().join("other");
    git(
        s.dir(),
        &[
            "clone",
            "-q",
            "-b",
            "orch/integration",
            remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    std::fs::write(other.join("theirs.txt"), "theirs\n").unwrap();
    git(&other, &["add", "theirs.txt"]);
    git(
        &other,
        &[
            "-c",
            "user.name=B",
            "-c",
            "user.email=b@b",
            "commit",
            "-q",
            "-m",
            "theirs",
        ],
    );
    git(&other, &["push", "-q", "origin", "orch/integration"]);
    let theirs = git(&other, &["rev-parse", "HEAD"]);
    s.add("Two", &[]);
    let o = s.run(&run_args(&["-c", "run.finish=push"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refused") && err.contains("orch land"),
        "{err}"
    );
    assert_eq!(git(&remote, &["rev-parse", "orch/integration"]), theirs);
    assert_eq!(s.statuses(), ["done", "done"]);
}

#[test]
fn a_run_with_nothing_to_claim_creates_nothing() {
    let s = sandbox();
    s.add("Broken", &["--body", "needs 9"]);
    let o = s.run(&run_args(&[]));
    assert_eq!(o.status.code(), Some(3));
    let runs = s.json(&["run", "list"]).as_array().unwrap().len();
    let branches = git(&s.repo(), &["branch", "--list", "orch/*"]);
    let o = s.ok(&run_args(&[]));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("nothing to claim")
            && out.contains("failed: task-1")
            && out.contains("orch task retry task-1"),
        "{out}"
    );
    assert_eq!(s.json(&["run", "list"]).as_array().unwrap().len(), runs);
    assert_eq!(git(&s.repo(), &["branch", "--list", "orch/*"]), branches);
    let j = s.json(&run_args(&[]));
    assert_eq!(j["nothing_to_claim"], true);
    assert_eq!(j["failed"][0], "task-1");
}

fn bytes_under(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => bytes_under(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Retention runs at the end of every run: over 30 runs the artifacts stay under
/// `artifacts.max_bytes`, the newest `keep_runs` runs stay, and a failed attempt stays
/// twice as long as a successful one.
#[test]
fn retention_keeps_the_artifacts_in_budget_over_thirty_runs() {
    let s = sandbox();
    let noisy = format!("head -c 3000 /dev/zero | tr '\\0' x; {AGENT}");
    let limits = [
        "-c",
        "artifacts.max_bytes=64KiB",
        "-c",
        "artifacts.keep_runs=5",
    ];
    let root = s.repo().join(".orch/artifacts");
    let mut failed_run = String::new();
    for i in 1..=30 {
        let body = if i == 25 { "needs 99" } else { "fine" };
        s.add(&format!("Task {i}"), &["--body", body]);
        let mut a = vec!["run", "--agent-cmd", &noisy, "--max-attempts", "1"];
        a.extend_from_slice(&limits);
        let o = s.run(&a);
        assert_eq!(
            o.status.code(),
            Some(if i == 25 { 3 } else { 0 }),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        if i == 25 {
            failed_run = s.json(&["run", "list"])[0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        let used = bytes_under(&root);
        assert!(used <= 64 * 1024, "run {i}: {used} bytes of artifacts");
    }
    let mut runs: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    runs.sort();
    let newest: Vec<String> = s.json(&["run", "list"]).as_array().unwrap()[..5]
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    for r in &newest {
        assert!(runs.contains(r), "the newest runs stay: {runs:?}");
    }
    assert!(
        runs.contains(&failed_run),
        "the failure stays longer: {runs:?}"
    );
    assert_eq!(runs.len(), 6, "{runs:?}");
    let mut a = vec!["--json", "cleanup", "--artifacts"];
    a.extend_from_slice(&limits);
    let report: Value = serde_json::from_slice(&s.ok(&a).stdout).unwrap();
    assert_eq!(report["removed"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["kept_runs"].as_array().unwrap().len(), 6, "{report}");
    // A tighter budget at cleanup: successes go before the failure.
    let tight = ["cleanup", "--artifacts", "-c", "artifacts.max_bytes=10KiB"];
    let out = String::from_utf8(s.ok(&tight).stdout).unwrap();
    assert!(out.contains("removed ") && out.contains("freed"), "{out}");
    assert!(root.join(&failed_run).exists(), "{out}");
    assert!(bytes_under(&root) <= 10 * 1024);
}

/// `run.integration_depth = 3`: candidates validated at once, a bad one failed and
/// the ones above it stacked again, exactly the good work on the line; and a flaky gate
/// (`validate.integration_retries`) rerun, journaled and shown in `run show`.
#[test]
fn a_speculative_stack_lands_only_the_good_work_and_reruns_flaky_gates() {
    stack_lands_only_good_work(&["run.integration=fixed", "run.integration_depth=3"], true);
}

/// `run.integration_batch = 4`: the batch with the bad task fails and is bisected to
/// it; the rest lands.
#[test]
fn a_failing_batch_is_bisected_and_the_rest_lands() {
    stack_lands_only_good_work(&["run.integration_batch=4"], false);
}

/// The default, `run.integration = "auto"`, with two gate slots: a stack of batches
/// sized by the run's verdicts; what it chose, and why, is journaled and shown as the
/// run goes.
#[test]
fn auto_stacks_batches_and_lands_only_the_good_work() {
    let err = stack_lands_only_good_work(&["validate.integration_slots=2"], true);
    assert!(
        err.contains("Queue") && err.contains("2 integration gates at once"),
        "{err}"
    );
}

/// Runs five tasks, the second bad, with a gate that fails each commit's first run;
/// returns what the run printed on stderr.
fn stack_lands_only_good_work(settings: &[&str], check_stacked: bool) -> String {
    let s = sandbox();
    for i in 1..=5 {
        let title = if i == 2 {
            "bad two".to_owned()
        } else {
            format!("good {i}")
        };
        s.add(&title, &[]);
    }
    let agent = "case \"$ORCH_TASK_TITLE\" in bad*) echo x > bad.txt;; esac; echo $ORCH_TASK_ID > t$ORCH_TASK_ID.txt";
    let marks = s.dir().join("marks");
    std::fs::create_dir(&marks).unwrap();
    // Fails the first run on each commit, then passes (unless the candidate is bad).
    let gate = format!(
        "test ! -e bad.txt && {{ c=$(git rev-parse HEAD); test -e {m}/$c || {{ touch {m}/$c; exit 1; }}; }}",
        m = marks.display()
    );
    let o = s.run(
        &[
            "run",
            "--agent-cmd",
            agent,
            "--max-attempts",
            "1",
            "--concurrency",
            "5",
            "-c",
            "validate.integration_retries=1",
            "--integrate-validate",
            &gate,
        ]
        .into_iter()
        .chain(settings.iter().flat_map(|c| ["-c", *c]))
        .collect::<Vec<_>>(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(
        s.statuses(),
        ["done", "failed", "done", "done", "done"],
        "{err}"
    );
    let files = git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]);
    assert_eq!(files, "orch.toml\nt1.txt\nt3.txt\nt4.txt\nt5.txt");
    let run = s.json(&["run", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let show = s.json(&["run", "show", &run]);
    assert!(!show["flaky"].as_array().unwrap().is_empty(), "{show}");
    let text = String::from_utf8(s.ok(&["run", "show", &run]).stdout).unwrap();
    assert!(text.contains("flaky: task-"), "{text}");
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    assert!(events.contains("attempt.gate_rerun"), "{events}");
    assert!(events.contains("run.integration_shaped"), "{events}");
    // Each gate rerun, flaky pass and pass implied by a batch's top names its task and
    // attempt, so the task's own log (`orch events --task`, its page) shows it.
    let about_attempts: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| {
            let kind = e["kind"].as_str().unwrap();
            [
                "attempt.gate_rerun",
                "attempt.flaky",
                "attempt.integration_implied",
            ]
            .contains(&kind)
        })
        .collect();
    assert!(!about_attempts.is_empty(), "{events}");
    for e in &about_attempts {
        assert!(e["task_id"].is_i64() && e["attempt"].is_i64(), "{e}");
        let task = e["task_id"].to_string();
        let own = String::from_utf8(s.ok(&["--json", "events", "--task", &task]).stdout).unwrap();
        assert!(own.contains(e["kind"].as_str().unwrap()), "{own}");
    }
    if !check_stacked {
        return err.into_owned();
    }
    // Some candidate was merged onto another's merge: the stack was deeper than one.
    let merges: Vec<(String, String)> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "attempt.merge_written")
        .map(|e| {
            let p = &e["payload"];
            (
                p["commit"].as_str().unwrap().to_owned(),
                p["onto"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        merges
            .iter()
            .any(|(_, onto)| merges.iter().any(|(c, _)| c == onto)),
        "{merges:?}"
    );
    err.into_owned()
}

/// A lock an update of the shared line left when its process was killed (another run
/// on the line) does not stop the next run from landing: no process holds it.
#[test]
fn a_lock_a_killed_run_left_on_the_line_does_not_block_the_next() {
    let s = sandbox();
    s.add("First", &[]);
    s.ok(&run_args(&[]));
    let lock = s.repo().join(".git/refs/heads/orch/integration.lock");
    std::fs::write(&lock, "").unwrap();
    s.add("Second", &[]);
    let o = s.run(&run_args(&["--new"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(s.statuses(), ["done", "done"]);
    assert!(!lock.exists());
    let files = git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]);
    assert_eq!(files, "orch.toml\nt1.txt\nt2.txt");
}

/// A run that crashed while another run went on landing work on the shared line is
/// resumed onto the moved line (not halted as if the ref were moved outside orch):
/// its finished agent's work is merged onto the other run's and lands.
#[test]
fn a_run_resumed_after_another_run_moved_the_line_builds_on_it() {
    let s = sandbox();
    s.add("First", &[]);
    let crashed = s
        .cmd(&run_args(&[]))
        .env("ORCH_CRASH_AT", "agent-exit-recorded")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the crash point was not reached");
    let base = rev(&s, "orch/integration");
    s.add("Second", &[]);
    // Beside the interrupted run, another lands task 2 on the line.
    let o = s.run(&run_args(&["--new"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let moved = rev(&s, "orch/integration");
    assert_ne!(moved, base);
    let o = s.run(&["run", "--resume"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("moved on to") && err.contains("builds on it"),
        "{err}"
    );
    assert_eq!(s.statuses(), ["done", "done"]);
    let files = git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]);
    assert_eq!(files, "orch.toml\nt1.txt\nt2.txt");
    git(
        &s.repo(),
        &["merge-base", "--is-ancestor", &moved, "orch/integration"],
    );
}

/// An agent moves the integration line onto a commit of its own: the run halts, and
/// then `orch status` says the line is not validated and names its last validated
/// commit, `orch land` and `orch run` refuse it (exit 2), and `orch land --reset-line`
/// puts the line back by compare-and-swap, keeping the agent's commit under
/// `refs/orch/undone/`; after that the line lands as usual.
#[test]
fn a_line_an_agent_moved_is_reported_refused_and_put_back() {
    let s = sandbox();
    s.add("One", &[]);
    s.ok(&run_args(&[]));
    let validated = rev(&s, "orch/integration");
    s.add("Hijack", &[]);
    // It pins its commit where orch pins merge candidates, too: a pin vouches for
    // nothing, so the run still halts instead of building on it.
    let hijack = "echo evil > evil.txt; git add evil.txt; git -c user.name=a -c user.email=a@a commit -qm evil; git update-ref \"refs/orch/$ORCH_RUN_ID/candidates/evil\" HEAD; git update-ref refs/heads/orch/integration HEAD";
    let out = s.run(&["run", "--agent-cmd", hijack, "--max-attempts", "1"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("moved outside orch"), "{stderr}");
    let evil = rev(&s, "orch/integration");
    assert_ne!(evil, validated, "the agent did not move the line");
    let short = |c: &str| c[..10].to_owned();
    // Reported.
    let status = s.json(&["-c", "run.base=main", "status"]);
    assert_eq!(status["untrusted"]["head"], evil.as_str(), "{status}");
    assert_eq!(status["untrusted"]["last_validated"], validated.as_str());
    let text = String::from_utf8(s.ok(&["-c", "run.base=main", "status"]).stdout).unwrap();
    assert!(text.contains("NOT VALIDATED"), "{text}");
    assert!(text.contains("orch land --reset-line"), "{text}");
    // Refused: nothing lands, no run builds on it.
    let main = rev(&s, "main");
    let out = s.run(&["-c", "run.base=main", "land"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("which no orch run validated"), "{stderr}");
    assert!(stderr.contains(&short(&validated)), "{stderr}");
    assert_eq!(rev(&s, "main"), main, "main moved onto unvalidated work");
    s.add("Later", &[]);
    let out = s.run(&run_args(&[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no run builds on it"), "{stderr}");
    // Put back, with the agent's commit kept.
    let out = s.ok(&["land", "--reset-line"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("put back"), "{said}");
    assert_eq!(rev(&s, "orch/integration"), validated);
    assert_eq!(rev(&s, &format!("refs/orch/undone/line-{evil}")), evil);
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    assert!(events.contains("line.reset"), "the reset is not journaled");
    // And the line lands again, without the agent's file.
    s.ok(&run_args(&[]));
    s.ok(&["-c", "run.base=main", "land", "--update-checkout"]);
    assert_eq!(rev(&s, "main"), rev(&s, "orch/integration"));
    let files = git(&s.repo(), &["ls-tree", "--name-only", "main"]);
    assert!(!files.contains("evil.txt"), "{files}");
}

/// A change that cannot be made until another task's lands (nothing on the board says
/// so): its agent gives up while the other is in flight, its retry waits for that
/// work, and runs on the head that has it. With one attempt allowed, both land in
/// the same run: the failure was the stale head's, not the task's.
#[test]
fn a_dependent_change_lands_in_the_same_run_with_one_attempt() {
    let s = sandbox();
    s.add("Add the lexer", &[]);
    s.add("Use the lexer", &["--body", "needs 1"]);
    // The lexer's agent takes a moment, so the second task fails while it is in flight.
    let agent = format!("[ \"$ORCH_TASK_ID\" = 1 ] && sleep 1; {AGENT}");
    let out = s.run(&[
        "run",
        "--agent-cmd",
        &agent,
        "--max-attempts",
        "1",
        "--concurrency",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(s.statuses(), ["done", "done"], "{stderr}");
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    assert!(events.contains("run.retry_waits"), "{events}");
    let files = git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]);
    assert!(
        files.contains("t1.txt") && files.contains("t2.txt"),
        "{files}"
    );
    // The retry was told what landed since its first attempt, and what it changed.
    let runs = s.repo().join(".orch/artifacts");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let prompt = std::fs::read_to_string(run.join("2/2/prompt.md")).unwrap();
    assert!(
        prompt.contains("## What landed since the last attempt")
            && prompt.contains("- #1 Add the lexer (t1.txt)"),
        "{prompt}"
    );
}

/// A tree is gated once: with the same commands in both gates, a merge onto the
/// attempt's own base (nothing landed meanwhile) has the tree its worker gate passed,
/// so the integration gate does not run (`attempt.gate_reused`). A changed command is
/// another gate: its verdict is not reused. `validate.reuse = false` gates every time.
#[test]
fn a_tree_that_passed_a_gate_is_not_gated_again_by_the_same_commands() {
    let s = sandbox();
    let gate = "echo gate-ran; test -e t1.txt -o -e t2.txt -o -e t3.txt";
    let gated = |task: u32| -> Vec<String> {
        let runs = s.repo().join(".orch/artifacts");
        let mut logs = Vec::new();
        for run in std::fs::read_dir(&runs).unwrap().flatten() {
            let dir = run.path().join(format!("{task}/1"));
            for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                logs.push(f.file_name().to_string_lossy().into_owned());
            }
        }
        logs.sort();
        logs
    };
    let events = || String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    s.add("One", &[]);
    s.ok(&run_args(&[
        "--validate",
        gate,
        "--integrate-validate",
        gate,
    ]));
    let reused: Vec<String> = events()
        .lines()
        .filter(|l| l.contains("attempt.gate_reused"))
        .map(str::to_owned)
        .collect();
    assert_eq!(reused.len(), 1, "{reused:?}");
    assert!(
        reused[0].contains("task-1-1's integration gate was not run"),
        "{reused:?}"
    );
    assert!(
        gated(1).contains(&"worker-1.log".to_owned()),
        "{:?}",
        gated(1)
    );
    assert!(
        !gated(1).contains(&"integration-1.log".to_owned()),
        "{:?}",
        gated(1)
    );
    // Another integration command: the worker's pass does not stand for it.
    s.add("Two", &[]);
    let other = format!("{gate}; echo and more");
    s.ok(&run_args(&[
        "--validate",
        gate,
        "--integrate-validate",
        &other,
    ]));
    assert!(
        gated(2).contains(&"integration-1.log".to_owned()),
        "{:?}",
        gated(2)
    );
    // Reuse off: both gates run, though the commands match.
    s.add("Three", &[]);
    s.ok(&run_args(&[
        "--validate",
        gate,
        "--integrate-validate",
        gate,
        "-c",
        "validate.reuse=false",
    ]));
    assert!(
        gated(3).contains(&"integration-1.log".to_owned()),
        "{:?}",
        gated(3)
    );
    let count = events().matches("attempt.gate_reused").count();
    assert_eq!(count, 1, "only task 1's gate was reused");
    // Standing in, the integration gate is the same worker gate's one run.
    s.add("Four", &[]);
    s.ok(&run_args(&[
        "--validate",
        gate,
        "--integrate-validate",
        gate,
        "-c",
        "validate.integration_stands_in=true",
    ]));
    let logs: Vec<String> = gated(4)
        .into_iter()
        .filter(|l| l.ends_with("-1.log"))
        .collect();
    assert_eq!(logs, ["integration-1.log"]);
    assert!(events().contains("the integration gate on its merge commit stands in"));
}

/// An attempt that writes a file from an old view undoes another task's landed change
/// (a version bump taken back): it fails as `reverts-landed-work`, naming the task and
/// the lines, and its retry, told what to keep, keeps both changes. One that, told,
/// undoes the same work again meant it: it lands, journaled as `attempt.reverts`.
#[test]
fn an_attempt_that_undoes_landed_work_is_caught_and_its_retry_keeps_both() {
    let s = sandbox();
    std::fs::write(s.repo().join("version.txt"), "version = 1.0\n").unwrap();
    git(&s.repo(), &["add", "version.txt"]);
    git(&s.repo(), &["commit", "-q", "-m", "Add the version"]);
    s.add("Bump", &[]);
    s.ok(&["run", "--agent-cmd", "sed -i 's/1.0/2.0/' version.txt"]);
    // From its old view (1.0), the first attempt writes the whole file; told, the
    // retry adds its line to the file as it is.
    s.add("Feature", &["--after", "1"]);
    let agent = "if [ \"$ORCH_ATTEMPT\" = 1 ]; then printf 'version = 1.0\\nfeature = on\\n' > version.txt; else echo 'feature = on' >> version.txt; fi";
    let out = s.run(&[
        "run",
        "--agent-cmd",
        agent,
        "--max-attempts",
        "2",
        "-c",
        "policy.backoff=0s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    let failed = events
        .lines()
        .find(|l| l.contains("reverts-landed-work"))
        .expect("the undo was caught");
    assert!(
        failed.contains("task-1's change to version.txt line 1 (puts back what it replaced)"),
        "{failed}"
    );
    let landed = git(&s.repo(), &["show", "orch/integration:version.txt"]);
    assert_eq!(landed, "version = 2.0\nfeature = on");
    let run = std::fs::read_dir(s.repo().join(".orch/artifacts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("2/2/prompt.md").exists())
        .unwrap();
    let prompt = std::fs::read_to_string(run.join("2/2/prompt.md")).unwrap();
    assert!(
        prompt.contains("Keep that work:\n- task-1's change to version.txt line 1"),
        "{prompt}"
    );
    // Told, and done again: meant. It lands, and the undo is on the record.
    s.add("Downgrade", &[]);
    let again = "printf 'version = 1.0\\nfeature = on\\n' > version.txt";
    s.ok(&["run", "--agent-cmd", again, "-c", "policy.backoff=0s"]);
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    assert!(events.contains("attempt.reverts"), "{events}");
    assert!(events.contains("taken as meant"), "{events}");
    assert_eq!(
        git(&s.repo(), &["show", "orch/integration:version.txt"]),
        "version = 1.0\nfeature = on"
    );
}

/// A task that says it reverts another lands its undo on the first attempt, on the
/// record; `--reverts` names a task that exists.
#[test]
fn a_task_that_declares_a_revert_lands_it_at_once() {
    let s = sandbox();
    s.add("Add a flag", &[]);
    s.ok(&["run", "--agent-cmd", "echo 'flag = on' > flags.txt"]);
    let bad = s.run(&["task", "add", "Undo", "--reverts", "9"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--reverts 9: task 9 does not exist"),
        "{stderr}"
    );
    s.add("Take the flag out", &["--reverts", "1"]);
    let shown = String::from_utf8(s.ok(&["task", "show", "2"]).stdout).unwrap();
    assert!(shown.contains("Reverts: task-1"), "{shown}");
    s.ok(&["run", "--agent-cmd", "rm flags.txt", "--max-attempts", "1"]);
    let events = String::from_utf8(s.ok(&["--json", "events"]).stdout).unwrap();
    assert!(!events.contains("reverts-landed-work"), "{events}");
    let reverts = events
        .lines()
        .find(|l| l.contains("attempt.reverts"))
        .expect("the undo is on the record");
    assert!(
        reverts.contains("its task says it reverts that work"),
        "{reverts}"
    );
    // `orch run show` flags it, in text and in JSON.
    let runs = s.json(&["run", "list"]);
    let shows: Vec<(String, Value)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap();
            let text = String::from_utf8(s.ok(&["run", "show", id]).stdout).unwrap();
            (text, s.json(&["run", "show", id]))
        })
        .collect();
    let (text, json) = shows
        .iter()
        .find(|(_, j)| !j["reverts"].as_array().unwrap().is_empty())
        .expect("one run flags the undo");
    assert!(
        text.contains("reverts: task-2-1 undid task-1's change to flags.txt line 1 (removes what it added) (its task says it reverts that work)"),
        "{text}"
    );
    assert_eq!(json["reverts"][0]["undone"][0]["file"], "flags.txt");
    let files = git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]);
    assert!(!files.contains("flags.txt"), "{files}");
}
