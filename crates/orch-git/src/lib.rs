//! orch's git adapter: everything orch does to a repository, and nothing to the user's
//! own working tree, index or checked-out branch.
//!
//! gix does what it does well: revspecs, refs and branches, worktree add/list/remove,
//! in-memory `merge_commits` and commit writing, compare-and-swap ref updates, and
//! fetch. The git CLI is used where gix has no high-level operation: committing an
//! agent's leftovers (`add -A` with `.gitignore`), switching a worktree to another
//! commit touching only what differs (`checkout --detach`), and the dirty check of a
//! worktree including untracked files (`status --porcelain`).
//!
//! [`Git`] holds a `gix::ThreadSafeRepository`; every method opens a thread-local
//! handle, so it can be shared across threads. Its methods block: async callers run
//! them on a blocking thread.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod base;
mod error;
mod inventory;
mod land;
mod linked;
mod locks;
mod merge;
mod pool;
mod remote;
mod repo;
mod resolve;
mod revert;
mod shared;
mod submodules;
mod worktree;

pub use error::GitError;
pub use land::CheckedOut;
pub use remote::Expect;
pub use repo::{Git, Identity, ORCH_EMAIL, ORCH_NAME, content_id, git_command};
pub(crate) use repo::{full_branch, git_cli, git_ok, oid, retry_locked, run_cli};
pub use worktree::default_worktree_root;
