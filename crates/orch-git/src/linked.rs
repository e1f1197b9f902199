//! orch's own linked worktrees, checked before orch runs git in one. An agent owns
//! its worktree's files, `.git` among them: rewritten to `gitdir: <repo>/.git`, it
//! would make orch's `add` and `commit` (and a pooled worktree's next switch) run on
//! the user's HEAD and index. So before orch runs git in a worktree it checks the
//! link both ways (the `.git` file names an admin directory under the repository's
//! `worktrees/`, whose `gitdir` names this `.git` back and whose `commondir` is the
//! repository's), and then names the admin directory and the worktree to git
//! explicitly (`--git-dir`, `--work-tree`), so nothing read from the worktree decides
//! where git writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Git, GitError, git_command};

/// A worktree whose link to the repository was checked.
#[derive(Debug, Clone)]
pub(crate) struct Linked {
    path: PathBuf,
    admin: PathBuf,
}

fn broken(path: &Path, why: impl Into<String>) -> GitError {
    GitError::WorktreeBroken {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn canonical(p: &Path, what: &str, wt: &Path) -> Result<PathBuf, GitError> {
    p.canonicalize()
        .map_err(|e| broken(wt, format!("{what} {} cannot be read: {e}", p.display())))
}

impl Git {
    /// Checks that `path` is one of this repository's linked worktrees, linked both
    /// ways; anything else (gone, unreadable, its `.git` rewritten or made a link or
    /// a directory, its admin directory's back-links changed) is `WorktreeBroken`.
    pub(crate) fn linked(&self, path: &Path) -> Result<Linked, GitError> {
        let dot_git = path.join(".git");
        let meta = dot_git
            .symlink_metadata()
            .map_err(|e| match path.exists() {
                false => broken(path, "the worktree is gone"),
                true => broken(path, format!("its .git cannot be read: {e}")),
            })?;
        if !meta.is_file() {
            return Err(broken(
                path,
                "its .git is not the file git writes (a directory or a link)",
            ));
        }
        let text = std::fs::read_to_string(&dot_git)
            .map_err(|e| broken(path, format!("its .git cannot be read: {e}")))?;
        let named = text
            .trim()
            .strip_prefix("gitdir:")
            .map(|g| path.join(g.trim()))
            .ok_or_else(|| broken(path, "its .git names no gitdir"))?;
        let common = canonical(&self.common_dir(), "the repository", path)?;
        let admin = canonical(&named, "its gitdir", path)?;
        if admin.parent() != Some(common.join("worktrees").as_path()) {
            return Err(broken(
                path,
                format!(
                    "its .git points at {}, not at one of the repository's worktrees",
                    admin.display()
                ),
            ));
        }
        let back = std::fs::read_to_string(admin.join("gitdir"))
            .map_err(|e| broken(path, format!("its admin directory has no gitdir: {e}")))?;
        let back = canonical(Path::new(back.trim()), "the admin directory's gitdir", path)?;
        if back != canonical(&dot_git, "its .git", path)? {
            return Err(broken(
                path,
                format!(
                    "{} names {} as its worktree, not this one",
                    admin.display(),
                    back.display()
                ),
            ));
        }
        if let Ok(c) = std::fs::read_to_string(admin.join("commondir"))
            && canonical(&admin.join(c.trim()), "its commondir", path)? != common
        {
            return Err(broken(path, "its commondir names another repository"));
        }
        Ok(Linked {
            path: path.to_path_buf(),
            admin,
        })
    }
}

impl Linked {
    /// git in this worktree, told its admin directory and work tree explicitly.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = git_command(&self.path);
        cmd.arg("--git-dir")
            .arg(&self.admin)
            .arg("--work-tree")
            .arg(&self.path);
        cmd
    }

    /// The ref its HEAD names (`refs/heads/...`), read from its admin directory as
    /// `git symbolic-ref --quiet HEAD` would; empty for a detached HEAD.
    pub(crate) fn head_ref(&self) -> String {
        std::fs::read_to_string(self.admin.join("HEAD"))
            .ok()
            .and_then(|h| h.trim().strip_prefix("ref:").map(|r| r.trim().to_owned()))
            .unwrap_or_default()
    }

    /// Points its `HEAD` at `commit`, detached, as `git update-ref --no-deref HEAD`
    /// does (under `HEAD.lock`, waited for up to 5 s, the file replaced whole), with
    /// no git process: 64 worktrees given back at once spawned 64 of them.
    pub(crate) fn detach_head(&self, commit: &str) -> Result<(), GitError> {
        use std::io::Write;
        const DOING: &str = "detaching a pooled worktree's HEAD";
        let wait = gix::lock::acquire::Fail::AfterDurationWithBackoff(Duration::from_secs(5));
        let mut lock =
            gix::lock::File::acquire_to_update_resource(self.admin.join("HEAD"), wait, None, 0)
                .map_err(|e| GitError::gix(DOING, e))?;
        writeln!(lock, "{commit}").map_err(|e| GitError::gix(DOING, e))?;
        lock.commit().map_err(|e| GitError::gix(DOING, e.error))?;
        Ok(())
    }

    /// Runs git in the worktree and returns its stdout; a failure carries its stderr.
    pub(crate) fn cli(&self, args: &[&str]) -> Result<String, GitError> {
        crate::run_cli(self.command(), args)
    }

    /// [`Linked::cli`], retried while another git process holds a lock file.
    pub(crate) fn cli_retrying(&self, args: &[&str]) -> Result<String, GitError> {
        crate::retry_locked(|| self.cli(args))
    }

    /// Whether git succeeds.
    pub(crate) fn ok(&self, args: &[&str]) -> bool {
        self.command()
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }
}
