//! The chaos scenario of `cargo xtask e2e`: a run of 30 tasks with slow scripted
//! agents, its `orch` killed with SIGKILL at seeded random moments and resumed each
//! time, then checked: every task done, each one's change in the integration branch
//! exactly once, the integration head validated, nothing left after `orch cleanup`, no
//! process alive, and a journal that accounts for every transition.
//!
//! `ORCH_CHAOS_SEED` replays a seed (each run prints its own); `ORCH_CHAOS_KILLS` sets
//! the number of kills (default 20); `ORCH_CHAOS_LONG=1` makes it 100. The seed fixes
//! the kill moments (milliseconds after each start or resume); where in the run they
//! land still varies with the machine's speed.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::e2e::{Sandbox, processes_under, sh};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Each agent sleeps 0.6-1.8 s (by task and attempt), then writes `<title>.txt`.
const AGENT: &str = "ms=$(( 600 + (ORCH_TASK_ID * 7 + ORCH_ATTEMPT * 3) % 13 * 100 )); sleep $((ms / 1000)).$((ms % 1000 / 100)) && printf '%s\\n' \"$ORCH_TASK_TITLE\" > \"$ORCH_TASK_TITLE.txt\"";

/// The integration gate: every task file holds its own name.
const INTEGRATION: &str = "sleep 0.3; for f in t*.txt; do [ -e \"$f\" ] || continue; [ \"$(cat \"$f\")\" = \"${f%.txt}\" ] || exit 1; done";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

pub fn scenario(s: &Sandbox) -> Result<()> {
    let seed = env_u64("ORCH_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1)
    });
    let kills =
        env_u64("ORCH_CHAOS_KILLS").unwrap_or(if std::env::var_os("ORCH_CHAOS_LONG").is_some() {
            100
        } else {
            20
        });
    // Enough work that the run outlives the kills (merges got quicker, and 24 tasks
    // sometimes ran out before the 20th kill).
    let tasks = (kills as usize * 3 / 2).max(30);
    let mut rng = Rng(seed);
    // A kill point: once the journal records an event of this kind past the round's
    // resume (or its start), wait `extra` ms more, then SIGKILL.
    let points: Vec<(&str, u64)> = (0..kills)
        .map(|_| {
            let kind = KILL_AFTER[rng.range(0, KILL_AFTER.len() as u64 - 1) as usize];
            (kind, rng.range(0, 300))
        })
        .collect();
    println!(
        "      chaos: seed {seed} (replay with ORCH_CHAOS_SEED={seed}); kill points (after this event, extra ms): {points:?}"
    );

    s.config(
        "[run]\nconcurrency = 3\nintegration_depth = 3\nlease_ttl = \"30s\"\n[agent]\ntimeout = \"60s\"\n[policy]\nmax_attempts = 3\nbackoff = \"100ms\"\n",
    )?;
    for i in 1..=tasks {
        let title = format!("t{i:02}");
        // A chain through the first three: t02 after t01, t03 after t02.
        let after = (2..=3).contains(&i).then(|| (i - 1).to_string());
        match after {
            Some(a) => s.add(&title, &["--after", &a])?,
            None => s.add(&title, &[])?,
        }
    }
    let logs = s.dir().join("chaos-logs");
    std::fs::create_dir_all(&logs)?;
    let mut killed = 0;
    let mut round = 0;
    let mut finished_early = false;
    for (kind, extra) in &points {
        round += 1;
        let run = s.last_run().ok();
        // Until the run is recorded, a kill leaves nothing to resume: start it again.
        let args: Vec<&str> = if run.is_none() {
            vec![
                "run",
                "--agent-cmd",
                AGENT,
                "--validate",
                "sleep 0.2; test -s \"$ORCH_TASK_TITLE.txt\"",
                "--integrate-validate",
                INTEGRATION,
            ]
        } else {
            vec!["run", "--resume"]
        };
        let start = match &run {
            Some(r) => journal(s, r)?.len(),
            None => 0,
        };
        let log = std::fs::File::create(logs.join(format!("round-{round}.log")))?;
        let crash_at = kind.strip_prefix("crash:");
        let mut cmd = s.cmd(&args);
        if let Some(point) = crash_at {
            cmd.env("ORCH_CRASH_AT", point);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting orch")?;
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut exited = None;
        loop {
            if let Some(st) = child.try_wait()? {
                exited = Some(st);
                break;
            }
            let reached = match s.last_run().ok() {
                Some(r) => since_resume(&journal(s, &r)?, start)
                    .iter()
                    .any(|e| e["kind"] == *kind),
                None => false,
            };
            if reached || Instant::now() > give_up {
                std::thread::sleep(Duration::from_millis(*extra));
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if exited.is_none() {
            exited = child.try_wait()?;
        }
        match exited {
            None => {
                child.kill()?; // SIGKILL
                child.wait()?;
                killed += 1;
            }
            // It aborted itself at the crash point.
            Some(st) if crash_at.is_some() && st.signal() == Some(6) => killed += 1,
            Some(st) => {
                let err = std::fs::read_to_string(logs.join(format!("round-{round}.log")))?;
                ensure!(
                    matches!(st.code(), Some(0) | Some(3)),
                    "round {round}: orch exited {st} on its own: {err}"
                );
                finished_early = true;
                break;
            }
        }
    }
    // Let it finish, undisturbed.
    let run = s.last_run()?;
    if !finished_early {
        let o = s.orch(&["run", "--resume"])?;
        ensure!(
            o.status.code() == Some(0),
            "the last resume exited {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    ensure!(
        killed as u64 == kills,
        "only {killed} of {kills} kills landed before the run finished (in round {round}); it needs more tasks"
    );
    println!("      chaos: {killed} kills in {round} rounds; run {run}");
    check(s, tasks)?;
    // Resuming a finished run again changes nothing.
    let head = sh(&s.repo(), "git rev-parse orch/integration")?;
    let before = s.statuses()?;
    let o = s.orch(&["run", "resume", &run])?;
    ensure!(
        o.status.code() == Some(0),
        "resuming the finished run again exited {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    ensure!(s.statuses()? == before, "a second resume changed the board");
    ensure!(
        sh(&s.repo(), "git rev-parse orch/integration")? == head,
        "a second resume moved the integration branch"
    );
    Ok(())
}

fn check(s: &Sandbox, tasks_added: usize) -> Result<()> {
    // Every task done: the agents always succeed, and interrupted attempts do not
    // spend the budget.
    let statuses = s.statuses()?;
    ensure!(
        statuses.len() == tasks_added && statuses.iter().all(|(_, st)| st == "done"),
        "not every task is done: {statuses:?}"
    );
    // Each task's change is in the integration branch, and merged exactly once.
    let subjects = sh(&s.repo(), "git log --format=%s orch/integration")?;
    let tasks: Value = serde_json::from_str(&s.ok(&["task", "list", "--json"])?)?;
    for t in tasks.as_array().context("task list")? {
        let (id, title) = (
            t["id"].as_i64().context("id")?,
            t["title"].as_str().context("title")?,
        );
        let content = s.integration_file(&format!("{title}.txt"));
        ensure!(
            content.as_deref() == Some(title),
            "{title}.txt in the integration branch is {content:?}"
        );
        let merges = subjects
            .lines()
            .filter(|l| l.starts_with(&format!("Merge task-{id}: ")))
            .count();
        ensure!(merges == 1, "task {id} was merged {merges} times");
    }
    // The journal accounts for every transition: folding the moves gives the board,
    // and every attempt's moves chain up to a final state.
    let events = s.ok(&["--json", "events"])?;
    let mut task_state: BTreeMap<i64, String> = BTreeMap::new();
    let mut attempt_state: BTreeMap<(i64, i64), String> = BTreeMap::new();
    let mut takeovers = 0;
    for line in events.lines() {
        let e: Value = serde_json::from_str(line)?;
        let p = &e["payload"];
        match e["kind"].as_str().unwrap_or("") {
            "task.created" => {
                task_state.insert(e["task_id"].as_i64().context("task")?, "backlog".into());
            }
            "task.moved" => {
                let t = e["task_id"].as_i64().context("task")?;
                let (from, to) = (
                    p["from"].as_str().unwrap_or("").to_owned(),
                    p["to"].as_str().unwrap_or("").to_owned(),
                );
                let cur = task_state.get(&t).cloned().unwrap_or_default();
                ensure!(
                    cur == from,
                    "task {t} moved from {from} while the journal had it {cur}: {line}"
                );
                task_state.insert(t, to);
            }
            "attempt.created" => {
                let a = (
                    p["attempt"]["task"].as_i64().context("a")?,
                    p["attempt"]["number"].as_i64().context("n")?,
                );
                ensure!(
                    attempt_state.insert(a, "queued".into()).is_none(),
                    "{a:?} created twice"
                );
            }
            "attempt.moved" => {
                let a = (
                    p["attempt"]["task"].as_i64().context("a")?,
                    p["attempt"]["number"].as_i64().context("n")?,
                );
                let from = p["from"].as_str().unwrap_or("").to_owned();
                let to = p["to"]["state"].as_str().unwrap_or("").to_owned();
                let cur = attempt_state.get(&a).cloned().unwrap_or_default();
                ensure!(
                    cur == from,
                    "{a:?} moved from {from} while the journal had it {cur}: {line}"
                );
                attempt_state.insert(a, to);
            }
            "lease.taken_over" => takeovers += 1,
            _ => {}
        }
    }
    for (title, st) in &statuses {
        let id = tasks
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["title"] == title.as_str()))
            .and_then(|t| t["id"].as_i64())
            .context("id")?;
        ensure!(
            task_state.get(&id) == Some(st),
            "the journal folds task {id} to {:?}, the board says {st}",
            task_state.get(&id)
        );
    }
    for (a, st) in &attempt_state {
        ensure!(
            matches!(
                st.as_str(),
                "succeeded" | "failed" | "canceled" | "interrupted"
            ),
            "attempt {a:?} ended the run {st}"
        );
    }
    println!(
        "      chaos: {} attempts for {tasks_added} tasks; {takeovers} lease takeovers journaled",
        attempt_state.len()
    );
    // Which recoveries the kills exercised.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for line in events.lines() {
        let e: Value = serde_json::from_str(line)?;
        if e["kind"] != "run.resumed" {
            continue;
        }
        let reason = e["payload"]["reason"].as_str().unwrap_or("");
        for (needle, name) in RECOVERIES {
            seen.entry(name).or_default();
            *seen.get_mut(name).expect("just added") += reason.matches(needle).count();
        }
        let interrupted = e["payload"]["interrupted"].as_array().map_or(0, Vec::len);
        *seen.entry("agents interrupted").or_default() += interrupted;
    }
    println!("      chaos: recoveries {seen:?}");
    // No pooled worktree is left leased to an attempt of a run that has ended, and
    // git knows no worktree the pool does not.
    let pool: Value = serde_json::from_str(&s.ok(&["--json", "pool"])?)?;
    let pool = pool.as_array().context("the pool")?;
    let leased: Vec<&Value> = pool.iter().filter(|p| p["state"] != "free").collect();
    ensure!(leased.is_empty(), "pooled worktrees still held: {leased:?}");
    let registered = sh(
        &s.repo(),
        "git worktree list --porcelain | grep '^worktree ' | wc -l",
    )?;
    ensure!(
        registered.parse::<usize>()? == 1 + pool.len(),
        "worktrees outside the pool: {}",
        sh(&s.repo(), "git worktree list")?
    );
    // After cleanup (the pool's too), git holds nothing that no live attempt uses.
    // Failed attempts (there should be none) are kept for worktrees.keep_failed.
    let report: Value = serde_json::from_str(&s.ok(&["--json", "cleanup", "--pool"])?)?;
    ensure!(
        report["pool"]["removed"].as_array().map(Vec::len) == Some(pool.len()),
        "cleanup --pool removed {} of {} pooled worktrees",
        report["pool"]["removed"],
        pool.len()
    );
    let retained: Vec<&str> = report["kept"]
        .as_array()
        .context("kept")?
        .iter()
        .filter(|k| k["why"].as_str().is_some_and(|w| w.contains("keep_failed")))
        .filter_map(|k| k["what"].as_str())
        .collect();
    let worktrees = sh(
        &s.repo(),
        "git worktree list --porcelain | grep '^worktree ' | wc -l",
    )?;
    ensure!(
        worktrees.parse::<usize>()? == 1 + retained.len(),
        "worktrees left: {}",
        sh(&s.repo(), "git worktree list")?
    );
    let branches = sh(
        &s.repo(),
        "git branch --list 'orch/*' --format='%(refname:short)'",
    )?;
    let unexpected: Vec<&str> = branches
        .lines()
        .filter(|b| *b != "orch/integration" && !retained.contains(b))
        .collect();
    ensure!(unexpected.is_empty(), "branches left: {branches}");
    // No orch and no agent is alive.
    let left = processes_under(s.dir());
    ensure!(left.is_empty(), "processes left: {left:?}");
    Ok(())
}

/// What a resume's reason says for each kind of recovery.
const RECOVERIES: &[(&str, &str)] = &[
    ("had advanced the integration ref", "unrecorded advance"),
    (
        "was integrated just before the crash",
        "advance without its consequences",
    ),
    ("passed integration; advancing", "validated, not advanced"),
    ("merge commit not yet validated", "merge not validated"),
    ("agent had finished before the crash", "finished agent kept"),
];

/// The run's journal entries, as `orch events --json` prints them.
fn journal(s: &Sandbox, run: &str) -> Result<Vec<Value>> {
    s.ok(&["--json", "events", "--run", run])?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// Entries past the round's resume (or, for a run that had not started, past `start`).
fn since_resume(journal: &[Value], start: usize) -> &[Value] {
    if start == 0 {
        return journal;
    }
    match journal
        .iter()
        .skip(start)
        .position(|e| e["kind"] == "run.resumed")
    {
        Some(i) => &journal[start + i + 1..],
        None => &[],
    }
}

/// The journal kinds a kill may follow: provisioning (a pooled worktree leased, not
/// yet switched), the agent phase, the worker gate, the integration gate, the ref
/// advance, and cleanup.
///
/// `crash:<point>` instead makes `orch` abort itself at an engine crash point
/// (`ORCH_CRASH_AT`), for the windows too narrow for a kill from outside.
const KILL_AFTER: &[&str] = &[
    "crash:agent-exit-recorded",
    "crash:pool-leased",
    "crash:ref-advanced",
    "attempt.created",
    "attempt.head",
    "attempt.merge_written",
    "attempt.integration_passed",
    "run.head_advanced",
    "attempt.cleanup",
];
