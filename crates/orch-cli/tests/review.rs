//! Review before landing, through the real binary, real git and SQLite: work waits
//! for a person after its worker gate; an approval lands it in the next run as it is;
//! a request for changes resumes the agent with the comment and its quoted line; a
//! rejection fails the task; every step is journaled with who took it. Then the same
//! from the dashboard in a real headless Chromium: a comment on a clicked line, the
//! next round arriving live, an approval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use std::os::unix::process::CommandExt as _;
use std::process::Stdio;

use orch_testkit::webdriver::{Browser, driver};
use orch_testkit::{Group, Sandbox, git};
use serde_json::{Value, json};

/// An agent that writes `t<id>.rs`, renaming its function when a reviewer asked it to.
const AGENT: &str = "if grep -q 'rename it' \"$ORCH_PROMPT_FILE\"; then printf 'fn lex_all() {}\\n' > t$ORCH_TASK_ID.rs; else printf 'fn lex() {}\\n' > t$ORCH_TASK_ID.rs; fi";

fn run(s: &Sandbox) -> String {
    let out = s.run(&["run", "--agent-cmd", AGENT]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Every `prompt.md` under `dir`.
fn prompts(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            prompts(&p, out);
        } else if p.file_name().is_some_and(|n| n == "prompt.md") {
            out.push(p);
        }
    }
}

#[test]
fn work_is_reviewed_approved_sent_back_and_rejected_before_it_lands() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_orch"));
    s.git(&["config", "user.name", "Rev Iewer"]);
    s.ok(&["config", "set", "review.required", "all"]);
    let told = s.dir().join("told.jsonl");
    s.ok(&[
        "config",
        "set",
        "notify.command",
        &format!("cat >> {}", told.display()),
    ]);
    for t in ["Add the lexer", "Add the parser", "Add the docs"] {
        s.add(t, &[]);
    }
    let text = run(&s);
    // notify hears of each piece of work waiting for review.
    let told = std::fs::read_to_string(&told).unwrap();
    let requested = told
        .lines()
        .filter(|l| l.contains("\"review.requested\""))
        .count();
    assert_eq!(requested, 3, "{told}");
    assert!(text.contains("3 in review"), "{text}");
    assert!(text.contains("waiting for review: #1, #2, #3"), "{text}");
    assert_eq!(s.statuses(), ["review"; 3]);
    assert_eq!(
        git(&s.repo(), &["ls-tree", "--name-only", "orch/integration"]),
        "README.md",
        "nothing lands before a person decides"
    );

    let waiting = s.json(&["review"]);
    let waiting = waiting.as_array().unwrap();
    let since: Vec<i64> = waiting
        .iter()
        .map(|w| w["since"].as_i64().unwrap())
        .collect();
    assert!(since.is_sorted(), "oldest first: {waiting:?}");
    let mut ids: Vec<i64> = waiting
        .iter()
        .map(|w| w["task"]["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(waiting[0]["task"]["review"]["round"], 1);
    assert_eq!(waiting[0]["task"]["review"]["verdict"], "pending");
    let show = String::from_utf8(s.ok(&["review", "show", "2"]).stdout).unwrap();
    assert!(
        show.contains("+fn lex() {}") && show.contains("round 1"),
        "{show}"
    );

    s.ok(&["review", "approve", "1", "-m", "good"]);
    s.ok(&[
        "review",
        "changes",
        "2",
        "-m",
        "Tidy up.",
        "--at",
        "t2.rs:1",
        "rename it",
    ]);
    s.ok(&["review", "reject", "3", "-m", "not needed"]);
    assert_eq!(s.statuses(), ["review", "backlog", "failed"]);
    // Bad input is refused and changes nothing.
    let bad = s.run(&["review", "approve", "3"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("task 3 is failed, not in review"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = s.run(&["review", "changes", "1", "--at", "t1.rs", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PATH:LINE"));

    // The next run lands the approved work as it is, and runs round 2 of task 2.
    run(&s);
    assert_eq!(s.statuses(), ["done", "review", "failed"]);
    let mut files = Vec::new();
    prompts(&s.repo().join(".orch"), &mut files);
    let round2: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|t| t.contains("## Review"))
        .collect();
    assert_eq!(round2.len(), 1, "{files:?}");
    assert!(
        round2[0].contains("Tidy up.")
            && round2[0].contains("t2.rs:1: rename it\n    > fn lex() {}"),
        "{}",
        round2[0]
    );
    let waiting = s.json(&["review"]);
    assert_eq!(waiting[0]["task"]["review"]["round"], 2, "{waiting}");

    s.ok(&["review", "approve", "2"]);
    run(&s);
    assert_eq!(s.statuses(), ["done", "done", "failed"]);
    let at = |f: &str| git(&s.repo(), &["show", &format!("orch/integration:{f}")]);
    assert_eq!(at("t1.rs"), "fn lex() {}");
    assert_eq!(at("t2.rs"), "fn lex_all() {}");
    // The reviewed branches went with the work that landed; the rejected one stays
    // for `orch cleanup`.
    let left = s.git(&["branch", "--list", "orch/*/task-*"]);
    assert!(
        !left.contains("task-1-") && !left.contains("task-2-"),
        "{left}"
    );

    journal_holds_every_step(&s);
}

/// The journal holds every step, with who took it.
fn journal_holds_every_step(s: &Sandbox) {
    let events: Value = s.json(&["events", "--kind", "review."]);
    let steps: Vec<(String, String, i64)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["task_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let human = "human:Rev Iewer";
    let who = |k: &str, t: i64| {
        steps
            .iter()
            .filter(|(kind, _, task)| kind == k && *task == t)
            .map(|(_, a, _)| a.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        who("review.requested", 2),
        ["orchestrator", "orchestrator"],
        "{steps:?}"
    );
    assert_eq!(who("review.approved", 1), [human]);
    assert_eq!(who("review.changes", 2), [human]);
    assert_eq!(who("review.approved", 2), [human]);
    assert_eq!(who("review.rejected", 3), [human]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_reviewed_from_the_dashboard() {
    let Some(d) = driver() else { return };
    let s = Sandbox::new(env!("CARGO_BIN_EXE_orch"));
    s.git(&["config", "user.name", "Rev Iewer"]);
    s.ok(&["config", "set", "review.required", "all"]);
    s.add("Add the lexer", &[]);
    run(&s);
    let (server, url) = s.serve(0);
    let base = url.split("/?").next().unwrap().to_owned();
    let b = Browser::open(&d).await;
    b.go(&url).await;
    b.go(&format!("{base}/reviews")).await;
    b.until(
        "the queue lists it",
        "document.querySelectorAll('tr.review').length===1",
    )
    .await;
    b.go(&format!("{base}/tasks/1")).await;
    b.until(
        "round 1 under review",
        "document.querySelector('section.review h2').textContent==='Review: round 1'",
    )
    .await;
    // A click on a line number starts a comment on that line.
    b.js("document.querySelector('a.ln[data-at=\"t1.rs:1\"]').click()")
        .await;
    assert_eq!(
        b.js("document.getElementById('review-comments').value")
            .await,
        json!("t1.rs:1 ")
    );
    b.js("(function(){document.getElementById('review-comments').value+='rename it';document.getElementById('review-text').value='Tidy up.';return true})()")
        .await;
    b.screenshot("review.png").await;
    b.js("document.querySelector('button[value=changes]').click()")
        .await;
    b.until("sent back", "!document.querySelector('section.review')")
        .await;
    // The next round runs beside the open page, and arrives on it live.
    let _round = Group(
        s.cmd(&["run", "--agent-cmd", AGENT])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    b.until(
        "round 2 arrives live",
        "!!document.querySelector('section.review h2')&&document.querySelector('section.review h2').textContent==='Review: round 2'",
    )
    .await;
    let rounds = b
        .js("document.querySelector('ul.rounds').textContent")
        .await;
    let rounds = rounds.as_str().unwrap();
    assert!(
        rounds.contains("Tidy up.") && rounds.contains("t1.rs:1 rename it"),
        "{rounds}"
    );
    let diff = b
        .js("document.querySelector('section.review .diff').textContent")
        .await;
    assert!(diff.as_str().unwrap().contains("fn lex_all() {}"), "{diff}");
    b.js("document.querySelector('button[value=approve]').click()")
        .await;
    b.until(
        "approved",
        "!!document.querySelector('.verdict')&&document.querySelector('.verdict').textContent.indexOf('Approved')===0",
    )
    .await;
    run(&s);
    assert_eq!(s.statuses(), ["done"]);
    assert_eq!(
        git(&s.repo(), &["show", "orch/integration:t1.rs"]),
        "fn lex_all() {}"
    );
    let events: Value = s.json(&["events", "--kind", "review."]);
    let who: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "review.requested")
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(who.len(), 2, "{who:?}");
    assert!(who.iter().all(|w| w.contains("Rev Iewer")), "{who:?}");
    drop(server);
}

/// `orch run --watch` stays up when only work in review is left, lands the work a
/// person approves meanwhile, and ends when canceled.
#[test]
fn a_watching_run_lands_work_approved_while_it_waits() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_orch"));
    s.ok(&["config", "set", "review.required", "all"]);
    s.add("Add the lexer", &[]);
    let mut watching = Group(
        s.cmd(&["run", "--watch", "--agent-cmd", AGENT])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !check() {
            assert!(started.elapsed().as_secs() < 30, "never: {what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for("the work in review", &|| {
        s.status(1).as_deref() == Some("review")
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(watching.0.try_wait().unwrap().is_none(), "the run ended");
    s.ok(&["review", "approve", "1"]);
    wait_for("the approved work landed", &|| {
        s.status(1).as_deref() == Some("done")
    });
    let run = s.json(&["run", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(&["run", "cancel", &run]);
    let code = watching.0.wait().unwrap().code();
    assert_eq!(code, Some(130), "a canceled run exits 130");
    assert_eq!(
        git(&s.repo(), &["show", "orch/integration:t1.rs"]),
        "fn lex() {}"
    );
}
