//! Resuming a run whose orch stopped (a crash, a kill, a reboot): the lease taken over,
//! the dead owner's processes stopped and its git locks cleared, the journal folded and
//! reconciled with git (the integration ref, agents that had finished), then the same
//! driver goes on.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use orch_core::run::{
    AttemptId, AttemptState, CommitId, FinishedAgent, LineMoved, Orchestrator, RunId, RunSnapshot,
    RunState,
};
use orch_store::RunInfo;
use orch_validate::{Artifacts, CancellationToken};
use tokio::sync::mpsc;

use crate::line::layout;
use crate::recover::lease::{Owner, owner_is_dead};
use crate::{EXIT_MARKER, Engine, EngineError, RunHandle, RunSummary, StoredRun, now};

impl Engine {
    /// Resumes `run` after its orch stopped: takes the run's lease (at once if its
    /// owner on this host is dead, else once it expired), stops the processes the
    /// dead owner left, removes the git locks it left, rebuilds the orchestrator from
    /// the journal, reconciles it with git, and drives the run to its end. The run's
    /// stored settings win over this engine's. Resuming is idempotent: a run that
    /// already finished only has its loose ends tied, and a crash during resume is
    /// resumed.
    pub async fn resume(
        &self,
        run: RunId,
        cancel: CancellationToken,
        progress: Option<mpsc::UnboundedSender<orch_core::run::RunEvent>>,
    ) -> Result<RunSummary, EngineError> {
        let handle = RunHandle::with_cancel(cancel);
        let tap = crate::forward_journal(&handle, progress);
        let r = self.resume_with(run, &handle).await;
        tap.await.expect("the progress tap does not panic");
        r
    }

    /// [`Engine::resume`], with the run's event stream and controls in `handle`.
    pub async fn resume_with(
        &self,
        run: RunId,
        handle: &RunHandle,
    ) -> Result<RunSummary, EngineError> {
        let span = tracing::info_span!("run", run = %run, resumed = true);
        let r = tracing::Instrument::instrument(self.resume_inner(run, handle), span).await;
        handle.publish(crate::ended(&r));
        r
    }

    async fn resume_inner(
        &self,
        run: RunId,
        handle: &RunHandle,
    ) -> Result<RunSummary, EngineError> {
        let info = self.store.run(&run).await?;
        let (engine, stored) = self.for_stored(&info)?;
        let owner = engine.owner();
        let mut notes = Vec::new();
        let dead = self
            .store
            .lease(&run)
            .await?
            .filter(|l| owner_is_dead(&l.owner))
            .map(|l| l.owner);
        if let orch_store::Acquired::TookOver { previous, why } = self
            .store
            .acquire_lease(&run, &owner.id, owner.ttl, dead.as_deref())
            .await?
        {
            notes.push(format!("took the run over from {}: {why}", previous.owner));
        }
        let result = engine
            .resume_owned(&run, &stored, handle, &owner, &mut notes)
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
        stored: &StoredRun,
        handle: &RunHandle,
        owner: &Owner,
        notes: &mut Vec<String>,
    ) -> Result<RunSummary, EngineError> {
        self.clear_leftovers(run, notes).await;
        self.await_jobs(run, notes).await;
        let journal = self.store.run_events(run).await?;
        let snapshot = RunSnapshot::from_events(&journal);
        if snapshot.state == RunState::Created || snapshot.head.is_none() {
            // It never started: start it now from the base it resolved.
            let base = stored.base_commit().ok_or_else(|| {
                EngineError::Unresumable(format!(
                    "run {run} never started and its record has no resolved base; start a new run instead"
                ))
            })?;
            notes.push("the run had not started; starting it".into());
            return self.start(run, base, handle, owner).await;
        }
        self.sync_line(run, &snapshot).await?;
        self.fetch_in_flight(run, &snapshot).await;
        let cfg = &self.cfg.config.run;
        let branch = layout::integration_branch(cfg, run);
        let actual = match self.git.ref_target(&layout::integration_ref(cfg, run))? {
            Some(c) => c,
            None if snapshot.state.is_terminal() => snapshot.head.clone().expect("checked above"),
            None => {
                return Err(EngineError::Unresumable(format!(
                    "the integration branch {branch} is gone, so orch cannot tell what it held; recreate it at the journal's head with `git branch {branch} {}`, or cancel the run with `orch run cancel {run}`",
                    snapshot.head.clone().expect("checked above")
                )));
            }
        };
        let moved = self.line_moved(&snapshot, &actual).await;
        if let Some(m) = &moved {
            notes.push(format!(
                "{branch} moved on to {} while the run was down (another run landed work); the run builds on it",
                m.to.short()
            ));
        }
        let finished = match cfg.executors {
            orch_core::config::Executors::Workers => self.finished_jobs(run, &snapshot).await?,
            orch_core::config::Executors::Local => self.finished_agents(run, &snapshot)?,
        };
        let bases: HashMap<AttemptId, CommitId> = snapshot
            .attempts
            .iter()
            .map(|(id, r)| (*id, r.base.clone()))
            .collect();
        let (specs, tasks) = self.board(run).await?;
        let orch = Orchestrator::resume(
            run.clone(),
            self.policy(),
            specs,
            &snapshot,
            actual,
            moved,
            finished,
            now(),
        );
        self.drive(run, orch, tasks, bases, handle, owner).await
    }

    /// Whether a shared line moved on while the run was down, by another run's validated
    /// work (not this run's own advance, not a move outside orch), and which of this
    /// run's in-flight merges it holds.
    async fn line_moved(&self, snapshot: &RunSnapshot, actual: &CommitId) -> Option<LineMoved> {
        let head = snapshot.head.as_ref()?;
        let own = snapshot
            .attempts
            .values()
            .any(|r| r.merge.as_ref() == Some(actual));
        if head == actual || own || !self.line_holds(Some(head), Some(actual)).await {
            return None;
        }
        let landed = snapshot
            .attempts
            .iter()
            .filter(|(_, r)| !r.state.is_terminal() && r.integration_passed)
            .filter(|(_, r)| {
                r.merge
                    .as_ref()
                    .is_some_and(|m| self.git.is_ancestor(m, actual))
            })
            .map(|(id, _)| *id)
            .collect();
        Some(LineMoved {
            to: actual.clone(),
            landed,
        })
    }

    /// Stops the dead owner's processes (nothing of it may still write) and removes
    /// the git locks it left in the run's refs, its integration line's and its
    /// worktrees.
    async fn clear_leftovers(&self, run: &RunId, notes: &mut Vec<String>) {
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
        // The run's own refs, and the line it lands on: a killed orch may have left
        // the line's lock mid-advance, and every later advance would fail on it.
        let (git, prefix, line, dir) = (
            self.git.clone(),
            format!("orch/{run}/"),
            layout::integration_branch(&self.cfg.config.run, run),
            self.cfg.worktree_root.join(&run.0),
        );
        // The pooled worktrees it held, too.
        let pooled: Vec<PathBuf> = self
            .store
            .pool_slots()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|s| matches!(&s.state, orch_core::pool::SlotState::Leased(h) if h.run == run.0))
            .map(|s| s.path)
            .collect();
        let removed = tokio::task::spawn_blocking(move || {
            let mut worktrees: Vec<PathBuf> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            worktrees.extend(pooled);
            git.clear_stale_locks(&[&prefix, &line], &worktrees, Duration::from_secs(1))
        })
        .await
        .expect("clearing locks does not panic");
        for p in removed {
            notes.push(format!("removed the stale lock {}", p.display()));
        }
    }

    /// Agents that had finished, their work committed, when orch stopped: their
    /// markers and their branches' tips, for the core to judge.
    fn finished_agents(
        &self,
        run: &RunId,
        snapshot: &RunSnapshot,
    ) -> Result<BTreeMap<AttemptId, FinishedAgent>, EngineError> {
        let artifacts = Artifacts::new(&self.cfg.artifacts_root);
        let mut markers = BTreeMap::new();
        let mut heads = BTreeMap::new();
        for (id, rec) in &snapshot.attempts {
            if rec.state != AttemptState::Running {
                continue;
            }
            if let Some(f) = read_exit_marker(&artifacts, run, *id) {
                let head = self
                    .git
                    .ref_target(&format!("refs/heads/{}", id.branch(run)))?;
                heads.insert(*id, head);
                markers.insert(*id, f);
            }
        }
        Ok(orch_core::run::trusted_finished(snapshot, markers, &heads))
    }

    /// This engine with the settings `info` was started with.
    fn for_stored(&self, info: &RunInfo) -> Result<(Engine, StoredRun), EngineError> {
        let stored = StoredRun::from_json(&info.id.0, &info.config)?;
        // A run stored before a value was checked is not driven on it.
        stored.config.check().map_err(|e| {
            EngineError::Config(format!(
                "run {} was started with a setting orch no longer accepts: {e}; `orch run cancel {}` ends it, and a new run uses the current configuration",
                info.id, info.id
            ))
        })?;
        let mut cfg = self.cfg.clone();
        cfg.config = stored.config.clone();
        if !stored.engine.agent_command.is_empty() {
            cfg.agent_command = stored.engine.agent_command.clone();
        }
        cfg.only_tasks = stored.only_tasks();
        // A coordinator of workers may resume on another machine: its own worktrees.
        let workers = cfg.config.run.executors == orch_core::config::Executors::Workers;
        if let Some(root) = stored.worktree_root().filter(|_| !workers) {
            cfg.worktree_root = root;
        }
        let engine = Engine {
            store: self.store.clone(),
            git: self.git.clone(),
            cfg,
        };
        Ok((engine, stored))
    }
}

fn read_exit_marker(artifacts: &Artifacts, run: &RunId, a: AttemptId) -> Option<FinishedAgent> {
    let dir = artifacts.attempt_dir(run, a).ok()?;
    let bytes =
        orch_validate::files::read_under(artifacts.root(), &dir.join(EXIT_MARKER), 0, 1 << 20);
    serde_json::from_slice(&bytes.ok()?).ok()
}
