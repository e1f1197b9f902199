//! The run driver: one loop owns the [`Orchestrator`] and executes its commands in
//! order. Journal writes (and claims) go through one store lane, written ahead of any
//! command after them; while a write waits on a busy store (with backoff, up to
//! `run.store_patience`), the loop goes on taking adapter results, so agents are never
//! stalled and a batch is never half-applied. The lane also polls the board (a change
//! becomes `BoardChanged`) and the controls table, in order with the writes, so what
//! it reads is never older than what the core already wrote.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use std::sync::RwLock;

use orch_core::run::{
    AttemptId, CancelScope, Command, CommitId, Handled, Input, Journaled, Orchestrator, Policy,
    RunId, RunState, TaskSpec,
};
use orch_core::{Task, TaskId, TaskStatus};
use orch_store::ControlKind;
use orch_validate::Artifacts;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::exec::{self, Ctx, Stop};

mod cpu;
mod lane;
use crate::ports::Ports;
use crate::recover::lease::{self, Owner};
use crate::run::handle::Steer;
use crate::{EngineConfig, EngineError, Progress, RunHandle, RunUpdate, now};
use lane::{Done, Lane, LaneFuture, run_lane, take_writes};

/// What a driver needs besides its ports and the orchestrator.
#[derive(Debug, Clone)]
pub struct DriverSetup {
    /// The run.
    pub run: RunId,
    /// The engine's settings for it.
    pub engine: EngineConfig,
    /// The lease owner this process drives it as.
    pub owner: String,
    /// The lease's TTL (renewed every third of it).
    pub lease_ttl: Duration,
    /// The board as last read, for prompts.
    pub tasks: HashMap<TaskId, Task>,
    /// The board's version when it was read: claims are decided on it.
    pub board_version: i64,
    /// Attempts' base commits known from the journal (a resume).
    pub bases: HashMap<AttemptId, CommitId>,
    /// The user's prompt template, if any.
    pub template: Option<Arc<String>>,
}

/// Drives one run's orchestrator to its end over its [`Ports`].
pub struct RunDriver {
    ctx: Arc<Ctx>,
    orch: Orchestrator,
    owner: Owner,
    outbox: VecDeque<Command>,
    /// Claims, in the order the core made them, each with the board version it was
    /// decided on (the store refuses it if the task changed since). They take the
    /// lane only when nothing else waits, all those waiting in one store call: work
    /// already claimed goes on first, and a burst of 64 claims at a run's start is
    /// one transaction, not 64 that each the next start waits behind. Nothing a
    /// claim's answer starts is in the outbox before the claim is answered.
    claims: VecDeque<(TaskId, Journaled, i64)>,
    lane: Option<LaneFuture>,
    /// Every piece of work the run spawned. Dropping the driver (an embedder dropping
    /// the run's future) aborts them, and their process-group guards stop their
    /// processes, so nothing the run started outlives it or acts for it afterwards.
    work: JoinSet<Option<Input>>,
    /// What each piece of work in `work` was started for, so that one that panics is
    /// answered with its failure instead of leaving the core waiting for ever.
    owners: HashMap<tokio::task::Id, WorkFor>,
    stops: HashMap<AttemptId, Stop>,
    bases: HashMap<AttemptId, CommitId>,
    /// Each attempt's diagnostic span; its commands' spans are children of it.
    spans: HashMap<AttemptId, tracing::Span>,
    board_seen: i64,
    board_due: bool,
    controls_due: bool,
    beats: u64,
    /// The machine's load, sampled when gate slots follow it.
    cpu: Option<cpu::CpuLoad>,
    finished: Option<RunState>,
    handle: RunHandle,
    steer: Option<mpsc::UnboundedReceiver<Steer>>,
    /// What running work reports before it ends (an agent's usage so far).
    live: mpsc::UnboundedReceiver<Input>,
    /// Notifications on their way; the run's end waits for them (10 s at most).
    notices: JoinSet<()>,
}

impl RunDriver {
    /// A driver for `orch` over `ports`, publishing to and steered by `handle`.
    pub fn new(
        ports: Ports,
        setup: DriverSetup,
        orch: Orchestrator,
        handle: &RunHandle,
    ) -> RunDriver {
        let policy = Policy::from_config(&setup.engine.config);
        let cpu = (policy.gate_slots_ceiling > policy.gate_slots).then(cpu::CpuLoad::default);
        let (live_tx, live) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            live: live_tx,
            run: setup.run,
            journal: ports.journal,
            git: ports.git,
            procs: ports.procs,
            agents: Arc::new(Semaphore::new(policy.slots() as usize)),
            provisions: crate::exec::provisions(),
            policy,
            artifacts: Artifacts::new(&setup.engine.artifacts_root),
            cfg: setup.engine,
            tasks: RwLock::new(Arc::new(setup.tasks)),
            template: setup.template,
            handle: handle.clone(),
            integration_slots: Default::default(),
            slots: Default::default(),
            releasing: Default::default(),
            cold: Default::default(),
            process_tag: None,
            job_changes: Default::default(),
        });
        RunDriver {
            ctx,
            orch,
            owner: Owner {
                id: setup.owner,
                ttl: setup.lease_ttl,
            },
            outbox: VecDeque::new(),
            claims: VecDeque::new(),
            lane: None,
            work: JoinSet::new(),
            owners: HashMap::new(),
            stops: HashMap::new(),
            bases: setup.bases,
            spans: HashMap::new(),
            board_seen: setup.board_version,
            // The board is read at once: it may have changed since the run's snapshot
            // of it (a resume, a slow start).
            board_due: true,
            controls_due: false,
            beats: 0,
            cpu,
            finished: None,
            handle: handle.clone(),
            steer: handle.take_steer(),
            live,
            notices: JoinSet::new(),
        }
    }

    /// Runs the loop until the core finishes; the handle's cancel drains the run.
    /// Returns the finished orchestrator, or the error that stopped the driver (the
    /// run is then resumable). For the port tests: the engine drives with
    /// `drive_to_finish`, and publishes the end itself.
    #[cfg(feature = "internals")]
    pub async fn drive(self) -> Result<Orchestrator, EngineError> {
        let handle = self.handle.clone();
        let r = self.run_loop().await;
        handle.publish(match &r {
            Ok(o) => RunUpdate::Ended {
                state: Some(o.state()),
                error: None,
            },
            Err(e) => RunUpdate::Ended {
                state: None,
                error: Some(e.to_string()),
            },
        });
        r
    }

    /// [`RunDriver::drive`] without its `Ended`: the engine publishes that after the
    /// run's finish (landing, retention), whose journal events come first.
    pub(crate) async fn drive_to_finish(self) -> Result<Orchestrator, EngineError> {
        self.run_loop().await
    }

    async fn run_loop(mut self) -> Result<Orchestrator, EngineError> {
        let cancel = self.handle.cancel_token();
        self.ctx.adopt_pool().await;
        let mut steer = self.steer.take();
        // Requests made before the run was driven come first: a run paused before it
        // starts claims nothing.
        while let Some(s) = steer.as_mut().and_then(|r| r.try_recv().ok()) {
            self.feed(steered(s));
        }
        let (lost_tx, mut lost) = mpsc::unbounded_channel();
        let beat = lease::heartbeat(
            self.ctx.journal.clone(),
            self.ctx.run.clone(),
            self.owner.clone(),
            lost_tx,
        );
        self.work.spawn(async move {
            beat.await;
            None
        });
        let mut cancel_sent = false;
        // Board changes and controls posted from elsewhere are polled.
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while let Some(c) = self.orch.poll_command() {
                match c {
                    Command::Claim { task, event } => {
                        self.claims.push_back((task, event, self.board_seen));
                    }
                    c => self.outbox.push_back(c),
                }
            }
            self.dispatch();
            let idle = self.lane.is_none() && self.outbox.is_empty() && self.claims.is_empty();
            if self.finished.is_some() && idle {
                // Whatever the run still holds of the pool goes back: it is over.
                self.ctx.release_pool().await;
                let notices = async { while self.notices.join_next().await.is_some() {} };
                let _ = tokio::time::timeout(Duration::from_secs(10), notices).await;
                return Ok(self.orch);
            }
            let wait = self
                .orch
                .poll_timeout()
                .map(|t| Duration::from_millis((t.0 - now().0).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                // What work reports while it runs comes before its end: an agent's
                // last progress is sent before its exit is.
                biased;
                Some(input) = self.live.recv() => self.feed(input),
                done = async { self.lane.as_mut().expect("guarded").await }, if self.lane.is_some() => {
                    self.lane = None;
                    match done {
                        Ok(d) => self.landed(d),
                        Err(e) => return Err(self.stop_all(e)),
                    }
                }
                Some(joined) = self.work.join_next_with_id(), if !self.work.is_empty() => {
                    self.joined(joined);
                }
                _ = tokio::time::sleep(wait) => self.feed(Input::Tick),
                _ = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    self.feed(Input::Cancel { scope: CancelScope::Run });
                }
                _ = poll.tick() => {
                    self.board_due = true;
                    self.controls_due = true;
                    self.beat();
                }
                Some(s) = async { steer.as_mut()?.recv().await }, if steer.is_some() => {
                    self.feed(steered(s));
                }
                Some(e) = lost.recv() => return Err(self.stop_all(e)),
            }
        }
    }

    /// A piece of work ended: its input goes to the core. One that panicked is its
    /// command's failure, orch's own (an attempt's operation fails as
    /// `infrastructure`), so nothing waits on it for ever.
    fn joined(&mut self, joined: Result<(tokio::task::Id, Option<Input>), tokio::task::JoinError>) {
        let (id, result) = match joined {
            Ok((id, input)) => (id, Ok(input)),
            Err(e) => (e.id(), Err(e)),
        };
        let owner = self.owners.remove(&id);
        let e = match result {
            Ok(Some(input)) => return self.feed(input),
            Ok(None) => return,
            Err(e) => e,
        };
        if !e.is_panic() {
            return;
        }
        let why = panic_words(e.into_panic());
        tracing::error!(%why, ?owner, "a piece of the run's work panicked");
        match owner {
            Some(WorkFor::Op(attempt)) => {
                self.stops.remove(&attempt);
                self.feed(Input::WorkFailed { attempt, why });
            }
            Some(WorkFor::Cleanup(attempt)) => self.feed(Input::CleanedUp {
                attempt,
                error: Some(format!("the cleanup panicked: {why}")),
            }),
            Some(WorkFor::Planner(request)) => self.feed(Input::PlannerFailed {
                request,
                reason: format!("asking the planner panicked: {why}"),
            }),
            None => {}
        }
    }

    /// Another process may drive the run now, or the store is gone: stop every process
    /// at once. The run stays resumable.
    fn stop_all(&mut self, e: EngineError) -> EngineError {
        for s in self.stops.values() {
            s.term.cancel();
            s.kill.cancel();
        }
        self.work.abort_all();
        e
    }

    fn feed(&mut self, input: Input) {
        if let Input::AgentExited { attempt, .. }
        | Input::GateFinished { attempt, .. }
        | Input::GateBroken { attempt, .. } = &input
        {
            self.stops.remove(attempt);
        }
        let name = tracing::enabled!(tracing::Level::DEBUG).then(|| format!("{input:?}"));
        if let Some(name) = &name {
            tracing::debug!(input = %name, "input");
        }
        // A refusal is journaled by the core itself; here it is only a diagnostic.
        if let Handled::Refused(why) = self.orch.handle(now(), input) {
            tracing::debug!(%why, "input refused");
        }
    }

    /// Executes commands from the front of the outbox until one must wait for the lane.
    fn dispatch(&mut self) {
        while self.lane.is_none() {
            match self.outbox.front() {
                None => break,
                Some(Command::Persist(_)) => {
                    let batch = take_writes(&mut self.outbox);
                    self.start(Lane::Write(batch));
                }
                Some(Command::RefreshBoard) => {
                    self.outbox.pop_front();
                    self.start(Lane::Board { fresh: true });
                }
                Some(Command::Finish { state }) => {
                    self.finished = Some(*state);
                    self.outbox.pop_front();
                }
                Some(_) => {
                    let cmd = self.outbox.pop_front().expect("just seen");
                    self.execute(cmd);
                }
            }
        }
        self.merge_ahead();
        if self.lane.is_none() && self.outbox.is_empty() && !self.claims.is_empty() {
            let claims = self.claims.drain(..).collect();
            self.start(Lane::Claims(claims));
        }
        if self.lane.is_none() && self.finished.is_none() {
            if std::mem::take(&mut self.board_due) {
                self.start(Lane::Board { fresh: false });
            } else if std::mem::take(&mut self.controls_due) {
                self.start(Lane::Controls);
            }
        }
    }

    /// Starts the merges waiting behind a write. A merge writes only a commit and the
    /// candidate's pin, which no journal entry names until its `MergeWritten` is
    /// written (and a run's pins go with it): nothing ahead of it needs to be durable
    /// first. So the integration queue's merges follow each other at the pace of the
    /// merges, not of the writes between them (64 at a run's end once took 12 ms
    /// each, half of it waiting for the store).
    fn merge_ahead(&mut self) {
        while let Some(i) = self
            .outbox
            .iter()
            .position(|c| matches!(c, Command::Merge { .. }))
        {
            let merge = self.outbox.remove(i).expect("just found");
            self.execute(merge);
        }
    }

    fn start(&mut self, op: Lane) {
        let (ctx, seen) = (self.ctx.clone(), self.board_seen);
        self.lane = Some(Box::pin(run_lane(ctx, op, seen)));
    }

    /// A lane operation came back: report what was written, feed what was learned.
    fn landed(&mut self, done: Done) {
        match done {
            Done::Written(events) => self.publish(&events),
            Done::Claims(answers) => {
                for (task, answer) in answers {
                    match answer {
                        Ok(event) => {
                            self.publish(std::slice::from_ref(&event));
                            self.feed(Input::Claimed { task });
                        }
                        Err(why) => {
                            // Someone moved or changed the task: the board is worth a
                            // look now.
                            self.board_due = true;
                            self.feed(Input::ClaimRefused { task, why })
                        }
                    }
                }
            }
            Done::Board(None) => {}
            Done::Board(Some((version, tasks))) => {
                self.board_seen = version;
                let specs = self.specs(&tasks);
                self.ctx
                    .set_tasks(tasks.into_iter().map(|t| (t.id, t)).collect());
                self.feed(Input::BoardChanged { tasks: specs });
            }
            Done::Controls(controls) => {
                for c in controls {
                    self.feed(match c.kind {
                        ControlKind::CancelRun => Input::Cancel {
                            scope: CancelScope::Run,
                        },
                        ControlKind::CancelTask(t) => Input::Cancel {
                            scope: CancelScope::Task(t),
                        },
                        ControlKind::PauseClaims => Input::PauseClaims,
                        ControlKind::ResumeClaims => Input::ResumeClaims,
                    });
                }
            }
        }
    }

    /// The board as the core sees it: the `--task` filter applied (done tasks stay, for
    /// dependencies).
    fn specs(&self, tasks: &[Task]) -> Vec<TaskSpec> {
        tasks
            .iter()
            .filter(|t| {
                let only = &self.ctx.cfg.only_tasks;
                only.is_empty() || only.contains(&t.id) || t.status == TaskStatus::Done
            })
            .map(TaskSpec::from)
            .collect()
    }

    fn publish(&mut self, events: &[Journaled]) {
        let notify = self.ctx.cfg.config.notify.is_set();
        for e in events {
            self.handle.publish(RunUpdate::Journal(e.clone()));
            if notify && orch_core::notify::notifies(&e.event) {
                let send = crate::run::notify::send(self.ctx.clone(), e.clone());
                self.notices.spawn(send);
            }
        }
    }

    /// Every other poll tick (about once a second): where the run stands, and the
    /// machine's load when gate slots follow it.
    fn beat(&mut self) {
        self.beats += 1;
        if self.beats.is_multiple_of(2) {
            if let Some(cpu) = self.cpu.as_mut()
                && let Some(busy) = cpu.sample(self.ctx.procs.cpu_times())
            {
                self.feed(Input::CpuLoad { busy });
            }
            self.handle.publish(RunUpdate::Heartbeat(Progress {
                at: now(),
                state: self.orch.state(),
                live_attempts: self.orch.live_attempts(),
                paused: self.orch.is_paused(),
            }));
        }
    }

    /// Starts one command's work in the run's `JoinSet`; an abort signals at once.
    fn execute(&mut self, cmd: Command) {
        let stop = match &cmd {
            Command::Abort { attempt, hard } => {
                // The core decides when SIGKILL follows SIGTERM; the runner has no grace.
                if let Some(s) = self.stops.get(attempt) {
                    if *hard {
                        s.kill.cancel()
                    } else {
                        s.term.cancel()
                    }
                }
                return;
            }
            Command::Provision { attempt, base, .. } => {
                self.bases.insert(*attempt, base.clone());
                Stop::default()
            }
            Command::SpawnAgent { attempt, .. } | Command::RunGate { attempt, .. } => {
                self.stop_for(*attempt)
            }
            _ => Stop::default(),
        };
        let base = match &cmd {
            Command::SpawnAgent { attempt, .. } => self.bases.get(attempt).cloned(),
            _ => None,
        };
        let span = self.span_for(&cmd);
        let owner = WorkFor::of(&cmd);
        let work = exec::work(self.ctx.clone(), cmd, stop, base);
        let spawned = self.work.spawn(
            async move {
                tracing::info!("started");
                let input = work.await;
                tracing::debug!(?input, "finished");
                input
            }
            .instrument(span),
        );
        if let Some(o) = owner {
            self.owners.insert(spawned.id(), o);
        }
    }

    /// The span of a command: a child of its attempt's span, or of the run's.
    fn span_for(&mut self, cmd: &Command) -> tracing::Span {
        let Some(a) = cmd.attempt() else {
            return tracing::info_span!("command", kind = cmd.name());
        };
        let attempt = self
            .spans
            .entry(a)
            .or_insert_with(|| tracing::info_span!("attempt", attempt = %a))
            .clone();
        if matches!(cmd, Command::Cleanup { .. }) {
            self.spans.remove(&a);
        }
        tracing::info_span!(parent: &attempt, "command", kind = cmd.name())
    }

    fn stop_for(&mut self, attempt: AttemptId) -> Stop {
        let stop = Stop::default();
        self.stops.insert(attempt, stop.clone());
        stop
    }
}

/// What a piece of work was started for.
#[derive(Debug, Clone, Copy)]
enum WorkFor {
    /// An attempt's operation: provisioning, its agent, a gate, a merge, a ref update.
    Op(AttemptId),
    Cleanup(AttemptId),
    Planner(u64),
}

impl WorkFor {
    fn of(cmd: &Command) -> Option<WorkFor> {
        Some(match cmd {
            Command::Provision { attempt, .. }
            | Command::SpawnAgent { attempt, .. }
            | Command::RunGate { attempt, .. }
            | Command::Merge { attempt, .. }
            | Command::AdvanceRef { attempt, .. } => WorkFor::Op(*attempt),
            Command::Cleanup { attempt, .. } => WorkFor::Cleanup(*attempt),
            Command::AskPlanner { request, .. } => WorkFor::Planner(*request),
            _ => return None,
        })
    }
}

/// A panic's message, as far as it is text.
fn panic_words(p: Box<dyn std::any::Any + Send>) -> String {
    let words = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned());
    format!(
        "it panicked: {}",
        words.unwrap_or_else(|| "(no message)".into())
    )
}

/// The core's input for a steering request.
fn steered(s: Steer) -> Input {
    match s {
        Steer::CancelTask(t) => Input::Cancel {
            scope: CancelScope::Task(t),
        },
        Steer::Pause => Input::PauseClaims,
        Steer::Resume => Input::ResumeClaims,
    }
}
