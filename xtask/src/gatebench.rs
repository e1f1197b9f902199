//! `cargo xtask bench gate` (P3): landed tasks per hour through the integration queue,
//! at depth 1 against a speculative stack of depth 4, a batch of 4, and the default
//! (`run.integration = "auto"`, no other setting), on 40 scripted tasks whose
//! integration gate sleeps T and fails every candidate holding one of a seeded 10% of
//! "bad" tasks. It checks that exactly the good tasks land, and reports the measured
//! ratio beside the model's prediction, (1-p)(1-(1-p)^D)/p per gate time against 1-p.

use std::time::Instant;

use anyhow::{Result, ensure};

use crate::e2e::{Sandbox, build_orch, sh};

/// Tasks per run.
const TASKS: usize = 40;
/// Every tenth task (seeded by position) is bad.
const BAD_EVERY: usize = 10;

/// The agent writes `ok-<id>.txt`, or `bad-<id>.txt` for a task titled `bad ...`.
const AGENT: &str = "case \"$ORCH_TASK_TITLE\" in bad*) echo x > bad-$ORCH_TASK_ID.txt;; *) echo x > ok-$ORCH_TASK_ID.txt;; esac";

struct Measured {
    name: String,
    secs: f64,
    landed: usize,
    gate_runs: usize,
}

/// The queue's shape for one run: depth and batch set (with as many gate slots as
/// the depth), or `auto` on this machine's cores or on a number of gate slots (both
/// `validate.integration_slots` and `validate.slots`).
#[derive(Clone, Copy)]
enum Shape {
    Set(u32, u32),
    Auto(Option<u32>),
}

/// One run of the workload. Its bad tasks are tried once (no stale retries either):
/// each is found once.
fn one(orch: &std::path::Path, shape: Shape, gate_secs: f64) -> Result<Measured> {
    let s = Sandbox::new(orch)?;
    let (run, validate) = match shape {
        // A set shape gets the gate slots it stacks: this gate only waits.
        Shape::Set(d, b) => (
            format!("integration_depth = {d}\nintegration_batch = {b}\n"),
            format!("[validate]\nslots = {d}\n"),
        ),
        Shape::Auto(None) => (String::new(), String::new()),
        Shape::Auto(Some(n)) => (
            String::new(),
            format!("[validate]\nintegration_slots = {n}\nslots = {n}\n"),
        ),
    };
    s.config(&format!(
        "[run]\nconcurrency = 8\n{run}[policy]\nmax_attempts = 1\nstale_retries = 0\n{validate}"
    ))?;
    let mut bad = Vec::new();
    for i in 1..=TASKS {
        let title = if i % BAD_EVERY == 3 {
            bad.push(i);
            format!("bad {i}")
        } else {
            format!("good {i}")
        };
        s.add(&title, &[])?;
    }
    let gate = format!("sleep {gate_secs}; ! ls bad-*.txt >/dev/null 2>&1");
    let started = Instant::now();
    let o = s.orch(&["run", "--agent-cmd", AGENT, "--integrate-validate", &gate])?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        matches!(o.status.code(), Some(0 | 3)),
        "orch run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let files = sh(&s.repo(), "git ls-tree --name-only orch/integration")?;
    ensure!(!files.contains("bad-"), "a bad task landed: {files}");
    let landed = files.lines().filter(|f| f.starts_with("ok-")).count();
    ensure!(
        landed == TASKS - bad.len(),
        "{landed} of {} good tasks landed",
        TASKS - bad.len()
    );
    let run = s.last_run()?;
    let show: serde_json::Value = serde_json::from_str(&s.ok(&["--json", "run", "show", &run])?)?;
    let gate_runs = show["validations"].as_array().map_or(0, |v| {
        v.iter().filter(|r| r["stage"] == "integration").count()
    });
    Ok(Measured {
        name: match shape {
            Shape::Auto(None) => "auto".to_owned(),
            Shape::Auto(Some(n)) => format!("auto, {n} gate slots"),
            Shape::Set(d, 1) => format!("depth {d}"),
            Shape::Set(_, b) => format!("batch {b}"),
        },
        secs,
        landed,
        gate_runs,
    })
}

/// The model's tasks landed per gate time at depth `d` with failure probability `p`.
fn model(p: f64, d: u32) -> f64 {
    (1.0 - p) * (1.0 - (1.0 - p).powi(d as i32)) / p
}

/// Runs P3 and prints its ratios.
pub fn run(gate_secs: f64) -> Result<()> {
    let orch = build_orch(true)?;
    let serial = one(&orch, Shape::Set(1, 1), gate_secs)?;
    let deep = one(&orch, Shape::Set(4, 1), gate_secs)?;
    let batch = one(&orch, Shape::Set(1, 4), gate_secs)?;
    let auto = one(&orch, Shape::Auto(None), gate_secs)?;
    let auto4 = one(&orch, Shape::Auto(Some(4)), gate_secs)?;
    for m in [&serial, &deep, &batch, &auto, &auto4] {
        println!(
            "{}: {} tasks landed in {:.1} s ({:.0} an hour), {} integration gate runs",
            m.name,
            m.landed,
            m.secs,
            m.landed as f64 * 3600.0 / m.secs,
            m.gate_runs
        );
    }
    let rate = |m: &Measured| m.landed as f64 / m.secs;
    let p = 1.0 / BAD_EVERY as f64;
    println!(
        "P3: depth 4 / depth 1 = {:.2}x landed per hour (model: {:.2}x); batch 4 / depth 1 = {:.2}x; auto / depth 1 = {:.2}x; auto on 4 gate slots / depth 1 = {:.2}x; gate T = {gate_secs} s",
        rate(&deep) / rate(&serial),
        model(p, 4) / model(p, 1),
        rate(&batch) / rate(&serial),
        rate(&auto) / rate(&serial),
        rate(&auto4) / rate(&serial)
    );
    Ok(())
}
