//! Why the orchestrator refused an input: a stale or impossible one (the answer to an
//! operation it no longer waits for, a second pause) changes nothing but the journal,
//! which records the refusal's words ([`super::RunEvent::InputRefused`]).

use std::fmt;

use super::{AttemptId, RunState};
use crate::task::TaskId;

/// A refused input, with what made it stale or impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The attempt waits for something else (or nothing).
    NotWaiting {
        /// The attempt.
        attempt: AttemptId,
        /// What the input answers.
        answers: String,
        /// What the attempt waits for, if anything.
        waits_for: Option<String>,
    },
    /// No attempt of this run has that id.
    UnknownAttempt(AttemptId),
    /// The attempt has no operation out for its work to have failed.
    NoOperationOut(AttemptId),
    /// No cleanup of the attempt was asked for.
    NoCleanupPending(AttemptId),
    /// `Start` came to a run that is not new.
    AlreadyStarted(RunState),
    /// The run has finished: nothing more is taken.
    Finished,
    /// Claiming is already paused (or on).
    ClaimingAlready {
        /// Whether it is paused.
        paused: bool,
    },
    /// No live attempt or waiting retry of the task to cancel.
    NoLiveAttempt(TaskId),
    /// No claim of the task was asked for.
    NoClaimPending(TaskId),
    /// The planner request is not pending (answered, failed or from an older epoch).
    PlannerNotPending(u64),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotWaiting {
                attempt,
                answers,
                waits_for,
            } => {
                let state = waits_for
                    .as_deref()
                    .map_or("None".to_owned(), |w| format!("Some({w})"));
                write!(f, "{attempt} is not waiting for {answers} (it is {state})")
            }
            Refusal::UnknownAttempt(a) => write!(f, "unknown attempt {a}"),
            Refusal::NoOperationOut(a) => write!(f, "{a} has no operation out"),
            Refusal::NoCleanupPending(a) => write!(f, "no cleanup of {a} is pending"),
            Refusal::AlreadyStarted(s) => {
                write!(f, "{}", format!("the run is already {s:?}").to_lowercase())
            }
            Refusal::Finished => f.write_str("the run has finished"),
            Refusal::ClaimingAlready { paused } => write!(
                f,
                "claiming is already {}",
                if *paused { "paused" } else { "on" }
            ),
            Refusal::NoLiveAttempt(t) => write!(f, "task {t} has no live attempt in this run"),
            Refusal::NoClaimPending(t) => write!(f, "no claim of task {t} is pending"),
            Refusal::PlannerNotPending(r) => write!(f, "planner request {r} is not pending"),
        }
    }
}

impl std::error::Error for Refusal {}
