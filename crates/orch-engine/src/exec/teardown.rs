//! `Cleanup`: what the core's cleanup policy says to remove (a pooled worktree goes
//! back to the pool instead), the retention class it
//! decided for the attempt's logs, and the attempt's evidence recorded.

use std::sync::Arc;

use orch_core::run::{AttemptId, Input, Retention};
use orch_validate::Kept;

use super::{Ctx, blocking};

/// Cleans up after `attempt`.
pub(crate) async fn cleanup(
    ctx: Arc<Ctx>,
    attempt: AttemptId,
    remove_worktree: bool,
    delete_branch: bool,
    retention: Retention,
) -> Input {
    let (git, path, branch) = (
        ctx.git.clone(),
        ctx.attempt_worktree(attempt),
        attempt.branch(&ctx.run),
    );
    let (artifacts, run) = (ctx.artifacts.clone(), ctx.run.clone());
    // Work a person approved (or resolved) lives on a branch of its own: once it is
    // in the line, that branch goes with the attempt that landed it.
    let reviewed = ctx
        .task(attempt.task)
        .and_then(|t| t.review)
        .filter(|r| r.approved() && delete_branch && r.work.branch != branch)
        .map(|r| (r.work.branch, r.work.head));
    let line = crate::line::layout::integration_ref(&ctx.cfg.config.run, &ctx.run);
    let kept = match retention {
        Retention::Success => Kept::Succeeded,
        Retention::Failure => Kept::Failed,
    };
    // A pooled worktree goes back to the pool whatever the policy keeps: the attempt's
    // work is on its branch, which stays as the policy says.
    let pooled = ctx.held(attempt).is_some();
    let mut errors = match pooled {
        true => super::pooled::release(&ctx, attempt, delete_branch).await,
        false => Vec::new(),
    };
    if super::remote::on_workers(&ctx) {
        errors.extend(super::remote::cleanup(&ctx, attempt, delete_branch).await);
    }
    let delete_branch = delete_branch && !pooled;
    errors.extend(
        blocking(move || {
            let mut errors = Vec::new();
            if remove_worktree
                && !pooled
                && path.exists()
                && let Err(e) = git.remove_worktree(&path, true)
            {
                errors.push(e.to_string());
            }
            if delete_branch && let Err(e) = git.delete_branch(&branch, true) {
                errors.push(e.to_string());
            }
            if let Some((b, head)) = reviewed
                && let Ok(Some(tip)) = git.ref_target(&line)
                && git.is_ancestor(&head, &tip)
                && let Err(e) = git.delete_branch(&b, true)
            {
                errors.push(e.to_string());
            }
            // The merge candidate is in the integration branch now, or abandoned.
            if let Err(e) = git.unpin(&crate::line::layout::candidate_ref(&run, attempt)) {
                errors.push(e.into());
            }
            let _ = artifacts.set_outcome(&run, attempt, kept);
            errors
        })
        .await
        .unwrap_or_else(|e| vec![e]),
    );
    // The attempt's evidence: every file in its artifacts directory.
    if let Ok(dir) = ctx.artifacts.attempt_dir(&ctx.run, attempt) {
        let files: Vec<(String, String, u64)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok().filter(|m| m.is_file())?;
                let name = e.file_name().to_string_lossy().into_owned();
                // Dot-files (the retention marker) are orch's, not evidence.
                if name.starts_with('.') {
                    return None;
                }
                Some((name, e.path().display().to_string(), m.len()))
            })
            .collect();
        if let Err(e) = ctx
            .journal
            .record_artifacts(&ctx.run, attempt, &files)
            .await
        {
            errors.push(e.to_string());
        }
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    Input::CleanedUp { attempt, error }
}
