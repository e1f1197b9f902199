//! `orch board`, `orch board import`, `orch board export`.

use anyhow::{Context, Result};
use orch_engine::core::board::BoardFile;
use orch_store::{Store, StoreError};

use super::task::read_input;
use crate::cli::{BoardArgs, BoardCommand, ExportFormat};
use crate::ctx::Ctx;
use crate::error::BadInput;
use crate::output;

/// Runs `orch board` or one of its subcommands.
pub(super) async fn board(ctx: &Ctx, args: BoardArgs) -> Result<()> {
    let repo = ctx.open().await?;
    let store = repo.store().clone();
    match args.command {
        None => {
            let tasks = store.tasks(&[]).await?;
            let usage = store.task_usage().await?;
            let retrying = store.retries_waiting().await?;
            if ctx.json {
                output::print_json(&output::task::BoardJson::new(
                    &tasks,
                    &args.label,
                    &usage,
                    &retrying,
                ))?;
            } else {
                let width = args.width.unwrap_or_else(terminal_width);
                let source = repo.source();
                if let Some(source) = &source {
                    println!(
                        "From {} ({}), each card with its id there; `orch board sync` reads it again.\n",
                        source.kind(),
                        source.place()
                    );
                }
                print!(
                    "{}",
                    output::render_board(
                        &tasks,
                        &args.label,
                        &usage,
                        &retrying,
                        width,
                        source.is_some(),
                    )
                );
            }
        }
        Some(BoardCommand::Import { file }) => import(&store, &file, ctx.json).await?,
        Some(BoardCommand::Sync) => sync(&repo, ctx.json).await?,
        Some(BoardCommand::Export {
            format,
            output: out,
        }) => export(&store, format, out.as_deref()).await?,
    }
    store.close().await?;
    Ok(())
}

async fn sync(repo: &orch_engine::Repo, json: bool) -> Result<()> {
    let Some(report) = repo.sync_board().await? else {
        return Err(BadInput(
            "board.source is \"orch\": orch's own board has no source to sync; set board.source to \"backlog.md\" or \"taskmaster\"".into(),
        )
        .into());
    };
    if json {
        return output::print_json(&report);
    }
    print!("{}", output::task::sync_report(&report));
    Ok(())
}

async fn import(store: &Store, file: &std::path::Path, json: bool) -> Result<()> {
    let text = read_input(file)?;
    let label = file.display().to_string();
    let parsed = parse_board(&label, &text)?;
    let report = match store.import_board(&parsed, "import").await {
        Ok(r) => r,
        Err(StoreError::Board(e)) => {
            let line = task_header_line(&text, e.index);
            return Err(BadInput(format!("{label}:{line}: {e}; nothing was imported")).into());
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        return output::print_json(&output::task::ImportJson::new(&report));
    }
    println!(
        "imported {label}: {} created, {} updated, {} unchanged",
        report.created.len(),
        report.updated.len(),
        report.unchanged.len()
    );
    for (k, id) in &report.created {
        println!("  created #{id} {k}");
    }
    for (k, id) in &report.updated {
        println!("  updated #{id} {k}");
    }
    Ok(())
}

async fn export(store: &Store, format: ExportFormat, out: Option<&std::path::Path>) -> Result<()> {
    let board = store.export_board().await?;
    let text = match format {
        ExportFormat::Toml => toml::to_string_pretty(&board).context("writing TOML")?,
        ExportFormat::Json => serde_json::to_string_pretty(&board)? + "\n",
    };
    match out {
        Some(path) => {
            orch_engine::repo::write_atomic(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("exported {} tasks to {}", board.tasks.len(), path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn terminal_width() -> usize {
    if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
        return w as usize;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}

/// Parses a board file, reporting the line and column of a syntax error.
pub(crate) fn parse_board(label: &str, text: &str) -> Result<BoardFile> {
    toml::from_str::<BoardFile>(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        BadInput(format!(
            "{label}:{line}:{col}: {}; nothing was imported",
            e.message().trim_end()
        ))
        .into()
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// The line of the `index`-th `[[task]]` header.
fn task_header_line(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[task]]"))
        .nth(index)
        .map(|(i, _)| i + 1)
        .unwrap_or(1)
}
