//! What every handler shares ([`AppState`]) and the types it holds: the board as last
//! read, the feed's messages, how to start a run; and the dashboard's errors. A leaf:
//! it names no handler.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use orch_engine::Repo;
use orch_engine::core::run::RunId;
use orch_engine::core::usage::Usage;
use orch_engine::core::{Task, TaskId, TaskStatus};
use orch_store::{AttemptRow, Store};

/// One event as the stream sends it: its `seq` and its JSON.
pub(crate) type Message = Arc<(i64, String)>;

/// A run started from the dashboard: a program run in its own process group, detached,
/// its output to `log`.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// The program (`orch`).
    pub program: std::path::PathBuf,
    /// Its arguments (`--repo PATH run`).
    pub args: Vec<String>,
    /// Where its output goes.
    pub log: std::path::PathBuf,
}

/// The dashboard's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No random token could be made.
    #[error("cannot make a random token: {0}")]
    Random(String),
    /// The token given is too easy to guess or cannot go in a URL.
    #[error(
        "the dashboard token must be at least 16 characters of A-Z, a-z, 0-9, '-' and '_' (got {0} characters)"
    )]
    Token(usize),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) token: Arc<str>,
    /// The token cookie's name: this server's own (`auth::cookie_name`).
    pub(crate) cookie: Arc<str>,
    /// Put into every form and required back: a POST from another page has not got it.
    pub(crate) csrf: Arc<str>,
    pub(crate) actor: Arc<str>,
    /// The repository's artifacts directory (`.orch/artifacts`): prompts and logs.
    pub(crate) artifacts: Arc<std::path::Path>,
    /// The front door every change and every read of git goes through.
    pub(crate) repo: Arc<Repo>,
    pub(crate) start: Option<Arc<StartRun>>,
    /// Every new event of the log, read once for all live clients.
    pub(crate) feed: tokio::sync::broadcast::Sender<Message>,
    /// The board's data as of the newest event when it was last read.
    pub(crate) board: Arc<std::sync::Mutex<Option<Arc<BoardData>>>>,
}

/// What the board shows, read as of one event `seq`.
#[derive(Clone)]
pub(crate) struct BoardData {
    /// The newest event it reflects.
    pub seq: i64,
    /// Every task, by id.
    pub tasks: Vec<Task>,
    /// What each task's attempts used.
    pub usage: BTreeMap<TaskId, Usage>,
    /// Who holds each task now: the run, its live attempt, and since when (ms).
    pub held: HashMap<TaskId, (RunId, String, i64)>,
    /// Tasks whose retry waits for other tasks' work in flight, with those tasks.
    pub retrying: BTreeMap<TaskId, Vec<TaskId>>,
    /// Each task's status, for its dependents' readiness.
    pub status: BTreeMap<TaskId, TaskStatus>,
    /// Each failed task's last failed attempt, with its run.
    pub failures: HashMap<TaskId, (RunId, AttemptRow)>,
}
