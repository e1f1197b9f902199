//! Planner requests as the orchestrator routes them: asking, verdicts, fallbacks,
//! journaled; epochs and what waits are `PlannerState`'s.

use super::Drain;
use super::Orchestrator;
use crate::run::Refusal;
use crate::run::event::RunEvent;
use crate::run::io::Command;
use crate::run::planner::PLANNER_CANDIDATES;
use crate::run::policy::touches_overlap;
use crate::run::proposal::{Proposal, Verdict};
use crate::run::timers::{Deadline, after};
use crate::run::types::RunState;
use crate::task::TaskStatus;

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

    /// The policy check on a planner proposal.
    fn judge(&self, p: &Proposal) -> Verdict {
        let reject = |reason: String| Verdict::Rejected { reason };
        if self.state != RunState::Running || self.paused {
            return reject("the run is not claiming".into());
        }
        let task = match p {
            Proposal::StopClaiming { .. } => return Verdict::Accepted,
            Proposal::Claim { task, .. } | Proposal::Defer { task, .. } => *task,
        };
        let Some(spec) = self.sched.tasks.get(&task) else {
            return reject(format!("unknown task {task}"));
        };
        let retrying = self.sched.retries.get(&task);
        if let Proposal::Defer { .. } = p {
            return if spec.status == TaskStatus::Backlog || retrying.is_some() {
                Verdict::Accepted
            } else {
                reject(format!(
                    "task {task} is {}, not waiting to be claimed",
                    spec.status
                ))
            };
        }
        match (spec.status, retrying) {
            (TaskStatus::Failed, _) => {
                return reject(format!("task {task} failed: its retry budget is spent"));
            }
            (TaskStatus::InProgress, Some(r)) if r.due > self.now => {
                return reject(format!("task {task} is backing off before its retry"));
            }
            (TaskStatus::InProgress, Some(_)) | (TaskStatus::Backlog, _) => {}
            (st, _) => return reject(format!("task {task} is {st}, which is not claimable")),
        }
        if self.busy_tasks().contains(&task) {
            return reject(format!("task {task} already has a live attempt"));
        }
        let unfinished: Vec<String> = spec
            .depends_on
            .iter()
            .filter(|d| self.sched.status(**d) != Some(TaskStatus::Done))
            .map(|d| format!("#{d}"))
            .collect();
        if !unfinished.is_empty() {
            return reject(format!(
                "task {task} waits on unfinished {}",
                unfinished.join(", ")
            ));
        }
        if self.free_slots() == 0 {
            return reject("no free slot".into());
        }
        if let Some(other) = self.attempts.live.iter().find(|a| {
            self.sched
                .tasks
                .get(&a.task)
                .is_some_and(|s| touches_overlap(&s.touches, &spec.touches))
        }) {
            return reject(format!(
                "task {task} touches the same paths as live {other}"
            ));
        }
        Verdict::Accepted
    }
}
