//! `orch cleanup [--dry-run] [--force] [--artifacts] [--pool]`: removes what no live
//! attempt uses; keeps integration branches and the worktree pool (unless `--pool`),
//! and says what it kept and why; applies artifact retention. `orch pool` lists the
//! pool. The core plans it
//! (`orch_engine::core::cleanup::plan`); the engine carries it out.

use anyhow::Result;
use orch_engine::core::units::ByteSize;
use orch_engine::upkeep::retention::gc_artifacts;

use crate::cli::CleanupArgs;
use crate::ctx::Ctx;
use crate::output;

/// Runs `orch cleanup`.
pub(super) async fn cleanup(ctx: &Ctx, args: &CleanupArgs) -> Result<()> {
    let repo = ctx.open().await?;
    let cfg = repo.config();
    let mut opts = repo.cleanup_options();
    opts.force = args.force;
    let (store, root) = (repo.store(), repo.root());
    let artifacts = repo.artifacts();
    if args.artifacts {
        let r = gc_artifacts(store, &artifacts, &cfg.artifacts).await?;
        return output::cleanup::print_artifacts(&r, ctx.json);
    }
    if args.dry_run {
        let p = repo.cleanup_preview(&opts).await?;
        let pool = match args.pool {
            true => Some(
                orch_engine::upkeep::pool::removal_preview(store, &pool_root(root, &opts)?).await?,
            ),
            false => None,
        };
        return output::cleanup::print_preview(&p, pool.as_ref(), ctx.json);
    }
    let r = repo.cleanup(&opts).await?;
    let pool = match args.pool {
        true => {
            Some(orch_engine::upkeep::pool::remove(store, root, &pool_root(root, &opts)?).await?)
        }
        false => None,
    };
    output::cleanup::print_report(&r, pool.as_ref(), ctx.json)?;
    let g = gc_artifacts(store, &artifacts, &cfg.artifacts).await?;
    if !ctx.json && !g.removed.is_empty() {
        println!(
            "removed {} old attempt log directories ({}); `orch cleanup --artifacts` lists them",
            g.removed.len(),
            ByteSize(g.freed_bytes).approx()
        );
    }
    Ok(())
}

/// Where the pool is: the worktree root the configuration names.
fn pool_root(
    root: &std::path::Path,
    opts: &orch_engine::upkeep::cleanup::CleanupOptions,
) -> Result<std::path::PathBuf> {
    orch_engine::upkeep::cleanup::worktree_root(root, opts).ok_or_else(|| {
        anyhow::anyhow!(
            "cannot find the worktree root: set HOME or XDG_DATA_HOME, or worktrees.root"
        )
    })
}

/// Runs `orch pool`.
pub(super) async fn pool(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open().await?;
    let entries = orch_engine::upkeep::pool::list(repo.store()).await?;
    output::pool::print(&entries, ctx.json)
}
