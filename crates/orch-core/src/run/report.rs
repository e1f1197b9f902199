//! What an agent reports: how its process ended, its work as the engine committed
//! it, the work it left when orch stopped before hearing of it, and what it said of
//! its run (usage, a rate limit, a failure note).

use serde::{Deserialize, Serialize};

use super::types::CommitId;
use crate::usage::Usage;

/// How an agent process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentExit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Never started (e.g. the program was not found).
    FailedToStart(String),
}

/// An agent that had finished, and whose work the engine had committed, when orch
/// stopped, though the core never heard of it. The engine finds these on resume (it
/// writes the facts beside the attempt's logs before it reports them), so a resumed
/// run goes on from that work instead of running the agent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedAgent {
    /// How it ended.
    pub exit: AgentExit,
    /// Its committed work, as [`super::Input::AgentExited`] would have carried it.
    pub changes: Option<Changes>,
    /// What it reported.
    #[serde(default)]
    pub report: AgentReport,
}

/// What an agent said about itself, read from its output by the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReport {
    /// Its usage so far (or in all, once it exited), if its output tells.
    pub usage: Option<Usage>,
    /// A rate-limit or quota signature seen in its output: the CLI's error event, or
    /// one of `policy.quota_patterns` in the output of an agent that failed.
    pub quota: Option<String>,
    /// What a failed agent's output suggests to fix (a credential not passed
    /// through), for its failure's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A figure of its report that cannot be true (a negative, NaN or infinite cost;
    /// a token count that is not a whole number), left out of `usage`; the core
    /// journals it once per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
    /// The last lines a failed agent printed (at most 5), for its failure's words and
    /// so for its retry's prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// The agent's CLI retrying a rate-limited request (HTTP 429 or 529) on its own:
    /// the core decides when that is a quota signal ([`AgentReport::quota_signal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<RateLimited>,
}

/// An agent CLI's own retries of a rate-limited request, as its output says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimited {
    /// The HTTP status (429, 529).
    pub status: u64,
    /// Its retry count so far, in a row.
    pub retries: u64,
    /// The API's words.
    pub error: String,
}

/// A CLI retrying a rate limit this many times in a row is a quota signal: its own
/// backoff grows past what is worth waiting inside one attempt.
pub const RATE_LIMIT_RETRIES: u64 = 3;

impl AgentReport {
    /// What a failed agent's failure adds to its exit: the hint, then the end of its
    /// output.
    pub fn failure_note(&self) -> Option<String> {
        let tail = self
            .output_tail
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| format!("its output ended: {}", t.trim()));
        match (&self.hint, tail) {
            (Some(h), Some(t)) => Some(format!("{h}; {t}")),
            (Some(h), None) => Some(h.clone()),
            (None, t) => t,
        }
    }

    /// The quota signature this report carries: one the agent's output states, or its
    /// CLI's own retries of a rate limit, [`RATE_LIMIT_RETRIES`] or more in a row.
    pub fn quota_signal(&self) -> Option<String> {
        self.quota.clone().or_else(|| {
            self.rate_limited
                .as_ref()
                .filter(|r| r.retries >= RATE_LIMIT_RETRIES)
                .map(|r| {
                    format!(
                        "the API answered {} ({}) {} times in a row",
                        r.status, r.error, r.retries
                    )
                })
        })
    }
}

/// The agent's work, committed by the engine after the agent exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The branch head after committing leftovers.
    pub head: CommitId,
    /// True when the head's tree equals the base's.
    pub empty: bool,
    /// Where the agent moved the worktree's `HEAD`, if it left the attempt's branch
    /// (switched branch, detached). The core judges it: the agent's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_moved: Option<String>,
    /// True when the base is no longer an ancestor of the head: the agent rewrote
    /// history (reset, rebase, amend of the base). The agent's failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rewrote_history: bool,
    /// What the agent changed in the repository's shared git files (hooks, config,
    /// `info/`), found and undone by the engine. The agent's failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampered: Vec<String>,
    /// What made the worktree unusable (the agent deleted it, made it unreadable, or
    /// pointed its `.git` elsewhere): nothing of it was committed. The agent's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_broken: Option<String>,
    /// What the user did to their own branches (the run's base or target) while the
    /// agent ran: journaled, and no one's failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users_refs: Vec<String>,
    /// The symlinks the agent's work adds or changes; `policy.symlinks` judges them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symlinks: Vec<crate::symlinks::Symlink>,
}

impl Changes {
    /// Work on the attempt's branch that descends from its base.
    pub fn new(head: CommitId, empty: bool) -> Changes {
        Changes {
            head,
            empty,
            branch_moved: None,
            rewrote_history: false,
            tampered: Vec::new(),
            worktree_broken: None,
            users_refs: Vec::new(),
            symlinks: Vec::new(),
        }
    }
}
