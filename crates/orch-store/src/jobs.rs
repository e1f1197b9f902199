//! The job queue of `run.executors = "workers"`, in the way of PostgreSQL job queues
//! (Oban, River): a worker claims the oldest claimable job with `FOR UPDATE SKIP
//! LOCKED`, so claimers never wait on each other and no job has two owners. Leases run
//! on the database's clock, never a machine's, and every claim bumps the job's epoch:
//! a heartbeat or result under an older epoch is refused ([`StoreError::JobFenced`]).
//! The rules are `orch_core::jobs`; a lease taken over is journaled as
//! `job.interrupted`, which spends none of the task's attempts.

use orch_core::TaskId;
use orch_core::jobs::{self, Beat, Job, JobResult, JobSpec, JobState};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, NotSet, QueryFilter,
    QueryOrder, Set, Statement, Value,
};

use crate::entity::job;
use crate::events::{self, NewEvent};
use crate::{Location, Store, StoreError, now};

/// The event a lease taken over writes.
pub const JOB_INTERRUPTED: &str = "job.interrupted";

/// The database's clock in ms, as SQL.
fn db_now(b: DbBackend) -> &'static str {
    match b {
        DbBackend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

fn err(doing: &'static str) -> impl Fn(sea_orm::DbErr) -> StoreError {
    move |e| StoreError::from_db(e, doing)
}

fn to_job(m: job::Model) -> Result<Job, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        table: "jobs",
        message,
    };
    Ok(Job {
        id: m.id,
        spec: serde_json::from_str(&m.spec)
            .map_err(|e| corrupt(format!("job {}: spec: {e}", m.id)))?,
        state: JobState::parse(&m.state)
            .ok_or_else(|| corrupt(format!("job {}: state {:?}", m.id, m.state)))?,
        epoch: m.epoch,
        worker: m.worker,
        lease_until: m.lease_until,
        result: match m.result {
            None => None,
            Some(r) => Some(
                serde_json::from_str(&r)
                    .map_err(|e| corrupt(format!("job {}: result: {e}", m.id)))?,
            ),
        },
    })
}

/// A job a worker claimed, with the epoch its heartbeats and result must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The job.
    pub job: Job,
    /// The worker that held it before, when this claim took over an expired lease.
    pub took_over: Option<String>,
}

impl Store {
    /// Refuses `run.executors = "workers"` unless the store is PostgreSQL.
    pub fn check_serves_workers(&self) -> Result<(), StoreError> {
        match &self.location {
            Location::Postgres(_) => Ok(()),
            Location::Sqlite(p) => Err(StoreError::WorkersNeedPostgres(p.display().to_string())),
        }
    }

    /// The database's clock (ms): what leases are measured against.
    pub async fn db_clock(&self) -> Result<i64, StoreError> {
        let b = self.db.get_database_backend();
        let sql = format!("SELECT {} AS now", db_now(b));
        let row = self
            .db
            .query_one_raw(Statement::from_string(b, sql))
            .await
            .map_err(err("reading the database's clock"))?
            .ok_or_else(|| StoreError::Corrupt {
                table: "(clock)",
                message: "no row".into(),
            })?;
        row.try_get::<i64>("", "now")
            .map_err(err("reading the database's clock"))
    }

    /// Posts `spec` for a worker; posting an attempt's job again returns the one there.
    pub async fn post_job(&self, spec: &JobSpec) -> Result<Job, StoreError> {
        if let Some(j) = self.job(&spec.run, spec.task, spec.attempt).await? {
            return Ok(j);
        }
        let at = now().as_millis();
        let m = job::ActiveModel {
            id: NotSet,
            run_id: Set(spec.run.clone()),
            task_id: Set(spec.task.0),
            attempt: Set(i64::from(spec.attempt)),
            spec: Set(serde_json::to_string(spec).expect("job specs serialise")),
            labels: Set(jobs::encode_labels(&spec.labels)),
            state: Set(JobState::Queued.as_str().into()),
            epoch: Set(0),
            worker: Set(None),
            lease_until: Set(None),
            result: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&self.db)
        .await
        .map_err(err("posting a job"))?;
        self.announce().await;
        to_job(m)
    }

    /// The job of a run's attempt, if posted.
    pub async fn job(
        &self,
        run: &str,
        task: TaskId,
        attempt: u32,
    ) -> Result<Option<Job>, StoreError> {
        job::Entity::find()
            .filter(job::Column::RunId.eq(run))
            .filter(job::Column::TaskId.eq(task.0))
            .filter(job::Column::Attempt.eq(i64::from(attempt)))
            .one(&self.db)
            .await
            .map_err(err("reading a job"))?
            .map(to_job)
            .transpose()
    }

    /// Every job (of `run`, if given), oldest first.
    pub async fn jobs(&self, run: Option<&str>) -> Result<Vec<Job>, StoreError> {
        let mut q = job::Entity::find().order_by_asc(job::Column::Id);
        if let Some(r) = run {
            q = q.filter(job::Column::RunId.eq(r));
        }
        q.all(&self.db)
            .await
            .map_err(err("reading jobs"))?
            .into_iter()
            .map(to_job)
            .collect()
    }

    /// Claims the oldest claimable job for `worker` (one taking `labels`, none: any)
    /// under a lease of `ttl_ms` on the database's clock: a queued job, or one whose
    /// worker's lease expired (journaled as `job.interrupted`). `None`: nothing to do.
    pub async fn claim_job(
        &self,
        worker: &str,
        labels: &[String],
        ttl_ms: i64,
    ) -> Result<Option<Claimed>, StoreError> {
        let txn = self.write().await?;
        let b = txn.get_database_backend();
        let clock = db_now(b);
        let patterns = jobs::label_patterns(labels);
        let mut filter = String::new();
        if !patterns.is_empty() {
            let likes: Vec<String> = (1..=patterns.len())
                .map(|i| format!("labels LIKE ${i}"))
                .collect();
            filter = format!(" AND ({})", likes.join(" OR "));
        }
        let values: Vec<Value> = patterns.into_iter().map(Value::from).collect();
        // SKIP LOCKED: claimers pass over each other's rows instead of queueing on them.
        // SQLite has one writer at a time (this transaction holds the lock), so it
        // needs no row locks.
        let lock = match b {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let pick = format!(
            "SELECT id, state, worker FROM jobs WHERE (state = 'queued' OR (state = 'claimed' AND lease_until < {clock})){filter} ORDER BY id LIMIT 1{lock}"
        );
        let Some(row) = txn
            .query_one_raw(Statement::from_sql_and_values(b, pick, values))
            .await
            .map_err(err("claiming a job"))?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get("", "id").map_err(err("claiming a job"))?;
        let was: String = row.try_get("", "state").map_err(err("claiming a job"))?;
        let was_worker: Option<String> =
            row.try_get("", "worker").map_err(err("claiming a job"))?;
        let update = format!(
            "UPDATE jobs SET state = 'claimed', epoch = epoch + 1, worker = $1, lease_until = {clock} + $2, updated_at = {clock} WHERE id = $3"
        );
        let vals: Vec<Value> = vec![worker.into(), ttl_ms.into(), id.into()];
        txn.execute_raw(Statement::from_sql_and_values(b, update, vals))
            .await
            .map_err(err("claiming a job"))?;
        let m = job::Entity::find_by_id(id)
            .one(&txn)
            .await
            .map_err(err("claiming a job"))?
            .expect("the row was just updated in this transaction");
        let job = to_job(m)?;
        let took_over = (was == JobState::Claimed.as_str()).then(|| was_worker.unwrap_or_default());
        if let Some(before) = &took_over {
            let e = NewEvent {
                run_id: Some(job.spec.run.clone()),
                at: now(),
                task_id: Some(job.spec.task),
                kind: JOB_INTERRUPTED,
                reason: format!(
                    "worker {before} lost its lease on attempt {}; {worker} takes the job over (epoch {}); no attempt is spent",
                    job.spec.attempt, job.epoch
                ),
                actor: worker,
                payload: serde_json::json!({ "job": job.id, "from": before, "to": worker, "epoch": job.epoch }),
            };
            events::append(&txn, e).await?;
        }
        txn.commit().await.map_err(err("claiming a job"))?;
        Ok(Some(Claimed { job, took_over }))
    }

    /// Renews a worker's lease on job `id` claimed under `epoch` for `ttl_ms` more.
    pub async fn heartbeat_job(
        &self,
        id: i64,
        epoch: i64,
        ttl_ms: i64,
    ) -> Result<Beat, StoreError> {
        let b = self.db.get_database_backend();
        let clock = db_now(b);
        let sql = format!(
            "UPDATE jobs SET lease_until = {clock} + $1, updated_at = {clock} WHERE id = $2 AND epoch = $3 AND state IN ('claimed', 'canceling') AND lease_until >= {clock}"
        );
        let vals: Vec<Value> = vec![ttl_ms.into(), id.into(), epoch.into()];
        let r = self
            .db
            .execute_raw(Statement::from_sql_and_values(b, sql, vals))
            .await
            .map_err(err("renewing a job's lease"))?;
        if r.rows_affected() == 0 {
            return Ok(Beat::Fenced);
        }
        let m = job::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(err("renewing a job's lease"))?;
        Ok(match m.map(|m| m.state) {
            Some(s) if s == JobState::Canceling.as_str() => Beat::Cancel,
            Some(_) => Beat::Live,
            None => Beat::Fenced,
        })
    }

    /// Posts a job's result, refused ([`StoreError::JobFenced`]) unless the worker
    /// still owns the job: the same epoch, and a lease not run out.
    pub async fn finish_job(
        &self,
        id: i64,
        epoch: i64,
        result: &JobResult,
    ) -> Result<(), StoreError> {
        let b = self.db.get_database_backend();
        let clock = db_now(b);
        let sql = format!(
            "UPDATE jobs SET state = 'done', result = $1, lease_until = NULL, updated_at = {clock} WHERE id = $2 AND epoch = $3 AND state IN ('claimed', 'canceling') AND lease_until >= {clock}"
        );
        let text = serde_json::to_string(result).expect("job results serialise");
        let vals: Vec<Value> = vec![text.into(), id.into(), epoch.into()];
        let r = self
            .db
            .execute_raw(Statement::from_sql_and_values(b, sql, vals))
            .await
            .map_err(err("posting a job's result"))?;
        match r.rows_affected() {
            1 => {
                self.announce().await;
                Ok(())
            }
            _ => Err(StoreError::JobFenced { job: id, epoch }),
        }
    }

    /// Asks an attempt's job stopped: a queued one is removed (`None`), a held one is
    /// marked canceling for its worker's next heartbeat. Returns where it is now.
    pub async fn cancel_job(
        &self,
        run: &str,
        task: TaskId,
        attempt: u32,
    ) -> Result<Option<JobState>, StoreError> {
        let Some(j) = self.job(run, task, attempt).await? else {
            return Ok(None);
        };
        let b = self.db.get_database_backend();
        let vals: Vec<Value> = vec![j.id.into()];
        let sql = "DELETE FROM jobs WHERE id = $1 AND state = 'queued'";
        let gone = self
            .db
            .execute_raw(Statement::from_sql_and_values(b, sql, vals.clone()))
            .await
            .map_err(err("canceling a job"))?;
        if gone.rows_affected() == 1 {
            return Ok(None);
        }
        let sql = "UPDATE jobs SET state = 'canceling' WHERE id = $1 AND state = 'claimed'";
        self.db
            .execute_raw(Statement::from_sql_and_values(b, sql, vals))
            .await
            .map_err(err("canceling a job"))?;
        self.announce_on(CANCELS).await;
        Ok(self.job(run, task, attempt).await?.map(|j| j.state))
    }

    /// Removes an attempt's job (its result consumed, or the attempt over).
    pub async fn forget_job(
        &self,
        run: &str,
        task: TaskId,
        attempt: u32,
    ) -> Result<(), StoreError> {
        job::Entity::delete_many()
            .filter(job::Column::RunId.eq(run))
            .filter(job::Column::TaskId.eq(task.0))
            .filter(job::Column::Attempt.eq(i64::from(attempt)))
            .exec(&self.db)
            .await
            .map_err(err("removing a job"))?;
        Ok(())
    }
}

/// The channel job changes are announced on (PostgreSQL `NOTIFY`): posted, done.
const CHANNEL: &str = "orch_jobs";
/// The channel cancels are announced on, for the workers holding the jobs.
const CANCELS: &str = "orch_job_cancels";

impl Store {
    /// Announces on `channel` to whoever listens, so they look at once instead of at
    /// their next poll. Best effort; SQLite has no listeners.
    async fn announce_on(&self, channel: &str) {
        if self.db.get_database_backend() == DbBackend::Postgres {
            let _ = self
                .db
                .execute_unprepared(&format!("NOTIFY {channel}"))
                .await;
        }
    }

    async fn announce(&self) {
        self.announce_on(CHANNEL).await;
    }

    /// A signal that bumps on every job posted or done, from a PostgreSQL `LISTEN` on
    /// a connection of its own (`None` on SQLite: poll). The listener stops when the
    /// last receiver is dropped; a lost connection bumps it too, so waiters look.
    pub async fn job_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.listen(CHANNEL).await
    }

    /// As [`Store::job_changes`], for cancels: a worker's heartbeat goes at once.
    pub async fn job_cancels(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.listen(CANCELS).await
    }

    async fn listen(&self, channel: &'static str) -> Option<tokio::sync::watch::Receiver<u64>> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return None;
        }
        let pool = self.db.get_postgres_connection_pool();
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.ok()?;
        listener.listen(channel).await.ok()?;
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    n = listener.recv() => {
                        if n.is_err() {
                            // The listener reconnects on its next recv; meanwhile, look.
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        }
                        tx.send_modify(|v| *v += 1);
                    }
                }
            }
        });
        Some(rx)
    }
}
