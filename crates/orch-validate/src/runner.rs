//! The process runner: one command in its own process group, with a filtered
//! environment, a deadline, cancellation, a capped log and a live line feed.
//!
//! Stopping is always the whole group: SIGTERM, a grace period, then SIGKILL. When the
//! command's main process exits, whatever it left running in its group is killed too,
//! and if the future running it is dropped, a guard SIGKILLs the group at once. A
//! process that moves itself to another session or group (`setsid`) escapes this; no
//! runner built on process groups can follow it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A program and its arguments, run directly.
    Argv(Vec<String>),
    /// A shell command line, run as `sh -c LINE`.
    Shell(String),
}

impl Program {
    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Program::Argv(v) => v.join(" "),
            Program::Shell(s) => s.clone(),
        }
    }
}

/// The child's environment: nothing from the parent unless allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The environment to take allowed variables from (usually `std::env::vars()`).
    pub parent: Vec<(String, String)>,
    /// Names passed through from `parent`.
    pub allow: Vec<String>,
    /// Variables orch sets; they win over the parent's.
    pub set: Vec<(String, String)>,
}

impl Environment {
    /// The allowlist applied to this process's own environment.
    pub fn inherit(allow: &[String], set: Vec<(String, String)>) -> Environment {
        Environment {
            parent: std::env::vars().collect(),
            allow: allow.to_vec(),
            set,
        }
    }

    /// The variables the child gets, sorted by name.
    pub fn resolve(&self) -> Vec<(String, String)> {
        let mut vars: std::collections::BTreeMap<String, String> = self
            .parent
            .iter()
            .filter(|(k, _)| self.allow.iter().any(|a| name_matches(a, k)))
            .cloned()
            .collect();
        vars.extend(self.set.iter().cloned());
        vars.into_iter().collect()
    }
}

/// Whether the variable `name` matches the allowlist entry `pattern`: a name, or a
/// glob where `*` stands for any run of characters (`ANTHROPIC_*`, `*_API_KEY`).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    if !pattern.contains('*') {
        return pattern == name;
    }
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// Where the `PATH` among a child's variables `vars` finds the program `name`, as
/// the child's own lookup would: the first executable file of that name in its
/// directories, a relative one taken from `cwd` (the child's working directory).
/// `None` for a name with a `/` in it, or one it does not find.
pub fn on_path(name: &str, vars: &[(String, String)], cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return None;
    }
    let (_, path) = vars.iter().find(|(k, _)| k == "PATH")?;
    std::env::split_paths(path)
        .map(|dir| cwd.join(dir).join(name))
        .find(|f| {
            f.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Everything about one run of a command.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// What to run.
    pub program: Program,
    /// Where.
    pub cwd: PathBuf,
    /// With what environment.
    pub env: Environment,
    /// How long it may run.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Where stdout and stderr go, interleaved as they arrive.
    pub log_path: PathBuf,
    /// The largest log; past it the head and tail are kept.
    pub log_cap: u64,
    /// Bytes written to the child's stdin, which is then closed (else stdin is empty).
    pub stdin: Option<Vec<u8>>,
    /// Also keep stdout apart from the log, up to this many bytes (for commands whose
    /// answer is their output, such as a planner).
    pub capture_stdout: Option<usize>,
    /// When set, orch's core decides when to escalate: the runner sends SIGTERM on
    /// cancel or timeout and SIGKILL only when this token fires, with no grace timer of
    /// its own (`kill_grace` is then unused). When unset, SIGKILL follows SIGTERM after
    /// `kill_grace`.
    pub hard_kill: Option<CancellationToken>,
    /// Open the log with `$ <command>` and close it with how the command ended (gate
    /// logs); off for a log that is a stream to parse (an agent's).
    pub log_frame: bool,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of output, for live views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Which stream.
    pub stream: Stream,
    /// The text, lossily decoded, without its newline, at most [`MAX_LINE`] bytes.
    pub text: String,
}

/// Longer lines are cut for the live feed (the log keeps them whole).
pub const MAX_LINE: usize = 4096;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exited by itself with this code.
    Exited(i32),
    /// Killed by a signal it did not get from orch.
    Signaled(i32),
    /// Ran past its timeout and was stopped.
    TimedOut,
    /// Canceled and stopped.
    Canceled,
    /// Could not be started.
    FailedToStart(String),
}

impl Outcome {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        *self == Outcome::Exited(0)
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            Outcome::Exited(c) => Some(*c),
            _ => None,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(c) => write!(f, "exited with code {c}"),
            Outcome::Signaled(s) => write!(f, "killed by signal {s}"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::Canceled => f.write_str("canceled"),
            Outcome::FailedToStart(m) => write!(f, "failed to start: {m}"),
        }
    }
}

/// The record of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// From spawn to the end of its output.
    pub duration: Duration,
    /// The log file.
    pub log_path: PathBuf,
    /// Bytes of output seen (also what was cut).
    pub output_bytes: u64,
    /// Whether the log was cut to its cap.
    pub log_truncated: bool,
    /// The last lines of output.
    pub tail: Vec<String>,
    /// Stdout alone, when [`CommandSpec::capture_stdout`] asked for it (cut at its limit).
    pub stdout: Option<Vec<u8>>,
}

/// Lines of output kept in [`Report::tail`].
pub const TAIL_LINES: usize = 40;

/// A failure of the runner itself (not of the command).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The log file could not be written.
    #[error("cannot write the log {path}: {source}")]
    Log {
        /// The log.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The working directory does not exist.
    #[error("cannot run `{program}`: the working directory {cwd} does not exist")]
    NoCwd {
        /// What was to run.
        program: String,
        /// Where.
        cwd: PathBuf,
    },
    /// Waiting for the child failed.
    #[error("waiting for `{program}` failed: {source}")]
    Wait {
        /// What was running.
        program: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Whether a process is alive (not gone and not a zombie), from `/proc`.
pub fn is_alive(pid: u32) -> bool {
    let stat = Path::new("/proc").join(pid.to_string()).join("stat");
    match std::fs::read_to_string(stat) {
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_globs() {
        assert!(name_matches("ANTHROPIC_*", "ANTHROPIC_API_KEY"));
        assert!(name_matches("*_API_KEY", "OPENAI_API_KEY"));
        assert!(name_matches("A*B*C", "AxxBxxC"));
        assert!(!name_matches("ANTHROPIC_*", "XANTHROPIC_KEY"));
        assert!(!name_matches("PATH", "PATHS"));
        let env = Environment {
            parent: vec![
                ("ANTHROPIC_API_KEY".into(), "k".into()),
                ("SECRET".into(), "s".into()),
            ],
            allow: vec!["ANTHROPIC_*".into()],
            set: vec![],
        };
        assert_eq!(
            env.resolve(),
            vec![("ANTHROPIC_API_KEY".into(), "k".into())]
        );
    }
}
