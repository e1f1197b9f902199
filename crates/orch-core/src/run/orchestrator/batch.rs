//! Batches (`run.integration_batch = B`): up to B attempts stacked as one candidate and
//! validated together, with the gate run only on the top. A passing top validates
//! everything below it. A failing top is bisected: the gate runs on the middle of the
//! candidates not yet known good, until the lowest failing one, whose candidates below
//! all passed, is the culprit; it fails, and what was above it is stacked again.
//! (With B = 1 the stack is `run.integration_depth` deep, every candidate gated.)

use super::Orchestrator;
use crate::run::attempt::Op;
use crate::run::event::RunEvent;
use crate::run::io::Stage;
use crate::run::types::{AttemptId, AttemptState, CommitId};

impl Orchestrator {
    /// Batches are on.
    pub(super) fn batching(&self) -> bool {
        self.policy.integration_batch > 1
    }

    /// How many candidates the stack holds at most.
    pub(super) fn stack_capacity(&self) -> usize {
        match self.batching() {
            true => self.policy.integration_batch,
            false => self.policy.integration_depth.max(1),
        }
    }

    /// A batch's next gate, if none is out: the middle of the candidates between the
    /// lowest not yet validated and the lowest known to fail (bisection), or, with none
    /// known to fail, the top once the batch is complete (full, or nothing waits).
    pub(super) fn schedule_batch_gate(&mut self) {
        if !self.batching() || self.state.is_terminal() {
            return;
        }
        let c = self.integrator.candidates.clone();
        let gating = c.iter().any(|a| {
            matches!(
                self.attempts.get(*a).and_then(|x| x.op()),
                Some(Op::Gate(_) | Op::Merge)
            )
        });
        let Some(lo) = c
            .iter()
            .position(|a| !self.attempts.rec(*a).integration_passed)
        else {
            return;
        };
        if gating {
            return;
        }
        let target = match c.iter().position(|a| self.integrator.held.contains_key(a)) {
            // The lowest failing one has only validated candidates below: judged as
            // its own failure by `try_advance`.
            Some(hi) if hi <= lo => return,
            Some(hi) => lo + (hi - lo - 1) / 2,
            None => {
                let full = c.len() >= self.stack_capacity();
                if !full && !self.integrator.waiting.is_empty() {
                    return;
                }
                c.len() - 1
            }
        };
        let a = c[target];
        let x = self.attempts.get(a).expect("candidates exist");
        if x.rec.state != AttemptState::Integrating || x.busy || x.abort.is_some() {
            return;
        }
        let commit = x
            .rec
            .merge
            .clone()
            .expect("integrating attempts have a merge");
        self.run_gate(a, Stage::Integration, commit);
    }

    /// The gate passed on `by`'s merge `commit`: every candidate below it, whose work
    /// that merge holds, is validated with it.
    pub(super) fn imply_below(&mut self, by: AttemptId, commit: &CommitId) {
        let below: Vec<AttemptId> = self
            .integrator
            .candidates
            .iter()
            .copied()
            .take_while(|a| *a != by)
            // One whose own gate is out is judged by it.
            .filter(|a| {
                let x = self.attempts.get(*a).expect("candidates exist");
                !x.rec.integration_passed && !x.busy
            })
            .collect();
        for a in below {
            self.integrator.held.remove(&a);
            self.persist(RunEvent::IntegrationImplied {
                attempt: a,
                by,
                commit: commit.clone(),
            });
            self.attempts.at(a).rec.integration_passed = true;
        }
    }
}
