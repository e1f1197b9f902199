//! Finding the repository and setting up its `.orch/` directory.

use std::path::{Path, PathBuf};

use super::OpenError;

/// Where a repository orch works on is: found, not yet opened.
#[derive(Debug, Clone)]
pub struct RepoDir {
    /// The top level of the working tree.
    pub root: PathBuf,
    /// The common git directory (shared by linked worktrees), for `info/exclude`.
    pub common_dir: PathBuf,
}

/// Runs `git -C dir ARGS` as orch runs git everywhere ([`orch_git::git_command`]): with
/// none of the caller's `GIT_*` variables (`GIT_DIR`, `GIT_INDEX_FILE`, ...), which
/// must not point orch at another repository, and no hooks or fsmonitor.
pub fn git(dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    orch_git::git_command(dir).args(args).output()
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpenError {
    let path = path.to_path_buf();
    move |source| OpenError::Io { what, path, source }
}

impl RepoDir {
    /// The repository around `start` (its working tree's top level).
    pub fn discover(start: &Path) -> Result<RepoDir, OpenError> {
        if !start.is_dir() {
            return Err(OpenError::NoSuchDirectory(start.to_path_buf()));
        }
        let out = git(
            start,
            &[
                "rev-parse",
                "--show-toplevel",
                "--path-format=absolute",
                "--git-common-dir",
            ],
        )
        .map_err(OpenError::Git)?;
        if !out.status.success() {
            return Err(OpenError::NotARepository(start.to_path_buf()));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let root = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| OpenError::Bare(start.to_path_buf()))?;
        let common = lines
            .next()
            .ok_or_else(|| OpenError::NotARepository(start.to_path_buf()))?;
        Ok(RepoDir {
            root: PathBuf::from(root),
            common_dir: PathBuf::from(common),
        })
    }

    /// `<repo>/.orch`
    pub fn orch_dir(&self) -> PathBuf {
        self.root.join(".orch")
    }

    /// Creates `.orch/` and lists it in `.git/info/exclude`. Idempotent; returns what it
    /// changed, as paths relative to the repository where possible.
    pub fn ensure_orch_dir(&self) -> Result<Vec<String>, OpenError> {
        let mut changed = Vec::new();
        let dir = self.orch_dir();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            changed.push("created .orch/".to_owned());
        }
        // The database, prompts and logs are the user's alone, whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("making private", &dir))?;
        let exclude = self.common_dir.join("info").join("exclude");
        let current = match std::fs::read_to_string(&exclude) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io("reading", &exclude)(e)),
        };
        let listed = current
            .lines()
            .any(|l| matches!(l.trim(), ".orch" | ".orch/" | "/.orch" | "/.orch/"));
        if !listed {
            if let Some(parent) = exclude.parent() {
                std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
            }
            let mut text = current;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("# orch's database and logs\n/.orch/\n");
            write_atomic(&exclude, text.as_bytes()).map_err(io("writing", &exclude))?;
            changed.push("added /.orch/ to .git/info/exclude".to_owned());
        }
        Ok(changed)
    }
}

/// Writes a file through a temporary sibling and a rename, so a crash never leaves it
/// half-written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("orch-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
