//! Where a run's branches and worktrees live, in one place.

use std::path::{Path, PathBuf};

use orch_core::run::{AttemptId, RunId};

/// `orch/<run>/integration`.
pub fn integration_branch(run: &RunId) -> String {
    format!("orch/{run}/integration")
}

/// `refs/heads/orch/<run>/integration`.
pub fn integration_ref(run: &RunId) -> String {
    format!("refs/heads/{}", integration_branch(run))
}

/// `refs/orch/<run>/candidates/<attempt>`: the pin that keeps an attempt's merge commit
/// reachable from when it is written until the attempt is cleaned up.
pub fn candidate_ref(run: &RunId, a: AttemptId) -> String {
    format!("refs/orch/{}/candidates/{a}", run.0)
}

/// `<root>/<run>/<attempt>`.
pub fn attempt_worktree(root: &Path, run: &RunId, a: AttemptId) -> PathBuf {
    root.join(&run.0).join(a.to_string())
}

/// `<root>/<run>/integration`: the run's scratch checkout for integration gates.
pub fn integration_worktree(root: &Path, run: &RunId) -> PathBuf {
    root.join(&run.0).join("integration")
}
