//! Retries that wait for other tasks' work in flight, as the journals of runs that
//! have not ended tell it: for `orch board` and the dashboard, which show such a task
//! as waiting, and on what.

use std::collections::BTreeMap;

use orch_core::TaskId;
use orch_core::run::RunEvent;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::event;
use crate::{Store, StoreError};

impl Store {
    /// Each task whose retry waits now, with the tasks whose work it waits for: its
    /// run's newest `run.retry_waits` for it, with no attempt of it created since, in
    /// a run that has not ended.
    pub async fn retries_waiting(&self) -> Result<BTreeMap<TaskId, Vec<TaskId>>, StoreError> {
        let live: Vec<String> = self
            .runs()
            .await?
            .into_iter()
            .filter(|r| !r.state.is_terminal())
            .map(|r| r.id.0)
            .collect();
        if live.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = event::Entity::find()
            .filter(event::Column::RunId.is_in(live))
            .filter(event::Column::Kind.is_in(["run.retry_waits", "attempt.created"]))
            .order_by_asc(event::Column::Seq)
            .all(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading waiting retries"))?;
        let mut out = BTreeMap::new();
        for r in rows {
            match serde_json::from_str::<RunEvent>(&r.payload) {
                Ok(RunEvent::RetryWaits { task, on, .. }) => {
                    out.insert(task, on);
                }
                Ok(RunEvent::AttemptCreated { attempt, .. }) => {
                    out.remove(&attempt.task);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
