//! A conflict a person resolves by hand: a worktree at the integration head with the
//! attempt's work merged in and git's conflict markers in place, the markers still
//! left, the resolution committed as the person, and a conflict's text (both sides,
//! marked) for an agent to resolve instead.

use std::path::Path;

use orch_core::run::CommitId;

use crate::repo::git_cli;
use crate::{Git, GitError};

/// The lines that mark a conflict, at the start of a line.
const MARKERS: [&str; 3] = ["<<<<<<< ", "=======", ">>>>>>> "];

impl Git {
    /// Creates `branch` at `onto` with a worktree at `path`, and merges `head` into
    /// it without committing: the paths git could not merge are returned, their
    /// markers in the files. On a failure other than the conflict, nothing is left.
    pub fn prepare_resolution(
        &self,
        branch: &str,
        onto: &CommitId,
        head: &CommitId,
        path: &Path,
    ) -> Result<Vec<String>, GitError> {
        self.add_worktree(branch, onto, path)?;
        // A conflict makes `git merge` fail; what is unmerged says whether it was one.
        let merged = git_cli(
            path,
            &["merge", "--no-ff", "--no-commit", "--no-edit", &head.0],
        );
        let unmerged = self.unmerged(path);
        match (merged, unmerged) {
            (_, Ok(paths)) if !paths.is_empty() => Ok(paths),
            (Ok(_), Ok(_)) => Ok(Vec::new()),
            (Err(e), _) | (_, Err(e)) => {
                let _ = self.remove_worktree(path, true);
                let _ = self.delete_branch(branch, true);
                Err(e)
            }
        }
    }

    /// The paths of the worktree at `path` that git still has unmerged.
    pub fn unmerged(&self, path: &Path) -> Result<Vec<String>, GitError> {
        let out = git_cli(path, &["diff", "--name-only", "--diff-filter=U"])?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// Where conflict markers are left in `files` of the worktree at `path`: each
    /// file with the line (from 1) of its first marker.
    pub fn markers_left(path: &Path, files: &[String]) -> Vec<(String, usize)> {
        files
            .iter()
            .filter_map(|f| {
                let text = std::fs::read_to_string(path.join(f)).ok()?;
                let line = text
                    .lines()
                    .position(|l| MARKERS.iter().any(|m| l.starts_with(m)))?;
                Some((f.clone(), line + 1))
            })
            .collect()
    }

    /// Commits everything in the worktree at `path` as the repository's person (the
    /// merge git started, with both parents), with `message`; the new commit.
    pub fn commit_resolution(&self, path: &Path, message: &str) -> Result<CommitId, GitError> {
        git_cli(path, &["add", "--all"])?;
        git_cli(path, &["commit", "--quiet", "--no-verify", "-m", message])?;
        let head = git_cli(path, &["rev-parse", "HEAD"])?;
        Ok(CommitId(head.trim().to_owned()))
    }

    /// The parents of the commit the worktree at `path` has checked out.
    pub fn parents(path: &Path) -> Result<Vec<CommitId>, GitError> {
        let out = git_cli(path, &["rev-list", "--parents", "-n", "1", "HEAD"])?;
        Ok(out
            .split_whitespace()
            .skip(1)
            .map(|c| CommitId(c.to_owned()))
            .collect())
    }

    /// The files of the worktree at `path` that differ from its checked-out commit
    /// (staged or not, unmerged among them), and the new ones.
    pub fn changed(path: &Path) -> Result<Vec<String>, GitError> {
        let mut files: Vec<String> = git_cli(path, &["diff", "--name-only", "HEAD"])?
            .lines()
            .map(str::to_owned)
            .collect();
        let new = git_cli(path, &["ls-files", "--others", "--exclude-standard"])?;
        files.extend(new.lines().map(str::to_owned));
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// The commit the worktree at `path` has checked out.
    pub fn worktree_head(path: &Path) -> Result<CommitId, GitError> {
        let head = git_cli(path, &["rev-parse", "HEAD"])?;
        Ok(CommitId(head.trim().to_owned()))
    }

    /// `file` as a merge of `head` onto `onto` leaves it: both sides between git's
    /// markers (`line` is `onto`'s side, `task` is `head`'s), with no worktree.
    pub fn conflict_text(
        &self,
        onto: &CommitId,
        head: &CommitId,
        file: &str,
    ) -> Result<String, GitError> {
        let base = git_cli(&self.workdir, &["merge-base", &onto.0, &head.0])?;
        // A side without the file merges as empty: the empty blob.
        let empty = git_cli(&self.workdir, &["hash-object", "-t", "blob", "/dev/null"])?;
        let blob = |rev: &str| {
            git_cli(
                &self.workdir,
                &["rev-parse", "--verify", "--quiet", &format!("{rev}:{file}")],
            )
            .map(|b| b.trim().to_owned())
            .unwrap_or_else(|_| empty.trim().to_owned())
        };
        let (ours, anc, theirs) = (blob(&onto.0), blob(base.trim()), blob(&head.0));
        // `merge-file` exits with the number of conflicts: not a failure here.
        let out = crate::repo::git_command(&self.workdir)
            .args(["merge-file", "-p", "--object-id"])
            .args(["-L", "integration line", "-L", "base", "-L", "this task"])
            .args([&ours, &anc, &theirs])
            .output()
            .map_err(|e| GitError::gix("running git merge-file", e))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
