//! The board as a person edits it: each change journaled with who made it, moves
//! checked against the transition table.

use orch_core::TaskStatus;
use orch_core::board::BoardFile;
use orch_core::task::{NewTask, Task, TaskEdit, TaskId};
use orch_core::transition::Actor;
use orch_store::{ImportReport, MoveRequest, Store, StoreError};

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

    /// One task.
    pub async fn task(&self, id: TaskId) -> Result<Task, StoreError> {
        self.store.task(id).await
    }

    /// Moves a task as a person would; the transition table decides. The journal's
    /// reason is `reason`, else the move's name.
    pub async fn move_to(
        &self,
        id: TaskId,
        to: TaskStatus,
        reason: Option<String>,
    ) -> Result<Task, StoreError> {
        self.request(id, to, false, reason).await
    }

    /// Moves a task past the transition table: journaled as a manual override (when
    /// the table would have refused it), with `reason`.
    pub async fn override_to(
        &self,
        id: TaskId,
        to: TaskStatus,
        reason: Option<String>,
    ) -> Result<Task, StoreError> {
        self.request(id, to, true, reason).await
    }

    async fn request(
        &self,
        id: TaskId,
        to: TaskStatus,
        force: bool,
        reason: Option<String>,
    ) -> Result<Task, StoreError> {
        let req = MoveRequest {
            to,
            actor: Actor::Human,
            force,
            reason,
        };
        self.store.move_task(id, &req, self.actor).await
    }

    /// Removes a task. Refused while other tasks depend on it or a run owns it, unless
    /// `force`, which detaches the dependents. Its events stay in the log.
    pub async fn remove(&self, id: TaskId, force: bool) -> Result<Task, StoreError> {
        self.store.remove_task(id, force, self.actor).await
    }

    /// Cancels a task: moved to `canceled` when no run works on it, else each live run
    /// is asked to stop its attempt.
    pub async fn cancel(
        &self,
        id: TaskId,
        reason: Option<String>,
    ) -> Result<crate::run::steer::Canceled, crate::EngineError> {
        crate::run::steer::cancel_task(self.store, id, reason, self.actor).await
    }

    /// Moves a `from` task (failed, blocked) back to the backlog, as `verb` says
    /// (retried, unblocked); a task in any other status is refused, naming it.
    pub async fn reopen(
        &self,
        id: TaskId,
        from: TaskStatus,
        verb: &str,
        reason: Option<String>,
    ) -> Result<Task, crate::EngineError> {
        crate::run::steer::reopen(self.store, id, from, verb, reason, self.actor).await
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
