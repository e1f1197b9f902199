//! The board as a person edits it: each change journaled with who made it, moves
//! checked against the transition table.

use orch_core::TaskStatus;
use orch_core::board::BoardFile;
use orch_core::task::{NewTask, Task, TaskEdit, TaskId};
use orch_store::{ImportReport, Store, StoreError};

/// The board of a repository, edited by one actor.
#[derive(Debug, Clone, Copy)]
pub struct Board<'a> {
    store: &'a Store,
    actor: &'a str,
}

impl<'a> Board<'a> {
    pub(super) fn new(store: &'a Store, actor: &'a str) -> Board<'a> {
        Board { store, actor }
    }

    /// Adds a task to the backlog (or the column it names). Unknown dependencies and
    /// cycles are refused, and nothing is written then.
    pub async fn add(&self, task: NewTask) -> Result<Task, StoreError> {
        self.store.add_task(task, self.actor).await
    }

    /// Edits a task's fields and dependencies.
    pub async fn edit(&self, id: TaskId, edit: &TaskEdit) -> Result<Task, StoreError> {
        self.store.edit_task(id, edit, self.actor).await
    }

    /// Moves a task as a person would; the transition table decides.
    pub async fn move_to(
        &self,
        id: TaskId,
        to: TaskStatus,
        reason: &str,
    ) -> Result<Task, crate::EngineError> {
        crate::run::steer::move_task(self.store, id, to, reason, self.actor).await
    }

    /// Imports a board file: idempotent by key, all or nothing.
    pub async fn import(&self, file: &BoardFile) -> Result<ImportReport, StoreError> {
        self.store.import_board(file, self.actor).await
    }

    /// The tasks with any of `statuses` (all when empty), by id.
    pub async fn list(&self, statuses: &[TaskStatus]) -> Result<Vec<Task>, StoreError> {
        self.store.tasks(statuses).await
    }
}
