//! Gates on the stack of batches (`run.integration_depth` candidates gated at once,
//! each a batch of up to `run.integration_batch` attempts, with the gate run only on a
//! batch's top). A passing top validates everything below it. A failing top is
//! bisected: the gate runs on the middle of the candidates below it not yet judged,
//! until the lowest failing one, whose candidates below all passed, is the culprit; it
//! fails, and only what was above it is stacked again. Under `run.integration =
//! "auto"` the batch size follows the run's recent verdicts ([`Verdicts`]).
//!
//! [`Verdicts`]: crate::run::Verdicts

use super::Orchestrator;
use crate::run::event::RunEvent;
use crate::run::io::Stage;
use crate::run::types::{AttemptId, CommitId};

impl Orchestrator {
    /// Runs the gates that are due, as free gate slots allow (see
    /// [`Integrator::gates_due`]).
    ///
    /// [`Integrator::gates_due`]: crate::run::integrator::Integrator::gates_due
    pub(super) fn schedule_gates(&mut self) {
        if self.state.is_terminal() {
            return;
        }
        let free = self
            .policy
            .integration
            .depth
            .saturating_sub(self.integrator.gates_out(&self.attempts))
            .min(self.gates.free());
        if free == 0 {
            return;
        }
        let batch = self.batch_size();
        let more = !self.integrator.waiting.is_empty()
            && self.integrator.candidates.len() < self.stack_capacity();
        for (a, commit) in self.integrator.gates_due(batch, free, more, &self.attempts) {
            self.run_gate(a, Stage::Integration, commit);
        }
    }

    /// Gate slots left to the machine follow its load; a change is journaled with the
    /// queue's shape, as it bounds how many integration gates run.
    pub(super) fn on_cpu_load(&mut self, busy: u32) {
        if self.state.is_terminal() || self.head.is_none() {
            return;
        }
        let Some((slots, why)) = self.gates.load(busy) else {
            return;
        };
        let shape = self.policy.integration;
        self.persist(RunEvent::Shaped {
            depth: shape.depth.min(slots) as u32,
            batch: self.integrator.chosen.unwrap_or(shape.batch) as u32,
            why,
        });
    }

    /// The gate slots now: `validate.slots`, or what the machine's load left them at
    /// (0: no bound).
    pub fn gate_slots(&self) -> usize {
        self.gates.slots()
    }

    /// Whether worker gates take no gate slot now: the run's last few ended quickly.
    pub fn quick_worker_gates(&self) -> bool {
        self.gates.quick_workers()
    }

    /// The most candidates stacked at once: the depth's worth of batches.
    pub(super) fn stack_capacity(&mut self) -> usize {
        self.policy.integration.depth.max(1) * self.batch_size()
    }

    /// The batch size now: the configured one, or under `auto` what the run's recent
    /// verdicts call for, journaled when it changes.
    fn batch_size(&mut self) -> usize {
        let shape = self.policy.integration;
        if !shape.adaptive {
            return shape.batch;
        }
        let size = self.integrator.verdicts.batch(shape.batch);
        if self.integrator.chosen != Some(size) {
            self.integrator.chosen = Some(size);
            self.persist(RunEvent::Shaped {
                depth: shape.depth as u32,
                batch: size as u32,
                why: self.integrator.verdicts.why(shape.batch),
            });
        }
        size
    }

    /// The gate passed on `by`'s merge `commit`: every candidate below it, whose work
    /// that merge holds, is validated with it.
    pub(super) fn imply_below(&mut self, by: AttemptId, commit: &CommitId) {
        let below: Vec<AttemptId> = self
            .integrator
            .below(by)
            .into_iter()
            // One whose own gate is out is judged by it.
            .filter(|a| {
                let x = self.attempts.get(*a).expect("candidates exist");
                !x.rec.integration_passed && !x.busy
            })
            // One whose gate failed is judged as its own failure once those below it
            // pass.
            .filter(|a| !self.integrator.held.contains_key(a))
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
