//! `orch task resolve ID [--continue | --abort | --agent]`.

use anyhow::Result;

use crate::cli::ResolveArgs;
use crate::ctx::Ctx;
use crate::output::{self, TaskJson};

/// Prepares, continues, aborts or hands on a conflict's resolution; the exit code (a
/// continued one's is its landing run's).
pub(super) async fn resolve(ctx: &Ctx, a: ResolveArgs) -> Result<u8> {
    let repo = ctx.open().await?;
    let who = repo.actor();
    let id = a.id;
    if a.abort {
        repo.resolve_abort(&who, id).await?;
        println!("task #{id}: the resolution is put back as it was; the task stays blocked");
        repo.close().await?;
        return Ok(0);
    }
    if a.agent {
        let t = repo.resolve_by_agent(&who, id).await?;
        if ctx.json {
            output::print_json(&TaskJson::from(&t))?;
        } else {
            println!(
                "task #{id}: the conflict goes to its agent; `orch run` runs the attempt that resolves it"
            );
        }
        repo.close().await?;
        return Ok(0);
    }
    if !a.go_on {
        let r = repo.resolve_start(&who, id).await?;
        if ctx.json {
            output::print_json(&r)?;
        } else {
            let verb = if r.resumed {
                "under way in"
            } else {
                "ready in"
            };
            println!("{}", r.path.display());
            eprintln!(
                "task #{id}: the resolution is {verb} the worktree above; conflicts in: {}. Edit them, then `orch task resolve {id} --continue` (or --abort)",
                r.paths.join(", ")
            );
        }
        repo.close().await?;
        return Ok(0);
    }
    let r = repo.resolve_continue(&who, id).await?;
    repo.close().await?;
    eprintln!(
        "task #{id}: resolved as {}; landing it through the integration gate",
        r.commit.short()
    );
    // The landing is a run of this task alone: its claim integrates the resolution.
    let args = crate::cli::RunArgs {
        tasks: vec![id],
        ..super::demo::run_args()
    };
    super::run::run(ctx, &args).await
}
