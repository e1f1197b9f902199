//! Budgets: what agents report spending, summed per task and per run, against the
//! caps of `[budget]`. A task over its cap has its live attempt stopped (failure kind
//! `budget`); a run over its cap stops claiming and drains. Every decision is
//! journaled (`run.budget_spent`), and each attempt's final usage too
//! (`attempt.usage`), so a resumed run sums the same.

use std::collections::BTreeMap;

use super::Refusal;
use super::attempt::Abort;
use super::event::RunEvent;
use super::io::AgentReport;
use super::types::AttemptId;
use super::{Drain, Orchestrator};
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

impl Orchestrator {
    fn caps(&self) -> &BudgetConfig {
        &self.policy.budget
    }

    /// Everything the task's attempts used: ended ones as journaled, live ones so far.
    pub fn task_usage(&self, task: TaskId) -> Usage {
        let mut total = Usage::default();
        for (id, a) in self.attempts.of_task(task) {
            if let Some(u) = self.spend.live.get(id).or(a.rec.usage.as_ref()) {
                total.add(u);
            }
        }
        total
    }

    /// Everything the run's attempts and its planner used.
    pub fn run_usage(&self) -> Usage {
        let mut total = self.spend.planner.clone();
        for (id, a) in self.attempts.iter() {
            if let Some(u) = self.spend.live.get(id).or(a.rec.usage.as_ref()) {
                total.add(u);
            }
        }
        total
    }

    /// A live agent's report: its usage so far is checked against the caps, and a
    /// quota signature opens the breaker. Reports for attempts whose agent is no
    /// longer running are late, and ignored.
    pub(super) fn on_agent_progress(
        &mut self,
        attempt: AttemptId,
        report: AgentReport,
    ) -> Result<(), Refusal> {
        let running = self.attempts.live.contains(&attempt)
            && self.attempts.get(attempt).and_then(|a| a.op()) == Some(super::attempt::Op::Agent);
        if !running {
            return Ok(());
        }
        let quota = report.quota_signal();
        self.report_refused(attempt, report.malformed);
        if let Some(u) = report.usage {
            self.spend.live.insert(attempt, u);
            self.check_budgets(Some(attempt));
        }
        if let Some(sig) = quota {
            self.quota_hit(attempt, sig, true);
        }
        Ok(())
    }

    /// The agent exited with `report`: its usage is journaled, the caps checked, and
    /// a quota signature marks the attempt for the breaker.
    pub(super) fn on_agent_report(&mut self, attempt: AttemptId, report: AgentReport) {
        let live = self.spend.live.remove(&attempt);
        let quota = report.quota_signal();
        self.report_refused(attempt, report.malformed);
        if let Some(u) = report.usage.or(live) {
            self.persist(RunEvent::AttemptUsage {
                attempt,
                usage: u.clone(),
            });
            self.attempts.at(attempt).rec.usage = Some(u);
            self.check_budgets(None);
        }
        match quota {
            Some(sig) => self.quota_hit(attempt, sig, false),
            None => self.got_through(attempt),
        }
    }

    /// Journals, once per attempt, a figure of its report that could not be true.
    fn report_refused(&mut self, attempt: AttemptId, why: Option<String>) {
        if let Some(reason) = why
            && self.spend.refused.insert(attempt)
        {
            self.persist(RunEvent::ReportRefused { attempt, reason });
        }
    }

    /// The task's cap, in words, if its attempts have reached it.
    pub(super) fn task_over_budget(&self, task: TaskId) -> Option<String> {
        let caps = self.caps();
        if caps.task_usd.is_zero() && caps.task_tokens == 0 {
            return None;
        }
        over(
            caps.task_usd,
            caps.task_tokens,
            &self.task_usage(task),
            &format!("task {task}"),
        )
    }

    /// The planner's usage for a request counts toward the run's cap.
    pub(super) fn on_planner_usage(&mut self, request: u64, usage: Usage) -> Result<(), Refusal> {
        self.spend.planner.add(&usage);
        self.persist(RunEvent::PlannerUsage { request, usage });
        self.check_budgets(None);
        Ok(())
    }

    /// Stops `live` if its task is over its cap; drains the run if the run is.
    fn check_budgets(&mut self, live: Option<AttemptId>) {
        if let Some(a) = live
            && let Some(detail) = self.task_over_budget(a.task)
            && self.attempts.get(a).is_some_and(|x| x.abort.is_none())
        {
            self.persist(RunEvent::BudgetSpent {
                attempt: Some(a),
                detail: detail.clone(),
            });
            self.spend.stopped.insert(a, detail);
            self.abort(a, Abort::Budget);
        }
        let caps = self.caps();
        // Without a run cap there is nothing to sum (this runs on every agent report).
        if self.spend.run_spent || (caps.run_usd.is_zero() && caps.run_tokens == 0) {
            return;
        }
        if let Some(detail) = over(caps.run_usd, caps.run_tokens, &self.run_usage(), "the run") {
            self.spend.run_spent = true;
            self.persist(RunEvent::BudgetSpent {
                attempt: None,
                detail: detail.clone(),
            });
            self.begin_drain(Drain::Stop, &format!("budget: {detail}"));
        }
    }
}
