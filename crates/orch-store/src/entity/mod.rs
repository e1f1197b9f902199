//! sea-orm entities. Private to the crate: they never appear in the public API.

pub(crate) mod control;
pub(crate) mod event;
pub(crate) mod run;
pub(crate) mod task;
pub(crate) mod task_dep;
