//! The tails of attempts' logs that workers on other machines ran, kept in the store
//! (`attempt_logs`), so any machine with the database can show them.

use orch_core::TaskId;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, QueryFilter, QueryOrder, Set};

use crate::entity::attempt_log;
use crate::{Store, StoreError, now};

/// One log of one attempt, as a worker saved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLog {
    /// The run.
    pub run: String,
    /// The attempt's number.
    pub attempt: u32,
    /// The file's name (`agent.log`, `worker-1.log`).
    pub name: String,
    /// The worker that ran it.
    pub worker: String,
    /// Its tail.
    pub text: String,
}

fn err(doing: &'static str) -> impl Fn(sea_orm::DbErr) -> StoreError {
    move |e| StoreError::from_db(e, doing)
}

impl Store {
    /// Saves an attempt's logs (`(name, text)`), replacing what an earlier owner of
    /// its job saved.
    pub async fn save_logs(
        &self,
        run: &str,
        task: TaskId,
        attempt: u32,
        worker: &str,
        logs: &[(String, String)],
    ) -> Result<(), StoreError> {
        let txn = self.write().await?;
        attempt_log::Entity::delete_many()
            .filter(attempt_log::Column::RunId.eq(run))
            .filter(attempt_log::Column::TaskId.eq(task.0))
            .filter(attempt_log::Column::Attempt.eq(i64::from(attempt)))
            .exec(&txn)
            .await
            .map_err(err("saving logs"))?;
        let at = now().as_millis();
        for (name, text) in logs {
            attempt_log::ActiveModel {
                id: NotSet,
                run_id: Set(run.to_owned()),
                task_id: Set(task.0),
                attempt: Set(i64::from(attempt)),
                name: Set(name.clone()),
                worker: Set(worker.to_owned()),
                text: Set(text.clone()),
                created_at: Set(at),
            }
            .insert(&txn)
            .await
            .map_err(err("saving logs"))?;
        }
        txn.commit().await.map_err(err("saving logs"))
    }

    /// The saved logs of `task`'s attempts (in `run`, or every run).
    pub async fn stored_logs(
        &self,
        run: Option<&str>,
        task: TaskId,
    ) -> Result<Vec<StoredLog>, StoreError> {
        let mut q = attempt_log::Entity::find()
            .filter(attempt_log::Column::TaskId.eq(task.0))
            .order_by_asc(attempt_log::Column::Id);
        if let Some(r) = run {
            q = q.filter(attempt_log::Column::RunId.eq(r));
        }
        let rows = q.all(&self.db).await.map_err(err("reading logs"))?;
        Ok(rows
            .into_iter()
            .map(|m| StoredLog {
                run: m.run_id,
                attempt: u32::try_from(m.attempt).unwrap_or(0),
                name: m.name,
                worker: m.worker,
                text: m.text,
            })
            .collect())
    }
}
