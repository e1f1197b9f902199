//! The integration line: where a run's branches live (`layout`), what its commits
//! say (`history`), where it stands (`status`, `orch status`) and landing it on its
//! target (`land`, at a run's finish and by `orch land`).

pub mod history;
pub mod land;
pub mod layout;
pub mod status;
