//! Inventory and orphans: every linked worktree and `orch/*` branch, and which of them
//! no live attempt uses.

use std::collections::BTreeSet;
use std::path::PathBuf;

use orch_core::ports::{BranchInfo, Inventory, WorktreeInfo};
use orch_core::run::CommitId;

use crate::{Git, GitError, git_cli};

/// What removing orphans did, and what it kept and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Worktrees removed (or pruned).
    pub removed_worktrees: Vec<PathBuf>,
    /// Branches deleted.
    pub deleted_branches: Vec<String>,
    /// What was kept, with the reason.
    pub kept: Vec<(String, String)>,
}

impl Git {
    /// Lists linked worktrees and `orch/*` branches, with whether each worktree is
    /// prunable, locked or dirty, and whether each branch is contained in an
    /// integration branch (`orch/<run>/integration`).
    pub fn inventory(&self) -> Result<Inventory, GitError> {
        let worktrees = {
            let _admin = self.admin();
            self.worktrees_locked(true)?
        };
        let raw = self.orch_branches()?;
        let integrations = integration_tips(&raw);
        let mut branches = Vec::new();
        for (name, head) in raw {
            let merged =
                name.ends_with("/integration") || self.contained_in_any(&integrations, &head)?;
            let worktree = worktrees
                .iter()
                .find(|w| w.branch.as_deref() == Some(name.as_str()))
                .map(|w| w.path.clone());
            branches.push(BranchInfo {
                name,
                head,
                merged,
                worktree,
            });
        }
        Ok(Inventory {
            worktrees,
            branches,
            half_made: self.half_made(),
        })
    }

    /// Linked worktrees; `dirty` is only computed when asked (it runs `git status` in
    /// each). Callers hold the admin lock.
    pub(crate) fn worktrees_locked(&self, with_dirty: bool) -> Result<Vec<WorktreeInfo>, GitError> {
        let repo = self.repo();
        let mut worktrees = Vec::new();
        for proxy in repo
            .worktrees()
            .map_err(|e| GitError::gix("listing worktrees", e))?
        {
            // One being made has no `gitdir` yet: it is not listed (see `half_made`).
            let Ok(path) = proxy.base() else {
                continue;
            };
            let prunable = !path.exists();
            let locked = proxy.is_locked();
            // Its HEAD file, read as it is: opening a repository for each worktree to
            // ask costs what the pool is large, for every branch deleted.
            let branch = std::fs::read_to_string(proxy.git_dir().join("HEAD"))
                .ok()
                .and_then(|h| head_branch(&h));
            let dirty = if prunable || !with_dirty {
                None
            } else {
                // --no-optional-locks: a read-only status must never take the
                // worktree's index lock, or it collides with orch's own checkouts.
                git_cli(
                    &path,
                    &[
                        "--no-optional-locks",
                        "status",
                        "--porcelain",
                        "--untracked-files=normal",
                    ],
                )
                .ok()
                .map(|s| !s.trim().is_empty())
            };
            worktrees.push(WorktreeInfo {
                path,
                branch,
                prunable,
                locked,
                dirty,
            });
        }
        Ok(worktrees)
    }

    /// The linked worktree that has `branch` checked out, if one does and is still
    /// there. Only each worktree's HEAD is read, and only one naming the branch is
    /// looked at further: a cleanup deletes one branch per attempt, and 64 of them
    /// each took the whole pool's inventory.
    pub(crate) fn checked_out_locked(&self, branch: &str) -> Result<Option<PathBuf>, GitError> {
        let repo = self.repo();
        for proxy in repo
            .worktrees()
            .map_err(|e| GitError::gix("listing worktrees", e))?
        {
            let named = std::fs::read_to_string(proxy.git_dir().join("HEAD"))
                .ok()
                .and_then(|h| head_branch(&h));
            if named.as_deref() != Some(branch) {
                continue;
            }
            if let Ok(path) = proxy.base()
                && path.exists()
            {
                return Ok(Some(path));
            }
        }
        Ok(None)
    }

    /// The admin directories under `<common>/worktrees/` whose `gitdir` is missing or
    /// empty: worktrees being made (git writes it while `worktree add` runs).
    fn half_made(&self) -> Vec<String> {
        let dir = self.common_dir().join("worktrees");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("gitdir"))
                    .map_or(true, |g| g.trim().is_empty())
            })
            .map(|e| e.path().display().to_string())
            .collect()
    }

    /// Every `orch/*` branch with its tip.
    pub(crate) fn orch_branches(&self) -> Result<Vec<(String, CommitId)>, GitError> {
        let repo = self.repo();
        let refs = repo
            .references()
            .map_err(|e| GitError::gix("listing branches", e))?;
        let mut out = Vec::new();
        for r in refs
            .prefixed("refs/heads/orch/")
            .map_err(|e| GitError::gix("listing branches", e))?
        {
            let mut r = r.map_err(|e| GitError::gix("listing branches", e))?;
            let name = r.name().shorten().to_string();
            let id = r
                .peel_to_id()
                .map_err(|e| GitError::gix("reading a branch", e))?;
            out.push((name, CommitId(id.to_string())));
        }
        Ok(out)
    }

    /// The tips of every integration branch (`orch/integration`, `orch/<run>/integration`).
    pub(crate) fn integration_lines(&self) -> Result<Vec<CommitId>, GitError> {
        Ok(integration_tips(&self.orch_branches()?))
    }

    /// Whether `head`'s work is in any of the integration tips.
    pub(crate) fn contained_in_any(
        &self,
        integrations: &[CommitId],
        head: &CommitId,
    ) -> Result<bool, GitError> {
        for i in integrations {
            if self.contains(i, head)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The worktrees and `orch/*` branches that none of the live attempts uses
    /// (`live_branches`, `live_worktrees`). Integration branches of live runs belong
    /// in `live_branches` too.
    pub fn orphans(
        &self,
        live_branches: &BTreeSet<String>,
        live_worktrees: &BTreeSet<PathBuf>,
    ) -> Result<Inventory, GitError> {
        let inv = self.inventory()?;
        let canon = |p: &PathBuf| p.canonicalize().unwrap_or_else(|_| p.clone());
        let live_paths: BTreeSet<PathBuf> = live_worktrees.iter().map(canon).collect();
        Ok(Inventory {
            worktrees: inv
                .worktrees
                .into_iter()
                .filter(|w| !live_paths.contains(&canon(&w.path)))
                .filter(|w| {
                    w.branch
                        .as_ref()
                        .is_none_or(|b| b.starts_with("orch/") && !live_branches.contains(b))
                })
                .collect(),
            branches: inv
                .branches
                .into_iter()
                .filter(|b| !live_branches.contains(&b.name))
                .collect(),
            half_made: inv.half_made,
        })
    }

    /// Removes the orphans: worktrees first (dirty ones only when forced), then
    /// branches (those with work in no integration branch only when forced). `force`
    /// says, by branch (a worktree's checked-out one, `None` if detached), whether to
    /// force.
    pub fn remove_orphans(
        &self,
        live_branches: &BTreeSet<String>,
        live_worktrees: &BTreeSet<PathBuf>,
        force: impl Fn(Option<&str>) -> bool,
    ) -> Result<OrphanReport, GitError> {
        let orphans = self.orphans(live_branches, live_worktrees)?;
        let mut report = OrphanReport::default();
        for h in &orphans.half_made {
            report.kept.push((
                h.clone(),
                "a worktree being made right now (git has not finished registering it); left for whoever is making it".into(),
            ));
        }
        for w in &orphans.worktrees {
            match self.remove_worktree(&w.path, force(w.branch.as_deref())) {
                Ok(()) => report.removed_worktrees.push(w.path.clone()),
                Err(GitError::Dirty(_)) => report.kept.push((
                    w.path.display().to_string(),
                    "the worktree has uncommitted changes".into(),
                )),
                // Another process (a live run) is changing it under us: its business.
                Err(e) => report.kept.push((
                    w.path.display().to_string(),
                    format!("it could not be removed now ({e}); `orch cleanup` again later"),
                )),
            }
        }
        for b in &orphans.branches {
            match self.delete_branch(&b.name, force(Some(&b.name))) {
                Ok(()) => report.deleted_branches.push(b.name.clone()),
                Err(GitError::Unmerged(_)) => report.kept.push((
                    b.name.clone(),
                    "its work is in no integration branch".into(),
                )),
                Err(GitError::BranchCheckedOut { worktree, .. }) => report.kept.push((
                    b.name.clone(),
                    format!("checked out in {}", worktree.display()),
                )),
                Err(e) => report.kept.push((
                    b.name.clone(),
                    format!("it could not be deleted now ({e}); `orch cleanup` again later"),
                )),
            }
        }
        Ok(report)
    }
}

/// The integration branches' tips among `orch/*` branches.
fn integration_tips(branches: &[(String, CommitId)]) -> Vec<CommitId> {
    branches
        .iter()
        .filter(|(n, _)| n.ends_with("/integration"))
        .map(|(_, c)| c.clone())
        .collect()
}

/// The branch a worktree's `HEAD` file names (`ref: refs/heads/<branch>`), shortened as
/// git shortens it; `None` when it is detached.
fn head_branch(head: &str) -> Option<String> {
    let name = head.trim().strip_prefix("ref:")?.trim();
    let short = ["refs/heads/", "refs/remotes/", "refs/tags/", "refs/"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    Some(short.to_owned())
}

#[cfg(test)]
mod tests {
    use super::head_branch;

    #[test]
    fn a_head_file_names_its_branch_as_git_shortens_it() {
        assert_eq!(
            head_branch("ref: refs/heads/orch/r1/task-2-1\n").as_deref(),
            Some("orch/r1/task-2-1")
        );
        assert_eq!(head_branch("ref: refs/orch/x\n").as_deref(), Some("orch/x"));
        assert_eq!(
            head_branch("0123456789abcdef0123456789abcdef01234567\n"),
            None
        );
    }
}
