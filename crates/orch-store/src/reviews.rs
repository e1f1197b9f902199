//! Reviews: a run's submission of work for review, kept on its task, and a person's
//! decision on it, applied as the core decides (`orch_core::review::decide`) in one
//! transaction with its event. A review's history is the audit log's `review.*`
//! events.

use orch_core::review::{self, Decided, Decision, Review};
use orch_core::{Task, TaskId, TaskStatus};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::json;

use crate::entity::task;
use crate::events::{self, NewEvent};
use crate::tasks::load;
use crate::{Store, StoreError, now};

/// A review as the `tasks.review` column keeps it.
fn column(r: Option<&Review>) -> Option<String> {
    r.map(|r| serde_json::to_string(r).expect("a review always serialises"))
}

/// Keeps `review` on its task (the run's `review.requested`, projected).
pub(crate) async fn submitted<C: ConnectionTrait>(
    db: &C,
    id: TaskId,
    review: &Review,
) -> Result<(), StoreError> {
    let m = task::ActiveModel {
        id: Set(id.0),
        review: Set(column(Some(review))),
        ..Default::default()
    };
    match m.update(db).await {
        // A task removed from the board meanwhile has no review to keep.
        Err(sea_orm::DbErr::RecordNotUpdated) => Ok(()),
        r => r
            .map(|_| ())
            .map_err(|e| StoreError::from_db(e, "keeping a task's review")),
    }
}

/// A person's event about a task: its kind, reason and payload.
pub type PersonEvent<'a> = (&'a str, String, serde_json::Value);

/// Moves `t` to `status` with `review`, written in `txn` with `event` by `actor`.
async fn settle<C: ConnectionTrait>(
    txn: &C,
    t: &mut Task,
    status: TaskStatus,
    review: Option<Box<Review>>,
    event: PersonEvent<'_>,
    actor: &str,
) -> Result<(), StoreError> {
    t.status = status;
    t.review = review;
    t.updated_at = now();
    task::ActiveModel {
        id: Set(t.id.0),
        status: Set(t.status.as_str().to_owned()),
        review: Set(column(t.review.as_deref())),
        updated_at: Set(t.updated_at.as_millis()),
        ..Default::default()
    }
    .update(txn)
    .await
    .map_err(|e| StoreError::from_db(e, "settling a task's review"))?;
    journal(txn, t.id, t.updated_at, event, actor).await
}

/// Appends a person's `event` about task `id`, at `at`, in `txn`.
async fn journal<C: ConnectionTrait>(
    txn: &C,
    id: TaskId,
    at: orch_core::Timestamp,
    (kind, reason, payload): PersonEvent<'_>,
    actor: &str,
) -> Result<(), StoreError> {
    events::append(
        txn,
        NewEvent {
            run_id: None,
            at,
            task_id: Some(id),
            kind,
            reason,
            actor,
            payload,
        },
    )
    .await
}

impl Store {
    /// Applies a person's `decision` on task `id`'s work in review: where the task
    /// goes and its review after, as the core decides (`feedback` is the text a new
    /// round's agent gets, `max_rounds` is `review.max_rounds`), written with its
    /// `review.*` event by `actor`. A refused decision writes nothing.
    pub async fn review_task(
        &self,
        id: TaskId,
        decision: &Decision,
        feedback: String,
        max_rounds: u32,
        actor: &str,
    ) -> Result<(Task, Decided), StoreError> {
        let txn = self.write().await?;
        let mut t = load(&txn, id).await?;
        let before = t.review.clone();
        let decided = review::decide(
            id,
            t.status,
            before.as_deref(),
            decision,
            feedback,
            max_rounds,
        )?;
        let from = t.status;
        let work = before.as_ref().map(|r| (r.round, r.work.head.clone()));
        let payload = json!({
            "decision": decision,
            "round": work.as_ref().map(|w| w.0),
            "head": work.as_ref().map(|w| &w.1),
            "from": from,
            "to": decided.status,
            "note": decided.review.as_ref().and_then(|r| r.note.as_ref()),
        });
        let event = (decision.kind(), decided.reason.clone(), payload);
        let review = decided.review.clone().map(Box::new);
        settle(&txn, &mut t, decided.status, review, event, actor).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing"))?;
        Ok((t, decided))
    }

    /// Moves blocked task `id` to `to` with `review` as its review (a conflict
    /// resolved by hand, or handed to its agent), journaled as a `kind` event with
    /// `reason` and `payload` by `actor`. Refused, writing nothing, unless it is
    /// still blocked.
    pub async fn settle_conflict(
        &self,
        id: TaskId,
        to: TaskStatus,
        review: &Review,
        event: PersonEvent<'_>,
        actor: &str,
    ) -> Result<Task, StoreError> {
        let txn = self.write().await?;
        let mut t = load(&txn, id).await?;
        review::check_blocked(id, t.status)?;
        let review = Some(Box::new(review.clone()));
        settle(&txn, &mut t, to, review, event, actor).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing"))?;
        Ok(t)
    }

    /// Journals a person's `kind` event about task `id` that changes nothing on the
    /// board (a resolution started or put back).
    pub async fn note_task(
        &self,
        id: TaskId,
        event: PersonEvent<'_>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let txn = self.write().await?;
        load(&txn, id).await?;
        journal(&txn, id, now(), event, actor).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing"))
    }
}
