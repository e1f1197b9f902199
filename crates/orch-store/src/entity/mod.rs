//! sea-orm entities. Private to the crate: they never appear in the public API.

pub(crate) mod artifact;
pub(crate) mod attempt;
pub(crate) mod attempt_log;
pub(crate) mod control;
pub(crate) mod event;
pub(crate) mod gate_verdict;
pub(crate) mod job;
pub(crate) mod lease;
pub(crate) mod merge;
pub(crate) mod pool_slot;
pub(crate) mod proposal;
pub(crate) mod run;
pub(crate) mod task;
pub(crate) mod task_dep;
pub(crate) mod validation;
