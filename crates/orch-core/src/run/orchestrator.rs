//! The [`Orchestrator`]: the whole lifecycle of a run as a sans-IO state machine.
//!
//! # Call order
//!
//! ```text
//! let mut o = Orchestrator::new(run_id, policy, board);      // or ::resume(...)
//! o.handle(now, Input::Start { head });
//! loop {
//!     while let Some(cmd) = o.poll_command() {
//!         // Execute in order. A Persist must be durable before the next command runs.
//!     }
//!     if o.is_finished() { break }
//!     // Wait for an adapter result or until o.poll_timeout(), whichever comes first,
//!     // then: o.handle(now, input) or o.handle(now, Input::Tick).
//! }
//! ```
//!
//! # Rules it keeps
//!
//! - A slot is held by an attempt from claim until it is terminal, so live agents never
//!   exceed `policy.slots()`, and a task whose `touches` overlap a live task's waits,
//!   then starts from the integration head that includes the first one's work.
//! - Attempts are integrated one at a time, in the order they passed worker validation.
//! - A task moves to `done` only after its attempt's worker gate passed, its merge was
//!   clean, its integration gate passed on that merge commit, and the ref advanced to it.
//! - Every state change is a [`Command::Persist`] emitted before the command it
//!   licenses, and [`RunSnapshot::from_events`] over those events rebuilds the state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::io::{
    AgentExit, CancelScope, Changes, Command, FinishedAgent, Input, MergeResult, Proposal,
    RefResult, RunEvent, Stage, TaskSpec, Verdict,
};
use super::journal::{AttemptRecord, RunSnapshot};
use super::policy::{Policy, touches_overlap};
use super::types::{
    AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind, RunId, RunState, check_attempt,
    check_run,
};
use crate::config::{Cleanup, EmptyDiff, OnConflict};
use crate::task::{TaskId, TaskStatus};
use crate::time::Timestamp;
use crate::transition::{self, Actor};

/// An input the orchestrator could not apply (stale or unknown); nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ignored input: {0}")]
pub struct Ignored(pub String);

/// What an attempt is waiting on from the outside world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    None,
    Provision,
    Agent,
    Gate(Stage),
    Merge,
    AdvanceRef,
}

/// Why an attempt is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    /// The phase that ran out of time: `agent`, `worker` or `integration`.
    Timeout(&'static str),
    CancelTask,
    CancelRun,
}

/// Why the run stopped claiming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Cancel,
    Halt,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    Op(AttemptId),
    Grace(AttemptId),
    Retry(TaskId),
    Planner(u64),
}

#[derive(Debug, Clone)]
struct Attempt {
    rec: AttemptRecord,
    op: Op,
    abort: Option<Abort>,
    timers: Vec<(Timestamp, Deadline)>,
    note: Option<String>,
    previous_failure: Option<FailureKind>,
}

#[derive(Debug, Clone)]
struct Retry {
    due: Timestamp,
    previous: Option<FailureKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planner {
    Idle,
    Waiting(u64),
}

/// The run state machine. See the module docs for the call order.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    run: RunId,
    policy: Policy,
    state: RunState,
    drain: Option<Drain>,
    head: Option<CommitId>,
    tasks: BTreeMap<TaskId, TaskSpec>,
    dependents: BTreeMap<TaskId, Vec<TaskId>>,
    /// Backlog tasks whose dependencies are all done, by priority then age.
    ready: BTreeSet<(Reverse<i32>, TaskId)>,
    /// Tasks whose status the run has set.
    moved: BTreeSet<TaskId>,
    attempts: BTreeMap<AttemptId, Attempt>,
    live: BTreeSet<AttemptId>,
    queue: VecDeque<AttemptId>,
    integrating: Option<AttemptId>,
    retries: BTreeMap<TaskId, Retry>,
    /// Cleanups requested and not yet confirmed; the run finishes only without any.
    cleaning: BTreeSet<AttemptId>,
    deadlines: BTreeSet<(Timestamp, Deadline)>,
    planner: Planner,
    next_request: u64,
    /// Bumped whenever something could change what to claim; the planner is asked at
    /// most once per epoch.
    epoch: u64,
    asked_epoch: Option<u64>,
    deferred: BTreeSet<TaskId>,
    commands: VecDeque<Command>,
}

/// At most this many candidates are offered to the planner in one request.
const PLANNER_CANDIDATES: usize = 50;

fn after(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp(
        now.0
            .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
    )
}

impl Orchestrator {
    /// A new run over `board`. Feed it [`Input::Start`] next.
    pub fn new(run: RunId, policy: Policy, board: Vec<TaskSpec>) -> Orchestrator {
        let mut o = Orchestrator {
            run,
            policy,
            state: RunState::Created,
            drain: None,
            head: None,
            tasks: BTreeMap::new(),
            dependents: BTreeMap::new(),
            ready: BTreeSet::new(),
            moved: BTreeSet::new(),
            attempts: BTreeMap::new(),
            live: BTreeSet::new(),
            queue: VecDeque::new(),
            integrating: None,
            retries: BTreeMap::new(),
            cleaning: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            planner: Planner::Idle,
            next_request: 1,
            epoch: 0,
            asked_epoch: None,
            deferred: BTreeSet::new(),
            commands: VecDeque::new(),
        };
        o.set_board(board);
        o
    }

    /// Rebuilds a run from its journal after a crash and reconciles it with the real
    /// integration ref (`actual_head`, read from git):
    ///
    /// - an attempt whose validated merge commit *is* the ref was integrated before the
    ///   crash could record it: it succeeds now;
    /// - a validated merge commit the ref has not reached is advanced to again;
    /// - a merge commit written but not validated is validated again;
    /// - attempts that had passed the worker gate queue for integration again, and
    ///   attempts in the worker gate re-run it;
    /// - every other attempt in flight is `interrupted`, and its task retried without
    ///   counting against the retry budget.
    pub fn resume(
        run: RunId,
        policy: Policy,
        board: Vec<TaskSpec>,
        journal: &RunSnapshot,
        actual_head: CommitId,
        mut finished: BTreeMap<AttemptId, FinishedAgent>,
        now: Timestamp,
    ) -> Orchestrator {
        let mut o = Orchestrator::new(run, policy, Vec::new());
        let mut board = board;
        for t in &mut board {
            if let Some(st) = journal.tasks.get(&t.id) {
                t.status = *st;
            }
        }
        o.set_board(board);
        o.moved = journal.tasks.keys().copied().collect();
        o.state = journal.state;
        o.head = journal.head.clone();
        for (id, rec) in &journal.attempts {
            o.attempts.insert(
                *id,
                Attempt {
                    rec: rec.clone(),
                    op: Op::None,
                    abort: None,
                    timers: Vec::new(),
                    note: None,
                    previous_failure: None,
                },
            );
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
        let mut interrupted = Vec::new();
        let mut reason = Vec::new();
        let in_flight: Vec<AttemptId> = o
            .attempts
            .iter()
            .filter(|(_, a)| !a.rec.state.is_terminal())
            .map(|(id, _)| *id)
            .collect();
        // The attempt being integrated first: it decides where the head is.
        for id in &in_flight {
            let a = &o.attempts[id];
            if a.rec.state.phase() != AttemptPhase::Integrating {
                continue;
            }
            let merge = a.rec.merge.clone();
            let passed = a.rec.integration_passed;
            if passed && merge.as_ref() == Some(&actual_head) {
                if o.head.as_ref() == Some(&actual_head) {
                    // The advance was journaled; only its consequences were not.
                    reason.push(format!("{id} was integrated just before the crash"));
                    o.complete(now, *id);
                } else {
                    reason.push(format!(
                        "{id} had advanced the integration ref before the crash"
                    ));
                    let from = o.head.clone().expect("a running run has a head");
                    o.succeed(now, *id, from, actual_head.clone());
                }
            } else if passed && o.head.as_ref() == Some(&actual_head) {
                reason.push(format!("{id} passed integration; advancing the ref again"));
                o.live.insert(*id);
                o.integrating = Some(*id);
                o.advance(*id);
            } else if let Some(commit) = merge.filter(|_| o.head.as_ref() == Some(&actual_head)) {
                reason.push(format!(
                    "{id} had a merge commit not yet validated; validating again"
                ));
                o.live.insert(*id);
                o.integrating = Some(*id);
                o.run_gate(now, *id, Stage::Integration, commit);
            }
        }
        if o.head.as_ref() != Some(&actual_head) {
            reason.push(format!(
                "the integration ref is at {actual_head}, which this run never validated; halting"
            ));
            o.begin_drain(Drain::Halt, "the integration ref moved outside orch");
        }
        for id in in_flight {
            if o.live.contains(&id) || o.attempts[&id].rec.state.is_terminal() {
                continue;
            }
            let (phase, head) = {
                let a = &o.attempts[&id];
                (a.rec.state.phase(), a.rec.head.clone())
            };
            match (phase, head) {
                // Passed the worker gate: queue for integration again.
                (AttemptPhase::Merging, Some(_)) if o.drain.is_none() => {
                    o.live.insert(id);
                    o.queue.push_back(id);
                }
                // In the worker gate: run it again on the same head.
                (AttemptPhase::Validating, Some(head)) if o.drain.is_none() => {
                    o.live.insert(id);
                    o.run_gate(now, id, Stage::Worker, head);
                }
                // The agent had finished and its work was committed: go on from there.
                (AttemptPhase::Running, _) if o.drain.is_none() && finished.contains_key(&id) => {
                    let f = finished.remove(&id).expect("just checked");
                    reason.push(format!(
                        "{id}'s agent had finished before the crash; going on from its work"
                    ));
                    o.live.insert(id);
                    o.on_agent_exit(now, id, f.exit, f.changes);
                }
                _ => {
                    o.live.insert(id);
                    o.move_attempt(
                        id,
                        AttemptState::Interrupted,
                        "found in flight after a crash",
                    );
                    interrupted.push(id);
                    o.end_attempt(now, id);
                }
            }
        }
        o.persist(RunEvent::Resumed {
            interrupted,
            reason: if reason.is_empty() {
                "the journal and the integration ref agree".into()
            } else {
                reason.join("; ")
            },
        });
        // Claimed tasks with nothing live and no retry planned.
        let orphans: Vec<TaskId> = o
            .moved
            .iter()
            .copied()
            .filter(|t| {
                o.tasks
                    .get(t)
                    .is_some_and(|s| s.status == TaskStatus::InProgress)
            })
            .filter(|t| !o.retries.contains_key(t) && !o.live.iter().any(|a| a.task == *t))
            .collect();
        for t in orphans {
            let last = o
                .attempts
                .range(
                    AttemptId { task: t, number: 0 }..=AttemptId {
                        task: t,
                        number: u32::MAX,
                    },
                )
                .next_back()
                .map(|(id, _)| *id);
            match last {
                // The attempt ended but the crash came before its task moved.
                Some(a) => o.task_outcome(now, a),
                None => o.retry_or_release(now, t, None),
            }
        }
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
        o.settle(now);
        o
    }

    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run
    }

    /// The run's state.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// True once the run has finished.
    pub fn is_finished(&self) -> bool {
        self.state.is_terminal()
    }

    /// The integration head.
    pub fn head(&self) -> Option<&CommitId> {
        self.head.as_ref()
    }

    /// Attempts that hold a slot.
    pub fn live_attempts(&self) -> usize {
        self.live.len()
    }

    /// The next command to execute, in order.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The earliest deadline; call `handle(now, Input::Tick)` when it has passed.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The run's state as its journal should tell it.
    pub fn snapshot(&self) -> RunSnapshot {
        RunSnapshot {
            state: self.state,
            head: self.head.clone(),
            tasks: self
                .moved
                .iter()
                .filter_map(|t| self.tasks.get(t).map(|s| (*t, s.status)))
                .collect(),
            attempts: self
                .attempts
                .iter()
                .map(|(id, a)| (*id, a.rec.clone()))
                .collect(),
        }
    }

    /// Feeds one input. Deadlines that have passed by `now` fire first.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Result<(), Ignored> {
        self.fire_deadlines(now);
        let r = self.apply(now, input);
        self.settle(now);
        r
    }

    fn apply(&mut self, now: Timestamp, input: Input) -> Result<(), Ignored> {
        match input {
            Input::Tick => Ok(()),
            Input::Start { head } => {
                if self.state != RunState::Created {
                    return Err(Ignored(format!(
                        "start: the run is already {:?}",
                        self.state
                    )));
                }
                self.move_run(RunState::Running, "started");
                self.persist(RunEvent::HeadSet { head: head.clone() });
                self.head = Some(head);
                Ok(())
            }
            Input::BoardChanged { tasks } => {
                let owned: BTreeMap<TaskId, TaskStatus> = self
                    .moved
                    .iter()
                    .filter_map(|t| self.tasks.get(t).map(|s| (*t, s.status)))
                    .filter(|(_, s)| *s == TaskStatus::InProgress)
                    .collect();
                let board = tasks
                    .into_iter()
                    .map(|mut t| {
                        if let Some(st) = owned.get(&t.id) {
                            t.status = *st;
                        }
                        t
                    })
                    .collect();
                self.set_board(board);
                self.epoch += 1;
                Ok(())
            }
            Input::PlannerProposed { request, proposals } => {
                self.on_proposals(now, request, proposals)
            }
            Input::PlannerFailed { request, reason } => {
                if self.planner != Planner::Waiting(request) {
                    return Err(Ignored(format!("planner request {request} is not pending")));
                }
                self.planner_fallback(now, request, &format!("the planner failed: {reason}"));
                Ok(())
            }
            Input::WorktreeReady { attempt } => {
                self.expect_op(attempt, Op::Provision)?;
                self.op_done(attempt);
                if self.aborted(now, attempt) {
                    return Ok(());
                }
                self.move_attempt(attempt, AttemptState::Running, "worktree ready");
                let a = &self.attempts[&attempt];
                let cmd = Command::SpawnAgent {
                    attempt,
                    note: a.note.clone(),
                    previous_failure: a.previous_failure.clone(),
                };
                self.commands.push_back(cmd);
                self.set_op(now, attempt, Op::Agent, Some(self.policy.agent_timeout));
                Ok(())
            }
            Input::WorktreeFailed { attempt, error } => {
                self.expect_op(attempt, Op::Provision)?;
                self.op_done(attempt);
                if self.aborted(now, attempt) {
                    return Ok(());
                }
                self.fail(
                    now,
                    attempt,
                    FailureKind::Infrastructure {
                        message: format!("worktree: {error}"),
                    },
                );
                Ok(())
            }
            Input::AgentExited {
                attempt,
                exit,
                changes,
            } => {
                self.expect_op(attempt, Op::Agent)?;
                self.op_done(attempt);
                if self.aborted(now, attempt) {
                    return Ok(());
                }
                self.on_agent_exit(now, attempt, exit, changes);
                Ok(())
            }
            Input::GateFinished {
                attempt,
                stage,
                passed,
                summary,
            } => {
                self.expect_op(attempt, Op::Gate(stage))?;
                self.op_done(attempt);
                if self.aborted(now, attempt) {
                    return Ok(());
                }
                self.on_gate(now, attempt, stage, passed, summary);
                Ok(())
            }
            Input::MergeFinished { attempt, result } => {
                self.expect_op(attempt, Op::Merge)?;
                self.op_done(attempt);
                if self.aborted(now, attempt) {
                    return Ok(());
                }
                match result {
                    MergeResult::Clean { commit } => {
                        let onto = self.head.clone().expect("a running run has a head");
                        self.persist(RunEvent::MergeWritten {
                            attempt,
                            commit: commit.clone(),
                            onto,
                        });
                        self.with_rec(attempt, |r| {
                            r.merge = Some(commit.clone());
                            r.integration_passed = false;
                        });
                        self.move_attempt(attempt, AttemptState::Integrating, "merged cleanly");
                        self.run_gate(now, attempt, Stage::Integration, commit);
                    }
                    MergeResult::Conflict { paths } => {
                        self.fail(now, attempt, FailureKind::Conflict { paths });
                    }
                    MergeResult::Failed { message } => {
                        self.fail(
                            now,
                            attempt,
                            FailureKind::Infrastructure {
                                message: format!("merge: {message}"),
                            },
                        );
                    }
                }
                Ok(())
            }
            Input::RefUpdated { attempt, result } => {
                self.expect_op(attempt, Op::AdvanceRef)?;
                self.op_done(attempt);
                // A cancel during the ref update is moot: the work is validated.
                self.attempts
                    .get_mut(&attempt)
                    .expect("checked by expect_op")
                    .abort = None;
                match result {
                    RefResult::Advanced => {
                        let from = self.head.clone().expect("a running run has a head");
                        let to = self.attempts[&attempt]
                            .rec
                            .merge
                            .clone()
                            .expect("integrating attempts have a merge");
                        self.succeed(now, attempt, from, to);
                    }
                    RefResult::LostRace { actual } => {
                        self.fail(
                            now,
                            attempt,
                            FailureKind::Infrastructure {
                                message: format!(
                                    "the integration ref moved to {actual} outside orch"
                                ),
                            },
                        );
                        self.begin_drain(Drain::Halt, "the integration ref moved outside orch");
                    }
                    RefResult::Failed { message } => {
                        self.fail(
                            now,
                            attempt,
                            FailureKind::Infrastructure {
                                message: format!("ref update: {message}"),
                            },
                        );
                    }
                }
                Ok(())
            }
            Input::CleanedUp { attempt, error } => {
                if !self.cleaning.remove(&attempt) {
                    return Err(Ignored(format!("no cleanup of {attempt} is pending")));
                }
                self.persist(RunEvent::CleanupDone { attempt, error });
                self.with_rec(attempt, |r| r.cleaned = true);
                Ok(())
            }
            Input::Cancel { scope } => {
                match scope {
                    CancelScope::Run => match self.state {
                        RunState::Created => {
                            self.move_run(RunState::Canceled, "canceled before it started");
                            self.commands.push_back(Command::Finish {
                                state: RunState::Canceled,
                            });
                        }
                        RunState::Running | RunState::Draining => {
                            self.begin_drain(Drain::Cancel, "cancel requested");
                            // A cancel overrides a halt or stop: the run ends canceled.
                            self.drain = Some(Drain::Cancel);
                            let live: Vec<AttemptId> = self.live.iter().copied().collect();
                            for a in live {
                                self.abort(now, a, Abort::CancelRun);
                            }
                        }
                        _ => return Err(Ignored("cancel: the run has finished".into())),
                    },
                    CancelScope::Task(task) => {
                        if let Some(a) = self.live.iter().copied().find(|a| a.task == task) {
                            self.abort(now, a, Abort::CancelTask);
                        } else if self.retries.remove(&task).is_some() {
                            self.move_task(
                                task,
                                TaskStatus::Canceled,
                                "canceled while waiting to retry",
                            );
                        } else {
                            return Err(Ignored(format!(
                                "cancel: task {task} has no live attempt in this run"
                            )));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    // ----- the lifecycle -----

    fn on_agent_exit(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        exit: AgentExit,
        changes: Option<Changes>,
    ) {
        let detail = match &exit {
            AgentExit::Code(0) => None,
            AgentExit::Code(c) => Some(format!("exit code {c}")),
            AgentExit::Signal(s) => Some(format!("killed by signal {s}")),
            AgentExit::FailedToStart(m) => Some(format!("failed to start: {m}")),
        };
        if let Some(detail) = detail {
            return self.fail(now, attempt, FailureKind::AgentError { detail });
        }
        let Some(changes) = changes else {
            return self.fail(
                now,
                attempt,
                FailureKind::Infrastructure {
                    message: "the agent's work could not be committed".into(),
                },
            );
        };
        self.persist(RunEvent::AttemptHead {
            attempt,
            head: changes.head.clone(),
            empty: changes.empty,
        });
        self.with_rec(attempt, |r| {
            r.head = Some(changes.head.clone());
            r.empty = changes.empty;
        });
        if changes.empty && self.policy.empty_diff == EmptyDiff::Fail {
            return self.fail(now, attempt, FailureKind::NoChanges);
        }
        self.move_attempt(attempt, AttemptState::Validating, "the agent finished");
        self.run_gate(now, attempt, Stage::Worker, changes.head);
    }

    fn on_gate(
        &mut self,
        now: Timestamp,
        attempt: AttemptId,
        stage: Stage,
        passed: bool,
        summary: String,
    ) {
        match (stage, passed) {
            (Stage::Worker, true) => {
                self.move_attempt(attempt, AttemptState::Merging, "worker validation passed");
                self.queue.push_back(attempt);
                self.try_integrate();
            }
            (Stage::Worker, false) => {
                self.fail(now, attempt, FailureKind::WorkerValidation { summary })
            }
            (Stage::Integration, true) => {
                let commit = self.attempts[&attempt]
                    .rec
                    .merge
                    .clone()
                    .expect("integrating attempts have a merge");
                self.persist(RunEvent::IntegrationPassed { attempt, commit });
                self.with_rec(attempt, |r| r.integration_passed = true);
                self.advance(attempt);
            }
            (Stage::Integration, false) => {
                self.fail(now, attempt, FailureKind::IntegrationValidation { summary })
            }
        }
    }

    fn advance(&mut self, attempt: AttemptId) {
        let expected = self.head.clone().expect("a running run has a head");
        let new = self.attempts[&attempt]
            .rec
            .merge
            .clone()
            .expect("integrating attempts have a merge");
        self.commands.push_back(Command::AdvanceRef {
            attempt,
            expected,
            new,
        });
        self.attempts.get_mut(&attempt).expect("live attempt").op = Op::AdvanceRef;
    }

    fn succeed(&mut self, now: Timestamp, attempt: AttemptId, from: CommitId, to: CommitId) {
        self.persist(RunEvent::HeadAdvanced {
            attempt,
            from,
            to: to.clone(),
        });
        self.head = Some(to);
        self.complete(now, attempt);
    }

    /// The ref has advanced to the attempt's merge: it succeeds, and its task is done.
    fn complete(&mut self, now: Timestamp, attempt: AttemptId) {
        self.move_attempt(attempt, AttemptState::Succeeded, "integrated");
        self.end_attempt(now, attempt);
    }

    fn try_integrate(&mut self) {
        if self.integrating.is_some() {
            return;
        }
        let Some(attempt) = self.queue.pop_front() else {
            return;
        };
        self.integrating = Some(attempt);
        let onto = self.head.clone().expect("a running run has a head");
        let head = self.attempts[&attempt]
            .rec
            .head
            .clone()
            .expect("attempts past the worker gate have a head");
        self.commands.push_back(Command::Merge {
            attempt,
            onto,
            head,
        });
        self.attempts
            .get_mut(&attempt)
            .expect("queued attempts are known")
            .op = Op::Merge;
    }

    fn run_gate(&mut self, now: Timestamp, attempt: AttemptId, stage: Stage, commit: CommitId) {
        self.commands.push_back(Command::RunGate {
            attempt,
            stage,
            commit,
        });
        self.set_op(
            now,
            attempt,
            Op::Gate(stage),
            Some(self.policy.gate_timeout),
        );
    }

    fn fail(&mut self, now: Timestamp, attempt: AttemptId, kind: FailureKind) {
        let reason = kind.to_string();
        self.move_attempt(attempt, AttemptState::Failed(kind), &reason);
        self.end_attempt(now, attempt);
    }

    /// If the attempt was being aborted, ends it accordingly and returns true.
    fn aborted(&mut self, now: Timestamp, attempt: AttemptId) -> bool {
        let Some(why) = self.attempts[&attempt].abort else {
            return false;
        };
        match why {
            Abort::Timeout(phase) => {
                self.fail(
                    now,
                    attempt,
                    FailureKind::Timeout {
                        phase: phase.into(),
                    },
                );
            }
            Abort::CancelTask | Abort::CancelRun => {
                self.move_attempt(attempt, AttemptState::Canceled, "canceled");
                self.end_attempt(now, attempt);
            }
        }
        true
    }

    fn abort(&mut self, now: Timestamp, attempt: AttemptId, why: Abort) {
        let a = self
            .attempts
            .get_mut(&attempt)
            .expect("aborting a known attempt");
        if a.abort.is_some() || a.rec.state.is_terminal() {
            return;
        }
        a.abort = Some(why);
        match a.op {
            Op::Agent | Op::Gate(_) => {
                self.commands.push_back(Command::Abort {
                    attempt,
                    hard: false,
                });
                self.arm(
                    now,
                    attempt,
                    Deadline::Grace(attempt),
                    self.policy.kill_grace,
                );
            }
            // These finish quickly and cannot be interrupted; the result decides.
            Op::Provision | Op::Merge | Op::AdvanceRef => {}
            Op::None => {
                self.queue.retain(|q| *q != attempt);
                self.aborted(now, attempt);
            }
        }
    }

    /// The attempt reached a terminal state: free its slot, clean up, and decide its
    /// task's fate.
    fn end_attempt(&mut self, now: Timestamp, attempt: AttemptId) {
        self.live.remove(&attempt);
        self.queue.retain(|q| *q != attempt);
        if self.integrating == Some(attempt) {
            self.integrating = None;
        }
        let timers = std::mem::take(
            &mut self
                .attempts
                .get_mut(&attempt)
                .expect("known attempt")
                .timers,
        );
        for t in timers {
            self.deadlines.remove(&t);
        }
        self.cleanup(attempt);
        self.epoch += 1;
        self.task_outcome(now, attempt);
        self.try_integrate();
    }

    /// Moves the task as its attempt's end says. Also used on resume, when a crash
    /// came between an attempt's end and its task's move.
    fn task_outcome(&mut self, now: Timestamp, attempt: AttemptId) {
        let state = self.attempts[&attempt].rec.state.clone();
        let task = attempt.task;
        match state {
            AttemptState::Succeeded => {
                self.move_task(
                    task,
                    TaskStatus::Done,
                    &format!("{attempt} passed every gate and is in the integration branch"),
                );
                let deps = self.dependents.get(&task).cloned().unwrap_or_default();
                for d in deps {
                    self.refresh_ready(d);
                }
            }
            AttemptState::Canceled => {
                if self.drain == Some(Drain::Cancel) {
                    self.move_task(task, TaskStatus::Backlog, "released: the run was canceled");
                } else {
                    self.move_task(
                        task,
                        TaskStatus::Canceled,
                        &format!("{attempt} was canceled"),
                    );
                }
            }
            AttemptState::Interrupted => self.retry_or_release(now, task, None),
            AttemptState::Failed(kind) => self.after_failure(now, attempt, kind),
            other => unreachable!("task_outcome of a live attempt in {other:?}"),
        }
    }

    fn after_failure(&mut self, now: Timestamp, attempt: AttemptId, kind: FailureKind) {
        let task = attempt.task;
        let used = self.counted_attempts(task);
        let budget_left = used < self.policy.retry.max_attempts;
        let retry = match &kind {
            FailureKind::Conflict { .. } => match self.policy.on_conflict {
                OnConflict::Retry => budget_left,
                OnConflict::Block => {
                    self.move_task(
                        task,
                        TaskStatus::Blocked,
                        &format!("{attempt}: {kind}; conflict policy is block"),
                    );
                    return;
                }
                OnConflict::Halt => {
                    self.move_task(
                        task,
                        TaskStatus::Backlog,
                        &format!("{attempt}: {kind}; conflict policy is halt"),
                    );
                    self.begin_drain(
                        Drain::Halt,
                        "a merge conflict, and the conflict policy is halt",
                    );
                    return;
                }
            },
            other => self.policy.retry.should_retry(other.class(), used),
        };
        if retry {
            self.retry_or_release(now, task, Some(kind));
        } else {
            let why = if budget_left {
                "not retried for this kind of failure"
            } else {
                "out of attempts"
            };
            self.move_task(
                task,
                TaskStatus::Failed,
                &format!("{attempt}: {kind}; {why}"),
            );
        }
    }

    fn retry_or_release(&mut self, now: Timestamp, task: TaskId, previous: Option<FailureKind>) {
        if self.drain.is_some() {
            self.move_task(task, TaskStatus::Backlog, "released: the run is draining");
            return;
        }
        let used = self.counted_attempts(task);
        let due = match previous {
            Some(_) => after(now, self.policy.retry.backoff.delay(used.max(1))),
            None => now,
        };
        self.retries.insert(task, Retry { due, previous });
        self.deadlines.insert((due, Deadline::Retry(task)));
    }

    fn counted_attempts(&self, task: TaskId) -> u32 {
        let lo = AttemptId { task, number: 0 };
        let hi = AttemptId {
            task,
            number: u32::MAX,
        };
        self.attempts
            .range(lo..=hi)
            .filter(|(_, a)| {
                matches!(
                    a.rec.state.phase(),
                    AttemptPhase::Failed | AttemptPhase::Succeeded
                )
            })
            .count() as u32
    }

    fn cleanup(&mut self, attempt: AttemptId) {
        let a = &self.attempts[&attempt];
        if a.rec.cleaned || self.cleaning.contains(&attempt) {
            return;
        }
        // An interrupted attempt's partial work is superseded by the attempt that
        // replaces it (the agent starts over), so it goes as a success's does.
        let succeeded = matches!(
            a.rec.state,
            AttemptState::Succeeded | AttemptState::Interrupted
        );
        let remove = match self.policy.cleanup {
            Cleanup::Always => true,
            Cleanup::OnSuccess => succeeded,
            Cleanup::Never => false,
        };
        if !a.rec.cleanup_requested {
            self.persist(RunEvent::CleanupRequested { attempt });
            self.with_rec(attempt, |r| r.cleanup_requested = true);
        }
        self.cleaning.insert(attempt);
        self.commands.push_back(Command::Cleanup {
            attempt,
            remove_worktree: remove,
            delete_branch: remove,
        });
    }

    // ----- claiming -----

    /// Up to `limit` tasks the scheduler could claim now, in its order: due retries and
    /// ready backlog tasks by priority then age, skipping any whose `touches` overlap a
    /// live task's or an earlier candidate's. Stops early, so a large board costs only
    /// what is needed.
    fn claimable(&self, now: Timestamp, limit: usize) -> Vec<TaskId> {
        let mut due: Vec<(Reverse<i32>, TaskId)> = self
            .retries
            .iter()
            .filter(|(_, r)| r.due <= now)
            .map(|(t, _)| (Reverse(self.tasks.get(t).map_or(0, |s| s.priority)), *t))
            .collect();
        due.sort();
        let live_touches: Vec<&[String]> = self
            .live
            .iter()
            .filter_map(|a| self.tasks.get(&a.task).map(|s| s.touches.as_slice()))
            .collect();
        let mut out = Vec::new();
        let mut taken: Vec<&[String]> = Vec::new();
        let mut from_ready = self
            .ready
            .iter()
            .filter(|(_, t)| !self.deferred.contains(t))
            .peekable();
        let mut from_due = due.iter().peekable();
        while out.len() < limit {
            let next = match (from_due.peek(), from_ready.peek()) {
                (Some(a), Some(b)) => {
                    if a <= b {
                        from_due.next()
                    } else {
                        from_ready.next()
                    }
                }
                (Some(_), None) => from_due.next(),
                (None, Some(_)) => from_ready.next(),
                (None, None) => break,
            };
            let (_, t) = *next.expect("peeked");
            let touches = self.tasks.get(&t).map_or(&[][..], |s| s.touches.as_slice());
            if live_touches
                .iter()
                .chain(taken.iter())
                .any(|o| touches_overlap(o, touches))
            {
                continue;
            }
            taken.push(touches);
            out.push(t);
        }
        out
    }

    fn free_slots(&self) -> u32 {
        self.policy.slots().saturating_sub(self.live.len() as u32)
    }

    fn schedule(&mut self, now: Timestamp) {
        if self.state != RunState::Running || self.free_slots() == 0 {
            return;
        }
        if self.policy.planner {
            if self.planner != Planner::Idle || self.asked_epoch == Some(self.epoch) {
                return;
            }
            let claimable = self.claimable(now, PLANNER_CANDIDATES);
            if claimable.is_empty() {
                return;
            }
            let request = self.next_request;
            self.next_request += 1;
            self.planner = Planner::Waiting(request);
            self.deadlines.insert((
                after(now, self.policy.planner_timeout),
                Deadline::Planner(request),
            ));
            self.commands.push_back(Command::AskPlanner {
                request,
                claimable,
                free_slots: self.free_slots(),
            });
            return;
        }
        self.fill(now);
    }

    /// Claims by the scheduler's own order until the slots are full.
    fn fill(&mut self, now: Timestamp) {
        let candidates = self.claimable(now, self.free_slots() as usize);
        for t in candidates {
            if self.free_slots() == 0 || self.state != RunState::Running {
                break;
            }
            self.claim(now, t, None);
        }
    }

    fn claim(&mut self, now: Timestamp, task: TaskId, note: Option<String>) {
        let previous = match self.retries.remove(&task) {
            Some(r) => {
                self.deadlines.remove(&(r.due, Deadline::Retry(task)));
                r.previous
            }
            None => {
                self.move_task(task, TaskStatus::InProgress, "claimed");
                None
            }
        };
        let number = self
            .attempts
            .range(
                AttemptId { task, number: 0 }..=AttemptId {
                    task,
                    number: u32::MAX,
                },
            )
            .next_back()
            .map_or(1, |(id, _)| id.number + 1);
        let attempt = AttemptId { task, number };
        let base = self.head.clone().expect("a running run has a head");
        let branch = attempt.branch(&self.run);
        self.persist(RunEvent::AttemptCreated {
            attempt,
            branch: branch.clone(),
            base: base.clone(),
        });
        self.attempts.insert(
            attempt,
            Attempt {
                rec: AttemptRecord::queued(base.clone()),
                op: Op::None,
                abort: None,
                timers: Vec::new(),
                note,
                previous_failure: previous,
            },
        );
        self.live.insert(attempt);
        self.move_attempt(attempt, AttemptState::Provisioning, "slot free");
        self.commands.push_back(Command::Provision {
            attempt,
            branch,
            base,
        });
        self.set_op(now, attempt, Op::Provision, None);
    }

    fn on_proposals(
        &mut self,
        now: Timestamp,
        request: u64,
        proposals: Vec<Proposal>,
    ) -> Result<(), Ignored> {
        if self.planner != Planner::Waiting(request) {
            for p in proposals {
                self.persist(RunEvent::ProposalJudged {
                    proposal: p,
                    verdict: Verdict::Rejected {
                        reason: format!("stale: request {request} is not pending"),
                    },
                });
            }
            return Err(Ignored(format!("planner request {request} is not pending")));
        }
        self.planner = Planner::Idle;
        self.deadlines
            .retain(|(_, d)| *d != Deadline::Planner(request));
        self.asked_epoch = Some(self.epoch);
        self.deferred.clear();
        let mut claimed = 0;
        for p in proposals {
            let verdict = self.judge(now, &p);
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
                    self.claim(now, task, note);
                    claimed += 1;
                }
                Proposal::Defer { task, .. } => {
                    self.deferred.insert(task);
                }
                Proposal::StopClaiming { reason } => {
                    self.begin_drain(
                        Drain::Stop,
                        &format!("the planner stopped claiming: {reason}"),
                    );
                }
            }
        }
        if claimed == 0 && self.state == RunState::Running {
            self.persist(RunEvent::PlannerFallback {
                reason: "the planner claimed nothing".into(),
            });
            self.fill(now);
        }
        Ok(())
    }

    fn planner_fallback(&mut self, now: Timestamp, request: u64, reason: &str) {
        self.planner = Planner::Idle;
        self.deadlines
            .retain(|(_, d)| *d != Deadline::Planner(request));
        self.asked_epoch = Some(self.epoch);
        self.persist(RunEvent::PlannerFallback {
            reason: reason.to_owned(),
        });
        self.fill(now);
    }

    /// The policy check on a planner proposal.
    fn judge(&self, now: Timestamp, p: &Proposal) -> Verdict {
        let reject = |reason: String| Verdict::Rejected { reason };
        if self.state != RunState::Running {
            return reject("the run is not claiming".into());
        }
        let task = match p {
            Proposal::StopClaiming { .. } => return Verdict::Accepted,
            Proposal::Claim { task, .. } | Proposal::Defer { task, .. } => *task,
        };
        let Some(spec) = self.tasks.get(&task) else {
            return reject(format!("unknown task {task}"));
        };
        let retrying = self.retries.get(&task);
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
            (TaskStatus::InProgress, Some(r)) if r.due > now => {
                return reject(format!("task {task} is backing off before its retry"));
            }
            (TaskStatus::InProgress, Some(_)) | (TaskStatus::Backlog, _) => {}
            (st, _) => return reject(format!("task {task} is {st}, which is not claimable")),
        }
        if self.live.iter().any(|a| a.task == task) {
            return reject(format!("task {task} already has a live attempt"));
        }
        let unfinished: Vec<String> = spec
            .depends_on
            .iter()
            .filter(|d| self.tasks.get(d).map(|s| s.status) != Some(TaskStatus::Done))
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
        if let Some(other) = self.live.iter().find(|a| {
            self.tasks
                .get(&a.task)
                .is_some_and(|s| touches_overlap(&s.touches, &spec.touches))
        }) {
            return reject(format!(
                "task {task} touches the same paths as live {other}"
            ));
        }
        Verdict::Accepted
    }

    // ----- run state -----

    fn begin_drain(&mut self, why: Drain, reason: &str) {
        if self.drain.is_some() {
            return;
        }
        self.drain = Some(why);
        if self.state == RunState::Running {
            self.move_run(RunState::Draining, reason);
        }
        let waiting: Vec<TaskId> = self.retries.keys().copied().collect();
        for t in waiting {
            let r = self.retries.remove(&t).expect("listed just above");
            self.deadlines.remove(&(r.due, Deadline::Retry(t)));
            self.move_task(t, TaskStatus::Backlog, "released: the run is draining");
        }
    }

    /// After every input: claim what can be claimed, and finish if nothing is left.
    fn settle(&mut self, now: Timestamp) {
        self.schedule(now);
        if !self.live.is_empty()
            || !self.cleaning.is_empty()
            || self.state.is_terminal()
            || self.state == RunState::Created
        {
            return;
        }
        match self.state {
            RunState::Running if self.retries.is_empty() && self.planner == Planner::Idle => {
                self.move_run(RunState::Completed, "nothing left to claim");
                self.commands.push_back(Command::Finish {
                    state: RunState::Completed,
                });
            }
            RunState::Draining => {
                let end = match self.drain {
                    Some(Drain::Cancel) => RunState::Canceled,
                    Some(Drain::Halt) => RunState::Halted,
                    Some(Drain::Stop) | None => RunState::Completed,
                };
                self.move_run(end, "drained");
                self.commands.push_back(Command::Finish { state: end });
            }
            _ => {}
        }
    }

    fn fire_deadlines(&mut self, now: Timestamp) {
        while let Some(&(t, d)) = self.deadlines.first() {
            if t > now {
                break;
            }
            self.deadlines.remove(&(t, d));
            match d {
                Deadline::Op(a) => {
                    if let Some(at) = self.attempts.get_mut(&a) {
                        at.timers.retain(|x| *x != (t, d));
                        match at.op {
                            Op::Agent => self.abort(now, a, Abort::Timeout("agent")),
                            Op::Gate(stage) => self.abort(now, a, Abort::Timeout(stage.as_str())),
                            _ => {}
                        }
                    }
                }
                Deadline::Grace(a) => {
                    let Some(at) = self.attempts.get_mut(&a) else {
                        continue;
                    };
                    at.timers.retain(|x| *x != (t, d));
                    if matches!(at.op, Op::Agent | Op::Gate(_)) {
                        self.commands.push_back(Command::Abort {
                            attempt: a,
                            hard: true,
                        });
                        self.arm(now, a, Deadline::Grace(a), self.policy.kill_grace);
                    }
                }
                Deadline::Retry(_) => self.epoch += 1,
                Deadline::Planner(request) => {
                    if self.planner == Planner::Waiting(request) {
                        self.planner_fallback(now, request, "the planner timed out");
                    }
                }
            }
        }
    }

    // ----- bookkeeping -----

    fn set_board(&mut self, board: Vec<TaskSpec>) {
        self.tasks = board.into_iter().map(|t| (t.id, t)).collect();
        self.dependents.clear();
        for t in self.tasks.values() {
            for d in &t.depends_on {
                self.dependents.entry(*d).or_default().push(t.id);
            }
        }
        self.ready.clear();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for t in ids {
            self.refresh_ready(t);
        }
    }

    fn refresh_ready(&mut self, t: TaskId) {
        let Some(spec) = self.tasks.get(&t) else {
            return;
        };
        let key = (Reverse(spec.priority), t);
        let ready = spec.status == TaskStatus::Backlog
            && spec
                .depends_on
                .iter()
                .all(|d| self.tasks.get(d).map(|s| s.status) == Some(TaskStatus::Done));
        if ready {
            self.ready.insert(key);
        } else {
            self.ready.remove(&key);
        }
    }

    fn persist(&mut self, e: RunEvent) {
        self.commands.push_back(Command::Persist(e));
    }

    fn move_run(&mut self, to: RunState, reason: &str) {
        check_run(self.state, to).expect("the orchestrator only makes legal run transitions");
        self.persist(RunEvent::RunMoved {
            from: self.state,
            to,
            reason: reason.to_owned(),
        });
        self.state = to;
    }

    fn move_task(&mut self, task: TaskId, to: TaskStatus, reason: &str) {
        let from = self
            .tasks
            .get(&task)
            .map_or(TaskStatus::Backlog, |s| s.status);
        transition::check_move(from, to, Actor::Orchestrator, false)
            .expect("the orchestrator only makes legal task moves");
        self.persist(RunEvent::TaskMoved {
            task,
            from,
            to,
            reason: reason.to_owned(),
        });
        if let Some(s) = self.tasks.get_mut(&task) {
            s.status = to;
        }
        self.moved.insert(task);
        self.refresh_ready(task);
    }

    fn move_attempt(&mut self, attempt: AttemptId, to: AttemptState, reason: &str) {
        let a = self
            .attempts
            .get_mut(&attempt)
            .expect("moving a known attempt");
        check_attempt(&a.rec.state, &to)
            .expect("the orchestrator only makes legal attempt transitions");
        let from = a.rec.state.phase();
        a.rec.state = to.clone();
        self.persist(RunEvent::AttemptMoved {
            attempt,
            from,
            to,
            reason: reason.to_owned(),
        });
    }

    fn with_rec(&mut self, attempt: AttemptId, f: impl FnOnce(&mut AttemptRecord)) {
        f(&mut self.attempts.get_mut(&attempt).expect("known attempt").rec);
    }

    fn expect_op(&self, attempt: AttemptId, op: Op) -> Result<(), Ignored> {
        match self.attempts.get(&attempt) {
            Some(a) if a.op == op && self.live.contains(&attempt) => Ok(()),
            Some(a) => Err(Ignored(format!(
                "{attempt} is not waiting for {op:?} (it is {:?})",
                a.op
            ))),
            None => Err(Ignored(format!("unknown attempt {attempt}"))),
        }
    }

    fn set_op(&mut self, now: Timestamp, attempt: AttemptId, op: Op, deadline: Option<Duration>) {
        self.attempts.get_mut(&attempt).expect("known attempt").op = op;
        if let Some(d) = deadline {
            self.arm(now, attempt, Deadline::Op(attempt), d);
        }
    }

    fn arm(&mut self, now: Timestamp, attempt: AttemptId, d: Deadline, after_: Duration) {
        let t = after(now, after_);
        self.deadlines.insert((t, d));
        self.attempts
            .get_mut(&attempt)
            .expect("known attempt")
            .timers
            .push((t, d));
    }

    fn op_done(&mut self, attempt: AttemptId) {
        let a = self.attempts.get_mut(&attempt).expect("known attempt");
        a.op = Op::None;
        for t in std::mem::take(&mut a.timers) {
            self.deadlines.remove(&t);
        }
    }
}
