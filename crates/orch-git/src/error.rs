//! The git adapter's error type.

use std::path::PathBuf;

use orch_core::run::CommitId;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// Not a usable repository.
    #[error("cannot open the git repository at {path}: {message}")]
    Open {
        /// Where.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A revision that does not name a commit.
    #[error(
        "cannot resolve {rev:?}: {message}; expected HEAD, a branch, a tag, a commit, or origin/<branch>"
    )]
    BadRevision {
        /// The revision.
        rev: String,
        /// Why.
        message: String,
    },
    /// A fetch failed and `offline = "fail"`.
    #[error(
        "fetching {remote} failed: {message}; set run.offline = \"use-cached\" to fall back to the last fetched ref"
    )]
    Fetch {
        /// The remote.
        remote: String,
        /// Why.
        message: String,
    },
    /// A fetch failed and there is no cached ref to fall back to.
    #[error(
        "fetching {remote} failed ({message}) and {reference} was never fetched, so there is nothing cached to use"
    )]
    NothingCached {
        /// The remote.
        remote: String,
        /// The missing ref.
        reference: String,
        /// Why the fetch failed.
        message: String,
    },
    /// The branch exists already.
    #[error("branch {0} already exists; orch never reuses a branch")]
    BranchExists(String),
    /// The branch is checked out in a worktree.
    #[error("branch {branch} is checked out in {worktree}; remove that worktree first")]
    BranchCheckedOut {
        /// The branch.
        branch: String,
        /// Where.
        worktree: PathBuf,
    },
    /// The branch's changes are in no integration branch.
    #[error(
        "branch {0} has work that is in no integration branch; use --force to delete it anyway"
    )]
    Unmerged(String),
    /// The worktree destination is taken.
    #[error("cannot create a worktree at {0}: the path exists and is not an empty directory")]
    PathTaken(PathBuf),
    /// The worktree has changes.
    #[error(
        "the worktree {0} has uncommitted changes or untracked files; use --force to remove it anyway"
    )]
    Dirty(PathBuf),
    /// One of orch's worktrees is gone, unreadable, or no longer linked to this
    /// repository both ways (its `.git` rewritten): orch runs no git in it.
    #[error("the worktree {path} cannot be used: {why}")]
    WorktreeBroken {
        /// The worktree.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Not a linked worktree of this repository.
    #[error("{0} is not a linked worktree of this repository")]
    NotAWorktree(PathBuf),
    /// The repository's shared git files could not be read or put back.
    #[error("cannot put back the repository's shared git files: {0}")]
    SharedFiles(String),
    /// The commit is not in the object database (pruned by `git gc`, or never written).
    #[error(
        "commit {0} is missing from the repository's objects (pruned by `git gc`?); the ref was not moved"
    )]
    MissingCommit(CommitId),
    /// The compare-and-swap lost.
    #[error("{reference} moved: orch expected {expected}, but it is at {}", actual.as_ref().map(|a| a.0.as_str()).unwrap_or("(deleted)"))]
    LostRace {
        /// The ref.
        reference: String,
        /// Where orch last saw it.
        expected: CommitId,
        /// Where it is.
        actual: Option<CommitId>,
    },
    /// A push the remote refused: someone else pushed first, and nothing was
    /// overwritten.
    #[error("pushing to {remote} was refused, and nothing there was overwritten: {message}")]
    PushRefused {
        /// The remote.
        remote: String,
        /// What the remote said, per ref.
        message: String,
    },
    /// The git CLI failed.
    #[error("`{command}` failed: {message}")]
    Cli {
        /// The command.
        command: String,
        /// Its stderr.
        message: String,
    },
    /// gix failed.
    #[error("git error while {doing}: {message}")]
    Gix {
        /// What orch was doing.
        doing: &'static str,
        /// gix's message.
        message: String,
    },
}

impl GitError {
    /// True when the user can fix it: a revision that does not resolve, a remote branch
    /// never fetched, a branch or path already taken.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            GitError::BadRevision { .. }
                | GitError::NothingCached { .. }
                | GitError::BranchExists(_)
                | GitError::PathTaken(_)
                | GitError::PushRefused { .. }
        )
    }

    pub(crate) fn gix(doing: &'static str, e: impl std::fmt::Display) -> GitError {
        GitError::Gix {
            doing,
            message: e.to_string(),
        }
    }
}
