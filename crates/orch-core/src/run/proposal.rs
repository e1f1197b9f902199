//! Planner proposals and the core's verdicts on them.

use serde::{Deserialize, Serialize};

use crate::task::TaskId;

/// A planner's proposal. The planner proposes; the core decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Proposal {
    /// Claim a task now, optionally with a note for the agent's prompt.
    Claim {
        /// The task.
        task: TaskId,
        /// Extra prompt text.
        #[serde(default)]
        note: Option<String>,
    },
    /// Leave a task for later.
    Defer {
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// Claim nothing more in this run.
    StopClaiming {
        /// Why.
        reason: String,
    },
}

/// The core's decision on a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Acted on.
    Accepted,
    /// Refused, with the reason.
    Rejected {
        /// Why.
        reason: String,
    },
}
