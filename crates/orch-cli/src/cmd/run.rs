//! `orch run` and `orch run resume`: flags over the configuration, the engine started
//! with a [`RunHandle`], a reporter on its event stream, signals, the summary and the
//! exit code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use orch_engine::core::TaskStatus;
use orch_engine::core::config::Config;
use orch_engine::core::run::{CancelScope, RunId, RunState};
use orch_engine::run::setup::Target;
use orch_engine::{Repo, RunHandle, RunOptions, RunSummary};

use crate::cli::{RunArgs, RunCommand};
use crate::ctx::Ctx;
use crate::output;
use crate::reporter::{self, Mode};

/// The exit code of a run in which some claimed task did not end `done` (failed,
/// blocked, or released to the backlog by a halt). A task a person canceled is not a
/// failure.
pub const EXIT_SOME_FAILED: u8 = 3;
/// The exit code when the integration ref was moved outside orch (it holds work no
/// one validated).
pub const EXIT_REF_MOVED: u8 = 1;
/// The exit code after Ctrl-C (or SIGTERM, SIGHUP).
pub const EXIT_INTERRUPTED: u8 = 130;

/// `orch run [--resume]` and `orch run resume [RUN]`.
pub(super) async fn run(ctx: &Ctx, args: &RunArgs) -> Result<u8> {
    // What an agent starts and abandons (a `setsid` daemon) becomes orch's child, so
    // it is found and stopped when the run ends.
    let subreaper = orch_engine::become_subreaper();
    let mut repo = ctx.open().await?;
    let target = match &args.command {
        Some(RunCommand::Resume { run }) => Target::Resume(run.clone().map(RunId)),
        _ if args.resume => Target::Resume(None),
        _ => Target::New {
            beside_interrupted: args.new,
        },
    };
    let code = match start(ctx, args, &mut repo, target).await {
        Ok((code, _)) => Ok(code),
        Err(e) => match e.downcast_ref::<orch_engine::EngineError>() {
            Some(orch_engine::EngineError::NothingToClaim(idle)) => {
                output::run::print_idle(idle, ctx.json).map(|()| 0)
            }
            _ => Err(e),
        },
    };
    if subreaper {
        let left = tokio::task::spawn_blocking(|| {
            orch_engine::stop_orphans(std::time::Duration::from_secs(2))
        })
        .await
        .unwrap_or_default();
        if !left.is_empty() {
            eprintln!(
                "orch: stopped {} process(es) that agents left running: {left:?}",
                left.len()
            );
        }
    }
    repo.close().await?;
    code
}

/// Starts (or resumes) a run through the front door, reports its progress and prints
/// its summary. Returns the exit code and the summary.
pub(crate) async fn start(
    ctx: &Ctx,
    args: &RunArgs,
    repo: &mut Repo,
    target: Target,
) -> Result<(u8, RunSummary)> {
    apply_flags(repo.config_mut(), args);
    let opts = RunOptions::default()
        .tasks(args.tasks.clone())
        .target(target);
    // Nothing is created for a run that cannot start: no run, no branch.
    let run = repo.start(opts).await?;
    let interrupted = watch_signals(run.id(), run.handle())?;
    let mode = Mode::choose(args.json_events);
    let max_attempts = repo.config().policy.max_attempts.get();
    let reporting = reporter::spawn(run.handle(), mode, repo.store().clone(), max_attempts);
    if run.is_resume() {
        eprintln!("orch: resuming run {}", run.id());
    } else {
        eprintln!("orch: run {} starting", run.id());
    }
    let summary = run.drive().await;
    reporting.await.context("the progress reporter failed")?;
    let summary = summary?;
    for n in &summary.notes {
        eprintln!("orch: {n}");
    }
    if let Some(e) = &summary.land_error {
        eprintln!(
            "orch: the work stays on {}, not landed: {e}; `orch land` tries again",
            summary.integration_branch
        );
    }
    if mode == Mode::Json {
        // With --json-events, stdout is the event stream: the summary is its last line.
        output::run::print_summary_line(&summary)?;
    } else {
        output::run::print_summary(&summary, ctx.json)?;
        if !ctx.json {
            let attempts = repo.store().attempts(&summary.run).await?;
            output::run::print_failures(&summary, &attempts);
            print_next(&summary, repo.config().run.finish);
        }
    }
    Ok((
        exit_code(&summary, interrupted.load(Ordering::SeqCst)),
        summary,
    ))
}

/// The next step after a run that landed work on its line.
fn print_next(summary: &RunSummary, finish: orch_engine::core::config::Finish) {
    let review: Vec<String> = summary
        .tasks
        .iter()
        .filter(|(_, s)| *s == TaskStatus::Review)
        .map(|(t, _)| format!("#{t}"))
        .collect();
    if !review.is_empty() {
        println!(
            "  waiting for review: {}; next: orch review (then orch review approve ID, and orch run lands it)",
            review.join(", ")
        );
    }
    if !summary.tasks.iter().any(|(_, s)| *s == TaskStatus::Done) {
        return;
    }
    let next = match finish {
        orch_engine::core::config::Finish::Leave => {
            "orch status (what is on the line), then orch land (onto its target)"
        }
        _ => "orch status (where the line and its target stand)",
    };
    println!("  next: {next}");
}

fn exit_code(summary: &RunSummary, interrupted: bool) -> u8 {
    if !summary.head_is_validated() || summary.land_error.is_some() {
        EXIT_REF_MOVED
    } else if interrupted || summary.state == RunState::Canceled {
        EXIT_INTERRUPTED
    } else if summary.tasks.iter().any(|(_, s)| {
        !matches!(
            s,
            TaskStatus::Done | TaskStatus::Canceled | TaskStatus::Review
        )
    }) {
        // Failed, blocked, or released by a halt: not every claimed task is done (work
        // waiting for review is the person's turn, not a failure).
        EXIT_SOME_FAILED
    } else {
        0
    }
}

/// Applies `orch run` flags on top of the loaded configuration.
fn apply_flags(c: &mut Config, a: &RunArgs) {
    if a.watch {
        c.run.watch = true;
    }
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

/// SIGINT (Ctrl-C), SIGTERM (`kill`, `timeout`) and SIGHUP (a closed terminal) all
/// drain the run; a second one stops the run's processes at once and exits. The run's
/// agents never outlive orch (only `kill -9` can do that, and a resume covers it).
/// Returns whether a signal came.
fn watch_signals(run: &RunId, handle: &RunHandle) -> Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing a signal handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing a signal handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing a signal handler")?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let (run, handle, flag) = (run.clone(), handle.clone(), interrupted.clone());
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            };
            flag.store(true, Ordering::SeqCst);
            if first {
                first = false;
                eprintln!(
                    "orch: {name}: draining (no new claims, stopping agents); send it again to kill at once"
                );
                handle.cancel(CancelScope::Run);
            } else {
                eprintln!("orch: {name} again: stopping the run's processes now");
                orch_engine::kill_run_processes(&run).await;
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
        }
    });
    Ok(interrupted)
}
