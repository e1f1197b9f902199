//! git for tests: none of the caller's `GIT_*` variables (the tests pass whatever the
//! environment sets), and an identity of its own for commits.

use std::path::Path;
use std::process::Command;

/// `git` with none of the caller's `GIT_*` variables.
pub fn git_cmd() -> Command {
    let mut c = Command::new("git");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GIT_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs `git -C dir ARGS` as a test user and returns its stdout, trimmed; panics with
/// git's stderr if it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd()
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `git ARGS` in `dir` as [`git()`] does, splitting `line` on spaces:
/// `git_in(dir, "commit -q -m init")`.
pub fn git_in(dir: &Path, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    git(dir, &args)
}
