//! orch's async shell: it drives the pure [`Orchestrator`] with tokio, executing its
//! commands against git ([`orch_git`]), processes ([`orch_validate`]) and the store
//! ([`orch_store`]), and feeding the results back as inputs.
//!
//! - [`driver`]: the loop and the write-ahead store lane;
//! - [`cleanup`]: `orch cleanup`, planned by the core and carried out here;
//! - [`exec`]: one module per command family, each returning the `Input` it produces;
//! - [`planner`]: the planner's typed request and its parsed answer;
//! - [`lease`]: the owner, the heartbeat, interrupted runs;
//! - [`resume`]: resume and its reconciliation;
//! - [`stored`]: the typed record of how a run was started;
//! - [`layout`]: branch and worktree paths;
//! - [`error`]: the engine's errors.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod cleanup;
mod driver;
pub mod error;
mod exec;
pub mod layout;
pub mod lease;
pub mod planner;
pub mod presets;
pub mod prompt;
pub mod resume;
pub mod stored;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::config::Config;
use orch_core::run::{
    AttemptId, CommitId, Input, Journaled, Orchestrator, Policy, RunEvent, RunId, RunState, Stage,
    TaskSpec,
};
use orch_core::{Task, TaskId, TaskStatus, Timestamp};
use orch_git::Git;
use orch_store::Store;
use orch_validate::{Artifacts, CancellationToken};
use tokio::sync::{Semaphore, broadcast, mpsc};

pub use error::EngineError;
pub use lease::{interrupted_runs, kill_run_processes};
/// The core's types, for frontends that reach orch only through the engine.
pub use orch_core as core;
pub use planner::parse_proposals;
pub use stored::{StoredEngine, StoredRun};

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
    /// Where the integration ref really points, read from git at the end.
    pub head: Option<CommitId>,
    /// The last head the run validated and advanced to (its journal's).
    pub validated_head: Option<CommitId>,
    /// The tasks the run moved, with their final status.
    pub tasks: Vec<(TaskId, TaskStatus)>,
    /// Where the logs are.
    pub artifacts: PathBuf,
    /// What resuming found and did (a takeover, leftover processes stopped, stale
    /// locks removed), for the operator; empty for a run that never crashed.
    pub notes: Vec<String>,
}

impl RunSummary {
    /// True when the integration ref is where the run left it, at validated work. When
    /// false, something outside orch moved it: do not merge it without checking.
    pub fn head_is_validated(&self) -> bool {
        self.head == self.validated_head
    }
}

/// One item of a run's live event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunUpdate {
    /// A journal event, once durable.
    Journal(Journaled),
    /// A line an attempt's process printed, live (lossy for slow readers).
    Output {
        /// The attempt.
        attempt: AttemptId,
        /// The gate, or `None` for the agent.
        stage: Option<Stage>,
        /// The line, without its newline.
        line: String,
    },
}

/// How many updates a slow subscriber may fall behind before it loses some.
const UPDATES: usize = 1024;

/// The engine.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    git: Arc<Git>,
    cfg: EngineConfig,
    updates: broadcast::Sender<RunUpdate>,
}

/// The current time, as the core is fed it.
pub(crate) fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
}

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

impl Engine {
    /// An engine over `store` and `git`.
    pub fn new(store: Store, git: Git, cfg: EngineConfig) -> Engine {
        Engine {
            store,
            git: Arc::new(git),
            cfg,
            updates: broadcast::channel(UPDATES).0,
        }
    }

    /// The live event stream of the runs this engine drives: durable journal events
    /// and attempts' output lines. Lossy for a reader that falls behind.
    pub fn subscribe(&self) -> broadcast::Receiver<RunUpdate> {
        self.updates.subscribe()
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
        let record = StoredRun::new(
            self.cfg.config.clone(),
            &resolved,
            StoredEngine {
                agent_command: self.cfg.agent_command.clone(),
                only_tasks: self.cfg.only_tasks.iter().map(|t| t.0).collect(),
                worktree_root: self.cfg.worktree_root.display().to_string(),
            },
        );
        self.store
            .create_run(&run, &record.to_json(), "orchestrator")
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
    pub(crate) async fn start(
        &self,
        run: &RunId,
        base: CommitId,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
        owner: &lease::Owner,
    ) -> Result<RunSummary, EngineError> {
        let branch = layout::integration_branch(run);
        if self
            .git
            .ref_target(&layout::integration_ref(run))?
            .is_none()
        {
            self.git.create_branch(&branch, &base)?;
        }
        let (specs, tasks) = self.board().await?;
        let mut orch = Orchestrator::new(run.clone(), self.policy(), specs);
        let _ = orch.handle(now(), Input::Start { head: base });
        self.drive(run, orch, tasks, HashMap::new(), cancel, progress, owner)
            .await
    }

    pub(crate) fn policy(&self) -> Policy {
        Policy::from_config(&self.cfg.config)
    }

    pub(crate) fn owner(&self) -> lease::Owner {
        lease::Owner::this_process(self.cfg.config.run.lease_ttl.0)
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
    pub(crate) async fn board(
        &self,
    ) -> Result<(Vec<TaskSpec>, HashMap<TaskId, Task>), EngineError> {
        let board: Vec<Task> = self.store.tasks(&[]).await?;
        let only = &self.cfg.only_tasks;
        let specs: Vec<TaskSpec> = board
            .iter()
            .filter(|t| only.is_empty() || only.contains(&t.id) || t.status == TaskStatus::Done)
            .map(TaskSpec::from)
            .collect();
        Ok((specs, board.into_iter().map(|t| (t.id, t)).collect()))
    }

    /// Drives `orch` to its end, holding the run's lease, then checks the real ref.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn drive(
        &self,
        run: &RunId,
        orch: Orchestrator,
        tasks: HashMap<TaskId, Task>,
        bases: HashMap<AttemptId, CommitId>,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
        owner: &lease::Owner,
    ) -> Result<RunSummary, EngineError> {
        let policy = self.policy();
        let ctx = Arc::new(exec::Ctx {
            run: run.clone(),
            store: self.store.clone(),
            git: self.git.clone(),
            cfg: self.cfg.clone(),
            agents: Arc::new(Semaphore::new(policy.slots() as usize)),
            policy,
            artifacts: Artifacts::new(&self.cfg.artifacts_root),
            tasks: RwLock::new(Arc::new(tasks)),
            template: self.template()?,
            updates: self.updates.clone(),
        });
        let driver = driver::Driver::new(
            ctx,
            orch,
            owner.clone(),
            self.cfg.only_tasks.clone(),
            bases,
            progress,
        );
        let orch = driver.drive(cancel).await?;
        self.finish(run, &orch).await
    }

    /// The run's end: its scratch worktree goes, and the summary names the real ref.
    async fn finish(&self, run: &RunId, orch: &Orchestrator) -> Result<RunSummary, EngineError> {
        // The integration worktree is orch's scratch space; the branch stays for review.
        let git = self.git.clone();
        let iwt = layout::integration_worktree(&self.cfg.worktree_root, run);
        let _ = tokio::task::spawn_blocking(move || {
            if iwt.exists() {
                git.remove_worktree(&iwt, true)
            } else {
                Ok(())
            }
        })
        .await;
        let head = self.git.ref_target(&layout::integration_ref(run))?;
        let snapshot = orch.snapshot();
        Ok(RunSummary {
            integration_branch: layout::integration_branch(run),
            head,
            validated_head: orch.head().cloned(),
            tasks: snapshot.tasks.into_iter().collect(),
            artifacts: self.cfg.artifacts_root.join(&run.0),
            run: run.clone(),
            state: orch.state(),
            notes: Vec::new(),
        })
    }
}
