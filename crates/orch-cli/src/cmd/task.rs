//! `orch task add/list/show/edit/move/retry/unblock/cancel/rm`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use orch_engine::core::task::{self, NewTask, TaskEdit};
use orch_engine::core::transition::{self, Actor};
use orch_engine::core::{TaskId, TaskStatus};
use orch_engine::{Board, Canceled};
use orch_store::{EventFilter, Store};

use crate::cli::{BodyArgs, TaskAdd, TaskCommand, TaskEditArgs, TaskMove};
use crate::ctx::Ctx;
use crate::error::BadInput;
use crate::output::{self, TaskJson};

/// Runs one `orch task` subcommand.
pub(super) async fn task(ctx: &Ctx, cmd: TaskCommand) -> Result<()> {
    let repo = ctx.open().await?;
    let who = repo.actor();
    let (store, board) = (repo.store(), repo.board(&who));
    let json = ctx.json;
    match cmd {
        TaskCommand::Add(a) => {
            add(board, a, json).await?;
            if let Some(source) = repo.source() {
                eprintln!(
                    "note: this board comes from {} ({}): the task lives only on orch's board, and nothing of it is written there; to keep it with the others, add it there and run `orch board sync`",
                    source.kind(),
                    source.place()
                );
            }
        }
        TaskCommand::List(l) => list(store, &l.status, &l.label, json).await?,
        TaskCommand::Show { id } => show(store, id, json).await?,
        TaskCommand::Edit(e) => edit(board, e, json).await?,
        TaskCommand::Move(m) => move_task(board, m, json).await?,
        TaskCommand::Retry { id, reason } => {
            reopen(board, id, TaskStatus::Failed, "retried", reason, json).await?
        }
        TaskCommand::Unblock { id, reason } => {
            reopen(board, id, TaskStatus::Blocked, "unblocked", reason, json).await?
        }
        TaskCommand::Cancel { id, reason } => cancel(board, id, reason, json).await?,
        TaskCommand::Resolve(_) => unreachable!("dispatched to `resolve`, for its exit code"),
        TaskCommand::Rm { id, force } => {
            let t = board.remove(id, force).await?;
            if json {
                output::print_json(&output::task::Removed {
                    removed: TaskJson::from(&t),
                })?;
            } else {
                println!("removed #{} {}", t.id, t.title);
            }
        }
    }
    repo.close().await?;
    Ok(())
}

fn print_task(
    t: &orch_engine::core::Task,
    json: bool,
    line: impl FnOnce() -> String,
) -> Result<()> {
    if json {
        output::print_json(&TaskJson::from(t))
    } else {
        println!("{}", line());
        Ok(())
    }
}

async fn add(board: Board<'_>, a: TaskAdd, json: bool) -> Result<()> {
    let mut reverts = Vec::with_capacity(a.reverts.len());
    for id in a.reverts {
        let t = board
            .task(id)
            .await
            .with_context(|| format!("--reverts {id}"))?;
        reverts.push(t.key);
    }
    let body = read_body(&a.body)?.unwrap_or_default();
    let new = NewTask {
        key: a.key,
        title: a.title,
        body: task::with_reverts(&body, &reverts),
        priority: a.priority,
        depends_on: a.after,
        labels: a.label,
        touches: a.touches,
    };
    let t = board.add(new).await?;
    print_task(&t, json, || t.id.to_string())
}

async fn list(store: &Store, status: &[TaskStatus], labels: &[String], json: bool) -> Result<()> {
    let mut tasks = store.tasks(status).await?;
    tasks.retain(|t| output::has_labels(t, labels));
    if json {
        return output::print_json(&tasks.iter().map(TaskJson::from).collect::<Vec<_>>());
    }
    // Waiting marks need the whole board, not just the filtered tasks.
    let all = if status.is_empty() && labels.is_empty() {
        tasks.clone()
    } else {
        store.tasks(&[]).await?
    };
    print!(
        "{}",
        output::render_task_table(&tasks, &output::waiting_on(&all))
    );
    Ok(())
}

async fn show(store: &Store, id: TaskId, json: bool) -> Result<()> {
    let t = store.task(id).await?;
    let filter = EventFilter {
        task: Some(id),
        ..EventFilter::default()
    };
    let events = store.events(&filter).await?;
    let board = store.tasks(&[]).await?;
    if json {
        return output::print_json(&output::task::TaskShowJson::new(&t, &board, &events));
    }
    print!("{}", output::render_task(&t, &board, &events));
    Ok(())
}

async fn edit(board: Board<'_>, e: TaskEditArgs, json: bool) -> Result<()> {
    let edit = TaskEdit {
        title: e.title,
        body: read_body(&e.body)?,
        priority: e.priority,
        add_deps: e.after,
        remove_deps: e.rm_after,
        add_labels: e.label,
        remove_labels: e.rm_label,
        add_touches: e.touches,
        remove_touches: e.rm_touches,
    };
    if edit.is_empty() {
        return Err(BadInput(
            "nothing to change: pass --title, --body, --priority, --after, --rm-after, \
             --label, --rm-label, --touches or --rm-touches"
                .into(),
        )
        .into());
    }
    let t = board.edit(e.id, &edit).await?;
    print_task(&t, json, || format!("updated #{} {}", t.id, t.title))
}

async fn move_task(board: Board<'_>, m: TaskMove, json: bool) -> Result<()> {
    let before = board.task(m.id).await?;
    let t = match m.force {
        true => board.override_to(m.id, m.status, m.reason).await?,
        false => board.move_to(m.id, m.status, m.reason).await?,
    };
    let forced =
        m.force && transition::check_move(before.status, m.status, Actor::Human, false).is_err();
    let note = if forced {
        " (manual override, recorded)"
    } else {
        ""
    };
    print_task(&t, json, || {
        format!(
            "moved #{} {}: {} -> {}{note}",
            t.id, t.title, before.status, t.status
        )
    })
}

/// Cancels a task; one that a live run is working on is stopped through that run.
async fn cancel(board: Board<'_>, id: TaskId, reason: Option<String>, json: bool) -> Result<()> {
    let (runs, interrupted) = match board.cancel(id, reason).await? {
        Canceled::Moved(t) => {
            return print_task(&t, json, || format!("canceled #{} {}", t.id, t.title));
        }
        Canceled::Requested { runs, interrupted } => (runs, interrupted),
    };
    let runs: Vec<String> = runs.into_iter().map(|r| r.0).collect();
    if json {
        return output::print_json(&output::task::CancelRequested::task(id, runs));
    }
    println!(
        "cancel requested: run {} stops task #{id} and goes on with the rest",
        runs.join(", ")
    );
    for r in interrupted {
        println!(
            "note: run {r} is interrupted (no orch drives it); the cancel takes effect when `orch run resume {r}` resumes it"
        );
    }
    Ok(())
}

/// Moves a `from` task back to the backlog (retry, unblock), refusing any other status.
async fn reopen(
    board: Board<'_>,
    id: TaskId,
    from: TaskStatus,
    verb: &str,
    reason: Option<String>,
    json: bool,
) -> Result<()> {
    let t = board.reopen(id, from, verb, reason).await?;
    print_task(&t, json, || {
        format!("{verb} #{} {}: back in the backlog", t.id, t.title)
    })
}

fn read_body(b: &BodyArgs) -> Result<Option<String>> {
    if let Some(text) = &b.body {
        return Ok(Some(text.clone()));
    }
    let Some(path) = &b.body_file else {
        return Ok(None);
    };
    read_input(path).map(Some)
}

/// Reads a file argument, `-` meaning stdin. A missing file is bad input.
pub(super) fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", path.display())).into())
}
