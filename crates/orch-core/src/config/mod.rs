//! The configuration schema, with the defaults of DESIGN.md.
//!
//! This module only describes and checks values; loading and layering files and the
//! environment is the frontend's job. Every struct denies unknown keys, and every value
//! type's error says what is allowed, so a loader can report "file, key, allowed".

mod bad_setting;
mod check;
mod schema;
mod sections;

pub use bad_setting::{BadSetting, check_branch_name};
pub use schema::*;
pub use sections::{
    BoardConfig, BoardSource, NotifyConfig, ReviewConfig, ReviewRequired, WorkerConfig,
};
