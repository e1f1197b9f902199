//! Budgets: what agents report spending, summed per task and per run, against the
//! caps of `[budget]`. A task over its cap has its live attempt stopped (failure kind
//! `budget`); a run over its cap stops claiming and drains. Every decision is
//! journaled (`run.budget_spent`), and each attempt's final usage too
//! (`attempt.usage`), so a resumed run sums the same.

use std::collections::BTreeMap;

use super::types::AttemptId;
use crate::config::BudgetConfig;
use crate::task::TaskId;
use crate::usage::{Usage, Usd, thousands};

/// The live side of spending: what running agents have reported so far.
#[derive(Debug, Clone, Default)]
pub(super) struct Spend {
    /// Each running attempt's latest report.
    live: BTreeMap<AttemptId, Usage>,
    /// Set once the run's cap was reached (it is journaled once).
    run_spent: bool,
    /// Attempts stopped for their task's cap, with the words for their failure.
    pub(super) stopped: BTreeMap<AttemptId, String>,
    /// What the planner used, over every request.
    pub(super) planner: Usage,
    /// Attempts whose malformed report was journaled (once each).
    refused: std::collections::BTreeSet<AttemptId>,
}

/// The first cap of `caps` that `used` reaches, in words.
fn over(caps_usd: Usd, caps_tokens: u64, used: &Usage, whose: &str) -> Option<String> {
    let cost = used.cost_or_zero();
    if !caps_usd.is_zero() && cost >= caps_usd {
        return Some(format!("{whose} spent {cost} of its {caps_usd} budget"));
    }
    if caps_tokens > 0 && used.tokens() >= caps_tokens {
        return Some(format!(
            "{whose} used {} of its {} token budget",
            thousands(used.tokens()),
            thousands(caps_tokens)
        ));
    }
    None
}

impl Spend {
    /// What `attempts` used: a running one as it last reported, an ended one as
    /// journaled (`recorded`).
    pub(super) fn attempts_usage<'a>(
        &self,
        attempts: impl Iterator<Item = (&'a AttemptId, Option<&'a Usage>)>,
    ) -> Usage {
        let mut total = Usage::default();
        for (id, recorded) in attempts {
            if let Some(u) = self.live.get(id).or(recorded) {
                total.add(u);
            }
        }
        total
    }

    /// What the run used: the planner, then `attempts` as [`Spend::attempts_usage`].
    pub(super) fn run_usage<'a>(
        &self,
        attempts: impl Iterator<Item = (&'a AttemptId, Option<&'a Usage>)>,
    ) -> Usage {
        let mut total = self.planner.clone();
        total.add(&self.attempts_usage(attempts));
        total
    }

    /// A running agent reported `usage` so far.
    pub(super) fn progress(&mut self, attempt: AttemptId, usage: Usage) {
        self.live.insert(attempt, usage);
    }

    /// The agent exited: its last report while it ran, if any.
    pub(super) fn exited(&mut self, attempt: AttemptId) -> Option<Usage> {
        self.live.remove(&attempt)
    }

    /// True the first time `attempt` sent a report that could not be true.
    pub(super) fn first_refusal(&mut self, attempt: AttemptId) -> bool {
        self.refused.insert(attempt)
    }

    /// `task`'s cap, in words, if what it `used` reached it; `used` is summed only
    /// when there is a cap.
    pub(super) fn task_over(
        caps: &BudgetConfig,
        task: TaskId,
        used: impl FnOnce() -> Usage,
    ) -> Option<String> {
        if caps.task_usd.is_zero() && caps.task_tokens == 0 {
            return None;
        }
        over(
            caps.task_usd,
            caps.task_tokens,
            &used(),
            &format!("task {task}"),
        )
    }

    /// The run's cap, in words, the first time what it `used` reached it; `used` is
    /// summed only when there is a cap not yet reached (this runs on every report).
    pub(super) fn run_over(
        &mut self,
        caps: &BudgetConfig,
        used: impl FnOnce(&Spend) -> Usage,
    ) -> Option<String> {
        if self.run_spent || (caps.run_usd.is_zero() && caps.run_tokens == 0) {
            return None;
        }
        let detail = over(caps.run_usd, caps.run_tokens, &used(self), "the run")?;
        self.run_spent = true;
        Some(detail)
    }
}
