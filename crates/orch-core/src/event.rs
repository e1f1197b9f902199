//! Audit-log events. Every state change is an event with a kind, a reason and an actor.

use serde::{Deserialize, Serialize};

use crate::task::TaskId;
use crate::time::Timestamp;

/// The kinds of board event. The store keeps the kind as text, so later kinds
/// (runs, attempts, merges) extend this list without a migration.
pub mod kind {
    /// A task was added.
    pub const TASK_CREATED: &str = "task.created";
    /// A task's fields or dependencies changed.
    pub const TASK_UPDATED: &str = "task.updated";
    /// A task moved between columns along the transition table.
    pub const TASK_MOVED: &str = "task.moved";
    /// A person forced a move outside the transition table.
    pub const TASK_OVERRIDE: &str = "task.override";
    /// A task was removed from the board.
    pub const TASK_REMOVED: &str = "task.removed";
    /// A board file was imported.
    pub const BOARD_IMPORTED: &str = "board.imported";
    /// orch wrote a task's status (and a note) back to the board's source file.
    pub const SOURCE_WRITTEN: &str = "source.written";
    /// orch left a source file alone: a person changed the task's status there first.
    pub const SOURCE_CONFLICT: &str = "source.conflict";
    /// A person asked a run to do something (cancel, pause, resume); the run journals
    /// what it did about it.
    pub const CONTROL_REQUESTED: &str = "control.requested";
    /// A person asked for a run to be started (from the dashboard).
    pub const RUN_REQUESTED: &str = "run.requested";
    /// A task's work waits for a person's review (written by its run).
    pub const REVIEW_REQUESTED: &str = "review.requested";
    /// A person approved a task's work.
    pub const REVIEW_APPROVED: &str = "review.approved";
    /// A person asked for changes to a task's work.
    pub const REVIEW_CHANGES: &str = "review.changes";
    /// A person rejected a task's work.
    pub const REVIEW_REJECTED: &str = "review.rejected";
    /// A person started resolving a task's conflict by hand.
    pub const RESOLVE_STARTED: &str = "resolve.started";
    /// A person committed a conflict's resolution; the next claim lands it.
    pub const RESOLVE_DONE: &str = "resolve.done";
    /// A person put a resolution under way back as it was.
    pub const RESOLVE_ABORTED: &str = "resolve.aborted";
    /// A person handed a conflict to the task's agent.
    pub const RESOLVE_AGENT: &str = "resolve.agent";
}

/// One row of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log; strictly increasing.
    pub seq: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// The run it belongs to, if any.
    pub run_id: Option<String>,
    /// The task it concerns, if any.
    pub task_id: Option<TaskId>,
    /// The attempt number it concerns, if any.
    pub attempt: Option<i64>,
    /// What happened, one of [`kind`] or a later kind.
    pub kind: String,
    /// Why, in words.
    pub reason: String,
    /// Who: `orchestrator`, or `human:<user>`, or `import`.
    pub actor: String,
    /// Details, as JSON.
    pub payload: serde_json::Value,
}
