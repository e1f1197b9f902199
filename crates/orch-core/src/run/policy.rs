//! Policy as data: retries, conflicts, empty diffs, scheduling mode and deadlines.

use std::time::Duration;

use super::types::FailureKind;
use crate::config::{
    BudgetConfig, Cleanup, Config, EmptyDiff, FailureClass, OnConflict, OnRevert, RunMode,
};

/// This many infrastructure failures in a row, with no success between, halt the run:
/// orch cannot do its part, and retrying would only loop.
pub const INFRA_STREAK_HALT: u32 = 3;

/// How long to wait before a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The same delay every time.
    Fixed(Duration),
    /// `base * 2^(retry - 1)`, capped at `max`.
    Exponential {
        /// The first delay.
        base: Duration,
        /// The longest delay.
        max: Duration,
    },
}

impl Backoff {
    /// The delay before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { base, max } => {
                let factor = 1u32
                    .checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX);
                base.checked_mul(factor).unwrap_or(max).min(max)
            }
        }
    }
}

/// Which failures are retried, how often, and after how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per task, counting the first (at least 1). Interrupted attempts (a
    /// crash of orch, not a fault of the work) do not count.
    pub max_attempts: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
    /// The failure classes that are retried.
    pub retry_on: Vec<FailureClass>,
    /// Failures on a stale head that spend no attempt, per task (`policy.stale_retries`).
    pub stale_retries: u32,
}

impl RetryPolicy {
    /// Whether a task whose `used`-th counted attempt failed with `class` gets another.
    pub fn should_retry(&self, class: FailureClass, used: u32) -> bool {
        self.retry_on.contains(&class) && used < self.max_attempts
    }
}

/// Everything the orchestrator decides by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `parallel` or `incremental` (one task at a time).
    pub mode: RunMode,
    /// Most live attempts at once (each holds at most one agent process).
    pub concurrency: u32,
    /// Retries.
    pub retry: RetryPolicy,
    /// What a merge conflict leads to.
    pub on_conflict: OnConflict,
    /// What undoing another task's landed work leads to.
    pub on_revert: crate::config::OnRevert,
    /// What an agent that changed nothing leads to.
    pub empty_diff: EmptyDiff,
    /// Whether a committed symlink may point outside the repository.
    pub symlinks_inside: bool,
    /// Whether a gate's pass on a tree stands for later runs of it on the same tree.
    pub reuse_verdicts: bool,
    /// Whether an attempt skips its worker gate for the integration gate, the same
    /// commands, on its merge commit (`validate.integration_stands_in`).
    pub worker_stands_in: bool,
    /// Worktree cleanup.
    pub cleanup: Cleanup,
    /// The agent's deadline.
    pub agent_timeout: Duration,
    /// A whole gate's deadline (the gate runner also times each command), from when
    /// it gets a slot.
    pub gate_timeout: Duration,
    /// Gates, worker and integration together, that run at once (`validate.slots`);
    /// 0: no bound.
    pub gate_slots: usize,
    /// How far the gate slots may grow while the machine's CPU idles; at most
    /// `gate_slots`: they stay as they are.
    pub gate_slots_ceiling: usize,
    /// The stages whose gate has no command (it runs nothing, and takes no slot).
    pub empty_gates: Vec<crate::run::Stage>,
    /// Between a polite abort (SIGTERM) and a hard one (SIGKILL).
    pub kill_grace: Duration,
    /// Whether a planner is asked for proposals.
    pub planner: bool,
    /// How long the planner may take before the scheduler decides alone.
    pub planner_timeout: Duration,
    /// Spending caps.
    pub budget: BudgetConfig,
    /// The quota breaker's first wait; it doubles per failed probe, up to 16 times.
    pub quota_backoff: Duration,
    /// How long the breaker may stay open before the run halts.
    pub quota_max_wait: Duration,
    /// Whether a retry resumes its previous attempt's agent session.
    pub resume_session: bool,
    /// The integration queue's shape: candidates gated at once, each a batch
    /// (`run.integration`, `run.integration_depth`, `run.integration_batch`).
    pub integration: super::Shape,
    /// Reruns of a failing integration gate before it counts (`validate.integration_retries`).
    pub integration_retries: u32,
    /// Which tasks wait for a person after their worker gate (`[review]`).
    pub review: crate::config::ReviewConfig,
    /// When nothing is left, wait for more instead of ending (`run.watch`).
    pub watch: bool,
}

/// What a failure means for its task, as policy says, once its budget, a quota, a
/// streak of orch's own failures and a stale head are ruled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterFailure {
    /// Try the task again.
    Retry,
    /// The task fails, with why it is not retried.
    Fail(&'static str),
    /// The task is blocked, with the policy that says so.
    Block(&'static str),
    /// The task goes back to the backlog, and the run halts.
    Halt,
}

/// Whether a retry on the same head after a failure of this kind waits
/// `policy.backoff`: after the failures that count, but not one whose work undid
/// landed work (its retry's prompt names the lines to keep, and waiting changes
/// nothing).
pub(super) fn backs_off(kind: &FailureKind) -> bool {
    kind.counts() && !matches!(kind, FailureKind::RevertsLandedWork { .. })
}

/// Whether a retry on a newer head may cure a failure of this kind: the agent's,
/// its gates' and its merge's may; orch's own, a timeout or a spent budget may not.
pub(super) fn newer_head_may_cure(kind: &FailureKind) -> bool {
    matches!(
        kind.class(),
        FailureClass::AgentError
            | FailureClass::WorkerValidation
            | FailureClass::Conflict
            | FailureClass::RevertsLandedWork
            | FailureClass::IntegrationValidation
    )
}

impl Policy {
    /// What a failure of `kind` means for a task that spent `used` attempts.
    pub(super) fn after_failure(&self, kind: &FailureKind, used: u32) -> AfterFailure {
        let budget_left = used < self.retry.max_attempts;
        let retry = match kind {
            FailureKind::Conflict { .. } => match self.on_conflict {
                OnConflict::Retry => budget_left,
                OnConflict::Block => return AfterFailure::Block("conflict policy is block"),
                OnConflict::Ask => {
                    return AfterFailure::Block(
                        "conflict policy is ask: its work is kept for a person, `orch task resolve` it",
                    );
                }
                OnConflict::Halt => return AfterFailure::Halt,
            },
            FailureKind::RevertsLandedWork { .. } => match self.on_revert {
                OnRevert::Block => return AfterFailure::Block("revert policy is block"),
                OnRevert::Retry | OnRevert::Allow => budget_left,
            },
            other => self.retry.should_retry(other.class(), used),
        };
        match (retry, budget_left) {
            (true, _) => AfterFailure::Retry,
            (false, true) => AfterFailure::Fail("not retried for this kind of failure"),
            (false, false) => AfterFailure::Fail("out of attempts"),
        }
    }

    /// Whether a failure of `kind` is retried at all (the conflict and revert
    /// policies for theirs, `policy.retry_on` for the rest).
    pub(super) fn retries(&self, kind: &FailureKind) -> bool {
        match kind {
            FailureKind::Conflict { .. } => self.on_conflict == OnConflict::Retry,
            FailureKind::RevertsLandedWork { .. } => self.on_revert == OnRevert::Retry,
            other => self.retry.retry_on.contains(&other.class()),
        }
    }

    /// Whether a task that spent `used` attempts, the last failing with `kind`, has
    /// one left: a retry that waited for the work in flight, which landed nothing.
    pub(super) fn attempt_left(&self, kind: &FailureKind, used: u32) -> bool {
        match kind {
            FailureKind::Conflict { .. } | FailureKind::RevertsLandedWork { .. } => {
                used < self.retry.max_attempts
            }
            k => self.retry.should_retry(k.class(), used),
        }
    }

    /// The effective concurrency: 1 in incremental mode.
    pub fn slots(&self) -> u32 {
        match self.mode {
            RunMode::Incremental => 1,
            RunMode::Parallel => self.concurrency.max(1),
        }
    }

    /// The policy a configuration describes.
    pub fn from_config(c: &Config) -> Policy {
        let gates = c
            .validate
            .worker
            .len()
            .max(c.validate.integration.len())
            .max(1) as u32;
        Policy {
            mode: c.run.mode,
            concurrency: c.run.concurrency.get(),
            retry: RetryPolicy {
                max_attempts: c.policy.max_attempts.get(),
                backoff: Backoff::Fixed(c.policy.backoff.0),
                retry_on: c.policy.retry_on.clone(),
                stale_retries: c.policy.stale_retries,
            },
            on_conflict: c.policy.on_conflict,
            on_revert: c.policy.on_revert,
            empty_diff: c.policy.empty_diff,
            reuse_verdicts: c.validate.reuse,
            worker_stands_in: c.validate.integration_stands_in
                && !c.validate.worker.is_empty()
                && c.validate.worker == c.validate.integration
                && c.run.executors == crate::config::Executors::Local,
            symlinks_inside: c.policy.symlinks == crate::config::Symlinks::Inside
                || c.agent.sandbox == crate::config::Sandbox::Bwrap,
            cleanup: c.worktrees.cleanup,
            agent_timeout: c.agent.timeout.0,
            gate_timeout: c.validate.timeout.0.saturating_mul(gates),
            gate_slots: c.validate.slots as usize,
            gate_slots_ceiling: c.validate.slots_ceiling as usize,
            empty_gates: [
                (crate::run::Stage::Worker, &c.validate.worker),
                (crate::run::Stage::Integration, &c.validate.integration),
            ]
            .into_iter()
            .filter(|(_, commands)| commands.is_empty())
            .map(|(stage, _)| stage)
            .collect(),
            kill_grace: Duration::from_secs(10),
            planner: !c.run.planner.trim().is_empty(),
            planner_timeout: Duration::from_secs(60),
            budget: c.budget.clone(),
            quota_backoff: c.policy.quota_backoff.0,
            quota_max_wait: c.policy.quota_max_wait.0,
            resume_session: c.agent.resume_session,
            integration: super::Shape::of(c),
            integration_retries: c.validate.integration_retries,
            review: c.review.clone(),
            watch: c.run.watch,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_config(&Config::default())
    }
}

/// The literal part of a glob before its first wildcard.
fn literal_prefix(glob: &str) -> &str {
    let end = glob.find(['*', '?', '[']).unwrap_or(glob.len());
    &glob[..end]
}

/// Whether two `touches` globs may match a common path. Conservative: `true` unless
/// their literal prefixes prove them apart (neither prefix starts the other), and for
/// two literal paths, unless they differ.
pub fn globs_may_overlap(a: &str, b: &str) -> bool {
    let (pa, pb) = (literal_prefix(a), literal_prefix(b));
    if pa.len() == a.len() && pb.len() == b.len() {
        // Two plain paths: the same file, or one is a directory holding the other.
        return a == b || is_dir_prefix(a, b) || is_dir_prefix(b, a);
    }
    pa.starts_with(pb) || pb.starts_with(pa)
}

fn is_dir_prefix(dir: &str, path: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// Whether two tasks' `touches` lists may collide. A task that declares nothing is
/// taken to touch nothing in particular and collides with no one.
pub fn touches_overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.iter().any(|y| globs_may_overlap(x, y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff() {
        let e = Backoff::Exponential {
            base: Duration::from_secs(2),
            max: Duration::from_secs(30),
        };
        let d: Vec<u64> = (1..=6).map(|n| e.delay(n).as_secs()).collect();
        assert_eq!(d, vec![2, 4, 8, 16, 30, 30]);
        assert_eq!(e.delay(200), Duration::from_secs(30));
        assert_eq!(
            Backoff::Fixed(Duration::from_secs(5)).delay(9),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn retry_budget() {
        let r = RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::Fixed(Duration::ZERO),
            retry_on: vec![FailureClass::Timeout],
            stale_retries: 0,
        };
        assert!(r.should_retry(FailureClass::Timeout, 1));
        assert!(!r.should_retry(FailureClass::Timeout, 2));
        assert!(!r.should_retry(FailureClass::Conflict, 1));
    }

    #[test]
    fn overlap() {
        let cases = [
            ("src/calc.rs", "src/mul.rs", false),
            ("src/calc.rs", "src/calc.rs", true),
            ("src/**", "src/a.rs", true),
            ("src/parse/**", "src/lex/**", false),
            ("*.md", "README.md", true),
            ("docs/*.md", "src/*.rs", false),
            ("src", "src/a.rs", true),
            ("src/a", "src/ab.rs", false),
            ("src/a*", "src/ab.rs", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(globs_may_overlap(a, b), want, "{a} vs {b}");
            assert_eq!(globs_may_overlap(b, a), want, "{b} vs {a}");
        }
        assert!(!touches_overlap(&[], &["src/**".into()]));
    }

    #[test]
    fn from_config() {
        let p = Policy::default();
        assert_eq!(p.concurrency, 4);
        assert_eq!(p.retry.max_attempts, 2);
        assert_eq!(p.agent_timeout, Duration::from_secs(1800));
        assert!(!p.planner);
        let mut c = Config::default();
        c.run.mode = RunMode::Incremental;
        assert_eq!(Policy::from_config(&c).slots(), 1);
    }
}
