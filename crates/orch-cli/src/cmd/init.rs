//! `orch init`: `.orch/` (git-excluded), a commented `orch.toml`, the database.

use anyhow::Result;
use orch_engine::Repo;
use serde_json::json;

use crate::ctx::Ctx;
use crate::output;

pub(super) async fn init(ctx: &Ctx) -> Result<()> {
    let root = ctx.repo()?.root;
    let (repo, changed) = Repo::init(&root, &ctx.options()).await?;
    let database = repo.store().location().to_string();
    repo.close().await?;
    if ctx.json {
        return output::print_json(&json!({
            "repo": root,
            "database": database,
            "created": changed,
        }));
    }
    if changed.is_empty() {
        println!("orch is already set up in {}", root.display());
    } else {
        println!("Set up orch in {}:", root.display());
        for c in &changed {
            println!("  {c}");
        }
    }
    println!("Board database: {database}");
    println!("Next: orch task add \"Your first task\"   (or: orch board import FILE)");
    Ok(())
}
