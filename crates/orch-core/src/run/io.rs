//! What goes into the orchestrator ([`Input`]) and what comes out ([`Command`], with
//! [`super::RunEvent`]s to persist), plus planner proposals.

use serde::{Deserialize, Serialize};

use super::event::Journaled;
use super::proposal::Proposal;
use super::report::{AgentExit, AgentReport, Changes};
pub use super::types::Stage;
use super::types::{AttemptId, CommitId, FailureKind, RunState};
use crate::task::{Task, TaskId, TaskStatus};
use crate::usage::Usage;

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
    /// Tasks (keys) whose landed work it may undo: its body's `Reverts:` lines.
    pub reverts: Vec<String>,
    /// Its labels (`review.labels` decide by them).
    pub labels: Vec<String>,
    /// Its review, while one is under way.
    pub review: Option<Box<crate::review::Review>>,
}

impl From<&Task> for TaskSpec {
    fn from(t: &Task) -> Self {
        TaskSpec {
            id: t.id,
            status: t.status,
            priority: t.priority,
            depends_on: t.depends_on.clone(),
            touches: t.touches.clone(),
            reverts: crate::task::declared_reverts(&t.body),
            labels: t.labels.clone(),
            review: t.review.clone(),
        }
    }
}

/// How an attempt's leftovers are kept (its logs and, if not removed, its worktree
/// and branch): a success's go first, a failure's are kept longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Succeeded, or interrupted and superseded by a retry.
    Success,
    /// Failed or canceled: evidence worth keeping.
    Failure,
}

/// The result of an in-memory merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeResult {
    /// Merged; the merge (or squash) commit is written, no ref moved.
    Clean {
        /// The written commit.
        commit: CommitId,
        /// What of other tasks' landed work the attempt's change undoes (the revert
        /// guard's finding; `policy.on_revert` judges it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        undoes: Vec<crate::ports::Undo>,
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
    /// The ref moved on from where this run left it to validated work another orch
    /// run landed (a shared integration line): the candidate is merged again onto it.
    Overtaken {
        /// Where it is now.
        actual: CommitId,
    },
    /// The ref may not move at all (a worktree has the branch checked out): the
    /// candidate fails as orch's own, and the run halts with the reason.
    Refused {
        /// Why.
        message: String,
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

/// An input, fed with the current time to [`super::Orchestrator::handle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// The engine resolved the base; the integration branch starts at `head`.
    Start {
        /// The base commit.
        head: CommitId,
    },
    /// The board changed (tasks added, removed, edited, or moved by people). The run
    /// obeys: a task it owns that a person moved or removed ends its attempt, and is
    /// never moved by the run again.
    BoardChanged {
        /// Every task on the board that the run may consider.
        tasks: Vec<TaskSpec>,
    },
    /// The claim of [`Command::Claim`] is durable: the task is the run's.
    Claimed {
        /// The task.
        task: TaskId,
    },
    /// The claim was refused (someone else moved or removed the task first); the run
    /// skips the task and goes on.
    ClaimRefused {
        /// The task.
        task: TaskId,
        /// Why, e.g. `task 3 is canceled, not backlog`.
        why: String,
    },
    /// Stop claiming new tasks until [`Input::ResumeClaims`]; live attempts go on.
    PauseClaims,
    /// Claim again after [`Input::PauseClaims`].
    ResumeClaims,
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
        /// What it reported.
        report: AgentReport,
    },
    /// What a planner reported using for a request; it counts toward the run's budget.
    PlannerUsage {
        /// The request.
        request: u64,
        /// Its usage.
        usage: Usage,
    },
    /// A live agent's report so far (its usage up to now, a quota signature): the
    /// core may stop it for its budget or open the quota breaker.
    AgentProgress {
        /// The attempt.
        attempt: AttemptId,
        /// What it reported so far.
        report: AgentReport,
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
        /// Set when the gate did not run: a pass of the same commands, with the same
        /// named environment, on the same tree stands for it; who earned that pass.
        reused: Option<String>,
    },
    /// A gate could not run at all (its worktree is missing, the checkout failed, the
    /// disk is full, its results could not be recorded): orch's fault, not the agent's.
    GateBroken {
        /// The attempt.
        attempt: AttemptId,
        /// Which gate.
        stage: Stage,
        /// What went wrong.
        message: String,
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
    /// The engine's work for the attempt's operation out (provisioning, its agent, a
    /// gate, a merge, a ref update) ended without a result: it panicked. orch's fault:
    /// the attempt fails as `infrastructure` and never stays waiting.
    WorkFailed {
        /// The attempt.
        attempt: AttemptId,
        /// What happened.
        why: String,
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
    /// The machine's CPU was `busy` permille of all its cores since the last such
    /// input (about a second before): gate slots left to the machine follow it.
    CpuLoad {
        /// Busy time over all cores, 0 to 1000.
        busy: u32,
    },
    /// Nothing happened, but time passed: check deadlines.
    Tick,
}

/// A command for the engine to execute, in order. Every [`Command::Persist`] (and
/// [`Command::Claim`]) must be durably written before any command after it is executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Write this event to the journal.
    Persist(Journaled),
    /// Write this claim (a `TaskMoved` to `in_progress`) to the journal as a
    /// compare-and-swap on the task's status, then answer [`Input::Claimed`] or
    /// [`Input::ClaimRefused`].
    Claim {
        /// The task.
        task: TaskId,
        /// The claim's journal entry.
        event: Journaled,
    },
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
        /// The previous attempt's agent session, to resume (`agent.resume_session`).
        resume_session: Option<String>,
        /// The base the previous attempt started from: what landed since is worth
        /// telling the retry.
        previous_base: Option<CommitId>,
        /// A reviewer's requested changes, for a new round's prompt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        review: Option<String>,
    },
    /// Run a gate on `commit`.
    RunGate {
        /// The attempt.
        attempt: AttemptId,
        /// Which gate.
        stage: Stage,
        /// The commit to validate.
        commit: CommitId,
        /// Whether a pass of the same gate on the same tree may stand for this run
        /// (`validate.reuse`; never for a rerun of a failing gate).
        reuse: bool,
    },
    /// Merge `head` into `onto` in memory; write the commit, move no ref.
    Merge {
        /// The attempt.
        attempt: AttemptId,
        /// The integration head.
        onto: CommitId,
        /// The attempt's head.
        head: CommitId,
        /// The attempt's base: its change (base to head) is what the revert guard
        /// checks against other tasks' landed work.
        base: CommitId,
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
    /// Stop the attempt's running process group (agent or gate): SIGTERM, or SIGKILL if
    /// `hard`. The core sends the hard one when `kill_grace` has passed; the engine has
    /// no grace timer of its own.
    Abort {
        /// The attempt.
        attempt: AttemptId,
        /// Kill at once.
        hard: bool,
    },
    /// The attempt no longer needs its worktree (its work is committed on its branch
    /// and passed the worker gate; merges happen in memory): a pooled worktree goes
    /// back to the pool now, warm for the next attempt. Nothing answers it.
    ReleaseWorktree {
        /// The attempt.
        attempt: AttemptId,
    },
    /// The attempt is over: remove what the cleanup policy says.
    Cleanup {
        /// The attempt.
        attempt: AttemptId,
        /// Remove its worktree.
        remove_worktree: bool,
        /// Delete its branch.
        delete_branch: bool,
        /// How long its logs are kept.
        retention: Retention,
    },
    /// Read the board now and answer with [`Input::BoardChanged`], changed or not: the
    /// run is about to end for want of work, and looks once more first.
    RefreshBoard,
    /// Ask the planner for proposals.
    AskPlanner {
        /// Echo this in the answer.
        request: u64,
        /// The tasks the scheduler could claim now, in its order.
        claimable: Vec<TaskId>,
        /// How many attempts may start.
        free_slots: u32,
        /// Why the last attempt of each task waiting to retry failed.
        failures: Vec<(TaskId, FailureKind)>,
    },
    /// The run is over.
    Finish {
        /// How it ended.
        state: RunState,
    },
}

impl Command {
    /// The command's name, for diagnostics: `provision`, `spawn_agent`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Command::Persist(_) => "persist",
            Command::Claim { .. } => "claim",
            Command::Provision { .. } => "provision",
            Command::SpawnAgent { .. } => "spawn_agent",
            Command::RunGate { .. } => "run_gate",
            Command::Merge { .. } => "merge",
            Command::AdvanceRef { .. } => "advance_ref",
            Command::Abort { .. } => "abort",
            Command::ReleaseWorktree { .. } => "release_worktree",
            Command::Cleanup { .. } => "cleanup",
            Command::RefreshBoard => "refresh_board",
            Command::AskPlanner { .. } => "ask_planner",
            Command::Finish { .. } => "finish",
        }
    }

    /// The attempt it concerns, if any.
    pub fn attempt(&self) -> Option<AttemptId> {
        match self {
            Command::Provision { attempt, .. }
            | Command::SpawnAgent { attempt, .. }
            | Command::RunGate { attempt, .. }
            | Command::Merge { attempt, .. }
            | Command::AdvanceRef { attempt, .. }
            | Command::Abort { attempt, .. }
            | Command::ReleaseWorktree { attempt }
            | Command::Cleanup { attempt, .. } => Some(*attempt),
            _ => None,
        }
    }
}
