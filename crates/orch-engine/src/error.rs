//! The engine's errors. A failing *task* is not one: it is part of the run.

use orch_git::GitError;
use orch_store::StoreError;

/// Engine failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Git failed outside an attempt (resolving the base, the integration branch).
    #[error(transparent)]
    Git(#[from] GitError),
    /// The configuration cannot run.
    #[error("{0}")]
    Config(String),
    /// The lease could not be renewed for a whole TTL; the run was stopped, since
    /// another process may have taken it over.
    #[error(
        "run {run}: the lease could not be renewed for a whole lease_ttl ({why}); this process stopped driving the run; `orch run resume {run}` goes on"
    )]
    LeaseExpired {
        /// The run.
        run: String,
        /// The last renewal's error.
        why: String,
    },
    /// The store stayed busy or unreachable for longer than `run.store_patience`; the
    /// run was stopped cleanly, with nothing half-written.
    #[error(
        "run {run}: the database could not be written for {waited_secs} s (run.store_patience), last: {why}; the run stopped cleanly and `orch run resume {run}` goes on"
    )]
    StoreUnavailable {
        /// The run.
        run: String,
        /// How long it was waited out.
        waited_secs: u64,
        /// The last error.
        why: String,
    },
    /// The run cannot be resumed as it is.
    #[error("{0}")]
    Unresumable(String),
    /// The integration line or the target could not take the work: a base or target
    /// that moved on conflicts with it or fails the integration gate.
    #[error("{0}")]
    Landing(String),
    /// Artifact retention could not read or remove something.
    #[error("artifact retention: {0}")]
    Artifacts(String),
    /// A new run would find nothing to claim, so none was started.
    #[error("{0}")]
    NothingToClaim(Idle),
    /// The board's source (`board.source`) could not be synced.
    #[error(transparent)]
    Source(#[from] crate::boards::SyncError),
}

impl EngineError {
    /// True when the user can fix it (bad input, a refusal such as another process
    /// driving the run, a run that cannot be resumed as it is), rather than a failure.
    pub fn is_refusal(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_refusal(),
            EngineError::Config(_)
            | EngineError::Unresumable(_)
            | EngineError::Landing(_)
            | EngineError::NothingToClaim(_) => true,
            EngineError::Git(e) => e.is_refusal(),
            EngineError::Source(e) => e.is_refusal(),
            EngineError::LeaseExpired { .. }
            | EngineError::StoreUnavailable { .. }
            | EngineError::Artifacts(_) => false,
        }
    }
}

/// Why a new run was not started: nothing on the board can be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idle {
    /// Failed tasks (keys), which `orch task retry` puts back in the backlog.
    pub failed: Vec<String>,
    /// Blocked tasks (keys).
    pub blocked: Vec<String>,
    /// Backlog tasks waiting on dependencies that are not done (keys).
    pub waiting: Vec<String>,
    /// Tasks whose work waits for a person's review (keys).
    pub in_review: Vec<String>,
}

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nothing to claim, so no run was started")?;
        let list = |v: &[String]| v.join(", ");
        if !self.failed.is_empty() {
            write!(
                f,
                "; failed: {} (`orch task retry {}` puts it back in the backlog)",
                list(&self.failed),
                self.failed[0]
            )?;
        }
        if !self.blocked.is_empty() {
            write!(
                f,
                "; blocked: {} (`orch task retry {}` unblocks it)",
                list(&self.blocked),
                self.blocked[0]
            )?;
        }
        if !self.waiting.is_empty() {
            write!(f, "; waiting on dependencies: {}", list(&self.waiting))?;
        }
        if !self.in_review.is_empty() {
            write!(
                f,
                "; waiting for review: {} (`orch review` lists them; an approved one lands in the next run)",
                list(&self.in_review)
            )?;
        }
        Ok(())
    }
}
