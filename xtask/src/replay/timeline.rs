//! A run's shape, from its journal and the Rust gate's log: which gate runs built
//! cold and in how many worktrees, whether agents started while earlier work waited
//! to be integrated, and each attempt's timeline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use crate::poolbench::seconds_of_day;
use serde_json::Value;

/// What a run's shape shows.
#[derive(Debug, Default)]
pub(super) struct Shape {
    /// Gate runs that found no `target/` in their worktree, the worktrees they ran
    /// in, and all gate runs logged.
    pub(super) cold: usize,
    pub(super) cold_worktrees: usize,
    pub(super) gates: usize,
    /// Median seconds of a cold and of a warm gate run.
    pub(super) cold_secs: f64,
    pub(super) warm_secs: f64,
    /// Agent starts made while another attempt had passed its worker gate and was
    /// not yet integrated, of all agent starts.
    pub(super) overlapped: usize,
    pub(super) starts: usize,
    /// One line an attempt: when its agent started, its worker gate ran, and it
    /// landed, in seconds from the run's first event.
    pub(super) timeline: Vec<String>,
}

/// Reads the gate log at `log` (absent for a project without one) and the run's
/// `events` (`orch --json events` lines).
pub(super) fn shape(log: &Path, events: &str) -> Result<Shape> {
    let mut s = Shape::default();
    let (mut cold, mut warm, mut worktrees) = (Vec::new(), Vec::new(), BTreeSet::new());
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [start, end, kind, dir] = f[..] else {
            continue;
        };
        let secs = end.parse::<f64>()? - start.parse::<f64>()?;
        s.gates += 1;
        if kind == "cold" {
            cold.push(secs);
            worktrees.insert(dir.to_owned());
        } else {
            warm.push(secs);
        }
    }
    (s.cold, s.cold_worktrees) = (cold.len(), worktrees.len());
    (s.cold_secs, s.warm_secs) = (median(&mut cold), median(&mut warm));
    journal(&mut s, events)?;
    Ok(s)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// When an attempt's agent started, its worker gate started and ended, and it
/// landed, in seconds of the day.
#[derive(Debug, Default)]
struct Marks {
    agent: Option<f64>,
    gate: Option<f64>,
    gated: Option<f64>,
    landed: Option<f64>,
}

/// Walks the journal's attempt moves in order: counts agent starts made while
/// others waited to be integrated, and draws each attempt's timeline.
fn journal(s: &mut Shape, events: &str) -> Result<()> {
    let mut phase: BTreeMap<String, String> = BTreeMap::new();
    let mut marks: BTreeMap<String, Marks> = BTreeMap::new();
    let mut first = None;
    for line in events.lines() {
        let e: Value = serde_json::from_str(line)?;
        let at = seconds_of_day(e["at"].as_str().unwrap_or_default())?;
        first.get_or_insert(at);
        if e["kind"] != "attempt.moved" {
            continue;
        }
        let reason = e["reason"].as_str().unwrap_or_default();
        let (moved, _) = reason.split_once(':').unwrap_or((reason, ""));
        let f: Vec<&str> = moved.split_whitespace().collect();
        let [attempt, from, "->", to] = f[..] else {
            continue;
        };
        let m = marks.entry(attempt.to_owned()).or_default();
        match (from, to) {
            (_, "running") => {
                s.starts += 1;
                let waiting = phase
                    .values()
                    .any(|p| matches!(p.as_str(), "merging" | "integrating"));
                s.overlapped += usize::from(waiting);
                m.agent = Some(at);
            }
            (_, "validating") => m.gate = Some(at),
            ("validating", _) => m.gated = Some(at),
            (_, "succeeded") => m.landed = Some(at),
            _ => {}
        }
        phase.insert(attempt.to_owned(), to.to_owned());
    }
    let first = first.unwrap_or_default();
    let secs = |t: Option<f64>| match t {
        Some(t) => format!("{:5.1}", t - first),
        None => "    -".to_owned(),
    };
    let mut rows: Vec<(f64, String)> = marks
        .into_iter()
        .map(|(a, m)| {
            let row = format!(
                "{a:>12}: agent {} s, worker gate {}–{} s, landed {} s",
                secs(m.agent),
                secs(m.gate),
                secs(m.gated),
                secs(m.landed)
            );
            (m.agent.unwrap_or(f64::MAX), row)
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    s.timeline = rows.into_iter().map(|(_, r)| r).collect();
    Ok(())
}
