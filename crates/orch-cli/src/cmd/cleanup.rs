//! `orch cleanup [--dry-run] [--force] [--artifacts] [--pool]`: removes what no live
//! attempt uses; keeps integration branches and the worktree pool (unless `--pool`),
//! and says what it kept and why; applies artifact retention. `orch pool` lists the
//! pool. The core plans it
//! (`orch_engine::core::cleanup::plan`); the engine carries it out.

use anyhow::Result;
use orch_engine::core::units::ByteSize;

use crate::cli::CleanupArgs;
use crate::ctx::Ctx;
use crate::output;

/// Runs `orch cleanup`.
pub(super) async fn cleanup(ctx: &Ctx, args: &CleanupArgs) -> Result<()> {
    let repo = ctx.open().await?;
    let mut opts = repo.cleanup_options();
    opts.force = args.force;
    if args.artifacts {
        let r = repo.collect_artifacts().await?;
        return output::cleanup::print_artifacts(&r, ctx.json);
    }
    if args.dry_run {
        let p = repo.cleanup_preview(&opts).await?;
        let pool = match args.pool {
            true => Some(repo.pool_removal_preview(&opts).await?),
            false => None,
        };
        return output::cleanup::print_preview(&p, pool.as_ref(), ctx.json);
    }
    let r = repo.cleanup(&opts).await?;
    let pool = match args.pool {
        true => Some(repo.remove_pool(&opts).await?),
        false => None,
    };
    output::cleanup::print_report(&r, pool.as_ref(), ctx.json)?;
    let g = repo.collect_artifacts().await?;
    if !ctx.json && !g.removed.is_empty() {
        println!(
            "removed {} old attempt log directories ({}); `orch cleanup --artifacts` lists them",
            g.removed.len(),
            ByteSize(g.freed_bytes).approx()
        );
    }
    Ok(())
}

/// Runs `orch pool`.
pub(super) async fn pool(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open().await?;
    let entries = repo.pool().await?;
    output::pool::print(&entries, ctx.json)
}
