//! Claims as the orchestrator routes them: the board's changes, what to claim next,
//! claims answered and refused, journaled; the ready set is `Scheduler`'s.

use super::Orchestrator;
use crate::config::RunMode;
use crate::run::Refusal;
use crate::run::attempt::{Abort, Attempt};
use crate::run::event::{Journaled, RunEvent};
use crate::run::io::{Command, TaskSpec};
use crate::run::journal::AttemptRecord;
use crate::run::timers::Deadline;
use crate::run::types::{AttemptId, AttemptPhase, FailureKind, RunState};
use crate::task::{TaskId, TaskStatus};
use crate::transition::{self, Actor};
use std::collections::BTreeSet;

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

    /// Slots free for a claim: `run.concurrency` less the claims in flight and the
    /// live attempts that hold one ([`Orchestrator::slot_holders`]); none while the
    /// integration queue is full.
    pub(super) fn free_slots(&self) -> u32 {
        let holders = self.slot_holders();
        let queued = self.attempts.live.len() - holders;
        if queued >= self.queue_bound() {
            return 0;
        }
        let held = holders + self.sched.claiming.len();
        self.policy.slots().saturating_sub(held as u32)
    }

    /// How many finished attempts may wait to integrate, past the slots: the
    /// concurrency, or the deepest stack when that is more.
    fn queue_bound(&self) -> usize {
        (self.policy.slots() as usize).max(self.policy.integration.capacity())
    }

    /// Whether `a` holds a slot. In parallel mode a slot is an agent: an attempt
    /// holds one until its worker gate passes, and then waits to integrate without it,
    /// so the next agent starts at once. In incremental mode every task starts from
    /// the last one's landed work, so an attempt holds its slot until it ends.
    fn holds_slot(&self, a: AttemptId) -> bool {
        let phase = self.attempts.rec(a).state.phase();
        self.policy.mode == RunMode::Incremental
            || !matches!(phase, AttemptPhase::Merging | AttemptPhase::Integrating)
    }

    /// Live attempts that hold a slot (I3: never more than `run.concurrency`): in
    /// parallel mode, those not in the integration queue, which holds exactly the live
    /// attempts past their worker gate.
    pub fn slot_holders(&self) -> usize {
        let live = self.attempts.live.len();
        let holders = match self.policy.mode {
            RunMode::Incremental => live,
            RunMode::Parallel => live - self.integrator.queued(),
        };
        debug_assert_eq!(
            holders,
            self.attempts
                .live
                .iter()
                .filter(|a| self.holds_slot(**a))
                .count(),
            "the integration queue holds exactly the live attempts past their worker gate"
        );
        holders
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
        self.sched.skip(task);
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
        // A claim of approved work (not a retry after it failed) integrates it.
        let adopted = self
            .sched
            .review_of(task)
            .filter(|r| previous.is_none() && r.approved())
            .cloned();
        let (branch, base) = match &adopted {
            Some(r) => (r.work.branch.clone(), r.work.base.clone()),
            None => (
                attempt.branch(&self.run),
                self.head.clone().expect("a running run has a head"),
            ),
        };
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
        match adopted {
            Some(r) => self.adopt(attempt, &r),
            None => self.provision(attempt, branch, base),
        }
    }

    /// Obeys a board change: tasks added, removed and edited are taken as they are;
    /// a task the run owns that a person moved or removed is let go (its attempt
    /// ends, and the run never moves it again).
    pub(super) fn on_board_changed(&mut self, board: Vec<TaskSpec>) {
        let taken = self.sched.board_changed(board, &self.journaled);
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
