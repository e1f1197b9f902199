//! Control requests to a running engine: posted by anyone, handled once by the engine.

use orch_core::TaskId;
use orch_core::event::kind;
use orch_core::run::RunId;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, QueryFilter, QueryOrder, Set};

use crate::entity::control;
use crate::events::{self, NewEvent};
use crate::{Store, StoreError, now};

/// What a control asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// Cancel the whole run (it drains).
    CancelRun,
    /// Cancel one task's live attempt.
    CancelTask(TaskId),
    /// Claim nothing new until resumed (live attempts go on).
    PauseClaims,
    /// Claim again after a pause.
    ResumeClaims,
}

/// A pending control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Its id, for [`Store::mark_control_handled`].
    pub id: i64,
    /// What it asks.
    pub kind: ControlKind,
}

impl Store {
    /// Posts a control for `run`, journaled as asked by `who` in the same transaction.
    /// Returns its id.
    pub async fn post_control(
        &self,
        run: &RunId,
        kind: ControlKind,
        who: &str,
    ) -> Result<i64, StoreError> {
        let (name, task) = match kind {
            ControlKind::CancelRun => ("cancel-run", None),
            ControlKind::CancelTask(t) => ("cancel-task", Some(t.0)),
            ControlKind::PauseClaims => ("pause-claims", None),
            ControlKind::ResumeClaims => ("resume-claims", None),
        };
        let txn = self.write().await?;
        let at = now();
        let m = control::ActiveModel {
            id: NotSet,
            run_id: Set(run.0.clone()),
            kind: Set(name.into()),
            task_id: Set(task),
            created_at: Set(at.as_millis()),
            handled_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| StoreError::from_db(e, "posting a control"))?;
        let event = NewEvent {
            run_id: Some(run.0.clone()),
            at,
            task_id: task.map(TaskId),
            kind: kind::CONTROL_REQUESTED,
            reason: format!("{name} requested"),
            actor: who,
            payload: serde_json::json!({ "control": name, "id": m.id }),
        };
        events::append(&txn, event).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "posting a control"))?;
        Ok(m.id)
    }

    /// Journals that `who` asked for a run to start (the run it starts journals the
    /// rest under its own id); `how` says with what, such as the command line.
    pub async fn journal_run_request(&self, who: &str, how: &str) -> Result<(), StoreError> {
        let txn = self.write().await?;
        let event = NewEvent {
            run_id: None,
            at: now(),
            task_id: None,
            kind: kind::RUN_REQUESTED,
            reason: "run requested".into(),
            actor: who,
            payload: serde_json::json!({ "command": how }),
        };
        events::append(&txn, event).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "journaling a run request"))
    }

    /// The controls for `run` not yet handled, oldest first.
    pub async fn pending_controls(&self, run: &RunId) -> Result<Vec<Control>, StoreError> {
        let rows = control::Entity::find()
            .filter(control::Column::RunId.eq(run.0.clone()))
            .filter(control::Column::HandledAt.is_null())
            .order_by_asc(control::Column::Id)
            .all(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading controls"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let kind = match (r.kind.as_str(), r.task_id) {
                    ("cancel-run", _) => ControlKind::CancelRun,
                    ("cancel-task", Some(t)) => ControlKind::CancelTask(TaskId(t)),
                    ("pause-claims", _) => ControlKind::PauseClaims,
                    ("resume-claims", _) => ControlKind::ResumeClaims,
                    _ => return None,
                };
                Some(Control { id: r.id, kind })
            })
            .collect())
    }

    /// Marks a control handled.
    pub async fn mark_control_handled(&self, id: i64) -> Result<(), StoreError> {
        control::ActiveModel {
            id: Set(id),
            handled_at: Set(Some(now().as_millis())),
            ..Default::default()
        }
        .update(&self.db)
        .await
        .map_err(|e| StoreError::from_db(e, "handling a control"))?;
        Ok(())
    }
}
