//! Branches and worktrees: creating, committing an agent's leftovers, switching the
//! integration worktree, removing.

use std::path::{Path, PathBuf};

use orch_core::ports::Leftovers;
use orch_core::run::CommitId;
use orch_core::symlinks::Symlink;

use crate::{Git, GitError, full_branch, git_cli, oid};

/// The default root for a repository's worktrees: `$XDG_DATA_HOME/orch/worktrees/<key>`
/// (or `~/.local/share/...`), outside the repository so that tools which search parent
/// directories (cargo among them) never see a worktree inside another checkout. `<key>`
/// is the repository's directory name and a hash of its full path.
pub fn default_worktree_root(repo_workdir: &Path) -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    let name: String = repo_workdir
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .unwrap_or_else(|| "repo".into());
    // FNV-1a: stable across runs and platforms, which std's hasher does not promise.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in repo_workdir.to_string_lossy().bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Some(
        data.join("orch/worktrees")
            .join(format!("{name}-{:08x}", h as u32)),
    )
}

fn path_free(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut rd) => rd.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

impl Git {
    /// Creates `branch` at `at` and a worktree for it at `path`. The branch must not
    /// exist and the path must be absent or an empty directory. On failure nothing is
    /// left behind.
    pub fn add_worktree(&self, branch: &str, at: &CommitId, path: &Path) -> Result<(), GitError> {
        let _admin = self.admin();
        if !path_free(path) {
            return Err(GitError::PathTaken(path.to_path_buf()));
        }
        self.create_branch_locked(branch, at)?;
        if let Err(e) = self.new_worktree(path, &["--quiet"], branch) {
            let _ = self.delete_ref(&full_branch(branch));
            return Err(e);
        }
        Ok(())
    }

    /// `git worktree add` with git's parallel checkout (`checkout.workers=0`: one
    /// worker per core). A failed add is removed again. Callers hold the admin lock.
    fn new_worktree(&self, path: &Path, how: &[&str], what: &str) -> Result<(), GitError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| GitError::gix("creating the worktree root", e))?;
        }
        let target = path.to_string_lossy();
        let mut args = vec!["-c", "checkout.workers=0", "worktree", "add"];
        args.extend_from_slice(how);
        args.extend([target.as_ref(), what]);
        if let Err(e) = git_cli(&self.workdir, &args) {
            let _ = git_cli(&self.workdir, &["worktree", "remove", "--force", &target]);
            let _ = std::fs::remove_dir_all(path);
            let _ = git_cli(&self.workdir, &["worktree", "prune"]);
            return Err(e);
        }
        Ok(())
    }

    /// Checks out `commit`, detached, in the worktree at `path`, creating the worktree
    /// if it does not exist. On an existing worktree only the files that differ are
    /// touched; local changes and untracked files (not ignored ones, such as build
    /// caches) are discarded, since this worktree belongs to orch.
    pub fn checkout_detached(&self, path: &Path, commit: &CommitId) -> Result<(), GitError> {
        let _admin = self.admin();
        if !path.join(".git").exists() {
            if !path_free(path) {
                return Err(GitError::PathTaken(path.to_path_buf()));
            }
            oid(commit)?;
            return self.new_worktree(path, &["--quiet", "--detach"], &commit.0);
        }
        let wt = self.linked(path)?;
        wt.cli_retrying(&["checkout", "--quiet", "--force", "--detach", &commit.0])?;
        wt.cli_retrying(&["clean", "--quiet", "-d", "--force", "--force"])?;
        Ok(())
    }

    /// Commits everything an agent left in `worktree` (tracked and untracked files,
    /// respecting `.gitignore`) as orch, and reports on the branch: its head, whether it
    /// changed anything since `base`, and whether the agent moved `HEAD` off `branch` or
    /// rewrote history below `base`. Hooks are not run. A worktree that is gone or no
    /// longer linked to the repository both ways (its `.git` rewritten) is
    /// `WorktreeBroken`, and nothing runs in it.
    pub fn commit_leftovers(
        &self,
        worktree: &Path,
        branch: &str,
        base: &CommitId,
        message: &str,
        scratch: &[String],
    ) -> Result<Leftovers, GitError> {
        let wt = self.linked(worktree)?;
        let head_ref = wt.head_ref();
        let head_ref = head_ref.as_str();
        let branch_moved = (head_ref != full_branch(branch)).then(|| {
            if head_ref.is_empty() {
                "a detached HEAD".to_owned()
            } else {
                head_ref.to_owned()
            }
        });
        // Where the agent left its branch: on the base, it rewrote nothing.
        let on_branch = branch_moved.is_none().then(|| full_branch(branch));
        let left_at = on_branch.as_ref().and_then(|b| self.rev_parse(b).ok());
        let mut committed = false;
        if branch_moved.is_none() {
            let excludes: Vec<String> = scratch.iter().map(|p| format!(":(exclude){p}")).collect();
            let mut add = vec!["add", "--all", "--", "."];
            add.extend(excludes.iter().map(String::as_str));
            wt.cli_retrying(&add)?;
            // Committed straight away: with nothing staged the commit refuses, and only
            // then is the index asked whether that was all (one git process fewer for
            // the agent that changed something, as nearly all do).
            let commit = wt.cli_retrying(&[
                "-c",
                &format!("user.name={}", self.identity().name),
                "-c",
                &format!("user.email={}", self.identity().email),
                "commit",
                "--quiet",
                "--no-verify",
                "--message",
                message,
            ]);
            committed = match commit {
                Ok(_) => true,
                Err(_) if wt.ok(&["diff", "--cached", "--quiet"]) => false,
                Err(e) => return Err(e),
            };
        }
        let head = match on_branch.map(|b| self.rev_parse(&b)) {
            Some(Ok(head)) => head,
            _ => CommitId(wt.cli(&["rev-parse", "HEAD"])?.trim().to_owned()),
        };
        let rewrote_history = left_at.as_ref() != Some(base)
            && !wt.ok(&["merge-base", "--is-ancestor", &base.0, &head.0]);
        let empty = {
            let repo = self.repo();
            let tree = |c: &CommitId| -> Option<gix::ObjectId> {
                repo.find_commit(oid(c).ok()?)
                    .ok()?
                    .tree_id()
                    .ok()
                    .map(|i| i.detach())
            };
            tree(&head) == tree(base)
        };
        Ok(Leftovers {
            symlinks: self.symlinks_added(base, &head)?,
            head,
            committed,
            empty,
            branch_moved,
            rewrote_history,
        })
    }

    /// The symlinks `head` adds or changes since `base`, with their targets.
    pub fn symlinks_added(
        &self,
        base: &CommitId,
        head: &CommitId,
    ) -> Result<Vec<Symlink>, GitError> {
        let repo = self.repo();
        let changes = self.tree_changes(base, head)?;
        let mut links = Vec::new();
        for change in changes {
            use gix::object::tree::diff::ChangeDetached;
            // Added, modified, or a file turned into a link.
            let (location, mode, id) = match change {
                ChangeDetached::Addition {
                    location,
                    entry_mode,
                    id,
                    ..
                }
                | ChangeDetached::Modification {
                    location,
                    entry_mode,
                    id,
                    ..
                } => (location, entry_mode, id),
                _ => continue,
            };
            if !mode.is_link() {
                continue;
            }
            let blob = repo
                .find_blob(id)
                .map_err(|e| GitError::gix("reading a symlink's target", e))?;
            links.push(Symlink {
                path: location.to_string(),
                target: String::from_utf8_lossy(&blob.data).into_owned(),
            });
        }
        // In path order, as git lists them.
        links.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(links)
    }

    /// Removes the linked worktree at `path`. A dirty one (changes or untracked files)
    /// only with `force`. A worktree whose directory is already gone is pruned. Its
    /// branch stays.
    pub fn remove_worktree(&self, path: &Path, force: bool) -> Result<(), GitError> {
        let _admin = self.admin();
        if !path.exists() {
            git_cli(&self.workdir, &["worktree", "prune"])?;
            return Ok(());
        }
        // An add that never finished (its process was killed) leaves the worktree
        // locked as "initializing" and half checked out. No agent ever ran in it.
        let half_added = std::fs::read_to_string(path.join(".git"))
            .ok()
            .and_then(|l| {
                l.trim()
                    .strip_prefix("gitdir:")
                    .map(|g| g.trim().to_owned())
            })
            .and_then(|g| std::fs::read_to_string(Path::new(&g).join("locked")).ok())
            .is_some_and(|reason| reason.trim() == "initializing");
        if half_added {
            let repo = self.repo();
            let target = repo
                .prepare_remove_worktree(path)
                .map_err(|_| GitError::NotAWorktree(path.to_path_buf()))?;
            target
                .remove(
                    gix::worktree::remove::Force::OverrideLock,
                    gix::progress::Discard,
                )
                .map_err(|e| GitError::gix("removing a half-added worktree", e))?;
            return Ok(());
        }
        // A worktree whose link was tampered with: no git runs in it (that could be the
        // user's checkout); its directory goes, and git forgets its admin directory.
        let wt = match self.linked(path) {
            Ok(wt) => wt,
            Err(GitError::WorktreeBroken { .. }) if force => {
                std::fs::remove_dir_all(path)
                    .map_err(|e| GitError::gix("removing a worktree", e))?;
                git_cli(&self.workdir, &["worktree", "prune"])?;
                return Ok(());
            }
            Err(_) => return Err(GitError::NotAWorktree(path.to_path_buf())),
        };
        let dirty = !wt
            .cli(&[
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=normal",
            ])
            .map_err(|_| GitError::NotAWorktree(path.to_path_buf()))?
            .trim()
            .is_empty();
        if dirty && !force {
            return Err(GitError::Dirty(path.to_path_buf()));
        }
        let repo = self.repo();
        let target = repo
            .prepare_remove_worktree(path)
            .map_err(|_| GitError::NotAWorktree(path.to_path_buf()))?;
        let how = if force {
            gix::worktree::remove::Force::DiscardChanges
        } else {
            gix::worktree::remove::Force::Never
        };
        target
            .remove(how, gix::progress::Discard)
            .map_err(|e| GitError::gix("removing a worktree", e))?;
        Ok(())
    }

    /// Deletes `branch`. Refused while a worktree has it checked out, and, unless
    /// `force`, while its changes are in no integration branch.
    pub fn delete_branch(&self, branch: &str, force: bool) -> Result<(), GitError> {
        if !force && !branch.ends_with("/integration") {
            // Only this branch's work is checked, not the whole inventory's.
            let tips = self.orch_branches()?;
            let integrations: Vec<CommitId> = tips
                .iter()
                .filter(|(n, _)| n.ends_with("/integration"))
                .map(|(_, c)| c.clone())
                .collect();
            if let Some((_, head)) = tips.iter().find(|(n, _)| n == branch)
                && !self.contained_in_any(&integrations, head)?
            {
                return Err(GitError::Unmerged(branch.into()));
            }
        }
        let _admin = self.admin();
        if let Some(worktree) = self.checked_out_locked(branch)? {
            return Err(GitError::BranchCheckedOut {
                branch: branch.into(),
                worktree,
            });
        }
        self.delete_ref(&full_branch(branch))
    }

    /// Deletes a ref. Callers hold the admin lock (ref edits are serialised).
    pub(crate) fn delete_ref(&self, full: &str) -> Result<(), GitError> {
        let repo = self.repo();
        match repo.try_find_reference(full) {
            Ok(Some(r)) => r
                .delete()
                .map_err(|e| GitError::gix("deleting a branch", e)),
            Ok(None) => Ok(()),
            Err(e) => Err(GitError::gix("deleting a branch", e)),
        }
    }
}

impl Git {
    /// After a crash: removes the lock files a killed orch left behind in what belongs
    /// to one run: its refs (`refs/heads/<branch>.lock` for each of `branches`, and
    /// every ref lock below those ending in `/`, such as the run's own `orch/<run>/`)
    /// and the index and HEAD locks of the given worktrees. A lock younger than `min_age` may belong to a git
    /// process still finishing; it is waited for (up to `min_age`) and then removed
    /// only if it is still there and old enough. Locks elsewhere (the user's index,
    /// `packed-refs`) are never touched. Returns the files it removed.
    pub fn clear_stale_locks(
        &self,
        branches: &[&str],
        worktrees: &[std::path::PathBuf],
        min_age: std::time::Duration,
    ) -> Vec<std::path::PathBuf> {
        let _admin = self.admin();
        let common = self.repo().common_dir().to_path_buf();
        let heads = common.join("refs/heads");
        let mut candidates = Vec::new();
        for b in branches {
            match b.ends_with('/') {
                true => crate::locks::ref_locks(&heads.join(b), &mut candidates),
                false => candidates.push(heads.join(format!("{b}.lock"))),
            }
        }
        candidates.retain(|p| p.is_file());
        candidates.dedup();
        for wt in worktrees {
            let Ok(link) = std::fs::read_to_string(wt.join(".git")) else {
                continue;
            };
            let Some(gitdir) = link.trim().strip_prefix("gitdir:") else {
                continue;
            };
            let gitdir = std::path::PathBuf::from(gitdir.trim());
            // Only this repository's worktree administration, never another's.
            if !gitdir.starts_with(&common) {
                continue;
            }
            candidates.extend(
                ["index.lock", "HEAD.lock"]
                    .iter()
                    .map(|n| gitdir.join(n))
                    .filter(|p| p.exists()),
            );
        }
        let age = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
        };
        let deadline = std::time::Instant::now() + min_age;
        let mut removed = Vec::new();
        for p in candidates {
            while age(&p).is_some_and(|a| a < min_age) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if age(&p).is_some_and(|a| a >= min_age) && std::fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
        removed
    }
}
