//! `orch logs --task ID [--attempt N] [--stage S] [--follow]`: an attempt's agent and
//! gate logs from its artifacts directory (filled from the store for attempts that
//! ran on workers on other machines).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use orch_engine::core::run::RunId;
use orch_engine::files;
use orch_store::Store;

use crate::cli::{LogStage, LogsArgs};
use crate::ctx::Ctx;
use crate::error::BadInput;
use crate::output;

/// Prints (and with `--follow`, keeps printing) an attempt's logs.
pub(super) async fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<()> {
    let repo = ctx.open().await?;
    let store = repo.store();
    let root = repo.artifacts();
    // Attempts that ran on workers elsewhere: their logs come from the store.
    repo.fetch_logs(args.run.as_deref(), args.task()).await?;
    let run = match &args.run {
        Some(r) => r.clone(),
        None => newest_run_with_logs(store, &root, args).await?,
    };
    let task_dir = root.join(&run).join(args.task().0.to_string());
    let attempt = match args.attempt {
        Some(n) => n,
        None => newest_attempt(&task_dir, &run, args)?,
    };
    let dir = task_dir.join(attempt.to_string());
    if !dir.is_dir() {
        let task = args.task();
        return Err(BadInput(format!("task {task} has no attempt {attempt} in run {run}")).into());
    }
    if log_files(&dir, args.stage)?.is_empty() && !args.follow {
        let task = args.task();
        return Err(BadInput(format!(
            "no such log for task {task} attempt {attempt} in run {run}"
        ))
        .into());
    }
    let mut offsets: HashMap<PathBuf, u64> = HashMap::new();
    let mut last_header: Option<PathBuf> = None;
    loop {
        let grew = print_new(&root, &dir, args, &mut offsets, &mut last_header)?;
        if !args.follow {
            return Ok(());
        }
        let ended = store
            .run(&RunId(run.clone()))
            .await
            .map(|r| r.state.is_terminal())
            .unwrap_or(true);
        if ended && !grew {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The newest run with artifacts for the task.
async fn newest_run_with_logs(store: &Store, root: &Path, args: &LogsArgs) -> Result<String> {
    for r in store.runs().await? {
        if root.join(&r.id.0).join(args.task().0.to_string()).is_dir() {
            return Ok(r.id.0);
        }
    }
    Err(BadInput(format!(
        "no run has logs for task {}; `orch run list` shows the runs",
        args.task()
    ))
    .into())
}

fn newest_attempt(task_dir: &Path, run: &str, args: &LogsArgs) -> Result<u32> {
    let task = args.task();
    std::fs::read_dir(task_dir)
        .map_err(|_| BadInput(format!("run {run} has no logs for task {task}")))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .max()
        .ok_or_else(|| BadInput(format!("run {run} has no attempts of task {task}")).into())
}

/// The attempt's logs of `stage` (all when `None`): agent, then worker-1.., then
/// integration-1...
fn log_files(dir: &Path, stage: Option<LogStage>) -> Result<Vec<PathBuf>> {
    let name = |p: &PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .filter(|p| {
            let n = name(p);
            match stage {
                None => true,
                Some(LogStage::Agent) => n == "agent.log",
                Some(LogStage::Worker) => n.starts_with("worker-"),
                Some(LogStage::Integration) => n.starts_with("integration-"),
            }
        })
        .collect();
    files.sort_by_key(|p| {
        let n = name(p);
        let rank = match n.as_str() {
            "agent.log" => 0,
            n if n.starts_with("worker-") => 1,
            _ => 2,
        };
        (rank, n)
    });
    Ok(files)
}

/// The offset of a log that was refused (not a regular file): it is not looked at again.
const REFUSED: u64 = u64::MAX;

/// Prints what the logs gained since last time; true if anything did.
/// The agent's log is shown as a transcript (unless `--raw`): whole lines only, so a
/// line still being written waits for the next look. Only regular files under the
/// artifacts root are read (no link followed): a link an agent planted is named and
/// skipped.
fn print_new(
    root: &Path,
    dir: &Path,
    args: &LogsArgs,
    offsets: &mut HashMap<PathBuf, u64>,
    last_header: &mut Option<PathBuf>,
) -> Result<bool> {
    let mut grew = false;
    for f in log_files(dir, args.stage)? {
        let seen = offsets.get(&f).copied().unwrap_or(0);
        if seen == REFUSED {
            continue;
        }
        let bytes = match files::read_under(root, &f, seen, u64::MAX) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("orch: not shown: {e}");
                offsets.insert(f, REFUSED);
                continue;
            }
        };
        let transcript = !args.raw && f.file_name().is_some_and(|n| n == "agent.log");
        let new = if transcript {
            bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
        } else {
            bytes.len()
        };
        if seen == 0 && bytes.is_empty() && !args.follow {
            println!("==> {} <==", f.display());
            println!("(empty: nothing was printed)");
            continue;
        }
        if new == 0 {
            continue;
        }
        if last_header.as_ref() != Some(&f) {
            println!("==> {} <==", f.display());
            *last_header = Some(f.clone());
        }
        let text = String::from_utf8_lossy(&bytes[..new]);
        if transcript {
            for l in text
                .lines()
                .filter_map(output::transcript::render)
                .flatten()
            {
                println!("{l}");
            }
        } else {
            print!("{text}");
        }
        offsets.insert(f, seen + new as u64);
        grew = true;
    }
    Ok(grew)
}
