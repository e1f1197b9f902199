//! An agent's output while it runs and once it exits: each line to the run's event
//! stream; its usage so far to the core (for budgets and the quota breaker); and at
//! the end, its whole log read again (lines the live feed cut are whole there) for
//! the final report, with the quota patterns and a credential hint for an agent
//! that failed.

use std::time::{Duration, Instant};

use orch_core::config::AgentOutput;
use orch_core::run::{AgentExit, AgentReport, AttemptId, Input};
use orch_validate::{CommandSpec, Line, files};
use tokio::sync::mpsc;

use super::Ctx;
use crate::RunUpdate;
use crate::agents::presets;
use crate::agents::report::{OutputReader, quota_pattern};

/// How often the core hears of usage so far, at most (a quota signal goes at once).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// How much of a failed agent's log is searched for signs of what went wrong.
const TAIL_BYTES: u64 = 64 << 10;

/// Words of a CLI that has no credential.
const NO_CREDENTIAL: &[&str] = &[
    "not logged in",
    "please run /login",
    "invalid api key",
    "missing api key",
    "api key not found",
    "no api key",
    "authentication",
    "unauthorized",
    "401",
    "credentials",
];

fn format_of(ctx: &Ctx) -> AgentOutput {
    let a = &ctx.cfg.config.agent;
    presets::output_format(a.preset, a.output, ctx.preset().is_none())
}

/// A line feed for an agent, and the future that forwards it: to the event stream,
/// and as [`Input::AgentProgress`] to the core when what it reports changes.
pub(crate) fn forward_parsed(
    ctx: &Ctx,
    attempt: AttemptId,
) -> (
    mpsc::Sender<Line>,
    impl std::future::Future<Output = ()> + use<>,
) {
    let (tx, mut rx) = mpsc::channel::<Line>(256);
    let handle = ctx.handle.clone();
    let live = ctx.live.clone();
    let mut reader = OutputReader::new(format_of(ctx));
    let forward = async move {
        let mut last_sent: Option<Instant> = None;
        let mut pending = false;
        while let Some(l) = rx.recv().await {
            let changed = reader.line(&l.text);
            handle.publish(RunUpdate::Output {
                attempt,
                stage: None,
                line: l.text,
            });
            pending |= changed;
            if !pending {
                continue;
            }
            // Only a changed report is built and sent: at most every PROGRESS_EVERY,
            // at once for a quota signal.
            let report = reader.report();
            let due = last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
            if due || report.quota_signal().is_some() {
                pending = false;
                last_sent = Some(Instant::now());
                let _ = live.send(Input::AgentProgress { attempt, report });
            }
        }
    };
    (tx, forward)
}

/// The final report of an agent run by `spec` that ended with `exit`.
pub(crate) fn final_report(ctx: &Ctx, spec: &CommandSpec, exit: &AgentExit) -> AgentReport {
    let mut reader = OutputReader::new(format_of(ctx));
    let root = &ctx.cfg.artifacts_root;
    if let Ok(text) = files::read_under(root, &spec.log_path, 0, u64::MAX) {
        for l in String::from_utf8_lossy(&text).lines() {
            reader.line(l);
        }
    }
    let failed = !matches!(exit, AgentExit::Code(0));
    let (mut hint, mut output_tail) = (None, None);
    if failed {
        let tail = tail(root, &spec.log_path);
        if let Some(sig) = quota_pattern(&tail, &ctx.cfg.config.policy.quota_patterns) {
            reader.set_quota(sig);
        }
        hint = credential_hint(ctx, spec, &tail, exit);
        output_tail = last_lines(&tail, 5);
    }
    AgentReport {
        hint,
        output_tail,
        ..reader.report()
    }
}

/// The last `n` non-blank lines of `text`, each cut at 200 characters, joined by ` | `.
fn last_lines(text: &str, n: usize) -> Option<String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(200).collect())
        .collect();
    let start = lines.len().saturating_sub(n);
    (!lines.is_empty()).then(|| lines[start..].join(" | "))
}

/// The end of the log at `path` (a regular file under `root`, or nothing).
fn tail(root: &std::path::Path, path: &std::path::Path) -> String {
    let len = path.symlink_metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(TAIL_BYTES);
    let buf = files::read_under(root, path, from, TAIL_BYTES).unwrap_or_default();
    String::from_utf8_lossy(&buf).into_owned()
}

/// For an agent that could not run or whose output smells of a missing credential:
/// what to set, naming `agent.env_allow` and the variables its preset reads.
fn credential_hint(ctx: &Ctx, spec: &CommandSpec, tail: &str, exit: &AgentExit) -> Option<String> {
    let preset = ctx.preset();
    let not_found = match exit {
        AgentExit::Code(127) => true,
        AgentExit::FailedToStart(why) => why.contains("No such file") || why.contains("not found"),
        _ => false,
    };
    if not_found {
        let what = preset.map_or("the agent command".to_owned(), |p| {
            format!("`{}` (install: {})", p.binary, p.install)
        });
        return Some(format!(
            "{what} was not found on PATH; `orch agents check` tells what is missing"
        ));
    }
    let lower = tail.to_lowercase();
    if !NO_CREDENTIAL.iter().any(|w| lower.contains(w)) {
        return None;
    }
    let passed: Vec<String> = spec.env.resolve().into_iter().map(|(k, _)| k).collect();
    let wanted = preset.map_or(&[][..], |p| p.credentials);
    let missing = !wanted.iter().any(|c| passed.iter().any(|k| k == c));
    missing.then(|| {
        let names = if wanted.is_empty() {
            "its API key variable".to_owned()
        } else {
            wanted.join(" or ")
        };
        format!(
            "its output says it has no credential: set {names} in orch's environment, or pass the variable it reads with agent.env_extra (names or globs such as \"MY_*\", added to agent.env_allow)"
        )
    })
}
