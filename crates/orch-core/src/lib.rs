//! Pure policy for orch: domain types, state machines and the config schema.
//!
//! This crate is *sans-IO*: it has no async runtime, no file system, no clock, no
//! processes and no database. Callers pass the current time in and get decisions out.
//! Everything here is deterministic for a given input, which is what lets the adapters
//! and the engine be tested against one source of truth.
//!
//! Modules:
//! - [`task`]: tasks, their ids, statuses and validated fields.
//! - [`transition`]: the task transition table, the only place task moves are decided.
//! - [`deps`]: dependency-graph checks (cycles, unknown tasks).
//! - [`board`]: the board file (`[[task]]` TOML) model and its whole-file validation.
//! - [`event`]: audit-log event kinds.
//! - [`config`]: the configuration schema with its defaults and value types.
//! - [`time`]: a millisecond timestamp that callers stamp inputs with.
//! - [`units`]: durations and sizes as config files write them.
//! - [`usage`]: what agents report spending (tokens, dollars, sessions).
//! - [`notify`]: which events notify, and `[notify]`.
//! - [`pool`]: the worktree pool's policy: which worktree to take, which to retire.
//! - [`ports`]: the traits adapters implement for the engine (git), in core types.
//! - [`review`]: which tasks wait for a person, and what a person's decision does.
//! - [`run`]: the [`run::Orchestrator`], the run state machine in handle/poll style,
//!   with its policy, inputs, commands and journal.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod board;
pub mod cleanup;
pub mod config;
pub mod deps;
pub mod event;
pub mod jobs;
pub mod landing;
pub mod lease;
pub mod notify;
pub mod pool;
pub mod ports;
pub mod review;
pub mod run;
pub mod source;
pub mod symlinks;
pub mod task;
pub mod time;
pub mod transition;
pub mod units;
pub mod usage;

pub use task::{Task, TaskId, TaskStatus};
pub use time::Timestamp;
