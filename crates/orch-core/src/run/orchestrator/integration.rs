//! The integration queue as the orchestrator routes it: merges, integration gates and
//! ref updates, journaled; the queue's own state and choices are `Integrator`'s.

use super::Orchestrator;
use crate::ports::Undo;
use crate::run::attempt::Abort;
use crate::run::event::RunEvent;
use crate::run::integrator::Left;
use crate::run::io::{Command, MergeResult, RefResult, Stage};
use crate::run::revert;
use crate::run::types::{AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind};

impl Orchestrator {
    /// Fills the stack from the queue, then lands what is validated.
    pub(super) fn try_integrate(&mut self) {
        loop {
            let capacity = self.stack_capacity();
            let head = self.head.as_ref();
            let Some((next, onto)) = self.integrator.stack_next(capacity, head, &self.attempts)
            else {
                break;
            };
            self.merge_onto(next, onto);
        }
        self.schedule_gates();
        self.try_advance();
    }

    /// Asks for the attempt's work to be merged onto `onto`.
    fn merge_onto(&mut self, attempt: AttemptId, onto: CommitId) {
        let rec = self.attempts.rec(attempt);
        let head = rec
            .head
            .clone()
            .expect("attempts past the worker gate have a head");
        let base = rec.base.clone();
        self.commands.push_back(Command::Merge {
            attempt,
            onto,
            head,
            base,
        });
        self.start_merge(attempt);
    }

    /// Whether `attempt` may land although it undoes `undoes` (the revert guard's
    /// judgement); if so, the undo is journaled with why.
    fn undo_accepted(&mut self, attempt: AttemptId, undoes: &[Undo]) -> bool {
        let reverts = self
            .sched
            .tasks
            .get(&attempt.task)
            .map(|t| t.reverts.as_slice())
            .unwrap_or_default();
        let previous = self.attempts.before(attempt).map(|a| &a.rec.state);
        let Some(why) = revert::undo_accepted(self.policy.on_revert, reverts, previous, undoes)
        else {
            return false;
        };
        self.persist(RunEvent::Reverts {
            attempt,
            undone: undoes.to_vec(),
            why: why.to_owned(),
        });
        true
    }

    pub(super) fn on_merge(&mut self, attempt: AttemptId, result: MergeResult) {
        match result {
            MergeResult::Clean { commit, undoes } => {
                if !undoes.is_empty() && !self.undo_accepted(attempt, &undoes) {
                    return self.fail(attempt, FailureKind::RevertsLandedWork { undone: undoes });
                }
                let head = self.head.as_ref();
                let onto = self.integrator.onto(attempt, head, &self.attempts);
                self.persist(RunEvent::MergeWritten {
                    attempt,
                    commit: commit.clone(),
                    onto: onto.clone(),
                });
                self.integrator.counted.remove(&attempt);
                let rec = &mut self.attempts.at(attempt).rec;
                rec.merge = Some(commit.clone());
                rec.onto = Some(onto);
                rec.integration_passed = false;
                self.move_attempt(attempt, AttemptState::Integrating, "merged cleanly");
                self.try_integrate();
            }
            MergeResult::Conflict { paths } => self.fail(attempt, FailureKind::Conflict { paths }),
            MergeResult::Failed { message } => self.fail(
                attempt,
                FailureKind::Infrastructure {
                    message: format!("merge: {message}"),
                },
            ),
        }
    }

    /// A candidate's integration gate failed. While a candidate below it has not
    /// passed, the failure may be that one's: the verdict waits. Otherwise the gate is
    /// run again while retries are left, else the candidate fails.
    pub(super) fn integration_failed(&mut self, attempt: AttemptId, summary: String) {
        if !self.integrator.below_passed(attempt, &self.attempts) {
            self.integrator.held.insert(attempt, summary);
            if let Some(from) = self.integrator.to_set_aside(attempt, &self.attempts) {
                return self.set_aside(from, attempt);
            }
            // Bisect: validate a candidate below it, if it is in a batch.
            self.schedule_gates();
            return;
        }
        if let Some(n) = self
            .integrator
            .rerun(attempt, &summary, self.policy.integration_retries)
        {
            self.persist(RunEvent::GateRerun {
                attempt,
                rerun: n,
                summary,
            });
            let commit = self.merge_of(attempt);
            self.run_gate(attempt, Stage::Integration, commit);
            return;
        }
        self.fail(attempt, FailureKind::IntegrationValidation { summary });
    }

    /// The stack's failure held at `top` has its culprit among the candidates from
    /// `from` up to it, and finding it takes a search: they are set aside, to be
    /// bisected beside the stack on the merge they were stacked on, and what was above
    /// them is stacked again without them. The failure counts as a verdict at once
    /// (`Integrator::set_aside`), so that `auto` sizes the batches stacked next by it.
    fn set_aside(&mut self, from: usize, top: AttemptId) {
        let at = self.integrator.candidates.iter().position(|c| *c == top);
        let batch = self
            .integrator
            .set_aside(from, at.expect("a held failure is a candidate"));
        let onto = self.attempts.rec(batch[0]).onto.clone();
        self.persist(RunEvent::SetAside {
            batch,
            failed: top,
            onto: onto.expect("candidates have a merge and what it is on"),
        });
        self.restack_from(from, "a batch below it was set aside");
        self.try_integrate();
    }

    /// The integration gate passed on the candidate: journal it, then land what can.
    pub(super) fn integration_passed(&mut self, attempt: AttemptId) {
        let commit = self.merge_of(attempt);
        if let Some((failures, summary)) = self.integrator.passed(attempt) {
            self.persist(RunEvent::Flaky {
                attempt,
                failures,
                summary,
            });
        }
        self.persist(RunEvent::IntegrationPassed {
            attempt,
            commit: commit.clone(),
        });
        self.attempts.at(attempt).rec.integration_passed = true;
        self.imply_below(attempt, &commit);
        self.try_integrate();
    }

    /// Advances the ref to the top of the longest validated prefix of the stack, if no
    /// advance is out already. A held failure just above that prefix is now its
    /// candidate's own, and is judged first.
    fn try_advance(&mut self) {
        for (a, summary) in self.integrator.judged_asides(&self.attempts) {
            self.integration_failed(a, summary);
        }
        if let Some(batch) = self.integrator.cleared_aside(&self.attempts) {
            self.restack(batch, "its batch set aside passed after all");
            return self.try_integrate();
        }
        if let Some(a) = self.integrator.first_open(&self.attempts)
            && let Some(summary) = self.integrator.held.remove(&a)
        {
            return self.integration_failed(a, summary);
        }
        if self.state.is_terminal() {
            return;
        }
        if let Some(top) = self.integrator.to_advance(&self.attempts) {
            self.advance(top);
        }
    }

    /// Asks for the ref to move to `attempt`'s merge, from the head.
    pub(super) fn advance(&mut self, attempt: AttemptId) {
        let expected = self.head.clone().expect("a running run has a head");
        let new = self.merge_of(attempt);
        self.commands.push_back(Command::AdvanceRef {
            attempt,
            expected,
            new,
        });
        self.start_advance(attempt);
    }

    pub(super) fn on_ref(&mut self, attempt: AttemptId, result: RefResult) {
        let landing = self.integrator.landing(attempt);
        match result {
            RefResult::Advanced => self.land_prefix(landing),
            RefResult::Overtaken { actual } => self.overtaken(attempt, actual),
            RefResult::LostRace { actual } => {
                let expected = self.head.clone().expect("a running run has a head");
                let why = format!(
                    "the integration ref moved outside orch: it is at {actual}, where orch left it at {expected}"
                );
                self.halt_on_ref(attempt, why, &landing);
            }
            RefResult::Refused { message } => {
                let why = format!("the integration line cannot move: {message}");
                self.halt_on_ref(attempt, why, &landing);
            }
            RefResult::Failed { message } => {
                self.fail(
                    attempt,
                    FailureKind::Infrastructure {
                        message: format!("ref update: {message}"),
                    },
                );
                self.aborts_held_by(&landing);
            }
        }
    }

    /// The line cannot move as orch expects: the attempt fails as orch's own failure,
    /// the run halts, and aborts that waited on the advance take effect.
    fn halt_on_ref(&mut self, attempt: AttemptId, why: String, landing: &[AttemptId]) {
        self.fail(
            attempt,
            FailureKind::Infrastructure {
                message: why.clone(),
            },
        );
        self.begin_drain(super::Drain::Halt, &why);
        self.aborts_held_by(landing);
    }

    /// Aborts that waited on an advance that did not happen take effect now.
    fn aborts_held_by(&mut self, landing: &[AttemptId]) {
        for a in landing {
            let held = self
                .attempts
                .get(*a)
                .is_some_and(|x| x.abort.is_some() && !x.busy && !x.rec.state.is_terminal());
            if held {
                self.integrator.candidates.retain(|c| c != a);
                self.aborted(*a);
            }
        }
    }

    /// Another run landed first on a shared line: build on its head, and stack every
    /// candidate again on it (each merged and validated again before it lands).
    fn overtaken(&mut self, attempt: AttemptId, actual: CommitId) {
        let from = self.head.clone().expect("a running run has a head");
        self.persist(RunEvent::LineMovedOn {
            attempt: Some(attempt),
            from,
            to: actual.clone(),
        });
        self.head = Some(actual);
        self.restack_from(0, "the integration line moved on");
        self.try_integrate();
    }

    /// Takes `attempt` out of the integration queue as it ends. Unless it landed, the
    /// candidates above it are stacked again on the one below it.
    pub(super) fn leave_queue(&mut self, attempt: AttemptId, landed: bool) {
        match self.integrator.leave(attempt) {
            Some(Left::Stack(i)) if !landed => {
                self.restack_from(i, "a candidate below it left the stack");
            }
            Some(Left::Aside(rest)) => {
                self.restack(rest, "the batch it was set aside with is judged");
            }
            _ => {}
        }
    }

    /// Re-stacks every candidate from position `from` up: each goes back to the front
    /// of the queue, in order, to be merged again on its new predecessor. One whose
    /// gate or merge is out is stopped first (its result is discarded).
    fn restack_from(&mut self, from: usize, why: &str) {
        let moved = self.integrator.unstack_from(from);
        self.restack(moved, why);
    }

    /// Candidates back in the queue (`moved`) are stopped or moved back to merging.
    fn restack(&mut self, moved: Vec<AttemptId>, why: &str) {
        for a in moved {
            let x = self.attempts.at(a);
            match (x.rec.state.phase(), x.busy) {
                (_, true) => self.abort(a, Abort::Restack),
                (AttemptPhase::Integrating, false) => {
                    self.move_attempt(a, AttemptState::Merging, why);
                }
                _ => {}
            }
        }
    }

    /// A re-stacked candidate's stopped gate or discarded merge came back: it waits in
    /// the queue, as a merge to do.
    pub(super) fn restacked(&mut self, attempt: AttemptId) {
        self.attempts.at(attempt).abort = None;
        if self.attempts.rec(attempt).state.phase() == AttemptPhase::Integrating {
            self.move_attempt(attempt, AttemptState::Merging, "re-stacked");
        }
        self.try_integrate();
    }

    /// The ref reached the top of `landing`, a validated prefix of the stack: the
    /// journal says so candidate by candidate, bottom first, and then each succeeds.
    /// (The head is the top before any of their tasks' consequences, such as a new
    /// claim, are decided.) A cancel during the ref update is moot: the work landed.
    pub(super) fn land_prefix(&mut self, landing: Vec<AttemptId>) {
        for a in &landing {
            let from = self.head.clone().expect("a running run has a head");
            let to = self.merge_of(*a);
            self.persist(RunEvent::HeadAdvanced {
                attempt: *a,
                from,
                to: to.clone(),
            });
            self.head = Some(to);
        }
        // Out of the stack before any completes: what a completion sets off must not
        // see them as a prefix still to land.
        self.integrator.candidates.retain(|c| !landing.contains(c));
        for a in landing {
            self.attempts.at(a).abort = None;
            self.complete(a);
        }
    }

    /// The ref has advanced to the attempt's merge: it succeeds, and its task is done.
    pub(super) fn complete(&mut self, attempt: AttemptId) {
        self.move_attempt(attempt, AttemptState::Succeeded, "integrated");
        self.end_attempt(attempt);
    }

    fn merge_of(&self, attempt: AttemptId) -> CommitId {
        self.attempts
            .rec(attempt)
            .merge
            .clone()
            .expect("integrating attempts have a merge")
    }
}
