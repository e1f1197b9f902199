//! Port traits: what the engine needs from its adapters, in core types only. The
//! adapters implement them; the core never calls them (it emits commands instead).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{MergeStyle, Offline};
use crate::run::CommitId;

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
}

/// The git operations the engine needs. Blocking: call from a blocking thread.
pub trait GitPort: Send + Sync {
    /// The adapter's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Resolves the base of a run: `HEAD`, a branch, a tag, a commit, or
    /// `origin/<branch>` (fetched first, within `fetch_timeout`; on failure `offline`
    /// decides between the cached ref and an error).
    fn resolve_base(
        &self,
        base: &str,
        offline: Offline,
        fetch_timeout: Duration,
    ) -> Result<ResolvedBase, Self::Error>;
    /// Creates branch `branch` at `at` (refusing an existing one) with a worktree at `path`.
    fn add_worktree(&self, branch: &str, at: &CommitId, path: &Path) -> Result<(), Self::Error>;
    /// Commits everything an agent left in `worktree` (respecting `.gitignore`).
    fn commit_leftovers(
        &self,
        worktree: &Path,
        branch: &str,
        base: &CommitId,
        message: &str,
    ) -> Result<Leftovers, Self::Error>;
    /// Merges `head` into `onto` in memory and writes the commit; moves no ref.
    fn merge(
        &self,
        onto: &CommitId,
        head: &CommitId,
        style: MergeStyle,
        message: &str,
    ) -> Result<MergeOutcome, Self::Error>;
    /// Moves `reference` from `expected` to `new`, only if it still points at `expected`.
    fn advance_ref(
        &self,
        reference: &str,
        expected: &CommitId,
        new: &CommitId,
    ) -> Result<(), Self::Error>;
    /// Checks out `commit`, detached, in `worktree` (created if missing), touching only
    /// the files that differ.
    fn checkout_detached(&self, worktree: &Path, commit: &CommitId) -> Result<(), Self::Error>;
    /// Removes a linked worktree; a dirty one only if `force`.
    fn remove_worktree(&self, path: &Path, force: bool) -> Result<(), Self::Error>;
    /// Deletes a branch; one whose changes are not in an integration branch only if `force`.
    fn delete_branch(&self, branch: &str, force: bool) -> Result<(), Self::Error>;
    /// Lists linked worktrees and `orch/*` branches.
    fn inventory(&self) -> Result<Inventory, Self::Error>;
}
