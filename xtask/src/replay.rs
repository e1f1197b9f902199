//! `cargo xtask bench replay [--rust] [--whole-file]`: a real project's history
//! replayed as a backlog (see `replay/history.rs`): by default 24 consecutive
//! first-parent commits of more-itertools (Python); with `--rust`, 16 releases of the
//! `semver` crate (Rust, from crates.io), with `worktrees.keep = ["target/"]`. One task
//! per commit, a scripted agent that applies that commit's patch with `git apply
//! --3way` and gives up (exit 1) when it does not apply, and the project's own test
//! suite as both gates.
//!
//! It times the same work by hand (apply, test, commit, one after another) and orch at
//! concurrency 1, (4, depth 1), (4, depth 4), and (4, depth 4) with the integration
//! gate standing in for the worker gate, and prints for each: the wall time and
//! its ratio to by hand, tasks done and failed, attempts by failure kind, gate runs,
//! whether the final tree is the project's, whether every first-parent commit of the
//! line passes the suite, and any landed line a later commit of the line took out.
//! With `--rust` it also prints, from the gate's log and the journal, the gate runs
//! that built cold and in how many worktrees, the agent starts made while earlier
//! work waited to be integrated, and the timeline of the run at (4, depth 4).
//!
//! `--whole-file` has the agent write each file its commit changed whole, as it is
//! after the commit (what a model that rewrites files does from its own view): the
//! revert guard's case. Told to keep other tasks' work, its retry applies the patch.

mod history;
mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::e2e::{Sandbox, build_orch, sh};
use history::{History, Mode, Project};
use timeline::Shape;

/// The orch runs: name, concurrency, integration depth, whether the integration gate
/// stands in for the worker gate.
const SETTINGS: [(&str, u32, u32, bool); 4] = [
    ("orch, concurrency 1", 1, 1, false),
    ("orch, concurrency 4", 4, 1, false),
    ("orch, concurrency 4, depth 4", 4, 4, false),
    (
        "orch, concurrency 4, depth 4, integration stands in",
        4,
        4,
        true,
    ),
];

/// One measured way of landing the backlog.
struct Outcome {
    name: String,
    secs: f64,
    done: usize,
    failed: usize,
    /// Attempts, and the failed ones by kind.
    attempts: usize,
    failures: BTreeMap<String, usize>,
    /// Gate commands run, and gates a pass on the same tree stood for.
    gate_runs: usize,
    reused: usize,
    same_tree: bool,
    /// First-parent commits of the line that pass the suite, of how many.
    green: (usize, usize),
    /// Landed lines a later commit of the line took out.
    undone: Vec<String>,
    /// Undos that landed anyway (journaled `attempt.reverts`).
    reverts_landed: usize,
    /// Each task not done, with why its attempts failed.
    lost: Vec<String>,
    /// Cold builds and overlap, from the gate's log and the journal.
    shape: Shape,
}

/// The same work by hand: apply, test, commit, one commit after another.
fn by_hand(h: &History) -> Result<f64> {
    let dir = h.dir.path().join("by-hand");
    sh(
        h.dir.path(),
        &format!(
            "git clone -q src by-hand && cd by-hand && git checkout -q --detach {}",
            h.commits[0]
        ),
    )?;
    let started = Instant::now();
    for n in 1..h.commits.len() {
        sh(
            &dir,
            &format!(
                "git apply --index '{}.patch' && {} && git -c user.name=u -c user.email=u@u.invalid commit -q -m 'task {n}'",
                h.patch(n).display(),
                h.gate()
            ),
        )
        .with_context(|| format!("commit {n} by hand"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The backlog through orch at `concurrency` and `depth`.
fn through_orch(
    orch: &Path,
    h: &History,
    mode: Mode,
    (name, concurrency, depth, stands_in): (&str, u32, u32, bool),
) -> Result<Outcome> {
    let base = &h.commits[0];
    let s = Sandbox::with_repo(
        orch,
        &format!(
            "git clone -q '{}' . && git checkout -q -B main {base} && git remote remove origin",
            h.src().display()
        ),
    )?;
    let gate = serde_json::to_string(&h.gate())?;
    let empty = match mode {
        Mode::Patch => "",
        // A rewritten file can bring in an earlier task's change before that task runs.
        Mode::WholeFile => "[policy]\nempty_diff = \"done-if-valid\"\n",
    };
    s.config(&format!(
        "[run]\nconcurrency = {concurrency}\nintegration_depth = {depth}\n[validate]\nworker = [{gate}]\nintegration = [{gate}]\nintegration_stands_in = {stands_in}\n{empty}{}",
        h.project.config()
    ))?;
    // Only this run's gates are logged.
    std::fs::write(h.gate_log(), "")?;
    for (title, c) in h.titles.iter().zip(&h.commits[1..]) {
        s.add(
            title,
            &["--body", &format!("Make {} commit {c}.", h.project.name())],
        )?;
    }
    let started = Instant::now();
    let o = s.orch(&["run", "--agent-cmd", &h.agent(mode)])?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        matches!(o.status.code(), Some(0 | 3)),
        "{name}: orch run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let statuses = s.statuses()?;
    let count = |want: &[&str]| {
        statuses
            .iter()
            .filter(|(_, st)| want.contains(&st.as_str()))
            .count()
    };
    let run = s.last_run()?;
    let show: Value = serde_json::from_str(&s.ok(&["--json", "run", "show", &run])?)?;
    let events = s.ok(&["--json", "events", "--run", &run])?;
    let repo = s.repo();
    let tree = |dir: &Path, rev: &str| sh(dir, &format!("git rev-parse '{rev}^{{tree}}'"));
    // Read before the line's check, whose suite runs log too.
    let shape = timeline::shape(&h.gate_log(), &events)?;
    let (green, undone) = check_line(&repo, h)?;
    if std::env::var_os("ORCH_REPLAY_KEEP").is_some() {
        println!("{name}: kept {}", s.dir().display());
        std::mem::forget(s);
    }
    Ok(Outcome {
        name: name.to_owned(),
        secs,
        done: count(&["done"]),
        failed: count(&["failed", "blocked"]),
        attempts: show["attempts"].as_array().map_or(0, Vec::len),
        failures: failures(&show),
        gate_runs: show["validations"].as_array().map_or(0, Vec::len),
        reused: events.matches("attempt.gate_reused").count(),
        same_tree: tree(&repo, "orch/integration")? == tree(&h.src(), "HEAD")?,
        green,
        undone,
        reverts_landed: events.matches("\"attempt.reverts\"").count(),
        lost: lost(&statuses, &events, &show)?,
        shape,
    })
}

/// Each task not done, by title, with the reasons of its attempts' failures.
fn lost(statuses: &[(String, String)], events: &str, show: &Value) -> Result<Vec<String>> {
    let events: Vec<Value> = events
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (n, (title, status)) in statuses.iter().enumerate() {
        if status == "done" {
            continue;
        }
        let id = n as i64 + 1;
        let why: Vec<&str> = events
            .iter()
            .filter(|e| e["task_id"] == id && e["kind"] == "attempt.moved")
            .filter_map(|e| e["reason"].as_str())
            .filter(|r| r.contains("-> failed"))
            .collect();
        let last = show["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .rfind(|a| {
                a["attempt"]
                    .as_str()
                    .is_some_and(|x| x.starts_with(&format!("task-{id}-")))
            })
            .map(|a| a["failure"].to_string())
            .unwrap_or_default();
        out.push(format!(
            "#{id} {title} ({status}): {}; last: {last}",
            why.join(" | ")
        ));
    }
    Ok(out)
}

/// Failed attempts by kind, from `run show --json`.
fn failures(show: &Value) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in show["attempts"].as_array().into_iter().flatten() {
        let kind = match &a["failure"] {
            Value::Null => continue,
            Value::String(k) => k.clone(),
            Value::Object(o) => o
                .get("kind")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| o.keys().next().cloned())
                .unwrap_or_default(),
            other => other.to_string(),
        };
        *out.entry(kind).or_insert(0) += 1;
    }
    out
}

/// Runs the suite on every first-parent commit of the line, and checks that no line a
/// task landed (and the project kept) is gone from a later commit of the line.
fn check_line(repo: &Path, h: &History) -> Result<((usize, usize), Vec<String>)> {
    let log = sh(
        repo,
        &format!(
            "git log --reverse --first-parent --format='%H %(trailers:key=Orch-Task,valueonly,separator=%x2C)' {}..orch/integration",
            h.commits[0]
        ),
    )?;
    let line: Vec<(String, Vec<String>)> = log
        .lines()
        .filter_map(|l| l.split_once(' ').or(Some((l, ""))))
        .map(|(c, keys)| {
            let keys = keys.split(',').map(str::trim).filter(|k| !k.is_empty());
            (c.to_owned(), keys.map(str::to_owned).collect())
        })
        .collect();
    let mut passed = 0;
    for (c, _) in &line {
        let wt = h.dir.path().join("check");
        sh(
            repo,
            &format!("git worktree add -q --detach '{}' {c}", wt.display()),
        )?;
        passed += usize::from(sh(&wt, &h.gate()).is_ok());
        sh(
            repo,
            &format!("git worktree remove --force '{}'", wt.display()),
        )?;
    }
    let mut undone = Vec::new();
    let mut files: BTreeMap<(String, String), String> = BTreeMap::new();
    for n in 1..h.commits.len() {
        let key = format!("task-{n}");
        let Some(landed) = line.iter().position(|(_, keys)| keys.contains(&key)) else {
            continue;
        };
        for (file, kept) in h.kept_lines(n)? {
            for (c, _) in &line[landed..] {
                let text = files.entry((c.clone(), file.clone())).or_insert_with(|| {
                    sh(repo, &format!("git show {c}:'{file}'")).unwrap_or_default()
                });
                let have: BTreeSet<&str> = text.lines().collect();
                if let Some(gone) = kept.iter().find(|l| !have.contains(l.as_str())) {
                    undone.push(format!(
                        "{key}'s {gone:?} in {file} is gone at {}",
                        &c[..10]
                    ));
                    break;
                }
            }
        }
    }
    Ok(((passed, line.len()), undone))
}

fn print(h: &History, hand: f64, rows: &[Outcome]) {
    let n = h.titles.len();
    println!(
        "| run | wall | vs by hand | done | failed | attempts (failed by kind) | gate runs (reused) | final tree is the project's | first-parent commits green | landed lines undone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!("| by hand | {hand:.1} s | 1.00x | {n} | 0 | {n} | {n} | yes | {n}/{n} | 0 |");
    for o in rows {
        let kinds: Vec<String> = o.failures.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let flagged = match o.reverts_landed {
            0 => String::new(),
            n => format!(" ({n} flagged)"),
        };
        println!(
            "| {} | {:.1} s | {:.2}x | {} | {} | {} ({}) | {} ({}) | {} | {}/{} | {}{flagged} |",
            o.name,
            o.secs,
            o.secs / hand,
            o.done,
            o.failed,
            o.attempts,
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            },
            o.gate_runs,
            o.reused,
            if o.same_tree { "yes" } else { "no" },
            o.green.0,
            o.green.1,
            o.undone.len(),
        );
    }
    for o in rows {
        for u in o.undone.iter().chain(&o.lost) {
            println!("{}: {u}", o.name);
        }
    }
}

/// Runs the replay and prints its table.
/// With a gate log (the Rust project): cold builds and overlap by run, and the
/// timeline of the run at concurrency 4, depth 4.
fn print_shapes(rows: &[Outcome]) {
    if rows.iter().all(|o| o.shape.gates == 0) {
        return;
    }
    println!();
    println!(
        "| run | gate runs | cold (worktrees) | cold gate, median | warm gate, median | agent starts while earlier work waited to integrate |"
    );
    println!("|---|---|---|---|---|---|");
    for o in rows {
        let s = &o.shape;
        println!(
            "| {} | {} | {} ({}) | {:.2} s | {:.2} s | {} of {} |",
            o.name,
            s.gates,
            s.cold,
            s.cold_worktrees,
            s.cold_secs,
            s.warm_secs,
            s.overlapped,
            s.starts
        );
    }
    if let Some(o) = rows.iter().find(|o| o.name == SETTINGS[2].0) {
        println!("\n{}, from the journal:", o.name);
        for line in &o.shape.timeline {
            println!("{line}");
        }
    }
}

/// Runs the replay and prints its tables.
pub fn run(args: &[String]) -> Result<()> {
    let (mut mode, mut project) = (Mode::Patch, Project::MoreItertools);
    for a in args {
        match a.as_str() {
            "--whole-file" => mode = Mode::WholeFile,
            "--rust" => project = Project::Semver,
            other => anyhow::bail!("unknown option {other:?}; allowed: --rust, --whole-file"),
        }
    }
    let orch = build_orch(true)?;
    let h = History::load(project)?;
    println!(
        "replaying {} commits of {} ({mode:?} mode); gate: {}",
        h.titles.len(),
        project.name(),
        h.gate()
    );
    let hand = by_hand(&h)?;
    println!("by hand: {hand:.1} s");
    let mut rows = Vec::new();
    for setting in SETTINGS {
        let o = through_orch(&orch, &h, mode, setting)?;
        println!("{}: {:.1} s, {} done", o.name, o.secs, o.done);
        rows.push(o);
    }
    print(&h, hand, &rows);
    print_shapes(&rows);
    Ok(())
}
