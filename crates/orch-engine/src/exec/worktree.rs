//! `Provision`: the attempt's branch and worktree, from the pool (`worktrees.reuse`)
//! or made for it alone.

use std::sync::Arc;

use orch_core::run::{AttemptId, CommitId, Input};

use super::{Ctx, blocking};

/// Creates the attempt's branch at `base` with its worktree; a pooled one once the
/// worktrees given back before `after` (a ticket taken in command order) are back.
pub(crate) async fn provision(
    ctx: Arc<Ctx>,
    attempt: AttemptId,
    branch: String,
    base: CommitId,
    after: u64,
) -> Input {
    if ctx.pooled() {
        return match super::pooled::provision(&ctx, attempt, &branch, &base, after).await {
            Ok(_) => Input::WorktreeReady { attempt },
            Err(error) => Input::WorktreeFailed { attempt, error },
        };
    }
    let _turn = ctx.provision_turn().await;
    let (git, path) = (ctx.git.clone(), ctx.attempt_worktree(attempt));
    let submodules = ctx.cfg.config.worktrees.submodules;
    match blocking(move || {
        git.add_worktree(&branch, &base, &path)?;
        if submodules {
            git.init_submodules(&path)?;
        }
        Ok::<(), String>(())
    })
    .await
    {
        Ok(Ok(())) => Input::WorktreeReady { attempt },
        Ok(Err(error)) | Err(error) => Input::WorktreeFailed { attempt, error },
    }
}
