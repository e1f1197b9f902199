//! Spending and the quota breaker as the orchestrator routes them: reports, budgets
//! and breaker hits, journaled; the sums are `Spend`'s and the breaker's choices its own.

use super::{Drain, Orchestrator};
use crate::run::Refusal;
use crate::run::attempt::Abort;
use crate::run::breaker::Hit;
use crate::run::event::RunEvent;
use crate::run::report::AgentReport;
use crate::run::spend::Spend;
use crate::run::timers::Deadline;
use crate::run::types::AttemptId;
use crate::task::TaskId;
use crate::usage::Usage;

impl Orchestrator {
    /// Everything the task's attempts used: ended ones as journaled, live ones so far.
    pub fn task_usage(&self, task: TaskId) -> Usage {
        let attempts = self.attempts.of_task(task);
        self.spend
            .attempts_usage(attempts.map(|(id, a)| (id, a.rec.usage.as_ref())))
    }

    /// Everything the run's attempts and its planner used.
    pub fn run_usage(&self) -> Usage {
        let attempts = self.attempts.iter();
        self.spend
            .run_usage(attempts.map(|(id, a)| (id, a.rec.usage.as_ref())))
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
            && self.attempts.get(attempt).and_then(|a| a.op())
                == Some(crate::run::attempt::Op::Agent);
        if !running {
            return Ok(());
        }
        let quota = report.quota_signal();
        self.report_refused(attempt, report.malformed);
        if let Some(u) = report.usage {
            self.spend.progress(attempt, u);
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
        let live = self.spend.exited(attempt);
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
            && self.spend.first_refusal(attempt)
        {
            self.persist(RunEvent::ReportRefused { attempt, reason });
        }
    }

    /// The task's cap, in words, if its attempts have reached it.
    pub(super) fn task_over_budget(&self, task: TaskId) -> Option<String> {
        Spend::task_over(&self.policy.budget, task, || self.task_usage(task))
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
        let attempts = &self.attempts;
        let run_over = self.spend.run_over(&self.policy.budget, |spend| {
            spend.run_usage(attempts.iter().map(|(id, a)| (id, a.rec.usage.as_ref())))
        });
        if let Some(detail) = run_over {
            self.persist(RunEvent::BudgetSpent {
                attempt: None,
                detail: detail.clone(),
            });
            self.begin_drain(Drain::Stop, &format!("budget: {detail}"));
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
        let (backoff, max_wait) = (self.policy.quota_backoff, self.policy.quota_max_wait);
        match self.breaker.hit(attempt, self.now, backoff, max_wait) {
            Hit::AlreadyOpen => {}
            Hit::Halt { waited } => {
                let why = format!(
                    "the quota breaker stayed open for {}s (policy.quota_max_wait); the last signal: {signature}",
                    waited.as_secs()
                );
                self.persist(RunEvent::QuotaBreaker {
                    until: None,
                    reason: why.clone(),
                });
                self.begin_drain(Drain::Halt, &why);
            }
            Hit::Wait { wait, until } => {
                self.timers.arm(Deadline::Breaker, until);
                self.persist(RunEvent::QuotaBreaker {
                    until: Some(until),
                    reason: format!(
                        "{attempt} hit a rate limit, a quota or a full disk ({signature}); claiming waits {}s, then one probe runs",
                        wait.as_secs()
                    ),
                });
            }
        }
    }

    /// `attempt`'s agent ended without a quota signature: a probe that got through
    /// closes the breaker.
    pub(super) fn got_through(&mut self, attempt: AttemptId) {
        if !self.breaker.got_through(attempt) {
            return;
        }
        self.timers.disarm(Deadline::Breaker);
        self.persist(RunEvent::QuotaBreaker {
            until: None,
            reason: format!("the probe {attempt} got through; claiming resumes"),
        });
    }
}
