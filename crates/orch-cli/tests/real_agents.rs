//! The real agent CLIs, as shipped, against a loopback stand-in for the Messages API.
//!
//! Claude Code, driven by `orch run --agent claude` against
//! a loopback stand-in for the Messages API (`orch_testkit::anthropic`), with only
//! `ANTHROPIC_BASE_URL` and `ANTHROPIC_API_KEY` in orch's environment: tasks written
//! through Claude's Write tool and merged, cost and tokens captured, a gate failure
//! retried by resuming the first session, the gate command allowed so Claude runs it,
//! a 200 KB task and a prompt that starts with `-`, a 429 that opens the quota
//! breaker, a task budget that stops an agent, and Claude as the planner. opencode,
//! driven by `orch run --agent opencode` with the same two variables: tasks written
//! through its write tool and merged, tokens and cost captured, a failed attempt
//! retried.
//!
//! Each CLI is found as `$ORCH_TEST_CLAUDE` (or `$ORCH_TEST_OPENCODE`) or on `PATH`
//! (`.ci/run` installs pinned versions). Without it the tests say so and pass, except
//! under CI, where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use orch_testkit::anthropic::StandIn;
use orch_testkit::clis::{claude_or_skip, cli_or_skip};
use orch_testkit::{Sandbox, git_cmd};
use serde_json::Value;

/// A sandbox whose orch finds the CLI on its `PATH` and the stand-in at
/// `ANTHROPIC_BASE_URL`, in a repository whose gate refuses a "broken" status.
struct Agents {
    s: Sandbox,
    api: StandIn,
}

impl std::ops::Deref for Agents {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.s
    }
}

impl Agents {
    fn new(cli: &Path) -> Agents {
        let api = StandIn::start();
        let bin = cli.parent().unwrap().display().to_string();
        let s = Sandbox::empty(env!("CARGO_BIN_EXE_orch"))
            .with_path(format!("{bin}:/usr/local/bin:/usr/bin:/bin"))
            .with_env("ANTHROPIC_BASE_URL", api.url.clone())
            .with_env("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key");
        std::fs::create_dir(s.repo()).unwrap();
        // The project's gate: no task may leave status.txt saying "broken".
        std::fs::write(
            s.repo().join("gate.sh"),
            "! grep -q broken status.txt 2>/dev/null\n",
        )
        .unwrap();
        s.git(&["init", "-q", "-b", "main"]);
        s.git(&["add", "gate.sh"]);
        s.git(&["commit", "-q", "-m", "init"]);
        s.ok(&["init"]);
        Agents { s, api }
    }
    fn add(&self, title: &str, body: &str) {
        let f = self.dir().join("body.md");
        std::fs::write(&f, body).unwrap();
        self.ok(&["task", "add", title, "--body-file", f.to_str().unwrap()]);
    }
    fn status(&self, id: i64) -> String {
        self.json(&["task", "show", &id.to_string()])["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
    fn last_run(&self) -> Value {
        let id = self.json(&["run", "list"])[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.json(&["run", "show", &id])
    }
    /// A file as `branch` has it, byte for byte.
    fn file_on(&self, branch: &str, path: &str) -> String {
        let o = git_cmd()
            .arg("-C")
            .arg(self.repo())
            .args(["show", &format!("{branch}:{path}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn attempts_of(run: &Value, task: i64) -> Vec<Value> {
    run["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["attempt"]
                .as_str()
                .unwrap()
                .starts_with(&format!("task-{task}-"))
        })
        .cloned()
        .collect()
}

#[test]
fn claude_as_shipped_writes_merges_reports_cost_and_resumes_a_retry() {
    let Some(claude) = claude_or_skip() else {
        return;
    };
    let s = Agents::new(&claude);
    s.add("Alpha", "Write a.txt.\nstand-in: write a.txt alpha\n");
    s.add("Beta", "Write b.txt.\nstand-in: write b.txt beta\n");
    // 200 KB of task, and Claude runs the gate itself (it is allowed to).
    let filler = "Context line that the agent should read but not act on.\n".repeat(3600);
    s.add(
        "Gamma",
        &format!("Write c.txt, then run the gate.\nstand-in: write c.txt gamma\nstand-in: bash sh gate.sh\n{filler}"),
    );
    // The first attempt breaks the gate; the retry resumes its session and fixes it.
    s.add(
        "Fix on retry",
        "Write status.txt.\nstand-in: first-only write status.txt broken\nstand-in: retry-only write status.txt fixed\n",
    );
    let out = s.ok(&["run", "--agent", "claude", "--validate", "sh gate.sh"]);
    for t in 1..=4 {
        assert_eq!(s.status(t), "done", "task {t}: {}", text(&out.stdout));
    }
    let run = s.last_run();
    let integration = "orch/integration".to_string();
    assert_eq!(s.file_on(&integration, "a.txt"), "alpha\n");
    assert_eq!(s.file_on(&integration, "c.txt"), "gamma\n");
    assert_eq!(s.file_on(&integration, "status.txt"), "fixed\n");

    // Cost and tokens per attempt, summed per run.
    let mut tokens = 0;
    for a in run["attempts"].as_array().unwrap() {
        let u = &a["usage"];
        assert!(u["cost"].as_f64().unwrap() > 0.0, "{a}");
        assert!(
            u["session_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{a}"
        );
        tokens += u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap();
    }
    let total = &run["usage"];
    assert_eq!(
        total["input_tokens"].as_u64().unwrap() + total["output_tokens"].as_u64().unwrap(),
        tokens
    );
    assert!(text(&s.ok(&["run", "show", run["id"].as_str().unwrap()]).stdout).contains("usage: "));

    // The retry resumed attempt 1's session: Claude sent its history back.
    let fix = attempts_of(&run, 4);
    assert_eq!(fix.len(), 2, "{fix:?}");
    assert_eq!(fix[0]["failure"]["kind"], "worker-validation", "{fix:?}");
    let first_session = fix[0]["usage"]["session_id"].as_str().unwrap();
    assert_eq!(fix[1]["usage"]["session_id"].as_str(), Some(first_session));
    let resumed = s.api.requests().iter().any(|r| {
        let msgs = r["messages"].as_array().unwrap();
        let body = serde_json::to_string(msgs).unwrap();
        body.contains("first-only write status.txt broken")
            && msgs.iter().filter(|m| m["role"] == "assistant").count() >= 2
            && body.contains("The previous attempt failed")
    });
    assert!(
        resumed,
        "no request carried the first session back with the failure"
    );

    // Claude ran the gate itself: the Bash call was allowed, and nothing was denied.
    let ran_gate = s.api.requests().iter().any(|r| {
        let msgs = r["messages"].as_array().unwrap();
        let parts = || {
            msgs.iter()
                .filter_map(|m| m["content"].as_array())
                .flatten()
        };
        let bash: Vec<&Value> = parts()
            .filter(|p| p["type"] == "tool_use" && p["name"] == "Bash")
            .map(|p| &p["id"])
            .collect();
        parts().any(|p| {
            p["type"] == "tool_result"
                && bash.contains(&&p["tool_use_id"])
                && p["is_error"] != true
                && !p["content"]
                    .to_string()
                    .to_lowercase()
                    .contains("permission")
        })
    });
    assert!(ran_gate);
    // The log reads as a transcript; --raw gives the stream as Claude printed it.
    let log = text(&s.ok(&["logs", "--task", "1", "--stage", "agent"]).stdout);
    assert!(log.contains("tool: Write(file_path=a.txt"), "{log}");
    assert!(log.contains("result: success, $"), "{log}");
    let raw = text(
        &s.ok(&["logs", "--task", "1", "--stage", "agent", "--raw"])
            .stdout,
    );
    assert!(raw.contains("\"type\":\"result\""), "{raw}");
    let gamma = attempts_of(&run, 3);
    assert!(gamma[0]["usage"].get("denied_tools").is_none(), "{gamma:?}");
}

#[test]
fn a_rate_limit_opens_the_breaker_which_a_probe_closes() {
    let Some(claude) = claude_or_skip() else {
        return;
    };
    let s = Agents::new(&claude);
    s.add("One", "stand-in: write one.txt 1\n");
    s.add("Two", "stand-in: write two.txt 2\n");
    // Claude retries a 429 itself; the third retry in a row is a quota signal.
    s.api.rate_limit_next(3);
    s.ok(&[
        "run",
        "--agent",
        "claude",
        "-c",
        "run.concurrency=1",
        "-c",
        "policy.quota_backoff=1s",
        "-c",
        "policy.max_attempts=1",
    ]);
    // One attempt allowed, yet both are done: the quota failure spent none.
    assert_eq!((s.status(1), s.status(2)), ("done".into(), "done".into()));
    let run = s.last_run();
    let first = attempts_of(&run, 1);
    assert_eq!(first[0]["failure"]["kind"], "quota", "{first:?}");
    let events = text(
        &s.ok(&["events", "--run", run["id"].as_str().unwrap()])
            .stdout,
    );
    assert!(events.contains("quota breaker open until"), "{events}");
    assert!(
        events.contains("quota breaker closed: the probe"),
        "{events}"
    );
}

#[test]
fn a_task_budget_stops_the_agent_and_a_dash_prompt_is_not_an_option() {
    let Some(claude) = claude_or_skip() else {
        return;
    };
    let s = Agents::new(&claude);
    // The first turn reports 9,000 input tokens, past the cap; then Claude would wait.
    s.add(
        "Expensive",
        "stand-in: tokens 9000\nstand-in: write e.txt x\nstand-in: hang\n",
    );
    let out = s.run(&["run", "--agent", "claude", "-c", "budget.task_tokens=5000"]);
    assert_eq!(
        s.status(1),
        "failed",
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("budget (task 1 used"),
        "{}",
        text(&out.stdout)
    );
    let run = s.last_run();
    let a = attempts_of(&run, 1);
    assert_eq!(a.len(), 1, "a budget failure is not retried: {a:?}");
    assert_eq!(a[0]["failure"]["kind"], "budget", "{a:?}");

    // A prompt whose first line starts with `-` reaches Claude as a prompt.
    let tpl = s.dir().join("dash.md");
    std::fs::write(&tpl, "--help {title}\n\n{body}\n").unwrap();
    s.add("Dash", "stand-in: write dash.txt ok\n");
    s.ok(&[
        "run",
        "--agent",
        "claude",
        "--task",
        "2",
        "-c",
        &format!("agent.prompt_template={}", tpl.display()),
    ]);
    assert_eq!(s.status(2), "done");
    let seen = s.api.requests().iter().any(|r| {
        serde_json::to_string(&r["messages"])
            .unwrap()
            .contains("--help Dash")
    });
    assert!(seen, "the prompt did not reach the model");
}

#[test]
fn claude_as_the_planner_orders_the_claims_and_its_usage_counts() {
    let Some(claude) = claude_or_skip() else {
        return;
    };
    let s = Agents::new(&claude);
    s.add("First on the board", "stand-in: write first.txt 1\n");
    s.add(
        "The planner's pick",
        "stand-in: plan-first\nstand-in: write pick.txt 2\n",
    );
    s.ok(&[
        "run",
        "--agent",
        "claude",
        "-c",
        "run.planner=claude",
        "-c",
        "run.concurrency=1",
    ]);
    assert_eq!((s.status(1), s.status(2)), ("done".into(), "done".into()));
    let run = s.last_run();
    let id = run["id"].as_str().unwrap();
    let events = text(&s.ok(&["events", "--run", id]).stdout);
    // The planner's pick ran first, though task 1 is older.
    let created = |a: &str| events.find(&format!("{a} created")).unwrap_or(usize::MAX);
    assert!(created("task-2-1") < created("task-1-1"), "{events}");
    assert!(
        events.contains("the stand-in planner chose this"),
        "{events}"
    );
    assert!(events.contains("the planner used"), "{events}");
    // The planner's usage is part of the run's.
    let attempts: u64 = run["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["usage"]["input_tokens"].as_u64().unwrap())
        .sum();
    assert!(
        run["usage"]["input_tokens"].as_u64().unwrap() > attempts,
        "{run}"
    );
}

#[test]
fn opencode_as_shipped_writes_merges_reports_cost_and_retries() {
    let Some(opencode) = cli_or_skip("opencode", "ORCH_TEST_OPENCODE") else {
        return;
    };
    let s = Agents::new(&opencode);
    s.add("Alpha", "Write a.txt.\nstand-in: write a.txt alpha\n");
    s.add(
        "Fix on retry",
        "Write status.txt.\nstand-in: first-only write status.txt broken\nstand-in: retry-only write status.txt fixed\n",
    );
    s.ok(&["run", "--agent", "opencode", "--validate", "sh gate.sh"]);
    assert_eq!((s.status(1), s.status(2)), ("done".into(), "done".into()));
    let run = s.last_run();
    let integration = "orch/integration".to_string();
    assert_eq!(s.file_on(&integration, "a.txt"), "alpha\n");
    assert_eq!(s.file_on(&integration, "status.txt"), "fixed\n");
    for a in run["attempts"].as_array().unwrap() {
        assert!(a["usage"]["cost"].as_f64().unwrap() > 0.0, "{a}");
        assert!(
            a["usage"]["session_id"]
                .as_str()
                .unwrap()
                .starts_with("ses_"),
            "{a}"
        );
    }
    // The retry starts a new session: an opencode session is bound to its directory,
    // and each attempt has its own worktree.
    let fix = attempts_of(&run, 2);
    assert_eq!(fix.len(), 2, "{fix:?}");
    assert_ne!(fix[1]["usage"]["session_id"], fix[0]["usage"]["session_id"]);
    let log = text(&s.ok(&["logs", "--task", "1", "--stage", "agent"]).stdout);
    assert!(log.contains("tool: write("), "{log}");
}

/// Claude Code as shipped works inside `agent.sandbox = "bwrap"`: it writes its file,
/// its retry resumes its session (kept in its own writable `~/.claude`), and the work
/// lands. Skipped where `bwrap` is not installed.
#[test]
fn claude_works_inside_the_bwrap_sandbox() {
    let Some(claude) = claude_or_skip() else {
        return;
    };
    // bubblewrap installed and able to make a sandbox here (orch's own preflight).
    if let Err(why) = orch_engine::agents::sandbox::check_bwrap() {
        eprintln!("skipped: {why}");
        return;
    }
    let s = Agents::new(&claude);
    s.add("Alpha", "Write a.txt.\nstand-in: write a.txt alpha\n");
    s.add(
        "Fix on retry",
        "Write status.txt.\nstand-in: first-only write status.txt broken\nstand-in: retry-only write status.txt fixed\n",
    );
    let out = s.ok(&[
        "run",
        "--agent",
        "claude",
        "-c",
        "agent.sandbox=bwrap",
        "--validate",
        "sh gate.sh",
    ]);
    for t in 1..=2 {
        assert_eq!(s.status(t), "done", "task {t}: {}", text(&out.stdout));
    }
    let integration = "orch/integration".to_string();
    assert_eq!(s.file_on(&integration, "a.txt"), "alpha\n");
    assert_eq!(s.file_on(&integration, "status.txt"), "fixed\n");
    let run = s.last_run();
    let fix = attempts_of(&run, 2);
    assert_eq!(fix.len(), 2, "{fix:?}");
    assert_eq!(
        fix[1]["usage"]["session_id"].as_str(),
        fix[0]["usage"]["session_id"].as_str(),
        "the retry resumed inside the sandbox"
    );
}
