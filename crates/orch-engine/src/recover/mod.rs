//! Surviving crashes: the run's lease and heartbeat (`lease`), resuming an interrupted
//! run with the facts its reconciliation needs (`resume`), and taking over a run from
//! another clone (`takeover`).

pub mod lease;
pub mod resume;
pub(crate) mod takeover;
