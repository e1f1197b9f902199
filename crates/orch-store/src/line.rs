//! The integration line as the journals tell it: which commits orch put on a line
//! (a run started from it, advanced or landed to it, or validated it), and the resets
//! that put a line back on one of them after something else moved it.

use orch_core::run::CommitId;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::entity::event;
use crate::events::{self, NewEvent};
use crate::{Store, StoreError, now};

/// The event of a line put back on its last validated commit.
pub const LINE_RESET: &str = "line.reset";

impl Store {
    /// Whether a run's journal put `commit` on an integration line: a run started from
    /// it (`run.head_set`), advanced or landed to it, found another run's landing on it
    /// (`run.line_moved_on`), or validated it (`attempt.integration_passed`). Only the
    /// commit a journal entry names as its result counts (a landing's `from` does not).
    pub async fn line_commit_known(&self, commit: &CommitId) -> Result<bool, StoreError> {
        let named = |field: &str, kinds: &[&'static str]| {
            Condition::all()
                .add(event::Column::Kind.is_in(kinds.iter().copied()))
                .add(event::Column::Payload.contains(format!("\"{field}\":\"{}\"", commit.0)))
        };
        let found = event::Entity::find()
            .filter(
                Condition::any()
                    .add(named("head", &["run.head_set"]))
                    .add(named(
                        "to",
                        &["run.head_advanced", "run.landed", "run.line_moved_on"],
                    ))
                    .add(named("commit", &["attempt.integration_passed"]))
                    .add(named("to", &[LINE_RESET])),
            )
            .one(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "looking for a commit on the line"))?;
        Ok(found.is_some())
    }

    /// Journals that `who` put `branch` back from `from` to `to`, keeping `from` under
    /// `kept`.
    pub async fn journal_line_reset(
        &self,
        who: &str,
        branch: &str,
        from: &CommitId,
        to: &CommitId,
        kept: &str,
    ) -> Result<(), StoreError> {
        let txn = self.write().await?;
        let event = NewEvent {
            run_id: None,
            at: now(),
            task_id: None,
            kind: LINE_RESET,
            reason: format!(
                "{branch} put back from {} to its last validated commit {}; {} kept as {kept}",
                from.short(),
                to.short(),
                from.short()
            ),
            actor: who,
            payload: serde_json::json!({ "branch": branch, "from": from, "to": to, "kept": kept }),
        };
        events::append(&txn, event).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "journaling a line reset"))
    }
}
