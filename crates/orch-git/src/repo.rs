//! The repository handle, [`Git`], its identity and its basic operations, and the one
//! command builder every git CLI call goes through.

use std::path::{Path, PathBuf};
use std::process::Command;

use orch_core::run::CommitId;

use crate::GitError;

/// The author and committer orch uses for the commits it makes.
pub const ORCH_NAME: &str = "orch";
/// The email of [`ORCH_NAME`].
pub const ORCH_EMAIL: &str = "orch@localhost";

/// Who orch's commits are by: the repository's `user.name` and `user.email`, else
/// [`ORCH_NAME`] and [`ORCH_EMAIL`]. Never the caller's `GIT_AUTHOR_*` or
/// `GIT_COMMITTER_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user.name`.
    pub name: String,
    /// `user.email`.
    pub email: String,
}

/// A repository orch works on.
#[derive(Debug, Clone)]
pub struct Git {
    pub(crate) repo: gix::ThreadSafeRepository,
    pub(crate) workdir: PathBuf,
    pub(crate) identity: Identity,
    /// Serialises every operation that can take a git lock: worktree administration
    /// (`.git/worktrees`), ref edits (packed-refs), checkouts and commits (index
    /// locks). Concurrent ones race otherwise; reads and in-memory merges (which only
    /// add immutable objects) stay concurrent.
    pub(crate) admin: std::sync::Arc<std::sync::Mutex<()>>,
}

impl Git {
    /// Opens the repository whose working tree contains `path`.
    pub fn open(path: &Path) -> Result<Git, GitError> {
        let open_err = |e: gix::Error| GitError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        // The caller's `GIT_*` variables (`GIT_WORK_TREE`, `GIT_INDEX_FILE`, ...) never
        // change which repository, worktree or index orch works on (I10).
        let opened = |overrides: Vec<String>| {
            let mut permissions = gix::open::Permissions::default();
            permissions.env.git_prefix = gix::sec::Permission::Deny;
            let opts = gix::open::Options::default()
                .permissions(permissions)
                .config_overrides(overrides);
            let trust = gix::sec::trust::Mapping {
                full: opts.clone(),
                reduced: opts,
            };
            gix::ThreadSafeRepository::discover_opts(path, Default::default(), trust)
                .map_err(open_err)
        };
        let mut repo = opened(Vec::new())?;
        if repo.to_thread_local().committer().is_none() {
            // No identity configured (a fresh machine, CI): ref edits could not write
            // their reflogs, and gix re-opens the repository internally for some
            // operations, so the fallback identity must be part of how it is opened.
            repo = opened(vec![
                format!("committer.name={ORCH_NAME}"),
                format!("committer.email={ORCH_EMAIL}"),
            ])?;
        }
        let workdir = repo.work_tree.clone().ok_or_else(|| GitError::Open {
            path: path.to_path_buf(),
            message: "it is a bare repository; orch needs a working tree".into(),
        })?;
        let workdir = workdir.canonicalize().unwrap_or(workdir);
        let identity = {
            let local = repo.to_thread_local();
            let config = local.config_snapshot();
            let get = |key: &str, fallback: &str| {
                config
                    .string(key)
                    .map(|v| v.to_string())
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| fallback.to_owned())
            };
            Identity {
                name: get("user.name", ORCH_NAME),
                email: get("user.email", ORCH_EMAIL),
            }
        };
        Ok(Git {
            repo,
            workdir,
            identity,
            admin: Default::default(),
        })
    }

    /// Who orch's commits are by.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The shared git directory (the main worktree's `.git`).
    pub fn common_dir(&self) -> PathBuf {
        self.repo().common_dir().to_path_buf()
    }

    /// The main working tree (the user's checkout).
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Holds the worktree-administration lock. A poisoned lock only means another
    /// thread panicked while holding it; the repository's own state is on disk.
    pub(crate) fn admin(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn repo(&self) -> gix::Repository {
        self.repo.to_thread_local()
    }

    /// git's automatic maintenance, once (`git maintenance run --auto`): it packs the
    /// loose objects a run's commits and merges left once they pass git's thresholds
    /// (`gc.auto`). orch's own git calls never start it, one process per commit.
    pub fn maintain(&self) -> Result<(), GitError> {
        run_cli(
            scrubbed(&self.workdir),
            &["maintenance", "run", "--auto", "--quiet"],
        )
        .map(|_| ())
    }

    /// Resolves a revision to a commit id.
    pub fn rev_parse(&self, rev: &str) -> Result<CommitId, GitError> {
        let repo = self.repo();
        let id = repo.rev_parse_single(rev).map_err(|e| GitError::BadRevision {
            rev: rev.into(),
            message: if rev == "HEAD" && repo.head_id().is_err() {
                "the repository has no commits yet; make a first commit (for example `git commit --allow-empty -m init`), then run again".into()
            } else {
                e.to_string()
            },
        })?;
        let commit =
            id.object()
                .and_then(|o| o.peel_to_commit())
                .map_err(|e| GitError::BadRevision {
                    rev: rev.into(),
                    message: e.to_string(),
                })?;
        Ok(CommitId(commit.id.to_string()))
    }

    /// Where `reference` points, or `None` if it does not exist.
    pub fn ref_target(&self, reference: &str) -> Result<Option<CommitId>, GitError> {
        let repo = self.repo();
        match repo.try_find_reference(reference) {
            Ok(Some(mut r)) => {
                let id = r
                    .peel_to_id()
                    .map_err(|e| GitError::gix("reading a reference", e))?;
                Ok(Some(CommitId(id.to_string())))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(GitError::gix("reading a reference", e)),
        }
    }

    /// Creates `refs/heads/<branch>` at `at`; an existing branch is an error, never reused.
    pub fn create_branch(&self, branch: &str, at: &CommitId) -> Result<(), GitError> {
        let _admin = self.admin();
        self.create_branch_locked(branch, at)
    }

    /// [`Git::create_branch`] for callers that hold the admin lock.
    pub(crate) fn create_branch_locked(&self, branch: &str, at: &CommitId) -> Result<(), GitError> {
        let full = full_branch(branch);
        if self.ref_target(&full)?.is_some() {
            return Err(GitError::BranchExists(branch.into()));
        }
        let repo = self.repo();
        let id = oid(at)?;
        repo.reference(
            full.as_str(),
            id,
            gix::refs::transaction::PreviousValue::MustNotExist,
            format!("orch: create {branch}"),
        )
        .map_err(|e| {
            if self.ref_target(&full).ok().flatten().is_some() {
                GitError::BranchExists(branch.into())
            } else {
                GitError::gix("creating a branch", e)
            }
        })?;
        Ok(())
    }

    /// Moves `reference` from `expected` to `new` by compare-and-swap. If the ref is
    /// elsewhere, this is [`GitError::LostRace`] and nothing changes. A lock on it
    /// that no process holds (a run sharing the line was killed mid-update) is
    /// removed, and the update tried again once.
    pub fn advance_ref(
        &self,
        reference: &str,
        expected: &CommitId,
        new: &CommitId,
    ) -> Result<(), GitError> {
        // A branch checked out in a worktree is someone's working branch: moving it
        // would leave their index and files behind (their next commit would undo the
        // move). orch moves such a branch only with its checkout, when asked.
        if reference.starts_with("refs/heads/")
            && let Some(worktree) = self.checkout_of(reference)
        {
            return Err(GitError::BranchCheckedOut {
                branch: reference.trim_start_matches("refs/heads/").to_owned(),
                worktree,
            });
        }
        let repo = self.repo();
        let exp = oid(expected)?;
        // A ref to a missing commit is a corrupt repository: refuse, do not move.
        if repo.find_commit(oid(new)?).is_err() {
            return Err(GitError::MissingCommit(new.clone()));
        }
        let new_id = oid(new)?;
        let update = || {
            repo.reference(
                reference,
                new_id,
                gix::refs::transaction::PreviousValue::MustExistAndMatch(
                    gix::refs::Target::Object(exp),
                ),
                format!("orch: advance to {new}"),
            )
        };
        let result = match update() {
            Err(_) if !self.clear_abandoned_locks_of(reference).is_empty() => update(),
            r => r,
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => match self.ref_target(reference)? {
                Some(actual) if actual != *expected => Err(GitError::LostRace {
                    reference: reference.into(),
                    expected: expected.clone(),
                    actual: Some(actual),
                }),
                None => Err(GitError::LostRace {
                    reference: reference.into(),
                    expected: expected.clone(),
                    actual: None,
                }),
                Some(_) => Err(GitError::gix("updating a reference", e)),
            },
        }
    }
}

impl Git {
    /// Points `reference` (a full name under `refs/orch/`) at `commit`, whatever it
    /// pointed at: a pin that keeps a commit no branch holds yet (a merge candidate)
    /// reachable, so `git gc` cannot prune it.
    pub fn pin(&self, reference: &str, commit: &CommitId) -> Result<(), GitError> {
        let _admin = self.admin();
        self.repo()
            .reference(
                reference,
                oid(commit)?,
                gix::refs::transaction::PreviousValue::Any,
                format!("orch: pin {commit}"),
            )
            .map(|_| ())
            .map_err(|e| GitError::gix("pinning a commit", e))
    }

    /// Removes a pin (nothing if there is none).
    pub fn unpin(&self, reference: &str) -> Result<(), GitError> {
        let _admin = self.admin();
        self.delete_ref(reference)
    }
}

/// The id git would give `data` as a blob: a stable content hash (SHA-1), for keys
/// that must not hold what they are made of (a gate's environment).
pub fn content_id(data: &[u8]) -> String {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, data)
        .map(|id| id.to_string())
        .expect("hashing bytes in memory does not fail")
}

impl Git {
    /// The tree `commit` records.
    pub fn tree_of(&self, commit: &CommitId) -> Result<String, GitError> {
        let repo = self.repo();
        let c = repo
            .find_commit(oid(commit)?)
            .map_err(|e| GitError::gix("reading a commit", e))?;
        c.tree_id()
            .map(|t| t.to_string())
            .map_err(|e| GitError::gix("reading a commit's tree", e))
    }
}

pub(crate) fn full_branch(branch: &str) -> String {
    if branch.starts_with("refs/") {
        branch.to_owned()
    } else {
        format!("refs/heads/{branch}")
    }
}

impl Git {
    /// What changed from `base`'s tree to `head`'s, path by path, without renames
    /// (`git diff-tree -r --no-renames`), read in process.
    pub(crate) fn tree_changes(
        &self,
        base: &CommitId,
        head: &CommitId,
    ) -> Result<Vec<gix::object::tree::diff::ChangeDetached>, GitError> {
        let repo = self.repo();
        let tree = |c: &CommitId| {
            repo.find_commit(oid(c)?)
                .and_then(|commit| commit.tree())
                .map_err(|e| GitError::gix("reading a commit's tree", e))
        };
        let (old, new) = (tree(base)?, tree(head)?);
        let mut opts = gix::diff::Options::default();
        opts.track_path().track_rewrites(None);
        repo.diff_tree_to_tree(&old, &new, opts)
            .map_err(|e| GitError::gix("diffing two trees", e))
    }
}

pub(crate) fn oid(c: &CommitId) -> Result<gix::ObjectId, GitError> {
    gix::ObjectId::from_hex(c.0.as_bytes()).map_err(|e| GitError::BadRevision {
        rev: c.0.clone(),
        message: e.to_string(),
    })
}

/// `git -C dir` with none of the caller's `GIT_*` variables, no hooks and no fsmonitor
/// (I10): a `GIT_DIR` or `GIT_INDEX_FILE` in orch's environment must never redirect
/// orch's own git calls, and a hook or an fsmonitor an agent planted in the shared
/// `.git` (or the user's own hooks) must never run with orch's environment. Nor does
/// it start git's automatic maintenance, a background process per commit: a run
/// asks for it once, at its end ([`Git::maintain`]).
pub fn git_command(dir: &Path) -> Command {
    let mut cmd = scrubbed(dir);
    cmd.args(["-c", "maintenance.auto=false", "-c", "gc.auto=0"]);
    cmd
}

/// [`git_command`] with git's own maintenance thresholds, the user's.
fn scrubbed(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&k);
        }
    }
    cmd.arg("-C").arg(dir).args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "core.fsmonitor=false",
    ]);
    cmd
}

/// Runs the git CLI in `dir` and returns its stdout; a failure carries its stderr.
pub(crate) fn git_cli(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    run_cli(git_command(dir), args)
}

/// Runs `cmd` (a [`git_command`]) with `args`; stdout, or the failure with stderr.
pub(crate) fn run_cli(mut cmd: Command, args: &[&str]) -> Result<String, GitError> {
    let out = cmd
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| GitError::Cli {
            command: format!("git {}", args.join(" ")),
            message: format!("cannot run git: {e}"),
        })?;
    if !out.status.success() {
        return Err(GitError::Cli {
            command: format!("git {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `op` again while it fails on another git process's lock file (`index.lock`,
/// a ref lock): up to about 5 s, then the last error. The collisions seen while
/// building the engine came from orch's own inventory running `git status` (which
/// refreshes the index under its lock) without `--no-optional-locks`; that is fixed,
/// and this retry stays for git processes outside orch (an editor, a background
/// `gc --auto`).
pub(crate) fn retry_locked(
    mut op: impl FnMut() -> Result<String, GitError>,
) -> Result<String, GitError> {
    let mut wait = std::time::Duration::from_millis(20);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match op() {
            Err(GitError::Cli { message, .. })
                if message.contains(".lock': File exists")
                    && waited < std::time::Duration::from_secs(5) =>
            {
                std::thread::sleep(wait);
                waited += wait;
                wait = (wait * 2).min(std::time::Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

/// Like [`git_cli`], but returns whether it succeeded instead of failing.
pub(crate) fn git_ok(dir: &Path, args: &[&str]) -> bool {
    git_command(dir)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}
