//! Batches (`run.integration_batch = B`): up to B attempts stacked as one candidate and
//! validated together, with the gate run only on the top. A passing top validates
//! everything below it. A failing top is bisected: the gate runs on the middle of the
//! candidates not yet known good, until the lowest failing one, whose candidates below
//! all passed, is the culprit; it fails, and what was above it is stacked again.
//! (With B = 1 the stack is `run.integration_depth` deep, every candidate gated.)

use super::Orchestrator;
use crate::run::event::RunEvent;
use crate::run::io::Stage;
use crate::run::types::{AttemptId, CommitId};

impl Orchestrator {
    /// Runs a batch's next gate, if one is due (see [`Integrator::batch_gate`]).
    ///
    /// [`Integrator::batch_gate`]: crate::run::integrator::Integrator::batch_gate
    pub(super) fn schedule_batch_gate(&mut self) {
        if !self.policy.batching() || self.state.is_terminal() {
            return;
        }
        let capacity = self.policy.stack_capacity();
        if let Some((a, commit)) = self.integrator.batch_gate(capacity, &self.attempts) {
            self.run_gate(a, Stage::Integration, commit);
        }
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
