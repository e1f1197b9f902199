//! Artifact retention, run at the end of every run and by `orch cleanup`: the newest
//! `artifacts.keep_runs` runs' logs stay, failed attempts' for twice as many runs, and
//! all of it within `artifacts.max_bytes` (the core's `plan_artifacts` decides; runs not
//! yet finished are never touched).

use std::collections::BTreeSet;
use std::path::Path;

use orch_core::config::ArtifactsConfig;
use orch_core::run::RunId;
use orch_store::Store;
use orch_validate::{Artifacts, GcReport, Retention};

use crate::{Engine, EngineError};
use orch_core::units::ByteSize;

/// Failed attempts' logs stay for this many times `artifacts.keep_runs` runs.
pub const FAILED_FACTOR: u32 = 2;

/// Applies `[artifacts]` retention to the artifacts under `root`.
pub async fn gc_artifacts(
    store: &Store,
    root: &Path,
    cfg: &ArtifactsConfig,
) -> Result<GcReport, EngineError> {
    let live: BTreeSet<RunId> = store
        .runs()
        .await?
        .into_iter()
        .filter(|r| !r.state.is_terminal())
        .map(|r| r.id)
        .collect();
    let retention = Retention {
        keep_runs: cfg.keep_runs,
        failed_factor: FAILED_FACTOR,
        max_bytes: cfg.max_bytes.0,
    };
    let artifacts = Artifacts::new(root);
    tokio::task::spawn_blocking(move || artifacts.gc(retention, &live))
        .await
        .expect("artifact gc does not panic")
        .map_err(|e| EngineError::Artifacts(e.to_string()))
}

impl Engine {
    /// Retention at the end of a run: what it removed, for the summary's notes.
    pub(crate) async fn retain_artifacts(&self) -> Option<String> {
        let cfg = &self.cfg.config.artifacts;
        match gc_artifacts(&self.store, &self.cfg.artifacts_root, cfg).await {
            Ok(r) if !r.removed.is_empty() => Some(format!(
                "artifacts: removed {} old attempt log directories ({}); {} kept (artifacts.keep_runs {}, max_bytes {})",
                r.removed.len(),
                ByteSize(r.freed_bytes).approx(),
                ByteSize(r.kept_bytes).approx(),
                cfg.keep_runs,
                cfg.max_bytes
            )),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }
}
