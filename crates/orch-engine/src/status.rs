//! `orch status` and `orch land` outside a run: the integration line, how far it is
//! ahead of the base and of the target, which tasks it holds (read back from the
//! `Orch-Task` trailers of its commits), and landing it by hand.

use orch_core::run::{CommitId, RunId};

use crate::{Engine, EngineError, RunHandle, land::LandOptions, layout};

/// One branch compared with the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// The branch (or revision).
    pub name: String,
    /// Its head.
    pub head: CommitId,
    /// Commits the line has that it lacks.
    pub ahead: u64,
    /// Tasks (keys) the line holds that it lacks, newest first.
    pub tasks: Vec<String>,
}

/// The integration line, as `orch status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineStatus {
    /// The line's branch.
    pub branch: String,
    /// Its head; `None` before the first run.
    pub head: Option<CommitId>,
    /// Compared with `run.base`.
    pub base: Option<Behind>,
    /// Compared with the target branch, when one can be named.
    pub target: Option<Behind>,
}

impl Engine {
    /// The newest run, whose journal a landing by hand is recorded in.
    async fn newest_run(&self) -> Result<Option<RunId>, EngineError> {
        Ok(self.store.runs().await?.into_iter().next().map(|r| r.id))
    }

    /// Where the line stands against the base and the target.
    pub async fn status(&self) -> Result<LineStatus, EngineError> {
        let cfg = &self.cfg.config.run;
        let run = self.newest_run().await?.unwrap_or(RunId(String::new()));
        let branch = layout::integration_branch(cfg, &run);
        let head =
            match run.0.is_empty() && cfg.integration_branch.trim() == orch_core::config::PER_RUN {
                true => None,
                false => self.git.ref_target(&layout::integration_ref(cfg, &run))?,
            };
        let compare =
            |name: String, other: Option<CommitId>| -> Result<Option<Behind>, EngineError> {
                let (Some(h), Some(o)) = (&head, other) else {
                    return Ok(None);
                };
                Ok(Some(Behind {
                    ahead: self.git.count_ahead(&o, h)?,
                    tasks: self.git.tasks_between(&o, h)?,
                    name,
                    head: o,
                }))
            };
        let base = compare(cfg.base.clone(), self.git.rev_parse(&cfg.base).ok())?;
        let target = match self.target_name() {
            Some(t) => compare(t.clone(), self.git.ref_target(&format!("refs/heads/{t}"))?)?,
            None => None,
        };
        Ok(LineStatus {
            branch,
            head,
            base,
            target,
        })
    }

    pub(crate) fn target_name(&self) -> Option<String> {
        let cfg = &self.cfg.config.run;
        match cfg.target.is_empty() {
            false => Some(cfg.target.clone()),
            true => self.git.branch_of(&cfg.base),
        }
    }

    /// `orch land`: lands the line as `opts` ask, recorded in the newest run's journal.
    pub async fn land_now(&self, opts: LandOptions) -> Result<Vec<String>, EngineError> {
        let run = self.newest_run().await?.ok_or_else(|| {
            EngineError::Config(
                "nothing to land: no run has built an integration line yet; `orch run` does".into(),
            )
        })?;
        let handle = RunHandle::new();
        let notes = self.land(&run, opts, &handle).await.map(|(n, _)| n);
        let iwt = layout::integration_worktree(&self.cfg.worktree_root, &run);
        if iwt.exists() {
            let git = self.git.clone();
            let _ = tokio::task::spawn_blocking(move || git.remove_worktree(&iwt, true)).await;
        }
        notes
    }
}
