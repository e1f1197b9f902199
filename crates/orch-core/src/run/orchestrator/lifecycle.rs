//! An attempt's life as the orchestrator routes it: provisioning, the agent, the
//! worker gate, aborts and kills, each step journaled before the command it licenses.

use super::Orchestrator;
use crate::config::EmptyDiff;
use crate::run::Refusal;
use crate::run::attempt::{Abort, Op, judge_exit};
use crate::run::event::RunEvent;
use crate::run::gates::GateRun;
use crate::run::io::{Command, Input, MergeResult, RefResult, Stage};
use crate::run::report::{AgentExit, Changes};
use crate::run::timers::{Deadline, after};
use crate::run::types::{AttemptId, AttemptState, CommitId, FailureKind, check_attempt};

impl Orchestrator {
    /// The engine's work for the attempt's operation out ended without a result: the
    /// operation fails as orch's own (a merge or ref update as such a failure).
    pub(super) fn on_work_failed(
        &mut self,
        attempt: AttemptId,
        why: String,
    ) -> Result<(), Refusal> {
        let op = self
            .attempts
            .op_out(attempt)
            .ok_or(Refusal::NoOperationOut(attempt))?;
        let message = format!("orch's own work for it ({op:?}) failed: {why}");
        match op {
            Op::AdvanceRef => {
                self.op_done(attempt);
                self.on_ref(attempt, RefResult::Failed { message });
                Ok(())
            }
            Op::Merge => self.returned(attempt, op, |o| {
                o.on_merge(attempt, MergeResult::Failed { message })
            }),
            _ => self.returned(attempt, op, |o| {
                o.fail(attempt, FailureKind::Infrastructure { message })
            }),
        }
    }

    /// The attempt's operation came back: it waits on nothing, and its deadlines go.
    pub(super) fn op_done(&mut self, attempt: AttemptId) {
        self.attempts.at(attempt).busy = false;
        self.timers.disarm_attempt(attempt);
        // A gate that ended frees its slot; `settle` hands it on.
        self.gates.release(attempt);
    }

    /// Marks the attempt busy with the operation its state implies, with a deadline.
    fn start_op(&mut self, attempt: AttemptId, deadline: Option<std::time::Duration>) {
        self.attempts.at(attempt).busy = true;
        if let Some(d) = deadline {
            self.timers.arm(Deadline::Op(attempt), after(self.now, d));
        }
    }

    pub(super) fn provision(&mut self, attempt: AttemptId, branch: String, base: CommitId) {
        self.move_attempt(attempt, AttemptState::Provisioning, "slot free");
        self.commands.push_back(Command::Provision {
            attempt,
            branch,
            base,
        });
        self.start_op(attempt, None);
    }

    pub(super) fn on_worktree_ready(&mut self, attempt: AttemptId) {
        self.move_attempt(attempt, AttemptState::Running, "worktree ready");
        // A round of requested changes resumes the reviewed session, whatever
        // `agent.resume_session` says: the comments are about that session's work.
        let review = self.sched.review_of(attempt.task);
        let feedback = review.and_then(|r| r.feedback()).map(str::to_owned);
        let reviewed = review.filter(|_| feedback.is_some());
        let resume_session = match reviewed {
            Some(r) if self.attempts.session_before(attempt).is_none() => r.work.session.clone(),
            _ if self.policy.resume_session || reviewed.is_some() => {
                self.attempts.session_before(attempt)
            }
            _ => None,
        };
        let previous_base = self.attempts.base_before(attempt);
        let a = self.attempts.at(attempt);
        let cmd = Command::SpawnAgent {
            attempt,
            note: a.note.clone(),
            previous_failure: a.previous_failure.clone(),
            resume_session,
            previous_base,
            review: feedback,
        };
        self.commands.push_back(cmd);
        self.start_op(attempt, Some(self.policy.agent_timeout));
    }

    /// Judges what the agent left: its exit, and what it did to its branch.
    pub(super) fn on_agent_exit(
        &mut self,
        attempt: AttemptId,
        exit: AgentExit,
        changes: Option<Changes>,
        hint: Option<String>,
    ) {
        if let Some(c) = changes.as_ref().filter(|c| !c.users_refs.is_empty()) {
            self.persist(RunEvent::UserRefsMoved {
                attempt,
                moves: c.users_refs.clone(),
            });
        }
        let changes = match judge_exit(&exit, changes, hint, self.policy.symlinks_inside) {
            Ok(changes) => changes,
            Err(kind) => return self.fail(attempt, kind),
        };
        self.persist(RunEvent::AttemptHead {
            attempt,
            head: changes.head.clone(),
            empty: changes.empty,
        });
        let rec = &mut self.attempts.at(attempt).rec;
        rec.head = Some(changes.head.clone());
        rec.empty = changes.empty;
        if changes.empty && self.policy.empty_diff == EmptyDiff::Fail {
            return self.fail(attempt, FailureKind::NoChanges);
        }
        self.move_attempt(attempt, AttemptState::Validating, "the agent finished");
        self.worker_gate(attempt, changes.head);
    }

    /// Runs the worker gate on `head`, or, when the integration gate stands in for it
    /// (the same commands, `validate.integration_stands_in`), queues the attempt for
    /// integration at once: its merge commit is gated with those commands on a tree
    /// that holds its change, so I1 holds with one gate run instead of two.
    pub(super) fn worker_gate(&mut self, attempt: AttemptId, head: CommitId) {
        // Work for review runs its own worker gate: the person sees its verdict.
        if !self.policy.worker_stands_in || self.review_needed(attempt) {
            return self.run_gate(attempt, Stage::Worker, head);
        }
        self.move_attempt(
            attempt,
            AttemptState::Merging,
            "the worker gate is the integration gate's commands: the integration gate on its merge commit stands in for it",
        );
        self.queue_for_integration(attempt);
    }

    /// Gives the attempt's worktree back and queues it for integration.
    pub(super) fn queue_for_integration(&mut self, attempt: AttemptId) {
        self.commands
            .push_back(Command::ReleaseWorktree { attempt });
        self.integrator.enqueue(attempt);
        self.try_integrate();
    }

    /// A gate's result: its verdict (a reused pass journaled as such), or that it could
    /// not run at all (orch's failure).
    pub(super) fn on_gate_result(&mut self, input: Input) -> Result<(), Refusal> {
        match input {
            Input::GateFinished {
                attempt,
                stage,
                passed,
                summary,
                reused,
            } => {
                // A gate orch stopped reached no verdict: its slot's release judges it.
                if self.attempts.get(attempt).is_none_or(|x| x.abort.is_none()) {
                    self.gates.judged(attempt, self.now, reused.is_none());
                }
                self.returned(attempt, Op::Gate(stage), |o| {
                    if let Some(by) = reused.filter(|_| passed) {
                        o.persist(RunEvent::GateReused { attempt, stage, by });
                    }
                    o.on_gate(attempt, stage, passed, summary)
                })
            }
            Input::GateBroken {
                attempt,
                stage,
                message,
            } => {
                let kind = super::infrastructure(format!(
                    "the {} gate could not run: {message}",
                    stage.as_str()
                ));
                self.returned(attempt, Op::Gate(stage), |o| o.fail(attempt, kind))
            }
            other => unreachable!("not a gate's result: {other:?}"),
        }
    }

    pub(super) fn on_gate(
        &mut self,
        attempt: AttemptId,
        stage: Stage,
        passed: bool,
        summary: String,
    ) {
        match (stage, passed) {
            (Stage::Worker, true) if self.review_needed(attempt) => self.submit_for_review(attempt),
            (Stage::Worker, true) => {
                self.move_attempt(attempt, AttemptState::Merging, "worker validation passed");
                self.queue_for_integration(attempt);
            }
            (Stage::Worker, false) => self.fail(attempt, FailureKind::WorkerValidation { summary }),
            (Stage::Integration, true) => self.integration_passed(attempt),
            (Stage::Integration, false) => self.integration_failed(attempt, summary),
        }
    }

    /// Runs `stage`'s gate on `commit` once a gate slot is free (at once when it has no
    /// command); meanwhile the attempt is busy with it, with no deadline.
    pub(super) fn run_gate(&mut self, attempt: AttemptId, stage: Stage, commit: CommitId) {
        let gate = GateRun {
            attempt,
            stage,
            commit,
        };
        // A gate with no command runs nothing: it takes no slot.
        if self.policy.empty_gates.contains(&stage) {
            return self.start_gate(gate);
        }
        match self.gates.admit(gate, self.now) {
            Some(g) => self.start_gate(g),
            None => self.start_op(attempt, None),
        }
    }

    /// Free gate slots go to the integration gates that are due (a batch of what is
    /// ready now), then to the gates that waited longest.
    pub(super) fn fill_gates(&mut self) {
        if self.policy.gate_slots == 0 {
            return;
        }
        self.schedule_gates();
        while let Some(g) = self.gates.next(self.now) {
            self.start_gate(g);
        }
    }

    fn start_gate(
        &mut self,
        GateRun {
            attempt,
            stage,
            commit,
        }: GateRun,
    ) {
        // A rerun of a failing gate (a flaky one) runs: no earlier pass stands for it.
        let rerun = stage == Stage::Integration && self.integrator.rerunning(attempt);
        self.commands.push_back(Command::RunGate {
            attempt,
            stage,
            commit,
            reuse: self.policy.reuse_verdicts && !rerun,
        });
        self.start_op(attempt, Some(self.policy.gate_timeout));
    }

    /// Marks the attempt busy advancing the ref (its state says which op it is).
    pub(super) fn start_advance(&mut self, attempt: AttemptId) {
        self.start_op(attempt, None);
    }

    /// Marks the attempt busy merging.
    pub(super) fn start_merge(&mut self, attempt: AttemptId) {
        self.start_op(attempt, None);
    }

    pub(super) fn fail(&mut self, attempt: AttemptId, kind: FailureKind) {
        let reason = kind.to_string();
        self.move_attempt(attempt, AttemptState::Failed(kind), &reason);
        self.end_attempt(attempt);
    }

    /// If the attempt was being aborted, ends it accordingly and returns true.
    pub(super) fn aborted(&mut self, attempt: AttemptId) -> bool {
        let Some(why) = self.attempts.at(attempt).abort else {
            return false;
        };
        match why {
            Abort::Timeout(phase) => self.fail(
                attempt,
                FailureKind::Timeout {
                    phase: phase.into(),
                },
            ),
            Abort::CancelTask | Abort::CancelRun => {
                self.move_attempt(attempt, AttemptState::Canceled, "canceled");
                self.end_attempt(attempt);
            }
            Abort::Budget => {
                let detail = self.spend.stopped.remove(&attempt).unwrap_or_default();
                self.fail(attempt, FailureKind::Budget { detail });
            }
            Abort::Quota => {
                let signature = self.breaker.stopped.remove(&attempt).unwrap_or_default();
                self.fail(attempt, FailureKind::Quota { signature });
            }
            Abort::Taken => {
                self.move_attempt(
                    attempt,
                    AttemptState::Canceled,
                    "its task was moved or removed by a person",
                );
                self.end_attempt(attempt);
            }
            Abort::Restack => self.restacked(attempt),
        }
        true
    }

    pub(super) fn abort(&mut self, attempt: AttemptId, why: Abort) {
        let covered = self.integrator.covered_by_advance(attempt, &self.attempts);
        let a = self.attempts.at(attempt);
        if a.rec.state.is_terminal() || !a.stop(why) {
            return;
        }
        match a.op() {
            // A gate still waiting for a slot has nothing to stop.
            Some(Op::Gate(_)) if self.gates.withdraw(attempt) => {
                self.op_done(attempt);
                self.aborted(attempt);
            }
            Some(Op::Agent | Op::Gate(_)) => self.kill(attempt, false),
            // These finish quickly and cannot be interrupted; the result decides.
            Some(Op::Provision | Op::Merge | Op::AdvanceRef) => {}
            // Validated, and landing with an advance that is out: its result decides.
            None if covered => {}
            None => {
                self.aborted(attempt);
            }
        }
    }

    /// Signals the attempt's process group; a polite signal arms the grace timer after
    /// which the hard one follows.
    pub(super) fn kill(&mut self, attempt: AttemptId, hard: bool) {
        self.commands.push_back(Command::Abort { attempt, hard });
        self.timers.arm(
            Deadline::Grace(attempt),
            after(self.now, self.policy.kill_grace),
        );
    }

    /// The attempt reached a terminal state: free its slot, clean up, and decide its
    /// task's fate.
    pub(super) fn end_attempt(&mut self, attempt: AttemptId) {
        self.attempts.live.remove(&attempt);
        self.breaker.attempt_ended(attempt);
        let landed = self.attempts.rec(attempt).state == AttemptState::Succeeded;
        self.leave_queue(attempt, landed);
        self.timers.disarm_attempt(attempt);
        self.cleanup(attempt);
        self.planner.bump_epoch();
        self.task_outcome(attempt);
        self.try_integrate();
    }

    /// Asks for the attempt's cleanup, with what to remove and how long to keep its
    /// logs, as the cleanup policy says.
    pub(super) fn cleanup(&mut self, attempt: AttemptId) {
        let a = self
            .attempts
            .get(attempt)
            .expect("the core only names attempts it created");
        if a.rec.cleaned || self.cleaning.contains(&attempt) {
            return;
        }
        let ask = self.policy.on_conflict == crate::config::OnConflict::Ask;
        let (retention, remove_worktree, delete_branch) = a.cleanup_plan(self.policy.cleanup, ask);
        if !a.rec.cleanup_requested {
            self.persist(RunEvent::CleanupRequested { attempt });
            self.attempts.at(attempt).rec.cleanup_requested = true;
        }
        self.cleaning.insert(attempt);
        self.commands.push_back(Command::Cleanup {
            attempt,
            remove_worktree,
            delete_branch,
            retention,
        });
    }

    pub(super) fn move_attempt(&mut self, attempt: AttemptId, to: AttemptState, reason: &str) {
        let a = self.attempts.at(attempt);
        check_attempt(&a.rec.state, &to)
            .expect("the orchestrator only makes legal attempt transitions");
        let from = a.rec.state.phase();
        a.rec.state = to.clone();
        // The batch size's verdicts, as the journal's fold counts them (I5).
        match &to {
            AttemptState::Succeeded => self.integrator.verdicts.push(false),
            // A set-aside batch's culprit: its failure was counted with the batch's.
            AttemptState::Failed(FailureKind::IntegrationValidation { .. })
                if !self.integrator.counted.remove(&attempt) =>
            {
                self.integrator.verdicts.push(true)
            }
            _ => {}
        }
        self.persist(RunEvent::AttemptMoved {
            attempt,
            from,
            to,
            reason: reason.to_owned(),
        });
    }
}
