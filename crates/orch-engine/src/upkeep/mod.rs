//! Upkeep outside a run's loop: `orch cleanup` (planned by the core, carried out
//! here), the worktree pool as a whole (`orch pool`), the retention of attempt logs,
//! and what a run leaves to do at its end.

pub mod cleanup;
pub mod pool;
pub mod retention;

/// A run's end: its integration worktrees are orch's scratch space and go (the branch
/// stays for review); and git's maintenance, which orch's own git calls never start,
/// runs once.
pub(crate) fn after_run(git: &orch_git::Git, root: &std::path::Path, run: &orch_core::run::RunId) {
    for slot in 0..orch_core::config::MAX_INTEGRATION_DEPTH as usize {
        let iwt = crate::line::layout::integration_slot(root, run, slot);
        if iwt.exists() {
            let _ = git.remove_worktree(&iwt, true);
        }
    }
    if let Err(e) = git.maintain() {
        tracing::warn!(error = %e, "git maintenance");
    }
}
