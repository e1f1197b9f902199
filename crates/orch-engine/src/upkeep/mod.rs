//! Upkeep outside a run's loop: `orch cleanup` (planned by the core, carried out
//! here), the worktree pool as a whole (`orch pool`), and the retention of attempt logs.

pub mod cleanup;
pub mod pool;
pub mod retention;
