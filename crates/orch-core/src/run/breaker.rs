//! The quota breaker. An agent that hits a rate limit or an exhausted quota opens it:
//! the attempt is stopped and its task waits to run again without spending an
//! attempt, and claiming pauses. After `policy.quota_backoff` one probe attempt runs;
//! if it gets through the breaker closes, and if it hits the limit too the wait
//! doubles (up to 16 times the first). A breaker open for `policy.quota_max_wait`
//! halts the run. Every opening and closing is journaled (`run.quota_breaker`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::timers::after;
use super::types::AttemptId;
use crate::time::Timestamp;

/// The longest wait, as a multiple of the first.
const MAX_DOUBLINGS: u32 = 4;

/// The breaker's state: closed when `opened_at` is `None`.
#[derive(Debug, Clone, Default)]
pub(super) struct Breaker {
    opened_at: Option<Timestamp>,
    /// When the next probe may start.
    until: Timestamp,
    /// Probes that hit the limit again since it opened.
    failed_probes: u32,
    /// The attempt that probes, once started.
    probe: Option<AttemptId>,
    /// Attempts stopped for a quota signature, with it.
    pub(super) stopped: BTreeMap<AttemptId, String>,
}

impl Breaker {
    /// True while it is open.
    pub(super) fn is_open(&self) -> bool {
        self.opened_at.is_some()
    }

    /// How many claims the breaker allows now: none while open and waiting or while
    /// its probe runs, one when the probe is due, any when closed.
    pub(super) fn claims_allowed(&self, now: Timestamp, in_flight: usize) -> Option<usize> {
        if !self.is_open() {
            return None;
        }
        if now < self.until || self.probe.is_some() || in_flight > 0 {
            Some(0)
        } else {
            Some(1)
        }
    }

    /// A probe that ended before its agent could tell (a worktree that failed, a
    /// cancel) frees the probe's place for another.
    pub(super) fn attempt_ended(&mut self, attempt: AttemptId) {
        if self.probe == Some(attempt) {
            self.probe = None;
        }
    }

    /// An attempt created while the probe is due is the probe.
    pub(super) fn attempt_created(&mut self, attempt: AttemptId, now: Timestamp) {
        if self.is_open() && self.probe.is_none() && now >= self.until {
            self.probe = Some(attempt);
        }
    }
}

/// What a quota signal does to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hit {
    /// It is open already and this was not its probe: its probe decides.
    AlreadyOpen,
    /// Claiming waits `wait`, until `until`, then one probe runs.
    Wait {
        /// How long.
        wait: Duration,
        /// Until when.
        until: Timestamp,
    },
    /// It stayed open past `policy.quota_max_wait`: the run halts.
    Halt {
        /// How long it was open.
        waited: Duration,
    },
}

impl Breaker {
    /// A quota signal from `attempt` at `now`: opens the breaker, or, from its probe,
    /// doubles the wait (up to [`MAX_DOUBLINGS`] times); past `max_wait` open, it says
    /// to halt and closes.
    pub(super) fn hit(
        &mut self,
        attempt: AttemptId,
        now: Timestamp,
        backoff: Duration,
        max_wait: Duration,
    ) -> Hit {
        let probe = self.probe == Some(attempt);
        let opened_at = match self.opened_at {
            Some(_) if !probe => return Hit::AlreadyOpen,
            Some(t) => {
                self.failed_probes += 1;
                self.probe = None;
                t
            }
            None => {
                self.opened_at = Some(now);
                self.failed_probes = 0;
                now
            }
        };
        let waited = Duration::from_millis((now.0 - opened_at.0).max(0) as u64);
        if waited >= max_wait {
            *self = Breaker::default();
            return Hit::Halt { waited };
        }
        let wait = backoff.saturating_mul(1u32 << self.failed_probes.min(MAX_DOUBLINGS));
        self.until = after(now, wait);
        Hit::Wait {
            wait,
            until: self.until,
        }
    }

    /// `attempt` ended without a quota signal: true when it was the probe, and the
    /// breaker closes (the attempts it stopped stay listed).
    pub(super) fn got_through(&mut self, attempt: AttemptId) -> bool {
        if self.probe != Some(attempt) {
            return false;
        }
        *self = Breaker {
            stopped: std::mem::take(&mut self.stopped),
            ..Breaker::default()
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;

    fn a(n: u32) -> AttemptId {
        AttemptId {
            task: TaskId(1),
            number: n,
        }
    }

    /// The breaker's own decisions, with no orchestrator: open, hold, double on a
    /// failed probe, close on one that gets through, halt past the longest wait.
    #[test]
    fn the_breaker_opens_doubles_closes_and_gives_up() {
        let (s, min) = (Duration::from_secs(1), Duration::from_secs(60));
        let mut b = Breaker::default();
        let hit = b.hit(a(1), Timestamp(0), s, min);
        assert_eq!(
            hit,
            Hit::Wait {
                wait: s,
                until: Timestamp(1000)
            }
        );
        assert_eq!(b.hit(a(2), Timestamp(10), s, min), Hit::AlreadyOpen);
        assert_eq!(b.claims_allowed(Timestamp(500), 0), Some(0));
        assert_eq!(b.claims_allowed(Timestamp(1000), 0), Some(1));
        b.attempt_created(a(3), Timestamp(1000));
        let again = b.hit(a(3), Timestamp(2000), s, min);
        assert_eq!(
            again,
            Hit::Wait {
                wait: 2 * s,
                until: Timestamp(4000)
            }
        );
        b.attempt_created(a(4), Timestamp(4000));
        assert!(!b.got_through(a(3)) && b.got_through(a(4)) && !b.is_open());
        b.hit(a(5), Timestamp(5000), s, min);
        b.attempt_created(a(6), Timestamp(6000));
        assert_eq!(
            b.hit(a(6), Timestamp(5000 + 60_000), s, min),
            Hit::Halt { waited: min }
        );
        assert!(!b.is_open());
    }
}
