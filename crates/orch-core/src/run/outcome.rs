//! Task outcomes and retries: what an attempt's end means for its task. An
//! infrastructure failure (orch's fault: a missing worktree, a full disk, a broken
//! gate) is retried without spending the task's attempts; a streak of them halts the
//! run instead of looping.

use super::Drain;
use super::Orchestrator;
use super::scheduler::Retry;
use super::timers::{Deadline, after};
use super::types::{AttemptId, AttemptPhase, AttemptState, FailureKind};
use crate::config::OnConflict;
use crate::task::{TaskId, TaskStatus};

/// This many infrastructure failures in a row, with no success between, halt the run:
/// orch cannot do its part, and retrying would only loop.
pub const INFRA_STREAK_HALT: u32 = 3;

impl Orchestrator {
    /// True when the run still owns `task` (it claimed it and no person took it).
    pub(super) fn owns(&self, task: TaskId) -> bool {
        self.journaled.get(&task) == Some(&TaskStatus::InProgress)
    }

    /// Moves the task as its attempt's end says. Also used on resume, when a crash
    /// came between an attempt's end and its task's move. A task a person took from
    /// the run is left where they put it.
    pub(super) fn task_outcome(&mut self, attempt: AttemptId) {
        let task = attempt.task;
        if !self.owns(task) {
            return;
        }
        let state = self.attempts.rec(attempt).state.clone();
        match state {
            AttemptState::Succeeded => {
                self.infra_streak = 0;
                self.move_task(
                    task,
                    TaskStatus::Done,
                    &format!("{attempt} passed every gate and is in the integration branch"),
                );
                self.sched.refresh_dependents(task);
            }
            AttemptState::Canceled => {
                if self.drain == Some(Drain::Cancel) {
                    self.move_task(task, TaskStatus::Backlog, "released: the run was canceled");
                } else {
                    let reason = format!("{attempt} was canceled");
                    self.move_task(task, TaskStatus::Canceled, &reason);
                }
            }
            AttemptState::Interrupted => self.retry_or_release(task, None),
            AttemptState::Failed(kind) => self.after_failure(attempt, kind),
            other => unreachable!("task_outcome of a live attempt in {other:?}"),
        }
    }

    fn after_failure(&mut self, attempt: AttemptId, kind: FailureKind) {
        let task = attempt.task;
        if let Some(spent) = self.task_over_budget(task) {
            let reason = format!("{attempt}: {kind}; not retried: {spent}");
            self.move_task(task, TaskStatus::Failed, &reason);
            return;
        }
        if matches!(kind, FailureKind::Quota { .. }) {
            // Waits for the quota breaker; spends no attempt.
            return self.retry_or_release(task, Some(kind));
        }
        if matches!(kind, FailureKind::Infrastructure { .. }) {
            self.infra_streak += 1;
            if self.infra_streak >= INFRA_STREAK_HALT {
                self.move_task(
                    task,
                    TaskStatus::Backlog,
                    &format!("{attempt}: {kind}; released, not counted against the task"),
                );
                let why = format!(
                    "{} infrastructure failures in a row (the last: {kind}); orch cannot do its part, so the run halts",
                    self.infra_streak
                );
                self.begin_drain(Drain::Halt, &why);
                return;
            }
        }
        let used = self.counted_attempts(task);
        let budget_left = used < self.policy.retry.max_attempts;
        let retry = match &kind {
            FailureKind::Conflict { .. } => match self.policy.on_conflict {
                OnConflict::Retry => budget_left,
                OnConflict::Block => {
                    let reason = format!("{attempt}: {kind}; conflict policy is block");
                    self.move_task(task, TaskStatus::Blocked, &reason);
                    return;
                }
                OnConflict::Halt => {
                    let reason = format!("{attempt}: {kind}; conflict policy is halt");
                    self.move_task(task, TaskStatus::Backlog, &reason);
                    self.begin_drain(
                        Drain::Halt,
                        "a merge conflict, and the conflict policy is halt",
                    );
                    return;
                }
            },
            other => self.policy.retry.should_retry(other.class(), used),
        };
        if retry {
            self.retry_or_release(task, Some(kind));
        } else {
            let why = if budget_left {
                "not retried for this kind of failure"
            } else {
                "out of attempts"
            };
            let reason = format!("{attempt}: {kind}; {why}");
            self.move_task(task, TaskStatus::Failed, &reason);
        }
    }

    pub(super) fn retry_or_release(&mut self, task: TaskId, previous: Option<FailureKind>) {
        if self.drain.is_some() {
            self.move_task(task, TaskStatus::Backlog, "released: the run is draining");
            return;
        }
        let counted = previous.as_ref().is_some_and(|k| k.counts());
        let due = if counted {
            let used = self.counted_attempts(task);
            after(self.now, self.policy.retry.backoff.delay(used.max(1)))
        } else {
            self.now
        };
        self.sched.retries.insert(task, Retry { due, previous });
        self.timers.arm(Deadline::Retry(task), due);
    }

    /// The task's attempts that count against its budget: those that failed for the
    /// agent's reasons or succeeded; interruptions and orch's own failures do not.
    pub(super) fn counted_attempts(&self, task: TaskId) -> u32 {
        self.attempts
            .of_task(task)
            .filter(|(_, a)| match &a.rec.state {
                AttemptState::Failed(k) => k.counts(),
                s => s.phase() == AttemptPhase::Succeeded,
            })
            .count() as u32
    }
}
