//! Starting a run from the front door: which run (new or resumed), the checks that
//! come before anything is claimed (the agent can run, there is work), then a [`Run`]
//! to subscribe to and drive.

use orch_core::config::Sandbox;
use orch_core::run::{CancelScope, RunId};
use orch_core::task::TaskId;

use super::Repo;
use crate::boards::mirror::Mirror;
use crate::run::setup::{self, Target};
use crate::{Engine, EngineError, RunHandle, RunSummary, Subscription};

/// What run to start.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Only these tasks (all claimable ones when empty).
    pub tasks: Vec<TaskId>,
    /// A new run, or a resumed one.
    pub target: Target,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            tasks: Vec::new(),
            target: Target::New {
                beside_interrupted: false,
            },
        }
    }
}

impl RunOptions {
    /// Only `tasks`.
    pub fn tasks(mut self, tasks: Vec<TaskId>) -> RunOptions {
        self.tasks = tasks;
        self
    }

    /// Resumes `run`, or the newest interrupted run when `None`.
    pub fn resume(mut self, run: Option<RunId>) -> RunOptions {
        self.target = Target::Resume(run);
        self
    }

    /// `target` as given.
    pub fn target(mut self, target: Target) -> RunOptions {
        self.target = target;
        self
    }
}

/// A run that passed its checks and is ready to drive: subscribe to it first, then
/// [`Run::drive`] it to its end. Its handle cancels and steers it from elsewhere.
#[derive(Debug)]
pub struct Run {
    id: RunId,
    resuming: bool,
    engine: Engine,
    handle: RunHandle,
    mirror: Option<Mirror>,
}

impl Run {
    /// The run's id.
    pub fn id(&self) -> &RunId {
        &self.id
    }

    /// Whether this resumes an interrupted run.
    pub fn is_resume(&self) -> bool {
        self.resuming
    }

    /// Its event stream from now on: typed journal events naming the task and attempt,
    /// live output and heartbeats, ending with `Ended`.
    pub fn subscribe(&self) -> Subscription {
        self.handle.subscribe()
    }

    /// Its controls (cancel, pause claims), cheap to clone.
    pub fn handle(&self) -> &RunHandle {
        &self.handle
    }

    /// Drains the run: no new claims; running agents and gates are stopped.
    pub fn cancel(&self) {
        self.handle.cancel(CancelScope::Run);
    }

    /// Drives the run to its end and returns its summary. With `board.source` set,
    /// the source is followed while it runs and synced once more at its end.
    pub async fn drive(self) -> Result<RunSummary, EngineError> {
        let following = self.mirror.map(Mirror::follow);
        let summary = if self.resuming {
            self.engine.resume_with(self.id, &self.handle).await
        } else {
            self.engine.run_with(self.id, &self.handle).await
        };
        if let Some(f) = following {
            // The run's outcome stands whether or not the source takes it now: the
            // next sync writes what this one could not.
            if let Err(e) = f.finish().await {
                tracing::warn!(error = %e, "the board's source could not be synced at the run's end");
            }
        }
        summary
    }
}

impl Repo {
    /// Prepares a run: chooses it (a new one refuses while another run is interrupted,
    /// unless asked to go beside it), checks that the agent can run, and, for a new
    /// run, that there is work to claim ([`EngineError::NothingToClaim`] otherwise).
    /// Nothing is created until [`Run::drive`].
    pub async fn start(&self, opts: RunOptions) -> Result<Run, EngineError> {
        let mirror = self
            .source()
            .map(|s| Mirror::new(s, self.store().clone(), self.actor()));
        if let Some(m) = &mirror {
            m.sync().await?;
        }
        let (id, resuming) = setup::choose_run(self.store(), &opts.target).await?;
        let engine = self.engine(opts.tasks, resuming)?;
        preflight(&engine)?;
        let watch = engine.config().config.run.watch;
        if !resuming
            && !watch
            && let Some(idle) = engine.idle().await?
        {
            return Err(EngineError::NothingToClaim(idle));
        }
        Ok(Run {
            id,
            resuming,
            engine,
            handle: RunHandle::new(),
            mirror,
        })
    }
}

/// Before anything is claimed: can the agent's sandbox and the preset's CLI run?
fn preflight(engine: &Engine) -> Result<(), EngineError> {
    let cfg = engine.config();
    if cfg.config.agent.sandbox == Sandbox::Bwrap {
        crate::agents::sandbox::check_bwrap().map_err(EngineError::Config)?;
    }
    let Some(check) = setup::agent_preflight(cfg) else {
        return Ok(());
    };
    if check.ok() {
        return Ok(());
    }
    Err(EngineError::Config(format!(
        "the {} agent cannot run, so nothing was claimed:\n  - {}\n`orch agents check` shows the details",
        check.preset,
        check.problems.join("\n  - ")
    )))
}
