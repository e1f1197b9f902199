//! `orch worker [--labels L,...] [--concurrency N] [--drain] [--name NAME]`: runs the
//! jobs coordinators post, printing a line per claim and result (JSON lines with
//! `--json`) until Ctrl-C or SIGTERM (the jobs it holds finish first) or, with
//! `--drain`, until the queue is empty.

use anyhow::Result;
use orch_engine::workers::{self, WorkerEvent, WorkerOptions};

use crate::cli::WorkerArgs;
use crate::ctx::Ctx;

/// Runs `orch worker`.
pub(super) async fn worker(ctx: &Ctx, args: &WorkerArgs) -> Result<()> {
    let repo = ctx.open().await?;
    let artifacts = repo.artifacts();
    let ecfg = repo.engine(vec![], true)?.config().clone();
    let name = args.name.clone().unwrap_or_else(workers::default_name);
    let opts = WorkerOptions {
        worktree_root: workers::worktree_root(&ecfg.worktree_root, &name),
        name,
        labels: args.labels.clone(),
        concurrency: usize::from(args.concurrency),
        drain: args.drain,
        config: ecfg.config,
        artifacts_root: artifacts,
    };
    let stop = workers::CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let name = opts.name.clone();
    if !ctx.json {
        eprintln!(
            "orch: worker {name} is taking jobs; Ctrl-C finishes the ones it holds and exits"
        );
    }
    let root = repo.root().to_path_buf();
    let store = repo.store().clone();
    let token = stop.clone();
    let run = tokio::spawn(async move { workers::run_worker(store, &root, opts, token, tx).await });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let json = ctx.json;
    let mut signaled = false;
    loop {
        tokio::select! {
            e = rx.recv() => match e {
                Some(e) => print(&e, json)?,
                None => break,
            },
            _ = tokio::signal::ctrl_c(), if !signaled => { signaled = true; stop.cancel(); }
            _ = term.recv(), if !signaled => { signaled = true; stop.cancel(); }
        }
    }
    let summary = run.await??;
    if json {
        println!(
            "{}",
            serde_json::json!({ "event": "exited", "summary": summary })
        );
    } else {
        eprintln!(
            "orch: worker {name} exits: {} results posted, {} jobs lost to an expired lease",
            summary.posted, summary.fenced
        );
    }
    Ok(())
}

fn print(e: &WorkerEvent, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(e)?);
        return Ok(());
    }
    match e {
        WorkerEvent::Claimed {
            job,
            run,
            attempt,
            took_over,
        } => {
            let from = took_over
                .as_ref()
                .map(|w| format!(" (taken over from {w}, whose lease ran out)"))
                .unwrap_or_default();
            println!("claimed job {job}: run {run}, {attempt}{from}");
        }
        WorkerEvent::Posted { job, outcome } => println!("posted job {job}: {outcome}"),
        WorkerEvent::Fenced { job } => {
            println!("dropped job {job}: its lease ran out and another worker holds it")
        }
        WorkerEvent::StoreDown { error } => {
            eprintln!("orch: the database cannot be reached ({error}); claiming nothing new")
        }
    }
    Ok(())
}
