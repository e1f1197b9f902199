//! One timer table for every deadline of a run: an attempt's operation, its kill
//! grace, a task's retry backoff, a planner request. Each deadline has one key, so
//! arming it again moves it and disarming it is a lookup.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::types::AttemptId;
use crate::task::TaskId;
use crate::time::Timestamp;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Deadline {
    /// The attempt's current operation (agent or gate) ran out of time.
    Op(AttemptId),
    /// The attempt was sent SIGTERM `kill_grace` ago: SIGKILL now.
    Grace(AttemptId),
    /// The task's retry backoff is over.
    Retry(TaskId),
    /// The planner did not answer this request in time.
    Planner(u64),
    /// The quota breaker's wait is over: one probe may start.
    Breaker,
}

/// Every armed deadline, by time and by key.
#[derive(Debug, Clone, Default)]
pub(super) struct Timers {
    by_time: BTreeSet<(Timestamp, Deadline)>,
    by_key: BTreeMap<Deadline, Timestamp>,
}

/// `now + d`, saturating.
pub(super) fn after(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp(
        now.0
            .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
    )
}

impl Timers {
    /// Arms (or re-arms) `d` at `at`.
    pub(super) fn arm(&mut self, d: Deadline, at: Timestamp) {
        self.disarm(d);
        self.by_time.insert((at, d));
        self.by_key.insert(d, at);
    }

    /// Disarms `d` if it is armed.
    pub(super) fn disarm(&mut self, d: Deadline) {
        if let Some(at) = self.by_key.remove(&d) {
            self.by_time.remove(&(at, d));
        }
    }

    /// Disarms both of an attempt's deadlines.
    pub(super) fn disarm_attempt(&mut self, a: AttemptId) {
        self.disarm(Deadline::Op(a));
        self.disarm(Deadline::Grace(a));
    }

    /// The earliest deadline.
    pub(super) fn first(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Removes and returns the earliest deadline due by `now`.
    pub(super) fn pop_due(&mut self, now: Timestamp) -> Option<Deadline> {
        let &(t, d) = self.by_time.first()?;
        if t > now {
            return None;
        }
        self.by_time.remove(&(t, d));
        self.by_key.remove(&d);
        Some(d)
    }
}
