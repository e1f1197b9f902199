//! Review with the real agent CLIs, as shipped, each against a loopback stand-in for
//! its API: Claude Code (the Messages API, `ANTHROPIC_BASE_URL`), Codex (the Responses
//! API, a `model_providers` entry in its `CODEX_HOME`) and Gemini CLI (the Gemini API,
//! `GOOGLE_GEMINI_BASE_URL` and API-key auth in `~/.gemini/settings.json`). Each does a
//! task whose work waits for review; a request for changes with a line comment runs a
//! second round; the approved round lands. Claude and Codex resume the reviewed
//! session (the same session id gets the comments); the Gemini preset starts a new
//! session (its `--resume` takes an index in the worktree's own project, and every
//! attempt works in another worktree), whose prompt carries them. Usage is captured.
//!
//! Each CLI is `$ORCH_TEST_CLAUDE`, `$ORCH_TEST_CODEX`, `$ORCH_TEST_GEMINI`, or on
//! `PATH`; outside CI a missing one skips its test with a note.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use orch_testkit::clis::{claude_or_skip, cli_or_skip};
use orch_testkit::{Sandbox, anthropic, gemini, git, openai};
use serde_json::Value;

/// The task: a first round writes a draft, a later one (told why) the renamed line.
const TASK: &str = "Write lex.txt.\nstand-in: first-only write lex.txt draft\nstand-in: retry-only write lex.txt renamed\n";

/// A repository with orch set up, work needing review, and orch finding `cli` on its
/// `PATH` with `env` set.
fn sandbox(cli: &Path, env: &[(&str, String)]) -> Sandbox {
    let bin = cli.parent().unwrap().display().to_string();
    let mut s = Sandbox::repo_only(env!("CARGO_BIN_EXE_orch"))
        .with_path(format!("{bin}:/usr/local/bin:/usr/bin:/bin"));
    for (k, v) in env {
        s = s.with_env(k, v.clone());
    }
    s.ok(&["init"]);
    s.ok(&["config", "set", "review.required", "all"]);
    let body = s.dir().join("body.md");
    std::fs::write(&body, TASK).unwrap();
    s.ok(&[
        "task",
        "add",
        "Lexer",
        "--body-file",
        body.to_str().unwrap(),
    ]);
    s
}

/// The newest run's attempts of task 1.
fn attempts(s: &Sandbox) -> Vec<Value> {
    let id = s.json(&["run", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.json(&["run", "show", &id])["attempts"]
        .as_array()
        .unwrap()
        .clone()
}

/// Runs the review loop with `agent`: round 1 waits for review, changes are asked
/// for with a line comment, round 2 waits again, and its approval lands. Returns
/// round 1's and round 2's attempts.
fn review_loop(s: &Sandbox, agent: &str) -> (Value, Value) {
    let run = |s: &Sandbox| {
        let out = s.run(&["run", "--agent", agent]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(s);
    assert_eq!(s.status(1).as_deref(), Some("review"));
    let round1 = attempts(s)[0].clone();
    assert!(
        round1["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0,
        "no usage captured: {round1}"
    );
    s.ok(&[
        "review",
        "changes",
        "1",
        "-m",
        "Rename it.",
        "--at",
        "lex.txt:1",
        "say renamed",
    ]);
    run(s);
    assert_eq!(s.status(1).as_deref(), Some("review"));
    let round2 = attempts(s)[0].clone();
    s.ok(&["review", "approve", "1"]);
    run(s);
    assert_eq!(s.status(1).as_deref(), Some("done"));
    assert_eq!(
        git(&s.repo(), &["show", "orch/integration:lex.txt"]),
        "renamed"
    );
    (round1, round2)
}

/// Whether `body` (a request, as JSON text) carries the review's words and quote.
fn has_the_comments(body: &str) -> bool {
    body.contains("lex.txt:1: say renamed")
        && body.contains("> draft")
        && body.contains("Rename it.")
}

#[test]
fn claude_resumes_the_reviewed_session_with_the_comments() {
    let Some(claude) = claude_or_skip() else {
        return;
    };
    let api = anthropic::StandIn::start();
    let env = [
        ("ANTHROPIC_BASE_URL", api.url.clone()),
        ("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key".to_owned()),
    ];
    let s = sandbox(&claude, &env);
    let (round1, round2) = review_loop(&s, "claude");
    assert_eq!(round2["usage"]["session_id"], round1["usage"]["session_id"]);
    assert!(round2["usage"]["cost"].as_f64().unwrap() > 0.0, "{round2}");
    let resumed = api.requests().iter().any(|r| {
        let msgs = r["messages"].as_array().unwrap();
        msgs.iter().filter(|m| m["role"] == "assistant").count() >= 2
            && has_the_comments(&serde_json::to_string(msgs).unwrap())
    });
    assert!(resumed, "no request resumed the session with the comments");
}

#[test]
fn codex_resumes_the_reviewed_session_with_the_comments() {
    let Some(codex) = cli_or_skip("codex", "ORCH_TEST_CODEX") else {
        return;
    };
    let api = openai::start();
    let home = openai::codex_home(&api, Path::new(env!("CARGO_TARGET_TMPDIR")));
    let env = [
        ("CODEX_HOME", home.path().display().to_string()),
        ("OPENAI_API_KEY", "sk-test-not-a-real-key".to_owned()),
    ];
    let s = sandbox(&codex, &env);
    let (round1, round2) = review_loop(&s, "codex");
    let session = round1["usage"]["session_id"].as_str().unwrap();
    assert_eq!(
        round2["usage"]["session_id"].as_str(),
        Some(session),
        "{round2}"
    );
    let resumed = api.requests().iter().any(|r| {
        let input = r["input"].as_array().unwrap();
        let earlier = input.iter().any(|i| i["type"] == "function_call");
        earlier && has_the_comments(&serde_json::to_string(input).unwrap())
    });
    assert!(resumed, "no request resumed the session with the comments");
}

#[test]
fn gemini_gets_the_comments_in_a_new_session() {
    let Some(cli) = cli_or_skip("gemini", "ORCH_TEST_GEMINI") else {
        return;
    };
    let api = gemini::start();
    let env = [
        ("GOOGLE_GEMINI_BASE_URL", api.url.clone()),
        ("GEMINI_API_KEY", "test-not-a-real-key".to_owned()),
    ];
    let s = sandbox(&cli, &env);
    gemini::gemini_home(&s.home());
    let (round1, round2) = review_loop(&s, "gemini");
    assert!(
        round2["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0,
        "{round2}"
    );
    assert_ne!(round2["usage"]["session_id"], round1["usage"]["session_id"]);
    let told = api
        .requests()
        .iter()
        .any(|r| has_the_comments(&r["contents"].to_string()));
    assert!(told, "no request carried the comments");
}
