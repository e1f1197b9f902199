//! A task's review as the board keeps it: which round, the work under review (one
//! attempt's branch, as it passed its worker gate) and the verdict so far.

use serde::{Deserialize, Serialize};

use crate::run::{CommitId, RunId};

/// The work under review: one attempt's branch, as it passed its worker gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewWork {
    /// The run the attempt belongs to.
    pub run: RunId,
    /// The attempt's number within its task.
    pub attempt: u32,
    /// Its branch, kept until the review is decided.
    pub branch: String,
    /// The integration head it started from.
    pub base: CommitId,
    /// Its head commit: what is reviewed, and what an approval integrates.
    pub head: CommitId,
    /// The agent's session, resumed by a round of changes.
    pub session: Option<String>,
}

/// Where a person's decision stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Waiting for a person.
    Pending,
    /// Approved: the next claim integrates the work as it is.
    Approved,
    /// Changes asked for: the next claim runs a new round with this feedback.
    Changes {
        /// The text for the agent's prompt, comments quoted with their lines.
        feedback: String,
    },
}

/// A task's review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// Which round the work is: 1 for the first, one more after each request for
    /// changes.
    pub round: u32,
    /// The work under review.
    pub work: ReviewWork,
    /// The decision.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// A note for the person (set when the rounds ran out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Review {
    /// Work waiting for a person, at `round`.
    pub fn pending(round: u32, work: ReviewWork) -> Review {
        Review {
            round,
            work,
            verdict: Verdict::Pending,
            note: None,
        }
    }

    /// Whether a person approved the work: a claim of its task while it is in
    /// `review` integrates it instead of running an agent.
    pub fn approved(&self) -> bool {
        self.verdict == Verdict::Approved
    }

    /// The feedback a new round's agent gets, if changes were asked for.
    pub fn feedback(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Changes { feedback } => Some(feedback),
            _ => None,
        }
    }

    /// The round a new submission of this task's work is.
    pub fn next_round(review: Option<&Review>) -> u32 {
        review.map_or(1, |r| r.round + 1)
    }
}
