//! The integration queue: attempts that passed their worker gate wait here, are merged
//! in memory as a speculative stack on the integration head (C1 = head + A1, C2 = C1 +
//! A2, ...), grouped into batches whose tops are gated at once, up to the integration
//! depth (see `shape`), and land
//! by a compare-and-swap of the ref to the top of the longest validated prefix, in one
//! step. A candidate that leaves the stack any other way (a failed gate, a conflict, a
//! cancel) re-stacks every candidate above it on the one below it; nothing below is
//! validated again. A failing integration gate is run again up to
//! `validate.integration_retries` times, and a pass after a failure is journaled as
//! flaky.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::attempt::{Attempts, Op};
use super::shape::Verdicts;
use super::types::{AttemptId, AttemptState, CommitId};

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
    /// The run's latest verdicts, which size adaptive batches.
    pub(super) verdicts: Verdicts,
    /// The adaptive batch size last journaled.
    pub(super) chosen: Option<usize>,
}

impl Integrator {
    /// Queues an attempt that passed its worker gate.
    pub(super) fn enqueue(&mut self, a: AttemptId) {
        if !self.waiting.contains(&a) && !self.candidates.contains(&a) {
            self.waiting.push_back(a);
        }
    }

    /// How many attempts wait to integrate or are in the stack.
    pub(super) fn queued(&self) -> usize {
        self.waiting.len() + self.candidates.len()
    }

    /// Other tasks' attempts waiting to integrate or in the stack.
    pub(super) fn queued_besides(&self, task: crate::task::TaskId) -> BTreeSet<AttemptId> {
        let queue = self.waiting.iter().chain(&self.candidates);
        queue.copied().filter(|a| a.task != task).collect()
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

    /// Takes the next waiting attempt onto a stack with room below `capacity`: it and
    /// the commit it is merged onto (the top's merge, once written; else `head`).
    /// `None` when the stack is full, nothing waits, the top's merge is not written
    /// yet, or the next one's last operation has not come back (it was re-stacked).
    pub(super) fn stack_next(
        &mut self,
        capacity: usize,
        head: Option<&CommitId>,
        attempts: &Attempts,
    ) -> Option<(AttemptId, CommitId)> {
        if self.candidates.len() >= capacity {
            return None;
        }
        let onto = match self.candidates.last() {
            None => head.expect("a running run has a head").clone(),
            Some(top) => match attempts.rec(*top) {
                r if r.state == AttemptState::Integrating => {
                    r.merge.clone().expect("integrating attempts have a merge")
                }
                _ => return None,
            },
        };
        let next = *self.waiting.front()?;
        if attempts.get(next).is_some_and(|x| x.busy) {
            return None;
        }
        self.waiting.pop_front();
        self.candidates.push(next);
        Some((next, onto))
    }

    /// What the candidate `a` is stacked on: the merge below it, or `head`.
    pub(super) fn onto(
        &self,
        a: AttemptId,
        head: Option<&CommitId>,
        attempts: &Attempts,
    ) -> CommitId {
        match self.candidates.iter().position(|x| *x == a) {
            Some(i) if i > 0 => attempts
                .rec(self.candidates[i - 1])
                .merge
                .clone()
                .expect("candidates below the top have a merge"),
            _ => head.expect("a running run has a head").clone(),
        }
    }

    /// Whether every candidate below `a` passed its gate.
    pub(super) fn below_passed(&self, a: AttemptId, attempts: &Attempts) -> bool {
        self.candidates
            .iter()
            .take_while(|c| **c != a)
            .all(|c| attempts.rec(*c).integration_passed)
    }

    /// The lowest candidate whose gate has not passed.
    pub(super) fn first_open(&self, attempts: &Attempts) -> Option<AttemptId> {
        self.candidates
            .iter()
            .copied()
            .find(|a| !attempts.rec(*a).integration_passed)
    }

    /// Where in the stack the candidate is whose ref advance is out, if one is.
    fn advancing(&self, attempts: &Attempts) -> Option<usize> {
        self.candidates
            .iter()
            .position(|a| attempts.get(*a).and_then(|x| x.op()) == Some(Op::AdvanceRef))
    }

    /// The top of the longest validated prefix of the stack, to advance the ref to;
    /// `None` while an advance is out or no candidate at the bottom is validated and
    /// idle.
    pub(super) fn to_advance(&self, attempts: &Attempts) -> Option<AttemptId> {
        if self.advancing(attempts).is_some() {
            return None;
        }
        let prefix = self
            .candidates
            .iter()
            .take_while(|a| {
                let x = attempts.get(**a).expect("candidates exist");
                x.rec.state == AttemptState::Integrating
                    && x.rec.integration_passed
                    && !x.busy
                    && x.abort.is_none()
            })
            .count();
        prefix.checked_sub(1).map(|top| self.candidates[top])
    }

    /// The candidates an advance to `top`'s merge lands: the stack up to `top`.
    pub(super) fn landing(&self, top: AttemptId) -> Vec<AttemptId> {
        match self.candidates.iter().position(|x| *x == top) {
            Some(i) => self.candidates[..=i].to_vec(),
            None => vec![top],
        }
    }

    /// Whether `a` is a validated candidate an advance that is out would land.
    pub(super) fn covered_by_advance(&self, a: AttemptId, attempts: &Attempts) -> bool {
        let at = self.candidates.iter().position(|x| *x == a);
        match (self.advancing(attempts), at) {
            (Some(top), Some(i)) => i <= top,
            _ => false,
        }
    }

    /// The gates due now, bottom first, at most `free` of them; `batch` is the batch
    /// size, and `more` says whether more work can be stacked at once.
    ///
    /// The candidates with a verdict, a held failure or a gate out split the stack
    /// into segments. Below the lowest held failure, the segment of candidates not
    /// yet judged is bisected: its middle is gated, or with k gates free, k points
    /// evenly spaced in it; nothing above it is gated, as every merge there holds its
    /// culprit. With no failure held, the candidates above the last judged one form
    /// batches of `batch` from the bottom; a full batch's top is gated, and so is the
    /// last, partial one's when nothing more is coming.
    pub(super) fn gates_due(
        &self,
        batch: usize,
        free: usize,
        more: bool,
        attempts: &Attempts,
    ) -> Vec<(AttemptId, CommitId)> {
        let c = &self.candidates;
        let judged = |a: &AttemptId| {
            let x = attempts.get(*a).expect("candidates exist");
            x.rec.integration_passed
                || self.held.contains_key(a)
                || matches!(x.op(), Some(Op::Gate(_)))
        };
        let mut due = Vec::new();
        let mut start = 0;
        let mut failed_below = false;
        for (i, a) in c.iter().enumerate() {
            if !judged(a) {
                continue;
            }
            if self.held.contains_key(a) {
                if i > start {
                    // With more than one gate free, split it in as many places at once.
                    let (m, k) = (i - start, free.clamp(1, i - start));
                    due.extend((1..=k).map(|j| c[start + (j * m - 1) / (k + 1)]));
                }
                // Every merge above holds this failure's culprit: gating one tells
                // nothing until the culprit is found, so the slots go to the search.
                failed_below = true;
                break;
            }
            start = i + 1;
        }
        let open = if failed_below { &c[..0] } else { &c[start..] };
        for chunk in open.chunks(batch.max(1)) {
            if chunk.len() == batch.max(1) || !more {
                due.push(*chunk.last().expect("chunks are not empty"));
            }
        }
        due.into_iter()
            .filter_map(|a| {
                let x = attempts.get(a).expect("candidates exist");
                let idle = x.rec.state == AttemptState::Integrating && !x.busy && x.abort.is_none();
                idle.then(|| {
                    let merge = x.rec.merge.clone();
                    (a, merge.expect("integrating attempts have a merge"))
                })
            })
            .take(free)
            .collect()
    }

    /// How many integration gates are out.
    pub(super) fn gates_out(&self, attempts: &Attempts) -> usize {
        self.candidates
            .iter()
            .filter(|a| matches!(attempts.get(**a).and_then(|x| x.op()), Some(Op::Gate(_))))
            .count()
    }
}
