//! Planner requests as the orchestrator routes them: asking, verdicts, fallbacks,
//! journaled; epochs and what waits are `PlannerState`'s.

use super::Drain;
use super::Orchestrator;
use crate::run::Refusal;
use crate::run::event::RunEvent;
use crate::run::io::Command;
use crate::run::planner::PLANNER_CANDIDATES;
use crate::run::proposal::{Proposal, Verdict};
use crate::run::scheduler::Claims;
use crate::run::timers::{Deadline, after};
use crate::run::types::RunState;

impl Orchestrator {
    pub(super) fn ask_planner(&mut self) {
        if !self.planner.may_ask() {
            return;
        }
        let claimable = self.claimable(PLANNER_CANDIDATES);
        if claimable.is_empty() {
            return;
        }
        let request = self.planner.ask();
        self.timers.arm(
            Deadline::Planner(request),
            after(self.now, self.policy.planner_timeout),
        );
        let failures = claimable
            .iter()
            .filter_map(|t| Some((*t, self.sched.retries.get(t)?.previous.clone()?)))
            .collect();
        self.commands.push_back(Command::AskPlanner {
            request,
            claimable,
            free_slots: self.free_slots(),
            failures,
        });
    }

    pub(super) fn on_proposals(
        &mut self,
        request: u64,
        proposals: Vec<Proposal>,
    ) -> Result<(), Refusal> {
        if self.planner.waiting != Some(request) {
            for p in proposals {
                self.persist(RunEvent::ProposalJudged {
                    proposal: p,
                    verdict: Verdict::Rejected {
                        reason: format!("stale: request {request} is not pending"),
                    },
                });
            }
            return Err(Refusal::PlannerNotPending(request));
        }
        self.planner.settle();
        self.timers.disarm(Deadline::Planner(request));
        self.sched.deferred.clear();
        let mut claimed = 0;
        for p in proposals {
            let verdict = self.judge(&p);
            let accepted = verdict == Verdict::Accepted;
            self.persist(RunEvent::ProposalJudged {
                proposal: p.clone(),
                verdict,
            });
            if !accepted {
                continue;
            }
            match p {
                Proposal::Claim { task, note } => {
                    self.claim(task, note);
                    claimed += 1;
                }
                Proposal::Defer { task, .. } => {
                    self.sched.deferred.insert(task);
                }
                Proposal::StopClaiming { reason } => {
                    let why = format!("the planner stopped claiming: {reason}");
                    self.begin_drain(Drain::Stop, &why);
                }
            }
        }
        if claimed == 0 && self.state == RunState::Running {
            self.persist(RunEvent::PlannerFallback {
                reason: "the planner claimed nothing".into(),
            });
            self.fill();
        }
        Ok(())
    }

    pub(super) fn on_planner_failed(&mut self, request: u64, reason: &str) -> Result<(), Refusal> {
        if self.planner.waiting != Some(request) {
            return Err(Refusal::PlannerNotPending(request));
        }
        self.planner_fallback(request, &format!("the planner failed: {reason}"));
        Ok(())
    }

    pub(super) fn planner_fallback(&mut self, request: u64, reason: &str) {
        self.planner.settle();
        self.timers.disarm(Deadline::Planner(request));
        self.persist(RunEvent::PlannerFallback {
            reason: reason.to_owned(),
        });
        self.fill();
    }

    /// The policy check on a planner proposal: a run that is not claiming takes none;
    /// the scheduler judges the rest.
    fn judge(&self, p: &Proposal) -> Verdict {
        if self.state != RunState::Running || self.paused {
            return Verdict::Rejected {
                reason: "the run is not claiming".into(),
            };
        }
        let claims = Claims {
            now: self.now,
            busy: &self.busy_tasks(),
            live: &self.attempts.live,
            free_slots: self.free_slots(),
        };
        self.sched.judge(p, &claims)
    }
}
