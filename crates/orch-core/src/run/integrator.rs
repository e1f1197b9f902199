//! The integration queue: attempts that passed their worker gate wait here, are merged
//! in memory as a speculative stack on the integration head (C1 = head + A1, C2 = C1 +
//! A2, ... up to `run.integration_depth`), each candidate validated at once, and land
//! by a compare-and-swap of the ref to the top of the longest validated prefix, in one
//! step. A candidate that leaves the stack any other way (a failed gate, a conflict, a
//! cancel) re-stacks every candidate above it on the one below it; nothing below is
//! validated again. A failing integration gate is run again up to
//! `validate.integration_retries` times, and a pass after a failure is journaled as
//! flaky.

use std::collections::{BTreeMap, VecDeque};

use super::types::AttemptId;

/// Waiting attempts and the candidates being integrated.
#[derive(Debug, Clone, Default)]
pub(super) struct Integrator {
    /// Passed the worker gate, waiting for a place in the stack, in order.
    pub(super) waiting: VecDeque<AttemptId>,
    /// The stack, bottom first: each is merged onto the one below (the bottom onto
    /// the head).
    pub(super) candidates: Vec<AttemptId>,
    /// Failed integration gate runs so far, by candidate, with the first failure.
    reruns: BTreeMap<AttemptId, (u32, String)>,
    /// Candidates whose gate failed while one below them had not passed yet: the
    /// failure may be that one's, so its verdict waits for theirs.
    pub(super) held: BTreeMap<AttemptId, String>,
}

impl Integrator {
    /// Queues an attempt that passed its worker gate.
    pub(super) fn enqueue(&mut self, a: AttemptId) {
        if !self.waiting.contains(&a) && !self.candidates.contains(&a) {
            self.waiting.push_back(a);
        }
    }

    /// Whether `a`'s integration gate failed and is being run again (flaky reruns).
    pub(super) fn rerunning(&self, a: AttemptId) -> bool {
        self.reruns.contains_key(&a)
    }

    /// `a`'s integration gate failed with `summary`: the number of the rerun it gets,
    /// while fewer than `retries` were run, else `None` (it fails).
    pub(super) fn rerun(&mut self, a: AttemptId, summary: &str, retries: u32) -> Option<u32> {
        let reruns = self
            .reruns
            .entry(a)
            .or_insert_with(|| (0, summary.to_owned()));
        if reruns.0 >= retries {
            return None;
        }
        reruns.0 += 1;
        Some(reruns.0)
    }

    /// `a`'s integration gate passed: its failed runs before, with the first failure's
    /// summary, if it was flaky.
    pub(super) fn passed(&mut self, a: AttemptId) -> Option<(u32, String)> {
        self.reruns.remove(&a)
    }

    /// Takes `a` out of the queue and the stack: its place in the stack, if it had one.
    pub(super) fn leave(&mut self, a: AttemptId) -> Option<usize> {
        self.forget(a);
        let i = self.candidates.iter().position(|c| *c == a)?;
        self.candidates.remove(i);
        Some(i)
    }

    /// Takes every candidate from position `from` up off the stack, back to the front
    /// of the queue in order, with its gate's earlier verdicts forgotten: they are
    /// merged again on their new predecessor. Returns them, bottom first.
    pub(super) fn unstack_from(&mut self, from: usize) -> Vec<AttemptId> {
        let moved: Vec<AttemptId> = self.candidates.drain(from..).collect();
        for a in moved.iter().rev() {
            self.waiting.push_front(*a);
        }
        for a in &moved {
            self.reruns.remove(a);
            self.held.remove(a);
        }
        moved
    }

    /// Makes `a` a candidate directly, on top of the stack (resume: it was being
    /// integrated).
    pub(super) fn adopt(&mut self, a: AttemptId) {
        self.waiting.retain(|w| *w != a);
        if !self.candidates.contains(&a) {
            self.candidates.push(a);
        }
    }

    /// Forgets an attempt that is waiting, not yet stacked.
    fn forget(&mut self, a: AttemptId) {
        self.waiting.retain(|w| *w != a);
        self.reruns.remove(&a);
        self.held.remove(&a);
    }
}
