//! The run commands' output: `orch run`'s summary, `run list`, `run show`, and the
//! JSON lines of `orch run --json-events`.

use orch_engine::core::TaskStatus;
use orch_engine::core::ports::Undo;
use orch_engine::core::run::{AttemptState, Journaled, RunSnapshot, RunState};
use orch_engine::core::usage::Usage;
use orch_engine::{RunSummary, RunUpdate};

use super::describe_usage;
use orch_store::{AttemptRow, MergeRow, ProposalRow, RunInfo, ValidationRow};
use serde::Serialize;

#[derive(Serialize)]
struct TaskStateJson<'a> {
    id: i64,
    /// Its title on the board now (`run show`; left out of a run's summary).
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    status: TaskStatus,
}

fn short(h: &Option<orch_engine::core::run::CommitId>) -> Option<String> {
    h.as_ref().map(|h| h.0.clone())
}

/// `orch run --json`'s summary.
#[derive(Serialize)]
pub struct SummaryJson<'a> {
    run: &'a str,
    state: RunState,
    integration_branch: &'a str,
    head: Option<String>,
    validated_head: Option<String>,
    head_is_validated: bool,
    tasks: Vec<TaskStateJson<'a>>,
    /// Every attempt the run made, and those that failed (a task can fail and pass on
    /// its retry: its failed attempt counts here, not among failed tasks).
    attempts: usize,
    failed_attempts: usize,
    artifacts: &'a std::path::Path,
    notes: &'a [String],
    usage: &'a Usage,
}

impl<'a> From<&'a RunSummary> for SummaryJson<'a> {
    fn from(s: &'a RunSummary) -> Self {
        SummaryJson {
            run: &s.run.0,
            state: s.state,
            integration_branch: &s.integration_branch,
            head: short(&s.head),
            validated_head: short(&s.validated_head),
            head_is_validated: s.head_is_validated(),
            tasks: s
                .tasks
                .iter()
                .map(|(t, st)| TaskStateJson {
                    id: t.0,
                    title: None,
                    status: *st,
                })
                .collect(),
            attempts: s.attempts.0,
            failed_attempts: s.attempts.1,
            artifacts: &s.artifacts,
            notes: &s.notes,
            usage: &s.usage,
        }
    }
}

/// The summary as the last line of `--json-events`.
#[derive(Serialize)]
struct SummaryLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    summary: SummaryJson<'a>,
}

/// Prints a run's summary as one JSON line of type `summary`.
pub fn print_summary_line(s: &RunSummary) -> anyhow::Result<()> {
    let line = SummaryLine {
        r#type: "summary",
        summary: SummaryJson::from(s),
    };
    println!("{}", serde_json::to_string(&line)?);
    Ok(())
}

/// Prints a run's summary.
pub fn print_summary(s: &RunSummary, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(&SummaryJson::from(s));
    }
    let count = |st: TaskStatus| s.tasks.iter().filter(|(_, x)| *x == st).count();
    let state = match s.state {
        RunState::Completed => "completed",
        RunState::Canceled => "canceled",
        RunState::Halted => "halted",
        _ => "ended",
    };
    println!("Run {} {state}.", s.run);
    let mut canceled = match count(TaskStatus::Canceled) {
        0 => String::new(),
        n => format!("   {n} canceled"),
    };
    if let n @ 1.. = count(TaskStatus::Review) {
        canceled.push_str(&format!("   {n} in review"));
    }
    println!(
        "  tasks: {} done   {} failed   {} blocked   {} back in the backlog{canceled}",
        count(TaskStatus::Done),
        count(TaskStatus::Failed),
        count(TaskStatus::Blocked),
        count(TaskStatus::Backlog)
    );
    let (attempts, failed) = s.attempts;
    println!("  attempts: {attempts}, of which {failed} failed");
    let head = s
        .head
        .as_ref()
        .map(|h| h.0.chars().take(12).collect::<String>())
        .unwrap_or_default();
    println!("  integration branch: {} at {head}", s.integration_branch);
    if !s.head_is_validated() {
        let validated = s
            .validated_head
            .as_ref()
            .map_or("nothing", |h| h.0.as_str());
        println!(
            "  WARNING: {} was moved outside orch: it points at {}, but the last commit this run validated is {validated}; do not merge it without checking",
            s.integration_branch,
            s.head.as_ref().map_or("nothing", |h| h.0.as_str()),
        );
    }
    if s.usage.tokens() > 0 || s.usage.cost.is_some() {
        println!("  agents used: {}", s.usage.summary());
    }
    println!("  logs: {}", s.artifacts.display());
    Ok(())
}

/// After a summary: each task that did not end done, why, and where its logs are.
pub fn print_failures(s: &RunSummary, attempts: &[AttemptRow]) {
    let mut any = false;
    for (task, status) in &s.tasks {
        if !matches!(status, TaskStatus::Failed | TaskStatus::Blocked) {
            continue;
        }
        let Some(last) = attempts
            .iter()
            .filter(|a| a.attempt.task == *task)
            .max_by_key(|a| a.attempt.number)
        else {
            continue;
        };
        let why = last
            .failure
            .clone()
            .and_then(|f| serde_json::from_value::<orch_engine::core::run::FailureKind>(f).ok())
            .map_or_else(|| last.state.clone(), |k| k.to_string());
        let logs = s
            .artifacts
            .join(task.0.to_string())
            .join(last.attempt.number.to_string());
        println!("  #{task} {status}: {why}; logs: {}", logs.display());
        any = true;
    }
    if any {
        println!("  every attempt, and why: orch run show {}", s.run);
    }
}

/// One run of `run list --json`.
#[derive(Serialize)]
pub struct RunListJson<'a> {
    id: &'a str,
    state: RunState,
    interrupted: bool,
    created_at: String,
}

impl<'a> RunListJson<'a> {
    /// `r`, interrupted or not.
    pub fn new(r: &'a RunInfo, interrupted: bool) -> RunListJson<'a> {
        RunListJson {
            id: &r.id.0,
            state: r.state,
            interrupted,
            created_at: r.created_at.to_string(),
        }
    }
}

#[derive(Serialize)]
struct AttemptJson<'a> {
    attempt: String,
    state: &'a str,
    branch: &'a str,
    base: &'a str,
    head: &'a Option<String>,
    merge: &'a Option<String>,
    failure: &'a Option<serde_json::Value>,
    usage: &'a Option<Usage>,
}

#[derive(Serialize)]
struct ValidationJson<'a> {
    attempt: String,
    stage: &'a str,
    position: i32,
    command: &'a str,
    outcome: &'a str,
    exit_code: Option<i32>,
    duration_ms: u64,
    log: &'a str,
    tail: &'a [String],
}

#[derive(Serialize)]
struct MergeJson<'a> {
    attempt: String,
    onto: &'a Option<String>,
    commit: &'a Option<String>,
    conflicts: &'a [String],
}

#[derive(Serialize)]
struct ProposalJson<'a> {
    task: Option<i64>,
    proposal: &'a serde_json::Value,
    verdict: &'a str,
    reason: &'a str,
}

/// Everything `run show` reads about a run.
pub struct RunStory<'a> {
    /// The run.
    pub info: &'a RunInfo,
    /// No live orch drives it.
    pub interrupted: bool,
    /// The owner driving it, if one does.
    pub driven_by: Option<String>,
    /// Its journal, folded.
    pub snap: &'a RunSnapshot,
    /// Where the integration branch really is.
    pub real_head: orch_engine::run::setup::LineHead,
    /// Its attempts, validations, merges and proposals.
    pub attempts: &'a [AttemptRow],
    /// Gate commands.
    pub validations: &'a [ValidationRow],
    /// Merges.
    pub merges: &'a [MergeRow],
    /// Planner proposals.
    pub proposals: &'a [ProposalRow],
    /// Integration gates that passed after failing: attempt, failures, first failure.
    pub flaky: &'a [(String, u32, String)],
    /// Attempts that landed although they undid landed work: attempt, what, why.
    pub reverts: &'a [(String, Vec<Undo>, String)],
    /// The board's titles, by task.
    pub titles: &'a std::collections::BTreeMap<orch_engine::core::TaskId, String>,
}

/// `run show --json`.
#[derive(Serialize)]
struct RunShowJson<'a> {
    id: &'a str,
    state: RunState,
    interrupted: bool,
    driven_by: &'a Option<String>,
    integration_branch: &'a str,
    head: Option<String>,
    validated_head: Option<String>,
    head_is_validated: bool,
    tasks: Vec<TaskStateJson<'a>>,
    /// Every attempt's usage, summed.
    usage: Usage,
    attempts: Vec<AttemptJson<'a>>,
    validations: Vec<ValidationJson<'a>>,
    merges: Vec<MergeJson<'a>>,
    proposals: Vec<ProposalJson<'a>>,
    flaky: Vec<FlakyJson<'a>>,
    reverts: Vec<RevertJson<'a>>,
}

#[derive(Serialize)]
struct RevertJson<'a> {
    attempt: &'a str,
    undone: &'a [Undo],
    why: &'a str,
}

#[derive(Serialize)]
struct FlakyJson<'a> {
    attempt: &'a str,
    failures: u32,
    first_failure: &'a str,
}

impl<'a> RunStory<'a> {
    fn json(&self) -> RunShowJson<'_> {
        RunShowJson {
            id: &self.info.id.0,
            state: self.info.state,
            interrupted: self.interrupted,
            driven_by: &self.driven_by,
            integration_branch: &self.real_head.branch,
            head: short(&self.real_head.head),
            validated_head: short(&self.snap.head),
            head_is_validated: self.real_head.holds_validated,
            tasks: self
                .snap
                .tasks
                .iter()
                .map(|(t, s)| TaskStateJson {
                    id: t.0,
                    title: self.titles.get(t).map(String::as_str),
                    status: *s,
                })
                .collect(),
            usage: self.total_usage(),
            attempts: self
                .attempts
                .iter()
                .map(|a| AttemptJson {
                    attempt: a.attempt.to_string(),
                    state: &a.state,
                    branch: &a.branch,
                    base: &a.base,
                    head: &a.head,
                    merge: &a.merge,
                    failure: &a.failure,
                    usage: &a.usage,
                })
                .collect(),
            validations: self
                .validations
                .iter()
                .map(|v| ValidationJson {
                    attempt: v.attempt.to_string(),
                    stage: &v.stage,
                    position: v.position,
                    command: &v.record.command,
                    outcome: &v.record.outcome,
                    exit_code: v.record.exit_code,
                    duration_ms: v.record.duration_ms,
                    log: &v.record.log_path,
                    tail: &v.record.tail,
                })
                .collect(),
            merges: self
                .merges
                .iter()
                .map(|m| MergeJson {
                    attempt: m.attempt.to_string(),
                    onto: &m.onto,
                    commit: &m.commit,
                    conflicts: &m.conflicts,
                })
                .collect(),
            proposals: self
                .proposals
                .iter()
                .map(|p| ProposalJson {
                    task: p.task.map(|t| t.0),
                    proposal: &p.proposal,
                    verdict: &p.verdict,
                    reason: &p.reason,
                })
                .collect(),
            flaky: self.flaky_json(),
            reverts: self.reverts_json(),
        }
    }

    /// Integration gates that passed after failing.
    fn flaky_json(&self) -> Vec<FlakyJson<'_>> {
        self.flaky
            .iter()
            .map(|(attempt, failures, why)| FlakyJson {
                attempt,
                failures: *failures,
                first_failure: why,
            })
            .collect()
    }

    /// Undos of landed work that landed anyway.
    fn reverts_json(&self) -> Vec<RevertJson<'_>> {
        self.reverts
            .iter()
            .map(|(attempt, undone, why)| RevertJson {
                attempt,
                undone,
                why,
            })
            .collect()
    }

    /// Prints the story.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            return super::print_json(&self.json());
        }
        let id = &self.info.id;
        println!(
            "Run {id} ({})",
            format!("{:?}", self.info.state).to_lowercase()
        );
        if self.interrupted {
            println!("  interrupted: no orch drives it; `orch run resume {id}` goes on");
        }
        if let Some(owner) = &self.driven_by {
            println!("  driven by {owner}");
        }
        self.print_head();
        for (a, n, why) in self.flaky {
            println!("  flaky: {a}'s integration gate passed after {n} failure(s); first: {why}");
        }
        for (a, undone, why) in self.reverts {
            let what: Vec<String> = undone.iter().map(Undo::to_string).collect();
            println!("  reverts: {a} undid {} ({why})", what.join("; "));
        }
        let mut task = None;
        for (a, r) in &self.snap.attempts {
            if task != Some(a.task) {
                task = Some(a.task);
                let title = self.titles.get(&a.task).map_or("(removed)", String::as_str);
                println!("  #{} {title}", a.task);
            }
            let state = match &r.state {
                AttemptState::Failed(k) => format!("failed: {k}"),
                other => format!("{:?}", other.phase()).to_lowercase(),
            };
            println!("  {:<14} {state}", a.to_string());
            if let Some(u) = &r.usage {
                println!("      used {}", describe_usage(u));
            }
            for v in self.validations.iter().filter(|v| v.attempt == *a) {
                let r = &v.record;
                println!(
                    "      {} #{}: `{}` {} ({} ms)",
                    v.stage, v.position, r.command, r.outcome, r.duration_ms
                );
                // A failed command's last lines say why.
                if r.exit_code != Some(0) {
                    for l in r.tail.iter().rev().take(5).rev() {
                        println!("        | {l}");
                    }
                }
            }
        }
        let total = self.total_usage();
        if total.tokens() > 0 || total.cost.is_some() {
            println!("  usage: {}", total.summary());
        }
        let rejected = self
            .proposals
            .iter()
            .filter(|p| p.verdict == "rejected")
            .count();
        if !self.proposals.is_empty() {
            println!(
                "  planner: {} proposals, {rejected} rejected",
                self.proposals.len()
            );
        }
        Ok(())
    }

    /// The attempts' usage and the planner's.
    fn total_usage(&self) -> Usage {
        let mut total = self.snap.planner_usage.clone();
        for u in self.attempts.iter().filter_map(|a| a.usage.as_ref()) {
            total.add(u);
        }
        total.model.clear();
        total
    }

    fn print_head(&self) {
        let Some(h) = &self.snap.head else { return };
        let line = &self.real_head;
        match &line.head {
            Some(real) if !line.holds_validated => println!(
                "  integration head: {real}, NOT validated: {} was moved outside orch (the run left it at {h})",
                line.branch
            ),
            Some(real) if real != h => println!(
                "  integration head: {h} ({} has moved on to {} since)",
                line.branch,
                real.short()
            ),
            _ => println!("  integration head: {h} ({})", line.branch),
        }
    }
}

/// `orch run` with nothing to claim: what is stuck, and how to move it.
pub fn print_idle(idle: &orch_engine::Idle, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(&serde_json::json!({
            "nothing_to_claim": true,
            "failed": idle.failed,
            "blocked": idle.blocked,
            "waiting": idle.waiting,
        }));
    }
    println!("{idle}");
    Ok(())
}

/// One line of `orch run --json-events`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UpdateJson<'a> {
    /// A durable journal event.
    Journal {
        /// When the core decided it.
        at: String,
        /// Its kind, as in `orch events`.
        kind: &'static str,
        /// Its one-line reason.
        reason: String,
        /// The event itself.
        event: &'a orch_engine::core::run::RunEvent,
    },
    /// A line an attempt's process printed.
    Output {
        /// `task-3-1`.
        attempt: String,
        /// `worker`, `integration`, or absent for the agent.
        stage: Option<&'static str>,
        /// The line.
        line: &'a str,
    },
    /// Where the run stands.
    Heartbeat {
        /// When.
        at: String,
        /// Its state.
        state: RunState,
        /// Attempts holding a slot.
        live_attempts: usize,
        /// Whether claiming is paused.
        paused: bool,
    },
    /// The run stopped being driven.
    Ended {
        /// How it ended, if it did.
        state: Option<RunState>,
        /// Why the driver stopped, if it failed.
        error: &'a Option<String>,
    },
}

impl<'a> From<&'a RunUpdate> for UpdateJson<'a> {
    fn from(u: &'a RunUpdate) -> Self {
        match u {
            RunUpdate::Journal(Journaled { at, event }) => UpdateJson::Journal {
                at: at.to_string(),
                kind: event.kind(),
                reason: event.reason(),
                event,
            },
            RunUpdate::Output {
                attempt,
                stage,
                line,
            } => UpdateJson::Output {
                attempt: attempt.to_string(),
                stage: stage.map(|s| s.as_str()),
                line,
            },
            RunUpdate::Heartbeat(p) => UpdateJson::Heartbeat {
                at: p.at.to_string(),
                state: p.state,
                live_attempts: p.live_attempts,
                paused: p.paused,
            },
            RunUpdate::Ended { state, error } => UpdateJson::Ended {
                state: *state,
                error,
            },
        }
    }
}
