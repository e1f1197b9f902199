//! `cargo xtask bench workers` (needs `ORCH_TEST_DATABASE_URL`): the worker path's
//! overhead and its scaling, with the release build, on PostgreSQL and a bare remote.
//!
//! - Overhead: the same trivial tasks run by a local run, then by a coordinator and
//!   one worker (claim, fetch, push, post on top), both at concurrency 1 with their
//!   worktree pools; the ratio of their wall times (goal: ≤ 1.5×).
//! - Scaling: agents that sleep 5 s, run by 1 and then 3 workers; tasks per minute of
//!   each, and their ratio (near-linear: close to 3).

use std::time::Instant;

use anyhow::{Context, Result, ensure};

use crate::workers::Cluster;

const TRIVIAL: usize = 12;
const SLEEPY: usize = 6;

fn cluster(tmp: &std::path::Path, tag: &str) -> Result<Cluster> {
    let admin = std::env::var("ORCH_TEST_DATABASE_URL")
        .context("cargo xtask bench workers needs ORCH_TEST_DATABASE_URL (a PostgreSQL server)")?;
    let orch = crate::e2e::build_orch(true)?;
    let name = format!("orch_bench_{tag}_{}", std::process::id());
    Cluster::new(&tmp.join(tag), orch, &admin, &name)
}

/// Seconds for `tasks` tasks running `agent`, with `workers` workers (0: a local run).
fn timed(
    tmp: &std::path::Path,
    tag: &str,
    tasks: usize,
    agent: &str,
    workers: usize,
) -> Result<f64> {
    let mut c = cluster(tmp, tag)?;
    let executors = if workers == 0 { "local" } else { "workers" };
    let concurrency = workers.max(1).to_string();
    c.env = vec![
        ("ORCH_RUN__EXECUTORS".into(), executors.into()),
        ("ORCH_RUN__CONCURRENCY".into(), concurrency),
    ];
    c.clone_of("coord")?;
    c.ok("coord", &["init"])?;
    for i in 1..=tasks {
        c.ok("coord", &["task", "add", &format!("t{i}")])?;
    }
    let mut held = Vec::new();
    for w in 1..=workers {
        let name = format!("w{w}");
        c.clone_of(&name)?;
        held.push(c.spawn(&name, &["worker", "--name", &name])?);
    }
    let started = Instant::now();
    let out = c.ok("coord", &["run", "--agent-cmd", agent])?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        out.contains("completed"),
        "the run did not complete:\n{out}"
    );
    drop(held);
    Ok(secs)
}

/// Runs the benchmark and prints its figures.
pub fn run() -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("orch-bench-workers-")
        .tempdir()?;
    let t = tmp.path();
    let trivial = "echo \"$ORCH_TASK_ID\" > \"f$ORCH_TASK_ID.txt\"";
    let local = timed(t, "local", TRIVIAL, trivial, 0)?;
    let worker = timed(t, "one", TRIVIAL, trivial, 1)?;
    println!(
        "{TRIVIAL} trivial tasks at concurrency 1: local {local:.1}s ({:.2}s a task), one worker {worker:.1}s ({:.2}s a task): {:.2}x (goal: at most 1.5x); the worker path adds {:.0} ms a job",
        local / TRIVIAL as f64,
        worker / TRIVIAL as f64,
        worker / local,
        (worker - local) * 1000.0 / TRIVIAL as f64
    );
    let sleepy = "sleep 5; echo \"$ORCH_TASK_ID\" > \"f$ORCH_TASK_ID.txt\"";
    let one = timed(t, "scale1", SLEEPY, sleepy, 1)?;
    let three = timed(t, "scale3", SLEEPY, sleepy, 3)?;
    let per_min = |s: f64| SLEEPY as f64 * 60.0 / s;
    println!(
        "{SLEEPY} tasks of 5 s: 1 worker {:.1} tasks/min, 3 workers {:.1} tasks/min: {:.2}x (linear: 3x)",
        per_min(one),
        per_min(three),
        one / three
    );
    Ok(())
}
