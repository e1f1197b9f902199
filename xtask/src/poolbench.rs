//! `cargo xtask bench run [--tasks N] [--files N]`: the worktree pool, measured with
//! the release build against bare git on a generated repository (one commit, 40-line
//! files in nested folders, 20,000 by default).
//!
//! - P1: `orch run` on N trivial tasks (one new file each, gates `true`) against a
//!   pooled bare-git script doing the same work (a worktree per worker switched with
//!   `checkout -B`, commit, `merge-tree`, a compare-and-swap `update-ref`, the
//!   integration checkout), at concurrency 1 and 4.
//! - P2: provisioning a reused attempt worktree (from the run's journal: `queued ->
//!   provisioning` to `worktree ready`) against `git worktree add` of the repository.
//! - Disk: bytes under the worktree root after the concurrency-4 run, against one
//!   checkout.
//! - P6: a generated workspace of dependency-free crates whose worker gate is `cargo
//!   build`: the gate time of the 5th attempt against the 1st, with and without the pool.
//!
//! `cargo xtask bench agents [--agents N] [--secs S] [--gate-ms MS]` is P7 and P5: N
//! tasks (64) whose agent sleeps S seconds (3), all at once (concurrency N, worker gate
//! `true`, integration gate `true` or a sleep of MS), first on a cold pool and then on
//! the warm one: the run's time over the ideal S, the integration gate runs, and
//! orch's peak memory.
//!
//! `cargo xtask bench growth [--small N] [--large N]` is P10, what grows with the
//! board, the journal and the history: `orch run` at concurrency 8 on trivial tasks
//! (gates `true`) in a one-file repository, the per-task cost at `large` (1,600)
//! over `small` (100).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::e2e::{Sandbox, build_orch, sh};

/// The agent: one new file per task.
const AGENT: &str = "echo \"$ORCH_TASK_ID\" > task-$ORCH_TASK_ID.txt";

/// The same work in bare git, pooled: `$1` tasks over `$2` workers, worktrees under
/// `$3`. Each worker reuses one worktree; merges are serialised by a lock, as orch's
/// integration queue is.
const BARE: &str = r#"set -e
n=$1; c=$2; root=$3
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b.invalid GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b.invalid
base=$(git rev-parse HEAD)
git update-ref refs/heads/bare/integration "$base"
git worktree add -q --detach "$root/integration" "$base"
for k in $(seq 1 "$c"); do git worktree add -q --detach "$root/w$k" "$base"; done
worker() {
  k=$1; wt="$root/w$k"; i=$k; prev=""
  while [ "$i" -le "$n" ]; do
    git -C "$wt" checkout -q -f -B "bare/task-$i" "$(git rev-parse bare/integration)"
    if [ -n "$prev" ]; then git branch -q -D "$prev"; fi
    prev="bare/task-$i"
    git -C "$wt" clean -qfd
    echo "$i" > "$wt/task-$i.txt"
    git -C "$wt" add -A && git -C "$wt" commit -q -m "task $i"
    true
    (
      flock 9
      old=$(git rev-parse bare/integration)
      tree=$(git merge-tree --write-tree "$old" "bare/task-$i")
      new=$(git commit-tree -p "$old" -p "bare/task-$i" -m "merge task $i" "$tree")
      git -C "$root/integration" checkout -q -f --detach "$new"
      true
      git update-ref refs/heads/bare/integration "$new" "$old"
    ) 9>"$root/lock"
    i=$((i + c))
  done
}
for k in $(seq 1 "$c"); do worker "$k" & done
wait
"#;

/// Options: `--tasks N` (50), `--files N` (20,000).
pub fn run(args: &[String]) -> Result<()> {
    let opt = |name: &str, default: usize| opt(args, name, default);
    let (tasks, files) = (opt("--tasks", 50)?, opt("--files", 20_000)?);
    let orch = build_orch(true)?;
    let template = tempfile::Builder::new().prefix("orch-bench-").tempdir()?;
    let t = Instant::now();
    generate(template.path(), files)?;
    println!(
        "generated {files} files in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let checkout = du(template.path(), "--exclude=.git")?;
    for c in [1, 4] {
        let bare = bare_git(template.path(), tasks, c)?;
        let o = orch_run(&orch, template.path(), tasks, c)?;
        println!(
            "P1 (concurrency {c}): orch {:.1} s, bare git {bare:.1} s for {tasks} tasks: {:.2}x",
            o.secs,
            o.secs / bare
        );
        if c == 1 {
            let add = git_worktree_add(template.path())?;
            println!(
                "P2: provisioning from the pool {:.3} s (median of reuses), git worktree add {add:.2} s: {:.3}x; a new pooled worktree {:.2} s",
                o.reuse_secs,
                o.reuse_secs / add,
                o.create_secs
            );
        } else {
            println!(
                "Disk: {} bytes under the worktree root ({} pooled worktrees), one checkout {checkout} bytes: {:.2}x",
                o.disk,
                o.pooled,
                o.disk as f64 / checkout as f64
            );
        }
    }
    let warm = warm_caches(&orch, true)?;
    let cold = warm_caches(&orch, false)?;
    println!(
        "P6: cargo build gate, 5th attempt / 1st: {:.2}x with the pool ({:.2} s / {:.2} s), {:.2}x without ({:.2} s / {:.2} s)",
        warm.1 / warm.0,
        warm.1,
        warm.0,
        cold.1 / cold.0,
        cold.1,
        cold.0
    );
    Ok(())
}

/// The number after `name` in `args`, or `default`.
fn opt(args: &[String], name: &str, default: usize) -> Result<usize> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} takes a number")),
    }
}

/// P10: the per-task cost of a large board over a small one.
pub fn growth(args: &[String]) -> Result<()> {
    let opt = |name: &str, default: usize| opt(args, name, default);
    let (small, large) = (opt("--small", 100)?, opt("--large", 1_600)?);
    let orch = build_orch(true)?;
    let template = tempfile::Builder::new().prefix("orch-bench-").tempdir()?;
    generate(template.path(), 1)?;
    let mut per = Vec::new();
    for n in [small, large] {
        let o = orch_run(&orch, template.path(), n, 8)?;
        let ms = o.secs * 1000.0 / n as f64;
        println!(
            "{n} tasks at concurrency 8: {:.1} s, {ms:.1} ms a task",
            o.secs
        );
        per.push(ms);
    }
    println!(
        "P10: per-task cost at {large} tasks over {small}: {:.2}x",
        per[1] / per[0]
    );
    Ok(())
}

/// P7 and P5: many agents at once, on a cold pool and then a warm one.
pub fn agents(args: &[String]) -> Result<()> {
    let (n, secs) = (opt(args, "--agents", 64)?, opt(args, "--secs", 3)?);
    // An integration gate that takes this long (0: `true`).
    let gate_ms = opt(args, "--gate-ms", 0)?;
    let gate = match gate_ms {
        0 => "true".to_owned(),
        ms => format!("sleep {}", ms as f64 / 1000.0),
    };
    let orch = build_orch(true)?;
    let s = Sandbox::new(&orch)?;
    let agent = format!("sleep {secs}; echo x > task-$ORCH_TASK_ID.txt");
    let conc = n.to_string();
    for (round, pool) in [(1, "cold"), (2, "warm")] {
        let board: String = (1..=n)
            .map(|i| {
                format!(
                    "[[task]]\nkey = \"r{round}-{i}\"\ntitle = \"Task {i} of round {round}\"\n\n"
                )
            })
            .collect();
        let file = s.dir().join(format!("board{round}.toml"));
        std::fs::write(&file, board)?;
        s.ok(&["board", "import", &file.display().to_string()])?;
        settle()?;
        let args = [
            "run",
            "--agent-cmd",
            &agent,
            "--validate",
            "true",
            "--integrate-validate",
            &gate,
            "--concurrency",
            &conc,
        ];
        let (wall, peak_kb) = watched(s.cmd(&args))?;
        let landed = sh(
            &s.repo(),
            "git ls-tree --name-only orch/integration | grep -c '^task-'",
        )?;
        ensure!(
            landed == (n * round).to_string(),
            "orch landed {landed} of {}",
            n * round
        );
        let show: serde_json::Value =
            serde_json::from_str(&s.ok(&["--json", "run", "show", &s.last_run()?])?)?;
        let gates = show["validations"].as_array().map_or(0, |v| {
            v.iter().filter(|r| r["stage"] == "integration").count()
        });
        println!(
            "P7 ({pool} pool): {n} agents of {secs} s at once took {wall:.2} s: {:.2}x the ideal, {gates} integration gate runs of {gate:?}; P5: orch's peak memory {:.0} MB",
            wall / secs as f64,
            peak_kb as f64 / 1024.0
        );
    }
    Ok(())
}

/// Runs `cmd` to its end, successful: how long it took, and its peak resident memory
/// in kB (`VmHWM`, read as it runs).
fn watched(mut cmd: Command) -> Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut peak = 0;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        if let Some(kb) = status.ok().as_deref().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "the run failed: {status}");
            return Ok((started.elapsed().as_secs_f64(), peak));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `files` 40-line files in nested folders, one commit.
fn generate(dir: &Path, files: usize) -> Result<()> {
    for i in 0..files {
        let d = dir.join(format!("src/m{:02}/d{:03}", i % 20, i / 100));
        std::fs::create_dir_all(&d)?;
        let text: String = (0..40).map(|l| format!("line {l} of file {i}\n")).collect();
        std::fs::write(d.join(format!("f{i}.txt")), text)?;
    }
    // Packed once, as a real repository is, and never behind the copies' backs.
    sh(
        dir,
        "git init -q -b main && git config gc.auto 0 && git add -A && git -c user.name=u -c user.email=u@u.invalid commit -q -m init && git repack -adq",
    )?;
    Ok(())
}

fn du(dir: &Path, extra: &str) -> Result<u64> {
    let out = sh(dir, &format!("du -sb {extra} . | cut -f1"))?;
    out.parse().context("du's answer")
}

fn copy(template: &Path) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("orch-bench-").tempdir()?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(dir.path().join("repo"))
        .status()?;
    ensure!(status.success(), "copying the repository failed");
    settle()?;
    Ok(dir)
}

/// Writes the page cache back before a timing: a copy's dirty pages being flushed
/// during one would slow file creation several times over on these machines.
fn settle() -> Result<()> {
    ensure!(Command::new("sync").status()?.success(), "sync failed");
    Ok(())
}

fn bare_git(template: &Path, tasks: usize, c: usize) -> Result<f64> {
    let dir = copy(template)?;
    let repo = dir.path().join("repo");
    let started = Instant::now();
    let status = Command::new("bash")
        .args(["-c", BARE, "bare"])
        .arg(tasks.to_string())
        .arg(c.to_string())
        .arg(dir.path().join("wt"))
        .current_dir(&repo)
        .status()?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(status.success(), "the bare-git script failed");
    let landed = sh(
        &repo,
        "git ls-tree --name-only bare/integration | grep -c '^task-'",
    )?;
    ensure!(
        landed == tasks.to_string(),
        "bare git landed {landed} of {tasks}"
    );
    Ok(secs)
}

fn git_worktree_add(template: &Path) -> Result<f64> {
    let dir = copy(template)?;
    let repo = dir.path().join("repo");
    let started = Instant::now();
    sh(&repo, "git worktree add -q --detach ../added HEAD")?;
    Ok(started.elapsed().as_secs_f64())
}

struct OrchRun {
    secs: f64,
    reuse_secs: f64,
    create_secs: f64,
    disk: u64,
    pooled: usize,
}

/// A sandbox over a copy of `template`, with orch set up and `tasks` tasks.
fn sandbox(orch: &Path, template: &Path, tasks: usize) -> Result<Sandbox> {
    let s = Sandbox::new(orch)?;
    std::fs::remove_dir_all(s.repo())?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(s.repo())
        .status()?;
    ensure!(status.success(), "copying the repository failed");
    s.ok(&["init"])?;
    let board: String = (1..=tasks)
        .map(|i| format!("[[task]]\nkey = \"t{i}\"\ntitle = \"Task {i}\"\n\n"))
        .collect();
    let file = s.dir().join("board.toml");
    std::fs::write(&file, board)?;
    s.ok(&["board", "import", &file.display().to_string()])?;
    settle()?;
    Ok(s)
}

fn orch_run(orch: &Path, template: &Path, tasks: usize, c: usize) -> Result<OrchRun> {
    let s = sandbox(orch, template, tasks)?;
    let conc = c.to_string();
    let args = [
        "run",
        "--agent-cmd",
        AGENT,
        "--validate",
        "true",
        "--integrate-validate",
        "true",
        "--concurrency",
        &conc,
    ];
    let started = Instant::now();
    s.ok(&args)?;
    let secs = started.elapsed().as_secs_f64();
    let landed = sh(
        &s.repo(),
        "git ls-tree --name-only orch/integration | grep -c '^task-'",
    )?;
    ensure!(
        landed == tasks.to_string(),
        "orch landed {landed} of {tasks}"
    );
    let mut provisioning = provisioning_times(&s)?;
    provisioning.sort_by(f64::total_cmp);
    let pool: Value = serde_json::from_str(&s.ok(&["--json", "pool"])?)?;
    let pooled = pool.as_array().map_or(0, Vec::len);
    // The slowest provisions made worktrees; the rest reused them.
    let made = pool
        .as_array()
        .map_or(0, |p| p.iter().filter(|w| w["kind"] == "attempt").count());
    let reuses = &provisioning[..provisioning.len().saturating_sub(made)];
    Ok(OrchRun {
        secs,
        reuse_secs: reuses.get(reuses.len() / 2).copied().unwrap_or(f64::NAN),
        create_secs: provisioning.last().copied().unwrap_or(f64::NAN),
        disk: du(&s.dir().join("data/orch/worktrees"), "")?,
        pooled,
    })
}

/// Seconds from `queued -> provisioning` to `provisioning -> running`, per attempt.
fn provisioning_times(s: &Sandbox) -> Result<Vec<f64>> {
    let run = s.last_run()?;
    let events = s.ok(&["--json", "events", "--run", &run])?;
    let mut started = std::collections::HashMap::new();
    let mut out = Vec::new();
    for line in events.lines() {
        let e: Value = serde_json::from_str(line)?;
        if e["kind"] != "attempt.moved" {
            continue;
        }
        let key = (e["task_id"].as_i64(), e["attempt"].as_i64());
        let at = seconds_of_day(e["at"].as_str().unwrap_or(""))?;
        match e["payload"]["to"]["state"].as_str().unwrap_or("") {
            "provisioning" => {
                started.insert(key, at);
            }
            "running" => {
                if let Some(t) = started.remove(&key) {
                    out.push((at - t).rem_euclid(86_400.0));
                }
            }
            _ => {}
        }
    }
    ensure!(!out.is_empty(), "no provisioning in the journal");
    Ok(out)
}

/// `2026-12-04T18:34:34.602Z` as seconds since midnight.
pub(crate) fn seconds_of_day(at: &str) -> Result<f64> {
    let time = at.split('T').nth(1).context("a timestamp")?;
    let mut parts = time.trim_end_matches('Z').split(':');
    let mut next = || -> Result<f64> {
        parts
            .next()
            .context("a timestamp")?
            .parse()
            .context("a timestamp")
    };
    Ok(next()? * 3600.0 + next()? * 60.0 + next()?)
}

/// P6: five tasks, one at a time, on a workspace of dependency-free crates whose
/// worker gate is `cargo build`; the gate times of the 1st and 5th attempts.
fn warm_caches(orch: &Path, pool: bool) -> Result<(f64, f64)> {
    let template = tempfile::Builder::new().prefix("orch-bench-").tempdir()?;
    crate_workspace(template.path())?;
    let s = sandbox(orch, template.path(), 5)?;
    let reuse = format!("worktrees.reuse={pool}");
    let home = std::env::var("HOME").unwrap_or_default();
    let agent = "echo \"pub fn t$ORCH_TASK_ID() -> u64 { $ORCH_TASK_ID }\" >> app/src/lib.rs";
    let o = s
        .cmd(&[
            "-c",
            &reuse,
            "run",
            "--agent-cmd",
            agent,
            "--validate",
            "cargo build -q --offline",
            "--concurrency",
            "1",
        ])
        .env("HOME", home)
        .output()?;
    ensure!(
        o.status.success(),
        "the cargo build run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let run = s.last_run()?;
    let show: Value = serde_json::from_str(&s.ok(&["--json", "run", "show", &run])?)?;
    let times: Vec<f64> = show["validations"]
        .as_array()
        .context("validations")?
        .iter()
        .filter(|v| v["stage"] == "worker")
        .filter_map(|v| v["duration_ms"].as_f64())
        .map(|ms| ms / 1000.0)
        .collect();
    ensure!(times.len() == 5, "{} worker gates ran, not 5", times.len());
    Ok((times[0], times[4]))
}

/// A workspace of six library crates of generated code and an `app` crate on top:
/// a cold build compiles all of them, a warm one only what changed.
fn crate_workspace(dir: &Path) -> Result<()> {
    let libs: Vec<String> = (0..6).map(|i| format!("lib{i}")).collect();
    let members: Vec<String> = libs
        .iter()
        .map(|l| format!("\"{l}\""))
        .chain(["\"app\"".to_owned()])
        .collect();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    )?;
    let manifest = |name: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"
        )
    };
    for l in &libs {
        std::fs::create_dir_all(dir.join(l).join("src"))?;
        std::fs::write(dir.join(l).join("Cargo.toml"), manifest(l, ""))?;
        let code: String = (0..300)
            .map(|f| {
                format!(
                    "pub fn f{f}<T: Clone + std::fmt::Debug>(v: &[T]) -> Vec<String> {{ v.iter().cycle().take({f} % 7 + 1).map(|x| format!(\"{{x:?}}\")).collect() }}\n"
                )
            })
            .collect();
        std::fs::write(dir.join(l).join("src/lib.rs"), code)?;
    }
    let deps: String = libs
        .iter()
        .map(|l| format!("{l} = {{ path = \"../{l}\" }}\n"))
        .collect();
    std::fs::create_dir_all(dir.join("app/src"))?;
    std::fs::write(dir.join("app/Cargo.toml"), manifest("app", &deps))?;
    let uses: String = libs
        .iter()
        .map(|l| format!("pub fn use_{l}() -> usize {{ {l}::f3(&[1u8]).len() }}\n"))
        .collect();
    std::fs::write(dir.join("app/src/lib.rs"), uses)?;
    std::fs::write(dir.join(".gitignore"), "target/\n")?;
    sh(
        dir,
        "git init -q -b main && git add -A && git -c user.name=u -c user.email=u@u.invalid commit -q -m init && cargo generate-lockfile -q --offline && git add -A && git -c user.name=u -c user.email=u@u.invalid commit -q -m lock",
    )?;
    Ok(())
}
