//! Upkeep through the front door: what finished runs left (worktrees, branches,
//! processes), the worktree pool, and old attempt logs.

use orch_validate::GcReport;

use super::Repo;
use crate::EngineError;
use crate::upkeep::cleanup::{self, CleanupOptions};
use crate::upkeep::pool::{self, PoolEntry, PoolRemoval};
use crate::upkeep::retention;

impl Repo {
    /// The cleanup this repository's configuration asks for (not forced).
    pub fn cleanup_options(&self) -> CleanupOptions {
        CleanupOptions::from_config(self.config())
    }

    /// What [`Repo::cleanup`] would remove, removing nothing.
    pub async fn cleanup_preview(
        &self,
        opts: &CleanupOptions,
    ) -> Result<cleanup::Preview, EngineError> {
        cleanup::preview(&self.store, self.root(), opts).await
    }

    /// Removes what finished runs left: worktrees, branches, stray directories and
    /// processes, keeping what the retention policy keeps.
    pub async fn cleanup(&self, opts: &CleanupOptions) -> Result<cleanup::Report, EngineError> {
        cleanup::apply(&self.store, self.root(), opts).await
    }

    /// The pooled worktrees, with what holds each.
    pub async fn pool(&self) -> Result<Vec<PoolEntry>, EngineError> {
        pool::list(&self.store).await
    }

    /// What [`Repo::remove_pool`] would remove, removing nothing.
    pub async fn pool_removal_preview(
        &self,
        opts: &CleanupOptions,
    ) -> Result<PoolRemoval, EngineError> {
        pool::removal_preview(&self.store, &self.pool_root(opts)?).await
    }

    /// Removes the pooled worktrees no run holds (`orch cleanup --pool`).
    pub async fn remove_pool(&self, opts: &CleanupOptions) -> Result<PoolRemoval, EngineError> {
        pool::remove(&self.store, self.root(), &self.pool_root(opts)?).await
    }

    /// Removes attempt logs past `[artifacts]` retention; returns what went.
    pub async fn collect_artifacts(&self) -> Result<GcReport, EngineError> {
        retention::gc_artifacts(&self.store, &self.artifacts(), &self.config().artifacts).await
    }

    /// Where the pool is: the worktree root the configuration names.
    fn pool_root(&self, opts: &CleanupOptions) -> Result<std::path::PathBuf, EngineError> {
        cleanup::worktree_root(self.root(), opts).ok_or_else(|| {
            EngineError::Config(
                "cannot find the worktree root: set HOME or XDG_DATA_HOME, or worktrees.root"
                    .into(),
            )
        })
    }
}
