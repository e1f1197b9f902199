//! Progress reporters: each reads a run's event stream ([`orch_engine::Subscription`]),
//! and the board's titles to name its tasks. `live` prints coloured lines and one
//! status line on a terminal, `plain` one line per event for logs and pipes, `json`
//! JSON lines for machines; `lines` holds the words the first two share.

mod json;
mod lines;
mod live;
mod plain;

use orch_engine::RunHandle;
use orch_store::Store;
use tokio::task::JoinHandle;

/// How a run's progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live block on stderr (a terminal).
    Live,
    /// One line per event on stderr.
    Plain,
    /// JSON lines on stdout (`--json-events`).
    Json,
}

impl Mode {
    /// The mode for a command: `--json-events`, else live on a terminal, else plain.
    pub fn choose(json_events: bool) -> Mode {
        use std::io::IsTerminal;
        if json_events {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// Reports `handle`'s run until it ends, naming tasks with their titles from `store`
/// and retries against `max_attempts`. Colour only on a terminal, and not with
/// `NO_COLOR` set.
pub fn spawn(handle: &RunHandle, mode: Mode, store: Store, max_attempts: u32) -> JoinHandle<()> {
    let sub = handle.subscribe();
    let words = lines::Words::new(store, max_attempts);
    let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tokio::spawn(async move {
        match mode {
            Mode::Live => live::report(sub, words, colour).await,
            Mode::Plain => plain::report(sub, words).await,
            Mode::Json => json::report(sub).await,
        }
    })
}
