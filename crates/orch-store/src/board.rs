//! Board import and export: a whole board file in one transaction.

use std::collections::BTreeMap;

use orch_core::board::{self, BoardFile, BoardTask, DepRef, ExistingTask};
use orch_core::event::kind;
use orch_core::task::NewTask;
use orch_core::{TaskId, Timestamp};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::events::{self, NewEvent};
use crate::tasks::{diff, insert, load, load_all, task_payload, write_deps, write_fields};
use crate::{Store, StoreError, now};

/// What an import did, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// New tasks, with their ids.
    pub created: Vec<(String, TaskId)>,
    /// Tasks whose fields or dependencies changed.
    pub updated: Vec<(String, TaskId)>,
    /// Tasks already exactly as the file says.
    pub unchanged: Vec<(String, TaskId)>,
}

impl Store {
    /// Imports a board file: idempotent by key, all or nothing. Statuses are kept;
    /// new tasks start in the backlog.
    pub async fn import_board(
        &self,
        file: &BoardFile,
        actor: &str,
    ) -> Result<ImportReport, StoreError> {
        self.import(file, actor, true).await
    }

    /// [`Store::import_board`] for a board kept in step with another tool's files
    /// (`board.source`): the same, but an import that changes nothing writes nothing,
    /// so syncing often does not fill the log.
    pub async fn import_changes(
        &self,
        file: &BoardFile,
        actor: &str,
    ) -> Result<ImportReport, StoreError> {
        self.import(file, actor, false).await
    }

    async fn import(
        &self,
        file: &BoardFile,
        actor: &str,
        always_logged: bool,
    ) -> Result<ImportReport, StoreError> {
        let txn = self.write().await?;
        let at = now();
        let current = load_all(&txn, &[]).await?;
        let existing: Vec<ExistingTask> = current
            .iter()
            .map(|t| ExistingTask {
                id: t.id,
                key: t.key.clone(),
                depends_on: t.depends_on.clone(),
            })
            .collect();
        let plan = board::plan_import(file, &existing)?;
        // First give every entry an id, then write dependencies, which may point
        // forward in the file.
        let ids = assign_ids(&txn, &plan, at).await?;
        let by_id: BTreeMap<TaskId, &orch_core::Task> = current.iter().map(|t| (t.id, t)).collect();
        let mut report = ImportReport::default();
        for (i, p) in plan.iter().enumerate() {
            let (id, created) = ids[i];
            let mut deps: Vec<TaskId> = p
                .deps
                .iter()
                .map(|d| match d {
                    DepRef::Existing(id) => *id,
                    DepRef::InFile(j) => ids[*j].0,
                })
                .collect();
            deps.sort();
            deps.dedup();
            let entry = (p.task.key.clone(), id);
            if created {
                write_deps(&txn, id, &deps).await?;
                log_created(&txn, id, at, actor).await?;
                report.created.push(entry);
            } else if update(&txn, by_id[&id], &p.task, deps, at, actor).await? {
                report.updated.push(entry);
            } else {
                report.unchanged.push(entry);
            }
        }
        if always_logged || !report.created.is_empty() || !report.updated.is_empty() {
            log_import(&txn, plan.len(), &report, at, actor).await?;
        }
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing an import"))?;
        Ok(report)
    }

    /// The whole board as a board file, ordered by id, dependencies as keys.
    pub async fn export_board(&self) -> Result<BoardFile, StoreError> {
        let tasks = load_all(&self.db, &[]).await?;
        let keys: BTreeMap<TaskId, String> = tasks.iter().map(|t| (t.id, t.key.clone())).collect();
        Ok(BoardFile {
            tasks: tasks
                .into_iter()
                .map(|t| BoardTask {
                    after: t.depends_on.iter().map(|d| keys[d].clone()).collect(),
                    key: t.key,
                    title: t.title,
                    body: t.body,
                    priority: t.priority,
                    labels: t.labels,
                    touches: t.touches,
                    // Already in the body, as the `Reverts:` line the import wrote.
                    reverts: Vec::new(),
                })
                .collect(),
        })
    }
}

/// Every entry's id, inserting the new ones (without dependencies yet); true for new.
async fn assign_ids<C: ConnectionTrait>(
    txn: &C,
    plan: &[board::PlannedTask],
    at: Timestamp,
) -> Result<Vec<(TaskId, bool)>, StoreError> {
    let mut ids = Vec::with_capacity(plan.len());
    for p in plan {
        let id = match p.existing {
            Some(id) => (id, false),
            None => {
                let new = NewTask {
                    key: Some(p.task.key.clone()),
                    title: p.task.title.clone(),
                    body: p.task.body.clone(),
                    priority: p.task.priority,
                    depends_on: Vec::new(),
                    labels: p.task.labels.clone(),
                    touches: p.task.touches.clone(),
                };
                (insert(txn, &new, at).await?.0, true)
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

async fn log_created<C: ConnectionTrait>(
    txn: &C,
    id: TaskId,
    at: Timestamp,
    actor: &str,
) -> Result<(), StoreError> {
    let task = load(txn, id).await?;
    events::append(
        txn,
        NewEvent {
            run_id: None,
            at,
            task_id: Some(id),
            kind: kind::TASK_CREATED,
            reason: "created by board import".into(),
            actor,
            payload: task_payload(&task),
        },
    )
    .await
}

/// Updates an existing task to its entry; false when nothing changed.
async fn update<C: ConnectionTrait>(
    txn: &C,
    before: &orch_core::Task,
    entry: &BoardTask,
    deps: Vec<TaskId>,
    at: Timestamp,
    actor: &str,
) -> Result<bool, StoreError> {
    let mut after = before.clone();
    after.title = entry.title.clone();
    after.body = entry.body.clone();
    after.priority = entry.priority;
    after.labels = entry.labels.clone();
    after.touches = entry.touches.clone();
    after.depends_on = deps;
    let changed: Vec<&str> = [
        ("title", before.title != after.title),
        ("body", before.body != after.body),
        ("priority", before.priority != after.priority),
        ("depends_on", before.depends_on != after.depends_on),
        ("labels", before.labels != after.labels),
        ("touches", before.touches != after.touches),
    ]
    .into_iter()
    .filter_map(|(f, c)| c.then_some(f))
    .collect();
    if changed.is_empty() {
        return Ok(false);
    }
    if changed.contains(&"depends_on") {
        write_deps(txn, before.id, &after.depends_on).await?;
    }
    after.updated_at = at;
    write_fields(txn, &after).await?;
    events::append(
        txn,
        NewEvent {
            run_id: None,
            at,
            task_id: Some(before.id),
            kind: kind::TASK_UPDATED,
            reason: format!("board import changed {}", changed.join(", ")),
            actor,
            payload: diff(before, &after, &changed),
        },
    )
    .await?;
    Ok(true)
}

async fn log_import<C: ConnectionTrait>(
    txn: &C,
    total: usize,
    report: &ImportReport,
    at: Timestamp,
    actor: &str,
) -> Result<(), StoreError> {
    events::append(
        txn,
        NewEvent {
            run_id: None,
            at,
            task_id: None,
            kind: kind::BOARD_IMPORTED,
            reason: format!(
                "imported {total} tasks: {} created, {} updated, {} unchanged",
                report.created.len(),
                report.updated.len(),
                report.unchanged.len()
            ),
            actor,
            payload: json!({
                "created": report.created.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                "updated": report.updated.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            }),
        },
    )
    .await
}
