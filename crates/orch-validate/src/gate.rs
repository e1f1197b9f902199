//! Validation gates: an ordered list of commands for a stage, each with its own
//! timeout, stopping at the first failure unless told to keep going.

use std::path::PathBuf;
use std::time::Duration;

use orch_core::run::Stage;
use tokio_util::sync::CancellationToken;

use crate::pump::run;
use crate::runner::{CommandSpec, Environment, Outcome, Program, RunError};

/// A gate to run.
#[derive(Debug, Clone)]
pub struct GateSpec {
    /// `worker` or `integration`.
    pub stage: Stage,
    /// Shell command lines, in order.
    pub commands: Vec<String>,
    /// Where to run them.
    pub cwd: PathBuf,
    /// Their environment.
    pub env: Environment,
    /// Each command's timeout.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// The attempt's artifact directory; logs are `<stage>-<n>.log` in it.
    pub log_dir: PathBuf,
    /// Each log's cap.
    pub log_cap: u64,
    /// Run every command even after one fails.
    pub keep_going: bool,
    /// When set, SIGKILL only when this fires (see [`CommandSpec::hard_kill`]).
    pub hard_kill: Option<CancellationToken>,
    /// Where the commands' output lines go as they print them (lossy when full).
    pub lines: Option<tokio::sync::mpsc::Sender<crate::runner::Line>>,
}

/// One command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// The command line.
    pub command: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// How long it ran.
    pub duration: Duration,
    /// Its log.
    pub log_path: PathBuf,
    /// Its last lines of output.
    pub tail: Vec<String>,
}

/// A gate's result: what the store records and a retry prompt can quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateResult {
    /// Which gate.
    pub stage: Stage,
    /// True when every command passed (an empty gate passes).
    pub passed: bool,
    /// The commands that ran, in order.
    pub commands: Vec<CommandResult>,
    /// Commands not run because an earlier one failed or the gate was canceled.
    pub skipped: Vec<String>,
}

impl GateResult {
    /// The first failing command and the end of its output, for a retry prompt.
    pub fn summary(&self) -> String {
        let Some(failed) = self.commands.iter().find(|c| !c.outcome.success()) else {
            return format!("{} validation passed", self.stage.as_str());
        };
        let mut s = format!(
            "{} validation failed: `{}` {}",
            self.stage.as_str(),
            failed.command,
            failed.outcome
        );
        if !failed.tail.is_empty() {
            s.push_str("\nlast lines of its output:\n");
            for l in &failed.tail {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

/// Runs a gate.
pub async fn run_gate(spec: &GateSpec, cancel: &CancellationToken) -> Result<GateResult, RunError> {
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = false;
    for (i, line) in spec.commands.iter().enumerate() {
        if (failed && !spec.keep_going) || cancel.is_cancelled() {
            skipped.push(line.clone());
            continue;
        }
        let cmd = CommandSpec {
            program: Program::Shell(line.clone()),
            cwd: spec.cwd.clone(),
            env: spec.env.clone(),
            timeout: spec.timeout,
            kill_grace: spec.kill_grace,
            log_path: spec
                .log_dir
                .join(format!("{}-{}.log", spec.stage.as_str(), i + 1)),
            log_cap: spec.log_cap,
            stdin: None,
            capture_stdout: None,
            hard_kill: spec.hard_kill.clone(),
            log_frame: true,
        };
        let report = run(&cmd, cancel, spec.lines.clone()).await?;
        failed |= !report.outcome.success();
        results.push(CommandResult {
            command: line.clone(),
            exit_code: report.outcome.code(),
            outcome: report.outcome,
            duration: report.duration,
            log_path: report.log_path,
            tail: report.tail,
        });
    }
    Ok(GateResult {
        stage: spec.stage,
        passed: !failed && skipped.is_empty(),
        commands: results,
        skipped,
    })
}
