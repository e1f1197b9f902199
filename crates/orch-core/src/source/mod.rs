//! Boards people already keep, read and written in their own formats: Backlog.md's
//! markdown task files and Taskmaster's `tasks.json`. Parsing a file into
//! [`SourceTask`]s, what each status means to orch and how orch's columns are written
//! back ([`Statuses`]), the edit of one task's status and note that leaves every
//! other byte alone, and the plan of one sync between a source and the board
//! ([`plan_sync`]). Pure: the engine reads and writes the files.

pub mod backlog;
mod model;
mod sync;
pub mod taskmaster;

pub use model::{SourceError, SourceTask, Statuses, line_of, priority_of};
pub use sync::{Ending, Move, Note, SyncPlan, Synced, Write, plan_sync};
