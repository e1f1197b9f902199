//! Resuming a run from its journal: the orchestrator rebuilt, and what was in flight
//! at the crash reconciled.

use super::{Drain, Orchestrator};
use crate::run::attempt::Attempt;
use crate::run::event::RunEvent;
use crate::run::io::{Command, TaskSpec};
use crate::run::journal::RunSnapshot;
use crate::run::policy::Policy;
use crate::run::report::FinishedAgent;
use crate::run::resume::LineMoved;
use crate::run::types::{AttemptId, AttemptPhase, AttemptState, CommitId, RunId, RunState};
use crate::task::{TaskId, TaskStatus};
use crate::time::Timestamp;
use std::collections::BTreeMap;

impl Orchestrator {
    /// Rebuilds a run from its journal after a crash and reconciles it with the real
    /// integration ref (`actual_head`, read from git):
    ///
    /// - an attempt whose validated merge commit *is* the ref was integrated before the
    ///   crash could record it: it succeeds now;
    /// - a validated merge commit the ref has not reached is advanced to again;
    /// - a merge commit written but not validated is validated again;
    /// - attempts that had passed the worker gate queue for integration again, and
    ///   attempts in the worker gate re-run it;
    /// - an agent that had finished with its work committed (`finished`) goes on to
    ///   its worker gate;
    /// - every other attempt in flight is `interrupted`, and its task retried without
    ///   counting against the retry budget;
    /// - a shared line another run moved on (`moved`) is built on: this run's
    ///   candidates it holds succeed, the rest are stacked again on it.
    #[allow(clippy::too_many_arguments)]
    pub fn resume(
        run: RunId,
        policy: Policy,
        board: Vec<TaskSpec>,
        journal: &RunSnapshot,
        actual_head: CommitId,
        moved: Option<LineMoved>,
        finished: BTreeMap<AttemptId, FinishedAgent>,
        now: Timestamp,
    ) -> Orchestrator {
        let mut o = Orchestrator::new(run, policy, Vec::new());
        o.now = now;
        let mut board = board;
        for t in &mut board {
            if let Some(st) = journal.tasks.get(&t.id) {
                t.status = *st;
            }
        }
        o.sched.set_board(board);
        o.journaled = journal.tasks.clone();
        o.claimed_after = journal.claimed_after.clone();
        o.state = journal.state;
        o.head = journal.head.clone();
        o.paused = journal.paused;
        o.spend.planner = journal.planner_usage.clone();
        for failed in &journal.verdicts {
            o.integrator.verdicts.push(*failed);
        }
        o.integrator.counted = journal.set_aside.clone();
        for (id, rec) in &journal.attempts {
            o.attempts
                .insert(*id, Attempt::new(rec.clone(), None, None));
        }
        if o.state == RunState::Created {
            return o;
        }
        if o.state.is_terminal() {
            // The crash may have come between journaling the end and acting on it.
            o.commands.push_back(Command::Finish { state: o.state });
            return o;
        }
        if o.state == RunState::Draining {
            // Why it was draining is not journaled separately; a resumed drain ends
            // as a cancel, which releases work rather than failing it.
            o.drain = Some(Drain::Cancel);
        }
        let in_flight: Vec<AttemptId> = o
            .attempts
            .iter()
            .filter(|(_, a)| !a.rec.state.is_terminal())
            .map(|(id, _)| *id)
            .collect();
        let mut reason = o.reconcile_integrating(&in_flight, &actual_head, moved.as_ref());
        let interrupted = o.reconcile_rest(in_flight, finished, &mut reason);
        o.persist(RunEvent::Resumed {
            interrupted,
            reason: if reason.is_empty() {
                "the journal and the integration ref agree".into()
            } else {
                reason.join("; ")
            },
        });
        o.settle_orphans();
        // Cleanups requested before the crash may never have run: request them again
        // (cleanup is idempotent), and request the ones never requested.
        let uncleaned: Vec<AttemptId> = o
            .attempts
            .iter()
            .filter(|(_, a)| a.rec.state.is_terminal() && !a.rec.cleaned)
            .map(|(id, _)| *id)
            .collect();
        for id in uncleaned {
            o.cleanup(id);
        }
        o.try_integrate();
        o.settle();
        o
    }

    /// The integration stack, rebuilt from the journal (each candidate's merge made on
    /// the one below it, the bottom on the head), decides where the head is: a prefix
    /// of validated candidates the ref reached before the crash could record it
    /// succeeds; the rest of the stack is adopted, its unvalidated merges validated
    /// again. Candidates off the stack are stacked again by `reconcile_rest`.
    fn reconcile_integrating(
        &mut self,
        in_flight: &[AttemptId],
        actual: &CommitId,
        moved: Option<&LineMoved>,
    ) -> Vec<String> {
        let mut reason = Vec::new();
        let integrating: Vec<AttemptId> = in_flight
            .iter()
            .copied()
            .filter(|id| self.attempts.rec(*id).state.phase() == AttemptPhase::Integrating)
            .collect();
        // Advances that were journaled, only their consequences not: the candidate
        // the head is at, and (an advance lands a whole prefix of the stack) each one
        // below it, down the merges they were made on.
        let mut advanced = Vec::new();
        let mut at = self.head.clone();
        while let Some(id) = integrating.iter().copied().find(|id| {
            let rec = self.attempts.rec(*id);
            !advanced.contains(id)
                && rec.integration_passed
                && rec.merge.is_some()
                && rec.merge == at
        }) {
            advanced.push(id);
            at = self.attempts.rec(id).onto.clone();
        }
        for id in advanced.into_iter().rev() {
            reason.push(format!("{id} was integrated just before the crash"));
            self.complete(id);
        }
        let mut chain = self.rebuild_stack(&integrating, actual);
        let reached = chain
            .iter()
            .position(|id| self.attempts.rec(*id).merge.as_ref() == Some(actual));
        if let Some(j) = reached.filter(|_| self.head.as_ref() != Some(actual))
            && chain[..=j]
                .iter()
                .all(|id| self.attempts.rec(*id).integration_passed)
        {
            let landed: Vec<AttemptId> = chain.drain(..=j).collect();
            for id in &landed {
                reason.push(format!(
                    "{id} had advanced the integration ref before the crash"
                ));
            }
            self.land_prefix(landed);
        }
        if let Some(m) = moved.filter(|m| self.head.as_ref() != Some(&m.to) && m.to == *actual) {
            self.build_on_moved_line(&mut chain, m, &mut reason);
        }
        if self.head.as_ref() == Some(actual) {
            self.adopt_stack(chain, &mut reason);
        } else {
            let journaled = self.head.clone().expect("a running run has a head");
            reason.push(format!(
                "the integration ref is at {actual}, which this run never validated (it left it at {journaled}); halting"
            ));
            let why = format!(
                "the integration ref moved outside orch: it is at {actual}, where orch left it at {journaled}"
            );
            self.begin_drain(Drain::Halt, &why);
        }
        reason
    }

    /// The in-flight candidates stacked on the journal's head, bottom first: each
    /// merge made on the one below it. A batch set aside was merged on a commit the
    /// stack was merged on too: the merges the ref reached (`actual`) pick the branch.
    fn rebuild_stack(&self, integrating: &[AttemptId], actual: &CommitId) -> Vec<AttemptId> {
        let live = |id: &AttemptId| {
            let r = self.attempts.rec(*id);
            !r.state.is_terminal() && r.merge.is_some()
        };
        let mut chain: Vec<AttemptId> = Vec::new();
        let mut at = Some(actual.clone());
        while at != self.head {
            let below = integrating
                .iter()
                .copied()
                .find(|id| !chain.contains(id) && live(id) && self.attempts.rec(*id).merge == at);
            let Some(id) = below else {
                chain.clear();
                break;
            };
            chain.push(id);
            at = self.attempts.rec(id).onto.clone();
        }
        chain.reverse();
        let mut at = match chain.last() {
            Some(top) => self.attempts.rec(*top).merge.clone(),
            None => self.head.clone(),
        };
        while let Some(id) = integrating
            .iter()
            .copied()
            .find(|id| !chain.contains(id) && live(id) && self.attempts.rec(*id).onto == at)
        {
            chain.push(id);
            at = self.attempts.rec(id).merge.clone();
        }
        chain
    }

    /// Another run moved the shared line on while this one was down: what of the stack
    /// it holds succeeds, the run builds on its head, and the rest is stacked again
    /// (`reconcile_rest`).
    fn build_on_moved_line(
        &mut self,
        chain: &mut Vec<AttemptId>,
        m: &LineMoved,
        reason: &mut Vec<String>,
    ) {
        let landed: Vec<AttemptId> = chain
            .iter()
            .copied()
            .take_while(|id| m.landed.contains(id) && self.attempts.rec(*id).integration_passed)
            .collect();
        for id in &landed {
            reason.push(format!(
                "{id} had landed before the crash; another run built on it"
            ));
        }
        self.land_prefix(landed);
        let from = self.head.clone().expect("a running run has a head");
        self.persist(RunEvent::LineMovedOn {
            attempt: None,
            from,
            to: m.to.clone(),
        });
        self.head = Some(m.to.clone());
        reason.push(format!(
            "the integration line moved on to {} (another run landed work); building on it",
            m.to
        ));
        chain.clear();
    }

    /// The rebuilt stack, on the head the ref is at, adopted: validated candidates wait
    /// to land, unvalidated merges are validated again.
    fn adopt_stack(&mut self, chain: Vec<AttemptId>, reason: &mut Vec<String>) {
        // A top passed, and the crash came before what it implies for those below it
        // (its merge holds their work) was journaled: it is, now.
        let top_passed = chain
            .iter()
            .rev()
            .copied()
            .find(|id| self.attempts.rec(*id).integration_passed);
        for id in chain {
            self.attempts.live.insert(id);
            self.integrator.adopt(id);
            let rec = self.attempts.rec(id);
            match (rec.integration_passed, rec.merge.clone()) {
                (true, _) => {
                    reason.push(format!("{id} passed integration; advancing the ref again"))
                }
                // Gated again as its batch's gates come due (`schedule_gates`).
                (false, Some(_)) => reason.push(format!(
                    "{id} had a merge commit not yet validated; validating again"
                )),
                (false, None) => {}
            }
        }
        if let Some(top) = top_passed {
            let merge = self.attempts.rec(top).merge.clone();
            if let Some(commit) = merge {
                self.imply_below(top, &commit);
            }
        }
    }

    /// Every other attempt in flight: re-queued, re-validated, gone on from, or
    /// interrupted. Returns the interrupted ones.
    fn reconcile_rest(
        &mut self,
        in_flight: Vec<AttemptId>,
        mut finished: BTreeMap<AttemptId, FinishedAgent>,
        reason: &mut Vec<String>,
    ) -> Vec<AttemptId> {
        let mut interrupted = Vec::new();
        for id in in_flight {
            if self.attempts.live.contains(&id) || self.attempts.rec(id).state.is_terminal() {
                continue;
            }
            let rec = self.attempts.rec(id);
            let (phase, head) = (rec.state.phase(), rec.head.clone());
            self.attempts.live.insert(id);
            let going = self.drain.is_none();
            match (phase, head) {
                // Passed the worker gate: queue for integration again.
                (AttemptPhase::Merging, Some(_)) if going => self.integrator.enqueue(id),
                // A candidate off the rebuilt stack: stacked again.
                (AttemptPhase::Integrating, Some(_)) if going => {
                    self.move_attempt(id, AttemptState::Merging, "stacked again after a crash");
                    self.integrator.enqueue(id);
                }
                // In the worker gate: run it again on the same head.
                (AttemptPhase::Validating, Some(head)) if going => self.worker_gate(id, head),
                // The agent had finished and its work was committed: go on from there.
                (AttemptPhase::Running, _) if going && finished.contains_key(&id) => {
                    let f = finished.remove(&id).expect("just checked");
                    reason.push(format!(
                        "{id}'s agent had finished before the crash; going on from its work"
                    ));
                    let hint = f.report.hint.clone();
                    self.on_agent_report(id, f.report);
                    if !self.aborted(id) {
                        self.on_agent_exit(id, f.exit, f.changes, hint);
                    }
                }
                _ => {
                    self.move_attempt(
                        id,
                        AttemptState::Interrupted,
                        "found in flight after a crash",
                    );
                    interrupted.push(id);
                    self.end_attempt(id);
                }
            }
        }
        interrupted
    }

    /// Claimed tasks with nothing live and no retry planned: the crash came between
    /// an attempt's end (or a claim) and what should have followed.
    fn settle_orphans(&mut self) {
        let orphans: Vec<TaskId> = self
            .journaled
            .iter()
            .filter(|(_, s)| **s == TaskStatus::InProgress)
            .map(|(t, _)| *t)
            .filter(|t| !self.sched.retries.contains_key(t) && self.attempts.live_of(*t).is_none())
            .collect();
        for t in orphans {
            let since = self.claimed_after.get(&t).copied().unwrap_or(0);
            let last = self
                .attempts
                .of_task(t)
                .next_back()
                .map(|(id, _)| *id)
                .filter(|id| id.number > since);
            match last {
                // The attempt ended but the crash came before its task moved.
                Some(a) => self.task_outcome(a),
                None => self.retry_or_release(t, None),
            }
        }
    }
}
