//! orch's storage adapter: the board and the audit log, in SQLite or PostgreSQL.
//!
//! [`Store`] speaks domain types from `orch-core`; sea-orm entities and errors stay
//! inside this crate. Migrations run on open. Every change to the board happens in
//! one write transaction together with the event that records it, so the log and the
//! board cannot disagree.
//!
//! On SQLite the database runs in WAL mode with a busy timeout, and write
//! transactions begin `IMMEDIATE`, so concurrent writers from several processes queue
//! up instead of failing on a lock upgrade; if the lock is held past the timeout, the
//! caller gets [`StoreError::Busy`].
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod board;
mod controls;
mod entity;
mod error;
mod events;
mod jobs;
mod leases;
mod line;
mod location;
mod logs;
mod migration;
mod pool;
mod projections;
mod retries;
mod reviews;
mod runs;
mod store;
mod tasks;
mod verdicts;

pub use board::ImportReport;
pub use controls::{Control, ControlKind};
pub use error::SQLITE_BUSY_TIMEOUT;
pub use error::StoreError;
pub use events::EventFilter;
pub use jobs::{Claimed, JOB_INTERRUPTED};
pub use leases::{Acquired, LEASE_ACQUIRED, LEASE_TAKEN_OVER, Lease};
pub use line::LINE_RESET;
pub use location::{Location, redact};
pub use logs::StoredLog;
pub use pool::PoolLease;
pub use projections::{ArtifactRow, AttemptRow, MergeRow, ProposalRow, ValidationRow};
pub use reviews::PersonEvent;
pub use runs::{RUN_CREATED, RunInfo};
pub use store::Store;
pub(crate) use store::now;
pub use tasks::MoveRequest;
