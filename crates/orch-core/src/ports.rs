//! The result types adapters report in core terms (a resolved base, an agent's
//! leftovers, a merge's outcome, git's inventory). The port traits themselves live
//! where they are used: `orch_engine::ports`. The core never calls a port; it emits
//! commands.

use std::path::PathBuf;
use std::sync::Arc;

use crate::run::CommitId;
pub use crate::run::Undo;

/// What kind of failure a port reports: what the engine and the core can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortErrorKind {
    /// What was asked for is not there (a commit, a ref, a worktree).
    NotFound,
    /// It is in the way of something else (a branch that exists, a checked-out one, a
    /// path taken, a dirty worktree).
    Conflict,
    /// It moved under orch (a ref not where it was expected).
    Moved,
    /// Held by someone else for now; worth trying again.
    Busy,
    /// The adapter cannot do this.
    Unsupported,
    /// Anything else.
    Other,
}

/// A port's failure: its kind, its words, and the adapter's own error kept as the
/// source. No port hands the engine a bare string.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    /// What kind of failure.
    pub kind: PortErrorKind,
    /// What happened, in the adapter's words.
    pub message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PortError {
    /// A failure of `kind` caused by the adapter's `source`, in its words.
    pub fn new(
        kind: PortErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> PortError {
        PortError {
            kind,
            message: source.to_string(),
            source: Some(Arc::new(source)),
        }
    }

    /// A failure with only words (a fake, or a check of the engine's own).
    pub fn other(message: impl Into<String>) -> PortError {
        PortError {
            kind: PortErrorKind::Other,
            message: message.into(),
            source: None,
        }
    }
}

impl PortError {
    /// What this adapter cannot do.
    pub fn unsupported(message: impl Into<String>) -> PortError {
        PortError {
            kind: PortErrorKind::Unsupported,
            ..PortError::other(message)
        }
    }
}

/// An executor turns a port's failure into the words of the input it reports: the
/// core's inputs carry text.
impl From<PortError> for String {
    fn from(e: PortError) -> String {
        e.message
    }
}

impl PartialEq for PortError {
    fn eq(&self, other: &PortError) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for PortError {}

/// Which commit a run starts from, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBase {
    /// The commit.
    pub commit: CommitId,
    /// What it was resolved from, e.g. `refs/remotes/origin/main`.
    pub source: String,
    /// Whether a fetch brought it up to date.
    pub fetched: bool,
    /// Set when a fetch failed and a cached ref was used instead.
    pub warning: Option<String>,
}

/// What an agent left in its worktree, after committing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftovers {
    /// The branch head afterwards.
    pub head: CommitId,
    /// Whether a commit was made for uncommitted changes.
    pub committed: bool,
    /// True when the head's tree is the base's: the agent changed nothing.
    pub empty: bool,
    /// Where `HEAD` points if the agent moved it off the attempt's branch.
    pub branch_moved: Option<String>,
    /// True when the base is no longer an ancestor of the head (history rewritten).
    pub rewrote_history: bool,
    /// The symlinks the attempt's commits add or change (base to head).
    pub symlinks: Vec<crate::symlinks::Symlink>,
}

/// One landing on the integration line: the tasks it holds (keys) and the files it
/// changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    /// The tasks, by key (its commit's `Orch-Task` trailers).
    pub tasks: Vec<String>,
    /// The files it changed, against the line before it.
    pub files: Vec<String>,
}

/// One unresolved conflict of a merge.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConflictPath {
    /// The path (for a rename, each side's path is listed).
    pub path: String,
    /// What kind of conflict, e.g. `content`, `add/add`, `modify/delete`.
    pub kind: String,
}

/// The result of an in-memory merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged; the commit is written, no ref moved.
    Clean {
        /// The merge (or squash) commit.
        commit: CommitId,
    },
    /// Not merged.
    Conflicted {
        /// The unresolved conflicts, sorted by path.
        conflicts: Vec<ConflictPath>,
    },
}

/// A worktree of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeInfo {
    /// Its directory.
    pub path: PathBuf,
    /// The branch checked out, if attached (short name, e.g. `orch/r1/task-1-1`).
    pub branch: Option<String>,
    /// Its directory is gone.
    pub prunable: bool,
    /// It is locked.
    pub locked: bool,
    /// It has changes or untracked files (`None` when prunable).
    pub dirty: Option<bool>,
}

/// An `orch/*` branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchInfo {
    /// Short name, e.g. `orch/r1/task-1-1`.
    pub name: String,
    /// Its tip.
    pub head: CommitId,
    /// Its changes are contained in an integration branch (by merge or squash).
    pub merged: bool,
    /// The worktree that has it checked out, if any.
    pub worktree: Option<PathBuf>,
}

/// Every linked worktree and `orch/*` branch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Linked worktrees (the main one is never listed).
    pub worktrees: Vec<WorktreeInfo>,
    /// `orch/*` branches, integration branches included.
    pub branches: Vec<BranchInfo>,
    /// Worktrees git has begun to register and not finished (their admin
    /// directory's `gitdir` not written yet): being made right now, by a run's
    /// `git worktree add`. Left alone.
    pub half_made: Vec<String>,
}

/// What of the shared repository an agent must not change: the files `config`,
/// `hooks/` and `info/` under the common git directory (by path relative to it, with
/// their bytes), and every ref outside orch's own (`refs/heads/orch/`, `refs/orch/`):
/// the user's branches, tags and remote-tracking refs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedGitState {
    /// The shared files.
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
    /// The refs outside orch's namespaces, by full name.
    pub refs: std::collections::BTreeMap<String, crate::run::CommitId>,
    /// The user's own branches among them (the run's base and target, by full name):
    /// what happens to these while an agent runs is the user's doing.
    pub users: std::collections::BTreeSet<String>,
}

/// What changed in the shared git files and refs while an agent ran, once put right.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// What the agent did, each put back (or, for a checked-out branch, how to undo
    /// it): the agent's failure.
    pub undone: Vec<String>,
    /// What the user did: the run's base or target branch moved or deleted while the
    /// agent ran. No agent is blamed and nothing is put back (what a deleted branch
    /// pointed at is kept under `refs/orch/undone/`).
    pub users: Vec<String>,
}
