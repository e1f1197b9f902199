//! Writing and reading the append-only audit log.

use orch_core::event::Event;
use orch_core::{TaskId, Timestamp};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::entity::event;
use crate::{Store, StoreError};

/// An event about to be appended. `seq` is assigned by the database.
pub(crate) struct NewEvent<'a> {
    pub run_id: Option<String>,
    pub at: Timestamp,
    pub task_id: Option<TaskId>,
    pub kind: &'a str,
    pub reason: String,
    pub actor: &'a str,
    pub payload: serde_json::Value,
}

pub(crate) async fn append<C: ConnectionTrait>(db: &C, e: NewEvent<'_>) -> Result<(), StoreError> {
    event::ActiveModel {
        seq: NotSet,
        at: Set(e.at.as_millis()),
        run_id: Set(e.run_id),
        task_id: Set(e.task_id.map(|t| t.0)),
        attempt: Set(None),
        kind: Set(e.kind.to_owned()),
        reason: Set(e.reason),
        actor: Set(e.actor.to_owned()),
        payload: Set(e.payload.to_string()),
    }
    .insert(db)
    .await
    .map_err(|err| StoreError::from_db(err, "appending an event"))?;
    Ok(())
}

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events about this task.
    pub task: Option<TaskId>,
    /// Only events of this run.
    pub run: Option<String>,
    /// Only events with `seq` greater than this (for following).
    pub after_seq: Option<i64>,
    /// Only events with `seq` less than this (for paging back).
    pub before_seq: Option<i64>,
    /// At most this many (the oldest first).
    pub limit: Option<u64>,
    /// Only events whose kind is this or starts with it (`attempt.` for every attempt
    /// event).
    pub kind: Option<String>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only the newest this many of those that match, still in log order.
    pub last: Option<u64>,
}

impl Store {
    /// Reads events in log order.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut q = event::Entity::find();
        if let Some(t) = filter.task {
            q = q.filter(event::Column::TaskId.eq(t.0));
        }
        if let Some(r) = &filter.run {
            q = q.filter(event::Column::RunId.eq(r.clone()));
        }
        if let Some(s) = filter.after_seq {
            q = q.filter(event::Column::Seq.gt(s));
        }
        if let Some(s) = filter.before_seq {
            q = q.filter(event::Column::Seq.lt(s));
        }
        if let Some(k) = &filter.kind {
            q = q.filter(event::Column::Kind.starts_with(k));
        }
        if let Some(t) = filter.since {
            q = q.filter(event::Column::At.gte(t.as_millis()));
        }
        q = match (filter.last, filter.limit) {
            // The newest n, read newest first, then put back in log order.
            (Some(n), _) => q.order_by_desc(event::Column::Seq).limit(n),
            (None, Some(n)) => q.order_by_asc(event::Column::Seq).limit(n),
            (None, None) => q.order_by_asc(event::Column::Seq),
        };
        let mut rows = q
            .all(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading events"))?;
        rows.sort_by_key(|r| r.seq);
        rows.into_iter().map(to_domain).collect()
    }

    /// The newest event's `seq` (0 for an empty log): where a live view starts.
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let row = event::Entity::find()
            .order_by_desc(event::Column::Seq)
            .one(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading the newest event"))?;
        Ok(row.map_or(0, |r| r.seq))
    }
}

fn to_domain(m: event::Model) -> Result<Event, StoreError> {
    let payload = serde_json::from_str(&m.payload).map_err(|e| StoreError::Corrupt {
        table: "events",
        message: format!("event {} has a payload that is not JSON: {e}", m.seq),
    })?;
    Ok(Event {
        seq: m.seq,
        at: Timestamp(m.at),
        run_id: m.run_id,
        task_id: m.task_id.map(TaskId),
        attempt: m.attempt,
        kind: m.kind,
        reason: m.reason,
        actor: m.actor,
        payload,
    })
}
