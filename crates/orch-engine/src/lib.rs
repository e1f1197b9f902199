//! orch's async shell: it drives the pure [`Orchestrator`] with tokio, executing its
//! commands against git ([`orch_git`]), processes ([`orch_validate`]) and the store
//! ([`orch_store`]), and feeding the results back as inputs.
//!
//! One loop owns the orchestrator. Each turn it takes the commands the last input
//! produced and executes them in order; every run of `Persist` commands is written to
//! the store in one transaction *before* any command after it starts (write-ahead).
//! Adapter work runs on spawned tasks and reports back through a channel; the loop
//! selects over those reports, the orchestrator's next deadline, and cancellation.
//! Concurrency is bounded by the core, and again by a semaphore around agents.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod presets;
pub mod prompt;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::config::Config;
use orch_core::ports::MergeOutcome;
use orch_core::run::{
    AgentExit, AttemptId, CancelScope, Changes, Command, CommitId, FinishedAgent, Input,
    MergeResult, Orchestrator, Policy, RefResult, RunEvent, RunId, RunState, Stage, TaskSpec,
    ValidationRecord,
};
use orch_core::{Task, TaskId, TaskStatus, Timestamp};
use orch_git::{Git, GitError};
use orch_store::{ControlKind, Store, StoreError};
use orch_validate::{
    Artifacts, CancellationToken, CommandSpec, Environment, GateSpec, Kept, Outcome, Program,
    run as run_command, run_gate,
};
use tokio::sync::{Semaphore, mpsc};

/// Engine failures (a failing *task* is not one: it is part of the run).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Git failed outside an attempt (resolving the base, the integration branch).
    #[error(transparent)]
    Git(#[from] GitError),
    /// The configuration cannot run.
    #[error("{0}")]
    Config(String),
    /// The lease could not be renewed for a whole TTL; the run was stopped, since
    /// another process may have taken it over.
    #[error(
        "run {run}: the lease could not be renewed for a whole lease_ttl ({why}); this process stopped driving the run; `orch run resume {run}` goes on"
    )]
    LeaseExpired {
        /// The run.
        run: String,
        /// The last renewal's error.
        why: String,
    },
    /// The run cannot be resumed as it is.
    #[error("{0}")]
    Unresumable(String),
}

impl EngineError {
    /// True when the user can fix it (bad input, a refusal such as another process
    /// driving the run, a run that cannot be resumed as it is), rather than a failure.
    pub fn is_refusal(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_refusal(),
            EngineError::Config(_) | EngineError::Unresumable(_) => true,
            EngineError::Git(_) | EngineError::LeaseExpired { .. } => false,
        }
    }
}

/// Everything a run needs besides the store and the repository.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The resolved configuration.
    pub config: Config,
    /// Where attempt and integration worktrees go.
    pub worktree_root: PathBuf,
    /// `<repo>/.orch/artifacts`.
    pub artifacts_root: PathBuf,
    /// The agent's command template (`{prompt_file}`, `{worktree}`, `{task_id}`,
    /// `{attempt}`), run with `sh -c`.
    pub agent_command: String,
    /// Only these tasks (all claimable ones when empty).
    pub only_tasks: Vec<TaskId>,
    /// How long a base fetch may take.
    pub fetch_timeout: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// The run.
    pub run: RunId,
    /// Its final state.
    pub state: RunState,
    /// `orch/<run>/integration`.
    pub integration_branch: String,
    /// Its head.
    pub head: Option<CommitId>,
    /// The tasks the run moved, with their final status.
    pub tasks: Vec<(TaskId, TaskStatus)>,
    /// Where the logs are.
    pub artifacts: PathBuf,
    /// What resuming found and did (a takeover, leftover processes stopped, stale
    /// locks removed), for the operator; empty for a run that never crashed.
    pub notes: Vec<String>,
}

/// The engine.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    git: Arc<Git>,
    cfg: EngineConfig,
}

fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
}

/// The key under which a run's record keeps the engine settings a resume needs.
const STORED_ENGINE: &str = "engine";

/// The name of the file, beside an attempt's logs, that records how its agent ended
/// and what the engine committed, written before the core hears of it.
pub const EXIT_MARKER: &str = "agent.exit";

/// Fault injection for crash tests: with `ORCH_CRASH_AT=<point>` in its environment,
/// the process aborts (no destructors, no cleanup, like a SIGKILL) the first time the
/// engine reaches `point`. The points are the narrow windows a random kill rarely
/// hits: `agent-exit-recorded` (the agent's work is committed and its `agent.exit`
/// written, the core not yet told) and `ref-advanced` (the integration ref moved, not
/// yet journaled). Unset, this is one string comparison.
pub fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("ORCH_CRASH_AT").ok())
        .as_deref()
        == Some(point)
    {
        std::process::abort();
    }
}

/// Who drives a run, and how long its lease lasts without a heartbeat.
#[derive(Debug, Clone)]
struct Owner {
    /// `orch@<host>:<pid>:<nonce>`.
    id: String,
    ttl: Duration,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// True if a lease `owner` is an orch process on this host that no longer exists. A recycled
/// pid reads as alive, which only means waiting for the lease to expire.
fn owner_is_dead(owner: &str) -> bool {
    let Some(rest) = owner.strip_prefix("orch@") else {
        return false;
    };
    let mut parts = rest.rsplitn(3, ':');
    let (_nonce, pid, host) = (parts.next(), parts.next(), parts.next());
    match (pid.and_then(|p| p.parse::<i32>().ok()), host) {
        (Some(pid), Some(host)) if host == hostname() => !orch_validate::procs::pid_alive(pid),
        _ => false,
    }
}

/// Of `runs`, those not finished that no live process drives (their orch crashed or
/// was killed, and its lease expired or its owner is proven dead), in the same order.
/// `orch run --resume` takes the first of them.
pub async fn interrupted_runs(
    store: &Store,
    runs: &[orch_store::RunInfo],
) -> Result<Vec<RunId>, EngineError> {
    let mut out = Vec::new();
    for r in runs.iter().filter(|r| !r.state.is_terminal()) {
        let driven = store
            .lease(&r.id)
            .await?
            .is_some_and(|l| !l.expired_at(now()) && !owner_is_dead(&l.owner));
        if !driven {
            out.push(r.id.clone());
        }
    }
    Ok(out)
}

/// Writes the exit marker atomically (a temporary file, then a rename).
fn write_exit_marker(dir: &std::path::Path, f: &FinishedAgent) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{EXIT_MARKER}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec(f).expect("exit markers always serialise"),
    )?;
    std::fs::rename(&tmp, dir.join(EXIT_MARKER))
}

fn read_exit_marker(artifacts: &Artifacts, run: &RunId, a: AttemptId) -> Option<FinishedAgent> {
    let dir = artifacts.attempt_dir(run, a).ok()?;
    serde_json::from_slice(&std::fs::read(dir.join(EXIT_MARKER)).ok()?).ok()
}

/// What one turn of the loop is waiting for, per attempt, so it can be aborted.
struct Running {
    cancel: CancellationToken,
}

/// Registers a process of `attempt` that an `Abort` command can stop.
fn abortable(running: &mut HashMap<AttemptId, Running>, attempt: AttemptId) -> CancellationToken {
    let token = CancellationToken::new();
    running.insert(
        attempt,
        Running {
            cancel: token.clone(),
        },
    );
    token
}

/// A run's live state in the shell (the core holds the rest).
struct Live {
    /// Adapter results come back here.
    tx: mpsc::UnboundedSender<Input>,
    /// The board at the start of the run, for prompts and environments.
    tasks: Arc<HashMap<TaskId, Task>>,
    /// The second guard on concurrency: one permit per live agent.
    agents: Arc<Semaphore>,
    /// Processes that an abort can cancel.
    running: HashMap<AttemptId, Running>,
    /// Each attempt's base commit, from its provisioning.
    bases: HashMap<AttemptId, CommitId>,
    /// The user's prompt template, if any.
    template: Option<Arc<String>>,
    /// Every task the loop spawned. Dropping the loop (an embedder dropping the run's
    /// future) aborts them, and their process-group guards stop their processes, so
    /// nothing the run started outlives it or acts for it afterwards.
    spawned: tokio::task::JoinSet<()>,
}

impl Engine {
    /// An engine over `store` and `git`.
    pub fn new(store: Store, git: Git, cfg: EngineConfig) -> Engine {
        Engine {
            store,
            git: Arc::new(git),
            cfg,
        }
    }

    fn integration_branch(run: &RunId) -> String {
        format!("orch/{run}/integration")
    }

    fn attempt_worktree(&self, run: &RunId, a: AttemptId) -> PathBuf {
        self.cfg.worktree_root.join(&run.0).join(a.to_string())
    }

    fn integration_worktree(&self, run: &RunId) -> PathBuf {
        self.cfg.worktree_root.join(&run.0).join("integration")
    }

    /// Runs `run` to its end: creates it in the store, resolves the base, creates the
    /// integration branch, and drives the orchestrator until it finishes. Canceling
    /// `cancel` drains the run (no new claims; running processes are stopped).
    /// `progress` receives every journaled event.
    pub async fn run(
        &self,
        run: RunId,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
    ) -> Result<RunSummary, EngineError> {
        // Resolve the base first: a run that cannot start leaves no record behind.
        let git = self.git.clone();
        let (base, offline) = (
            self.cfg.config.run.base.clone(),
            self.cfg.config.run.offline,
        );
        let timeout = self.cfg.fetch_timeout;
        let resolved =
            tokio::task::spawn_blocking(move || git.resolve_base(&base, offline, timeout))
                .await
                .expect("resolving the base does not panic")?;
        let mut config_json =
            serde_json::to_value(&self.cfg.config).expect("the config always serialises");
        config_json["resolved_base"] = serde_json::json!({
            "commit": resolved.commit.0,
            "source": resolved.source,
            "fetched": resolved.fetched,
            "warning": resolved.warning,
        });
        // What a resume needs to run the same way.
        config_json[STORED_ENGINE] = serde_json::json!({
            "agent_command": self.cfg.agent_command,
            "only_tasks": self.cfg.only_tasks.iter().map(|t| t.0).collect::<Vec<_>>(),
            "worktree_root": self.cfg.worktree_root.display().to_string(),
        });
        self.store
            .create_run(&run, &config_json, "orchestrator")
            .await?;
        let owner = self.owner();
        self.store
            .acquire_lease(&run, &owner.id, owner.ttl, None)
            .await?;
        let result = self
            .start(&run, resolved.commit, cancel, progress, &owner)
            .await;
        let _ = self.store.release_lease(&run, &owner.id).await;
        result
    }

    /// The part of [`Engine::run`] that holds the lease.
    async fn start(
        &self,
        run: &RunId,
        base: CommitId,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
        owner: &Owner,
    ) -> Result<RunSummary, EngineError> {
        let branch = Self::integration_branch(run);
        if self
            .git
            .ref_target(&format!("refs/heads/{branch}"))?
            .is_none()
        {
            self.git.create_branch(&branch, &base)?;
        }
        let template = self.template()?;
        let (specs, tasks) = self.board().await?;
        let policy = Policy::from_config(&self.cfg.config);
        let mut orch = Orchestrator::new(run.clone(), policy, specs);
        let _ = orch.handle(now(), Input::Start { head: base });
        self.drive(
            run,
            orch,
            tasks,
            template,
            HashMap::new(),
            cancel,
            progress,
            owner,
        )
        .await
    }

    /// Resumes `run` after its orch stopped (a crash, a kill, a reboot): takes the
    /// run's lease (at once if its owner on this host is dead, else once it expired),
    /// stops the processes the dead owner left, removes the git locks it left, rebuilds
    /// the orchestrator from the journal, reconciles it with git (the integration
    /// ref, agents that had finished and committed), and drives the run to its end.
    /// The run's stored settings (configuration, agent command, task filter, worktree
    /// root) win over this engine's. Resuming is idempotent: a run that already
    /// finished only has its loose ends tied, and a crash during resume is resumed.
    pub async fn resume(
        &self,
        run: RunId,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
    ) -> Result<RunSummary, EngineError> {
        let info = self.store.run(&run).await?;
        let engine = self.for_stored(&info)?;
        let owner = engine.owner();
        let mut notes = Vec::new();
        let dead = self
            .store
            .lease(&run)
            .await?
            .filter(|l| owner_is_dead(&l.owner))
            .map(|l| l.owner);
        match self
            .store
            .acquire_lease(&run, &owner.id, owner.ttl, dead.as_deref())
            .await?
        {
            orch_store::Acquired::TookOver { previous, why } => {
                notes.push(format!("took the run over from {}: {why}", previous.owner))
            }
            orch_store::Acquired::Fresh | orch_store::Acquired::Renewed => {}
        }
        let result = engine
            .resume_owned(&run, &info, cancel, progress, &owner, &mut notes)
            .await;
        let _ = self.store.release_lease(&run, &owner.id).await;
        result.map(|mut s| {
            notes.append(&mut s.notes);
            s.notes = notes;
            s
        })
    }

    /// The part of [`Engine::resume`] that holds the lease.
    async fn resume_owned(
        &self,
        run: &RunId,
        info: &orch_store::RunInfo,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
        owner: &Owner,
        notes: &mut Vec<String>,
    ) -> Result<RunSummary, EngineError> {
        // The dead owner's processes first: nothing of it may still write.
        let tag = run.0.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            orch_validate::procs::stop_groups(|r| r == tag, Duration::from_secs(5))
        })
        .await
        .expect("stopping leftovers does not panic");
        let groups = stopped.terminated.len() + stopped.killed.len();
        if groups > 0 {
            notes.push(format!(
                "stopped {groups} leftover process group(s) of the run ({} needed SIGKILL)",
                stopped.killed.len()
            ));
        }
        let (git, prefix, dir) = (
            self.git.clone(),
            format!("orch/{run}/"),
            self.cfg.worktree_root.join(&run.0),
        );
        let removed = tokio::task::spawn_blocking(move || {
            let worktrees: Vec<PathBuf> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            git.clear_stale_locks(&prefix, &worktrees, Duration::from_secs(1))
        })
        .await
        .expect("clearing locks does not panic");
        for p in removed {
            notes.push(format!("removed the stale lock {}", p.display()));
        }

        let journal = self.store.run_events(run).await?;
        let snapshot = orch_core::run::RunSnapshot::from_events(&journal);
        let branch = Self::integration_branch(run);
        if snapshot.state == RunState::Created || snapshot.head.is_none() {
            // It never started: start it now from the base it resolved.
            let base = info.config["resolved_base"]["commit"]
                .as_str()
                .map(|c| CommitId(c.to_owned()))
                .ok_or_else(|| {
                    EngineError::Unresumable(format!(
                        "run {run} never started and its record has no resolved base; start a new run instead"
                    ))
                })?;
            notes.push("the run had not started; starting it".into());
            return self.start(run, base, cancel, progress, owner).await;
        }
        let actual = match self.git.ref_target(&format!("refs/heads/{branch}"))? {
            Some(c) => c,
            None if snapshot.state.is_terminal() => snapshot.head.clone().expect("checked above"),
            None => {
                return Err(EngineError::Unresumable(format!(
                    "the integration branch {branch} is gone, so orch cannot tell what it held; recreate it at the journal's head with `git branch {branch} {}`, or cancel the run with `orch run cancel {run}`",
                    snapshot.head.clone().expect("checked above")
                )));
            }
        };
        let artifacts = Artifacts::new(&self.cfg.artifacts_root);
        let mut finished = std::collections::BTreeMap::new();
        for (id, rec) in &snapshot.attempts {
            if rec.state != orch_core::run::AttemptState::Running {
                continue;
            }
            let Some(f) = read_exit_marker(&artifacts, run, *id) else {
                continue;
            };
            // Trust the marker only if the branch still holds the work it names.
            let holds = match &f.changes {
                Some(ch) => {
                    self.git
                        .ref_target(&format!("refs/heads/{}", id.branch(run)))?
                        .as_ref()
                        == Some(&ch.head)
                }
                None => true,
            };
            if holds {
                finished.insert(*id, f);
            }
        }
        let bases: HashMap<AttemptId, CommitId> = snapshot
            .attempts
            .iter()
            .map(|(id, r)| (*id, r.base.clone()))
            .collect();
        let template = self.template()?;
        let (specs, tasks) = self.board().await?;
        let policy = Policy::from_config(&self.cfg.config);
        let orch = Orchestrator::resume(
            run.clone(),
            policy,
            specs,
            &snapshot,
            actual,
            finished,
            now(),
        );
        self.drive(run, orch, tasks, template, bases, cancel, progress, owner)
            .await
    }

    /// This engine with the settings `info` was started with.
    fn for_stored(&self, info: &orch_store::RunInfo) -> Result<Engine, EngineError> {
        let mut stored = info.config.clone();
        let engine = stored
            .as_object_mut()
            .and_then(|o| {
                o.remove("resolved_base");
                o.remove(STORED_ENGINE)
            })
            .unwrap_or_default();
        let config: Config = serde_json::from_value(stored).map_err(|e| {
            EngineError::Unresumable(format!(
                "run {}: its stored configuration cannot be read by this version of orch ({e})",
                info.id
            ))
        })?;
        let mut cfg = self.cfg.clone();
        cfg.config = config;
        if let Some(c) = engine["agent_command"].as_str() {
            cfg.agent_command = c.to_owned();
        }
        if let Some(list) = engine["only_tasks"].as_array() {
            cfg.only_tasks = list.iter().filter_map(|v| v.as_i64()).map(TaskId).collect();
        }
        if let Some(root) = engine["worktree_root"].as_str() {
            cfg.worktree_root = PathBuf::from(root);
        }
        Ok(Engine {
            store: self.store.clone(),
            git: self.git.clone(),
            cfg,
        })
    }

    fn owner(&self) -> Owner {
        Owner {
            id: format!("orch@{}:{}:{:x}", hostname(), std::process::id(), now().0),
            ttl: self.cfg.config.run.lease_ttl.0.max(Duration::from_secs(1)),
        }
    }

    fn template(&self) -> Result<Option<Arc<String>>, EngineError> {
        Ok(match self.cfg.config.agent.prompt_template.trim() {
            "" => None,
            path => {
                let p = self.git.workdir().join(path);
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    EngineError::Config(format!(
                        "agent.prompt_template {}: cannot read it ({e}); give a file path relative to the repository, or leave it empty for the built-in prompt",
                        p.display()
                    ))
                })?;
                Some(Arc::new(text))
            }
        })
    }

    /// The board as the run sees it: the specs the core gets, and the tasks by id.
    async fn board(&self) -> Result<(Vec<TaskSpec>, Arc<HashMap<TaskId, Task>>), EngineError> {
        let board: Vec<Task> = self.store.tasks(&[]).await?;
        let specs: Vec<TaskSpec> = board
            .iter()
            .filter(|t| {
                self.cfg.only_tasks.is_empty()
                    || self.cfg.only_tasks.contains(&t.id)
                    || t.status == TaskStatus::Done
            })
            .map(TaskSpec::from)
            .collect();
        Ok((
            specs,
            Arc::new(board.into_iter().map(|t| (t.id, t)).collect()),
        ))
    }

    /// Drives `orch` to its end, holding the run's lease.
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &self,
        run: &RunId,
        mut orch: Orchestrator,
        tasks: Arc<HashMap<TaskId, Task>>,
        template: Option<Arc<String>>,
        bases: HashMap<AttemptId, CommitId>,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
        owner: &Owner,
    ) -> Result<RunSummary, EngineError> {
        let slots = Policy::from_config(&self.cfg.config).slots() as usize;
        let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
        let mut live = Live {
            tx,
            tasks,
            agents: Arc::new(Semaphore::new(slots)),
            running: HashMap::new(),
            bases,
            template,
            spawned: tokio::task::JoinSet::new(),
        };
        let mut cancel_sent = false;
        let mut finished = None;
        // Controls posted from elsewhere (`orch run cancel`) are polled.
        let mut controls = tokio::time::interval(Duration::from_millis(500));
        controls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The lease's heartbeat: three chances to renew before it lapses.
        let mut heartbeat = tokio::time::interval(owner.ttl / 3);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renewed = std::time::Instant::now();
        loop {
            let mut pending: Vec<RunEvent> = Vec::new();
            while let Some(cmd) = orch.poll_command() {
                match cmd {
                    Command::Persist(e) => pending.push(e),
                    Command::Finish { state } => {
                        self.flush(run, &mut pending, &progress).await?;
                        finished = Some(state);
                    }
                    other => {
                        self.flush(run, &mut pending, &progress).await?;
                        self.execute(run, other, &mut live);
                    }
                }
            }
            self.flush(run, &mut pending, &progress).await?;
            if finished.is_some() {
                break;
            }
            let wait = orch
                .poll_timeout()
                .map(|t| Duration::from_millis((t.0 - now().0).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                Some(input) = rx.recv() => {
                    if let Input::AgentExited { attempt, .. } | Input::GateFinished { attempt, .. } = &input {
                        live.running.remove(attempt);
                    }
                    let _ = orch.handle(now(), input);
                }
                _ = tokio::time::sleep(wait) => { let _ = orch.handle(now(), Input::Tick); }
                // Reap finished tasks (their results came through the channel).
                Some(_) = live.spawned.join_next(), if !live.spawned.is_empty() => {}
                _ = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    let _ = orch.handle(now(), Input::Cancel { scope: CancelScope::Run });
                }
                _ = controls.tick() => {
                    for c in self.store.pending_controls(run).await? {
                        let scope = match c.kind {
                            ControlKind::CancelRun => CancelScope::Run,
                            ControlKind::CancelTask(t) => CancelScope::Task(t),
                        };
                        let _ = orch.handle(now(), Input::Cancel { scope });
                        self.store.mark_control_handled(c.id).await?;
                    }
                }
                _ = heartbeat.tick() => {
                    let lost = match self.store.renew_lease(run, &owner.id, owner.ttl).await {
                        Ok(()) => {
                            renewed = std::time::Instant::now();
                            None
                        }
                        Err(e @ StoreError::LeaseLost { .. }) => Some(EngineError::from(e)),
                        // Unrenewed for a whole TTL, the lease may be someone else's now.
                        Err(e) if renewed.elapsed() >= owner.ttl => Some(EngineError::LeaseExpired {
                            run: run.0.clone(),
                            why: e.to_string(),
                        }),
                        // A busy database: the next beat tries again, within the TTL.
                        Err(_) => None,
                    };
                    if let Some(e) = lost {
                        // Another process may drive the run now: stop everything at once.
                        for r in live.running.values() {
                            r.cancel.cancel();
                        }
                        return Err(e);
                    }
                }
            }
        }
        // The integration worktree is orch's scratch space; the branch stays for review.
        let git = self.git.clone();
        let iwt = self.integration_worktree(run);
        let _ = tokio::task::spawn_blocking(move || {
            if iwt.exists() {
                git.remove_worktree(&iwt, true)
            } else {
                Ok(())
            }
        })
        .await;
        let state = finished.expect("the loop ends on Finish");
        let snapshot = orch.snapshot();
        Ok(RunSummary {
            integration_branch: Self::integration_branch(run),
            head: orch.head().cloned(),
            tasks: snapshot.tasks.into_iter().collect(),
            artifacts: self.cfg.artifacts_root.join(&run.0),
            run: run.clone(),
            state,
            notes: Vec::new(),
        })
    }

    /// Writes pending journal events (write-ahead) and reports them.
    async fn flush(
        &self,
        run: &RunId,
        pending: &mut Vec<RunEvent>,
        progress: &Option<mpsc::UnboundedSender<RunEvent>>,
    ) -> Result<(), EngineError> {
        if pending.is_empty() {
            return Ok(());
        }
        self.store
            .append_run_events(run, pending, "orchestrator")
            .await?;
        if let Some(p) = progress {
            for e in pending.iter() {
                let _ = p.send(e.clone());
            }
        }
        pending.clear();
        Ok(())
    }

    fn env(
        &self,
        run: &RunId,
        a: AttemptId,
        task: Option<&Task>,
        worktree: &std::path::Path,
        prompt: &std::path::Path,
        base: &str,
    ) -> Environment {
        let set = vec![
            ("ORCH_RUN_ID".into(), run.0.clone()),
            ("ORCH_TASK_ID".into(), a.task.0.to_string()),
            ("ORCH_ATTEMPT".into(), a.number.to_string()),
            ("ORCH_WORKTREE".into(), worktree.display().to_string()),
            ("ORCH_PROMPT_FILE".into(), prompt.display().to_string()),
            (
                "ORCH_TASK_TITLE".into(),
                task.map(|t| t.title.clone()).unwrap_or_default(),
            ),
            ("ORCH_BASE_COMMIT".into(), base.to_owned()),
        ];
        Environment::inherit(&self.cfg.config.agent.env_allow, set)
    }

    /// Starts one command's work; its result comes back through `tx`.
    fn execute(&self, run: &RunId, cmd: Command, live: &mut Live) {
        let tx = live.tx.clone();
        let tasks = &live.tasks;
        let running = &mut live.running;
        let bases = &mut live.bases;
        let git = self.git.clone();
        let artifacts = Artifacts::new(&self.cfg.artifacts_root);
        let cfg = self.cfg.config.clone();
        match cmd {
            Command::Persist(_) | Command::Finish { .. } => unreachable!("handled by the loop"),
            Command::Provision {
                attempt,
                branch,
                base,
            } => {
                bases.insert(attempt, base.clone());
                let path = self.attempt_worktree(run, attempt);
                tokio::task::spawn_blocking(move || {
                    let input = match git.add_worktree(&branch, &base, &path) {
                        Ok(()) => Input::WorktreeReady { attempt },
                        Err(e) => Input::WorktreeFailed {
                            attempt,
                            error: e.to_string(),
                        },
                    };
                    let _ = tx.send(input);
                });
            }
            Command::SpawnAgent {
                attempt,
                note,
                previous_failure,
            } => {
                let token = abortable(running, attempt);
                let wt = self.attempt_worktree(run, attempt);
                let task = tasks.get(&attempt.task).cloned();
                let base = bases.get(&attempt).map(|c| c.0.clone()).unwrap_or_default();
                let branch = attempt.branch(run);
                let dir = artifacts.attempt_dir(run, attempt);
                let template = self.cfg.agent_command.clone();
                let env_for = |prompt: &std::path::Path| {
                    self.env(run, attempt, task.as_ref(), &wt, prompt, &base)
                };
                let (dir, prompt_path) = match dir {
                    Ok(d) => {
                        let p = d.join("prompt.md");
                        (d, p)
                    }
                    Err(e) => {
                        let _ = tx.send(Input::AgentExited {
                            attempt,
                            exit: AgentExit::FailedToStart(e.to_string()),
                            changes: None,
                        });
                        return;
                    }
                };
                let env = env_for(&prompt_path);
                let agents = live.agents.clone();
                let prompt_template = live.template.clone();
                live.spawned.spawn(async move {
                    let _permit = agents
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    let prompt = task
                        .as_ref()
                        .map(|t| {
                            let (w, i) = (&cfg.validate.worker, &cfg.validate.integration);
                            let (n, f) = (note.as_deref(), previous_failure.as_ref());
                            match &prompt_template {
                                Some(tpl) => prompt::render_template(tpl, t, w, i, n, f),
                                None => prompt::render_prompt(t, w, i, n, f),
                            }
                        })
                        .unwrap_or_default();
                    if let Err(e) = std::fs::write(&prompt_path, prompt) {
                        let _ = tx.send(Input::AgentExited {
                            attempt,
                            exit: AgentExit::FailedToStart(format!("writing the prompt: {e}")),
                            changes: None,
                        });
                        return;
                    }
                    let line = prompt::render_command(
                        &template,
                        &prompt_path.display().to_string(),
                        &wt.display().to_string(),
                        attempt.task.0,
                        attempt.number,
                    );
                    let spec = CommandSpec {
                        program: Program::Shell(line),
                        cwd: wt.clone(),
                        env,
                        // The core's deadline decides; this is only a backstop.
                        timeout: cfg.agent.timeout.0 + Duration::from_secs(60),
                        kill_grace: Duration::from_secs(10),
                        log_path: dir.join("agent.log"),
                        log_cap: cfg.artifacts.log_cap.0,
                        stdin: None,
                        capture_stdout: None,
                    };
                    let exit = match run_command(&spec, &token, None).await {
                        Ok(r) => match r.outcome {
                            Outcome::Exited(c) => AgentExit::Code(c),
                            Outcome::Signaled(s) => AgentExit::Signal(s),
                            Outcome::TimedOut | Outcome::Canceled => AgentExit::Signal(15),
                            Outcome::FailedToStart(m) => AgentExit::FailedToStart(m),
                        },
                        Err(e) => AgentExit::FailedToStart(e.to_string()),
                    };
                    let base_id = CommitId(base);
                    let changes = tokio::task::spawn_blocking(move || {
                        git.commit_leftovers(&wt, &branch, &base_id, &format!("orch: {attempt}"))
                            .ok()
                            .filter(|l| l.branch_moved.is_none() && !l.rewrote_history)
                            .map(|l| Changes {
                                head: l.head,
                                empty: l.empty,
                            })
                    })
                    .await
                    .ok()
                    .flatten();
                    // On disk before the core hears of it: a resume after a crash in
                    // between goes on from this work instead of running the agent again.
                    let f = FinishedAgent { exit, changes };
                    let _ = write_exit_marker(&dir, &f);
                    crash_point("agent-exit-recorded");
                    let _ = tx.send(Input::AgentExited {
                        attempt,
                        exit: f.exit,
                        changes: f.changes,
                    });
                });
            }
            Command::RunGate {
                attempt,
                stage,
                commit,
            } => {
                let token = abortable(running, attempt);
                let cwd = match stage {
                    Stage::Worker => self.attempt_worktree(run, attempt),
                    Stage::Integration => self.integration_worktree(run),
                };
                let commands = match stage {
                    Stage::Worker => cfg.validate.worker.clone(),
                    Stage::Integration => cfg.validate.integration.clone(),
                };
                let log_dir = artifacts
                    .attempt_dir(run, attempt)
                    .unwrap_or_else(|_| self.cfg.artifacts_root.clone());
                let task = tasks.get(&attempt.task).cloned();
                let env = self.env(
                    run,
                    attempt,
                    task.as_ref(),
                    &cwd,
                    &log_dir.join("prompt.md"),
                    &commit.0,
                );
                let store = self.store.clone();
                let run_id = run.clone();
                live.spawned.spawn(async move {
                    if stage == Stage::Integration {
                        let (g, c, p) = (git.clone(), commit.clone(), cwd.clone());
                        let checked =
                            tokio::task::spawn_blocking(move || g.checkout_detached(&p, &c)).await;
                        if let Ok(Err(e)) | Err(e) = checked.map_err(|e| GitError::Cli {
                            command: "checkout".into(),
                            message: e.to_string(),
                        }) {
                            let _ = tx.send(Input::GateFinished {
                                attempt,
                                stage,
                                passed: false,
                                summary: format!("could not check out {commit}: {e}"),
                            });
                            return;
                        }
                    }
                    let spec = GateSpec {
                        stage,
                        commands,
                        cwd,
                        env,
                        timeout: cfg.validate.timeout.0,
                        kill_grace: Duration::from_secs(10),
                        log_dir,
                        log_cap: cfg.artifacts.log_cap.0,
                        keep_going: false,
                    };
                    let input = match run_gate(&spec, &token).await {
                        Ok(r) => {
                            // The evidence is recorded before the core hears the verdict.
                            let records: Vec<ValidationRecord> = r
                                .commands
                                .iter()
                                .map(|c| ValidationRecord {
                                    command: c.command.clone(),
                                    outcome: c.outcome.to_string(),
                                    exit_code: c.exit_code,
                                    duration_ms: c.duration.as_millis() as u64,
                                    log_path: c.log_path.display().to_string(),
                                    tail: c.tail.clone(),
                                })
                                .collect();
                            match store
                                .record_validations(&run_id, attempt, stage, &records)
                                .await
                            {
                                Ok(()) => Input::GateFinished {
                                    attempt,
                                    stage,
                                    passed: r.passed,
                                    summary: r.summary(),
                                },
                                Err(e) => Input::GateFinished {
                                    attempt,
                                    stage,
                                    passed: false,
                                    summary: format!(
                                        "the validation results could not be recorded: {e}"
                                    ),
                                },
                            }
                        }
                        Err(e) => Input::GateFinished {
                            attempt,
                            stage,
                            passed: false,
                            summary: e.to_string(),
                        },
                    };
                    let _ = tx.send(input);
                });
            }
            Command::Merge {
                attempt,
                onto,
                head,
            } => {
                let style = cfg.run.merge_style;
                tokio::task::spawn_blocking(move || {
                    let result =
                        match git.merge(&onto, &head, style, &format!("orch: merge {attempt}")) {
                            Ok(MergeOutcome::Clean { commit }) => MergeResult::Clean { commit },
                            Ok(MergeOutcome::Conflicted { conflicts }) => MergeResult::Conflict {
                                paths: conflicts.into_iter().map(|c| c.path).collect(),
                            },
                            Err(e) => MergeResult::Failed {
                                message: e.to_string(),
                            },
                        };
                    let _ = tx.send(Input::MergeFinished { attempt, result });
                });
            }
            Command::AdvanceRef {
                attempt,
                expected,
                new,
            } => {
                let reference = format!("refs/heads/{}", Self::integration_branch(run));
                tokio::task::spawn_blocking(move || {
                    let result = match git.advance_ref(&reference, &expected, &new) {
                        Ok(()) => {
                            crash_point("ref-advanced");
                            RefResult::Advanced
                        }
                        Err(GitError::LostRace {
                            actual: Some(actual),
                            ..
                        }) => RefResult::LostRace { actual },
                        Err(e) => RefResult::Failed {
                            message: e.to_string(),
                        },
                    };
                    let _ = tx.send(Input::RefUpdated { attempt, result });
                });
            }
            Command::Abort { attempt, .. } => {
                // The runner escalates from SIGTERM to SIGKILL itself.
                if let Some(r) = running.get(&attempt) {
                    r.cancel.cancel();
                }
            }
            Command::Cleanup {
                attempt,
                remove_worktree,
                delete_branch,
            } => {
                let path = self.attempt_worktree(run, attempt);
                let branch = attempt.branch(run);
                let run = run.clone();
                let store = self.store.clone();
                live.spawned.spawn(async move {
                    let (run2, artifacts2) = (run.clone(), artifacts.clone());
                    let mut errors = tokio::task::spawn_blocking(move || {
                        let mut errors = Vec::new();
                        if remove_worktree
                            && path.exists()
                            && let Err(e) = git.remove_worktree(&path, true)
                        {
                            errors.push(e.to_string());
                        }
                        if delete_branch && let Err(e) = git.delete_branch(&branch, true) {
                            errors.push(e.to_string());
                        }
                        let kept = if remove_worktree && delete_branch {
                            Kept::Succeeded
                        } else {
                            Kept::Failed
                        };
                        let _ = artifacts2.set_outcome(&run2, attempt, kept);
                        errors
                    })
                    .await
                    .unwrap_or_else(|e| vec![format!("cleanup panicked: {e}")]);
                    // The attempt's evidence: every file in its artifacts directory.
                    if let Ok(dir) = artifacts.attempt_dir(&run, attempt) {
                        let files: Vec<(String, String, u64)> = std::fs::read_dir(&dir)
                            .into_iter()
                            .flatten()
                            .flatten()
                            .filter_map(|e| {
                                let m = e.metadata().ok().filter(|m| m.is_file())?;
                                let name = e.file_name().to_string_lossy().into_owned();
                                // Dot-files (the retention marker) are orch's, not evidence.
                                if name.starts_with('.') {
                                    return None;
                                }
                                Some((name, e.path().display().to_string(), m.len()))
                            })
                            .collect();
                        if let Err(e) = store.record_artifacts(&run, attempt, &files).await {
                            errors.push(e.to_string());
                        }
                    }
                    let error = (!errors.is_empty()).then(|| errors.join("; "));
                    let _ = tx.send(Input::CleanedUp { attempt, error });
                });
            }
            Command::AskPlanner {
                request,
                claimable,
                free_slots,
            } => {
                let planner = cfg.run.planner.trim().to_owned();
                if planner.is_empty() {
                    let _ = tx.send(Input::PlannerFailed {
                        request,
                        reason: "no planner is configured".into(),
                    });
                    return;
                }
                let candidates: Vec<serde_json::Value> = claimable
                    .iter()
                    .filter_map(|id| tasks.get(id))
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id.0, "key": t.key, "title": t.title, "body": t.body,
                            "priority": t.priority, "depends_on": t.depends_on.iter().map(|d| d.0).collect::<Vec<_>>(),
                            "labels": t.labels, "touches": t.touches,
                        })
                    })
                    .collect();
                let input = serde_json::json!({
                    "run": run.0, "request": request, "free_slots": free_slots, "claimable": candidates,
                });
                let spec = CommandSpec {
                    program: Program::Shell(planner),
                    cwd: self.git.workdir().to_path_buf(),
                    env: Environment::inherit(
                        &cfg.agent.env_allow,
                        vec![("ORCH_RUN_ID".into(), run.0.clone())],
                    ),
                    // The core's own planner deadline decides; this is a backstop.
                    timeout: Duration::from_secs(90),
                    kill_grace: Duration::from_secs(2),
                    log_path: self
                        .cfg
                        .artifacts_root
                        .join(&run.0)
                        .join(format!("planner-{request}.log")),
                    log_cap: cfg.artifacts.log_cap.0,
                    stdin: Some(input.to_string().into_bytes()),
                    capture_stdout: Some(1 << 20),
                };
                live.spawned.spawn(async move {
                    let token = CancellationToken::new();
                    let input = match run_command(&spec, &token, None).await {
                        Ok(r) if r.outcome.success() => {
                            parse_proposals(r.stdout.as_deref().unwrap_or_default())
                                .map(|proposals| Input::PlannerProposed { request, proposals })
                                .unwrap_or_else(|reason| Input::PlannerFailed { request, reason })
                        }
                        Ok(r) => Input::PlannerFailed {
                            request,
                            reason: format!("the planner {}", r.outcome),
                        },
                        Err(e) => Input::PlannerFailed {
                            request,
                            reason: e.to_string(),
                        },
                    };
                    let _ = tx.send(input);
                });
            }
        }
    }
}

/// Reads a planner's answer: a JSON list of proposals, or `{"proposals": [...]}`.
pub fn parse_proposals(stdout: &[u8]) -> Result<Vec<orch_core::run::Proposal>, String> {
    let v: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| {
        format!("the planner printed invalid JSON ({e}); expected a list of proposals such as [{{\"action\": \"claim\", \"task\": 3}}]")
    })?;
    let list = match v {
        serde_json::Value::Object(mut o) if o.contains_key("proposals") => {
            o.remove("proposals").unwrap_or_default()
        }
        other => other,
    };
    serde_json::from_value(list).map_err(|e| {
        format!("the planner's proposals are not understood ({e}); each is {{\"action\": \"claim\", \"task\": ID, \"note\"?}}, {{\"action\": \"defer\", \"task\": ID, \"reason\"}} or {{\"action\": \"stop_claiming\", \"reason\"}}")
    })
}
