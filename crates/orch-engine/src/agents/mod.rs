//! Agents as processes and text: the presets (each CLI's flags, environment and
//! output format), the preflight that checks one can run, the sandbox, the prompt, the
//! parsing of what an agent prints into its usage, and the planner's protocol. Pure
//! text handling, apart from the preflight and the sandbox check; running an agent is
//! `exec`'s.

mod check;
pub(crate) mod presets;
pub(crate) mod prompt;
pub(crate) mod proposals;
pub(crate) mod report;
pub mod sandbox;

pub(crate) use check::warm_up;
pub use check::{AgentCheck, check, check_command};
