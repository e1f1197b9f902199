//! orch's process runner: agents and validation commands, run with bounded time and
//! bounded output, stopped completely, and logged as evidence.
//!
//! - [`runner`]: one command in its own process group, with an allowlisted
//!   environment, a timeout, cancellation, a capped log and a live line feed.
//! - [`gate`]: validation gates, ordered commands for a stage, and their results.
//! - [`artifacts`]: the artifact directory layout and retention.
//! - [`procs`]: finding and stopping the processes of runs whose orch died.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod artifacts;
pub mod files;
pub mod gate;
mod log;
pub mod procs;
mod pump;
pub mod runner;

pub use artifacts::{Artifacts, GcReport, Kept, Retention};
pub use gate::{CommandResult, GateResult, GateSpec, run_gate};
pub use procs::{RUN_TAG, Stopped, TaggedProcess, become_subreaper, stop_orphans};
pub use pump::run;
pub use runner::{
    CommandSpec, Environment, Line, Outcome, Program, Report, RunError, Stream, name_matches,
};
pub use tokio_util::sync::CancellationToken;
