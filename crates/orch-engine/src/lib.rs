//! orch's engine, and its front door for embedding programs.
//!
//! orch turns a board of coding tasks into merged, validated work: it claims tasks,
//! runs an agent on each in its own git worktree, merges the branches into an
//! integration branch, and marks a task done only once its gates pass. This crate
//! drives the pure orchestrator ([`core`]) over git, processes and the store
//! ([`store`]); the `orch` CLI and its dashboard are thin frontends over it.
//!
//! # Embedding
//!
//! [`Repo`] is the way in, for the CLI, the dashboard and any other program:
//! 1. [`Repo::init`] sets orch up in a repository (`.orch/`, git-excluded; a commented
//!    `orch.toml`; the database), or [`Repo::open`] opens one set up before. Both read
//!    the configuration as `orch` does: defaults, the user's file, `orch.toml`,
//!    `ORCH_*` variables, then [`OpenOptions::set`] overrides.
//! 2. [`Repo::board`] adds, edits, moves, imports and lists tasks.
//! 3. [`Repo::start`] checks that the agent can run and that there is work, and gives
//!    a [`Run`]: [`Run::subscribe`] to its typed events ([`RunUpdate`]; each journal
//!    event names its task and attempt), [`Run::cancel`] it, and [`Run::drive`] it to
//!    its [`RunSummary`]. [`RunOptions::resume`] picks an interrupted run up.
//! 4. [`Repo::status`] and [`Repo::land`] look at and land the integration line;
//!    [`Repo::cleanup`] removes what finished runs left.
//!
//! ```
//! use orch_engine::core::task::NewTask;
//! use orch_engine::{OpenOptions, Repo, RunOptions, RunUpdate};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let root = tmp.path().join("repo");
//! # std::fs::create_dir(&root)?;
//! # for cmd in ["init -q", "-c user.name=a -c user.email=a@x.invalid commit -q --allow-empty -m init"] {
//! #     let args: Vec<&str> = cmd.split(' ').collect();
//! #     assert!(orch_engine::repo::git(&root, &args)?.status.success());
//! # }
//! // `root` is a git repository with one commit.
//! let opts = OpenOptions::default()
//!     .set("agent.command=echo hello > hello.txt")
//!     .set("worktrees.root=../worktrees");
//! let (repo, _created) = Repo::init(&root, &opts).await?;
//! let task = repo.board("human:me").add(NewTask::titled("Say hello")).await?;
//!
//! let run = repo.start(RunOptions::default()).await?;
//! let mut events = run.subscribe();
//! let watcher = tokio::spawn(async move {
//!     let mut seen = Vec::new();
//!     while let Some(update) = events.next().await {
//!         if let RunUpdate::Journal(j) = update {
//!             seen.extend(j.event.task());
//!         }
//!     }
//!     seen
//! });
//! let summary = run.drive().await?;
//! assert!(watcher.await?.contains(&task.id));
//! assert_eq!(summary.tasks, vec![(task.id, orch_engine::core::TaskStatus::Done)]);
//! repo.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Below the front door, [`Engine`] and [`run::setup`] stay public for the tests and
//! for what a run's configuration implies (the agent's command and environment); the
//! other modules are public for the types the front door returns.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod agents;
pub mod boards;
#[cfg(feature = "internals")]
pub mod driver;
#[cfg(not(feature = "internals"))]
mod driver;
pub mod error;
mod exec;
pub mod line;
#[cfg(feature = "internals")]
pub mod ports;
#[cfg(not(feature = "internals"))]
mod ports;
pub mod recover;
pub mod repo;
pub mod run;
pub mod upkeep;
pub mod workers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::config::Config;
use orch_core::run::{
    AttemptId, CommitId, Input, Orchestrator, Policy, RunEvent, RunId, RunState, TaskSpec,
};
use orch_core::{Task, TaskId, TaskStatus, Timestamp};
use orch_git::Git;
use orch_store::Store;
use orch_validate::CancellationToken;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::line::land;
use crate::line::layout;
use crate::recover::lease;
pub use agents::proposals::parse_proposals;
#[cfg(feature = "internals")]
pub use driver::{DriverSetup, RunDriver};
#[cfg(not(feature = "internals"))]
use driver::{DriverSetup, RunDriver};
pub use error::{EngineError, Idle};
/// The core's types, for frontends that reach orch only through the engine.
pub use orch_core as core;
/// The store's types, for frontends that reach orch only through the engine.
pub use orch_store as store;
pub use orch_validate::{GcReport, become_subreaper, files, stop_orphans};
pub use recover::lease::{interrupted_runs, kill_run_processes};
pub use repo::{Board, OpenError, OpenOptions, Repo, Run, RunOptions};
pub use run::handle::{Progress, RunHandle, RunUpdate, Subscription};
pub use run::steer::Canceled;
pub use run::stored::{StoredEngine, StoredRun};

/// The board's version and its tasks by id, as a run read them.
pub(crate) type BoardRead = (i64, HashMap<TaskId, Task>);

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
    /// The integration branch it advanced (`run.integration_branch`).
    pub integration_branch: String,
    /// Where the integration ref really points, read from git at the end.
    pub head: Option<CommitId>,
    /// The last head the run validated and advanced to (its journal's).
    pub validated_head: Option<CommitId>,
    /// The tasks the run moved, with their final status.
    pub tasks: Vec<(TaskId, TaskStatus)>,
    /// Its attempts, and how many of them failed (a task may fail and pass on a retry).
    pub attempts: (usize, usize),
    /// Where the logs are.
    pub artifacts: PathBuf,
    /// What resuming found and did (a takeover, leftover processes stopped, stale
    /// locks removed), for the operator; empty for a run that never crashed.
    pub notes: Vec<String>,
    /// What its agents reported using, summed.
    pub usage: orch_core::usage::Usage,
    /// Why `run.finish` could not land the work, if it could not (the work stays on
    /// the integration line; `orch land` retries).
    pub land_error: Option<String>,
    /// The integration ref holds validated work: at the run's last validated head, or
    /// past it only by other runs' validated work (a shared line).
    pub holds_validated: bool,
}

impl RunSummary {
    /// True when the integration ref is where the run left it, at validated work. When
    /// false, something outside orch moved it: do not merge it without checking.
    pub fn head_is_validated(&self) -> bool {
        self.holds_validated
    }
}

/// The engine.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    git: Arc<Git>,
    cfg: EngineConfig,
}

/// The current time, as the core is fed it: the wall clock when first asked, moved on
/// by tokio's monotonic clock since. A wall-clock jump cannot fire (or starve) the
/// core's deadlines, and tests on paused tokio time run on virtual time throughout.
pub(crate) fn now() -> Timestamp {
    static ANCHOR: std::sync::OnceLock<(i64, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall, at) = *ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (wall, tokio::time::Instant::now().into_std())
    });
    let elapsed = tokio::time::Instant::now()
        .into_std()
        .saturating_duration_since(at);
    Timestamp(wall + elapsed.as_millis() as i64)
}

/// The name of the file, beside an attempt's logs, that records how its agent ended
/// and what the engine committed, written before the core hears of it.
pub const EXIT_MARKER: &str = "agent.exit";

/// Fault injection for crash tests: with `ORCH_CRASH_AT=<point>` in its environment,
/// the process aborts (no destructors, no cleanup, like a SIGKILL) the first time the
/// engine reaches `point`. The points are the narrow windows a random kill rarely
/// hits: `pool-leased` (a pooled worktree leased to an attempt, not yet switched onto
/// its branch), `agent-exit-recorded` (the agent's work is committed and its
/// `agent.exit` written, the core not yet told) and `ref-advanced` (the integration
/// ref moved, not yet journaled). Only with the `fault-injection` feature, which the
/// tests and xtask turn on; a build without it ignores the variable.
#[cfg(feature = "fault-injection")]
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

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn crash_point(_point: &str) {}

impl Engine {
    /// The settings it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// An engine over `store` and `git`.
    pub fn new(store: Store, git: Git, cfg: EngineConfig) -> Engine {
        Engine {
            store,
            git: Arc::new(git),
            cfg,
        }
    }

    /// Runs `run` to its end (see [`Engine::run_with`]); canceling `cancel` drains it,
    /// and `progress` receives every journaled event.
    pub async fn run(
        &self,
        run: RunId,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<RunEvent>>,
    ) -> Result<RunSummary, EngineError> {
        let handle = RunHandle::with_cancel(cancel);
        let tap = forward_journal(&handle, progress);
        let r = self.run_with(run, &handle).await;
        tap.await.expect("the progress tap does not panic");
        r
    }

    /// Runs `run` to its end: creates it in the store, resolves the base, creates the
    /// integration branch, and drives the orchestrator until it finishes. `handle` is
    /// the run's event stream and controls; its run-wide cancel drains the run (no new
    /// claims; running processes are stopped).
    pub async fn run_with(
        &self,
        run: RunId,
        handle: &RunHandle,
    ) -> Result<RunSummary, EngineError> {
        let span = tracing::info_span!("run", run = %run);
        let r = self.run_inner(run, handle).instrument(span).await;
        if let Err(e) = &r {
            tracing::error!(error = %e, "the run stopped");
        }
        handle.publish(ended(&r));
        r
    }

    async fn run_inner(&self, run: RunId, handle: &RunHandle) -> Result<RunSummary, EngineError> {
        // Check what can be checked first: a run that cannot start leaves no record.
        self.check_only_tasks().await?;
        self.check_refs(&run)?;
        self.template()?;
        if !self.cfg.config.run.watch
            && let Some(idle) = self.idle().await?
        {
            return Err(EngineError::NothingToClaim(idle));
        }
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
        let result = self.start(&run, resolved.commit, handle, &owner).await;
        if let Err(e) = &result
            && recover::lease::never_started(&run, self.store.run_events(&run).await)
        {
            // It never started: it ends here, so no later run waits on it.
            self.abandon(&run, &e.to_string()).await;
        }
        let _ = self.store.release_lease(&run, &owner.id).await;
        result
    }

    /// orch's branches can be made: no branch named `orch` stands in the way of the
    /// `orch/...` namespace, the branch names are valid, and a per-run integration
    /// branch does not exist yet (it would be adopted silently otherwise).
    fn check_refs(&self, run: &RunId) -> Result<(), EngineError> {
        let cfg = &self.cfg.config.run;
        self.cfg
            .config
            .check()
            .map_err(|e| EngineError::Config(e.to_string()))?;
        if cfg.executors == orch_core::config::Executors::Workers {
            self.store.check_serves_workers()?;
            if let Err(e) = self.git.remote_ref(&cfg.remote, "HEAD") {
                return Err(EngineError::Config(format!(
                    "run.executors = \"workers\" moves branches through run.remote {:?}, which cannot be reached: {e}",
                    cfg.remote
                )));
            }
        }
        if self.git.ref_target("refs/heads/orch")?.is_some() {
            return Err(EngineError::Config(
                "a branch named `orch` exists, and orch keeps its branches under orch/...; rename it (`git branch -m orch <new-name>`) and run again".into(),
            ));
        }
        let branch = layout::integration_branch(cfg, run);
        if cfg.integration_branch.trim() == orch_core::config::PER_RUN
            && self
                .git
                .ref_target(&layout::integration_ref(cfg, run))?
                .is_some()
        {
            return Err(EngineError::Config(format!(
                "{branch} exists already, though run {run} is new; delete it (`git branch -D {branch}`) or start another run"
            )));
        }
        if let Some(worktree) = self.git.checkout_of(&layout::integration_ref(cfg, run)) {
            return Err(EngineError::Config(format!(
                "run.integration_branch {branch:?} is checked out in {}; orch moves the integration line by itself, which would leave that checkout's files behind (its next commit would undo the work); use a branch no one has checked out, such as the default \"{}\", or switch that checkout to another branch",
                worktree.display(),
                orch_core::config::DEFAULT_INTEGRATION_BRANCH
            )));
        }
        Ok(())
    }

    /// Ends a run that never started, so it is not left `created` (and interrupted).
    async fn abandon(&self, run: &RunId, why: &str) {
        let event = orch_core::run::Journaled {
            at: now(),
            event: RunEvent::RunMoved {
                from: RunState::Created,
                to: RunState::Canceled,
                reason: format!("it could not start: {why}"),
            },
        };
        let _ = self
            .store
            .append_run_events(run, std::slice::from_ref(&event), "orchestrator")
            .await;
    }

    /// The part of [`Engine::run`] that holds the lease.
    pub(crate) async fn start(
        &self,
        run: &RunId,
        base: CommitId,
        handle: &RunHandle,
        owner: &lease::Owner,
    ) -> Result<RunSummary, EngineError> {
        let head = self.open_line(run, &base, handle).await?;
        let (specs, tasks) = self.board(run).await?;
        let mut orch = Orchestrator::new(run.clone(), self.policy(), specs);
        let _ = orch.handle(now(), Input::Start { head });
        self.drive(run, orch, tasks, HashMap::new(), handle, owner)
            .await
    }

    /// `--task` names tasks on the board.
    pub(crate) async fn check_only_tasks(&self) -> Result<(), EngineError> {
        if self.cfg.only_tasks.is_empty() {
            return Ok(());
        }
        let board = self.store.tasks(&[]).await?;
        let missing: Vec<String> = self
            .cfg
            .only_tasks
            .iter()
            .filter(|t| !board.iter().any(|b| b.id == **t))
            .map(|t| t.to_string())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(EngineError::Config(format!(
            "--task {}: no such task on the board; `orch task list` shows them",
            missing.join(", ")
        )))
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

    /// The board as the run sees it: the specs the core gets, and the board's version
    /// (read first, so a change after it is noticed) with the tasks by id.
    pub(crate) async fn board(
        &self,
        run: &RunId,
    ) -> Result<(Vec<TaskSpec>, BoardRead), EngineError> {
        let version = self.store.board_version(run).await?;
        let board: Vec<Task> = self.store.tasks(&[]).await?;
        let only = &self.cfg.only_tasks;
        let specs: Vec<TaskSpec> = board
            .iter()
            .filter(|t| only.is_empty() || only.contains(&t.id) || t.status == TaskStatus::Done)
            .map(TaskSpec::from)
            .collect();
        Ok((
            specs,
            (version, board.into_iter().map(|t| (t.id, t)).collect()),
        ))
    }

    /// Drives `orch` to its end, holding the run's lease, then checks the real ref.
    pub(crate) async fn drive(
        &self,
        run: &RunId,
        orch: Orchestrator,
        (board_version, tasks): BoardRead,
        bases: HashMap<AttemptId, CommitId>,
        handle: &RunHandle,
        owner: &lease::Owner,
    ) -> Result<RunSummary, EngineError> {
        let driver = RunDriver::new(
            ports::Ports::real(self.git.clone(), self.store.clone()),
            DriverSetup {
                run: run.clone(),
                engine: self.cfg.clone(),
                owner: owner.id.clone(),
                lease_ttl: owner.ttl,
                tasks,
                board_version,
                bases,
                template: self.template()?,
            },
            orch,
            handle,
        );
        let orch = driver.drive_to_finish().await?;
        self.finish(run, &orch, handle).await
    }

    /// The run's end: its validated work lands as `run.finish` says, its scratch
    /// worktree goes, and the summary names the real ref.
    async fn finish(
        &self,
        run: &RunId,
        orch: &Orchestrator,
        handle: &RunHandle,
    ) -> Result<RunSummary, EngineError> {
        let cfg = &self.cfg.config.run;
        let reference = layout::integration_ref(cfg, run);
        let (mut notes, mut land_error) = (Vec::new(), None);
        let mut validated_head = orch.head().cloned();
        let real = self.git.ref_target(&reference)?;
        let validated = self.line_holds(orch.head(), real.as_ref()).await;
        if let Some(l) = orch_core::landing::land_at_finish(cfg, orch.state(), validated) {
            let opts = land::LandOptions {
                fast_forward: l.fast_forward,
                push: l.push,
                update_checkout: l.update_checkout,
            };
            match self.land(run, opts, handle).await {
                Ok((n, line)) => {
                    notes.extend(n.notes().cloned());
                    validated_head = Some(line);
                }
                Err(e) => land_error = Some(e.to_string()),
            }
        }
        let git = self.git.clone();
        let (root, id) = (self.cfg.worktree_root.clone(), run.clone());
        let _ = tokio::task::spawn_blocking(move || upkeep::after_run(&git, &root, &id)).await;
        notes.extend(self.retain_artifacts().await);
        let head = self.git.ref_target(&reference)?;
        let holds_validated = self
            .line_holds(validated_head.as_ref(), head.as_ref())
            .await;
        let snapshot = orch.snapshot();
        let failed = snapshot
            .attempts
            .values()
            .filter(|a| a.state.phase() == orch_core::run::AttemptPhase::Failed);
        Ok(RunSummary {
            attempts: (snapshot.attempts.len(), failed.count()),
            integration_branch: layout::integration_branch(cfg, run),
            land_error,
            holds_validated,
            head,
            validated_head,
            tasks: snapshot.tasks.into_iter().collect(),
            artifacts: self.cfg.artifacts_root.join(&run.0),
            run: run.clone(),
            usage: orch.run_usage(),
            state: orch.state(),
            notes,
        })
    }
}

/// The `Ended` item for a run's result.
fn ended(r: &Result<RunSummary, EngineError>) -> RunUpdate {
    match r {
        Ok(s) => RunUpdate::Ended {
            state: Some(s.state),
            error: None,
        },
        Err(e) => RunUpdate::Ended {
            state: None,
            error: Some(e.to_string()),
        },
    }
}

/// Forwards a handle's journal events to an old-style progress channel, until `Ended`.
fn forward_journal(
    handle: &RunHandle,
    progress: Option<mpsc::UnboundedSender<RunEvent>>,
) -> tokio::task::JoinHandle<()> {
    let mut sub = handle.subscribe();
    tokio::spawn(async move {
        while let Some(u) = sub.next().await {
            if let (RunUpdate::Journal(j), Some(p)) = (u, &progress) {
                let _ = p.send(j.event);
            }
        }
    })
}
