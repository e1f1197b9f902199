//! Landing: ancestry, who has a branch checked out, a clean fast-forward of a user's
//! checkout, and pushes that never overwrite what someone else pushed.

use std::path::{Path, PathBuf};

use orch_core::ports::Landing;
use orch_core::run::CommitId;

use crate::{Git, GitError, full_branch, git_cli, git_command, git_ok};

/// A worktree (the main one or a linked one) that has a branch checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    /// Its path.
    pub path: PathBuf,
    /// No changes to tracked files.
    pub clean: bool,
    /// Untracked files and directories (a directory ends with `/`), as git lists them.
    pub untracked: Vec<String>,
}

impl CheckedOut {
    /// Whether a fast-forward from `from` to `to` can go ahead in this checkout, as
    /// `git merge --ff-only` would: no tracked changes, and no untracked file where
    /// the fast-forward writes one.
    pub fn allows_fast_forward(
        &self,
        git: &Git,
        from: &CommitId,
        to: &CommitId,
    ) -> Result<bool, GitError> {
        if !self.clean {
            return Ok(false);
        }
        if self.untracked.is_empty() {
            return Ok(true);
        }
        let written = git_cli(
            &git.workdir,
            &["diff", "--name-only", "--no-renames", &from.0, &to.0],
        )?;
        Ok(!written.lines().any(|w| {
            self.untracked
                .iter()
                .any(|u| w == u || (u.ends_with('/') && w.starts_with(u.as_str())))
        }))
    }
}

impl Git {
    /// The local branch a base names: `HEAD`'s branch in the main worktree, a branch
    /// itself, or for `<remote>/<branch>` the local `<branch>`; `None` for a detached
    /// `HEAD`, a tag or a commit.
    pub fn branch_of(&self, base: &str) -> Option<String> {
        let base = base.trim();
        let exists = |b: &str| matches!(self.ref_target(&full_branch(b)), Ok(Some(_)));
        if base == "HEAD" {
            let name = self.repo().head_name().ok()??;
            return Some(name.shorten().to_string()).filter(|b| !b.is_empty());
        }
        if let Some(b) = base.strip_prefix("refs/heads/") {
            return exists(b).then(|| b.to_owned());
        }
        if exists(base) {
            return Some(base.to_owned());
        }
        let (remote, branch) = base.split_once('/')?;
        (self.repo().find_remote(remote).is_ok() && exists(branch)).then(|| branch.to_owned())
    }

    /// Whether `a` is `b` or one of its ancestors.
    pub fn is_ancestor(&self, a: &CommitId, b: &CommitId) -> bool {
        git_ok(&self.workdir, &["merge-base", "--is-ancestor", &a.0, &b.0])
    }

    /// What `head` changed since `base`: a stat, then the patch, cut at `cap` bytes
    /// (with a line saying so). Nothing is written.
    pub fn diff(&self, base: &CommitId, head: &CommitId, cap: usize) -> Result<String, GitError> {
        let mut out = git_cli(
            &self.workdir,
            &[
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--stat",
                "--patch",
                &base.0,
                &head.0,
            ],
        )?;
        if out.len() > cap {
            let mut end = cap;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push_str("\n[the diff goes on; cut here]\n");
        }
        Ok(out)
    }

    /// Line `line` (from 1) of `path` as `commit` has it; `None` when the file or the
    /// line is not there (or the file is not text).
    pub fn line_at(&self, commit: &CommitId, path: &str, line: u32) -> Option<String> {
        let spec = format!("{}:{path}", commit.0);
        let text = git_cli(&self.workdir, &["show", "--no-textconv", &spec]).ok()?;
        text.lines()
            .nth(line.checked_sub(1)? as usize)
            .map(str::to_owned)
    }

    /// How many commits `head` has that `base` lacks.
    pub fn count_ahead(&self, base: &CommitId, head: &CommitId) -> Result<u64, GitError> {
        let out = git_cli(
            &self.workdir,
            &["rev-list", "--count", &format!("{}..{}", base.0, head.0)],
        )?;
        Ok(out.trim().parse().unwrap_or(0))
    }

    /// `head` and up to `n - 1` of its first-parent ancestors, newest first; with
    /// `except`, only those it does not hold.
    pub fn first_parents(
        &self,
        head: &CommitId,
        n: usize,
        except: Option<&CommitId>,
    ) -> Result<Vec<CommitId>, GitError> {
        let n = n.to_string();
        let not = except.map(|e| format!("^{}", e.0));
        let mut args = vec!["rev-list", "--first-parent", "-n", &n, &head.0];
        args.extend(not.as_deref());
        let out = git_cli(&self.workdir, &args)?;
        Ok(out.lines().map(|l| CommitId(l.trim().to_owned())).collect())
    }

    /// The `Orch-Task` trailers of the commits `head` has that `base` lacks, newest
    /// first, without repeats: the tasks a line holds beyond the base.
    pub fn tasks_between(&self, base: &CommitId, head: &CommitId) -> Result<Vec<String>, GitError> {
        let out = git_cli(
            &self.workdir,
            &[
                "log",
                "--format=%(trailers:key=Orch-Task,valueonly,separator=%x00)",
                &format!("{}..{}", base.0, head.0),
            ],
        )?;
        let mut tasks: Vec<String> = Vec::new();
        for t in out
            .split(['\n', '\0'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if !tasks.iter().any(|x| x == t) {
                tasks.push(t.to_owned());
            }
        }
        Ok(tasks)
    }

    /// What landed on the line from `from` to `to`, oldest first: each first-parent
    /// commit carrying an `Orch-Task` trailer, with its tasks (keys) and the files it
    /// changed (against its first parent).
    pub fn landed_since(&self, from: &CommitId, to: &CommitId) -> Result<Vec<Landing>, GitError> {
        let out = git_cli(
            &self.workdir,
            &[
                "log",
                "--first-parent",
                "--reverse",
                "--format=%H%x00%(trailers:key=Orch-Task,valueonly,separator=%x2C)",
                &format!("{}..{}", from.0, to.0),
            ],
        )?;
        let mut landed = Vec::new();
        for line in out.lines() {
            let Some((commit, keys)) = line.split_once('\0') else {
                continue;
            };
            let tasks: Vec<String> = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            if tasks.is_empty() {
                continue;
            }
            let files = git_cli(
                &self.workdir,
                &[
                    "diff",
                    "--name-only",
                    "--no-renames",
                    &format!("{commit}^1"),
                    commit,
                ],
            )?;
            landed.push(Landing {
                tasks,
                files: files.lines().map(str::to_owned).collect(),
            });
        }
        Ok(landed)
    }

    /// The worktree that has `branch` checked out, if one does, and whether it is clean.
    pub fn checked_out(&self, branch: &str) -> Result<Option<CheckedOut>, GitError> {
        let list = git_cli(&self.workdir, &["worktree", "list", "--porcelain"])?;
        let want = format!("branch {}", full_branch(branch));
        let mut path: Option<PathBuf> = None;
        for line in list.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                path = Some(PathBuf::from(p));
            } else if line == want
                && let Some(p) = path.take()
            {
                let status = git_cli(
                    &p,
                    &[
                        "--no-optional-locks",
                        "status",
                        "--porcelain",
                        "--untracked-files=normal",
                    ],
                )?;
                let untracked: Vec<String> = status
                    .lines()
                    .filter_map(|l| l.strip_prefix("?? "))
                    .map(str::to_owned)
                    .collect();
                return Ok(Some(CheckedOut {
                    clean: status.lines().all(|l| l.starts_with("?? ")),
                    untracked,
                    path: p,
                }));
            }
        }
        Ok(None)
    }

    /// The worktree that has `reference` (`refs/heads/...`) checked out, if any: the
    /// main one or a linked one, read from their `HEAD` files (no process started).
    pub fn checkout_of(&self, reference: &str) -> Option<PathBuf> {
        let repo = self.repo();
        let common = repo.common_dir().to_path_buf();
        let on = |head: &Path| {
            std::fs::read_to_string(head)
                .is_ok_and(|h| h.trim().strip_prefix("ref:").map(str::trim) == Some(reference))
        };
        if !repo.is_bare() && on(&common.join("HEAD")) {
            return Some(common.parent().unwrap_or(&common).to_path_buf());
        }
        let linked = std::fs::read_dir(common.join("worktrees")).ok()?;
        linked.flatten().map(|e| e.path()).find_map(|admin| {
            on(&admin.join("HEAD")).then(|| {
                std::fs::read_to_string(admin.join("gitdir"))
                    .ok()
                    .map(|g| PathBuf::from(g.trim()))
                    .and_then(|g| g.parent().map(Path::to_path_buf))
                    .unwrap_or(admin)
            })
        })
    }

    /// Fast-forwards the branch checked out (and clean) at `checkout` from `expected`
    /// to `new`: its ref and its files, as `git merge --ff-only` does. Refused when the
    /// branch is no longer at `expected`, or the checkout has changes.
    pub fn fast_forward_checkout(
        &self,
        checkout: &Path,
        branch: &str,
        expected: &CommitId,
        new: &CommitId,
    ) -> Result<(), GitError> {
        let _admin = self.admin();
        let actual = self.ref_target(&full_branch(branch))?;
        if actual.as_ref() != Some(expected) {
            return Err(GitError::LostRace {
                reference: full_branch(branch),
                expected: expected.clone(),
                actual,
            });
        }
        git_cli(
            checkout,
            &["merge", "--quiet", "--ff-only", "--no-edit", &new.0],
        )?;
        Ok(())
    }

    /// Pushes `commit` to each of `branches` on `remote`, all or none (`--atomic`), and
    /// never forced: a remote branch someone else moved on is refused, not overwritten.
    pub fn push(
        &self,
        remote: &str,
        branches: &[String],
        commit: &CommitId,
    ) -> Result<(), GitError> {
        let specs: Vec<String> = branches
            .iter()
            .map(|b| format!("{}:{}", commit.0, full_branch(b)))
            .collect();
        let mut cmd = git_command(&self.workdir);
        cmd.args(["push", "--porcelain", "--atomic", "--no-verify", remote])
            .args(&specs);
        crate::remote::run_push(cmd, remote, &specs.join(" "))
    }
}
