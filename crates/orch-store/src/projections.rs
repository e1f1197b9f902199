//! Tables projected from run journals (attempts, merges, proposals), maintained in the
//! same transaction as the events they come from, and the validations table, which
//! the engine fills with one row per gate command. The journal stays the source of
//! truth; these tables make a run's story queryable.

use orch_core::TaskId;
use orch_core::Timestamp;
use orch_core::run::{
    AttemptId, AttemptState, FailureKind, RunEvent, RunId, Stage, ValidationRecord, Verdict,
};
use orch_core::usage::Usage;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter, QueryOrder,
    Set,
};

use crate::entity::{artifact, attempt, merge, proposal, validation};
use crate::{Store, StoreError, now};

/// An attempt, as the `attempts` table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its branch.
    pub branch: String,
    /// The commit it started from.
    pub base: String,
    /// The agent's committed head.
    pub head: Option<String>,
    /// Its merge commit, if it merged cleanly.
    pub merge: Option<String>,
    /// `queued`, `running`, ..., `succeeded`, `failed`, `canceled`, `interrupted`.
    pub state: String,
    /// The failure, as JSON, when failed.
    pub failure: Option<serde_json::Value>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its state last changed (for a finished attempt: when it ended).
    pub updated_at: Timestamp,
    /// What its agent reported using.
    pub usage: Option<Usage>,
}

impl AttemptRow {
    /// Its phase, typed; `None` for a state this version of orch does not know.
    pub fn phase(&self) -> Option<orch_core::run::AttemptPhase> {
        serde_json::from_value(serde_json::Value::String(self.state.clone())).ok()
    }
}

/// One validation command's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationRow {
    /// The attempt.
    pub attempt: AttemptId,
    /// `worker` or `integration`.
    pub stage: String,
    /// Its position in the gate, from 1.
    pub position: i32,
    /// The result.
    pub record: ValidationRecord,
}

/// One merge's row.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeRow {
    /// The attempt.
    pub attempt: AttemptId,
    /// The integration head it merged onto (clean merges).
    pub onto: Option<String>,
    /// The merge commit (clean merges).
    pub commit: Option<String>,
    /// The conflicting paths (conflicts).
    pub conflicts: Vec<String>,
}

/// One artifact file of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    /// The attempt.
    pub attempt: AttemptId,
    /// The file name, e.g. `agent.log`.
    pub name: String,
    /// Its full path.
    pub path: String,
    /// Its size.
    pub bytes: u64,
}

/// One planner proposal's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalRow {
    /// The task it is about.
    pub task: Option<TaskId>,
    /// The proposal, as JSON.
    pub proposal: serde_json::Value,
    /// `accepted` or `rejected`.
    pub verdict: String,
    /// Why it was rejected (empty when accepted).
    pub reason: String,
}

fn db(doing: &'static str) -> impl Fn(sea_orm::DbErr) -> StoreError {
    move |e| StoreError::from_db(e, doing)
}

fn ignore_missing(
    r: Result<impl Sized, sea_orm::DbErr>,
    doing: &'static str,
) -> Result<(), StoreError> {
    match r {
        Ok(_) | Err(sea_orm::DbErr::RecordNotUpdated) => Ok(()),
        Err(e) => Err(StoreError::from_db(e, doing)),
    }
}

/// Applies one event to the projected tables.
pub(crate) async fn project<C: ConnectionTrait>(
    db_: &C,
    run: &RunId,
    e: &RunEvent,
    at: Timestamp,
) -> Result<(), StoreError> {
    let key = |a: &AttemptId| attempt::ActiveModel {
        run_id: Set(run.0.clone()),
        task_id: Set(a.task.0),
        number: Set(a.number as i32),
        updated_at: Set(at.as_millis()),
        ..Default::default()
    };
    match e {
        RunEvent::AttemptCreated {
            attempt: a,
            branch,
            base,
        } => insert_attempt(db_, run, *a, branch, base, at).await?,
        RunEvent::AttemptMoved { attempt: a, to, .. } => {
            let mut m = key(a);
            m.state = Set(phase_name(to.phase()));
            if let AttemptState::Failed(k) = to {
                m.failure = Set(Some(serde_json::to_string(k).expect("failures serialise")));
                if let FailureKind::Conflict { paths } = k {
                    insert_merge(db_, run, a, None, None, Some(paths), at).await?;
                }
            }
            ignore_missing(m.update(db_).await, "projecting an attempt")?;
        }
        RunEvent::ReviewRequested { attempt: a, review } => {
            crate::reviews::submitted(db_, a.task, review).await?
        }
        RunEvent::AttemptUsage { attempt: a, usage } => {
            let mut m = key(a);
            m.usage = Set(Some(
                serde_json::to_string(usage).expect("usage serialises"),
            ));
            m.tokens = Set(usage.tokens().min(i64::MAX as u64) as i64);
            m.cost_micros = Set(usage.cost.map(|c| c.0.min(i64::MAX as u64) as i64));
            ignore_missing(m.update(db_).await, "projecting an attempt's usage")?;
        }
        RunEvent::AttemptHead {
            attempt: a, head, ..
        } => {
            let mut m = key(a);
            m.head = Set(Some(head.0.clone()));
            ignore_missing(m.update(db_).await, "projecting an attempt")?;
        }
        RunEvent::MergeWritten {
            attempt: a,
            commit,
            onto,
        } => {
            let mut m = key(a);
            m.merge_commit = Set(Some(commit.0.clone()));
            ignore_missing(m.update(db_).await, "projecting an attempt")?;
            insert_merge(
                db_,
                run,
                a,
                Some(onto.0.clone()),
                Some(commit.0.clone()),
                None,
                at,
            )
            .await?;
        }
        RunEvent::ProposalJudged {
            proposal: p,
            verdict,
        } => insert_proposal(db_, run, e, p, verdict, at).await?,
        _ => {}
    }
    Ok(())
}

async fn insert_attempt<C: ConnectionTrait>(
    db_: &C,
    run: &RunId,
    a: AttemptId,
    branch: &str,
    base: &orch_core::run::CommitId,
    at: Timestamp,
) -> Result<(), StoreError> {
    attempt::ActiveModel {
        run_id: Set(run.0.clone()),
        task_id: Set(a.task.0),
        number: Set(a.number as i32),
        branch: Set(branch.to_owned()),
        base: Set(base.0.clone()),
        head: Set(None),
        merge_commit: Set(None),
        state: Set("queued".into()),
        failure: Set(None),
        created_at: Set(at.as_millis()),
        updated_at: Set(at.as_millis()),
        usage: Set(None),
        tokens: Set(0),
        cost_micros: Set(None),
    }
    .insert(db_)
    .await
    .map_err(db("projecting an attempt"))?;
    Ok(())
}

async fn insert_proposal<C: ConnectionTrait>(
    db_: &C,
    run: &RunId,
    e: &RunEvent,
    p: &orch_core::run::Proposal,
    verdict: &Verdict,
    at: Timestamp,
) -> Result<(), StoreError> {
    let (v, reason) = match verdict {
        Verdict::Accepted => ("accepted", String::new()),
        Verdict::Rejected { reason } => ("rejected", reason.clone()),
    };
    proposal::ActiveModel {
        id: NotSet,
        run_id: Set(run.0.clone()),
        task_id: Set(e.task().map(|t| t.0)),
        proposal: Set(serde_json::to_string(p).expect("proposals serialise")),
        verdict: Set(v.into()),
        reason: Set(reason),
        at: Set(at.as_millis()),
    }
    .insert(db_)
    .await
    .map_err(db("projecting a proposal"))?;
    Ok(())
}

async fn insert_merge<C: ConnectionTrait>(
    db_: &C,
    run: &RunId,
    a: &AttemptId,
    onto: Option<String>,
    commit: Option<String>,
    conflicts: Option<&Vec<String>>,
    at: Timestamp,
) -> Result<(), StoreError> {
    merge::ActiveModel {
        id: NotSet,
        run_id: Set(run.0.clone()),
        task_id: Set(a.task.0),
        attempt: Set(a.number as i32),
        onto: Set(onto),
        merge_commit: Set(commit),
        conflicts: Set(conflicts.map(|p| serde_json::to_string(p).expect("paths serialise"))),
        at: Set(at.as_millis()),
    }
    .insert(db_)
    .await
    .map_err(db("projecting a merge"))?;
    Ok(())
}

impl Store {
    /// Records a gate's commands, one row each, in order.
    pub async fn record_validations(
        &self,
        run: &RunId,
        a: AttemptId,
        stage: Stage,
        records: &[ValidationRecord],
    ) -> Result<(), StoreError> {
        let txn = self.write().await?;
        let at = now();
        for (i, r) in records.iter().enumerate() {
            validation::ActiveModel {
                id: NotSet,
                run_id: Set(run.0.clone()),
                task_id: Set(a.task.0),
                attempt: Set(a.number as i32),
                stage: Set(stage.as_str().into()),
                position: Set(i as i32 + 1),
                command: Set(r.command.clone()),
                outcome: Set(r.outcome.clone()),
                exit_code: Set(r.exit_code),
                duration_ms: Set(r.duration_ms.min(i64::MAX as u64) as i64),
                log_path: Set(r.log_path.clone()),
                tail: Set(r.tail.join("\n")),
                at: Set(at.as_millis()),
            }
            .insert(&txn)
            .await
            .map_err(db("recording a validation"))?;
        }
        txn.commit().await.map_err(db("committing"))
    }

    /// Records an attempt's artifact files (name, path, size).
    pub async fn record_artifacts(
        &self,
        run: &RunId,
        a: AttemptId,
        files: &[(String, String, u64)],
    ) -> Result<(), StoreError> {
        let txn = self.write().await?;
        let at = now();
        for (name, path, bytes) in files {
            artifact::ActiveModel {
                id: NotSet,
                run_id: Set(run.0.clone()),
                task_id: Set(a.task.0),
                attempt: Set(a.number as i32),
                name: Set(name.clone()),
                path: Set(path.clone()),
                bytes: Set((*bytes).min(i64::MAX as u64) as i64),
                at: Set(at.as_millis()),
            }
            .insert(&txn)
            .await
            .map_err(db("recording an artifact"))?;
        }
        txn.commit().await.map_err(db("committing"))
    }

    /// A run's artifact files, by attempt and name.
    pub async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactRow>, StoreError> {
        let rows = artifact::Entity::find()
            .filter(artifact::Column::RunId.eq(run.0.clone()))
            .order_by_asc(artifact::Column::TaskId)
            .order_by_asc(artifact::Column::Attempt)
            .order_by_asc(artifact::Column::Name)
            .all(&self.db)
            .await
            .map_err(db("reading artifacts"))?;
        Ok(rows
            .into_iter()
            .map(|r| ArtifactRow {
                attempt: AttemptId {
                    task: TaskId(r.task_id),
                    number: r.attempt as u32,
                },
                name: r.name,
                path: r.path,
                bytes: r.bytes.max(0) as u64,
            })
            .collect())
    }

    /// Each task's attempts' usage, summed over every run (tasks whose agents reported
    /// none are absent).
    pub async fn task_usage(
        &self,
    ) -> Result<std::collections::BTreeMap<TaskId, Usage>, StoreError> {
        let rows = attempt::Entity::find()
            .filter(attempt::Column::Usage.is_not_null())
            .all(&self.db)
            .await
            .map_err(db("reading attempts' usage"))?;
        let mut out = std::collections::BTreeMap::<TaskId, Usage>::new();
        for r in rows {
            let id = format!("attempt task-{}-{}", r.task_id, r.number);
            if let Some(u) = column::<Usage>("attempts", &id, "usage", r.usage)? {
                out.entry(TaskId(r.task_id)).or_default().add(&u);
            }
        }
        for u in out.values_mut() {
            u.session_id = None;
        }
        Ok(out)
    }

    /// A run's attempts, by task and number.
    pub async fn attempts(&self, run: &RunId) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = attempt::Entity::find()
            .filter(attempt::Column::RunId.eq(run.0.clone()))
            .order_by_asc(attempt::Column::TaskId)
            .order_by_asc(attempt::Column::Number)
            .all(&self.db)
            .await
            .map_err(db("reading attempts"))?;
        rows.into_iter().map(attempt_row).collect()
    }

    /// Every attempt of one task, over every run, oldest first, each with its run.
    pub async fn task_attempts(
        &self,
        task: TaskId,
    ) -> Result<Vec<(RunId, AttemptRow)>, StoreError> {
        let rows = attempt::Entity::find()
            .filter(attempt::Column::TaskId.eq(task.0))
            .order_by_asc(attempt::Column::CreatedAt)
            .order_by_asc(attempt::Column::Number)
            .all(&self.db)
            .await
            .map_err(db("reading a task's attempts"))?;
        rows.into_iter()
            .map(|r| {
                let run = RunId(r.run_id.clone());
                attempt_row(r).map(|a| (run, a))
            })
            .collect()
    }

    /// One attempt of a run, if the run's journal has it.
    pub async fn attempt(
        &self,
        run: &RunId,
        a: AttemptId,
    ) -> Result<Option<AttemptRow>, StoreError> {
        let row = attempt::Entity::find()
            .filter(attempt::Column::RunId.eq(run.0.clone()))
            .filter(attempt::Column::TaskId.eq(a.task.0))
            .filter(attempt::Column::Number.eq(a.number as i64))
            .one(&self.db)
            .await
            .map_err(db("reading an attempt"))?;
        row.map(attempt_row).transpose()
    }

    /// A run's validation commands, in the order they ran.
    pub async fn validations(&self, run: &RunId) -> Result<Vec<ValidationRow>, StoreError> {
        let rows = validation::Entity::find()
            .filter(validation::Column::RunId.eq(run.0.clone()))
            .order_by_asc(validation::Column::Id)
            .all(&self.db)
            .await
            .map_err(db("reading validations"))?;
        Ok(rows
            .into_iter()
            .map(|r| ValidationRow {
                attempt: AttemptId {
                    task: TaskId(r.task_id),
                    number: r.attempt as u32,
                },
                stage: r.stage,
                position: r.position,
                record: ValidationRecord {
                    command: r.command,
                    outcome: r.outcome,
                    exit_code: r.exit_code,
                    duration_ms: r.duration_ms.max(0) as u64,
                    log_path: r.log_path,
                    tail: if r.tail.is_empty() {
                        vec![]
                    } else {
                        r.tail.lines().map(String::from).collect()
                    },
                },
            })
            .collect())
    }

    /// A run's merges, in order.
    pub async fn merges(&self, run: &RunId) -> Result<Vec<MergeRow>, StoreError> {
        let rows = merge::Entity::find()
            .filter(merge::Column::RunId.eq(run.0.clone()))
            .order_by_asc(merge::Column::Id)
            .all(&self.db)
            .await
            .map_err(db("reading merges"))?;
        rows.into_iter()
            .map(|r| {
                let id = format!("merge of task-{}-{}", r.task_id, r.attempt);
                Ok(MergeRow {
                    attempt: AttemptId {
                        task: TaskId(r.task_id),
                        number: r.attempt as u32,
                    },
                    onto: r.onto,
                    commit: r.merge_commit,
                    conflicts: column("merges", &id, "conflicts", r.conflicts)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// A run's planner proposals and verdicts, in order.
    pub async fn proposals(&self, run: &RunId) -> Result<Vec<ProposalRow>, StoreError> {
        let rows = proposal::Entity::find()
            .filter(proposal::Column::RunId.eq(run.0.clone()))
            .order_by_asc(proposal::Column::Id)
            .all(&self.db)
            .await
            .map_err(db("reading proposals"))?;
        rows.into_iter()
            .map(|r| {
                let id = format!("proposal {}", r.id);
                Ok(ProposalRow {
                    task: r.task_id.map(TaskId),
                    proposal: column("proposals", &id, "proposal", Some(r.proposal))?
                        .unwrap_or(serde_json::Value::Null),
                    verdict: r.verdict,
                    reason: r.reason,
                })
            })
            .collect()
    }
}

/// A JSON column of `table`'s row `row`, parsed: a value this version cannot read is
/// an error naming the row, never a row quietly dropped or emptied.
fn column<T: serde::de::DeserializeOwned>(
    table: &'static str,
    row: &str,
    name: &str,
    text: Option<String>,
) -> Result<Option<T>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
            table,
            message: format!("{row}: its {name} does not parse ({e}): {t:?}"),
        })
    })
    .transpose()
}

fn attempt_row(r: attempt::Model) -> Result<AttemptRow, StoreError> {
    let id = format!("attempt task-{}-{}", r.task_id, r.number);
    Ok(AttemptRow {
        attempt: AttemptId {
            task: TaskId(r.task_id),
            number: r.number as u32,
        },
        branch: r.branch,
        base: r.base,
        head: r.head,
        merge: r.merge_commit,
        state: r.state,
        failure: column("attempts", &id, "failure", r.failure)?,
        created_at: Timestamp(r.created_at),
        updated_at: Timestamp(r.updated_at),
        usage: column("attempts", &id, "usage", r.usage)?,
    })
}

/// A phase as the `attempts.state` column names it: its serde name (`awaiting_review`).
fn phase_name(p: orch_core::run::AttemptPhase) -> String {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{p:?}").to_lowercase(),
    }
}
