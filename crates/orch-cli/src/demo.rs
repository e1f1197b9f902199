//! `orch demo`: orch at work in a throwaway repository, with nothing to set up.
//!
//! The run engine is not built yet, so today the demo shows the board side: a git
//! repository, `orch init`, a board imported from a file, dependencies, and the board.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use orch_store::{Location, Store};
use serde_json::json;

use crate::cli::DemoArgs;
use crate::commands::{Ctx, init_repo, parse_board};
use crate::error::BadInput;
use crate::output;
use crate::repo::Repo;

/// The demo board, also at `examples/demo/board.toml`.
const DEMO_BOARD: &str = include_str!("../../../examples/demo/board.toml");

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=orch demo",
            "-c",
            "user.email=demo@orch.invalid",
        ])
        .args(args)
        .output()
        .context("running git (is it installed and on PATH?)")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs the demo.
pub async fn run(ctx: &Ctx, args: DemoArgs) -> Result<()> {
    let dir = match args.dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                return Err(BadInput(format!(
                    "--dir {}: the directory is not empty; pass a new or empty directory",
                    d.display()
                ))
                .into());
            }
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            d.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("orch-demo-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    git(&dir, &["init", "-q", "-b", "main"])?;
    std::fs::write(
        dir.join("README.md"),
        "# calc\n\nA tiny calculator, built by agents.\n",
    )?;
    git(&dir, &["add", "README.md"])?;
    git(&dir, &["commit", "-q", "-m", "Initial commit"])?;

    let repo = Repo::discover(Some(&dir))?;
    let (created, loc) = init_repo(&repo, &[]).await?;
    let board = parse_board("examples/demo/board.toml", DEMO_BOARD)?;
    let store = Store::open(&loc).await?;
    let report = store.import_board(&board, "demo").await?;
    let tasks = store.tasks(&[]).await?;
    store.close().await?;
    debug_assert!(matches!(loc, Location::Sqlite(_)));

    if ctx.json {
        return output::print_json(&json!({
            "repo": dir,
            "created": created,
            "tasks": report.created.len(),
        }));
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "orch".into());
    println!("orch demo: a throwaway repository at {}\n", dir.display());
    println!("  1. git init, with one commit on main");
    println!("  2. orch init            {}", created.join(", "));
    println!(
        "  3. orch board import    {} tasks, with dependencies and `touches` globs\n",
        report.created.len()
    );
    print!("{}", output::render_board(&tasks, 80));
    println!();
    println!("Tasks marked \"waiting on\" are claimable only when their dependencies are done.");
    println!("Running agents on the board (`orch run`) is the next piece of orch to land;");
    println!("today orch keeps the board. Explore it:");
    println!("  {exe} --repo {} task show 5", dir.display());
    println!("  {exe} --repo {} board --width 200", dir.display());
    println!("  {exe} --repo {} board export", dir.display());
    Ok(())
}
