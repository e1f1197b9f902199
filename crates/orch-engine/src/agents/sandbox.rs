//! `agent.sandbox = "bwrap"`: the agent's command run inside bubblewrap. It sees the
//! file system read-only, except its worktree, its attempt's artifact directory, a
//! private `/tmp`, what git needs to commit on its own branch (the objects, its
//! worktree's admin directory, the run's refs under `refs/heads/orch/<run>/`), and its
//! CLI's own directories under `$HOME` (`PresetSpec::sandbox_dirs`). The network stays
//! (agents call their model's API). Without the sandbox an agent can do anything the
//! user can; docs/agents-and-safety.md says so.

use std::path::{Path, PathBuf};

/// What every sandbox starts from: all of it read-only, its own /dev and /proc.
const BASE: [&str; 8] = [
    "--die-with-parent",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
];

/// Whether bubblewrap can make a sandbox here; why not, with the fix, if it cannot.
pub fn check_bwrap() -> Result<(), String> {
    let out = std::process::Command::new("bwrap")
        .args(BASE)
        .arg("true")
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "agent.sandbox = \"bwrap\": bubblewrap cannot make a sandbox here ({}); allow user namespaces, or set agent.sandbox = \"none\"",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "agent.sandbox = \"bwrap\": cannot run bwrap ({e}); install bubblewrap (`apt install bubblewrap`), or set agent.sandbox = \"none\""
        )),
    }
}

/// What the sandbox lets the agent write, and what it must still see.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    /// Writable.
    pub(crate) writable: Vec<PathBuf>,
    /// Read-only, re-exposed above the private `/tmp` (a repository under `/tmp`).
    pub(crate) readable: Vec<PathBuf>,
}

impl Sandbox {
    /// The sandbox of an attempt: `worktree`, `artifacts`, the shared git directory
    /// `common` (read-only) with the parts a commit on `run`'s branches writes, `home`
    /// (read-only) with the preset's `dirs` in it. Missing writable directories are
    /// made first, so they can be bound.
    pub(crate) fn for_attempt(
        worktree: &Path,
        artifacts: &Path,
        common: &Path,
        run: &str,
        home: Option<&Path>,
        dirs: &[&str],
    ) -> Sandbox {
        let admin = std::fs::read_to_string(worktree.join(".git"))
            .ok()
            .and_then(|l| {
                l.trim()
                    .strip_prefix("gitdir:")
                    .map(|p| PathBuf::from(p.trim()))
            });
        let mut writable = vec![
            worktree.to_path_buf(),
            artifacts.to_path_buf(),
            common.join("objects"),
            common.join("refs/heads/orch").join(run),
            common.join("logs/refs/heads/orch").join(run),
        ];
        writable.extend(admin);
        let mut readable = vec![common.to_path_buf()];
        if let Some(h) = home {
            readable.push(h.to_path_buf());
            writable.extend(dirs.iter().map(|d| h.join(d)));
        }
        for w in &writable {
            let _ = std::fs::create_dir_all(w);
        }
        Sandbox { writable, readable }
    }

    /// `bwrap ... -- sh -c LINE`.
    pub(crate) fn argv(&self, line: &str) -> Vec<String> {
        let mut a: Vec<String> = std::iter::once("bwrap")
            .chain(BASE)
            .chain(["--tmpfs", "/tmp"])
            .map(String::from)
            .collect();
        let mut bind = |flag: &str, p: &Path| {
            if p.exists() {
                let p = p.display().to_string();
                a.extend([flag.to_owned(), p.clone(), p]);
            }
        };
        for r in &self.readable {
            bind("--ro-bind", r);
        }
        for w in &self.writable {
            bind("--bind", w);
        }
        a.extend(["--setenv", "TMPDIR", "/tmp", "--", "sh", "-c", line].map(String::from));
        a
    }
}
