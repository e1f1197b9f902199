//! The process runner: one command in its own process group, with a filtered
//! environment, a deadline, cancellation, a capped log and a live line feed.
//!
//! Stopping is always the whole group: SIGTERM, a grace period, then SIGKILL. When the
//! command's main process exits, whatever it left running in its group is killed too,
//! and if the future running it is dropped, a guard SIGKILLs the group at once. A
//! process that moves itself to another session or group (`setsid`) escapes this; no
//! runner built on process groups can follow it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::log::{CappedLog, last_lines};

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
            .filter(|(k, _)| self.allow.contains(k))
            .cloned()
            .collect();
        vars.extend(self.set.iter().cloned());
        vars.into_iter().collect()
    }
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

/// SIGKILLs a process group when dropped, unless disarmed.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (nobody left in the group) is the normal end, not an error.
            let _ = killpg(pgid, sig);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Why the runner is stopping the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Timeout,
    Cancel,
}

/// After the main process has exited and the group was killed, how long to wait for
/// the pipes to close (an escaped process could hold them open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Runs one command to its end. `lines`, if given, receives output lines as they
/// arrive; a slow receiver loses lines rather than slowing the child.
pub async fn run(
    spec: &CommandSpec,
    cancel: &CancellationToken,
    lines: Option<mpsc::Sender<Line>>,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let described = spec.program.describe();
    let log_err = |source| RunError::Log {
        path: spec.log_path.clone(),
        source,
    };
    let mut log = CappedLog::create(&spec.log_path, spec.log_cap).map_err(log_err)?;
    if !spec.cwd.is_dir() {
        return Err(RunError::NoCwd {
            program: described,
            cwd: spec.cwd.clone(),
        });
    }
    let mut cmd = match &spec.program {
        Program::Argv(argv) if argv.is_empty() => {
            return finish_failed(spec, log, started, "the command is empty".into());
        }
        Program::Argv(argv) => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        Program::Shell(line) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
    };
    cmd.current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.resolve())
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let program = match &spec.program {
                Program::Argv(a) => a[0].clone(),
                Program::Shell(_) => "sh".into(),
            };
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                let path = spec
                    .env
                    .resolve()
                    .into_iter()
                    .find(|(k, _)| k == "PATH")
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| "(PATH is not set for the child)".into());
                format!("program `{program}` not found (PATH={path})")
            } else {
                format!("cannot start `{program}`: {e}")
            };
            return finish_failed(spec, log, started, why);
        }
    };
    let mut guard = GroupGuard {
        pgid: child.id().map(|id| Pid::from_raw(id as i32)),
    };
    if let (Some(bytes), Some(mut pipe)) = (spec.stdin.clone(), child.stdin.take()) {
        // A child that never reads its stdin must not block the runner.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(&bytes).await;
        });
    }
    let mut captured: Option<Vec<u8>> = spec.capture_stdout.map(|_| Vec::new());
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut stderr = child.stderr.take().expect("stderr was piped");
    let mut out_buf = vec![0u8; 64 * 1024];
    let mut err_buf = vec![0u8; 64 * 1024];
    let mut out_line = Vec::new();
    let mut err_line = Vec::new();
    let mut out_pending = Vec::new();
    let mut err_pending = Vec::new();
    let (mut out_done, mut err_done) = (false, false);
    let mut status: Option<std::process::ExitStatus> = None;
    let mut stopping: Option<Stopping> = None;
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let hard_kill = spec.hard_kill.clone().unwrap_or_default();
    let mut hard_killed = false;

    while status.is_none() || !out_done || !err_done {
        tokio::select! {
            r = stdout.read(&mut out_buf), if !out_done => match r {
                Ok(0) | Err(_) => out_done = true,
                Ok(n) => {
                    if let (Some(c), Some(limit)) = (captured.as_mut(), spec.capture_stdout) {
                        let room = limit.saturating_sub(c.len());
                        c.extend_from_slice(&out_buf[..n.min(room)]);
                    }
                    write_lines(&mut log, &mut out_pending, &out_buf[..n]).map_err(log_err)?;
                    feed_lines(&lines, Stream::Stdout, &mut out_line, &out_buf[..n]);
                }
            },
            r = stderr.read(&mut err_buf), if !err_done => match r {
                Ok(0) | Err(_) => err_done = true,
                Ok(n) => {
                    write_lines(&mut log, &mut err_pending, &err_buf[..n]).map_err(log_err)?;
                    feed_lines(&lines, Stream::Stderr, &mut err_line, &err_buf[..n]);
                }
            },
            r = child.wait(), if status.is_none() => {
                let s = r.map_err(|source| RunError::Wait { program: described.clone(), source })?;
                status = Some(s);
                // The main process is gone: nothing else of the group may stay.
                guard.signal(Signal::SIGKILL);
                drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            },
            _ = tokio::time::sleep_until(deadline), if stopping.is_none() && status.is_none() => {
                stopping = Some(Stopping::Timeout);
                guard.signal(Signal::SIGTERM);
                kill_at = spec.hard_kill.is_none().then(|| tokio::time::Instant::now() + spec.kill_grace);
            },
            _ = cancel.cancelled(), if stopping.is_none() && status.is_none() => {
                stopping = Some(Stopping::Cancel);
                guard.signal(Signal::SIGTERM);
                kill_at = spec.hard_kill.is_none().then(|| tokio::time::Instant::now() + spec.kill_grace);
            },
            _ = hard_kill.cancelled(), if status.is_none() && !hard_killed => {
                hard_killed = true;
                if stopping.is_none() {
                    stopping = Some(Stopping::Cancel);
                }
                guard.signal(Signal::SIGKILL);
            },
            _ = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() && status.is_none() => {
                guard.signal(Signal::SIGKILL);
                kill_at = None;
            },
            _ = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => {
                // Something outside the group holds the pipes; stop reading.
                out_done = true;
                err_done = true;
            },
        }
    }
    guard.disarm();
    for pending in [&mut out_pending, &mut err_pending] {
        if !pending.is_empty() {
            pending.push(b'\n');
            log.write(pending).map_err(log_err)?;
        }
    }
    flush_partial(&lines, Stream::Stdout, &mut out_line);
    flush_partial(&lines, Stream::Stderr, &mut err_line);
    let status = status.expect("the loop ends only once the child has exited");
    let outcome = match stopping {
        Some(Stopping::Timeout) => Outcome::TimedOut,
        Some(Stopping::Cancel) => Outcome::Canceled,
        None => match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => Outcome::Exited(c),
            (None, Some(s)) => Outcome::Signaled(s),
            (None, None) => Outcome::Signaled(0),
        },
    };
    let (output_bytes, log_truncated, recent) = log.finish().map_err(log_err)?;
    Ok(Report {
        outcome,
        duration: started.elapsed(),
        log_path: spec.log_path.clone(),
        output_bytes,
        log_truncated,
        tail: last_lines(&recent, TAIL_LINES),
        stdout: captured,
    })
}

fn finish_failed(
    spec: &CommandSpec,
    mut log: CappedLog,
    started: Instant,
    why: String,
) -> Result<Report, RunError> {
    let log_err = |source| RunError::Log {
        path: spec.log_path.clone(),
        source,
    };
    log.write(format!("[orch: {why}]\n").as_bytes())
        .map_err(log_err)?;
    let (output_bytes, log_truncated, _) = log.finish().map_err(log_err)?;
    Ok(Report {
        outcome: Outcome::FailedToStart(why.clone()),
        duration: started.elapsed(),
        log_path: spec.log_path.clone(),
        output_bytes,
        log_truncated,
        tail: vec![why],
        stdout: None,
    })
}

/// A partial line longer than this goes to the log without waiting for its newline.
const MAX_PENDING: usize = 64 * 1024;

/// Writes the complete lines of `pending + bytes` to the log and keeps the rest, so
/// stdout and stderr interleave in the log by whole lines.
fn write_lines(log: &mut CappedLog, pending: &mut Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
    match bytes.iter().rposition(|b| *b == b'\n') {
        Some(last) => {
            if !pending.is_empty() {
                log.write(pending)?;
                pending.clear();
            }
            log.write(&bytes[..=last])?;
            pending.extend_from_slice(&bytes[last + 1..]);
        }
        None => pending.extend_from_slice(bytes),
    }
    if pending.len() > MAX_PENDING {
        log.write(pending)?;
        pending.clear();
    }
    Ok(())
}

fn feed_lines(
    lines: &Option<mpsc::Sender<Line>>,
    stream: Stream,
    partial: &mut Vec<u8>,
    bytes: &[u8],
) {
    let Some(tx) = lines else { return };
    for chunk in bytes.split_inclusive(|b| *b == b'\n') {
        if partial.len() < MAX_LINE {
            let room = MAX_LINE - partial.len();
            let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
            partial.extend_from_slice(&body[..body.len().min(room)]);
        }
        if chunk.ends_with(b"\n") {
            let text = String::from_utf8_lossy(partial).into_owned();
            partial.clear();
            let _ = tx.try_send(Line { stream, text });
        }
    }
}

fn flush_partial(lines: &Option<mpsc::Sender<Line>>, stream: Stream, partial: &mut Vec<u8>) {
    if let Some(tx) = lines
        && !partial.is_empty()
    {
        let text = String::from_utf8_lossy(partial).into_owned();
        partial.clear();
        let _ = tx.try_send(Line { stream, text });
    }
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
