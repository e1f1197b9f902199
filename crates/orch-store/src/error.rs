//! The store's error type.

use std::time::Duration;

use orch_core::TaskId;
use orch_core::board::BoardError;
use orch_core::deps::DepError;
use orch_core::task::FieldError;
use orch_core::transition::MoveRejected;

/// How long a writer waits for SQLite's write lock before giving up with
/// [`StoreError::Busy`].
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong in the store. The variants from `Field` to `Board` are refusals of
/// bad input; the rest are failures of the database itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `database_url` is not a form the store understands.
    #[error(
        "database_url {0:?} is not supported: use an empty value (the SQLite file <repo>/.orch/orch.db), sqlite://PATH, or postgres://USER:PASSWORD@HOST/DB"
    )]
    BadLocation(String),
    /// The SQLite file was removed or replaced while the store was open.
    #[error(
        "the database {} was {what} while orch had it open; orch stopped without writing to another file: put the original back and resume (`orch run --resume`), or start again with `orch init`",
        path.display()
    )]
    Replaced {
        /// The file.
        path: std::path::PathBuf,
        /// `removed` or `replaced by another file`.
        what: &'static str,
    },
    /// There is no database where one was expected, and only `orch init` creates one.
    #[error(
        "no orch database at {0}: run `orch init` in the repository first (it sets up .orch/, orch.toml and the database)"
    )]
    NotSetUp(String),
    /// The database could not be opened.
    #[error("cannot open the database at {location}: {message}")]
    Open {
        /// Where.
        location: String,
        /// Why.
        message: String,
    },
    /// Another process held SQLite's write lock past the busy timeout.
    #[error("the database is busy: another process held its write lock past SQLite's own wait ({}s); nothing was changed, try again", SQLITE_BUSY_TIMEOUT.as_secs())]
    Busy,
    /// The disk holding the database is full: nothing was written.
    #[error(
        "no space left on the disk holding the database (ENOSPC) while {doing}; nothing was written: free some space, and orch goes on"
    )]
    DiskFull {
        /// What the store was doing.
        doing: &'static str,
    },
    /// No task has that id.
    #[error("task {0} does not exist")]
    TaskNotFound(TaskId),
    /// A worker's heartbeat or result for a job it no longer holds (its lease ran out,
    /// and the job went back to the queue or to another worker).
    #[error(
        "job {job} is no longer this worker's: its lease (epoch {epoch}) ran out or was taken over; its result is refused"
    )]
    JobFenced {
        /// The job.
        job: i64,
        /// The epoch the worker claimed it under.
        epoch: i64,
    },
    /// `run.executors = "workers"` on a store that cannot serve workers.
    #[error(
        "run.executors = \"workers\" needs a PostgreSQL database (database_url = \"postgres://...\"), which workers on other machines reach; this repository uses SQLite at {0}"
    )]
    WorkersNeedPostgres(String),
    /// No run has that id.
    #[error("run {0} does not exist; `orch run list` shows the runs")]
    RunNotFound(String),
    /// A run with that id exists already.
    #[error("run {0} exists already")]
    RunExists(String),
    /// Another process drives the run.
    #[error(
        "run {run} is driven by {owner} (its lease lapses in {}s unless renewed); only one process drives a run, wait for it or stop it",
        (expires_in_ms.max(&0) + 999) / 1000
    )]
    LeaseHeld {
        /// The run.
        run: String,
        /// The holder.
        owner: String,
        /// How long until the lease expires without a heartbeat.
        expires_in_ms: i64,
    },
    /// Every pooled worktree is held and the pool is at `worktrees.pool_max`.
    #[error(
        "the worktree pool is full: {held} worktrees are held and worktrees.pool_max is {max}; raise worktrees.pool_max or lower run.concurrency"
    )]
    PoolFull {
        /// How many are held.
        held: usize,
        /// The cap.
        max: u32,
    },
    /// The caller's lease was taken over (it missed its heartbeats).
    #[error("run {run}: this process lost its lease to {holder}; it stops driving the run")]
    LeaseLost {
        /// The run.
        run: String,
        /// Who holds it now.
        holder: String,
    },
    /// Another run claimed the task first.
    #[error(
        "task {task} was claimed elsewhere: it is {actual}, not {expected}; another run owns it"
    )]
    ClaimLost {
        /// The task.
        task: TaskId,
        /// The status the claim expected.
        expected: String,
        /// Its status in the store.
        actual: String,
    },
    /// A claim was refused because someone changed the task after the run last read
    /// the board; the run reads it again and decides anew.
    #[error("task {task} changed since the run read the board (event {seq}); the run looks again")]
    TaskChanged {
        /// The task.
        task: TaskId,
        /// The newest event about it.
        seq: i64,
    },
    /// The key belongs to another task.
    #[error("key {key:?} is already used by task {owner}")]
    KeyTaken {
        /// The key.
        key: String,
        /// The task that has it.
        owner: TaskId,
    },
    /// A field value is invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The move is refused by the transition table.
    #[error("cannot move task {task}: {reason}")]
    Move {
        /// The task.
        task: TaskId,
        /// Why.
        reason: MoveRejected,
    },
    /// A dependency change is refused.
    #[error(transparent)]
    Dep(#[from] DepError),
    /// A review decision is refused.
    #[error(transparent)]
    Review(#[from] orch_core::review::ReviewRefused),
    /// A step of a conflict's resolution by hand is refused.
    #[error(transparent)]
    Resolve(#[from] orch_core::review::ResolveRefused),
    /// Other tasks depend on the one being removed.
    #[error(
        "task {task} is a dependency of {}; remove those dependencies first, or use --force to detach them",
        list(dependents)
    )]
    HasDependents {
        /// The task being removed.
        task: TaskId,
        /// The tasks that wait for it.
        dependents: Vec<TaskId>,
    },
    /// A run owns the task.
    #[error("task {0} is in_progress: a run owns it; cancel it first, or use --force")]
    Owned(TaskId),
    /// The dependencies of a task a run owns cannot change: the run claimed it on the
    /// ones it had.
    #[error(
        "task {0} is in_progress: a run owns it, and claimed it on the dependencies it had, so they cannot change now; `orch task cancel {0}` first, then edit it"
    )]
    DepsOfOwned(TaskId),
    /// The board file is invalid.
    #[error(transparent)]
    Board(#[from] BoardError),
    /// The database failed.
    #[error("database error while {doing}: {message}")]
    Database {
        /// What the store was doing.
        doing: &'static str,
        /// The driver's message.
        message: String,
    },
    /// A row holds a value this version cannot read.
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn list(ids: &[TaskId]) -> String {
    ids.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl StoreError {
    /// True when the error refuses bad input rather than reporting a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StoreError::BadLocation(_)
                | StoreError::NotSetUp(_)
                | StoreError::TaskNotFound(_)
                | StoreError::RunNotFound(_)
                | StoreError::RunExists(_)
                | StoreError::JobFenced { .. }
                | StoreError::WorkersNeedPostgres(_)
                | StoreError::LeaseHeld { .. }
                | StoreError::KeyTaken { .. }
                | StoreError::Field(_)
                | StoreError::Move { .. }
                | StoreError::Dep(_)
                | StoreError::Review(_)
                | StoreError::Resolve(_)
                | StoreError::HasDependents { .. }
                | StoreError::Owned(_)
                | StoreError::Board(_)
        )
    }

    /// True when nothing could be written for want of space: worth waiting out.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }

    pub(crate) fn from_db(e: sea_orm::DbErr, doing: &'static str) -> StoreError {
        let message = e.to_string();
        if message.contains("database is locked") || message.contains("SQLITE_BUSY") {
            StoreError::Busy
        } else if is_disk_full(&message) {
            StoreError::DiskFull { doing }
        } else {
            StoreError::Database { doing, message }
        }
    }
}

/// SQLite's "database or disk is full" (`SQLITE_FULL`, code 13), PostgreSQL's
/// `disk_full` (53100), or the operating system's ENOSPC, in a driver's words.
fn is_disk_full(message: &str) -> bool {
    message.contains("database or disk is full")
        || message.contains("No space left on device")
        || message.contains("53100")
        || message.contains("could not extend file")
}
