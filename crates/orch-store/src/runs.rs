//! Runs and their journals. A run's journal is its `events` rows; appending a batch of
//! core `RunEvent`s also applies their projections (task statuses, the run's state) in
//! the same transaction, so the board and the journal never disagree.

use orch_core::run::{CommitId, Journaled, RunEvent, RunId, RunState};
use orch_core::{TaskId, TaskStatus, Timestamp};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, NotSet, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use crate::entity::{event, run, task};
use crate::{Store, StoreError, now};

/// The kind of the event that opens a run's journal (not a core `RunEvent`).
pub const RUN_CREATED: &str = "run.created";

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Its id.
    pub id: RunId,
    /// Its state (a projection of its journal).
    pub state: RunState,
    /// The resolved configuration it runs with.
    pub config: serde_json::Value,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

fn state_name(s: RunState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .expect("run states serialise as strings")
}

fn to_info(m: run::Model) -> Result<RunInfo, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        table: "runs",
        message,
    };
    Ok(RunInfo {
        state: serde_json::from_value(serde_json::Value::String(m.state.clone()))
            .map_err(|e| corrupt(format!("run {}: state {:?}: {e}", m.id, m.state)))?,
        config: serde_json::from_str(&m.config)
            .map_err(|e| corrupt(format!("run {}: config: {e}", m.id)))?,
        id: RunId(m.id),
        created_at: Timestamp(m.created_at),
        updated_at: Timestamp(m.updated_at),
    })
}

impl Store {
    /// Records a new run with its resolved configuration.
    pub async fn create_run(
        &self,
        id: &RunId,
        config: &serde_json::Value,
        actor: &str,
    ) -> Result<RunInfo, StoreError> {
        let txn = self.write().await?;
        if run::Entity::find_by_id(id.0.clone())
            .one(&txn)
            .await
            .map_err(|e| StoreError::from_db(e, "reading a run"))?
            .is_some()
        {
            return Err(StoreError::RunExists(id.0.clone()));
        }
        let at = now();
        let m = run::ActiveModel {
            id: Set(id.0.clone()),
            state: Set(state_name(RunState::Created)),
            config: Set(config.to_string()),
            created_at: Set(at.as_millis()),
            updated_at: Set(at.as_millis()),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_db(e, "creating a run"))?;
        event::ActiveModel {
            seq: NotSet,
            at: Set(at.as_millis()),
            run_id: Set(Some(id.0.clone())),
            task_id: Set(None),
            attempt: Set(None),
            kind: Set(RUN_CREATED.into()),
            reason: Set("run created".into()),
            actor: Set(actor.into()),
            payload: Set(serde_json::json!({ "config": config }).to_string()),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_db(e, "journaling a run"))?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing"))?;
        to_info(m)
    }

    /// Appends core events to a run's journal and applies their projections, all in
    /// one transaction, each stamped with the time the core decided it at. A claim
    /// (a move to `in_progress`) is a compare-and-swap: if the task is no longer where
    /// the run saw it, or is gone, the whole batch is refused ([`StoreError::ClaimLost`]).
    /// Any other move of the run applies only if the task is still where the run left
    /// it: a person's move since then wins, and the journal still records the run's.
    pub async fn append_run_events(
        &self,
        id: &RunId,
        events: &[Journaled],
        actor: &str,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let txn = self.write().await?;
        append_in(&txn, id, events, actor).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing"))
    }

    /// A run's journal, in order: the core events only.
    pub async fn run_events(&self, id: &RunId) -> Result<Vec<RunEvent>, StoreError> {
        Ok(self
            .run_journal(id)
            .await?
            .into_iter()
            .map(|j| j.event)
            .collect())
    }

    /// Whether some run validated `commit` for its integration branch: an attempt's
    /// merge that passed the integration gate (journaled before its ref moves), or a
    /// branch a run landed there. How a run on a shared line tells another run's
    /// landing from a ref moved outside orch.
    pub async fn validated_by_a_run(&self, commit: &CommitId) -> Result<bool, StoreError> {
        let found = event::Entity::find()
            .filter(event::Column::Kind.is_in(["attempt.integration_passed", "run.landed"]))
            .filter(event::Column::Payload.contains(&commit.0))
            .one(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "looking for a validated commit"))?;
        Ok(found.is_some())
    }

    /// A run's journal, in order, each event with the time the core decided it at:
    /// replaying it reproduces the core's deadlines.
    pub async fn run_journal(&self, id: &RunId) -> Result<Vec<Journaled>, StoreError> {
        let rows = event::Entity::find()
            .filter(event::Column::RunId.eq(id.0.clone()))
            .filter(event::Column::Kind.is_not_in([
                RUN_CREATED,
                crate::LEASE_ACQUIRED,
                crate::LEASE_TAKEN_OVER,
                orch_core::event::kind::CONTROL_REQUESTED,
                crate::JOB_INTERRUPTED,
            ]))
            .order_by_asc(event::Column::Seq)
            .all(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading a journal"))?;
        rows.into_iter()
            .map(|r| {
                let event = serde_json::from_str(&r.payload).map_err(|e| StoreError::Corrupt {
                    table: "events",
                    message: format!("event {} of run {} is not a run event: {e}", r.seq, id.0),
                })?;
                Ok(Journaled {
                    at: Timestamp(r.at),
                    event,
                })
            })
            .collect()
    }

    /// A run's claims, in one transaction: each `event` (a move to `in_progress`)
    /// appended as [`Store::append_run_events`] does, but refused with
    /// [`StoreError::TaskChanged`] if anyone but the run wrote an event about its task
    /// after the board version it was decided on, or with [`StoreError::ClaimLost`]
    /// if the task is no longer where the run saw it. Each claim stands alone: a
    /// refused one writes nothing and the others go on. One answer per claim, in
    /// order; a store error (busy, unreachable) refuses the whole batch.
    pub async fn claim_tasks(
        &self,
        id: &RunId,
        claims: &[(Journaled, i64)],
        actor: &str,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let txn = self.write().await?;
        let mut answers = Vec::with_capacity(claims.len());
        for (event, seen) in claims {
            answers.push(claim_in(&txn, id, event, *seen, actor).await?);
        }
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing"))?;
        Ok(answers)
    }

    /// The newest event that this run did not write (a person's board change, another
    /// run's move): when it changes, the board may have. Polled by a live run.
    pub async fn board_version(&self, id: &RunId) -> Result<i64, StoreError> {
        Ok(newest_foreign_event(&self.db, id, None).await?.unwrap_or(0))
    }

    /// One run.
    pub async fn run(&self, id: &RunId) -> Result<RunInfo, StoreError> {
        let m = run::Entity::find_by_id(id.0.clone())
            .one(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading a run"))?
            .ok_or_else(|| StoreError::RunNotFound(id.0.clone()))?;
        to_info(m)
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunInfo>, StoreError> {
        run::Entity::find()
            .order_by_desc(run::Column::CreatedAt)
            .order_by_desc(run::Column::Id)
            .all(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "listing runs"))?
            .into_iter()
            .map(to_info)
            .collect()
    }
}

/// Moves `t` to `in_progress` only if it is still `from`.
async fn claim<C: sea_orm::ConnectionTrait>(
    db: &C,
    t: TaskId,
    from: TaskStatus,
    at: Timestamp,
) -> Result<(), StoreError> {
    use sea_orm::sea_query::Expr;
    let done = task::Entity::update_many()
        .col_expr(
            task::Column::Status,
            Expr::value(TaskStatus::InProgress.as_str()),
        )
        .col_expr(task::Column::UpdatedAt, Expr::value(at.as_millis()))
        .filter(task::Column::Id.eq(t.0))
        .filter(task::Column::Status.eq(from.as_str()))
        .exec(db)
        .await
        .map_err(|e| StoreError::from_db(e, "claiming a task"))?;
    if done.rows_affected == 1 {
        return Ok(());
    }
    let actual = task::Entity::find_by_id(t.0)
        .one(db)
        .await
        .map_err(|e| StoreError::from_db(e, "reading a task"))?;
    Err(StoreError::ClaimLost {
        task: t,
        expected: from.as_str().to_owned(),
        actual: actual.map_or_else(|| "removed from the board".to_owned(), |m| m.status),
    })
}

/// Moves `t` to `to` only if it is still `from`: a person's move since the run's last
/// look wins (the run hears of it as a board change), and a removed task stays removed.
async fn set_status<C: sea_orm::ConnectionTrait>(
    db: &C,
    t: TaskId,
    from: TaskStatus,
    to: TaskStatus,
    at: Timestamp,
) -> Result<(), StoreError> {
    use sea_orm::sea_query::Expr;
    task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value(to.as_str()))
        .col_expr(task::Column::UpdatedAt, Expr::value(at.as_millis()))
        .filter(task::Column::Id.eq(t.0))
        .filter(task::Column::Status.eq(from.as_str()))
        .exec(db)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::from_db(e, "moving a task"))
}

/// One claim of a batch, under a savepoint: its refusal (`Ok(Err(..))`) leaves
/// nothing of it behind; a store error ends the batch.
async fn claim_in(
    txn: &DatabaseTransaction,
    id: &RunId,
    event: &Journaled,
    seen: i64,
    actor: &str,
) -> Result<Result<(), StoreError>, StoreError> {
    if let Some(task) = event.event.task()
        && let Some(seq) = newest_foreign_event(txn, id, Some(task))
            .await?
            .filter(|s| *s > seen)
    {
        return Ok(Err(StoreError::TaskChanged { task, seq }));
    }
    let one = txn
        .begin()
        .await
        .map_err(|e| StoreError::from_db(e, "starting a claim"))?;
    match append_in(&one, id, std::slice::from_ref(event), actor).await {
        Ok(()) => {
            one.commit()
                .await
                .map_err(|e| StoreError::from_db(e, "committing a claim"))?;
            Ok(Ok(()))
        }
        Err(e @ StoreError::ClaimLost { .. }) => {
            one.rollback()
                .await
                .map_err(|e| StoreError::from_db(e, "undoing a lost claim"))?;
            Ok(Err(e))
        }
        Err(e) => Err(e),
    }
}

/// Journals `events` in `txn` and applies their projections.
async fn append_in<C: sea_orm::ConnectionTrait>(
    txn: &C,
    id: &RunId,
    events: &[Journaled],
    actor: &str,
) -> Result<(), StoreError> {
    for Journaled { at, event: e } in events {
        let at = *at;
        event::ActiveModel {
            seq: NotSet,
            at: Set(at.as_millis()),
            run_id: Set(Some(id.0.clone())),
            task_id: Set(e.task().map(|t| t.0)),
            attempt: Set(e.attempt().map(i64::from)),
            kind: Set(e.kind().into()),
            reason: Set(e.reason()),
            actor: Set(actor.into()),
            payload: Set(serde_json::to_string(e).expect("run events always serialise")),
        }
        .insert(txn)
        .await
        .map_err(|err| StoreError::from_db(err, "journaling a run event"))?;
        crate::projections::project(txn, id, e, at).await?;
        match e {
            // A claim is a compare-and-swap: two runs never both take a task.
            RunEvent::TaskMoved {
                task: t,
                from,
                to: TaskStatus::InProgress,
                ..
            } => claim(txn, *t, *from, at).await?,
            RunEvent::TaskMoved {
                task: t, from, to, ..
            } => set_status(txn, *t, *from, *to, at).await?,
            RunEvent::RunMoved { to, .. } => {
                run::ActiveModel {
                    id: Set(id.0.clone()),
                    state: Set(state_name(*to)),
                    updated_at: Set(at.as_millis()),
                    ..Default::default()
                }
                .update(txn)
                .await
                .map_err(|err| StoreError::from_db(err, "updating a run"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The newest event (about `task`, or any) that run `id` did not write.
async fn newest_foreign_event<C: sea_orm::ConnectionTrait>(
    db: &C,
    id: &RunId,
    task: Option<TaskId>,
) -> Result<Option<i64>, StoreError> {
    use sea_orm::{QuerySelect, sea_query::Condition};
    let mut q = event::Entity::find()
        .select_only()
        .column_as(event::Column::Seq.max(), "newest")
        .filter(
            Condition::any()
                .add(event::Column::RunId.is_null())
                .add(event::Column::RunId.ne(id.0.clone())),
        );
    if let Some(t) = task {
        q = q.filter(event::Column::TaskId.eq(t.0));
    }
    let newest: Option<Option<i64>> = q
        .into_tuple()
        .one(db)
        .await
        .map_err(|e| StoreError::from_db(e, "reading the board's version"))?;
    Ok(newest.flatten())
}
