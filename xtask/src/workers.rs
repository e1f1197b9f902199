//! The e2e scenario of `run.executors = "workers"`: one PostgreSQL database, one bare
//! remote, three worker clones and three coordinator clones, each with its own data
//! directory as separate machines would have. 30 tasks run across the workers; one
//! worker is killed with SIGKILL mid-agent and its job finishes on another within the
//! lease TTL plus 5 s; the coordinator is killed twice and resumed from another clone
//! each time. At the end every task is done and merged exactly once, the remote's
//! integration line holds every task's file, and no job and no worktree is left.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::e2e::{Sandbox, sh};

const TASKS: usize = 30;
const TTL_S: u64 = 3;
const AGENT: &str = "echo \"agent of task $ORCH_TASK_ID\"; sleep 1.5; echo \"$ORCH_TASK_ID\" > \"f$ORCH_TASK_ID.txt\"";

/// A process group killed when dropped.
pub(crate) struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// A database, a bare remote seeded with one commit, and clones of it.
pub(crate) struct Cluster {
    pub(crate) dir: PathBuf,
    orch: PathBuf,
    db: String,
    /// Extra settings for every command (`KEY`, `value`).
    pub(crate) env: Vec<(String, String)>,
}

impl Cluster {
    /// A fresh database `name` on the server `admin` names, and a remote, in `dir`.
    pub(crate) fn new(
        dir: &std::path::Path,
        orch: PathBuf,
        admin: &str,
        name: &str,
    ) -> Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        sh(
            dir,
            &format!(
                "psql '{admin}' -q -c 'DROP DATABASE IF EXISTS {name}' -c 'CREATE DATABASE {name}'"
            ),
        )?;
        let base = admin.split('?').next().unwrap_or(admin);
        let db = format!(
            "{}/{name}",
            &base[..base.rfind('/').context("a database URL")?]
        );
        let c = Cluster {
            dir: dir.to_path_buf(),
            orch,
            db,
            env: Vec::new(),
        };
        sh(dir, "git init -q --bare -b main remote.git")?;
        let seed = c.clone_of("seed")?;
        sh(
            &seed,
            "printf 'hello\\n' > README.md && git add -A && git -c user.name=u -c user.email=u@u.invalid commit -q -m init && git push -q origin HEAD:main",
        )?;
        Ok(c)
    }

    pub(crate) fn clone_of(&self, name: &str) -> Result<PathBuf> {
        let to = self.dir.join(name);
        sh(&self.dir, &format!("git clone -q remote.git {name}"))?;
        Ok(to)
    }

    fn cmd(&self, clone: &str, args: &[&str]) -> Command {
        let home = self.dir.join(format!("{clone}-home"));
        let mut c = Command::new(&self.orch);
        c.args(args)
            .current_dir(self.dir.join(clone))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("USER", "e2e")
            .env("ORCH_DATABASE_URL", &self.db)
            .env("ORCH_RUN__EXECUTORS", "workers")
            .env("ORCH_RUN__CONCURRENCY", "6")
            .env("ORCH_WORKER__LEASE_TTL", format!("{TTL_S}s"))
            .env("ORCH_WORKER__POLL", "100ms")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    pub(crate) fn ok(&self, clone: &str, args: &[&str]) -> Result<String> {
        let o = self.cmd(clone, args).output()?;
        ensure!(
            o.status.success(),
            "orch {args:?} in {clone}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    pub(crate) fn spawn(&self, clone: &str, args: &[&str]) -> Result<Group> {
        let log = std::fs::File::create(self.dir.join(format!("{clone}.log")))?;
        let child = self
            .cmd(clone, args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        Ok(Group(child))
    }

    pub(crate) fn log(&self, clone: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{clone}.log"))).unwrap_or_default()
    }

    fn done(&self) -> Result<usize> {
        let tasks: Value = serde_json::from_str(&self.ok("coord1", &["task", "list", "--json"])?)?;
        Ok(tasks
            .as_array()
            .context("a task list")?
            .iter()
            .filter(|t| t["status"] == "done")
            .count())
    }

    fn psql(&self, sql: &str) -> Result<String> {
        let o = Command::new("psql")
            .args([self.db.as_str(), "-Atc", sql])
            .output()?;
        ensure!(
            o.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    }
}

pub(crate) fn until(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<Duration> {
    let started = Instant::now();
    while !f()? {
        if started.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started.elapsed())
}

/// A cluster on a fresh database named after `tag`, in the sandbox; `None` (with a
/// line saying the scenario is skipped) without a PostgreSQL server.
fn cluster(s: &Sandbox, tag: &str) -> Result<Option<Cluster>> {
    let Ok(admin) = std::env::var("ORCH_TEST_DATABASE_URL") else {
        println!("      (skipped: ORCH_TEST_DATABASE_URL names no PostgreSQL server)");
        return Ok(None);
    };
    let name = format!("orch_e2e_{tag}_{}", std::process::id());
    let dir = s.dir().join("cluster");
    Cluster::new(&dir, s.binary().to_path_buf(), &admin, &name).map(Some)
}

/// Runs the scenario; skipped (with a line saying so) without a PostgreSQL server.
pub(crate) fn scenario(s: &Sandbox) -> Result<()> {
    let Some(c) = cluster(s, "workers")? else {
        return Ok(());
    };
    for clone in ["coord1", "coord2", "coord3", "w1", "w2", "w3"] {
        c.clone_of(clone)?;
    }
    c.ok("coord1", &["init"])?;
    for i in 1..=TASKS {
        c.ok("coord1", &["task", "add", &format!("t{i}")])?;
    }
    let workers: Vec<Group> = ["w1", "w2", "w3"]
        .iter()
        .map(|w| c.spawn(w, &["worker", "--name", w, "--concurrency", "2"]))
        .collect::<Result<_>>()?;
    let mut workers: Vec<Option<Group>> = workers.into_iter().map(Some).collect();
    let run_args = [
        "run",
        "--agent-cmd",
        AGENT,
        "--validate",
        "test -s f$ORCH_TASK_ID.txt",
    ];
    let coord = c.spawn("coord1", &run_args)?;
    kill_a_worker(&c, &mut workers)?;
    // The coordinator dies twice; another clone takes the run over each time.
    let run_id = run_id_in(&c, "coord1")?;
    let mut coord = Some(coord);
    for (after, next) in [(8, "coord2"), (16, "coord3")] {
        until("tasks done", Duration::from_secs(120), || {
            Ok(c.done()? >= after)
        })?;
        drop(coord.take());
        coord = Some(c.spawn(next, &["run", "resume", &run_id])?);
    }
    let coord = coord.context("a coordinator")?;
    let all = until("every task done", Duration::from_secs(180), || {
        Ok(c.done()? == TASKS)
    });
    if let Err(e) = all {
        for l in ["coord1", "coord2", "coord3", "w1", "w2", "w3"] {
            let log = c.log(l);
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            println!(
                "--- {l}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        return Err(e);
    }
    until("the run's end", Duration::from_secs(60), || {
        Ok(c.log("coord3").contains("completed"))
    })?;
    drop(coord);
    drop(workers);
    for next in ["coord2", "coord3"] {
        let log = c.log(next);
        let took = log.lines().find(|l| l.contains("resuming run"));
        ensure!(took.is_some(), "{next} did not take the run over:\n{log}");
        for l in log.lines().filter(|l| {
            l.contains("took the run over") || l.contains("waited") || l.contains("resumed:")
        }) {
            println!("      {next}: {}", l.trim());
        }
    }
    check_end(&c)
}

/// Kills w1 with SIGKILL while its agent works; its job must finish on another worker
/// within the lease TTL plus 5 s.
fn kill_a_worker(c: &Cluster, workers: &mut [Option<Group>]) -> Result<()> {
    let mut job = String::new();
    until("w1's first job", Duration::from_secs(60), || {
        let log = c.log("w1");
        job = log
            .lines()
            .find_map(|l| {
                l.strip_prefix("claimed job ")
                    .and_then(|r| r.split(':').next())
            })
            .unwrap_or_default()
            .to_owned();
        Ok(!job.is_empty())
    })?;
    std::thread::sleep(Duration::from_millis(300));
    drop(workers[0].take());
    let posted = format!("posted job {job}:");
    let took = until(
        "the job on another worker",
        Duration::from_secs(TTL_S + 30),
        || Ok(c.log("w2").contains(&posted) || c.log("w3").contains(&posted)),
    )?;
    ensure!(
        took <= Duration::from_secs(TTL_S + 5),
        "job {job} took {took:?} to finish elsewhere (lease TTL {TTL_S}s)"
    );
    println!(
        "      w1 killed mid-agent: job {job} finished on another worker {:.1}s later",
        took.as_secs_f64()
    );
    // It comes back: it clears what it left, and takes jobs again.
    workers[0] = Some(c.spawn("w1", &["worker", "--name", "w1", "--concurrency", "2"])?);
    Ok(())
}

/// Every task merged once on the remote's line, with its file; no job, no worktree.
fn check_end(c: &Cluster) -> Result<()> {
    let remote = c.dir.join("remote.git");
    let merges = sh(&remote, "git log --merges --format=%s orch/integration")?;
    for i in 1..=TASKS {
        let n = merges
            .lines()
            .filter(|l| l.starts_with(&format!("Merge task-{i}:")))
            .count();
        ensure!(n == 1, "task {i} merged {n} times:\n{merges}");
        let f = sh(&remote, &format!("git show orch/integration:f{i}.txt"))?;
        ensure!(f == i.to_string(), "f{i}.txt holds {f:?}");
    }
    let local = sh(&c.dir.join("coord3"), "git rev-parse orch/integration")?;
    let on_remote = sh(&remote, "git rev-parse orch/integration")?;
    ensure!(
        local == on_remote,
        "the line: {local} here, {on_remote} on the remote"
    );
    ensure!(c.psql("SELECT count(*) FROM jobs")? == "0", "jobs are left");
    // Each worker keeps only its pool's worktrees, none of them held.
    for w in ["w1", "w2", "w3"] {
        let list = "git worktree list --porcelain | sed -n 's/^worktree //p'";
        let wts = sh(&c.dir.join(w), list)?;
        for wt in wts.lines().skip(1) {
            let pooled = wt.contains(&format!("/workers/{w}/pool/"));
            ensure!(pooled, "{w} left the worktree {wt}");
        }
    }
    for w in ["w1", "w2", "w3"] {
        let list = "git for-each-ref refs/remotes/origin/orch refs/heads/orch";
        let refs = sh(&c.dir.join(w), list)?;
        ensure!(refs.is_empty(), "{w} kept refs:\n{refs}\n{}", c.log(w));
    }
    // No worker's pool lends a worktree any more. (A killed coordinator's pool may
    // still lend its integration checkout to the run until that clone's next
    // `orch cleanup`.)
    let leased = c.psql(
        "SELECT string_agg(path, ', ') FROM pool WHERE state = 'leased' AND path LIKE '%/workers/%'",
    )?;
    ensure!(leased.is_empty(), "pooled worktrees still leased: {leased}");
    // A machine that ran nothing shows any attempt's logs, from the store.
    c.clone_of("viewer")?;
    let logs = c.ok("viewer", &["logs", "--task", "7", "--raw"])?;
    ensure!(
        logs.contains("agent of task 7"),
        "orch logs elsewhere:\n{logs}"
    );
    let interrupted = c.psql("SELECT count(*) FROM events WHERE kind = 'job.interrupted'")?;
    ensure!(interrupted != "0", "no job.interrupted in the journal");
    Ok(())
}

/// `orch run cancel` on a run whose agent works on a worker: the worker stops the
/// agent at once (the cancel is announced), posts, and the run ends canceled with its
/// task back in the backlog and no job left.
pub(crate) fn cancel(s: &Sandbox) -> Result<()> {
    let Some(c) = cluster(s, "cancel")? else {
        return Ok(());
    };
    for clone in ["coord", "w1"] {
        c.clone_of(clone)?;
    }
    c.ok("coord", &["init"])?;
    c.ok("coord", &["task", "add", "long"])?;
    let worker = c.spawn("w1", &["worker", "--name", "w1"])?;
    let agent = "echo started; sleep 60";
    let run = c.spawn("coord", &["run", "--agent-cmd", agent])?;
    until("the agent on w1", Duration::from_secs(60), || {
        Ok(c.log("w1").contains("claimed job"))
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let id = run_id_in(&c, "coord")?;
    c.ok("coord", &["run", "cancel", &id])?;
    let took = until("the run's end", Duration::from_secs(30), || {
        Ok(c.log("coord").contains("canceled."))
    })?;
    ensure!(took < Duration::from_secs(5), "the cancel took {took:?}");
    ensure!(c.log("w1").contains("Signal(15)"), "w1: {}", c.log("w1"));
    ensure!(c.psql("SELECT count(*) FROM jobs")? == "0", "jobs are left");
    let tasks: Value = serde_json::from_str(&c.ok("coord", &["task", "list", "--json"])?)?;
    ensure!(tasks[0]["status"] == "backlog", "{tasks}");
    println!(
        "      a cancel stopped the agent on its worker; the run ended {:.1}s later",
        took.as_secs_f64()
    );
    drop(run);
    drop(worker);
    Ok(())
}

fn run_id_in(c: &Cluster, clone: &str) -> Result<String> {
    let mut id = String::new();
    until("the run's id", Duration::from_secs(30), || {
        let runs: Value = serde_json::from_str(&c.ok(clone, &["run", "list", "--json"])?)?;
        id = runs[0]["id"].as_str().unwrap_or_default().to_owned();
        Ok(!id.is_empty())
    })?;
    Ok(id)
}

/// A job left queued past its deadline (its coordinator died, no worker was up) is not
/// run when a worker comes: it is posted failed, and the resumed run tries the task
/// again, which a worker then runs.
pub(crate) fn deadline(s: &Sandbox) -> Result<()> {
    let Some(c) = cluster(s, "deadline")? else {
        return Ok(());
    };
    for clone in ["coord", "w1"] {
        c.clone_of(clone)?;
    }
    c.ok("coord", &["init"])?;
    c.ok("coord", &["task", "add", "late"])?;
    let agent = "echo ran >> \"$HOME/../ran.log\"; echo x > late.txt";
    let args = ["-c", "agent.timeout=3s", "run", "--agent-cmd", agent];
    let coord = c.spawn("coord", &args)?;
    until("the job", Duration::from_secs(30), || {
        Ok(c.psql("SELECT count(*) FROM jobs")? == "1")
    })?;
    drop(coord);
    std::thread::sleep(Duration::from_secs(4));
    let worker = c.spawn("w1", &["worker", "--name", "w1"])?;
    until("the stale job posted", Duration::from_secs(30), || {
        Ok(c.log("w1").contains("posted job"))
    })?;
    ensure!(
        c.log("w1").contains("deadline passed"),
        "w1: {}",
        c.log("w1")
    );
    let id = run_id_in(&c, "coord")?;
    let resume = c.spawn("coord", &["run", "resume", &id])?;
    until("the task done", Duration::from_secs(60), || {
        let tasks: Value = serde_json::from_str(&c.ok("coord", &["task", "list", "--json"])?)?;
        Ok(tasks[0]["status"] == "done")
    })?;
    let ran = std::fs::read_to_string(c.dir.join("ran.log")).unwrap_or_default();
    ensure!(
        ran.lines().count() == 1,
        "the agent ran {} times",
        ran.lines().count()
    );
    drop(resume);
    drop(worker);
    Ok(())
}
