//! The run's journal: [`RunEvent`]s, each stamped with the `now` the core decided
//! with ([`Journaled`]), with their kinds (their one-line reasons are `reason`'s).

use serde::{Deserialize, Serialize};

use super::proposal::{Proposal, Verdict};
use super::types::{AttemptId, AttemptPhase, AttemptState, CommitId, RunState};
use crate::review::Review;
use crate::task::{TaskId, TaskStatus};
use crate::time::Timestamp;
use crate::usage::Usage;

/// A journal entry with the time the core decided it at: a replay of the journal
/// reproduces the core's deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journaled {
    /// The `now` of the input that produced it.
    pub at: Timestamp,
    /// The event.
    pub event: RunEvent,
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
    /// The attempt's work passed its worker gate and waits for a person's review;
    /// the store keeps `review` on its task.
    ReviewRequested {
        /// The attempt.
        attempt: AttemptId,
        /// The review, pending.
        review: Review,
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
    /// An input the core could not apply (stale, unknown, or refused), with why.
    /// Nothing else changed.
    InputRefused {
        /// The input's kind, e.g. `gate_finished`.
        input: String,
        /// The attempt or task it named, if any (`task-3-1`, `task 3`).
        about: Option<String>,
        /// Why it was refused.
        reason: String,
    },
    /// A claim was refused by the store (someone moved or removed the task first);
    /// the run skips the task.
    ClaimSkipped {
        /// The task.
        task: TaskId,
        /// Why.
        why: String,
    },
    /// A person moved (or removed) a task the run owned: the run lets it go, ends its
    /// attempt, and never moves it again. Not projected onto the board: it is already
    /// there.
    TaskTaken {
        /// The task.
        task: TaskId,
        /// Its status on the board now; `None` if it was removed.
        status: Option<TaskStatus>,
    },
    /// Claiming was paused or resumed.
    ClaimsPaused {
        /// True when paused.
        paused: bool,
    },
    /// What the agent reported it used, when it exited.
    AttemptUsage {
        /// The attempt.
        attempt: AttemptId,
        /// Its usage.
        usage: Usage,
    },
    /// What the planner reported using for a request (part of the run's spending).
    PlannerUsage {
        /// The request.
        request: u64,
        /// Its usage.
        usage: Usage,
    },
    /// An agent's report held a figure that cannot be true (a negative, NaN or
    /// infinite cost, a token count that is not a whole number): it was left out of
    /// the attempt's usage. Journaled once per attempt.
    ReportRefused {
        /// The attempt.
        attempt: AttemptId,
        /// What was wrong.
        reason: String,
    },
    /// An attempt lands although its change undoes other tasks' landed work: policy
    /// allows it, its task declares it, or its retry, told, did it again.
    Reverts {
        /// The attempt.
        attempt: AttemptId,
        /// What it undoes.
        undone: Vec<crate::ports::Undo>,
        /// Why it may.
        why: String,
    },
    /// A gate did not run: a pass of the same commands, with the same named
    /// environment, on the same tree stands for it (`validate.reuse`).
    GateReused {
        /// The attempt.
        attempt: AttemptId,
        /// Which gate.
        stage: super::types::Stage,
        /// Who earned the pass (run and attempt).
        by: String,
    },
    /// A failed task's retry waits for other tasks' work in flight: it runs once that
    /// work lands (on the new head, spending no attempt) or, if none lands, after it
    /// all ended.
    RetryWaits {
        /// The task.
        task: TaskId,
        /// The attempt that failed.
        attempt: AttemptId,
        /// The tasks whose work it waits for.
        on: Vec<TaskId>,
    },
    /// The user moved or deleted their own branch (the run's base or target) while an
    /// attempt's agent ran: no one's failure, and orch left it as it is.
    UserRefsMoved {
        /// The attempt whose agent was running.
        attempt: AttemptId,
        /// What moved, in words.
        moves: Vec<String>,
    },
    /// A budget cap was reached: the run stops claiming, or an attempt is stopped.
    BudgetSpent {
        /// The attempt stopped for its task's cap; `None` for the run's cap.
        attempt: Option<AttemptId>,
        /// Which cap, and what was spent.
        detail: String,
    },
    /// The quota breaker opened (claiming waits until `until`, then one probe runs)
    /// or closed.
    QuotaBreaker {
        /// The probe's time while open; `None` when it closed.
        until: Option<Timestamp>,
        /// Why.
        reason: String,
    },
    /// A candidate's integration gate failed and is run again
    /// (`validate.integration_retries`).
    GateRerun {
        /// The candidate.
        attempt: AttemptId,
        /// Which rerun this is (1 for the first).
        rerun: u32,
        /// What failed.
        summary: String,
    },
    /// A batch's candidate counts as validated: the gate passed on a candidate stacked
    /// above it, which holds its work (`run.integration_batch`).
    IntegrationImplied {
        /// The candidate.
        attempt: AttemptId,
        /// The candidate whose gate passed.
        by: AttemptId,
        /// That candidate's merge commit.
        commit: CommitId,
    },
    /// A batch's gate failed while everything below it passed, and finding its
    /// culprit takes a search: it is bisected beside the stack, which goes on without
    /// it.
    SetAside {
        /// The batch, bottom first.
        batch: Vec<AttemptId>,
        /// The candidate whose gate failed, its top.
        failed: AttemptId,
        /// The merge it is stacked on.
        onto: CommitId,
    },
    /// The integration queue's shape, as the run starts, and each time `auto` sizes
    /// batches anew from the run's recent gate verdicts.
    Shaped {
        /// Candidates gated at once.
        depth: u32,
        /// Attempts per batch, at most.
        batch: u32,
        /// Why, for people.
        why: String,
    },
    /// A candidate's integration gate passed after failing: a flaky gate.
    Flaky {
        /// The candidate.
        attempt: AttemptId,
        /// How many runs failed before the pass.
        failures: u32,
        /// What failed first.
        summary: String,
    },
    /// The integration line moved on, by another orch run's validated work, while
    /// `attempt` was landing: the run builds on `to` from now on.
    LineMovedOn {
        /// The attempt merged again onto `to`; `None` when a resume found the line
        /// moved on while the run was down.
        attempt: Option<AttemptId>,
        /// Where this run had left the line.
        from: CommitId,
        /// Where another run left it.
        to: CommitId,
    },
    /// A branch moved outside the integration queue: the integration line opened at
    /// the start (created, fast-forwarded to a base that moved on, or the base merged
    /// in and validated), or the finish (the target fast-forwarded, a push).
    Landed {
        /// The branch, or `<remote>/<branch>` for a push.
        branch: String,
        /// Where it was; `None` when it was created.
        from: Option<CommitId>,
        /// Where it is now.
        to: CommitId,
        /// What happened, for people.
        how: String,
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
            RunEvent::ReviewRequested { .. } => crate::event::kind::REVIEW_REQUESTED,
            RunEvent::MergeWritten { .. } => "attempt.merge_written",
            RunEvent::IntegrationPassed { .. } => "attempt.integration_passed",
            RunEvent::CleanupRequested { .. } => "attempt.cleanup",
            RunEvent::CleanupDone { .. } => "attempt.cleaned",
            RunEvent::ProposalJudged { .. } => "planner.proposal",
            RunEvent::PlannerFallback { .. } => "planner.fallback",
            RunEvent::InputRefused { .. } => "run.input_refused",
            RunEvent::ClaimSkipped { .. } => "run.claim_skipped",
            RunEvent::TaskTaken { .. } => "run.task_taken",
            RunEvent::ClaimsPaused { .. } => "run.claims_paused",
            RunEvent::Resumed { .. } => "run.resumed",
            RunEvent::AttemptUsage { .. } => "attempt.usage",
            RunEvent::BudgetSpent { .. } => "run.budget_spent",
            RunEvent::ReportRefused { .. } => "attempt.report_refused",
            RunEvent::UserRefsMoved { .. } => "run.user_refs_moved",
            RunEvent::RetryWaits { .. } => "run.retry_waits",
            RunEvent::GateReused { .. } => "attempt.gate_reused",
            RunEvent::Reverts { .. } => "attempt.reverts",
            RunEvent::PlannerUsage { .. } => "planner.usage",
            RunEvent::QuotaBreaker { .. } => "run.quota_breaker",
            RunEvent::Landed { .. } => "run.landed",
            RunEvent::LineMovedOn { .. } => "run.line_moved_on",
            RunEvent::GateRerun { .. } => "attempt.gate_rerun",
            RunEvent::Flaky { .. } => "attempt.flaky",
            RunEvent::IntegrationImplied { .. } => "attempt.integration_implied",
            RunEvent::Shaped { .. } => "run.integration_shaped",
            RunEvent::SetAside { .. } => "run.batch_set_aside",
        }
    }

    /// The attempt it concerns, if any.
    pub fn attempt_id(&self) -> Option<AttemptId> {
        match self {
            RunEvent::HeadAdvanced { attempt, .. }
            | RunEvent::AttemptCreated { attempt, .. }
            | RunEvent::AttemptMoved { attempt, .. }
            | RunEvent::AttemptHead { attempt, .. }
            | RunEvent::ReviewRequested { attempt, .. }
            | RunEvent::MergeWritten { attempt, .. }
            | RunEvent::IntegrationPassed { attempt, .. }
            | RunEvent::CleanupRequested { attempt, .. }
            | RunEvent::CleanupDone { attempt, .. }
            | RunEvent::AttemptUsage { attempt, .. }
            | RunEvent::ReportRefused { attempt, .. }
            | RunEvent::SetAside {
                failed: attempt, ..
            }
            | RunEvent::UserRefsMoved { attempt, .. }
            | RunEvent::RetryWaits { attempt, .. }
            | RunEvent::GateReused { attempt, .. }
            | RunEvent::GateRerun { attempt, .. }
            | RunEvent::IntegrationImplied { attempt, .. }
            | RunEvent::Flaky { attempt, .. }
            | RunEvent::Reverts { attempt, .. }
            | RunEvent::BudgetSpent {
                attempt: Some(attempt),
                ..
            }
            | RunEvent::LineMovedOn {
                attempt: Some(attempt),
                ..
            } => Some(*attempt),
            _ => None,
        }
    }

    /// The attempt number it concerns, if any.
    pub fn attempt(&self) -> Option<u32> {
        self.attempt_id().map(|a| a.number)
    }

    /// The task it concerns, if any.
    pub fn task(&self) -> Option<TaskId> {
        if let Some(a) = self.attempt_id() {
            return Some(a.task);
        }
        match self {
            RunEvent::TaskMoved { task, .. }
            | RunEvent::ClaimSkipped { task, .. }
            | RunEvent::TaskTaken { task, .. } => Some(*task),
            RunEvent::ProposalJudged { proposal, .. } => match proposal {
                Proposal::Claim { task, .. } | Proposal::Defer { task, .. } => Some(*task),
                Proposal::StopClaiming { .. } => None,
            },
            _ => None,
        }
    }
}
