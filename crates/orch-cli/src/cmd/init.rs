//! `orch init`: `.orch/` (git-excluded), a commented `orch.toml`, the database.

use anyhow::Result;
use orch_store::{Location, Store};
use serde_json::json;

use crate::config;
use crate::ctx::Ctx;
use crate::output;
use crate::repo::{self, Repo};

/// `orch init`, also used by the demo.
pub(crate) async fn init_repo(repo: &Repo, set: &[String]) -> Result<(Vec<String>, Location)> {
    let mut changed = repo.ensure_orch_dir()?;
    let toml_path = repo.root.join("orch.toml");
    if !toml_path.exists() {
        repo::write_atomic(&toml_path, crate::template::ORCH_TOML.as_bytes())?;
        changed.push("created orch.toml".to_owned());
    }
    let cfg = config::load(&repo.root, set)?;
    let loc = Location::from_setting(&cfg.config.database_url, &repo.root)?;
    let existed = matches!(&loc, Location::Sqlite(p) if p.exists());
    Store::open(&loc).await?.close().await?;
    if !existed && matches!(loc, Location::Sqlite(_)) {
        changed.push("created .orch/orch.db".to_owned());
    }
    Ok((changed, loc))
}

pub(super) async fn init(ctx: &Ctx) -> Result<()> {
    let repo = ctx.repo()?;
    let (changed, loc) = init_repo(&repo, &ctx.set).await?;
    if ctx.json {
        return output::print_json(&json!({
            "repo": repo.root,
            "database": loc.to_string(),
            "created": changed,
        }));
    }
    if changed.is_empty() {
        println!("orch is already set up in {}", repo.root.display());
    } else {
        println!("Set up orch in {}:", repo.root.display());
        for c in &changed {
            println!("  {c}");
        }
    }
    println!("Board database: {loc}");
    println!("Next: orch task add \"Your first task\"   (or: orch board import FILE)");
    Ok(())
}
