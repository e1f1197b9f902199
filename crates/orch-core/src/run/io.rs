//! What goes into the orchestrator ([`Input`]) and what comes out ([`Command`], with
//! [`RunEvent`]s to persist), plus planner proposals.

use serde::{Deserialize, Serialize};

use super::types::{AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind, RunState};
use crate::task::{Task, TaskId, TaskStatus};

/// What the core needs to know about a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Id.
    pub id: TaskId,
    /// Board status.
    pub status: TaskStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Must be done first.
    pub depends_on: Vec<TaskId>,
    /// Paths it expects to change.
    pub touches: Vec<String>,
}

impl From<&Task> for TaskSpec {
    fn from(t: &Task) -> Self {
        TaskSpec {
            id: t.id,
            status: t.status,
            priority: t.priority,
            depends_on: t.depends_on.clone(),
            touches: t.touches.clone(),
        }
    }
}

/// A validation stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// In the task worktree, on the attempt's head.
    Worker,
    /// On the merge commit, in the integration worktree.
    Integration,
}

impl Stage {
    /// `worker` or `integration`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Worker => "worker",
            Stage::Integration => "integration",
        }
    }
}

/// How an agent process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentExit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Never started (e.g. the program was not found).
    FailedToStart(String),
}

/// An agent that had finished, and whose work the engine had committed, when orch
/// stopped, though the core never heard of it. The engine finds these on resume (it
/// writes the facts beside the attempt's logs before it reports them), so a resumed
/// run goes on from that work instead of running the agent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedAgent {
    /// How it ended.
    pub exit: AgentExit,
    /// Its committed work, as [`Input::AgentExited`] would have carried it.
    pub changes: Option<Changes>,
}

/// The agent's work, committed by the engine after the agent exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The branch head after committing leftovers.
    pub head: CommitId,
    /// True when the head's tree equals the base's.
    pub empty: bool,
}

/// The result of an in-memory merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeResult {
    /// Merged; the merge (or squash) commit is written, no ref moved.
    Clean {
        /// The written commit.
        commit: CommitId,
    },
    /// Conflicted on these paths.
    Conflict {
        /// The conflicting paths.
        paths: Vec<String>,
    },
    /// The merge could not be attempted.
    Failed {
        /// Why.
        message: String,
    },
}

/// The result of a compare-and-swap ref update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefResult {
    /// The ref now points at the new commit.
    Advanced,
    /// The ref was not where orch last saw it.
    LostRace {
        /// Where it was.
        actual: CommitId,
    },
    /// The update failed.
    Failed {
        /// Why.
        message: String,
    },
}

/// One validation command's result, as the store records it (one row per command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// The command line.
    pub command: String,
    /// How it ended, in words: `exited with code 0`, `timed out`, ...
    pub outcome: String,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Its log file.
    pub log_path: String,
    /// The last lines of its output.
    pub tail: Vec<String>,
}

/// What to cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelScope {
    /// The whole run: stop claiming, abort live attempts, release their tasks.
    Run,
    /// One task's live attempt; the task becomes `canceled`.
    Task(TaskId),
}

/// A planner's proposal. The planner proposes; the core decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Proposal {
    /// Claim a task now, optionally with a note for the agent's prompt.
    Claim {
        /// The task.
        task: TaskId,
        /// Extra prompt text.
        #[serde(default)]
        note: Option<String>,
    },
    /// Leave a task for later.
    Defer {
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// Claim nothing more in this run.
    StopClaiming {
        /// Why.
        reason: String,
    },
}

/// The core's decision on a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Acted on.
    Accepted,
    /// Refused, with the reason.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// An input, fed with the current time to [`super::Orchestrator::handle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// The engine resolved the base; the integration branch starts at `head`.
    Start {
        /// The base commit.
        head: CommitId,
    },
    /// The board changed (tasks added, edited, or moved by people).
    BoardChanged {
        /// Every task on the board.
        tasks: Vec<TaskSpec>,
    },
    /// The planner answered request `request`.
    PlannerProposed {
        /// The request id from [`Command::AskPlanner`].
        request: u64,
        /// Its proposals, in order.
        proposals: Vec<Proposal>,
    },
    /// The planner failed (crash, invalid output).
    PlannerFailed {
        /// The request id.
        request: u64,
        /// Why.
        reason: String,
    },
    /// The attempt's branch and worktree exist.
    WorktreeReady {
        /// The attempt.
        attempt: AttemptId,
    },
    /// The attempt's worktree could not be created.
    WorktreeFailed {
        /// The attempt.
        attempt: AttemptId,
        /// Why.
        error: String,
    },
    /// The agent process ended and its work was committed.
    AgentExited {
        /// The attempt.
        attempt: AttemptId,
        /// How it ended.
        exit: AgentExit,
        /// Its committed work; `None` if it could not be recorded.
        changes: Option<Changes>,
    },
    /// A gate finished (or was aborted).
    GateFinished {
        /// The attempt.
        attempt: AttemptId,
        /// Which gate.
        stage: Stage,
        /// Whether every command passed.
        passed: bool,
        /// The failing command and the tail of its output, for the retry prompt.
        summary: String,
    },
    /// The in-memory merge finished.
    MergeFinished {
        /// The attempt.
        attempt: AttemptId,
        /// Its result.
        result: MergeResult,
    },
    /// The compare-and-swap update of the integration ref finished.
    RefUpdated {
        /// The attempt.
        attempt: AttemptId,
        /// Its result.
        result: RefResult,
    },
    /// The attempt's cleanup ran (idempotent; `error` if something was left behind).
    CleanedUp {
        /// The attempt.
        attempt: AttemptId,
        /// What could not be removed, if anything.
        error: Option<String>,
    },
    /// A person or a signal asked to cancel.
    Cancel {
        /// What.
        scope: CancelScope,
    },
    /// Nothing happened, but time passed: check deadlines.
    Tick,
}

/// A command for the engine to execute, in order. Every [`Command::Persist`] must be
/// durably written before any command after it is executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Write this event to the journal.
    Persist(RunEvent),
    /// Create the attempt's branch at `base`, with a worktree.
    Provision {
        /// The attempt.
        attempt: AttemptId,
        /// The branch to create.
        branch: String,
        /// The commit to start from (the integration head at claim time).
        base: CommitId,
    },
    /// Start the agent in the attempt's worktree.
    SpawnAgent {
        /// The attempt.
        attempt: AttemptId,
        /// A planner's note for the prompt.
        note: Option<String>,
        /// Why the previous attempt failed, for the retry prompt.
        previous_failure: Option<FailureKind>,
    },
    /// Run a gate on `commit`.
    RunGate {
        /// The attempt.
        attempt: AttemptId,
        /// Which gate.
        stage: Stage,
        /// The commit to validate.
        commit: CommitId,
    },
    /// Merge `head` into `onto` in memory; write the commit, move no ref.
    Merge {
        /// The attempt.
        attempt: AttemptId,
        /// The integration head.
        onto: CommitId,
        /// The attempt's head.
        head: CommitId,
    },
    /// Move the integration ref from `expected` to `new`, by compare-and-swap.
    AdvanceRef {
        /// The attempt.
        attempt: AttemptId,
        /// Where the ref must be.
        expected: CommitId,
        /// Where it goes.
        new: CommitId,
    },
    /// Stop the attempt's running process (agent or gate): SIGTERM, or SIGKILL if `hard`.
    Abort {
        /// The attempt.
        attempt: AttemptId,
        /// Kill at once.
        hard: bool,
    },
    /// The attempt is over: remove what the cleanup policy says.
    Cleanup {
        /// The attempt.
        attempt: AttemptId,
        /// Remove its worktree.
        remove_worktree: bool,
        /// Delete its branch.
        delete_branch: bool,
    },
    /// Ask the planner for proposals.
    AskPlanner {
        /// Echo this in the answer.
        request: u64,
        /// The tasks the scheduler could claim now, in its order.
        claimable: Vec<TaskId>,
        /// How many attempts may start.
        free_slots: u32,
    },
    /// The run is over.
    Finish {
        /// How it ended.
        state: RunState,
    },
}

/// A journal entry. Folding them in order ([`super::RunSnapshot::apply`]) rebuilds the
/// run's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run changed state.
    RunMoved {
        /// From.
        from: RunState,
        /// To.
        to: RunState,
        /// Why.
        reason: String,
    },
    /// The integration head was set at the start of the run.
    HeadSet {
        /// The base commit.
        head: CommitId,
    },
    /// The integration ref advanced to a validated merge commit.
    HeadAdvanced {
        /// The attempt it integrates.
        attempt: AttemptId,
        /// The previous head.
        from: CommitId,
        /// The new head.
        to: CommitId,
    },
    /// The run moved a task on the board.
    TaskMoved {
        /// The task.
        task: TaskId,
        /// From.
        from: TaskStatus,
        /// To.
        to: TaskStatus,
        /// Why.
        reason: String,
    },
    /// An attempt was created (before its branch and worktree exist).
    AttemptCreated {
        /// The attempt.
        attempt: AttemptId,
        /// Its branch.
        branch: String,
        /// The commit it starts from.
        base: CommitId,
    },
    /// An attempt changed state.
    AttemptMoved {
        /// The attempt.
        attempt: AttemptId,
        /// From.
        from: AttemptPhase,
        /// To.
        to: AttemptState,
        /// Why.
        reason: String,
    },
    /// The agent's committed work.
    AttemptHead {
        /// The attempt.
        attempt: AttemptId,
        /// Its head.
        head: CommitId,
        /// True when it changed nothing.
        empty: bool,
    },
    /// A clean merge commit was written (no ref moved).
    MergeWritten {
        /// The attempt.
        attempt: AttemptId,
        /// The merge commit.
        commit: CommitId,
        /// The integration head it was made on.
        onto: CommitId,
    },
    /// The integration gate passed on the merge commit; the ref update comes next.
    IntegrationPassed {
        /// The attempt.
        attempt: AttemptId,
        /// The validated commit.
        commit: CommitId,
    },
    /// Cleanup was requested for the attempt.
    CleanupRequested {
        /// The attempt.
        attempt: AttemptId,
    },
    /// The attempt's cleanup ran.
    CleanupDone {
        /// The attempt.
        attempt: AttemptId,
        /// What could not be removed, if anything.
        error: Option<String>,
    },
    /// A planner proposal and the core's verdict.
    ProposalJudged {
        /// The proposal.
        proposal: Proposal,
        /// The verdict.
        verdict: Verdict,
    },
    /// The scheduler decided without the planner.
    PlannerFallback {
        /// Why.
        reason: String,
    },
    /// The run was resumed after a crash.
    Resumed {
        /// Attempts found in flight.
        interrupted: Vec<AttemptId>,
        /// What reconciliation with git found.
        reason: String,
    },
}

impl RunEvent {
    /// The event's kind, as stored in the `events` table.
    pub fn kind(&self) -> &'static str {
        match self {
            RunEvent::RunMoved { .. } => "run.moved",
            RunEvent::HeadSet { .. } => "run.head_set",
            RunEvent::HeadAdvanced { .. } => "run.head_advanced",
            RunEvent::TaskMoved { .. } => crate::event::kind::TASK_MOVED,
            RunEvent::AttemptCreated { .. } => "attempt.created",
            RunEvent::AttemptMoved { .. } => "attempt.moved",
            RunEvent::AttemptHead { .. } => "attempt.head",
            RunEvent::MergeWritten { .. } => "attempt.merge_written",
            RunEvent::IntegrationPassed { .. } => "attempt.integration_passed",
            RunEvent::CleanupRequested { .. } => "attempt.cleanup",
            RunEvent::CleanupDone { .. } => "attempt.cleaned",
            RunEvent::ProposalJudged { .. } => "planner.proposal",
            RunEvent::PlannerFallback { .. } => "planner.fallback",
            RunEvent::Resumed { .. } => "run.resumed",
        }
    }

    /// A one-line description for the audit log's `reason` column.
    pub fn reason(&self) -> String {
        match self {
            RunEvent::RunMoved { from, to, reason } => {
                format!("{from:?} -> {to:?}: {reason}").to_lowercase()
            }
            RunEvent::HeadSet { head } => format!("integration branch starts at {head}"),
            RunEvent::HeadAdvanced { attempt, from, to } => {
                format!("{attempt} advanced the integration ref {from} -> {to}")
            }
            RunEvent::TaskMoved {
                from, to, reason, ..
            } => format!("{from} -> {to}: {reason}"),
            RunEvent::AttemptCreated { attempt, base, .. } => {
                format!("{attempt} created from {base}")
            }
            RunEvent::AttemptMoved {
                attempt,
                from,
                to,
                reason,
            } => {
                format!(
                    "{attempt} {} -> {}: {reason}",
                    format!("{from:?}").to_lowercase(),
                    format!("{:?}", to.phase()).to_lowercase()
                )
            }
            RunEvent::AttemptHead {
                attempt,
                head,
                empty,
            } => {
                format!(
                    "{attempt} head {head}{}",
                    if *empty { " (no changes)" } else { "" }
                )
            }
            RunEvent::MergeWritten {
                attempt,
                commit,
                onto,
            } => format!("{attempt} merged cleanly as {commit} onto {onto}"),
            RunEvent::IntegrationPassed { attempt, commit } => {
                format!("{attempt} passed integration validation on {commit}")
            }
            RunEvent::CleanupRequested { attempt } => format!("{attempt} cleanup requested"),
            RunEvent::CleanupDone { attempt, error } => match error {
                Some(e) => format!("{attempt} cleanup left something behind: {e}"),
                None => format!("{attempt} cleaned up"),
            },
            RunEvent::ProposalJudged { proposal, verdict } => format!("{proposal:?}: {verdict:?}"),
            RunEvent::PlannerFallback { reason } => reason.clone(),
            RunEvent::Resumed { reason, .. } => format!("resumed: {reason}"),
        }
    }

    /// The attempt number it concerns, if any.
    pub fn attempt(&self) -> Option<u32> {
        match self {
            RunEvent::HeadAdvanced { attempt, .. }
            | RunEvent::AttemptCreated { attempt, .. }
            | RunEvent::AttemptMoved { attempt, .. }
            | RunEvent::AttemptHead { attempt, .. }
            | RunEvent::MergeWritten { attempt, .. }
            | RunEvent::IntegrationPassed { attempt, .. }
            | RunEvent::CleanupRequested { attempt, .. }
            | RunEvent::CleanupDone { attempt, .. } => Some(attempt.number),
            _ => None,
        }
    }

    /// The task it concerns, if any.
    pub fn task(&self) -> Option<TaskId> {
        match self {
            RunEvent::TaskMoved { task, .. } => Some(*task),
            RunEvent::HeadAdvanced { attempt, .. }
            | RunEvent::AttemptCreated { attempt, .. }
            | RunEvent::AttemptMoved { attempt, .. }
            | RunEvent::AttemptHead { attempt, .. }
            | RunEvent::MergeWritten { attempt, .. }
            | RunEvent::IntegrationPassed { attempt, .. }
            | RunEvent::CleanupRequested { attempt, .. }
            | RunEvent::CleanupDone { attempt, .. } => Some(attempt.task),
            RunEvent::ProposalJudged { proposal, .. } => match proposal {
                Proposal::Claim { task, .. } | Proposal::Defer { task, .. } => Some(*task),
                Proposal::StopClaiming { .. } => None,
            },
            _ => None,
        }
    }
}
