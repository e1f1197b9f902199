//! `Merge` (in memory, no ref moves) and `AdvanceRef` (compare-and-swap).

use std::sync::Arc;

use super::{Ctx, blocking};
use crate::crash_point;
use crate::line::layout;
use crate::ports::{RefError, moved_line};
use orch_core::landing::moved_by_orch;
use orch_core::ports::MergeOutcome;
use orch_core::run::{AttemptId, CommitId, Input, MergeResult, RefResult};

/// A merge to make: `attempt`'s `head` (made from `base`) onto `onto`.
#[derive(Debug, Clone)]
pub(crate) struct MergeAsk {
    pub(crate) attempt: AttemptId,
    pub(crate) onto: CommitId,
    pub(crate) head: CommitId,
    pub(crate) base: CommitId,
}

impl MergeAsk {
    /// The merge a `Merge` command asks for; `None` for any other command.
    pub(crate) fn of(cmd: orch_core::run::Command) -> Option<MergeAsk> {
        let orch_core::run::Command::Merge {
            attempt,
            onto,
            head,
            base,
        } = cmd
        else {
            return None;
        };
        Some(MergeAsk {
            attempt,
            onto,
            head,
            base,
        })
    }
}

/// Merges the attempt's head onto `onto` in memory and writes the merge commit; and
/// says what of other tasks' landed work its change undoes (the revert guard), for the
/// core to judge.
pub(crate) async fn merge(ctx: Arc<Ctx>, m: MergeAsk) -> Input {
    let MergeAsk {
        attempt,
        onto,
        head,
        base,
    } = m;
    let (git, style) = (ctx.git.clone(), ctx.cfg.config.run.merge_style);
    let message = ctx.commit_message(attempt, Some(style));
    let pin = layout::candidate_ref(&ctx.run, attempt);
    let own = ctx
        .task(attempt.task)
        .map(|t| t.key)
        .unwrap_or_else(|| format!("task-{}", attempt.task));
    // With workers, the pin goes to the remote too: a coordinator resumed from
    // another clone validates (or advances to) the same commit.
    let remote = super::remote::on_workers(&ctx).then(|| ctx.cfg.config.run.remote.clone());
    // Written and pinned in one go: between the two, `git gc --prune=now` could take
    // the new commit, which no branch holds yet.
    let result = blocking(move || {
        let undoes = git.undoes(&base, &head, &own).unwrap_or_else(|e| {
            tracing::warn!(%attempt, error = %e, "the revert guard could not read the change");
            Vec::new()
        });
        let r = git.merge(&onto, &head, &base, style, &message)?;
        if let MergeOutcome::Clean { commit } = &r {
            git.pin(&pin, commit)?;
            if let Some(remote) = remote {
                let any = orch_git::Expect::Any;
                git.push_ref(&remote, commit, &pin, &any)
                    .map_err(|e| format!("pinning the candidate on the remote: {e:?}"))?;
            }
        }
        Ok::<_, String>((r, undoes))
    })
    .await;
    let result = match result {
        Ok(Ok((MergeOutcome::Clean { commit }, undoes))) => MergeResult::Clean { commit, undoes },
        Ok(Ok((MergeOutcome::Conflicted { conflicts }, _))) => MergeResult::Conflict {
            paths: conflicts.into_iter().map(|c| c.path).collect(),
        },
        Ok(Err(message)) | Err(message) => MergeResult::Failed { message },
    };
    Input::MergeFinished { attempt, result }
}

/// Moves the integration ref from `expected` to `new`, only if it is at `expected`.
pub(crate) async fn advance(
    ctx: Arc<Ctx>,
    attempt: AttemptId,
    expected: CommitId,
    new: CommitId,
) -> Input {
    let (git, reference) = (
        ctx.git.clone(),
        layout::integration_ref(&ctx.cfg.config.run, &ctx.run),
    );
    let e = expected.clone();
    let pushed = match super::remote::on_workers(&ctx) {
        true => super::remote::advance_remote(&ctx, &expected, &new).await,
        false => Ok(()),
    };
    let result = match pushed {
        Ok(()) => blocking(move || git.advance_ref(&reference, &e, &new)).await,
        Err(e) => Ok(Err(e)),
    };
    let result = match result {
        Ok(Ok(())) => {
            crash_point("ref-advanced");
            RefResult::Advanced
        }
        Ok(Err(RefError::LostRace { actual }))
            if moved_by_orch(
                moved_line(ctx.git.clone(), &*ctx.journal, &expected, &actual).await,
            ) =>
        {
            RefResult::Overtaken { actual }
        }
        Ok(Err(RefError::LostRace { actual })) => RefResult::LostRace { actual },
        Ok(Err(RefError::Refused(e))) => RefResult::Refused {
            message: e.to_string(),
        },
        Ok(Err(RefError::Failed(e))) => RefResult::Failed {
            message: e.to_string(),
        },
        Err(message) => RefResult::Failed { message },
    };
    Input::RefUpdated { attempt, result }
}
