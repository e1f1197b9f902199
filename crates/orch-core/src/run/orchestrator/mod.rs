//! The [`Orchestrator`]: it routes each input to the sub-state that owns it, and
//! journals what they decide. Its impl is spread by concern over this folder.

mod batch;
mod claims;
mod integration;
mod lifecycle;
mod outcome;
mod planning;
mod recovery;
mod review;
mod spending;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::run::attempt::{Abort, Attempts, Op};
use crate::run::gates::GateSlots;
use crate::run::integrator::Integrator;
use crate::run::planner::PlannerState;
use crate::run::scheduler::Scheduler;
use crate::run::timers::{Deadline, Timers};

use crate::run::{
    AttemptId, CancelScope, Command, CommitId, FailureKind, Input, Journaled, Policy, Refusal,
    RunEvent, RunId, RunSnapshot, RunState, TaskSpec, check_run,
};
use crate::task::{TaskId, TaskStatus};
use crate::time::Timestamp;
use crate::transition::{self, Actor};

/// What [`Orchestrator::handle`] made of an input.
#[must_use = "a refused input is journaled; look at it to log or count refusals"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The input was applied.
    Applied,
    /// The input was stale or refused; nothing changed but the journal, which records
    /// why.
    Refused(Refusal),
}

impl Handled {
    /// True when the input was refused.
    pub fn is_refused(&self) -> bool {
        matches!(self, Handled::Refused(_))
    }
}

/// Why the run stopped claiming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    Cancel,
    Halt,
    Stop,
}

/// The run state machine. See the module docs for the call order.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    run: RunId,
    policy: Policy,
    /// The `now` of the input being handled; every journal entry carries it.
    now: Timestamp,
    state: RunState,
    drain: Option<Drain>,
    head: Option<CommitId>,
    paused: bool,
    /// Infrastructure failures in a row, with no success between.
    infra_streak: u32,
    /// Task statuses as the run's journal tells them: the tasks the run moved.
    journaled: BTreeMap<TaskId, TaskStatus>,
    /// Per claimed task, its last attempt number before the latest claim.
    claimed_after: BTreeMap<TaskId, u32>,
    /// The claim epoch at which the board was last read fresh, and whether a read is
    /// out: a run ends for want of work only after a fresh look at the board.
    board_fresh_at: Option<u64>,
    board_asked: bool,
    sched: Scheduler,
    attempts: Attempts,
    integrator: Integrator,
    /// Gates running, and gates waiting for a slot.
    gates: GateSlots,
    planner: PlannerState,
    timers: Timers,
    /// Cleanups requested and not yet confirmed; the run finishes only without any.
    cleaning: BTreeSet<AttemptId>,
    spend: crate::run::spend::Spend,
    breaker: crate::run::breaker::Breaker,
    commands: VecDeque<Command>,
}

impl Orchestrator {
    /// A new run over `board`. Feed it [`Input::Start`] next.
    pub fn new(run: RunId, policy: Policy, board: Vec<TaskSpec>) -> Orchestrator {
        let mut sched = Scheduler::default();
        sched.set_board(board);
        let gates = GateSlots::new(policy.gate_slots, policy.gate_slots_ceiling);
        Orchestrator {
            run,
            policy,
            now: Timestamp(0),
            state: RunState::Created,
            drain: None,
            head: None,
            paused: false,
            infra_streak: 0,
            journaled: BTreeMap::new(),
            claimed_after: BTreeMap::new(),
            board_fresh_at: None,
            board_asked: false,
            sched,
            attempts: Attempts::default(),
            integrator: Integrator::default(),
            gates,
            planner: PlannerState::default(),
            timers: Timers::default(),
            cleaning: BTreeSet::new(),
            spend: crate::run::spend::Spend::default(),
            breaker: crate::run::breaker::Breaker::default(),
            commands: VecDeque::new(),
        }
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

    /// True while claiming is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The integration head.
    pub fn head(&self) -> Option<&CommitId> {
        self.head.as_ref()
    }

    /// Attempts that hold a slot.
    pub fn live_attempts(&self) -> usize {
        self.attempts.live.len()
    }

    /// The next command to execute, in order.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The earliest deadline; call `handle(now, Input::Tick)` when it has passed.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.first()
    }

    /// The run's state as its journal should tell it.
    pub fn snapshot(&self) -> RunSnapshot {
        RunSnapshot {
            state: self.state,
            head: self.head.clone(),
            tasks: self.journaled.clone(),
            attempts: self
                .attempts
                .iter()
                .map(|(id, a)| (*id, a.rec.clone()))
                .collect(),
            paused: self.paused,
            claimed_after: self.claimed_after.clone(),
            planner_usage: self.spend.planner.clone(),
            verdicts: self.integrator.verdicts.latest(),
            set_aside: self.integrator.counted.clone(),
        }
    }

    /// Feeds one input. Deadlines that have passed by `now` fire first. A refused
    /// input is journaled ([`RunEvent::InputRefused`]) and changes nothing else.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Handled {
        self.now = self.now.max(now);
        self.fire_deadlines(self.now);
        // Only ids are kept here: the words are made only for a refusal.
        let (kind, about) = describe(&input);
        let r = self.apply(input);
        self.settle();
        match r {
            Ok(()) => Handled::Applied,
            Err(refusal) => {
                self.persist(RunEvent::InputRefused {
                    input: kind.into(),
                    about: about.words(),
                    reason: refusal.to_string(),
                });
                Handled::Refused(refusal)
            }
        }
    }

    fn apply(&mut self, input: Input) -> Result<(), Refusal> {
        match input {
            Input::Tick => Ok(()),
            Input::CpuLoad { busy } => {
                self.on_cpu_load(busy);
                Ok(())
            }
            Input::Start { head } => self.on_start(head),
            Input::BoardChanged { tasks } => {
                self.on_board_changed(tasks);
                self.board_asked = false;
                self.board_fresh_at = Some(self.planner.epoch());
                Ok(())
            }
            Input::Claimed { task } => self.on_claimed(task),
            Input::ClaimRefused { task, why } => self.on_claim_refused(task, why),
            Input::PauseClaims => self.set_paused(true),
            Input::ResumeClaims => self.set_paused(false),
            Input::PlannerProposed { request, proposals } => self.on_proposals(request, proposals),
            Input::PlannerFailed { request, reason } => self.on_planner_failed(request, &reason),
            Input::WorktreeReady { attempt } => {
                self.returned(attempt, Op::Provision, |o| o.on_worktree_ready(attempt))
            }
            Input::WorktreeFailed { attempt, error } => {
                let kind = infrastructure(format!("worktree: {error}"));
                self.returned(attempt, Op::Provision, |o| o.fail(attempt, kind))
            }
            Input::AgentExited {
                attempt,
                exit,
                changes,
                report,
            } => {
                self.attempts.expecting(attempt, Op::Agent)?;
                let hint = report.failure_note();
                self.on_agent_report(attempt, report);
                self.returned(attempt, Op::Agent, |o| {
                    o.on_agent_exit(attempt, exit, changes, hint)
                })
            }
            Input::AgentProgress { attempt, report } => self.on_agent_progress(attempt, report),
            Input::PlannerUsage { request, usage } => self.on_planner_usage(request, usage),
            i @ (Input::GateFinished { .. } | Input::GateBroken { .. }) => self.on_gate_result(i),
            Input::MergeFinished { attempt, result } => {
                self.returned(attempt, Op::Merge, |o| o.on_merge(attempt, result))
            }
            Input::RefUpdated { attempt, result } => {
                self.attempts.expecting(attempt, Op::AdvanceRef)?;
                self.op_done(attempt);
                self.on_ref(attempt, result);
                Ok(())
            }
            Input::WorkFailed { attempt, why } => self.on_work_failed(attempt, why),
            Input::CleanedUp { attempt, error } => {
                if !self.cleaning.remove(&attempt) {
                    return Err(Refusal::NoCleanupPending(attempt));
                }
                self.persist(RunEvent::CleanupDone { attempt, error });
                self.attempts.at(attempt).rec.cleaned = true;
                Ok(())
            }
            Input::Cancel { scope } => self.on_cancel(scope),
        }
    }

    /// An attempt's operation came back: unless it was aborted meanwhile, `then`.
    fn returned(
        &mut self,
        attempt: AttemptId,
        op: Op,
        then: impl FnOnce(&mut Orchestrator),
    ) -> Result<(), Refusal> {
        self.attempts.expecting(attempt, op)?;
        self.op_done(attempt);
        if !self.aborted(attempt) {
            then(self);
        }
        Ok(())
    }

    fn on_start(&mut self, head: CommitId) -> Result<(), Refusal> {
        if self.state != RunState::Created {
            return Err(Refusal::AlreadyStarted(self.state));
        }
        self.move_run(RunState::Running, "started");
        self.persist(RunEvent::HeadSet { head: head.clone() });
        self.head = Some(head);
        let shape = self.policy.integration;
        self.integrator.chosen = Some(shape.batch);
        let mut why = shape.describe();
        if self.policy.gate_slots_ceiling > self.policy.gate_slots {
            why.push_str(&format!(
                "; {} gate slots to start, up to {} while the CPU idles",
                self.policy.gate_slots, self.policy.gate_slots_ceiling
            ));
        }
        self.persist(RunEvent::Shaped {
            depth: shape.depth as u32,
            batch: shape.batch as u32,
            why,
        });
        Ok(())
    }

    fn set_paused(&mut self, paused: bool) -> Result<(), Refusal> {
        if self.state.is_terminal() {
            return Err(Refusal::Finished);
        }
        if self.paused == paused {
            return Err(Refusal::ClaimingAlready { paused });
        }
        self.paused = paused;
        self.persist(RunEvent::ClaimsPaused { paused });
        self.planner.bump_epoch();
        Ok(())
    }

    fn on_cancel(&mut self, scope: CancelScope) -> Result<(), Refusal> {
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
                    let live: Vec<AttemptId> = self.attempts.live.iter().copied().collect();
                    for a in live {
                        self.abort(a, Abort::CancelRun);
                    }
                }
                _ => return Err(Refusal::Finished),
            },
            CancelScope::Task(task) => {
                if let Some(a) = self.attempts.live_of(task) {
                    self.abort(a, Abort::CancelTask);
                } else if self.sched.retries.remove(&task).is_some() {
                    self.timers.disarm(Deadline::Retry(task));
                    self.move_task(
                        task,
                        TaskStatus::Canceled,
                        "canceled while waiting to retry",
                    );
                } else {
                    return Err(Refusal::NoLiveAttempt(task));
                }
            }
        }
        Ok(())
    }

    /// Fires every deadline that has passed by `now`, earliest first.
    fn fire_deadlines(&mut self, now: Timestamp) {
        while let Some(d) = self.timers.pop_due(now) {
            match d {
                Deadline::Op(a) => match self.attempts.get(a).and_then(|at| at.op()) {
                    Some(Op::Agent) => self.abort(a, Abort::Timeout("agent")),
                    Some(Op::Gate(stage)) => self.abort(a, Abort::Timeout(stage.as_str())),
                    _ => {}
                },
                Deadline::Grace(a) => {
                    if self.attempts.get(a).is_some_and(|at| at.has_process()) {
                        self.kill(a, true);
                    }
                }
                Deadline::Retry(_) | Deadline::Breaker => self.planner.bump_epoch(),
                Deadline::Planner(request) => {
                    if self.planner.waiting == Some(request) {
                        self.planner_fallback(request, "the planner timed out");
                    }
                }
            }
        }
    }

    fn begin_drain(&mut self, why: Drain, reason: &str) {
        if self.drain.is_some() {
            return;
        }
        self.drain = Some(why);
        if self.state == RunState::Running {
            self.move_run(RunState::Draining, reason);
        }
        let waiting: Vec<TaskId> = self.sched.retries.keys().copied().collect();
        for t in waiting {
            self.sched.retries.remove(&t);
            self.timers.disarm(Deadline::Retry(t));
            self.move_task(t, TaskStatus::Backlog, "released: the run is draining");
        }
    }

    /// After every input: claim what can be claimed, and finish if nothing is left.
    fn settle(&mut self) {
        self.wake_waiting();
        self.fill_gates();
        self.schedule();
        let busy = !self.attempts.live.is_empty()
            || !self.cleaning.is_empty()
            || !self.sched.claiming.is_empty();
        if busy || self.state.is_terminal() || self.state == RunState::Created {
            return;
        }
        match self.state {
            RunState::Running
                if self.sched.retries.is_empty()
                    && self.planner.waiting.is_none()
                    && (!self.paused || self.claimable(1).is_empty()) =>
            {
                // Watching, the run waits for the board to give it more.
                if self.board_asked || self.policy.watch {
                    return;
                }
                if self.board_fresh_at != Some(self.planner.epoch()) {
                    // Tasks added or unblocked a moment ago would be missed otherwise.
                    self.board_asked = true;
                    self.commands.push_back(Command::RefreshBoard);
                    return;
                }
                self.finish(RunState::Completed, "nothing left to claim");
            }
            RunState::Draining => {
                let end = match self.drain {
                    Some(Drain::Cancel) => RunState::Canceled,
                    Some(Drain::Halt) => RunState::Halted,
                    Some(Drain::Stop) | None => RunState::Completed,
                };
                self.finish(end, "drained");
            }
            _ => {}
        }
    }

    fn finish(&mut self, end: RunState, reason: &str) {
        self.move_run(end, reason);
        self.commands.push_back(Command::Finish { state: end });
    }

    fn persist(&mut self, event: RunEvent) {
        self.commands.push_back(Command::Persist(Journaled {
            at: self.now,
            event,
        }));
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
            .journaled
            .get(&task)
            .copied()
            .unwrap_or(TaskStatus::Backlog);
        transition::check_move(from, to, Actor::Orchestrator, false)
            .expect("the orchestrator only makes legal task moves");
        self.persist(RunEvent::TaskMoved {
            task,
            from,
            to,
            reason: reason.to_owned(),
        });
        self.journaled.insert(task, to);
        self.sched.set_status(task, to);
    }
}

fn infrastructure(message: String) -> FailureKind {
    FailureKind::Infrastructure { message }
}

/// What an input names, kept as ids until a refusal needs words.
#[derive(Debug, Clone, Copy)]
enum About {
    Nothing,
    Attempt(AttemptId),
    Task(TaskId),
    Request(u64),
}

impl About {
    fn words(self) -> Option<String> {
        match self {
            About::Nothing => None,
            About::Attempt(a) => Some(a.to_string()),
            About::Task(t) => Some(format!("task {t}")),
            About::Request(r) => Some(format!("request {r}")),
        }
    }
}

/// An input's kind and what it names, for the journal of refusals.
fn describe(input: &Input) -> (&'static str, About) {
    use About::{Attempt, Nothing, Request, Task};
    match input {
        Input::Start { .. } => ("start", Nothing),
        Input::BoardChanged { .. } => ("board_changed", Nothing),
        Input::Claimed { task } => ("claimed", Task(*task)),
        Input::ClaimRefused { task, .. } => ("claim_refused", Task(*task)),
        Input::PauseClaims => ("pause_claims", Nothing),
        Input::ResumeClaims => ("resume_claims", Nothing),
        Input::PlannerProposed { request, .. } => ("planner_proposed", Request(*request)),
        Input::PlannerFailed { request, .. } => ("planner_failed", Request(*request)),
        Input::WorktreeReady { attempt } => ("worktree_ready", Attempt(*attempt)),
        Input::WorktreeFailed { attempt, .. } => ("worktree_failed", Attempt(*attempt)),
        Input::AgentExited { attempt, .. } => ("agent_exited", Attempt(*attempt)),
        Input::AgentProgress { attempt, .. } => ("agent_progress", Attempt(*attempt)),
        Input::PlannerUsage { request, .. } => ("planner_usage", Request(*request)),
        Input::GateFinished { attempt, .. } => ("gate_finished", Attempt(*attempt)),
        Input::GateBroken { attempt, .. } => ("gate_broken", Attempt(*attempt)),
        Input::MergeFinished { attempt, .. } => ("merge_finished", Attempt(*attempt)),
        Input::RefUpdated { attempt, .. } => ("ref_updated", Attempt(*attempt)),
        Input::CleanedUp { attempt, .. } => ("cleaned_up", Attempt(*attempt)),
        Input::WorkFailed { attempt, .. } => ("work_failed", Attempt(*attempt)),
        Input::Cancel { scope } => match scope {
            CancelScope::Run => ("cancel", Nothing),
            CancelScope::Task(t) => ("cancel", Task(*t)),
        },
        Input::Tick => ("tick", Nothing),
        Input::CpuLoad { .. } => ("cpu_load", Nothing),
    }
}
