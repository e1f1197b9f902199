//! Task operations: each is one write transaction that also appends its event.

use std::collections::BTreeMap;

use orch_core::deps::DepGraph;
use orch_core::event::kind;
use orch_core::task::{NewTask, TaskEdit};
use orch_core::transition::{self, Actor, Move};
use orch_core::{Task, TaskId, TaskStatus};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel,
    NotSet, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

use crate::entity::{task, task_dep};
use crate::events::{self, NewEvent};
use crate::{Store, StoreError, now};

/// A request to move a task to another column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRequest {
    /// Where to.
    pub to: TaskStatus,
    /// Who asks.
    pub actor: Actor,
    /// Force a move outside the transition table (humans only), recorded as an override.
    pub force: bool,
    /// Why, for the audit log.
    pub reason: Option<String>,
}

fn db_err(doing: &'static str) -> impl Fn(sea_orm::DbErr) -> StoreError {
    move |e| StoreError::from_db(e, doing)
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings always serialises")
}

fn parse_list(
    table: &'static str,
    id: i64,
    field: &str,
    s: &str,
) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        table,
        message: format!("task {id} has {field} that is not a JSON list of strings: {e}"),
    })
}

pub(crate) fn to_domain(m: task::Model, depends_on: Vec<TaskId>) -> Result<Task, StoreError> {
    let status = m
        .status
        .parse::<TaskStatus>()
        .map_err(|e| StoreError::Corrupt {
            table: "tasks",
            message: format!("task {}: {e}", m.id),
        })?;
    Ok(Task {
        id: TaskId(m.id),
        labels: parse_list("tasks", m.id, "labels", &m.labels)?,
        touches: parse_list("tasks", m.id, "touches", &m.touches)?,
        review: m
            .review
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                table: "tasks",
                message: format!("task {} has a review that does not parse: {e}", m.id),
            })?,
        key: m.key,
        title: m.title,
        body: m.body,
        status,
        priority: m.priority,
        depends_on,
        created_at: orch_core::Timestamp(m.created_at),
        updated_at: orch_core::Timestamp(m.updated_at),
    })
}

/// Every dependency edge, grouped by task.
pub(crate) async fn all_deps<C: ConnectionTrait>(
    db: &C,
) -> Result<BTreeMap<TaskId, Vec<TaskId>>, StoreError> {
    let rows = task_dep::Entity::find()
        .order_by_asc(task_dep::Column::TaskId)
        .order_by_asc(task_dep::Column::DependsOn)
        .all(db)
        .await
        .map_err(db_err("reading dependencies"))?;
    let mut map: BTreeMap<TaskId, Vec<TaskId>> = BTreeMap::new();
    for r in rows {
        map.entry(TaskId(r.task_id))
            .or_default()
            .push(TaskId(r.depends_on));
    }
    Ok(map)
}

pub(crate) async fn load<C: ConnectionTrait>(db: &C, id: TaskId) -> Result<Task, StoreError> {
    let m = task::Entity::find_by_id(id.0)
        .one(db)
        .await
        .map_err(db_err("reading a task"))?
        .ok_or(StoreError::TaskNotFound(id))?;
    let deps = task_dep::Entity::find()
        .filter(task_dep::Column::TaskId.eq(id.0))
        .order_by_asc(task_dep::Column::DependsOn)
        .all(db)
        .await
        .map_err(db_err("reading dependencies"))?
        .into_iter()
        .map(|d| TaskId(d.depends_on))
        .collect();
    to_domain(m, deps)
}

pub(crate) async fn load_all<C: ConnectionTrait>(
    db: &C,
    statuses: &[TaskStatus],
) -> Result<Vec<Task>, StoreError> {
    let mut q = task::Entity::find().order_by_asc(task::Column::Id);
    if !statuses.is_empty() {
        q = q.filter(task::Column::Status.is_in(statuses.iter().map(|s| s.as_str())));
    }
    let rows = q.all(db).await.map_err(db_err("listing tasks"))?;
    let mut deps = all_deps(db).await?;
    rows.into_iter()
        .map(|m| {
            let d = deps.remove(&TaskId(m.id)).unwrap_or_default();
            to_domain(m, d)
        })
        .collect()
}

/// The dependency graph of the whole board.
pub(crate) async fn graph<C: ConnectionTrait>(db: &C) -> Result<DepGraph, StoreError> {
    let ids = task::Entity::find()
        .all(db)
        .await
        .map_err(db_err("reading tasks"))?;
    let mut deps = all_deps(db).await?;
    Ok(DepGraph::new(ids.into_iter().map(|m| {
        let id = TaskId(m.id);
        (id, deps.remove(&id).unwrap_or_default())
    })))
}

pub(crate) async fn key_owner<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<TaskId>, StoreError> {
    Ok(task::Entity::find()
        .filter(task::Column::Key.eq(key))
        .one(db)
        .await
        .map_err(db_err("looking up a key"))?
        .map(|m| TaskId(m.id)))
}

/// Inserts a validated task (without dependencies) and returns its id. Without a key,
/// the task gets `task-<id>` (or `task-<id>-<n>` if a person already took that key).
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    t: &NewTask,
    at: orch_core::Timestamp,
) -> Result<(TaskId, String), StoreError> {
    if let Some(k) = &t.key
        && let Some(owner) = key_owner(db, k).await?
    {
        return Err(StoreError::KeyTaken {
            key: k.clone(),
            owner,
        });
    }
    // `~` is not allowed in keys, so the placeholder cannot collide with a real key.
    let placeholder = format!("~pending-{}", at.as_millis());
    let m = task::ActiveModel {
        id: NotSet,
        key: Set(t.key.clone().unwrap_or(placeholder)),
        title: Set(t.title.clone()),
        body: Set(t.body.clone()),
        status: Set(TaskStatus::Backlog.as_str().to_owned()),
        priority: Set(t.priority),
        labels: Set(json_list(&t.labels)),
        touches: Set(json_list(&t.touches)),
        review: Set(None),
        created_at: Set(at.as_millis()),
        updated_at: Set(at.as_millis()),
    }
    .insert(db)
    .await
    .map_err(db_err("inserting a task"))?;
    let id = TaskId(m.id);
    if t.key.is_some() {
        return Ok((id, m.key));
    }
    let mut key = format!("task-{id}");
    let mut n = 2;
    while key_owner(db, &key).await?.is_some() {
        key = format!("task-{id}-{n}");
        n += 1;
    }
    let mut am = m.into_active_model();
    am.key = Set(key.clone());
    am.update(db).await.map_err(db_err("naming a task"))?;
    Ok((id, key))
}

/// Replaces a task's dependency rows. The caller has checked the graph.
pub(crate) async fn write_deps<C: ConnectionTrait>(
    db: &C,
    id: TaskId,
    deps: &[TaskId],
) -> Result<(), StoreError> {
    task_dep::Entity::delete_many()
        .filter(task_dep::Column::TaskId.eq(id.0))
        .exec(db)
        .await
        .map_err(db_err("replacing dependencies"))?;
    if deps.is_empty() {
        return Ok(());
    }
    task_dep::Entity::insert_many(deps.iter().map(|d| task_dep::ActiveModel {
        task_id: Set(id.0),
        depends_on: Set(d.0),
    }))
    .exec(db)
    .await
    .map_err(db_err("writing dependencies"))?;
    Ok(())
}

/// Writes a task's editable fields back.
pub(crate) async fn write_fields<C: ConnectionTrait>(db: &C, t: &Task) -> Result<(), StoreError> {
    task::ActiveModel {
        id: Set(t.id.0),
        title: Set(t.title.clone()),
        body: Set(t.body.clone()),
        priority: Set(t.priority),
        labels: Set(json_list(&t.labels)),
        touches: Set(json_list(&t.touches)),
        updated_at: Set(t.updated_at.as_millis()),
        ..Default::default()
    }
    .update(db)
    .await
    .map_err(db_err("updating a task"))?;
    Ok(())
}

/// A task as an event payload. Timestamps are left out: the event's `at` says when.
pub(crate) fn task_payload(t: &Task) -> serde_json::Value {
    let mut v = serde_json::to_value(t).expect("a task always serialises");
    if let Some(m) = v.as_object_mut() {
        m.remove("created_at");
        m.remove("updated_at");
    }
    v
}

/// A field-by-field description of what an edit changed, for the event payload.
pub(crate) fn diff(before: &Task, after: &Task, fields: &[&str]) -> serde_json::Value {
    let b = serde_json::to_value(before).expect("a task always serialises");
    let a = serde_json::to_value(after).expect("a task always serialises");
    let mut m = serde_json::Map::new();
    for f in fields {
        m.insert((*f).to_owned(), json!({ "from": b[*f], "to": a[*f] }));
    }
    serde_json::Value::Object(m)
}

impl Store {
    /// Adds a task to the backlog. Dependencies must exist.
    pub async fn add_task(&self, new: NewTask, actor: &str) -> Result<Task, StoreError> {
        let new = new.validate()?;
        let txn = self.write().await?;
        let at = now();
        let mut g = graph(&txn).await?;
        let (id, _) = insert(&txn, &new, at).await?;
        // Unknown dependencies and cycles are refused here; returning drops `txn`,
        // which rolls the insert back.
        g.set_deps(id, &new.depends_on)?;
        write_deps(&txn, id, &new.depends_on).await?;
        let task = load(&txn, id).await?;
        events::append(
            &txn,
            NewEvent {
                run_id: None,
                at,
                task_id: Some(id),
                kind: kind::TASK_CREATED,
                reason: "added to the backlog".into(),
                actor,
                payload: task_payload(&task),
            },
        )
        .await?;
        txn.commit().await.map_err(db_err("committing"))?;
        Ok(task)
    }

    /// One task.
    pub async fn task(&self, id: TaskId) -> Result<Task, StoreError> {
        load(&self.db, id).await
    }

    /// Tasks with any of `statuses` (all when empty), by id.
    pub async fn tasks(&self, statuses: &[TaskStatus]) -> Result<Vec<Task>, StoreError> {
        load_all(&self.db, statuses).await
    }

    /// Edits a task's fields and dependencies. An edit that changes nothing writes nothing.
    /// The dependencies of a task a run owns are refused ([`StoreError::DepsOfOwned`]):
    /// the run claimed it on the ones it had.
    pub async fn edit_task(
        &self,
        id: TaskId,
        edit: &TaskEdit,
        actor: &str,
    ) -> Result<Task, StoreError> {
        let txn = self.write().await?;
        let before = load(&txn, id).await?;
        let mut after = before.clone();
        let changed = edit.apply(&mut after)?;
        if changed.is_empty() {
            return Ok(before);
        }
        if changed.contains(&"depends_on") {
            if before.status == TaskStatus::InProgress {
                return Err(StoreError::DepsOfOwned(id));
            }
            graph(&txn).await?.set_deps(id, &after.depends_on)?;
            write_deps(&txn, id, &after.depends_on).await?;
        }
        after.updated_at = now();
        write_fields(&txn, &after).await?;
        events::append(
            &txn,
            NewEvent {
                run_id: None,
                at: after.updated_at,
                task_id: Some(id),
                kind: kind::TASK_UPDATED,
                reason: format!("edited {}", changed.join(", ")),
                actor,
                payload: diff(&before, &after, &changed),
            },
        )
        .await?;
        txn.commit().await.map_err(db_err("committing"))?;
        Ok(after)
    }

    /// Moves a task along the transition table, or forces it (recorded as an override).
    pub async fn move_task(
        &self,
        id: TaskId,
        req: &MoveRequest,
        actor: &str,
    ) -> Result<Task, StoreError> {
        let txn = self.write().await?;
        let mut t = load(&txn, id).await?;
        let from = t.status;
        let mv = transition::check_move(from, req.to, req.actor, req.force)
            .map_err(|reason| StoreError::Move { task: id, reason })?;
        t.status = req.to;
        t.updated_at = now();
        // A person's move ends a review under way: only a review decision keeps one.
        let ended_review = req.actor == Actor::Human && t.review.take().is_some();
        task::ActiveModel {
            id: Set(id.0),
            status: Set(req.to.as_str().to_owned()),
            review: match ended_review {
                true => Set(None),
                false => NotSet,
            },
            updated_at: Set(t.updated_at.as_millis()),
            ..Default::default()
        }
        .update(&txn)
        .await
        .map_err(db_err("moving a task"))?;
        let (kind, name) = match mv {
            Move::Regular(name) => (kind::TASK_MOVED, name),
            Move::Override => (kind::TASK_OVERRIDE, "manual override"),
        };
        let reason = req.reason.clone().unwrap_or_else(|| name.to_owned());
        events::append(
            &txn,
            NewEvent {
                run_id: None,
                at: t.updated_at,
                task_id: Some(id),
                kind,
                reason,
                actor,
                payload: json!({ "from": from, "to": req.to, "move": name, "forced": req.force }),
            },
        )
        .await?;
        txn.commit().await.map_err(db_err("committing"))?;
        Ok(t)
    }

    /// Removes a task. Refused while other tasks depend on it or a run owns it, unless
    /// `force`, which detaches the dependents. The task's events stay in the log.
    pub async fn remove_task(
        &self,
        id: TaskId,
        force: bool,
        actor: &str,
    ) -> Result<Task, StoreError> {
        let txn = self.write().await?;
        let t = load(&txn, id).await?;
        let dependents = graph(&txn).await?.dependents(id);
        if !force {
            if t.status == TaskStatus::InProgress {
                return Err(StoreError::Owned(id));
            }
            if !dependents.is_empty() {
                return Err(StoreError::HasDependents {
                    task: id,
                    dependents,
                });
            }
        }
        task_dep::Entity::delete_many()
            .filter(
                task_dep::Column::TaskId
                    .eq(id.0)
                    .or(task_dep::Column::DependsOn.eq(id.0)),
            )
            .exec(&txn)
            .await
            .map_err(db_err("removing dependencies"))?;
        task::Entity::delete_by_id(id.0)
            .exec(&txn)
            .await
            .map_err(db_err("removing a task"))?;
        events::append(
            &txn,
            NewEvent {
                run_id: None,
                at: now(),
                task_id: Some(id),
                kind: kind::TASK_REMOVED,
                reason: if dependents.is_empty() {
                    "removed from the board".into()
                } else {
                    format!(
                        "removed from the board, detaching dependents {}",
                        dependents
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                actor,
                payload: json!({ "task": task_payload(&t), "forced": force, "detached_dependents": dependents }),
            },
        )
        .await?;
        txn.commit().await.map_err(db_err("committing"))?;
        Ok(t)
    }
}
