//! The integration queue as the orchestrator routes it: merges, integration gates and
//! ref updates, journaled; the queue's own state and choices are `Integrator`'s.

use super::Orchestrator;
use crate::ports::Undo;
use crate::run::attempt::{Abort, Op};
use crate::run::event::RunEvent;
use crate::run::io::{Command, MergeResult, RefResult, Stage};
use crate::run::revert;
use crate::run::types::{AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind};

impl Orchestrator {
    /// Fills the stack from the queue, then lands what is validated.
    pub(super) fn try_integrate(&mut self) {
        while self.integrator.candidates.len() < self.stack_capacity() {
            let onto = match self.integrator.candidates.last() {
                None => self.head.clone().expect("a running run has a head"),
                // Stack on the top only once its merge is written.
                Some(top) => match self.attempts.rec(*top) {
                    r if r.state == AttemptState::Integrating => {
                        r.merge.clone().expect("integrating attempts have a merge")
                    }
                    _ => break,
                },
            };
            let Some(&next) = self.integrator.waiting.front() else {
                break;
            };
            if self.attempts.at(next).busy {
                // A re-stacked candidate whose last operation has not come back yet.
                break;
            }
            self.integrator.waiting.pop_front();
            self.integrator.candidates.push(next);
            self.merge_onto(next, onto);
        }
        self.schedule_batch_gate();
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
        let previous = self
            .attempts
            .of_task(attempt.task)
            .rev()
            .find(|(id, _)| id.number < attempt.number)
            .map(|(_, a)| &a.rec.state);
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
                let onto = self.onto_of(attempt);
                self.persist(RunEvent::MergeWritten {
                    attempt,
                    commit: commit.clone(),
                    onto: onto.clone(),
                });
                let rec = &mut self.attempts.at(attempt).rec;
                rec.merge = Some(commit.clone());
                rec.onto = Some(onto);
                rec.integration_passed = false;
                self.move_attempt(attempt, AttemptState::Integrating, "merged cleanly");
                if !self.batching() {
                    self.run_gate(attempt, Stage::Integration, commit);
                }
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

    /// What the candidate `attempt` is stacked on: the merge below it, or the head.
    fn onto_of(&self, attempt: AttemptId) -> CommitId {
        let c = &self.integrator.candidates;
        match c.iter().position(|x| *x == attempt) {
            Some(i) if i > 0 => self
                .attempts
                .rec(c[i - 1])
                .merge
                .clone()
                .expect("candidates below the top have a merge"),
            _ => self.head.clone().expect("a running run has a head"),
        }
    }

    /// A candidate's integration gate failed. While a candidate below it has not
    /// passed, the failure may be that one's: the verdict waits. Otherwise the gate is
    /// run again while retries are left, else the candidate fails.
    pub(super) fn integration_failed(&mut self, attempt: AttemptId, summary: String) {
        if !self.below_passed(attempt) {
            self.integrator.held.insert(attempt, summary);
            // In a batch, bisect: validate a candidate below it.
            self.schedule_batch_gate();
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
        if self.batching() {
            self.imply_below(attempt, &commit);
        }
        self.try_integrate();
    }

    /// Whether every candidate below `attempt` passed its gate.
    fn below_passed(&self, attempt: AttemptId) -> bool {
        self.integrator
            .candidates
            .iter()
            .take_while(|c| **c != attempt)
            .all(|c| self.attempts.rec(*c).integration_passed)
    }

    /// Advances the ref to the top of the longest validated prefix of the stack, if no
    /// advance is out already. A held failure just above that prefix is now its
    /// candidate's own, and is judged first.
    fn try_advance(&mut self) {
        let first_open = self
            .integrator
            .candidates
            .iter()
            .copied()
            .find(|a| !self.attempts.rec(*a).integration_passed);
        if let Some(a) = first_open
            && let Some(summary) = self.integrator.held.remove(&a)
        {
            return self.integration_failed(a, summary);
        }
        let c = &self.integrator.candidates;
        if c.iter()
            .any(|a| self.attempts.get(*a).and_then(|x| x.op()) == Some(Op::AdvanceRef))
        {
            return;
        }
        let prefix = c
            .iter()
            .take_while(|a| {
                let x = self.attempts.get(**a).expect("candidates exist");
                x.rec.state == AttemptState::Integrating
                    && x.rec.integration_passed
                    && !x.busy
                    && x.abort.is_none()
            })
            .count();
        if prefix == 0 || self.state.is_terminal() {
            return;
        }
        self.advance(c[prefix - 1]);
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

    /// The candidates an advance to `top`'s merge lands: the stack up to `top`.
    fn landing(&self, top: AttemptId) -> Vec<AttemptId> {
        let c = &self.integrator.candidates;
        match c.iter().position(|x| *x == top) {
            Some(i) => c[..=i].to_vec(),
            None => vec![top],
        }
    }

    pub(super) fn on_ref(&mut self, attempt: AttemptId, result: RefResult) {
        let landing = self.landing(attempt);
        match result {
            RefResult::Advanced => self.land_prefix(landing),
            RefResult::Overtaken { actual } => self.overtaken(attempt, actual),
            RefResult::LostRace { actual } => {
                let expected = self.head.clone().expect("a running run has a head");
                let why = format!(
                    "the integration ref moved outside orch: it is at {actual}, where orch left it at {expected}"
                );
                self.fail(
                    attempt,
                    FailureKind::Infrastructure {
                        message: why.clone(),
                    },
                );
                self.begin_drain(super::Drain::Halt, &why);
                self.aborts_held_by(&landing);
            }
            RefResult::Refused { message } => {
                let why = format!("the integration line cannot move: {message}");
                self.fail(
                    attempt,
                    FailureKind::Infrastructure {
                        message: why.clone(),
                    },
                );
                self.begin_drain(super::Drain::Halt, &why);
                self.aborts_held_by(&landing);
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

    /// Whether `attempt` is a validated candidate an advance that is out would land.
    pub(super) fn covered_by_advance(&self, attempt: AttemptId) -> bool {
        let c = &self.integrator.candidates;
        let advancing = c
            .iter()
            .position(|a| self.attempts.get(*a).and_then(|x| x.op()) == Some(Op::AdvanceRef));
        match (advancing, c.iter().position(|a| *a == attempt)) {
            (Some(top), Some(i)) => i <= top,
            _ => false,
        }
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
        let Some(i) = self.integrator.leave(attempt) else {
            return;
        };
        if !landed {
            self.restack_from(i, "a candidate below it left the stack");
        }
    }

    /// Re-stacks every candidate from position `from` up: each goes back to the front
    /// of the queue, in order, to be merged again on its new predecessor. One whose
    /// gate or merge is out is stopped first (its result is discarded).
    fn restack_from(&mut self, from: usize, why: &str) {
        for a in self.integrator.unstack_from(from) {
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
