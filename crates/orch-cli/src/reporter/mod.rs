//! Progress reporters: each reads a run's event stream ([`orch_engine::Subscription`])
//! and nothing else. `live` redraws a block of attempts on a terminal, `plain` prints
//! one line per event for logs and pipes, `json` streams JSON lines for machines.

mod json;
mod live;
mod plain;

use orch_engine::RunHandle;
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

/// Reports `handle`'s run until it ends.
pub fn spawn(handle: &RunHandle, mode: Mode) -> JoinHandle<()> {
    let sub = handle.subscribe();
    tokio::spawn(async move {
        match mode {
            Mode::Live => live::report(sub).await,
            Mode::Plain => plain::report(sub).await,
            Mode::Json => json::report(sub).await,
        }
    })
}
