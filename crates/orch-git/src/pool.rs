//! Pooled worktrees: switching one onto a new attempt's branch (only the files that
//! differ are written), scrubbing what the last attempt left while keeping the caches
//! the rules allow, and detaching one so its old branch can go.

use std::collections::BTreeSet;
use std::path::Path;

use orch_core::pool::CacheRules;
use orch_core::run::CommitId;

use crate::linked::Linked;
use crate::{Git, GitError, full_branch, git_cli, oid};

impl Git {
    /// Switches the pooled worktree at `path` onto `branch`, created at `at` (it must
    /// not exist), then scrubs it by `rules`. Fails if it cannot be made clean; the new
    /// branch is then deleted again unless the worktree has it checked out (the caller
    /// retires the worktree).
    pub fn switch_worktree(
        &self,
        path: &Path,
        branch: &str,
        at: &CommitId,
        rules: &CacheRules,
    ) -> Result<(), GitError> {
        // Its link is checked first: a worktree an agent pointed at the user's
        // repository is retired by the caller, never switched.
        let wt = self.linked(path)?;
        {
            let _admin = self.admin();
            self.create_branch_locked(branch, at)?;
        }
        let switched = wt.cli_retrying(&["checkout", "--quiet", "--force", branch]);
        if let Err(e) = switched {
            let _admin = self.admin();
            let _ = self.delete_ref(&full_branch(branch));
            return Err(e);
        }
        self.scrub(path, rules)
    }

    /// Removes from the worktree at `path` every untracked file git does not ignore,
    /// and the ignored ones `rules` do not keep. A file that cannot be removed (locked,
    /// immutable) is an error: `git clean` says so in its exit status. (Not `git clean
    /// -X` with patterns: it removes an ignored directory whole, even when only a path
    /// inside it matches.)
    pub fn scrub(&self, path: &Path, rules: &CacheRules) -> Result<(), GitError> {
        let wt = self.linked(path)?;
        wt.cli_retrying(&["clean", "-ffdq"])?;
        let mut remove = BTreeSet::new();
        if !rules.keep.is_empty() {
            let kept = untracked_matching(&wt, &rules.keep)?;
            let ignored = untracked(&wt, &["--exclude-standard"])?;
            remove.extend(ignored.into_iter().filter(|f| !kept.contains(f)));
        }
        if !rules.scrub.is_empty() {
            remove.extend(untracked_matching(&wt, &rules.scrub)?);
        }
        for f in &remove {
            let file = path.join(f);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(GitError::gix("scrubbing a pooled worktree", e)),
            }
            // Directories left empty go too (a non-empty one refuses).
            for dir in file.ancestors().skip(1).take_while(|d| *d != path) {
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Detaches `HEAD` of the worktree at `path` where it is, so the branch it had
    /// checked out can be deleted while the worktree waits in the pool. Only `HEAD` is
    /// written (no index refresh, no file touched).
    pub fn detach_worktree(&self, path: &Path) -> Result<(), GitError> {
        let wt = self.linked(path)?;
        // The branch `HEAD` names is read in process; a `HEAD` that names none (already
        // detached, or unreadable) is left to git.
        let on = wt.head_ref();
        let head = match (!on.is_empty()).then(|| self.ref_target(&on)) {
            Some(Ok(Some(c))) => c.0,
            _ => wt
                .cli(&["rev-parse", "--verify", "HEAD"])?
                .trim()
                .to_owned(),
        };
        oid(&CommitId(head.clone()))?;
        wt.detach_head(&head)
    }
}

impl Git {
    /// The files of the user's checkout that git ignores and `pathspecs` match (like
    /// `.env` or `config/*.local`), relative to it: what `worktrees.include` copies into
    /// orch's worktrees. Nothing is written.
    pub fn ignored_files(&self, pathspecs: &[String]) -> Result<Vec<std::path::PathBuf>, GitError> {
        if pathspecs.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![
            "--no-optional-locks",
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--",
        ];
        args.extend(pathspecs.iter().map(String::as_str));
        let out = git_cli(&self.workdir, &args)?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
            .collect())
    }
}

/// The untracked files (each, not their directories) of the worktree at `path` that
/// the exclude options `how` select.
fn untracked(wt: &Linked, how: &[&str]) -> Result<BTreeSet<String>, GitError> {
    let mut args = vec![
        "--no-optional-locks",
        "ls-files",
        "-z",
        "--others",
        "--ignored",
    ];
    args.extend_from_slice(how);
    Ok(wt
        .cli(&args)?
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The untracked files that `.gitignore`-style `patterns` match.
fn untracked_matching(wt: &Linked, patterns: &[String]) -> Result<BTreeSet<String>, GitError> {
    let how: Vec<String> = patterns.iter().map(|p| format!("--exclude={p}")).collect();
    untracked(wt, &how.iter().map(String::as_str).collect::<Vec<_>>())
}
