//! Running a command: spawning it in its own process group, then one loop that reads
//! both pipes, waits for the child, and stops it (its deadline, the caller's cancel
//! and hard kill, the grace timer), all in one `select!`, so the child never blocks on
//! output and every stop reaches its whole group.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::log::{CappedLog, last_lines};
use crate::runner::{
    CommandSpec, Line, MAX_LINE, Outcome, Program, Report, RunError, Stream, TAIL_LINES,
};

/// SIGKILLs a process group when dropped, unless disarmed.
pub(crate) struct GroupGuard {
    pub(crate) pgid: Option<Pid>,
}

impl GroupGuard {
    pub(crate) fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (nobody left in the group) is the normal end, not an error.
            let _ = killpg(pgid, sig);
        }
    }

    pub(crate) fn disarm(&mut self) {
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
pub(crate) enum Stopping {
    Timeout,
    Cancel,
}

/// After the main process has exited and the group was killed, how long to wait for
/// the pipes to close (an escaped process could hold them open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// A pipe's read buffer. A quarter of the pipe's own 64 KB: a chatty child costs
/// more reads, and 64 agents at once hold 2 MB of buffers instead of 8.
const READ_BUF: usize = 16 * 1024;

/// One of the child's output pipes.
struct Pipe<R> {
    reader: R,
    stream: Stream,
    buf: Vec<u8>,
    /// The live feed's partial line.
    line: Vec<u8>,
    /// The log's partial line.
    pending: Vec<u8>,
    done: bool,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: R, stream: Stream) -> Pipe<R> {
        Pipe {
            reader,
            stream,
            buf: vec![0u8; READ_BUF],
            line: Vec::new(),
            pending: Vec::new(),
            done: false,
        }
    }

    /// Takes a read's result: bytes go to the log by whole lines and to the feed.
    fn took(
        &mut self,
        r: std::io::Result<usize>,
        log: &mut CappedLog,
        lines: &Option<mpsc::Sender<Line>>,
    ) -> std::io::Result<usize> {
        match r {
            Ok(0) | Err(_) => {
                self.done = true;
                Ok(0)
            }
            Ok(n) => {
                write_lines(log, &mut self.pending, &self.buf[..n])?;
                feed_lines(lines, self.stream, &mut self.line, &self.buf[..n]);
                Ok(n)
            }
        }
    }

    /// At the end: the last partial lines to the log and the feed.
    fn finish(
        &mut self,
        log: &mut CappedLog,
        lines: &Option<mpsc::Sender<Line>>,
    ) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            log.write(&self.pending)?;
        }
        flush_partial(lines, self.stream, &mut self.line);
        Ok(())
    }
}

/// The timers and signals that stop the child.
struct Stopper {
    stopping: Option<Stopping>,
    deadline: Instant,
    /// The runner's own SIGKILL, when the caller has no hard kill of its own.
    kill_at: Option<Instant>,
    drain_until: Option<Instant>,
    hard_killed: bool,
}

impl Stopper {
    fn new(spec: &CommandSpec) -> Stopper {
        Stopper {
            stopping: None,
            deadline: Instant::now() + spec.timeout,
            kill_at: None,
            drain_until: None,
            hard_killed: false,
        }
    }

    /// SIGTERM, and the grace timer unless the caller decides when SIGKILL comes.
    fn stop(&mut self, why: Stopping, spec: &CommandSpec, guard: &GroupGuard) {
        self.stopping = Some(why);
        guard.signal(Signal::SIGTERM);
        self.kill_at = spec
            .hard_kill
            .is_none()
            .then(|| Instant::now() + spec.kill_grace);
    }
}

/// How the child ended, and its stdout if it was captured.
pub(crate) struct Ended {
    pub(crate) status: ExitStatus,
    pub(crate) stopping: Option<Stopping>,
    pub(crate) captured: Option<Vec<u8>>,
}

/// Runs the loop until the child has exited and its pipes are drained.
pub(crate) async fn pump(
    spec: &CommandSpec,
    child: &mut tokio::process::Child,
    cancel: &CancellationToken,
    guard: &mut GroupGuard,
    log: &mut CappedLog,
    lines: &Option<mpsc::Sender<Line>>,
) -> Result<Ended, RunError> {
    let log_err = |source| RunError::Log {
        path: spec.log_path.clone(),
        source,
    };
    let mut captured: Option<Vec<u8>> = spec.capture_stdout.map(|_| Vec::new());
    let mut out = Pipe::new(
        child.stdout.take().expect("stdout was piped"),
        Stream::Stdout,
    );
    let mut err = Pipe::new(
        child.stderr.take().expect("stderr was piped"),
        Stream::Stderr,
    );
    let mut status: Option<ExitStatus> = None;
    let mut s = Stopper::new(spec);
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let hard_kill = spec.hard_kill.clone().unwrap_or_default();
    while status.is_none() || !out.done || !err.done {
        let running = status.is_none();
        tokio::select! {
            r = out.reader.read(&mut out.buf), if !out.done => {
                let n = out.took(r, log, lines).map_err(log_err)?;
                if let (Some(c), Some(limit)) = (captured.as_mut(), spec.capture_stdout) {
                    let room = limit.saturating_sub(c.len());
                    c.extend_from_slice(&out.buf[..n.min(room)]);
                }
            },
            r = err.reader.read(&mut err.buf), if !err.done => {
                err.took(r, log, lines).map_err(log_err)?;
            },
            r = child.wait(), if running => {
                let program = spec.program.describe();
                status = Some(r.map_err(|source| RunError::Wait { program, source })?);
                // The main process is gone: nothing else of the group may stay.
                guard.signal(Signal::SIGKILL);
                s.drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            },
            _ = tokio::time::sleep_until(s.deadline), if s.stopping.is_none() && running => {
                s.stop(Stopping::Timeout, spec, guard);
            },
            _ = cancel.cancelled(), if s.stopping.is_none() && running => {
                s.stop(Stopping::Cancel, spec, guard);
            },
            _ = hard_kill.cancelled(), if running && !s.hard_killed => {
                s.hard_killed = true;
                s.stopping.get_or_insert(Stopping::Cancel);
                guard.signal(Signal::SIGKILL);
            },
            _ = tokio::time::sleep_until(s.kill_at.unwrap_or(far)), if s.kill_at.is_some() && running => {
                guard.signal(Signal::SIGKILL);
                s.kill_at = None;
            },
            _ = tokio::time::sleep_until(s.drain_until.unwrap_or(far)), if s.drain_until.is_some() => {
                // Something outside the group holds the pipes; stop reading.
                out.done = true;
                err.done = true;
            },
        }
    }
    guard.disarm();
    out.finish(log, lines).map_err(log_err)?;
    err.finish(log, lines).map_err(log_err)?;
    Ok(Ended {
        status: status.expect("the loop ends only once the child has exited"),
        stopping: s.stopping,
        captured,
    })
}

/// Runs one command to its end. `lines`, if given, receives output lines as they
/// arrive; a slow receiver loses lines rather than slowing the child.
pub async fn run(
    spec: &CommandSpec,
    cancel: &CancellationToken,
    lines: Option<mpsc::Sender<Line>>,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let log_err = |source| RunError::Log {
        path: spec.log_path.clone(),
        source,
    };
    let mut log = CappedLog::create(&spec.log_path, spec.log_cap).map_err(log_err)?;
    if spec.log_frame {
        let what = match &spec.program {
            Program::Shell(line) => line.clone(),
            other => other.describe(),
        };
        log.preamble(&format!("$ {}\n", what.replace('\n', "; ")))
            .map_err(log_err)?;
    }
    if !spec.cwd.is_dir() {
        return Err(RunError::NoCwd {
            program: spec.program.describe(),
            cwd: spec.cwd.clone(),
        });
    }
    let mut cmd = match command(spec) {
        Ok(c) => c,
        Err(why) => return finish_failed(spec, log, started, why),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return finish_failed(spec, log, started, spawn_error(spec, &e)),
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
    let ended = pump(spec, &mut child, cancel, &mut guard, &mut log, &lines).await?;
    let outcome = match ended.stopping {
        Some(Stopping::Timeout) => Outcome::TimedOut,
        Some(Stopping::Cancel) => Outcome::Canceled,
        None => match (
            ended.status.code(),
            std::os::unix::process::ExitStatusExt::signal(&ended.status),
        ) {
            (Some(c), _) => Outcome::Exited(c),
            (None, Some(s)) => Outcome::Signaled(s),
            (None, None) => Outcome::Signaled(0),
        },
    };
    let (output_bytes, log_truncated, recent) = log.finish().map_err(log_err)?;
    let duration = started.elapsed();
    if spec.log_frame {
        use std::io::Write as _;
        let mut f = crate::files::append(&spec.log_path).map_err(log_err)?;
        writeln!(f, "[orch: {outcome} after {:.1} s]", duration.as_secs_f64()).map_err(log_err)?;
    }
    Ok(Report {
        outcome,
        duration,
        log_path: spec.log_path.clone(),
        output_bytes,
        log_truncated,
        tail: last_lines(&recent, TAIL_LINES),
        stdout: ended.captured,
    })
}

/// The child's command: its program, working directory, environment and pipes, in its
/// own process group.
fn command(spec: &CommandSpec) -> Result<tokio::process::Command, String> {
    let env = spec.env.resolve();
    // Spawned by its path, a child is started without copying orch's memory map
    // (`posix_spawn`, not `fork`): 64 agents or gates at once on 2 cores spent a tenth
    // of a second on the copies. A name not found is left to the spawn, which says so.
    let program = |name: &str| {
        let found = crate::runner::on_path(name, &env, &spec.cwd);
        let mut c = tokio::process::Command::new(found.as_deref().unwrap_or(name.as_ref()));
        c.arg0(name);
        c
    };
    let mut cmd = match &spec.program {
        Program::Argv(argv) if argv.is_empty() => return Err("the command is empty".into()),
        Program::Argv(argv) => {
            let mut c = program(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        Program::Shell(line) => {
            let mut c = program("sh");
            c.arg("-c").arg(line);
            c
        }
    };
    let stdin = if spec.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.current_dir(&spec.cwd)
        .env_clear()
        .envs(env)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    Ok(cmd)
}

/// Why a spawn failed, naming the program and, if it was not found, the `PATH`.
fn spawn_error(spec: &CommandSpec, e: &std::io::Error) -> String {
    let program = match &spec.program {
        Program::Argv(a) => a[0].clone(),
        Program::Shell(_) => "sh".into(),
    };
    if e.kind() != std::io::ErrorKind::NotFound {
        return format!("cannot start `{program}`: {e}");
    }
    let path = spec
        .env
        .resolve()
        .into_iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v)
        .unwrap_or_else(|| "(PATH is not set for the child)".into());
    format!("program `{program}` not found (PATH={path})")
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
pub(crate) fn write_lines(
    log: &mut CappedLog,
    pending: &mut Vec<u8>,
    bytes: &[u8],
) -> std::io::Result<()> {
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

pub(crate) fn feed_lines(
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

pub(crate) fn flush_partial(
    lines: &Option<mpsc::Sender<Line>>,
    stream: Stream,
    partial: &mut Vec<u8>,
) {
    if let Some(tx) = lines
        && !partial.is_empty()
    {
        let text = String::from_utf8_lossy(partial).into_owned();
        partial.clear();
        let _ = tx.try_send(Line { stream, text });
    }
}
