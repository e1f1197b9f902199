//! The board's data, cached by the newest event `seq`: every change to a task or a run
//! appends an event in the same transaction, so the same newest `seq` means the same
//! board. When the log has moved on by a few events, only the tasks they name are read
//! again (and who holds what, if a run wrote); after many, or an import, all of it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use orch_engine::core::event::kind;
use orch_engine::core::run::RunId;
use orch_engine::core::{TaskId, TaskStatus};
use orch_store::{AttemptRow, EventFilter, StoreError};

use crate::state::{AppState, BoardData};

/// Past this many new events, the board is read whole again.
const PATCH_AT_MOST: u64 = 200;

/// The board as of `seq`: the cached one, patched, or read whole.
pub(crate) async fn board_data(app: &AppState, seq: i64) -> Result<Arc<BoardData>, StoreError> {
    let cached = app.board.lock().expect("never poisoned").clone();
    let data = match cached {
        Some(d) if d.seq == seq => return Ok(d),
        Some(d) if d.seq < seq => match patched(app, &d, seq).await {
            Some(p) => p,
            None => whole(app, seq).await?,
        },
        _ => whole(app, seq).await?,
    };
    let data = Arc::new(data);
    let mut slot = app.board.lock().expect("never poisoned");
    if slot.as_ref().is_none_or(|d| d.seq < data.seq) {
        *slot = Some(data.clone());
    }
    Ok(data)
}

async fn whole(app: &AppState, seq: i64) -> Result<BoardData, StoreError> {
    let tasks = app.store.tasks(&[]).await?;
    let mut failures = HashMap::new();
    for t in tasks.iter().filter(|t| t.status == TaskStatus::Failed) {
        if let Some(f) = last_failure(app, t.id).await {
            failures.insert(t.id, f);
        }
    }
    Ok(BoardData {
        seq,
        failures,
        usage: app.store.task_usage().await.unwrap_or_default(),
        held: holders(app).await,
        retrying: app.store.retries_waiting().await.unwrap_or_default(),
        status: tasks.iter().map(|t| (t.id, t.status)).collect(),
        tasks,
    })
}

/// `old` brought up to `seq` by reading only the tasks the events since name; `None`
/// when that would not be cheaper or not be right (an import names no task, a removal
/// changes its dependents).
async fn patched(app: &AppState, old: &BoardData, seq: i64) -> Option<BoardData> {
    let filter = EventFilter {
        after_seq: Some(old.seq),
        limit: Some(PATCH_AT_MOST + 1),
        ..EventFilter::default()
    };
    let events = app.store.events(&filter).await.ok()?;
    let touched_runs = events.iter().any(|e| e.run_id.is_some());
    if events.len() as u64 > PATCH_AT_MOST
        || events.last().is_none_or(|e| e.seq != seq)
        || events.iter().any(|e| {
            // A removal can strip others' dependencies too.
            (e.task_id.is_none() && e.run_id.is_none()) || e.kind == kind::TASK_REMOVED
        })
    {
        return None;
    }
    let ids: BTreeSet<TaskId> = events.iter().filter_map(|e| e.task_id).collect();
    let mut next = old.clone();
    next.seq = seq;
    for id in ids {
        let at = next.tasks.binary_search_by_key(&id, |t| t.id);
        match (app.store.task(id).await, at) {
            (Ok(t), Ok(i)) => next.tasks[i] = t,
            (Ok(t), Err(i)) => next.tasks.insert(i, t),
            (Err(StoreError::TaskNotFound(_)), Ok(i)) => {
                next.tasks.remove(i);
            }
            (Err(StoreError::TaskNotFound(_)), Err(_)) => {}
            (Err(_), _) => return None,
        }
        match next.tasks.binary_search_by_key(&id, |t| t.id) {
            Ok(i) => next.status.insert(id, next.tasks[i].status),
            Err(_) => next.status.remove(&id),
        };
        next.failures.remove(&id);
        if next.status.get(&id) == Some(&TaskStatus::Failed)
            && let Some(f) = last_failure(app, id).await
        {
            next.failures.insert(id, f);
        }
    }
    if touched_runs {
        next.usage = app.store.task_usage().await.ok()?;
        next.held = holders(app).await;
        next.retrying = app.store.retries_waiting().await.unwrap_or_default();
    }
    Some(next)
}

/// A task's newest failed attempt, with its run.
async fn last_failure(app: &AppState, task: TaskId) -> Option<(RunId, AttemptRow)> {
    let attempts = app.store.task_attempts(task).await.ok()?;
    attempts
        .into_iter()
        .rev()
        .find(|(_, a)| a.failure.is_some())
}

/// Who holds each task now: the run, its live attempt, and since when (ms).
async fn holders(app: &AppState) -> HashMap<TaskId, (RunId, String, i64)> {
    let mut out = HashMap::new();
    let runs = app.store.runs().await.unwrap_or_default();
    for r in runs.iter().filter(|r| !r.state.is_terminal()) {
        for a in app.store.attempts(&r.id).await.unwrap_or_default() {
            if a.phase().is_some_and(|p| !p.is_terminal()) {
                let since = a.updated_at.as_millis();
                out.insert(a.attempt.task, (r.id.clone(), a.attempt.to_string(), since));
            }
        }
    }
    out
}
