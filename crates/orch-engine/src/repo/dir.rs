//! Finding the repository and setting orch up in it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::error::BadInput;

/// A git repository orch works on.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The top level of the working tree.
    pub root: PathBuf,
    /// The common git directory (shared by linked worktrees), for `info/exclude`.
    pub common_dir: PathBuf,
}

/// Runs `git -C dir ARGS` with none of the caller's `GIT_*` variables (`GIT_DIR`,
/// `GIT_INDEX_FILE`, ...), which must not point orch at another repository.
pub fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    let mut cmd = Command::new("git");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&k);
        }
    }
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("running git (is it installed and on PATH?)")
}

impl Repo {
    /// The repository at `--repo`, or around the current directory.
    pub fn discover(repo: Option<&Path>) -> Result<Repo> {
        let start = match repo {
            Some(p) => p.to_path_buf(),
            None => std::env::current_dir().context("reading the current directory")?,
        };
        if !start.is_dir() {
            return Err(BadInput(format!("--repo {}: no such directory", start.display())).into());
        }
        let out = git(
            &start,
            &[
                "rev-parse",
                "--show-toplevel",
                "--path-format=absolute",
                "--git-common-dir",
            ],
        )?;
        if !out.status.success() {
            return Err(BadInput(format!(
                "{} is not inside a git repository: orch keeps one board per repository; \
                 run `git init` there first, or pass --repo PATH",
                start.display()
            ))
            .into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let root = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| {
            BadInput(format!(
                "{} is inside a bare git repository: orch needs a working tree",
                start.display()
            ))
        })?;
        let common = lines
            .next()
            .context("git did not print the git directory")?;
        Ok(Repo {
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
    pub fn ensure_orch_dir(&self) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        let dir = self.orch_dir();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            changed.push("created .orch/".to_owned());
        }
        // The database, prompts and logs are the user's alone, whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
        let exclude = self.common_dir.join("info").join("exclude");
        let current = match std::fs::read_to_string(&exclude) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", exclude.display())),
        };
        let listed = current
            .lines()
            .any(|l| matches!(l.trim(), ".orch" | ".orch/" | "/.orch" | "/.orch/"));
        if !listed {
            if let Some(parent) = exclude.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let mut text = current;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("# orch's database and logs\n/.orch/\n");
            write_atomic(&exclude, text.as_bytes())?;
            changed.push("added /.orch/ to .git/info/exclude".to_owned());
        }
        Ok(changed)
    }
}

/// Writes a file through a temporary sibling and a rename, so a crash never leaves it
/// half-written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("orch-tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}
