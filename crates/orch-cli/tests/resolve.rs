//! Conflicts a person resolves (`policy.on_conflict = "ask"`), through the real
//! binary and real git: the conflicting task is blocked with its paths; `orch task
//! resolve` prepares a worktree with the markers in place; `--continue` refuses while
//! markers are left, then commits the resolution as the person and lands it through
//! the integration gate, and goes on after a kill in between; `--abort` puts things
//! back; `--agent` hands both sides to the agent's next attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use orch_testkit::{Sandbox, git};
use serde_json::Value;

/// Both tasks write `shared.txt`, so the second to merge conflicts; an attempt told
/// the conflict (both sides marked in its prompt) writes the two lines together.
const AGENT: &str = "if grep -q '>>>>>>> this task' \"$ORCH_PROMPT_FILE\"; then printf 'merged by the agent\\n' > shared.txt; else printf \"from $ORCH_TASK_ID\\n\" > shared.txt; fi";

/// Two tasks run at once and conflict: the one blocked, with the sandbox.
fn conflicted() -> (Sandbox, i64) {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_orch"));
    s.git(&["config", "user.name", "Rev Iewer"]);
    s.git(&["config", "user.email", "rev@example.com"]);
    s.ok(&["config", "set", "policy.on_conflict", "ask"]);
    s.ok(&["config", "set", "agent.command", AGENT]);
    s.ok(&[
        "config",
        "set",
        "validate.integration",
        "test -s shared.txt",
    ]);
    s.add("One", &[]);
    s.add("Two", &[]);
    let out = s.run(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let tasks = s.json(&["task", "list"]);
    let blocked: Vec<i64> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "blocked")
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(blocked.len(), 1, "{tasks}");
    let events = s.json(&[
        "events",
        "--task",
        &blocked[0].to_string(),
        "--kind",
        "task.moved",
    ]);
    let last = events
        .as_array()
        .map_or(events.clone(), |a| a.last().unwrap().clone());
    assert!(
        last["reason"].as_str().unwrap().contains("shared.txt")
            && last["reason"]
                .as_str()
                .unwrap()
                .contains("orch task resolve"),
        "{last}"
    );
    (s, blocked[0])
}

fn prepare(s: &Sandbox, id: &str) -> PathBuf {
    let out = s.ok_text(&["task", "resolve", id]);
    assert!(
        out.stderr.contains("conflicts in: shared.txt"),
        "{}",
        out.stderr
    );
    PathBuf::from(out.stdout.trim())
}

#[test]
fn a_person_resolves_a_conflict_and_it_lands_after_a_kill() {
    let (s, id) = conflicted();
    let id = id.to_string();
    let wt = prepare(&s, &id);
    let text = std::fs::read_to_string(wt.join("shared.txt")).unwrap();
    assert!(
        text.contains("<<<<<<<") && text.contains(">>>>>>>"),
        "{text}"
    );
    // Asking again finds the same worktree.
    assert_eq!(prepare(&s, &id), wt);
    let refused = s.run_text(&["task", "resolve", &id, "--continue"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("conflict markers are left in shared.txt:1"),
        "{}",
        refused.stderr
    );
    std::fs::write(wt.join("shared.txt"), "from both\n").unwrap();
    // Killed after the commit, before the task holds it: --continue goes on.
    let killed = s
        .cmd(&["task", "resolve", &id, "--continue"])
        .env("ORCH_CRASH_AT", "resolve-committed")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "the crash point was not reached");
    assert_eq!(s.status(id.parse().unwrap()).as_deref(), Some("blocked"));
    let done = s.run_text(&["task", "resolve", &id, "--continue"]);
    assert_eq!(done.code, 0, "{}{}", done.stdout, done.stderr);
    assert_eq!(s.statuses(), ["done", "done"]);
    assert!(!wt.exists(), "the resolution's worktree is left");
    assert_eq!(
        git(&s.repo(), &["show", "orch/integration:shared.txt"]),
        "from both"
    );
    // The resolution is the person's, with both sides as its parents.
    let log = git(
        &s.repo(),
        &["log", "--format=%an <%ae>|%s|%P", "orch/integration"],
    );
    let resolution = log
        .lines()
        .find(|l| l.contains("|Resolve the conflict of"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        resolution.starts_with("Rev Iewer <rev@example.com>|"),
        "{log}"
    );
    assert_eq!(resolution.rsplit('|').next().unwrap().split(' ').count(), 2);
    let kinds: Vec<(String, String)> = s
        .json(&["events", "--kind", "resolve."])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let who = "human:Rev Iewer".to_owned();
    assert_eq!(
        kinds,
        [
            ("resolve.started".to_owned(), who.clone()),
            ("resolve.done".to_owned(), who)
        ]
    );
}

#[test]
fn an_aborted_resolution_leaves_the_task_blocked_and_nothing_behind() {
    let (s, id) = conflicted();
    let id = id.to_string();
    // The dashboard shows the conflict's paths and the commands that resolve it.
    let (server, url) = s.serve(0);
    let page = Sandbox::page(&url, &format!("/tasks/{id}"));
    assert!(
        page.contains("<code>shared.txt</code>")
            && page.contains(&format!("orch task resolve {id} --continue")),
        "{page}"
    );
    drop(server);
    let wt = prepare(&s, &id);
    s.ok(&["task", "resolve", &id, "--abort"]);
    assert!(!wt.exists());
    assert_eq!(s.git(&["branch", "--list", "orch/resolve/*"]), "");
    assert_eq!(s.status(id.parse().unwrap()).as_deref(), Some("blocked"));
    let again = s.run_text(&["task", "resolve", &id, "--abort"]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("no resolution of task"),
        "{}",
        again.stderr
    );
    // Bad input: a task that did not conflict.
    let other = if id == "1" { "2" } else { "1" };
    let bad = s.run_text(&["task", "resolve", other]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("is done: only a blocked task"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_conflict_handed_to_the_agent_is_resolved_by_its_next_attempt() {
    let (s, id) = conflicted();
    let id_s = id.to_string();
    s.ok(&["task", "resolve", &id_s, "--agent"]);
    assert_eq!(s.status(id).as_deref(), Some("backlog"));
    let out = s.run(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(s.statuses(), ["done", "done"]);
    assert_eq!(
        git(&s.repo(), &["show", "orch/integration:shared.txt"]),
        "merged by the agent"
    );
    let handed: Value = s.json(&["events", "--kind", "resolve.agent"]);
    let handed = handed.as_array().map_or(handed.clone(), |a| a[0].clone());
    assert_eq!(handed["actor"], "human:Rev Iewer");
}
