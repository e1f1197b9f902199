//! The integration queue: attempts that passed their worker gate wait here, are merged
//! onto the integration head in memory, validated, and land by a compare-and-swap of
//! the ref. It is shaped as a stack of candidates on the head; today its depth is 1
//! (one candidate at a time, in the order attempts passed the worker gate).

use std::collections::VecDeque;

use super::Orchestrator;
use super::event::RunEvent;
use super::io::{Command, MergeResult, RefResult, Stage};
use super::types::{AttemptId, AttemptState, CommitId, FailureKind};

/// Waiting attempts and the candidates being integrated.
#[derive(Debug, Clone)]
pub(super) struct Integrator {
    /// Passed the worker gate, waiting for a candidate slot, in order.
    waiting: VecDeque<AttemptId>,
    /// Being merged, validated or landed, bottom of the stack first.
    candidates: Vec<AttemptId>,
    /// How many candidates may be in flight at once.
    depth: usize,
}

impl Default for Integrator {
    fn default() -> Self {
        Integrator {
            waiting: VecDeque::new(),
            candidates: Vec::new(),
            depth: 1,
        }
    }
}

impl Integrator {
    /// Queues an attempt that passed its worker gate.
    pub(super) fn enqueue(&mut self, a: AttemptId) {
        if !self.waiting.contains(&a) && !self.candidates.contains(&a) {
            self.waiting.push_back(a);
        }
    }

    /// Makes `a` a candidate directly (resume: it was being integrated).
    pub(super) fn adopt(&mut self, a: AttemptId) {
        self.waiting.retain(|w| *w != a);
        if !self.candidates.contains(&a) {
            self.candidates.push(a);
        }
    }

    /// Forgets an attempt (it ended, or was aborted while waiting).
    pub(super) fn remove(&mut self, a: AttemptId) {
        self.waiting.retain(|w| *w != a);
        self.candidates.retain(|c| *c != a);
    }

    /// The next waiting attempt, if a candidate slot is free.
    fn next(&mut self) -> Option<AttemptId> {
        if self.candidates.len() >= self.depth {
            return None;
        }
        let a = self.waiting.pop_front()?;
        self.candidates.push(a);
        Some(a)
    }
}

impl Orchestrator {
    /// Starts the next candidate's merge, if a slot is free.
    pub(super) fn try_integrate(&mut self) {
        let Some(attempt) = self.integrator.next() else {
            return;
        };
        let onto = self.head.clone().expect("a running run has a head");
        self.merge_onto(attempt, onto);
    }

    /// Asks for the attempt's work to be merged onto `onto`.
    fn merge_onto(&mut self, attempt: AttemptId, onto: CommitId) {
        let head = self
            .attempts
            .rec(attempt)
            .head
            .clone()
            .expect("attempts past the worker gate have a head");
        self.commands.push_back(Command::Merge {
            attempt,
            onto,
            head,
        });
        self.start_merge(attempt);
    }

    pub(super) fn on_merge(&mut self, attempt: AttemptId, result: MergeResult) {
        match result {
            MergeResult::Clean { commit } => {
                let onto = self.head.clone().expect("a running run has a head");
                self.persist(RunEvent::MergeWritten {
                    attempt,
                    commit: commit.clone(),
                    onto,
                });
                let rec = &mut self.attempts.at(attempt).rec;
                rec.merge = Some(commit.clone());
                rec.integration_passed = false;
                self.move_attempt(attempt, AttemptState::Integrating, "merged cleanly");
                self.run_gate(attempt, Stage::Integration, commit);
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

    /// The integration gate passed on the candidate: journal it, then land it.
    pub(super) fn integration_passed(&mut self, attempt: AttemptId) {
        let commit = self.merge_of(attempt);
        self.persist(RunEvent::IntegrationPassed { attempt, commit });
        self.attempts.at(attempt).rec.integration_passed = true;
        self.advance(attempt);
    }

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
        // A cancel during the ref update is moot: the work is validated. (Unless the
        // line moved on and the work must be merged again: then it holds.)
        let abort = self.attempts.at(attempt).abort.take();
        match result {
            RefResult::Overtaken { actual } => {
                self.attempts.at(attempt).abort = abort;
                self.merge_again(attempt, actual);
            }
            RefResult::Advanced => {
                let from = self.head.clone().expect("a running run has a head");
                let to = self.merge_of(attempt);
                self.succeed(attempt, from, to);
            }
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
            }
            RefResult::Failed { message } => self.fail(
                attempt,
                FailureKind::Infrastructure {
                    message: format!("ref update: {message}"),
                },
            ),
        }
    }

    /// Another run landed on the shared line first: build on its head, and merge the
    /// candidate again onto it (and validate that merge) before it lands.
    fn merge_again(&mut self, attempt: AttemptId, actual: CommitId) {
        let from = self.head.clone().expect("a running run has a head");
        self.persist(RunEvent::LineMovedOn {
            attempt,
            from,
            to: actual.clone(),
        });
        self.head = Some(actual.clone());
        self.move_attempt(
            attempt,
            AttemptState::Merging,
            "the integration line moved on",
        );
        self.merge_onto(attempt, actual);
    }

    pub(super) fn succeed(&mut self, attempt: AttemptId, from: CommitId, to: CommitId) {
        self.persist(RunEvent::HeadAdvanced {
            attempt,
            from,
            to: to.clone(),
        });
        self.head = Some(to);
        self.complete(attempt);
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
