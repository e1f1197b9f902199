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
//!
//! A batch whose gate fails while everything below it passed holds its culprit. When
//! finding it takes a search (some of the batch is not judged yet), the batch is set
//! aside: it is bisected beside the stack, on the merge it was stacked on, while the
//! rest of the stack is stacked again without it and goes on (Zuul's way with a failing
//! change). Once its culprit fails, what was below it waits at the front of the queue
//! and what was above it (not judged, it may hold another culprit) at the back, each to
//! be merged and gated again on the stack.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::attempt::{Attempts, Op};
use super::shape::Verdicts;
use super::types::{AttemptId, AttemptState, CommitId};

/// Where an attempt that left the integration queue was.
#[derive(Debug)]
pub(super) enum Left {
    /// At this place in the stack.
    Stack(usize),
    /// In a batch set aside: the rest of that batch, now back in the queue.
    Aside(Vec<AttemptId>),
}

/// Waiting attempts and the candidates being integrated.
#[derive(Debug, Clone, Default)]
pub(super) struct Integrator {
    /// Passed the worker gate, waiting for a place in the stack, in order.
    pub(super) waiting: VecDeque<AttemptId>,
    /// The stack, bottom first: each is merged onto the one below (the bottom onto
    /// the head).
    pub(super) candidates: Vec<AttemptId>,
    /// Batches set aside, each bottom first, merged onto the merge they were stacked
    /// on: their culprit is searched for beside the stack. They never land.
    pub(super) asides: Vec<Vec<AttemptId>>,
    /// Failed integration gate runs so far, by candidate, with the first failure.
    reruns: BTreeMap<AttemptId, (u32, String)>,
    /// Candidates whose gate failed while one below them had not passed yet: the
    /// failure may be that one's, so its verdict waits for theirs.
    pub(super) held: BTreeMap<AttemptId, String>,
    /// Candidates of batches set aside, until merged again, whose failure was counted
    /// among the verdicts as their batch was set aside.
    pub(super) counted: BTreeSet<AttemptId>,
    /// The run's latest verdicts, which size adaptive batches.
    pub(super) verdicts: Verdicts,
    /// The adaptive batch size last journaled.
    pub(super) chosen: Option<usize>,
}

impl Integrator {
    /// Queues an attempt that passed its worker gate.
    pub(super) fn enqueue(&mut self, a: AttemptId) {
        if !self.waiting.contains(&a) && !self.candidates.contains(&a) && self.aside(a).is_none() {
            self.waiting.push_back(a);
        }
    }

    /// How many attempts wait to integrate, are in the stack or set aside.
    pub(super) fn queued(&self) -> usize {
        self.waiting.len() + self.candidates.len() + self.asides.iter().map(Vec::len).sum::<usize>()
    }

    /// Other tasks' attempts waiting to integrate, in the stack or set aside.
    pub(super) fn queued_besides(&self, task: crate::task::TaskId) -> BTreeSet<AttemptId> {
        let queue = self.waiting.iter().chain(&self.candidates);
        let queue = queue.chain(self.asides.iter().flatten());
        queue.copied().filter(|a| a.task != task).collect()
    }

    /// Which set-aside batch `a` is in, if it is in one.
    fn aside(&self, a: AttemptId) -> Option<usize> {
        self.asides.iter().position(|s| s.contains(&a))
    }

    /// The chain `a` is gated in: the stack, or the batch set aside it is in.
    fn chain_of(&self, a: AttemptId) -> &[AttemptId] {
        match self.aside(a) {
            Some(i) => &self.asides[i],
            None => &self.candidates,
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

    /// Takes `a` out of the queue, the stack and any batch set aside: where it was.
    /// The rest of a batch set aside goes back to the queue, its gates' verdicts
    /// forgotten: what was below `a` at the front, what was above it at the back.
    pub(super) fn leave(&mut self, a: AttemptId) -> Option<Left> {
        self.forget(a);
        if let Some(i) = self.aside(a) {
            let mut rest = self.asides.remove(i);
            let at = rest
                .iter()
                .position(|x| *x == a)
                .expect("it is in the batch");
            let above = rest.split_off(at + 1);
            rest.pop();
            self.requeue(&rest, true);
            // Not judged yet, they may hold another culprit: stacked last, they hold
            // back nothing that was waiting.
            self.requeue(&above, false);
            rest.extend(above);
            return Some(Left::Aside(rest));
        }
        let i = self.candidates.iter().position(|c| *c == a)?;
        self.candidates.remove(i);
        Some(Left::Stack(i))
    }

    /// Puts `moved` back in the queue, in order, at its front or its back, with its
    /// gates' earlier verdicts forgotten: they are merged again.
    fn requeue(&mut self, moved: &[AttemptId], front: bool) {
        match front {
            true => moved.iter().rev().for_each(|a| self.waiting.push_front(*a)),
            false => self.waiting.extend(moved),
        }
        for a in moved {
            self.reruns.remove(a);
            self.held.remove(a);
        }
    }

    /// Takes every candidate from position `from` up off the stack, back to the front
    /// of the queue in order, with its gate's earlier verdicts forgotten: they are
    /// merged again on their new predecessor. Returns them, bottom first.
    pub(super) fn unstack_from(&mut self, from: usize) -> Vec<AttemptId> {
        let moved: Vec<AttemptId> = self.candidates.drain(from..).collect();
        self.requeue(&moved, true);
        moved
    }

    /// Whether the stack's failure held at `a` calls for setting its batch aside: the
    /// stretch from the lowest candidate not passed up to `a`, when no failure is held
    /// below `a`, some of it is not judged yet (else its verdicts are out already, and
    /// it lands sooner in place), and other work is stacked above it or waits (else
    /// nothing would go on without it). Returns where the stretch starts.
    pub(super) fn to_set_aside(&self, a: AttemptId, attempts: &Attempts) -> Option<usize> {
        let at = self.candidates.iter().position(|c| *c == a)?;
        let start = self
            .candidates
            .iter()
            .position(|c| !attempts.rec(*c).integration_passed)?;
        let below = &self.candidates[start..at];
        let held_below = below.iter().any(|c| self.held.contains_key(c));
        let unjudged = below.iter().any(|c| {
            let x = attempts.get(*c).expect("candidates exist");
            !x.rec.integration_passed && !matches!(x.op(), Some(Op::Gate(_)))
        });
        let more = at + 1 < self.candidates.len() || !self.waiting.is_empty();
        (!held_below && unjudged && more).then_some(start)
    }

    /// Sets the stack's candidates `from..=to` aside, as a batch of their own, and
    /// counts its failure among the verdicts: returns them, bottom first. What was
    /// above them is still in the stack, at `from`.
    pub(super) fn set_aside(&mut self, from: usize, to: usize) -> Vec<AttemptId> {
        let batch: Vec<AttemptId> = self.candidates.drain(from..=to).collect();
        self.asides.push(batch.clone());
        // The batch's failure counts once, now: its culprit's will not count again.
        self.verdicts.push(true);
        self.counted.extend(&batch);
        batch
    }

    /// Set-aside batches whose lowest candidate not passed has a held failure: every
    /// candidate below it passed, so it is that candidate's own. Their held summaries
    /// are handed back, to be judged.
    pub(super) fn judged_asides(&mut self, attempts: &Attempts) -> Vec<(AttemptId, String)> {
        let open: Vec<AttemptId> = self
            .asides
            .iter()
            .filter_map(|s| first_open(s, attempts))
            .collect();
        open.into_iter()
            .filter_map(|a| self.held.remove(&a).map(|why| (a, why)))
            .collect()
    }

    /// A set-aside batch all of whose candidates passed (its failure did not come
    /// again): it goes back to the front of the queue, and is handed back.
    pub(super) fn cleared_aside(&mut self, attempts: &Attempts) -> Option<Vec<AttemptId>> {
        let i = self.asides.iter().position(|s| {
            s.iter().all(|a| {
                let x = attempts.get(*a).expect("candidates exist");
                x.rec.integration_passed && !x.busy
            })
        })?;
        let batch = self.asides.remove(i);
        self.requeue(&batch, true);
        Some(batch)
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

    /// The candidates below `a` in its chain (the stack, or its batch set aside),
    /// bottom first.
    pub(super) fn below(&self, a: AttemptId) -> Vec<AttemptId> {
        let chain = self.chain_of(a).iter().copied();
        chain.take_while(|x| *x != a).collect()
    }

    /// Whether every candidate below `a` in its chain passed its gate.
    pub(super) fn below_passed(&self, a: AttemptId, attempts: &Attempts) -> bool {
        self.chain_of(a)
            .iter()
            .take_while(|c| **c != a)
            .all(|c| attempts.rec(*c).integration_passed)
    }

    /// The lowest candidate of the stack whose gate has not passed.
    pub(super) fn first_open(&self, attempts: &Attempts) -> Option<AttemptId> {
        first_open(&self.candidates, attempts)
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
    /// Each batch set aside is searched first, with an even share of the free gates
    /// (see `search`). In the stack, below the lowest held failure, the stretch not
    /// judged is bisected; nothing above it is gated, as every merge there holds its
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
        let judged = |a: &AttemptId| {
            let x = attempts.get(*a).expect("candidates exist");
            x.rec.integration_passed
                || self.held.contains_key(a)
                || matches!(x.op(), Some(Op::Gate(_)))
        };
        let held = |a: &AttemptId| self.held.contains_key(a);
        let share = free.div_ceil(self.asides.len() + 1);
        let mut due = Vec::new();
        for aside in &self.asides {
            if let Search::Bisect(points) = search(aside, share, judged, held) {
                due.extend(points);
            }
        }
        match search(&self.candidates, free, judged, held) {
            Search::Bisect(points) => due.extend(points),
            Search::Open(start) => {
                for chunk in self.candidates[start..].chunks(batch.max(1)) {
                    if chunk.len() == batch.max(1) || !more {
                        due.push(*chunk.last().expect("chunks are not empty"));
                    }
                }
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

    /// How many integration gates are out, in the stack and beside it.
    pub(super) fn gates_out(&self, attempts: &Attempts) -> usize {
        let chains = self.candidates.iter().chain(self.asides.iter().flatten());
        chains
            .filter(|a| matches!(attempts.get(**a).and_then(|x| x.op()), Some(Op::Gate(_))))
            .count()
    }
}

/// Where the gates of a chain (the stack, or a batch set aside) go.
enum Search {
    /// A failure is held: these candidates split the stretch below it not judged.
    Bisect(Vec<AttemptId>),
    /// No failure is held: the stretch from here up is not judged.
    Open(usize),
}

/// The candidates with a verdict, a held failure or a gate out split the chain `c`
/// into stretches. Below the lowest held failure, the stretch not judged is bisected:
/// its middle is gated, or with k gates free, k points evenly spaced in it.
fn search(
    c: &[AttemptId],
    free: usize,
    judged: impl Fn(&AttemptId) -> bool,
    held: impl Fn(&AttemptId) -> bool,
) -> Search {
    let mut start = 0;
    for (i, a) in c.iter().enumerate() {
        if !judged(a) {
            continue;
        }
        if held(a) {
            // Every merge above holds this failure's culprit: gating one tells nothing
            // until the culprit is found, so the gates go to the search.
            let (m, k) = (i - start, free.max(1).min(i - start));
            return Search::Bisect((1..=k).map(|j| c[start + (j * m - 1) / (k + 1)]).collect());
        }
        start = i + 1;
    }
    Search::Open(start)
}

/// The lowest candidate of `chain` whose gate has not passed.
fn first_open(chain: &[AttemptId], attempts: &Attempts) -> Option<AttemptId> {
    chain
        .iter()
        .copied()
        .find(|a| !attempts.rec(*a).integration_passed)
}
