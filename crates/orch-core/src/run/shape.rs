//! The integration queue's shape: how many candidates are gated at once (the depth,
//! each candidate a batch stacked on the one below) and how many attempts a batch
//! holds, as `run.integration` chooses them.
//!
//! Under `auto`, the depth is `validate.integration_slots` (as many as the gate slots
//! may be, unless set; the gates actually run are bounded by the slots), and the batch follows the run's recent gate verdicts: with no failure among
//! them, the largest; as failures rise, Dorfman's group size `1 + 1/√p`; and one attempt
//! at a time once 30% fail, where pooling costs more than it saves (the adaptive
//! batching of bors and Mergify). Depth and batch set by hand are taken as they are.

use std::collections::VecDeque;

use crate::config::{Config, IntegrationMode, MAX_INTEGRATION_DEPTH};

/// The largest batch `auto` makes: with no failure among the recent verdicts, a
/// batch is whatever is ready, up to this. 64 attempts ready at once pass in one gate
/// (16 took four, two rounds on two gate slots); one failure among them shrinks the
/// next batches at once.
pub const AUTO_BATCH: usize = 64;

/// How many of the run's latest integration verdicts size an adaptive batch.
pub const RECENT_VERDICTS: usize = 20;

/// Fewer verdicts than this count as this many passes and the failures among them,
/// so that one early failure does not shrink batches to one.
const PRIOR: usize = 10;

/// The integration queue's shape for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Candidates gated at once, each a batch stacked on the one below.
    pub depth: usize,
    /// Attempts per batch; the most, when adaptive.
    pub batch: usize,
    /// The batch size follows the run's recent gate verdicts (`auto`).
    pub adaptive: bool,
}

impl Shape {
    /// One candidate at a time, one attempt each (`run.integration = "fixed"`).
    pub const ONE: Shape = Shape {
        depth: 1,
        batch: 1,
        adaptive: false,
    };

    /// The shape `c` asks for.
    pub fn of(c: &Config) -> Shape {
        let auto = c.run.integration == IntegrationMode::Auto;
        let cap = |v: u32| v.clamp(1, MAX_INTEGRATION_DEPTH) as usize;
        let depth = match (c.run.integration_depth, auto) {
            // As many integration gates as may run at once, within as many gate slots
            // as there may be.
            (0, true) => cap(match c.validate.slots {
                0 => c.validate.integration_slots,
                n => c
                    .validate
                    .integration_slots
                    .min(n.max(c.validate.slots_ceiling)),
            }),
            (0, false) => 1,
            (d, _) => cap(d),
        };
        let (batch, adaptive) = match (c.run.integration_batch, auto) {
            (0, true) => (AUTO_BATCH, true),
            (0, false) => (1, false),
            (b, _) => (cap(b), false),
        };
        Shape {
            depth,
            batch,
            adaptive,
        }
    }

    /// The most candidates the stack holds: `depth` batches.
    pub fn capacity(&self) -> usize {
        self.depth.max(1) * self.batch.max(1)
    }

    /// The shape in words, for the journal and the run page.
    pub fn describe(&self) -> String {
        let gates = match self.depth {
            1 => "1 integration gate at a time".to_owned(),
            d => format!("{d} integration gates at once, each batch stacked on the one below"),
        };
        match (self.adaptive, self.batch) {
            (true, b) => format!(
                "{gates}; batches of whatever is ready, up to {b}, smaller as the run's gates fail"
            ),
            (false, 1) => format!("{gates}; one attempt per candidate"),
            (false, b) => format!("{gates}; batches of up to {b}, a failing one bisected"),
        }
    }
}

/// The run's latest integration verdicts, newest last: `true` for a candidate that
/// failed its gate as the culprit.
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    latest: VecDeque<bool>,
}

impl Verdicts {
    /// Records a verdict, forgetting the oldest past [`RECENT_VERDICTS`].
    pub fn push(&mut self, failed: bool) {
        if self.latest.len() == RECENT_VERDICTS {
            self.latest.pop_front();
        }
        self.latest.push_back(failed);
    }

    /// The verdicts, oldest first.
    pub fn latest(&self) -> Vec<bool> {
        self.latest.iter().copied().collect()
    }

    /// The failures among them, and how many they are.
    pub fn failures(&self) -> (usize, usize) {
        let failed = self.latest.iter().filter(|f| **f).count();
        (failed, self.latest.len())
    }

    /// The batch size they call for, at most `max`.
    pub fn batch(&self, max: usize) -> usize {
        let (failed, judged) = self.failures();
        if failed == 0 {
            return max;
        }
        let p = failed as f64 / judged.max(PRIOR) as f64;
        match p >= 0.3 {
            true => 1,
            // Dorfman's optimal pool for a failure rate p; the float is small.
            false => ((1.0 + 1.0 / p.sqrt()).floor() as usize).clamp(1, max),
        }
    }

    /// Why they call for [`Verdicts::batch`]'s size, in words.
    pub fn why(&self, max: usize) -> String {
        let size = self.batch(max);
        match self.failures() {
            (_, 0) => format!("no gate verdict yet: batches of up to {size}"),
            (0, n) => format!("no failure among the last {n} integrated: batches of up to {size}"),
            (failed, n) => format!(
                "{failed} of the last {n} integrated failed their gate: batches of up to {size}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(failed: usize, passed: usize) -> Verdicts {
        let mut v = Verdicts::default();
        (0..passed).for_each(|_| v.push(false));
        (0..failed).for_each(|_| v.push(true));
        v
    }

    #[test]
    fn batches_shrink_as_failures_rise() {
        assert_eq!(verdicts(0, 0).batch(16), 16);
        assert_eq!(verdicts(0, 20).batch(16), 16);
        // One early failure counts against ten: p = 0.1, a batch of 4.
        assert_eq!(verdicts(1, 2).batch(16), 4);
        assert_eq!(verdicts(2, 18).batch(16), 4);
        assert_eq!(verdicts(1, 19).batch(16), 5);
        assert_eq!(verdicts(6, 14).batch(16), 1);
        assert_eq!(verdicts(1, 19).batch(3), 3);
        assert_eq!(
            verdicts(2, 18).why(16),
            "2 of the last 20 integrated failed their gate: batches of up to 4"
        );
        // Only the latest count.
        let mut v = verdicts(10, 0);
        (0..RECENT_VERDICTS).for_each(|_| v.push(false));
        assert_eq!(v.batch(16), 16);
        assert_eq!(
            v.why(16),
            "no failure among the last 20 integrated: batches of up to 16"
        );
        assert_eq!(
            Verdicts::default().why(8),
            "no gate verdict yet: batches of up to 8"
        );
    }

    #[test]
    fn auto_fills_in_what_is_not_set() {
        let mut c = Config::default();
        c.validate.integration_slots = 3;
        let s = Shape::of(&c);
        assert_eq!((s.depth, s.batch, s.adaptive), (3, AUTO_BATCH, true));
        c.run.integration_batch = 2;
        let s = Shape::of(&c);
        assert_eq!((s.depth, s.batch, s.adaptive), (3, 2, false));
        c.run.integration = IntegrationMode::Fixed;
        c.run.integration_batch = 0;
        let s = Shape::of(&c);
        assert_eq!((s.depth, s.batch, s.adaptive), (1, 1, false));
        assert_eq!(
            s.describe(),
            "1 integration gate at a time; one attempt per candidate"
        );
    }
}
