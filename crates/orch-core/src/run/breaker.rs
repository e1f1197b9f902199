//! The quota breaker. An agent that hits a rate limit or an exhausted quota opens it:
//! the attempt is stopped and its task waits to run again without spending an
//! attempt, and claiming pauses. After `policy.quota_backoff` one probe attempt runs;
//! if it gets through the breaker closes, and if it hits the limit too the wait
//! doubles (up to 16 times the first). A breaker open for `policy.quota_max_wait`
//! halts the run. Every opening and closing is journaled (`run.quota_breaker`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::attempt::Abort;
use super::event::RunEvent;
use super::timers::{Deadline, after};
use super::types::AttemptId;
use super::{Drain, Orchestrator};
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

impl Orchestrator {
    /// `attempt`'s agent showed a quota signature: stop it (if `live`, it still runs)
    /// and open the breaker, or widen it if this was the probe.
    pub(super) fn quota_hit(&mut self, attempt: AttemptId, signature: String, live: bool) {
        let Some(a) = self.attempts.get(attempt) else {
            return;
        };
        if a.abort.is_some() || a.rec.state.is_terminal() {
            return;
        }
        self.breaker.stopped.insert(attempt, signature.clone());
        if live {
            self.abort(attempt, Abort::Quota);
        } else {
            // The agent already exited: its result will be read as this failure.
            self.attempts.at(attempt).abort = Some(Abort::Quota);
        }
        let probe = self.breaker.probe == Some(attempt);
        let opened_at = match self.breaker.opened_at {
            Some(_) if !probe => return, // already open; its probe decides
            Some(t) => {
                self.breaker.failed_probes += 1;
                self.breaker.probe = None;
                t
            }
            None => {
                self.breaker.opened_at = Some(self.now);
                self.breaker.failed_probes = 0;
                self.now
            }
        };
        let waited = Duration::from_millis((self.now.0 - opened_at.0).max(0) as u64);
        if waited >= self.policy.quota_max_wait {
            let why = format!(
                "the quota breaker stayed open for {}s (policy.quota_max_wait); the last signal: {signature}",
                waited.as_secs()
            );
            self.persist(RunEvent::QuotaBreaker {
                until: None,
                reason: why.clone(),
            });
            self.breaker = Breaker::default();
            self.begin_drain(Drain::Halt, &why);
            return;
        }
        let factor = 1u32 << self.breaker.failed_probes.min(MAX_DOUBLINGS);
        let wait = self.policy.quota_backoff.saturating_mul(factor);
        self.breaker.until = after(self.now, wait);
        self.timers.arm(Deadline::Breaker, self.breaker.until);
        self.persist(RunEvent::QuotaBreaker {
            until: Some(self.breaker.until),
            reason: format!(
                "{attempt} hit a rate limit, a quota or a full disk ({signature}); claiming waits {}s, then one probe runs",
                wait.as_secs()
            ),
        });
    }

    /// `attempt`'s agent ended without a quota signature: a probe that got through
    /// closes the breaker.
    pub(super) fn got_through(&mut self, attempt: AttemptId) {
        if self.breaker.probe != Some(attempt) {
            return;
        }
        self.breaker = Breaker {
            stopped: std::mem::take(&mut self.breaker.stopped),
            ..Breaker::default()
        };
        self.timers.disarm(Deadline::Breaker);
        self.persist(RunEvent::QuotaBreaker {
            until: None,
            reason: format!("the probe {attempt} got through; claiming resumes"),
        });
    }
}
