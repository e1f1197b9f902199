//! The run: the [`Orchestrator`] state machine, its inputs and commands, its policy,
//! and the journal it is rebuilt from.
//!
//! # Call order
//!
//! ```text
//! let mut o = Orchestrator::new(run_id, policy, board);      // or ::resume(...)
//! let _ = o.handle(now, Input::Start { head });
//! loop {
//!     while let Some(cmd) = o.poll_command() {
//!         // Execute in order. A Persist (or Claim) must be durable before the next
//!         // command runs.
//!     }
//!     if o.is_finished() { break }
//!     // Wait for an adapter result or until o.poll_timeout(), whichever comes first,
//!     // then: o.handle(now, input) or o.handle(now, Input::Tick).
//! }
//! ```
//!
//! # Sub-states, each owning its fields
//!
//! - `scheduler`: the board as the run sees it, the ready set, deferrals, retries,
//!   claims in flight, and board changes;
//! - `attempt`: the attempt lifecycle, with the attempt's state as the one source of
//!   truth for what it waits on;
//! - `outcome`: what an attempt's end means for its task, and retries;
//! - `integrator`: the integration queue, its speculative stack of batches, and which
//!   gates are due; `batch`: what a batch's pass implies; `shape`: depth and batch
//!   size, adaptive under `run.integration = "auto"`;
//! - `gates`: gate slots, worker and integration gates together (`validate.slots`);
//! - `planner`: planner requests, epochs and verdicts;
//! - `timers`: one table for every deadline;
//! - `resume`: crash reconciliation.
//!
//! # Rules it keeps
//!
//! - A slot is an agent: held from claim until the attempt's worker gate passes (until
//!   it ends, in incremental mode), so live agents never exceed `policy.slots()`; a
//!   finished attempt waits to integrate without one, up to a bound of its own. A task
//!   whose `touches` overlap a live task's waits, then starts from the integration
//!   head that includes the first one's work.
//! - A task moves to `done` only after its attempt's worker gate passed, its merge was
//!   clean, its integration gate passed on that merge commit, and the ref advanced to it.
//! - Every state change is a [`Command::Persist`] emitted before the command it
//!   licenses, and [`RunSnapshot::from_events`] over those events rebuilds the state.
//! - A stale or refused input changes nothing but the journal, which records it.

mod attempt;
mod breaker;
mod event;
mod explain;
mod gates;
mod ids;
mod integrator;
mod io;
mod journal;
mod orchestrator;
mod planner;
mod policy;
mod proposal;
mod reason;
mod refusal;
mod report;
mod resume;
mod revert;
mod scheduler;
mod shape;
mod spend;
mod timers;
mod types;

pub use event::{Journaled, RunEvent};
pub use explain::{EXPLAIN_LINES, Explained};
pub use io::{
    CancelScope, Command, Input, MergeResult, RefResult, Retention, Stage, TaskSpec,
    ValidationRecord,
};
pub use journal::{AttemptRecord, RunSnapshot};
pub use orchestrator::{Handled, Orchestrator};
pub use policy::{
    Backoff, INFRA_STREAK_HALT, Policy, RetryPolicy, globs_may_overlap, touches_overlap,
};
pub use proposal::{Proposal, Verdict};
pub use refusal::Refusal;
pub use report::{AgentExit, AgentReport, Changes, FinishedAgent, RATE_LIMIT_RETRIES, RateLimited};
pub use resume::{LineMoved, trusted_finished};
pub use scheduler::has_claimable;
pub use shape::{RECENT_VERDICTS, Shape, Verdicts};
pub use types::{
    AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind, IllegalTransition, RunId,
    RunState, Undo, check_attempt, check_run,
};
