//! The real agent CLIs the tests drive: found as `$ORCH_TEST_<NAME>` or on `PATH`
//! (`.ci/run` installs pinned versions). Outside CI a missing one skips its test with a
//! note; under CI it fails the test.

use std::path::PathBuf;

/// `bin` at `$var`, else on `PATH`.
pub fn find(bin: &str, var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

/// The CLI, or `None` (and a note) when it is not installed outside CI.
pub fn cli_or_skip(bin: &str, var: &str) -> Option<PathBuf> {
    let c = find(bin, var);
    if c.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {bin} (see .ci/run)"
        );
        eprintln!("skipped: {bin} is not installed (set {var})");
    }
    c
}

/// Claude Code, as `$ORCH_TEST_CLAUDE` or `claude` on `PATH`.
pub fn claude_or_skip() -> Option<PathBuf> {
    cli_or_skip("claude", "ORCH_TEST_CLAUDE")
}

/// Backlog.md's `backlog`, as `$ORCH_TEST_BACKLOG` or on `PATH`.
pub fn backlog_or_skip() -> Option<PathBuf> {
    cli_or_skip("backlog", "ORCH_TEST_BACKLOG")
}

/// Taskmaster's `task-master`, as `$ORCH_TEST_TASKMASTER` or on `PATH`.
pub fn taskmaster_or_skip() -> Option<PathBuf> {
    cli_or_skip("task-master", "ORCH_TEST_TASKMASTER")
}
