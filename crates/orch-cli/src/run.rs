//! `orch run`, `orch run list`, `orch run show`, and the scripted agent.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use orch_core::TaskStatus;
use orch_core::config::Config;
use orch_core::run::{AttemptState, RunEvent, RunId, RunSnapshot, RunState};
use orch_engine::{Engine, EngineConfig, RunSummary};
use orch_git::Git;
use orch_store::Store;
use orch_validate::CancellationToken;
use serde_json::json;

use crate::cli::{RunArgs, RunCommand};
use crate::commands::Ctx;
use crate::config;
use crate::error::BadInput;
use crate::output;
use crate::repo::Repo;

/// The exit code of a run in which some claimed task did not end `done` (failed,
/// blocked, or released to the backlog by a halt).
pub const EXIT_SOME_FAILED: u8 = 3;
/// The exit code when the integration ref was moved outside orch (it holds work no
/// one validated).
pub const EXIT_REF_MOVED: u8 = 1;
/// The exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Applies `orch run` flags on top of the loaded configuration.
fn apply_flags(c: &mut Config, a: &RunArgs) {
    if let Some(n) = a.concurrency {
        c.run.concurrency = n;
    }
    if let Some(m) = a.mode {
        c.run.mode = m;
    }
    if let Some(p) = a.agent {
        c.agent.preset = p;
        c.agent.command.clear();
    }
    if let Some(cmd) = &a.agent_cmd {
        c.agent.command = cmd.clone();
    }
    if let Some(b) = &a.base {
        c.run.base = b.clone();
    }
    if !a.validate.is_empty() {
        c.validate.worker = a.validate.clone();
    }
    if !a.integrate_validate.is_empty() {
        c.validate.integration = a.integrate_validate.clone();
    }
    if let Some(n) = a.max_attempts {
        c.policy.max_attempts = n;
    }
    if let Some(p) = a.on_conflict {
        c.policy.on_conflict = p;
    }
    if let Some(p) = &a.planner {
        c.run.planner = p.clone();
    }
}

/// A run id from the clock, e.g. `r20261124-125320`, made unique against the store.
async fn new_run_id(store: &Store) -> Result<RunId> {
    let now = orch_core::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
    .to_string();
    // 2026-11-24T12:53:20.123Z -> 20261124-125320
    let digits: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    let base = format!("r{}-{}", &digits[..8], &digits[8..14]);
    let taken: Vec<String> = store.runs().await?.into_iter().map(|r| r.id.0).collect();
    let mut id = base.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    Ok(RunId(id))
}

/// One line of progress for an event, or nothing for the quiet ones.
fn progress_line(e: &RunEvent) -> Option<String> {
    match e {
        RunEvent::TaskMoved { task, .. } => Some(format!("#{task} {}", e.reason())),
        RunEvent::AttemptMoved { .. }
        | RunEvent::RunMoved { .. }
        | RunEvent::HeadAdvanced { .. }
        | RunEvent::Resumed { .. }
        | RunEvent::PlannerFallback { .. } => Some(e.reason()),
        RunEvent::CleanupDone { error: Some(_), .. } => Some(e.reason()),
        _ => None,
    }
}

/// On a terminal: a block of lines, one per attempt with its state and how long it has
/// been in it, redrawn in place; finished attempts scroll above it as plain lines.
async fn live_view(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<RunEvent>,
    started: std::time::Instant,
) {
    use std::collections::BTreeMap;
    use std::io::Write;
    let mut live: BTreeMap<String, (String, std::time::Instant)> = BTreeMap::new();
    let mut drawn = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let mut scroll = Vec::new();
        tokio::select! {
            e = rx.recv() => match e {
                None => break,
                Some(e) => {
                    if let RunEvent::AttemptMoved { attempt, to, .. } = &e {
                        let name = attempt.to_string();
                        if to.is_terminal() {
                            live.remove(&name);
                            let what = match to {
                                AttemptState::Failed(k) => format!("failed: {k}"),
                                other => format!("{:?}", other.phase()).to_lowercase(),
                            };
                            scroll.push(format!("[{:>6.1}s] {name:<14} {what}", started.elapsed().as_secs_f32()));
                        } else {
                            live.insert(name, (format!("{:?}", to.phase()).to_lowercase(), std::time::Instant::now()));
                        }
                    } else if let RunEvent::HeadAdvanced { attempt, to, .. } = &e {
                        let short: String = to.0.chars().take(12).collect();
                        scroll.push(format!("[{:>6.1}s] {:<14} merged; the integration branch is now at {short}", started.elapsed().as_secs_f32(), attempt.to_string()));
                    } else if let RunEvent::RunMoved { .. } = &e {
                        scroll.push(format!("[{:>6.1}s] {}", started.elapsed().as_secs_f32(), e.reason()));
                    }
                }
            },
            _ = tick.tick() => {}
        }
        let mut err = std::io::stderr().lock();
        // Move up over the block drawn last time and clear it.
        for _ in 0..drawn {
            let _ = write!(err, "\x1b[1A\x1b[2K");
        }
        for line in scroll {
            let _ = writeln!(err, "{line}");
        }
        for (name, (state, since)) in &live {
            let _ = writeln!(
                err,
                "  {name:<14} {state:<12} {:>5.0}s",
                since.elapsed().as_secs_f32()
            );
        }
        drawn = live.len();
        let _ = err.flush();
    }
}

/// What `start` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new run.
    New,
    /// Resume this run, or the newest interrupted one.
    Resume(Option<String>),
}

/// The interrupted runs (`orch_engine::interrupted_runs`), newest first.
pub async fn interrupted_runs(store: &Store) -> Result<Vec<orch_store::RunInfo>> {
    let runs = store.runs().await?;
    let ids = orch_engine::interrupted_runs(store, &runs).await?;
    Ok(runs.into_iter().filter(|r| ids.contains(&r.id)).collect())
}

/// Starts (or resumes) a run on `repo` and prints its progress and summary. Returns
/// the exit code and the summary.
pub async fn start(
    ctx: &Ctx,
    args: &RunArgs,
    repo: &Repo,
    store: Store,
    target: Target,
) -> Result<(u8, RunSummary)> {
    let resume = match &target {
        Target::New => {
            let stuck = interrupted_runs(&store).await?;
            if let Some(r) = stuck.first().filter(|_| !args.new) {
                let held = RunSnapshot::from_events(&store.run_events(&r.id).await?)
                    .tasks
                    .values()
                    .filter(|s| **s == TaskStatus::InProgress)
                    .count();
                return Err(BadInput(format!(
                    "run {} was interrupted (its orch stopped while it was {}; it holds {held} task(s)); \
                     resume it with `orch run --resume` (or `orch run resume {}`), \
                     or start another run beside it with `orch run --new`",
                    r.id,
                    format!("{:?}", r.state).to_lowercase(),
                    r.id
                ))
                .into());
            }
            None
        }
        Target::Resume(Some(id)) => Some(store.run(&RunId(id.clone())).await?.id),
        Target::Resume(None) => Some(
            interrupted_runs(&store)
                .await?
                .into_iter()
                .next()
                .map(|r| r.id)
                .ok_or_else(|| {
                    BadInput(
                        "no interrupted run to resume: every run has finished or is being driven; `orch run list` shows them".into(),
                    )
                })?,
        ),
    };
    let mut cfg = config::load(&repo.root, &ctx.set)?.config;
    apply_flags(&mut cfg, args);
    if cfg.agent.command.trim().is_empty()
        && let Some(t) = orch_engine::presets::template(cfg.agent.preset)
    {
        cfg.agent.command = t.to_owned();
    }
    // A resumed run uses the agent command it was started with.
    if cfg.agent.command.trim().is_empty() && resume.is_none() {
        return Err(BadInput(
            "no agent to run: set agent.preset (claude, codex, gemini, aider or opencode) or \
             agent.command in orch.toml, or pass --agent-cmd CMD (a command run with sh -c that \
             may use {prompt_file}, {worktree}, {task_id} and {attempt})"
                .into(),
        )
        .into());
    }
    let git = Git::open(&repo.root)?;
    let worktree_root = if cfg.worktrees.root.trim().is_empty() {
        orch_git::default_worktree_root(git.workdir())
            .context("cannot find a data directory for worktrees: set HOME or XDG_DATA_HOME, or worktrees.root")?
    } else {
        PathBuf::from(&cfg.worktrees.root)
    };
    let run = match &resume {
        Some(r) => r.clone(),
        None => new_run_id(&store).await?,
    };
    let agent_command = cfg.agent.command.clone();
    let engine = Engine::new(
        store.clone(),
        git,
        EngineConfig {
            config: cfg,
            worktree_root,
            artifacts_root: repo.orch_dir().join("artifacts"),
            agent_command,
            only_tasks: args.tasks.clone(),
            fetch_timeout: Duration::from_secs(30),
        },
    );
    let cancel = CancellationToken::new();
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    watch_signals(&run, cancel.clone(), interrupted.clone())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RunEvent>();
    let json = ctx.json;
    let terminal = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let printer = tokio::spawn(async move {
        if terminal {
            live_view(&mut rx, started).await;
        } else {
            while let Some(e) = rx.recv().await {
                if let Some(line) = progress_line(&e) {
                    eprintln!("{line}");
                }
            }
        }
    });
    let summary = if resume.is_some() {
        eprintln!("orch: resuming run {run}");
        engine.resume(run, cancel, Some(tx)).await?
    } else {
        eprintln!("orch: run {run} starting");
        engine.run(run, cancel, Some(tx)).await?
    };
    let _ = printer.await;
    for n in &summary.notes {
        eprintln!("orch: {n}");
    }
    print_summary(&summary, json)?;
    let code = if !summary.head_is_validated() {
        EXIT_REF_MOVED
    } else if interrupted.load(std::sync::atomic::Ordering::SeqCst)
        || summary.state == RunState::Canceled
    {
        EXIT_INTERRUPTED
    } else if summary
        .tasks
        .iter()
        // Failed, blocked, or released by a halt: not every claimed task is done.
        .any(|(_, s)| *s != TaskStatus::Done)
    {
        EXIT_SOME_FAILED
    } else {
        0
    };
    Ok((code, summary))
}

/// SIGINT (Ctrl-C), SIGTERM (`kill`, `timeout`) and SIGHUP (a closed terminal) all
/// drain the run; a second one stops the run's processes at once and exits. The run's
/// agents never outlive orch (only `kill -9` can do that, and a resume covers it).
fn watch_signals(
    run: &orch_core::run::RunId,
    cancel: CancellationToken,
    interrupted: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut streams = Vec::new();
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::hangup(), "SIGHUP"),
    ] {
        streams.push((signal(kind).context("installing a signal handler")?, name));
    }
    let run = run.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let next = futures_lite_select(&mut streams).await;
            interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
            if first {
                first = false;
                eprintln!(
                    "orch: {next}: draining (no new claims, stopping agents); send it again to kill at once"
                );
                cancel.cancel();
            } else {
                eprintln!("orch: {next} again: stopping the run's processes now");
                orch_engine::kill_run_processes(&run).await;
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
        }
    });
    Ok(())
}

/// The name of the first of `streams` to deliver a signal.
async fn futures_lite_select(
    streams: &mut [(tokio::signal::unix::Signal, &'static str)],
) -> &'static str {
    let [(a, an), (b, bn), (c, cn)] = streams else {
        unreachable!("three signals are watched")
    };
    tokio::select! {
        _ = a.recv() => an,
        _ = b.recv() => bn,
        _ = c.recv() => cn,
    }
}

fn print_summary(s: &RunSummary, json: bool) -> Result<()> {
    let count = |st: TaskStatus| s.tasks.iter().filter(|(_, x)| *x == st).count();
    if json {
        return output::print_json(&json!({
            "run": s.run.0,
            "state": s.state,
            "integration_branch": s.integration_branch,
            "head": s.head.as_ref().map(|h| h.0.clone()),
            "validated_head": s.validated_head.as_ref().map(|h| h.0.clone()),
            "head_is_validated": s.head_is_validated(),
            "tasks": s.tasks.iter().map(|(t, st)| json!({ "id": t.0, "status": st })).collect::<Vec<_>>(),
            "artifacts": s.artifacts,
            "notes": s.notes,
        }));
    }
    let state = match s.state {
        RunState::Completed => "completed",
        RunState::Canceled => "canceled",
        RunState::Halted => "halted",
        _ => "ended",
    };
    println!("Run {} {state}.", s.run);
    println!(
        "  done: {}   failed: {}   blocked: {}   back in the backlog: {}",
        count(TaskStatus::Done),
        count(TaskStatus::Failed),
        count(TaskStatus::Blocked),
        count(TaskStatus::Backlog)
    );
    let head = s
        .head
        .as_ref()
        .map(|h| h.0.chars().take(12).collect::<String>())
        .unwrap_or_default();
    println!("  integration branch: {} at {head}", s.integration_branch);
    if !s.head_is_validated() {
        let validated = s
            .validated_head
            .as_ref()
            .map_or("nothing", |h| h.0.as_str());
        println!(
            "  WARNING: {} was moved outside orch: it points at {}, but the last commit this run validated is {validated}; do not merge it without checking",
            s.integration_branch,
            s.head.as_ref().map_or("nothing", |h| h.0.as_str()),
        );
    }
    println!("  logs: {}", s.artifacts.display());
    Ok(())
}

/// `orch run list` and `orch run show`.
pub async fn inspect(ctx: &Ctx, cmd: &RunCommand, store: &Store) -> Result<()> {
    match cmd {
        RunCommand::List => {
            let runs = store.runs().await?;
            let stuck = orch_engine::interrupted_runs(store, &runs).await?;
            if ctx.json {
                return output::print_json(
                    &runs
                        .iter()
                        .map(|r| {
                            json!({
                                "id": r.id.0,
                                "state": r.state,
                                "interrupted": stuck.contains(&r.id),
                                "created_at": r.created_at.to_string(),
                            })
                        })
                        .collect::<Vec<_>>(),
                );
            }
            if runs.is_empty() {
                println!("No runs yet. Start one with `orch run`.");
            }
            for r in runs {
                let mut state = format!("{:?}", r.state).to_lowercase();
                if stuck.contains(&r.id) {
                    state.push_str(" (interrupted: `orch run resume` resumes it)");
                }
                println!("{}  {:<10} {}", r.id, r.created_at, state);
            }
        }
        RunCommand::Resume { .. } => unreachable!("resume runs through start"),
        RunCommand::Cancel { run } => {
            let id = RunId(run.clone());
            let info = store.run(&id).await?;
            if matches!(
                info.state,
                RunState::Completed | RunState::Canceled | RunState::Halted
            ) {
                return Err(BadInput(
                    format!("run {run} has already ended ({:?})", info.state).to_lowercase(),
                )
                .into());
            }
            store
                .post_control(&id, orch_store::ControlKind::CancelRun)
                .await?;
            if ctx.json {
                return output::print_json(&json!({ "run": run, "cancel": "requested" }));
            }
            if orch_engine::interrupted_runs(store, std::slice::from_ref(&info))
                .await?
                .contains(&id)
            {
                println!(
                    "cancel requested, but run {run} is interrupted (no orch drives it): it takes effect when you resume it with `orch run resume {run}`"
                );
            } else {
                println!(
                    "cancel requested: run {run} stops claiming, stops its agents and releases its tasks"
                );
            }
        }
        RunCommand::Show { run } => {
            let id = RunId(run.clone());
            let info = store.run(&id).await?;
            let interrupted = orch_engine::interrupted_runs(store, std::slice::from_ref(&info))
                .await?
                .contains(&id);
            let driven_by = store
                .lease(&id)
                .await?
                .filter(|_| !interrupted && !info.state.is_terminal())
                .map(|l| l.owner);
            let snap = RunSnapshot::from_events(&store.run_events(&id).await?);
            let attempts = store.attempts(&id).await?;
            let validations = store.validations(&id).await?;
            let merges = store.merges(&id).await?;
            let proposals = store.proposals(&id).await?;
            if ctx.json {
                return output::print_json(&json!({
                    "id": info.id.0,
                    "state": info.state,
                    "interrupted": interrupted,
                    "driven_by": driven_by,
                    "head": snap.head.as_ref().map(|h| h.0.clone()),
                    "tasks": snap.tasks.iter().map(|(t, s)| json!({ "id": t.0, "status": s })).collect::<Vec<_>>(),
                    "attempts": attempts.iter().map(|a| json!({
                        "attempt": a.attempt.to_string(),
                        "state": a.state,
                        "branch": a.branch,
                        "base": a.base,
                        "head": a.head,
                        "merge": a.merge,
                        "failure": a.failure,
                    })).collect::<Vec<_>>(),
                    "validations": validations.iter().map(|v| json!({
                        "attempt": v.attempt.to_string(),
                        "stage": v.stage,
                        "position": v.position,
                        "command": v.record.command,
                        "outcome": v.record.outcome,
                        "exit_code": v.record.exit_code,
                        "duration_ms": v.record.duration_ms,
                        "log": v.record.log_path,
                        "tail": v.record.tail,
                    })).collect::<Vec<_>>(),
                    "merges": merges.iter().map(|m| json!({
                        "attempt": m.attempt.to_string(),
                        "onto": m.onto,
                        "commit": m.commit,
                        "conflicts": m.conflicts,
                    })).collect::<Vec<_>>(),
                    "proposals": proposals.iter().map(|p| json!({
                        "task": p.task.map(|t| t.0),
                        "proposal": p.proposal,
                        "verdict": p.verdict,
                        "reason": p.reason,
                    })).collect::<Vec<_>>(),
                }));
            }
            println!(
                "Run {} ({})",
                info.id,
                format!("{:?}", info.state).to_lowercase()
            );
            if interrupted {
                println!("  interrupted: no orch drives it; `orch run resume {id}` goes on");
            }
            if let Some(owner) = &driven_by {
                println!("  driven by {owner}");
            }
            if let Some(h) = &snap.head {
                println!("  integration head: {h}");
            }
            for (a, r) in &snap.attempts {
                let state = match &r.state {
                    AttemptState::Failed(k) => format!("failed: {k}"),
                    other => format!("{:?}", other.phase()).to_lowercase(),
                };
                println!("  {:<14} {state}", a.to_string());
                for v in validations.iter().filter(|v| v.attempt == *a) {
                    println!(
                        "      {} #{}: `{}` {} ({} ms)",
                        v.stage,
                        v.position,
                        v.record.command,
                        v.record.outcome,
                        v.record.duration_ms
                    );
                }
            }
            let rejected = proposals.iter().filter(|p| p.verdict == "rejected").count();
            if !proposals.is_empty() {
                println!(
                    "  planner: {} proposals, {rejected} rejected",
                    proposals.len()
                );
            }
        }
    }
    Ok(())
}

/// The scripted agent: runs the first ```sh block of the prompt file with `sh`, in
/// the current directory. Exits with the script's code.
pub fn scripted_agent() -> Result<u8> {
    let prompt_path = std::env::var("ORCH_PROMPT_FILE")
        .context("ORCH_PROMPT_FILE is not set: the scripted agent runs under orch")?;
    let prompt =
        std::fs::read_to_string(&prompt_path).with_context(|| format!("reading {prompt_path}"))?;
    let script = prompt
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or_else(|| {
            BadInput(format!(
                "{prompt_path} has no ```sh block for the scripted agent to run"
            ))
        })?;
    println!("scripted agent: running the task's script");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .context("running sh")?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

/// `orch events`: the audit log, optionally followed.
pub async fn events(ctx: &Ctx, args: &crate::cli::EventsArgs, store: &Store) -> Result<()> {
    let mut filter = orch_store::EventFilter {
        task: args.task,
        run: args.run.clone(),
        ..Default::default()
    };
    loop {
        let events = store.events(&filter).await?;
        for e in &events {
            if ctx.json {
                println!("{}", serde_json::to_string(&output::EventJson::from(e))?);
            } else {
                let run = e
                    .run_id
                    .as_deref()
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default();
                println!("{}  {:<18} {}{run}", e.at, e.kind, e.reason);
            }
        }
        if let Some(last) = events.last() {
            filter.after_seq = Some(last.seq);
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `orch logs`: prints an attempt's logs from its artifacts directory.
pub async fn logs(repo: &Repo, args: &crate::cli::LogsArgs, store: &Store) -> Result<()> {
    let root = repo.orch_dir().join("artifacts");
    let run = match &args.run {
        Some(r) => r.clone(),
        None => {
            // The newest run with artifacts for this task.
            let mut found = None;
            for r in store.runs().await? {
                if root.join(&r.id.0).join(args.task.0.to_string()).is_dir() {
                    found = Some(r.id.0);
                    break;
                }
            }
            found.ok_or_else(|| {
                BadInput(format!(
                    "no run has logs for task {}; `orch run list` shows the runs",
                    args.task
                ))
            })?
        }
    };
    let task_dir = root.join(&run).join(args.task.0.to_string());
    let attempt = match args.attempt {
        Some(n) => n,
        None => std::fs::read_dir(&task_dir)
            .map_err(|_| BadInput(format!("run {run} has no logs for task {}", args.task)))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .max()
            .ok_or_else(|| BadInput(format!("run {run} has no attempts of task {}", args.task)))?,
    };
    let dir = task_dir.join(attempt.to_string());
    if !dir.is_dir() {
        return Err(BadInput(format!(
            "task {} has no attempt {attempt} in run {run}",
            args.task
        ))
        .into());
    }
    let list = || -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                match args.stage {
                    None => true,
                    Some(crate::cli::LogStage::Agent) => name == "agent.log",
                    Some(crate::cli::LogStage::Worker) => name.starts_with("worker-"),
                    Some(crate::cli::LogStage::Integration) => name.starts_with("integration-"),
                }
            })
            .collect();
        // agent, then worker-1.., then integration-1..
        files.sort_by_key(|p| {
            let n = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            let rank = if n == "agent.log" {
                0
            } else if n.starts_with("worker-") {
                1
            } else {
                2
            };
            (rank, n)
        });
        Ok(files)
    };
    if list()?.is_empty() && !args.follow {
        return Err(BadInput(format!(
            "no such log for task {} attempt {attempt} in run {run}",
            args.task
        ))
        .into());
    }
    let mut offsets: std::collections::HashMap<PathBuf, u64> = std::collections::HashMap::new();
    let mut last_header: Option<PathBuf> = None;
    loop {
        let mut grew = false;
        for f in list()? {
            let seen = offsets.get(&f).copied().unwrap_or(0);
            let bytes = std::fs::read(&f)?;
            if (bytes.len() as u64) > seen {
                if last_header.as_ref() != Some(&f) {
                    println!("==> {} <==", f.display());
                    last_header = Some(f.clone());
                }
                print!("{}", String::from_utf8_lossy(&bytes[seen as usize..]));
                offsets.insert(f, bytes.len() as u64);
                grew = true;
            }
        }
        if !args.follow {
            return Ok(());
        }
        let ended = store
            .run(&RunId(run.clone()))
            .await
            .map(|r| {
                matches!(
                    r.state,
                    RunState::Completed | RunState::Canceled | RunState::Halted
                )
            })
            .unwrap_or(true);
        if ended && !grew {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `orch cleanup`: removes what no live attempt uses; keeps integration branches, and
/// reports what it kept and why. The core plans it; the engine carries it out.
pub async fn cleanup(
    ctx: &Ctx,
    args: &crate::cli::CleanupArgs,
    repo: &Repo,
    store: &Store,
) -> Result<()> {
    let cfg = config::load(&repo.root, &ctx.set)?.config;
    let opts = orch_engine::cleanup::CleanupOptions {
        worktree_root: cfg.worktrees.root.clone(),
        keep_failed: cfg.worktrees.keep_failed,
        force: args.force,
    };
    if args.dry_run {
        let p = orch_engine::cleanup::preview(store, &repo.root, &opts).await?;
        return output::cleanup::print_preview(&p, ctx.json);
    }
    let r = orch_engine::cleanup::apply(store, &repo.root, &opts).await?;
    output::cleanup::print_report(&r, ctx.json)
}
