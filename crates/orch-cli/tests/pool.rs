//! The worktree pool end to end, through the `orch` binary on real repositories: a
//! reused worktree keeps its caches and nothing else an earlier attempt left,
//! `worktrees.include` and `worktrees.setup` run, concurrent attempts get their own
//! `ORCH_PORT`, a kill while a worktree is being provisioned leaks nothing, and
//! `orch cleanup --pool` leaves nothing. The caller's `GIT_*` variables are hostile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use orch_testkit::{Sandbox, git};
use serde_json::Value;

/// A repository that ignores `target/`, `.env` and `.setup-count`, with orch set up
/// and `worktrees` configured by `config` (TOML), committed.
fn sandbox(config: &str) -> Sandbox {
    let s = Sandbox::repo_only(env!("CARGO_BIN_EXE_orch"));
    std::fs::write(s.repo().join(".gitignore"), "target/\n.env\n.setup-count\n").unwrap();
    s.git(&["add", "."]);
    s.git(&["commit", "-q", "-m", "Ignore build output"]);
    s.ok(&["init"]);
    std::fs::write(s.repo().join("orch.toml"), config).unwrap();
    s.git(&["add", "orch.toml"]);
    s.git(&["commit", "-q", "-m", "Configure orch"]);
    s
}

/// A file of the integration line.
fn landed(s: &Sandbox, path: &str) -> String {
    s.git(&["show", &format!("orch/integration:{path}")])
}

/// The pool, as `orch pool --json` lists it.
fn pooled(s: &Sandbox) -> Vec<Value> {
    s.json(&["pool"]).as_array().unwrap().clone()
}

/// Worktrees git knows, the main checkout among them.
fn registered_worktrees(s: &Sandbox) -> usize {
    s.git(&["worktree", "list", "--porcelain"])
        .lines()
        .filter(|l| l.starts_with("worktree "))
        .count()
}

/// Each task's agent runs the shell snippet its title names.
const AGENT: &str = r#"case "$ORCH_TASK_TITLE" in
  first) mkdir -p target && echo built > target/cache.bin && echo one > one.txt ;;
  second) { ls target/cache.bin; test -e gate-scratch.txt || echo no-scratch; cat README.md .env .setup-count; } > seen.txt ;;
  port*) echo "$ORCH_SLOT $ORCH_PORT" > "$ORCH_TASK_TITLE.txt"; sleep 1 ;;
esac"#;

/// The worker gate leaves an untracked file and a change to a tracked one behind.
const GATE: &str = "echo scratch > gate-scratch.txt && echo changed >> README.md";

#[test]
fn a_reused_worktree_keeps_its_caches_and_nothing_else() {
    let s = sandbox(
        "[run]\nconcurrency = 1\n[worktrees]\ninclude = [\".env\"]\nsetup = [\"echo once >> .setup-count\"]\n",
    );
    std::fs::write(s.repo().join(".env"), "SECRET=from-the-user\n").unwrap();
    s.ok(&["task", "add", "first"]);
    s.ok(&["task", "add", "second"]);
    s.ok(&["run", "--agent-cmd", AGENT, "--validate", GATE]);
    let seen = landed(&s, "seen.txt");
    // The ignored build cache stayed warm; the gate's untracked file and its change
    // to a tracked file did not.
    assert!(seen.contains("target/cache.bin"), "{seen}");
    assert!(seen.contains("no-scratch"), "{seen}");
    assert!(!seen.contains("changed"), "{seen}");
    // .env came from the user's checkout; setup ran once, when the worktree was made.
    assert!(seen.contains("SECRET=from-the-user"), "{seen}");
    assert_eq!(seen.matches("once").count(), 1, "{seen}");
    // One attempt worktree served both tasks, and it waits in the pool.
    let pool = pooled(&s);
    let attempts: Vec<&Value> = pool.iter().filter(|p| p["kind"] == "attempt").collect();
    assert_eq!(attempts.len(), 1, "{pool:?}");
    assert!(pool.iter().all(|p| p["state"] == "free"), "{pool:?}");
    let log = std::fs::read_dir(s.repo().join(".orch/artifacts"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("1/1/setup-1.log");
    assert!(std::fs::read_to_string(&log).unwrap().contains("echo once"));
    // A second run reuses it too: no new worktree.
    s.ok(&["task", "add", "port-a"]);
    s.ok(&["run", "--agent-cmd", AGENT]);
    assert_eq!(pooled(&s).len(), pool.len());
    // The user's checkout is as it was.
    assert_eq!(git(&s.repo(), &["status", "--porcelain"]), "");
    // orch cleanup keeps the pool; --pool removes it and says how much it freed.
    s.ok(&["cleanup"]);
    assert_eq!(pooled(&s).len(), pool.len());
    // --dry-run says what --pool would remove, and removes nothing.
    let preview = s.json(&["cleanup", "--pool", "--dry-run"]);
    let would: Vec<&str> = preview["pool"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert_eq!(would.len(), pool.len(), "{preview}");
    assert!(would.iter().all(|p| std::path::Path::new(p).is_dir()));
    assert_eq!(pooled(&s).len(), pool.len());
    let text = String::from_utf8(s.ok(&["cleanup", "--pool", "--dry-run"]).stdout).unwrap();
    assert!(text.contains("would remove pooled worktree"), "{text}");
    let out = s.json(&["cleanup", "--pool"]);
    assert_eq!(out["pool"]["removed"].as_array().unwrap().len(), pool.len());
    assert!(out["pool"]["freed_bytes"].as_u64().unwrap() > 0, "{out}");
    assert!(pooled(&s).is_empty());
    assert_eq!(registered_worktrees(&s), 1);
    let root = s.dir().join("data/orch/worktrees");
    let left: Vec<_> = walk(&root);
    assert!(left.is_empty(), "left under the worktree root: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn concurrent_attempts_get_their_own_slots_and_ports() {
    let s = sandbox("[run]\nconcurrency = 3\n[worktrees]\nport_base = 42000\n");
    for t in ["port-a", "port-b", "port-c"] {
        s.ok(&["task", "add", t]);
    }
    // The gate sees the slot's port too.
    let gate = "test -n \"$ORCH_PORT\" && test -s \"$ORCH_TASK_TITLE.txt\"";
    s.ok(&["run", "--agent-cmd", AGENT, "--validate", gate]);
    let mut seen: Vec<(u32, u32)> = ["port-a", "port-b", "port-c"]
        .iter()
        .map(|t| {
            let line = landed(&s, &format!("{t}.txt"));
            let (slot, port) = line.split_once(' ').unwrap();
            (slot.parse().unwrap(), port.parse().unwrap())
        })
        .collect();
    seen.sort();
    seen.dedup_by_key(|(_, port)| *port);
    assert_eq!(seen.len(), 3, "ports shared: {seen:?}");
    for (slot, port) in seen {
        assert_eq!(port, 42000 + slot * 10);
    }
}

#[test]
fn a_failing_setup_is_orchs_failure_not_the_agents() {
    let s = sandbox("[worktrees]\nsetup = [\"echo no network; exit 3\"]\n");
    s.ok(&["task", "add", "first"]);
    let out = s.run(&["run", "--agent-cmd", AGENT]);
    assert!(!out.status.success());
    let events = String::from_utf8(s.ok(&["events"]).stdout).unwrap();
    assert!(events.contains("infrastructure"), "{events}");
    assert!(
        events.contains("worktrees.setup `echo no network; exit 3` failed"),
        "{events}"
    );
    // No agent ran, and the task is not failed for it.
    let tasks = s.json(&["task", "list"]);
    assert_ne!(tasks[0]["status"], "done");
    assert_ne!(tasks[0]["status"], "failed");
    assert!(
        !s.repo()
            .join(".orch/artifacts")
            .read_dir()
            .unwrap()
            .any(|r| {
                walk(&r.unwrap().path())
                    .iter()
                    .any(|p| p.ends_with("agent.log"))
            })
    );
}

#[test]
fn a_kill_while_provisioning_leaks_nothing_after_resume() {
    let s = sandbox("[run]\nconcurrency = 2\n");
    s.ok(&["task", "add", "first"]);
    s.ok(&["task", "add", "port-b"]);
    // orch aborts (as a SIGKILL would) once a pooled worktree is leased, before it
    // is switched onto the attempt's branch.
    let out = s
        .cmd(&["run", "--agent-cmd", AGENT])
        .env("ORCH_CRASH_AT", "pool-leased")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        pooled(&s).iter().any(|p| p["state"] == "leased"),
        "the lease is written ahead"
    );
    s.ok(&["run", "--resume"]);
    let tasks = s.json(&["task", "list"]);
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "done")
    );
    let pool = pooled(&s);
    assert!(pool.iter().all(|p| p["state"] == "free"), "{pool:?}");
    assert_eq!(registered_worktrees(&s), 1 + pool.len());
    s.ok(&["cleanup", "--pool"]);
    assert_eq!(registered_worktrees(&s), 1);
}

#[test]
fn without_reuse_every_attempt_has_its_own_worktree_and_the_pool_stays_empty() {
    let s = sandbox("[worktrees]\nreuse = false\n");
    s.ok(&["task", "add", "first"]);
    s.ok(&["task", "add", "port-b"]);
    s.ok(&["run", "--agent-cmd", AGENT]);
    assert!(pooled(&s).is_empty());
    // Succeeded attempts' worktrees were removed as they ended; the run's
    // integration checkout at its end.
    assert_eq!(registered_worktrees(&s), 1);
    assert_eq!(landed(&s, "one.txt"), "one");
}

#[test]
fn a_worktree_that_cannot_be_made_clean_is_retired_and_replaced() {
    let s = sandbox("[run]\nconcurrency = 1\n");
    s.ok(&["task", "add", "first"]);
    s.ok(&["run", "--agent-cmd", AGENT]);
    let pool = pooled(&s);
    let first = PathBuf::from(pool[0]["path"].as_str().unwrap());
    // Something the next attempt must not see, that no one can remove.
    let stuck = first.join("stuck.txt");
    std::fs::write(&stuck, "left behind\n").unwrap();
    let immutable = |flag: &str| {
        Command::new("chattr")
            .args([flag, stuck.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !immutable("+i") {
        eprintln!("chattr +i is not available here (needs root on ext4): not tested");
        return;
    }
    s.ok(&["task", "add", "port-second"]);
    let out = s.run(&["run", "--agent-cmd", AGENT]);
    immutable("-i");
    assert!(out.status.success(), "{out:?}");
    // The task ran in a new worktree; the stuck one is retired, never handed out.
    assert!(!landed(&s, "port-second.txt").is_empty());
    let tree = git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]);
    assert!(
        !tree.contains("stuck.txt"),
        "the leftover was committed: {tree}"
    );
    let pool = pooled(&s);
    let old = pool
        .iter()
        .find(|p| p["path"] == first.to_str().unwrap())
        .expect("the stuck worktree stays known");
    assert_eq!(old["state"], "retired", "{pool:?}");
    assert!(
        pool.iter()
            .any(|p| p["state"] == "free" && p["kind"] == "attempt")
    );
    // Once it can go, cleanup removes it.
    s.ok(&["cleanup"]);
    assert!(!first.exists());
    assert!(pooled(&s).iter().all(|p| p["state"] != "retired"));
}

/// A worktree git is still registering (its admin directory has no `gitdir` yet, as
/// in the moment a live run's `git worktree add` is making it) is left alone and named
/// by `orch cleanup --force --pool`, which goes on and exits 0.
#[test]
fn cleanup_beside_a_worktree_being_made_skips_it_and_succeeds() {
    let s = sandbox("");
    s.ok(&["task", "add", "first"]);
    s.ok(&["run", "--agent-cmd", AGENT]);
    let admin = s.repo().join(".git/worktrees/being-made");
    std::fs::create_dir_all(&admin).unwrap();
    std::fs::write(admin.join("locked"), "initializing\n").unwrap();
    // git has made the file and not yet written where the worktree is.
    std::fs::write(admin.join("gitdir"), "").unwrap();
    for args in [
        &["cleanup", "--force", "--pool"][..],
        &["cleanup", "--force"],
    ] {
        let out = s.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}{stderr}");
        assert!(!stderr.contains("gitdir"), "{args:?}: {stderr}");
        assert!(
            admin.exists(),
            "{args:?}: the half-made worktree was removed"
        );
    }
    let out = s.ok(&["cleanup", "--force"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("a worktree being made right now"), "{said}");
}

#[test]
fn a_new_worktree_starts_with_a_copy_of_the_pools_caches() {
    let s = sandbox("[run]\nconcurrency = 2\n[worktrees]\nkeep = [\"target/\"]\n");
    let agent = r#"case "$ORCH_TASK_TITLE" in
  first) mkdir -p target/debug && echo built > target/debug/cache.bin && ln -s debug/cache.bin target/latest && echo one > one.txt ;;
  look*) { cat target/debug/cache.bin target/latest 2>&1 || true; } > "$ORCH_TASK_TITLE.txt"; sleep 1 ;;
esac"#;
    s.ok(&["task", "add", "first"]);
    s.ok(&["run", "--agent-cmd", agent]);
    // Two at once: one reuses the first worktree, the other's is new, and starts
    // with a copy of the first's target/.
    s.ok(&["task", "add", "look-a"]);
    s.ok(&["task", "add", "look-b"]);
    s.ok(&["run", "--agent-cmd", agent]);
    for t in ["look-a", "look-b"] {
        assert_eq!(landed(&s, &format!("{t}.txt")), "built\nbuilt", "{t}");
    }
    let attempts = pooled(&s).iter().filter(|p| p["kind"] == "attempt").count();
    assert_eq!(attempts, 2, "{:?}", pooled(&s));
}

/// Runs three tasks at once in a pool that keeps `target/`, with `gate` (a shell
/// snippet that logs to `{log}`) as the gates `stages` names (`worker`, `integration`)
/// and `validate.slots` as `slots` sets (empty: unset). Returns the sandbox and the log.
fn three_at_once(gate: &str, stages: &[&str], slots: &str) -> (Sandbox, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let gate = gate.replace("{log}", &log.path().display().to_string());
    let gate = serde_json::to_string(&gate).unwrap();
    let gates: String = stages
        .iter()
        .map(|st| format!("{st} = [{gate}]\n"))
        .collect();
    let s = sandbox(&format!(
        "[run]\nconcurrency = 3\n[worktrees]\nkeep = [\"target/\"]\n[validate]\n{slots}{gates}"
    ));
    for t in ["a", "b", "c"] {
        s.ok(&["task", "add", t]);
    }
    s.ok(&[
        "run",
        "--agent-cmd",
        "echo \"$ORCH_TASK_TITLE\" > \"$ORCH_TASK_TITLE.txt\"",
    ]);
    let runs = std::fs::read_to_string(log.path()).unwrap();
    (s, runs)
}

#[test]
fn only_the_pools_first_worktree_builds_its_caches_cold() {
    // Every gate, worker and integration, builds `target/` when its worktree has
    // none (slowly, so that the three worker gates would overlap), and logs which.
    let (s, runs) = three_at_once(
        "if [ -e target/debug/cache.bin ]; then echo warm; else sleep 1; mkdir -p target/debug && echo built > target/debug/cache.bin; echo cold; fi >> '{log}'",
        &["worker", "integration"],
        "",
    );
    let cold = runs.lines().filter(|l| *l == "cold").count();
    // Three worker gates at once, and at least one integration gate in a worktree
    // of its own: only the first built cold, the others copied its caches.
    assert!(runs.lines().count() >= 4, "{runs}");
    assert_eq!(cold, 1, "{runs}");
    for t in ["a", "b", "c"] {
        assert_eq!(landed(&s, &format!("{t}.txt")), t);
    }
}

#[test]
fn gates_that_make_no_caches_do_not_wait_for_one_another() {
    // `keep` names a cache the gates never make: after the first gate shows it, the
    // others run side by side, not one after another.
    let (_s, runs) = three_at_once(
        "echo \"start $(date +%s.%N)\" >> '{log}'; sleep 2; echo \"end $(date +%s.%N)\" >> '{log}'",
        &["worker"],
        "slots = 3\n",
    );
    let mut marks: Vec<(f64, i32)> = runs
        .lines()
        .map(|l| {
            let (what, at) = l.split_once(' ').unwrap();
            (at.parse().unwrap(), if what == "start" { 1 } else { -1 })
        })
        .collect();
    marks.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0, 0);
    for (_, d) in &marks {
        now += d;
        most = most.max(now);
    }
    assert_eq!(marks.len(), 6, "{marks:?}");
    assert!(most >= 2, "the gates ran one at a time: {marks:?}");
}
