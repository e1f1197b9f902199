//! Task outcomes and retries: what an attempt's end means for its task. An
//! infrastructure failure (orch's fault: a missing worktree, a full disk, a broken
//! gate) is retried without spending the task's attempts; a streak of them halts the
//! run instead of looping.
//!
//! A retry runs on a head that can make a difference (parallelism never costs a task
//! a sequential run would land, I15): a failure on a head the line has since moved
//! on from is retried at once on the new head; one while other tasks' work is in
//! flight waits for that work (the task shows as waiting), and is retried on the new
//! head if any of it lands. Tasks ahead of it on the board (priority, then age) that
//! are still in flight or to be retried settle first, whatever lands meanwhile: a
//! sequential run would have landed them before it, and a backlog's later task most
//! often builds on its earlier ones (a replayed history lost a fifth of its tasks at
//! concurrency 4 to retries on lines that had moved on without them). Either way the
//! failure was the stale head's, not the task's: it spends none of
//! `policy.max_attempts` but one of `policy.stale_retries`.
//! Only when nothing is left in flight does a retry run on the same head again,
//! after `policy.backoff`, and then the failure counts.

use super::Drain;
use super::Orchestrator;
use crate::run::event::RunEvent;
use crate::run::policy::{AfterFailure, INFRA_STREAK_HALT, backs_off, newer_head_may_cure};
use crate::run::scheduler::{Retry, Wait};
use crate::run::timers::{Deadline, after};
use crate::run::types::{AttemptId, AttemptState, FailureKind};
use crate::task::{TaskId, TaskStatus};
use crate::time::Timestamp;

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
            AttemptState::AwaitingReview => {
                let reason = format!(
                    "{attempt} passed its worker gate; its work waits for review (`orch review show {task}`)"
                );
                self.move_task(task, TaskStatus::Review, &reason);
            }
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
        if self.retry_on_a_newer_head(attempt, &kind) {
            return;
        }
        let used = self.counted_attempts(task);
        match self.policy.after_failure(&kind, used) {
            AfterFailure::Retry => self.retry_or_release(task, Some(kind)),
            AfterFailure::Fail(why) => {
                let reason = format!("{attempt}: {kind}; {why}");
                self.move_task(task, TaskStatus::Failed, &reason);
            }
            AfterFailure::Block(why) => {
                let reason = format!("{attempt}: {kind}; {why}");
                self.move_task(task, TaskStatus::Blocked, &reason);
            }
            AfterFailure::Halt => {
                let reason = format!("{attempt}: {kind}; conflict policy is halt");
                self.move_task(task, TaskStatus::Backlog, &reason);
                self.begin_drain(
                    Drain::Halt,
                    "a merge conflict, and the conflict policy is halt",
                );
            }
        }
    }

    /// A failure of a kind a newer head may cure, with the task's stale budget left:
    /// retried at once if the line moved on since the attempt's base, or made to wait
    /// for the other tasks' work in flight. Either way it spends no attempt (if a
    /// newer head is what its retry runs on). False when the usual rules apply.
    fn retry_on_a_newer_head(&mut self, attempt: AttemptId, kind: &FailureKind) -> bool {
        let task = attempt.task;
        if !newer_head_may_cure(kind)
            || !self.policy.retries(kind)
            || self.drain.is_some()
            || !self.stale_left(task)
        {
            return false;
        }
        let base = self.attempts.rec(attempt).base.clone();
        // A conflict with work still in the integration queue: the line has not got
        // it yet, so the retry waits for it to land (or fail) wherever the line is.
        let queued: std::collections::BTreeSet<AttemptId> = match kind {
            FailureKind::Conflict { .. } => self.integrator.queued_besides(task),
            _ => Default::default(),
        };
        let all = !queued.is_empty();
        // Work ahead of it on the board still pending: it settles first.
        let before = self.sched.pending_before(task, &self.attempts.live);
        if self.head.as_ref() != Some(&base) && !all && before.is_empty() {
            self.retry_or_release(task, Some(kind.clone()));
            return true;
        }
        let on: std::collections::BTreeSet<AttemptId> = match all {
            true => queued,
            false => self
                .attempts
                .live
                .iter()
                .copied()
                .filter(|a| a.task != task)
                .collect(),
        };
        if on.is_empty() && before.is_empty() {
            return false;
        }
        let tasks: std::collections::BTreeSet<TaskId> = before
            .iter()
            .copied()
            .chain(on.iter().map(|a| a.task))
            .collect();
        self.persist(RunEvent::RetryWaits {
            task,
            attempt,
            on: tasks.into_iter().collect(),
        });
        let wait = Wait {
            attempt,
            base,
            on,
            all,
            before,
        };
        let retry = Retry {
            due: Timestamp(i64::MAX),
            previous: Some(kind.clone()),
            wait: Some(wait),
        };
        self.sched.retries.insert(task, retry);
        true
    }

    /// Wakes the retries whose wait is over: the line moved on (retried at once, on the
    /// new head), or the work they waited for all ended without moving it (the
    /// failure counts, and the usual rules apply: a retry after `policy.backoff`, or
    /// the task fails out of attempts).
    pub(super) fn wake_waiting(&mut self) {
        // One woken may settle a task another waits on: until none is over.
        loop {
            let over = self
                .sched
                .waits_over(self.head.as_ref(), &self.attempts.live);
            if over.is_empty() {
                return;
            }
            self.wake(over);
        }
    }

    fn wake(&mut self, over: Vec<(TaskId, bool)>) {
        for (task, moved) in over {
            let r = self.sched.retries.remove(&task).expect("just found");
            let w = r.wait.expect("just found waiting");
            let kind = r.previous.expect("a waiting retry follows a failure");
            if moved || self.drain.is_some() {
                self.retry_or_release(task, Some(kind));
                continue;
            }
            if self.policy.attempt_left(&kind, self.counted_attempts(task)) {
                self.retry_or_release(task, Some(kind));
            } else {
                let reason = format!(
                    "{}: {kind}; out of attempts (the work in flight it waited for landed nothing)",
                    w.attempt
                );
                self.move_task(task, TaskStatus::Failed, &reason);
            }
        }
    }

    pub(super) fn retry_or_release(&mut self, task: TaskId, previous: Option<FailureKind>) {
        if self.drain.is_some() {
            self.move_task(task, TaskStatus::Backlog, "released: the run is draining");
            return;
        }
        // A retry on a head the failed attempt did not have runs at once; the backoff
        // is for a retry on the same head, after a failure time may change.
        let last_base = self
            .attempts
            .of_task(task)
            .next_back()
            .map(|(_, a)| &a.rec.base);
        let newer = last_base.is_some_and(|b| self.head.as_ref() != Some(b));
        let waits = previous.as_ref().is_some_and(backs_off);
        let due = if waits && !newer {
            let used = self.counted_attempts(task);
            after(self.now, self.policy.retry.backoff.delay(used.max(1)))
        } else {
            self.now
        };
        let retry = Retry {
            due,
            previous,
            wait: None,
        };
        self.sched.retries.insert(task, retry);
        self.timers.arm(Deadline::Retry(task), due);
    }

    /// The task's attempts that count against its budget (see [`Attempts::tally`]).
    ///
    /// [`Attempts::tally`]: crate::run::attempt::Attempts::tally
    pub(super) fn counted_attempts(&self, task: TaskId) -> u32 {
        let stale_retries = self.policy.retry.stale_retries;
        self.attempts.tally(task, stale_retries).0
    }

    /// Whether the task may still spend a failure on a stale head.
    fn stale_left(&self, task: TaskId) -> bool {
        let stale_retries = self.policy.retry.stale_retries;
        self.attempts.tally(task, stale_retries).1 < stale_retries
    }
}
