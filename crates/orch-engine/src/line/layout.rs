//! Where a run's branches and worktrees live, in one place.

use std::path::{Path, PathBuf};

use orch_core::config::RunConfig;
use orch_core::run::{AttemptId, RunId};

/// The integration branch `run` advances: `run.integration_branch` (the long-lived
/// line, `orch/integration` by default), or `orch/<run>/integration` for `per-run`.
pub fn integration_branch(cfg: &RunConfig, run: &RunId) -> String {
    cfg.line_branch(&run.0)
}

/// `refs/heads/<integration branch>`.
pub fn integration_ref(cfg: &RunConfig, run: &RunId) -> String {
    format!("refs/heads/{}", integration_branch(cfg, run))
}

/// `refs/orch/<run>/candidates/<attempt>`: the pin that keeps an attempt's merge commit
/// reachable from when it is written until the attempt is cleaned up.
pub fn candidate_ref(run: &RunId, a: AttemptId) -> String {
    format!("refs/orch/{}/candidates/{a}", run.0)
}

/// `refs/orch/<run>/candidates/line`: the pin of a base (or target) merged into the
/// line, from its merge until its landing is journaled.
pub fn line_candidate_ref(run: &RunId) -> String {
    format!("refs/orch/{}/candidates/line", run.0)
}

/// `<root>/<run>/<attempt>`.
pub fn attempt_worktree(root: &Path, run: &RunId, a: AttemptId) -> PathBuf {
    root.join(&run.0).join(a.to_string())
}

/// `<root>/<run>/integration`: the run's scratch checkout for integration gates.
pub fn integration_worktree(root: &Path, run: &RunId) -> PathBuf {
    integration_slot(root, run, 0)
}

/// The checkout of integration slot `slot`: `integration` for the first, then
/// `integration-2`, ... (one per candidate validated at once, `run.integration_depth`).
pub fn integration_slot(root: &Path, run: &RunId, slot: usize) -> PathBuf {
    root.join(&run.0)
        .join(orch_core::cleanup::integration_slot_name(slot))
}
