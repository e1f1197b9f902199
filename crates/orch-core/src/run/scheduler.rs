//! The scheduler: the board as the run sees it, the ready set, deferrals, retries and
//! claims in flight, and how a board change is obeyed.
//!
//! A claim is its own step: [`Command::Claim`] asks the store for a compare-and-swap
//! of the task's status, and only [`Input::Claimed`](super::Input::Claimed) creates the
//! attempt. A refused claim skips the task; the run goes on.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::Orchestrator;
use super::Refusal;
use super::attempt::{Abort, Attempt};
use super::event::{Journaled, RunEvent};
use super::io::{Command, TaskSpec};
use super::journal::AttemptRecord;
use super::policy::touches_overlap;
use super::timers::Deadline;
use super::types::{AttemptId, FailureKind, RunState};
use crate::task::{TaskId, TaskStatus};
use crate::transition::{self, Actor};

/// A task waiting to be retried.
#[derive(Debug, Clone)]
pub(super) struct Retry {
    pub(super) due: crate::time::Timestamp,
    pub(super) previous: Option<FailureKind>,
    /// Set while the retry waits for work in flight (it is not due meanwhile).
    pub(super) wait: Option<Wait>,
}

/// What a retry waits for: the integration line to move on from `base` (the failed
/// attempt's), or else every attempt of `on` (other tasks' work in flight when it
/// failed) to end.
#[derive(Debug, Clone)]
pub(super) struct Wait {
    pub(super) attempt: AttemptId,
    pub(super) base: super::types::CommitId,
    pub(super) on: BTreeSet<AttemptId>,
}

/// The board as the run sees it, and what waits to be claimed.
#[derive(Debug, Clone, Default)]
pub(super) struct Scheduler {
    /// Every task the run may consider, with its status as last seen.
    pub(super) tasks: BTreeMap<TaskId, TaskSpec>,
    dependents: BTreeMap<TaskId, Vec<TaskId>>,
    /// Backlog tasks whose dependencies are all done, by priority then age.
    ready: BTreeSet<(Reverse<i32>, TaskId)>,
    /// Tasks the planner deferred until it is asked again.
    pub(super) deferred: BTreeSet<TaskId>,
    /// Tasks of the run waiting to be retried.
    pub(super) retries: BTreeMap<TaskId, Retry>,
    /// Claims sent to the store and not yet answered, with the planner's note.
    pub(super) claiming: BTreeMap<TaskId, Option<String>>,
    /// Tasks whose claim was refused, until the board shows them claimable again.
    skipped: BTreeSet<TaskId>,
}

/// Whether a run started on `board` would find anything to claim: a backlog task
/// whose dependencies are all done. A run that would not is not started.
pub fn has_claimable(board: Vec<TaskSpec>) -> bool {
    let mut s = Scheduler::default();
    s.set_board(board);
    !s.ready.is_empty()
}

impl Scheduler {
    /// Replaces the board and recomputes the ready set.
    pub(super) fn set_board(&mut self, board: Vec<TaskSpec>) {
        self.tasks = board.into_iter().map(|t| (t.id, t)).collect();
        self.dependents.clear();
        for t in self.tasks.values() {
            for d in &t.depends_on {
                self.dependents.entry(*d).or_default().push(t.id);
            }
        }
        self.ready.clear();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for t in ids {
            self.refresh_ready(t);
        }
    }

    pub(super) fn status(&self, t: TaskId) -> Option<TaskStatus> {
        self.tasks.get(&t).map(|s| s.status)
    }

    pub(super) fn set_status(&mut self, t: TaskId, to: TaskStatus) {
        if let Some(s) = self.tasks.get_mut(&t) {
            s.status = to;
        }
        self.refresh_ready(t);
    }

    pub(super) fn refresh_dependents(&mut self, t: TaskId) {
        for d in self.dependents.get(&t).cloned().unwrap_or_default() {
            self.refresh_ready(d);
        }
    }

    fn refresh_ready(&mut self, t: TaskId) {
        let Some(spec) = self.tasks.get(&t) else {
            return;
        };
        let key = (Reverse(spec.priority), t);
        let ready = spec.status == TaskStatus::Backlog
            && !self.skipped.contains(&t)
            && spec
                .depends_on
                .iter()
                .all(|d| self.tasks.get(d).map(|s| s.status) == Some(TaskStatus::Done));
        if ready {
            self.ready.insert(key);
        } else {
            self.ready.remove(&key);
        }
    }

    /// Up to `limit` tasks to claim now, in order: due retries and ready backlog tasks
    /// by priority then age, skipping tasks with a live attempt and any whose
    /// `touches` overlap a live task's or an earlier candidate's. Stops early, so a
    /// large board costs only what is needed.
    pub(super) fn claimable(
        &self,
        now: crate::time::Timestamp,
        limit: usize,
        live: &BTreeSet<TaskId>,
    ) -> Vec<TaskId> {
        let mut due: Vec<(Reverse<i32>, TaskId)> = self
            .retries
            .iter()
            .filter(|(t, r)| r.due <= now && !live.contains(t))
            .map(|(t, _)| (Reverse(self.tasks.get(t).map_or(0, |s| s.priority)), *t))
            .collect();
        due.sort();
        let touches_of = |t: &TaskId| self.tasks.get(t).map_or(&[][..], |s| s.touches.as_slice());
        let mut taken: Vec<&[String]> = live.iter().map(touches_of).collect();
        let mut from_ready = self
            .ready
            .iter()
            .filter(|(_, t)| !self.deferred.contains(t) && !live.contains(t))
            .peekable();
        let mut from_due = due.iter().peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let next = match (from_due.peek(), from_ready.peek()) {
                (Some(a), Some(b)) if a <= b => from_due.next(),
                (_, Some(_)) => from_ready.next(),
                (Some(_), None) => from_due.next(),
                (None, None) => break,
            };
            let (_, t) = *next.expect("peeked");
            let touches = touches_of(&t);
            if taken.iter().any(|o| touches_overlap(o, touches)) {
                continue;
            }
            taken.push(touches);
            out.push(t);
        }
        out
    }
}

impl Orchestrator {
    /// Tasks that hold a slot: a live attempt or a claim in flight.
    pub(super) fn busy_tasks(&self) -> BTreeSet<TaskId> {
        self.attempts
            .live
            .iter()
            .map(|a| a.task)
            .chain(self.sched.claiming.keys().copied())
            .collect()
    }

    pub(super) fn free_slots(&self) -> u32 {
        let held = self.attempts.live.len() + self.sched.claiming.len();
        self.policy.slots().saturating_sub(held as u32)
    }

    pub(super) fn claimable(&self, limit: usize) -> Vec<TaskId> {
        self.sched.claimable(self.now, limit, &self.busy_tasks())
    }

    /// Claims what can be claimed: through the planner if there is one.
    pub(super) fn schedule(&mut self) {
        if self.state != RunState::Running || self.paused || self.free_slots() == 0 {
            return;
        }
        if self.breaker.is_open() {
            // Only the breaker's probe, and no planner round for it.
            return self.fill();
        }
        if self.policy.planner {
            self.ask_planner();
            return;
        }
        self.fill();
    }

    /// Claims by the scheduler's own order until the slots are full.
    pub(super) fn fill(&mut self) {
        let slots = self.free_slots() as usize;
        let allowed = self
            .breaker
            .claims_allowed(self.now, self.sched.claiming.len())
            .unwrap_or(slots);
        for t in self.claimable(slots.min(allowed)) {
            if self.free_slots() == 0 || self.state != RunState::Running || self.paused {
                break;
            }
            self.claim(t, None);
        }
    }

    /// A retry starts its next attempt at once; a first claim asks the store first.
    pub(super) fn claim(&mut self, task: TaskId, note: Option<String>) {
        if let Some(r) = self.sched.retries.remove(&task) {
            self.timers.disarm(Deadline::Retry(task));
            return self.create_attempt(task, note, r.previous);
        }
        let from = self.sched.status(task).unwrap_or(TaskStatus::Backlog);
        transition::check_move(from, TaskStatus::InProgress, Actor::Orchestrator, false)
            .expect("the scheduler only claims claimable tasks");
        self.sched.set_status(task, TaskStatus::InProgress);
        self.sched.claiming.insert(task, note);
        let event = Journaled {
            at: self.now,
            event: RunEvent::TaskMoved {
                task,
                from,
                to: TaskStatus::InProgress,
                reason: "claimed".into(),
            },
        };
        self.commands.push_back(Command::Claim { task, event });
    }

    pub(super) fn on_claimed(&mut self, task: TaskId) -> Result<(), Refusal> {
        let note = self
            .sched
            .claiming
            .remove(&task)
            .ok_or(Refusal::NoClaimPending(task))?;
        self.journaled.insert(task, TaskStatus::InProgress);
        let last = self.attempts.last_number(task);
        self.claimed_after.insert(task, last);
        if self.drain.is_some() || self.paused {
            self.move_task(
                task,
                TaskStatus::Backlog,
                "released: the run stopped claiming",
            );
            return Ok(());
        }
        self.create_attempt(task, note, None);
        Ok(())
    }

    pub(super) fn on_claim_refused(&mut self, task: TaskId, why: String) -> Result<(), Refusal> {
        if self.sched.claiming.remove(&task).is_none() {
            return Err(Refusal::NoClaimPending(task));
        }
        self.persist(RunEvent::ClaimSkipped { task, why });
        self.sched.skipped.insert(task);
        self.sched.refresh_ready(task);
        self.planner.bump_epoch();
        Ok(())
    }

    fn create_attempt(
        &mut self,
        task: TaskId,
        note: Option<String>,
        previous: Option<FailureKind>,
    ) {
        let number = self.attempts.last_number(task) + 1;
        let attempt = AttemptId { task, number };
        let base = self.head.clone().expect("a running run has a head");
        let branch = attempt.branch(&self.run);
        self.persist(RunEvent::AttemptCreated {
            attempt,
            branch: branch.clone(),
            base: base.clone(),
        });
        let rec = AttemptRecord::queued(base.clone());
        self.breaker.attempt_created(attempt, self.now);
        self.attempts
            .insert(attempt, Attempt::new(rec, note, previous));
        self.attempts.live.insert(attempt);
        self.provision(attempt, branch, base);
    }

    /// Obeys a board change: tasks added, removed and edited are taken as they are;
    /// a task the run owns that a person moved or removed is let go (its attempt
    /// ends, and the run never moves it again).
    pub(super) fn on_board_changed(&mut self, board: Vec<TaskSpec>) {
        let mut next: BTreeMap<TaskId, TaskSpec> = board.into_iter().map(|t| (t.id, t)).collect();
        let mut taken = Vec::new();
        for (task, status) in &self.journaled {
            let on_board = next.get(task).map(|s| s.status);
            match (status, on_board) {
                // Owned, and still in progress on the board: ours.
                (TaskStatus::InProgress, Some(TaskStatus::InProgress)) => {}
                (TaskStatus::InProgress, other) => taken.push((*task, other)),
                // The board lags behind a move of ours not yet written: ours wins.
                (mine, Some(TaskStatus::InProgress)) => {
                    if let Some(s) = next.get_mut(task) {
                        s.status = *mine;
                    }
                }
                _ => {}
            }
        }
        for (task, _) in self.sched.claiming.iter() {
            // The claim's answer decides; until then the task is ours to wait for.
            if let Some(s) = next.get_mut(task) {
                s.status = TaskStatus::InProgress;
            }
        }
        // A skipped task is tried again only once the board shows it claimable.
        self.sched
            .skipped
            .retain(|t| next.get(t).is_some_and(|s| s.status != TaskStatus::Backlog));
        for (task, status) in &taken {
            if let (Some(st), Some(s)) = (status, next.get_mut(task)) {
                s.status = *st;
            }
        }
        self.sched.set_board(next.into_values().collect());
        for (task, status) in taken {
            self.let_go(task, status);
        }
        self.planner.bump_epoch();
    }

    /// A person took `task` from the run: journal it, end its attempt, drop its retry.
    fn let_go(&mut self, task: TaskId, status: Option<TaskStatus>) {
        self.persist(RunEvent::TaskTaken { task, status });
        match status {
            Some(s) => {
                self.journaled.insert(task, s);
            }
            None => {
                self.journaled.remove(&task);
            }
        }
        if self.sched.retries.remove(&task).is_some() {
            self.timers.disarm(Deadline::Retry(task));
        }
        if let Some(a) = self.attempts.live_of(task) {
            self.abort(a, Abort::Taken);
        }
    }
}
