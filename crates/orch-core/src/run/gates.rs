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
//!
//! Worker gates that end quickly (`true`, a check of one file) cannot crowd the CPU:
//! with the slots left to the machine, once the run's last few ended within a second
//! each, worker gates take no slot, and those waiting start at once. One that takes
//! longer, or is stopped, gives the slots their say again ([`GateSlots::judged`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::types::{AttemptId, CommitId, Stage};
use crate::Timestamp;

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
/// A worker gate that ends within this many milliseconds of its start (the run's own
/// time, from its slot to its verdict, orch's own waits included: `true` gates took
/// up to 0.6 s so with 64 agents ending at once on 2 cores) is quick.
const QUICK_MS: i64 = 1000;
/// After this many quick worker gates in a row, worker gates take no slot.
const QUICK_RUNS: u32 = 3;

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
    /// The worker gates running, each since when.
    worker_since: BTreeMap<AttemptId, Timestamp>,
    /// How many worker gates in a row ended quickly.
    quick: u32,
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

    /// Asks for a slot for `gate` at `now`: it is handed back to run now, or it waits.
    pub(super) fn admit(&mut self, gate: GateRun, now: Timestamp) -> Option<GateRun> {
        let slotless = self.slotless(&gate);
        if !slotless && self.max > 0 && self.running.len() >= self.max {
            self.waiting.push_back(gate);
            return None;
        }
        Some(self.start(gate, now))
    }

    /// `gate` starts at `now`: in a slot, unless it needs none.
    fn start(&mut self, gate: GateRun, now: Timestamp) -> GateRun {
        if !self.slotless(&gate) {
            self.running.insert(gate.attempt);
        }
        if gate.stage == Stage::Worker {
            self.worker_since.insert(gate.attempt, now);
        }
        gate
    }

    /// Whether `gate` runs without a slot: a worker gate while the run's are quick.
    fn slotless(&self, gate: &GateRun) -> bool {
        gate.stage == Stage::Worker && self.quick_workers()
    }

    /// Whether worker gates take no slot now: the slots are the machine's (set by
    /// hand, they may keep gates apart for other reasons than the CPU), and the last
    /// [`QUICK_RUNS`] each ended within [`QUICK_MS`].
    pub(super) fn quick_workers(&self) -> bool {
        self.ceiling > self.base && self.quick >= QUICK_RUNS
    }

    /// `attempt`'s gate came back at `now`, run to its verdict (`ran`) or not (a pass
    /// reused from another run of it, which says nothing of its time). A worker gate
    /// run to its verdict counts towards quick worker gates, or ends the streak.
    pub(super) fn judged(&mut self, attempt: AttemptId, now: Timestamp, ran: bool) {
        let Some(since) = self.worker_since.remove(&attempt) else {
            return;
        };
        if ran {
            self.quick = match now.0 - since.0 <= QUICK_MS {
                true => self.quick.saturating_add(1),
                false => 0,
            };
        }
    }

    /// `attempt`'s gate ended: its slot is free. A worker gate that ended without a
    /// verdict (stopped, or it could not run) ends the streak of quick ones.
    pub(super) fn release(&mut self, attempt: AttemptId) {
        self.running.remove(&attempt);
        if self.worker_since.remove(&attempt).is_some() {
            self.quick = 0;
        }
    }

    /// How many more gates may start now.
    pub(super) fn free(&self) -> usize {
        match self.max {
            0 => usize::MAX,
            n => n.saturating_sub(self.running.len()),
        }
    }

    /// The gate that waited longest, into a free slot, if there are both; a worker
    /// gate that needs no slot, whatever the slots.
    pub(super) fn next(&mut self, now: Timestamp) -> Option<GateRun> {
        let i = match self.free() {
            0 => self.waiting.iter().position(|g| self.slotless(g))?,
            _ => 0,
        };
        let g = self.waiting.remove(i)?;
        Some(self.start(g, now))
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

    const T0: Timestamp = Timestamp(0);

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
        assert!(s.admit(gate(1, Stage::Worker), T0).is_some());
        assert!(s.admit(gate(2, Stage::Worker), T0).is_some());
        assert_eq!(s.free(), 0);
        assert!(s.admit(gate(3, Stage::Worker), T0).is_none());
        assert!(s.admit(gate(4, Stage::Worker), T0).is_none());
        assert!(s.admit(gate(5, Stage::Worker), T0).is_none());
        assert_eq!(s.waiting(), 3);
        assert_eq!(s.next(T0), None);
        s.release(gate(1, Stage::Worker).attempt);
        assert!(s.withdraw(gate(3, Stage::Worker).attempt));
        assert!(!s.withdraw(gate(3, Stage::Worker).attempt));
        assert_eq!(s.next(T0), Some(gate(4, Stage::Worker)));
        assert_eq!(s.next(T0), None);
        s.release(gate(2, Stage::Worker).attempt);
        assert_eq!(s.next(T0), Some(gate(5, Stage::Worker)));
        assert_eq!(s.waiting(), 0);
        let mut free = GateSlots::new(0, 8);
        for t in 0..100 {
            assert!(free.admit(gate(t, Stage::Worker), T0).is_some());
        }
        assert_eq!(free.free(), usize::MAX);
        assert_eq!(free.load(0), None, "no bound: nothing to grow");
    }

    #[test]
    fn slots_left_to_the_machine_follow_its_load() {
        let mut s = GateSlots::new(2, 6);
        assert_eq!(s.load(100), None, "slots free: no need for more");
        s.admit(gate(1, Stage::Worker), T0);
        s.admit(gate(2, Stage::Integration), T0);
        assert_eq!(s.load(700), None, "busy enough: no more");
        // Two gates made 35%: four make 70%, five would pass 80%.
        assert_eq!(
            s.load(350),
            Some((
                4,
                "every gate slot was taken and the CPU 35% busy: 4 gate slots".into()
            ))
        );
        assert_eq!(s.next(T0), None);
        assert!(s.admit(gate(3, Stage::Worker), T0).is_some());
        assert!(s.admit(gate(4, Stage::Worker), T0).is_some());
        // Four that barely use it: twice as many at most.
        assert_eq!(
            s.load(10).map(|(n, _)| n),
            Some(6),
            "doubled, within the ceiling"
        );
        for t in 5..=6 {
            assert!(s.admit(gate(t, Stage::Worker), T0).is_some());
        }
        assert_eq!(s.load(0), None, "the ceiling");
        // Six filled all of it: four fit 80%.
        assert_eq!(
            s.load(1000),
            Some((4, "the CPU was 100% busy: 4 gate slots".into()))
        );
        // They run on, but the next waits until three have ended.
        assert!(s.admit(gate(7, Stage::Worker), T0).is_none());
        for t in 1..=2 {
            s.release(gate(t, Stage::Worker).attempt);
            assert_eq!(s.next(T0), None);
        }
        s.release(gate(3, Stage::Worker).attempt);
        assert_eq!(s.next(T0), Some(gate(7, Stage::Worker)));
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
        fixed.admit(gate(1, Stage::Worker), T0);
        assert_eq!(fixed.load(0), None, "set by hand: fixed");
    }

    #[test]
    fn quick_worker_gates_take_no_slot_until_one_is_slow() {
        let mut s = GateSlots::new(1, 4);
        let at = Timestamp;
        // Three quick ones in a row, one slot: each waits for the last.
        for t in 1..=3 {
            assert!(s.admit(gate(t, Stage::Worker), at(t * 1000)).is_some());
            assert!(!s.quick_workers());
            s.judged(gate(t, Stage::Worker).attempt, at(t * 1000 + 1000), true);
            s.release(gate(t, Stage::Worker).attempt);
        }
        assert!(s.quick_workers());
        // Now worker gates need no slot; an integration gate still does.
        assert!(s.admit(gate(4, Stage::Integration), at(5000)).is_some());
        assert!(s.admit(gate(5, Stage::Integration), at(5000)).is_none());
        for t in 6..=9 {
            assert!(s.admit(gate(t, Stage::Worker), at(5000)).is_some());
        }
        assert_eq!(s.free(), 0, "the integration gate holds the one slot");
        // A reused pass says nothing of the time; a slow verdict ends the streak.
        s.judged(gate(6, Stage::Worker).attempt, at(9000), false);
        assert!(s.quick_workers());
        s.judged(gate(7, Stage::Worker).attempt, at(6001), true);
        assert!(!s.quick_workers());
        assert!(s.admit(gate(10, Stage::Worker), at(7000)).is_none());
        // Quick again: the waiting worker gate starts without a slot.
        s.quick = QUICK_RUNS;
        assert_eq!(s.next(at(7000)), Some(gate(10, Stage::Worker)));
        // One stopped without a verdict ends the streak too.
        s.release(gate(8, Stage::Worker).attempt);
        assert!(!s.quick_workers());
        s.release(gate(5, Stage::Integration).attempt);
        s.judged(gate(9, Stage::Worker).attempt, at(5100), true);
        assert_eq!(s.quick, 1, "a new streak");
        // Slots set by hand stay as set, however quick the gates.
        let mut fixed = GateSlots::new(1, 0);
        fixed.quick = QUICK_RUNS;
        assert!(!fixed.quick_workers());
        assert!(fixed.admit(gate(1, Stage::Worker), T0).is_some());
        assert!(fixed.admit(gate(2, Stage::Worker), T0).is_none());
    }
}
