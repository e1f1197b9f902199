//! Gate slots (`validate.slots`): how many gates, worker and integration together,
//! run at once, so that they do not fight for the CPU. A gate asked for while every
//! slot is taken waits, without a deadline, and starts when one frees, the one that
//! waited longest first. Integration gates are asked for only when a slot is free
//! (the integrator forms a batch from what is ready then), and come before the
//! waiting gates. Not journaled: a resume asks for every gate in flight again.
//!
//! Left to the machine, the slots start at its cores and follow its load: more while
//! every slot is taken and the CPU stays mostly idle (gates that wait on a network, a
//! device or a timer), fewer once it is nearly full, never below the cores nor above
//! the ceiling ([`GateSlots::load`]).

use std::collections::{BTreeSet, VecDeque};

use super::types::{AttemptId, CommitId, Stage};

/// A gate to run: which attempt's, which stage, on which commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GateRun {
    pub(super) attempt: AttemptId,
    pub(super) stage: Stage,
    pub(super) commit: CommitId,
}

/// The CPU busy below this (in permille of all cores) lets the slots grow.
const IDLE_BELOW: u32 = 500;
/// The CPU busy from this (in permille of all cores) shrinks them.
const FULL_FROM: u32 = 900;
/// The share of the CPU (in permille of all cores) the slots are sized to fill.
const TARGET: u32 = 800;

/// The gates running and those waiting for a slot.
#[derive(Debug, Clone, Default)]
pub(super) struct GateSlots {
    /// At most this many run at once; 0: no bound.
    max: usize,
    /// The fewest slots the load may leave (the configured or the machine's count).
    base: usize,
    /// The most slots the load may give; `base` when they do not follow it.
    ceiling: usize,
    running: BTreeSet<AttemptId>,
    waiting: VecDeque<GateRun>,
}

impl GateSlots {
    /// Slots for at most `max` gates at once (0: no bound), up to `ceiling` while
    /// the machine's CPU idles (`ceiling <= max`: they stay at `max`).
    pub(super) fn new(max: usize, ceiling: usize) -> GateSlots {
        GateSlots {
            max,
            base: max,
            ceiling: if max == 0 { 0 } else { ceiling.max(max) },
            ..GateSlots::default()
        }
    }

    /// The slots now.
    pub(super) fn slots(&self) -> usize {
        self.max
    }

    /// The machine's CPU was `busy` permille of all its cores since the last sample.
    /// When every slot is taken and it was under half busy, there are more slots: as
    /// many as would fill [`TARGET`] of it at the load each slot made, at least one
    /// more and at most twice as many. When it was nearly full, fewer: as many as fit
    /// the target, at least one fewer. Never below the base nor above the ceiling; a
    /// gate past a shrunk count runs on, and none starts until enough end. The new
    /// count and why, when it changed.
    pub(super) fn load(&mut self, busy: u32) -> Option<(usize, String)> {
        let busy = busy.min(1000);
        let fit = self.max * TARGET as usize / busy.max(1) as usize;
        let pct = busy / 10;
        let (slots, why) = if busy < IDLE_BELOW && self.free() == 0 {
            let more = fit.clamp(self.max + 1, self.max * 2).min(self.ceiling);
            (
                more,
                format!("every gate slot was taken and the CPU {pct}% busy"),
            )
        } else if busy >= FULL_FROM {
            let fewer = fit.min(self.max.saturating_sub(1)).max(self.base);
            (fewer, format!("the CPU was {pct}% busy"))
        } else {
            return None;
        };
        if slots == self.max || self.max == 0 {
            return None;
        }
        self.max = slots;
        Some((slots, format!("{why}: {slots} gate slots")))
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

    /// `attempt`'s gate ended: its slot is free.
    pub(super) fn release(&mut self, attempt: AttemptId) {
        self.running.remove(&attempt);
    }

    /// How many more gates may start now.
    pub(super) fn free(&self) -> usize {
        match self.max {
            0 => usize::MAX,
            n => n.saturating_sub(self.running.len()),
        }
    }

    /// The gate that waited longest, into a free slot, if there are both.
    pub(super) fn next(&mut self) -> Option<GateRun> {
        if self.free() == 0 {
            return None;
        }
        let g = self.waiting.pop_front()?;
        self.running.insert(g.attempt);
        Some(g)
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
    fn gates_wait_for_a_slot_in_order() {
        let mut s = GateSlots::new(2, 0);
        assert!(s.admit(gate(1, Stage::Worker)).is_some());
        assert!(s.admit(gate(2, Stage::Worker)).is_some());
        assert_eq!(s.free(), 0);
        assert!(s.admit(gate(3, Stage::Worker)).is_none());
        assert!(s.admit(gate(4, Stage::Worker)).is_none());
        assert!(s.admit(gate(5, Stage::Worker)).is_none());
        assert_eq!(s.waiting(), 3);
        assert_eq!(s.next(), None);
        s.release(gate(1, Stage::Worker).attempt);
        assert!(s.withdraw(gate(3, Stage::Worker).attempt));
        assert!(!s.withdraw(gate(3, Stage::Worker).attempt));
        assert_eq!(s.next(), Some(gate(4, Stage::Worker)));
        assert_eq!(s.next(), None);
        s.release(gate(2, Stage::Worker).attempt);
        assert_eq!(s.next(), Some(gate(5, Stage::Worker)));
        assert_eq!(s.waiting(), 0);
        let mut free = GateSlots::new(0, 8);
        for t in 0..100 {
            assert!(free.admit(gate(t, Stage::Worker)).is_some());
        }
        assert_eq!(free.free(), usize::MAX);
        assert_eq!(free.load(0), None, "no bound: nothing to grow");
    }

    #[test]
    fn slots_left_to_the_machine_follow_its_load() {
        let mut s = GateSlots::new(2, 6);
        assert_eq!(s.load(100), None, "slots free: no need for more");
        s.admit(gate(1, Stage::Worker));
        s.admit(gate(2, Stage::Integration));
        assert_eq!(s.load(700), None, "busy enough: no more");
        // Two gates made 35%: four make 70%, five would pass 80%.
        assert_eq!(
            s.load(350),
            Some((
                4,
                "every gate slot was taken and the CPU 35% busy: 4 gate slots".into()
            ))
        );
        assert_eq!(s.next(), None);
        assert!(s.admit(gate(3, Stage::Worker)).is_some());
        assert!(s.admit(gate(4, Stage::Worker)).is_some());
        // Four that barely use it: twice as many at most.
        assert_eq!(
            s.load(10).map(|(n, _)| n),
            Some(6),
            "doubled, within the ceiling"
        );
        for t in 5..=6 {
            assert!(s.admit(gate(t, Stage::Worker)).is_some());
        }
        assert_eq!(s.load(0), None, "the ceiling");
        // Six filled all of it: four fit 80%.
        assert_eq!(
            s.load(1000),
            Some((4, "the CPU was 100% busy: 4 gate slots".into()))
        );
        // They run on, but the next waits until three have ended.
        assert!(s.admit(gate(7, Stage::Worker)).is_none());
        for t in 1..=2 {
            s.release(gate(t, Stage::Worker).attempt);
            assert_eq!(s.next(), None);
        }
        s.release(gate(3, Stage::Worker).attempt);
        assert_eq!(s.next(), Some(gate(7, Stage::Worker)));
        assert_eq!(
            s.load(950).map(|(n, _)| n),
            Some(3),
            "four made 95%: three fit"
        );
        assert_eq!(
            s.load(1000).map(|(n, _)| n),
            Some(2),
            "never below the base"
        );
        assert_eq!(s.load(1000), None);
        assert_eq!(s.slots(), 2);
        let mut fixed = GateSlots::new(1, 0);
        fixed.admit(gate(1, Stage::Worker));
        assert_eq!(fixed.load(0), None, "set by hand: fixed");
    }
}
