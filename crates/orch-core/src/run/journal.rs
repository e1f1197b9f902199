//! Rebuilding a run's state from its journal: the fold that resume starts from, and
//! that tests hold the live orchestrator to (I5).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::event::RunEvent;
use super::types::{AttemptId, AttemptState, CommitId, FailureKind, RunState};
use crate::task::{TaskId, TaskStatus};
use crate::usage::Usage;

/// What the journal knows about one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Current state.
    pub state: AttemptState,
    /// The commit it started from.
    pub base: CommitId,
    /// The agent's committed head, once known.
    pub head: Option<CommitId>,
    /// Whether that head changed nothing.
    pub empty: bool,
    /// The merge commit, once written.
    pub merge: Option<CommitId>,
    /// What `merge` was made on: the head, or the candidate below it in the stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onto: Option<CommitId>,
    /// Whether the integration gate passed on `merge`.
    pub integration_passed: bool,
    /// Whether cleanup was requested.
    pub cleanup_requested: bool,
    /// Whether cleanup was confirmed done.
    pub cleaned: bool,
    /// What its agent reported using, once it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl AttemptRecord {
    /// A new attempt from `base`, as `AttemptCreated` records it.
    pub fn queued(base: CommitId) -> AttemptRecord {
        AttemptRecord {
            state: AttemptState::Queued,
            base,
            head: None,
            empty: false,
            merge: None,
            onto: None,
            integration_passed: false,
            cleanup_requested: false,
            cleaned: false,
            usage: None,
        }
    }
}

/// A run's state as the journal tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSnapshot {
    /// The run's state.
    pub state: RunState,
    /// The integration head.
    pub head: Option<CommitId>,
    /// The statuses of the tasks the run moved.
    pub tasks: BTreeMap<TaskId, TaskStatus>,
    /// Every attempt.
    pub attempts: BTreeMap<AttemptId, AttemptRecord>,
    /// Whether claiming is paused.
    #[serde(default)]
    pub paused: bool,
    /// For each task the run claimed, the number of its last attempt before the
    /// latest claim (0 if none): attempts above it belong to that claim.
    #[serde(default)]
    pub claimed_after: BTreeMap<TaskId, u32>,
    /// What the planner used, over every request.
    #[serde(default)]
    pub planner_usage: Usage,
    /// The run's latest integration verdicts, newest last, at most
    /// [`RECENT_VERDICTS`](super::shape::RECENT_VERDICTS): `true` for a candidate that
    /// failed its gate, `false` for one that landed. They size `auto`'s batches again
    /// after a resume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<bool>,
    /// Candidates of batches set aside, until merged again: the batch's failure was
    /// counted as it was set aside, so its culprit's is not counted again.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub set_aside: BTreeSet<AttemptId>,
}

impl RunSnapshot {
    /// The highest attempt number of `task`, 0 if it has none.
    pub fn last_attempt(attempts: &BTreeMap<AttemptId, AttemptRecord>, task: TaskId) -> u32 {
        let lo = AttemptId { task, number: 0 };
        let hi = AttemptId {
            task,
            number: u32::MAX,
        };
        attempts
            .range(lo..=hi)
            .next_back()
            .map_or(0, |(id, _)| id.number)
    }
}

impl Default for RunSnapshot {
    fn default() -> Self {
        RunSnapshot {
            state: RunState::Created,
            head: None,
            tasks: BTreeMap::new(),
            attempts: BTreeMap::new(),
            paused: false,
            claimed_after: BTreeMap::new(),
            planner_usage: Usage::default(),
            verdicts: Vec::new(),
            set_aside: BTreeSet::new(),
        }
    }
}

impl RunSnapshot {
    /// Folds events into a snapshot.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a RunEvent>) -> RunSnapshot {
        let mut s = RunSnapshot::default();
        for e in events {
            s.apply(e);
        }
        s
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &RunEvent) {
        match e {
            RunEvent::RunMoved { to, .. } => self.state = *to,
            RunEvent::HeadSet { head } => self.head = Some(head.clone()),
            RunEvent::HeadAdvanced { to, .. } | RunEvent::LineMovedOn { to, .. } => {
                self.head = Some(to.clone())
            }
            RunEvent::TaskMoved { task, from, to, .. } => {
                if *to == TaskStatus::InProgress && *from != TaskStatus::InProgress {
                    let last = RunSnapshot::last_attempt(&self.attempts, *task);
                    self.claimed_after.insert(*task, last);
                }
                self.tasks.insert(*task, *to);
            }
            RunEvent::AttemptCreated { .. }
            | RunEvent::AttemptMoved { .. }
            | RunEvent::AttemptHead { .. }
            | RunEvent::MergeWritten { .. }
            | RunEvent::IntegrationPassed { .. }
            | RunEvent::IntegrationImplied { .. }
            | RunEvent::CleanupRequested { .. }
            | RunEvent::CleanupDone { .. }
            | RunEvent::AttemptUsage { .. } => self.apply_to_attempt(e),
            RunEvent::ClaimsPaused { paused } => self.paused = *paused,
            // A batch's own failure, as the run counted it.
            RunEvent::SetAside { batch, .. } => {
                self.push_verdict(true);
                self.set_aside.extend(batch);
            }
            RunEvent::PlannerUsage { usage, .. } => self.planner_usage.add(usage),
            RunEvent::TaskTaken { task, status } => match status {
                Some(s) => {
                    self.tasks.insert(*task, *s);
                }
                None => {
                    self.tasks.remove(task);
                }
            },
            RunEvent::ProposalJudged { .. }
            | RunEvent::PlannerFallback { .. }
            | RunEvent::InputRefused { .. }
            | RunEvent::ClaimSkipped { .. }
            | RunEvent::BudgetSpent { .. }
            | RunEvent::ReportRefused { .. }
            | RunEvent::UserRefsMoved { .. }
            | RunEvent::RetryWaits { .. }
            | RunEvent::ReviewRequested { .. }
            | RunEvent::GateReused { .. }
            | RunEvent::Reverts { .. }
            | RunEvent::QuotaBreaker { .. }
            | RunEvent::Landed { .. }
            | RunEvent::GateRerun { .. }
            | RunEvent::Shaped { .. }
            | RunEvent::Flaky { .. }
            | RunEvent::Resumed { .. } => {}
        }
    }

    /// Records an integration verdict, forgetting the oldest past the recent ones.
    fn push_verdict(&mut self, failed: bool) {
        if self.verdicts.len() == super::shape::RECENT_VERDICTS {
            self.verdicts.remove(0);
        }
        self.verdicts.push(failed);
    }

    /// Applies an event about one attempt.
    fn apply_to_attempt(&mut self, e: &RunEvent) {
        match e {
            RunEvent::AttemptCreated { attempt, base, .. } => {
                self.attempts
                    .insert(*attempt, AttemptRecord::queued(base.clone()));
            }
            RunEvent::AttemptMoved { attempt, to, .. } => {
                if let Some(a) = self.attempts.get_mut(attempt) {
                    a.state = to.clone();
                }
                let verdict = match to {
                    AttemptState::Succeeded => Some(false),
                    AttemptState::Failed(FailureKind::IntegrationValidation { .. }) => Some(true),
                    _ => None,
                };
                // A set-aside batch's culprit: its failure was counted with the batch's.
                let counted = verdict == Some(true) && self.set_aside.remove(attempt);
                if let Some(failed) = verdict.filter(|_| !counted) {
                    self.push_verdict(failed);
                }
            }
            RunEvent::AttemptHead {
                attempt,
                head,
                empty,
            } => {
                if let Some(a) = self.attempts.get_mut(attempt) {
                    a.head = Some(head.clone());
                    a.empty = *empty;
                }
            }
            RunEvent::MergeWritten {
                attempt,
                commit,
                onto,
            } => {
                self.set_aside.remove(attempt);
                if let Some(a) = self.attempts.get_mut(attempt) {
                    a.merge = Some(commit.clone());
                    a.onto = Some(onto.clone());
                    a.integration_passed = false;
                }
            }
            RunEvent::IntegrationPassed { attempt, .. }
            | RunEvent::IntegrationImplied { attempt, .. } => {
                if let Some(a) = self.attempts.get_mut(attempt) {
                    a.integration_passed = true;
                }
            }
            RunEvent::CleanupRequested { attempt } => {
                if let Some(a) = self.attempts.get_mut(attempt) {
                    a.cleanup_requested = true;
                }
            }
            RunEvent::CleanupDone { attempt, .. } => {
                if let Some(a) = self.attempts.get_mut(attempt) {
                    a.cleaned = true;
                }
            }
            RunEvent::AttemptUsage { attempt, usage } => {
                if let Some(a) = self.attempts.get_mut(attempt) {
                    a.usage = Some(usage.clone());
                }
            }
            _ => {}
        }
    }
}
