//! Gate slots (`validate.slots`): how many gates, worker and integration together,
//! run at once, so that they do not fight for the CPU. A gate asked for while every
//! slot is taken waits, without a deadline, and starts when one frees: an integration
//! gate first (it lets work land), else the one that waited longest. Not journaled: a
//! resume asks for every gate in flight again.

use std::collections::{BTreeSet, VecDeque};

use super::types::{AttemptId, CommitId, Stage};

/// A gate to run: which attempt's, which stage, on which commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GateRun {
    pub(super) attempt: AttemptId,
    pub(super) stage: Stage,
    pub(super) commit: CommitId,
}

/// The gates running and those waiting for a slot.
#[derive(Debug, Clone, Default)]
pub(super) struct GateSlots {
    /// At most this many run at once; 0: no bound.
    max: usize,
    running: BTreeSet<AttemptId>,
    waiting: VecDeque<GateRun>,
}

impl GateSlots {
    /// Slots for at most `max` gates at once (0: no bound).
    pub(super) fn new(max: usize) -> GateSlots {
        GateSlots {
            max,
            ..GateSlots::default()
        }
    }

    /// Asks for a slot for `gate`: it is handed back to run now, or it waits.
    pub(super) fn admit(&mut self, gate: GateRun) -> Option<GateRun> {
        if self.max > 0 && self.running.len() >= self.max {
            self.waiting.push_back(gate);
            return None;
        }
        self.running.insert(gate.attempt);
        Some(gate)
    }

    /// `attempt`'s gate ended: its slot goes to the gates that may start now.
    pub(super) fn release(&mut self, attempt: AttemptId) -> Vec<GateRun> {
        if !self.running.remove(&attempt) {
            return Vec::new();
        }
        let mut start = Vec::new();
        while self.max == 0 || self.running.len() < self.max {
            let next = self
                .waiting
                .iter()
                .position(|g| g.stage == Stage::Integration)
                .or((!self.waiting.is_empty()).then_some(0));
            let Some(i) = next else { break };
            let g = self.waiting.remove(i).expect("a position in the queue");
            self.running.insert(g.attempt);
            start.push(g);
        }
        start
    }

    /// Takes `attempt`'s gate out of the queue, if it waits there (its attempt is
    /// being stopped): whether it did.
    pub(super) fn withdraw(&mut self, attempt: AttemptId) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|g| g.attempt != attempt);
        self.waiting.len() != before
    }

    /// How many gates wait for a slot.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;

    fn gate(task: i64, stage: Stage) -> GateRun {
        GateRun {
            attempt: AttemptId {
                task: TaskId(task),
                number: 1,
            },
            stage,
            commit: CommitId(format!("c{task}")),
        }
    }

    #[test]
    fn gates_wait_for_a_slot_and_integration_goes_first() {
        let mut s = GateSlots::new(2);
        assert!(s.admit(gate(1, Stage::Worker)).is_some());
        assert!(s.admit(gate(2, Stage::Worker)).is_some());
        assert!(s.admit(gate(3, Stage::Worker)).is_none());
        assert!(s.admit(gate(4, Stage::Integration)).is_none());
        assert!(s.admit(gate(5, Stage::Worker)).is_none());
        assert_eq!(s.waiting(), 3);
        // A release of a gate that does not run frees nothing.
        assert!(s.release(gate(9, Stage::Worker).attempt).is_empty());
        assert_eq!(
            s.release(gate(1, Stage::Worker).attempt),
            vec![gate(4, Stage::Integration)]
        );
        assert!(s.withdraw(gate(3, Stage::Worker).attempt));
        assert!(!s.withdraw(gate(3, Stage::Worker).attempt));
        assert_eq!(
            s.release(gate(2, Stage::Worker).attempt),
            vec![gate(5, Stage::Worker)]
        );
        assert_eq!(s.waiting(), 0);
        let mut free = GateSlots::new(0);
        for t in 0..100 {
            assert!(free.admit(gate(t, Stage::Worker)).is_some());
        }
    }
}
