//! The run: the orchestrator state machine, its inputs and commands, its policy, and
//! the journal it is rebuilt from.

mod io;
mod journal;
mod orchestrator;
mod policy;
mod types;

pub use io::{
    AgentExit, CancelScope, Changes, Command, FinishedAgent, Input, MergeResult, Proposal,
    RefResult, RunEvent, Stage, TaskSpec, ValidationRecord, Verdict,
};
pub use journal::{AttemptRecord, RunSnapshot};
pub use orchestrator::{Ignored, Orchestrator};
pub use policy::{Backoff, Policy, RetryPolicy, globs_may_overlap, touches_overlap};
pub use types::{
    AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind, IllegalTransition, RunId,
    RunState, check_attempt, check_run,
};
