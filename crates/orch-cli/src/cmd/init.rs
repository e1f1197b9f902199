//! `orch init`: `.orch/` (git-excluded), a commented `orch.toml`, the database.

use std::path::Path;

use anyhow::{Context, Result};
use orch_engine::Repo;
use orch_engine::repo::git;
use serde_json::json;

use crate::ctx::Ctx;
use crate::error::BadInput;
use crate::output;

pub(super) async fn init(ctx: &Ctx, commit: bool) -> Result<()> {
    let root = ctx.repo()?.root;
    let (repo, mut changed) = Repo::init(&root, &ctx.options()).await?;
    let database = repo.store().location().to_string();
    repo.close().await?;
    // `orch land` needs a clean checkout; an uncommitted orch.toml is the usual first
    // obstacle, so say so, or commit it when asked.
    let uncommitted = untracked_or_changed(&root, "orch.toml")?;
    if commit && uncommitted {
        commit_toml(&root)?;
        changed.push("committed orch.toml".to_owned());
    }
    let to_commit = uncommitted && !commit;
    if ctx.json {
        return output::print_json(&json!({
            "repo": root,
            "database": database,
            "created": changed,
            "uncommitted": to_commit.then_some("orch.toml"),
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
    if to_commit {
        println!(
            "Commit orch.toml (`orch land` needs a clean checkout): git add orch.toml && git commit -m \"Configure orch\"   (or: orch init --commit)"
        );
    }
    println!("Next: orch task add \"Your first task\"   (or: orch board import FILE)");
    Ok(())
}

/// Whether `file` is untracked or has changes git has not committed.
fn untracked_or_changed(root: &Path, file: &str) -> Result<bool> {
    let out = git(root, &["status", "--porcelain", "--", file]).context("running git status")?;
    anyhow::ensure!(
        out.status.success(),
        "git status failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(!out.stdout.is_empty())
}

/// Commits `orch.toml` alone, with the repository's identity.
fn commit_toml(root: &Path) -> Result<()> {
    for args in [
        &["add", "--", "orch.toml"][..],
        &["commit", "-q", "-m", "Configure orch", "--", "orch.toml"],
    ] {
        let out = git(root, args).context("running git")?;
        if !out.status.success() {
            return Err(BadInput(format!(
                "--commit: git {} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .into());
        }
    }
    Ok(())
}
