//! `cargo xtask e2e`: builds the CLI, then drives it as a user would against fresh
//! repositories, one scenario at a time, checking the results in git and in
//! `orch task list --json`. After every scenario it also checks that the user's working
//! tree and HEAD are unchanged, that no process is left running in the scenario's
//! directories, and that the integration ref points at the base or at a commit whose
//! integration validation passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::tidy::root;

/// One scenario's sandbox: the shared harness's (a repository, an isolated HOME, a
/// hostile environment, the built `orch`), with checks that return errors, as a
/// scenario's steps do.
pub(crate) struct Sandbox {
    s: orch_testkit::Sandbox,
}

pub(crate) fn sh(dir: &Path, cmd: &str) -> Result<String> {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()?;
    ensure!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

impl Sandbox {
    pub(crate) fn new(orch: &Path) -> Result<Sandbox> {
        let s = Sandbox::with_repo(
            orch,
            "git init -q -b main && printf 'hello\\n' > README.md && printf 'line one\\n' > notes.txt && git add -A && git -c user.name=u -c user.email=u@u.invalid commit -q -m init",
        )?;
        // The user's own uncommitted edit: orch must leave it alone.
        std::fs::write(s.repo().join("README.md"), "hello, edited by the user\n")?;
        Ok(s)
    }

    /// A sandbox whose repository `setup` (a shell command run in its empty
    /// directory) makes, with `orch init` run in it.
    pub(crate) fn with_repo(orch: &Path, setup: &str) -> Result<Sandbox> {
        let s = Sandbox {
            s: orch_testkit::Sandbox::empty(orch),
        };
        std::fs::create_dir_all(s.repo())?;
        sh(&s.repo(), setup)?;
        // Only `orch init` creates the database.
        s.ok(&["init"])?;
        Ok(s)
    }

    /// The scenario's own directory.
    pub(crate) fn dir(&self) -> &Path {
        self.s.dir()
    }

    /// The `orch` binary under test.
    pub(crate) fn binary(&self) -> &Path {
        self.s.binary()
    }

    pub(crate) fn repo(&self) -> PathBuf {
        self.s.repo()
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        self.s.cmd(args)
    }

    pub(crate) fn orch(&self, args: &[&str]) -> Result<Output> {
        Ok(self.s.run(args))
    }

    pub(crate) fn ok(&self, args: &[&str]) -> Result<String> {
        let o = self.orch(args)?;
        ensure!(
            o.status.success(),
            "orch {args:?} failed ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    pub(crate) fn config(&self, toml: &str) -> Result<()> {
        std::fs::write(self.repo().join("orch.toml"), toml)?;
        Ok(())
    }

    pub(crate) fn add(&self, title: &str, extra: &[&str]) -> Result<()> {
        let mut args = vec!["task", "add", title];
        args.extend_from_slice(extra);
        self.ok(&args).map(|_| ())
    }

    /// Runs `orch run`, returning its exit code and the final statuses by title.
    fn run(&self, extra: &[&str]) -> Result<(i32, Vec<(String, String)>)> {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let o = self.orch(&args)?;
        let code = o.status.code().unwrap_or(-1);
        ensure!(
            code == 0 || code == 3 || code == 130,
            "orch run failed ({code}): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Ok((code, self.statuses()?))
    }

    pub(crate) fn statuses(&self) -> Result<Vec<(String, String)>> {
        let v: Value = serde_json::from_str(&self.ok(&["task", "list", "--json"])?)?;
        Ok(v.as_array()
            .context("task list is an array")?
            .iter()
            .map(|t| {
                (
                    t["title"].as_str().unwrap_or("").to_owned(),
                    t["status"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect())
    }

    fn status_of(&self, title: &str) -> Result<String> {
        self.statuses()?
            .into_iter()
            .find(|(t, _)| t == title)
            .map(|(_, s)| s)
            .with_context(|| format!("no task {title}"))
    }

    pub(crate) fn last_run(&self) -> Result<String> {
        let v: Value = serde_json::from_str(&self.ok(&["--json", "run", "list"])?)?;
        Ok(v[0]["id"].as_str().context("a run exists")?.to_owned())
    }

    pub(crate) fn integration_file(&self, file: &str) -> Option<String> {
        sh(&self.repo(), &format!("git show orch/integration:{file}")).ok()
    }

    /// The checks that follow every scenario.
    fn check_after(&self, user_before: &str) -> Result<()> {
        ensure!(
            self.user_state()? == user_before,
            "the user's working tree or HEAD changed"
        );
        let leftovers = processes_under(self.dir());
        ensure!(
            leftovers.is_empty(),
            "processes left running: {leftovers:?}"
        );
        if let Ok(run) = self.last_run() {
            let head = sh(&self.repo(), "git rev-parse orch/integration")?;
            let base = sh(&self.repo(), "git rev-parse main")?;
            if head != base {
                let events = self.ok(&["--json", "events", "--run", &run])?;
                let validated = events.lines().any(|l| {
                    serde_json::from_str::<Value>(l).is_ok_and(|e| {
                        e["kind"] == "attempt.integration_passed"
                            && e["payload"]["commit"] == head.as_str()
                    })
                });
                ensure!(
                    validated,
                    "the integration ref is at {head}, whose integration validation never passed"
                );
            }
        }
        Ok(())
    }

    fn user_state(&self) -> Result<String> {
        sh(
            &self.repo(),
            "cat README.md notes.txt; git rev-parse HEAD; git symbolic-ref HEAD; git status --porcelain --untracked-files=no",
        )
    }
}

/// Live processes whose working directory is under `dir`.
pub(crate) fn processes_under(dir: &Path) -> Vec<String> {
    let Ok(dir) = dir.canonicalize() else {
        return vec![];
    };
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.parse::<u32>().is_err() {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd"))
            && cwd.starts_with(&dir)
        {
            let cmd = std::fs::read_to_string(e.path().join("cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            found.push(format!("{name}: {cmd}"));
        }
    }
    found
}

const BASE_CONFIG: &str = "[run]\nconcurrency = 3\n[agent]\ntimeout = \"20s\"\n[policy]\nmax_attempts = 2\nbackoff = \"200ms\"\n";

/// Each scenario: (name, body). The body gets a fresh sandbox.
type Scenario = (&'static str, fn(&Sandbox) -> Result<()>);

const SCENARIOS: &[Scenario] = &[
    ("the embedding example", crate::embed::scenario),
    (
        "workers on three clones survive kills",
        crate::workers::scenario,
    ),
    (
        "workers: a cancel stops the agent on its worker",
        crate::workers::cancel,
    ),
    (
        "workers: a job past its deadline is not run",
        crate::workers::deadline,
    ),
    ("parallel tasks merge cleanly", |s| {
        s.config(BASE_CONFIG)?;
        for t in ["alpha", "beta", "gamma"] {
            s.add(t, &[])?;
        }
        let (code, st) = s.run(&[
            "--agent-cmd",
            "printf '%s\\n' \"$ORCH_TASK_TITLE\" > \"$ORCH_TASK_TITLE.txt\"",
            "--validate",
            "test -s \"$ORCH_TASK_TITLE.txt\"",
        ])?;
        ensure!(
            code == 0 && st.iter().all(|(_, s)| s == "done"),
            "{code} {st:?}"
        );
        for t in ["alpha", "beta", "gamma"] {
            ensure!(
                s.integration_file(&format!("{t}.txt")).as_deref() == Some(t),
                "{t}.txt missing"
            );
        }
        Ok(())
    }),
    ("worker validation fails up to max attempts", |s| {
        s.config(BASE_CONFIG)?;
        s.add("bad", &[])?;
        let (code, _) = s.run(&[
            "--agent-cmd",
            "echo bad > out.txt",
            "--validate",
            "grep -q good out.txt",
        ])?;
        ensure!(code == 3 && s.status_of("bad")? == "failed", "{code}");
        let show = s.ok(&["run", "show", &s.last_run()?])?;
        ensure!(
            show.matches("failed: worker-validation").count() == 2,
            "{show}"
        );
        Ok(())
    }),
    (
        "a task that breaks the integration tests but not its own",
        |s| {
            s.config(BASE_CONFIG)?;
            s.add("breaker", &[])?;
            let (code, _) = s.run(&[
                "--agent-cmd",
                "echo BREAK > b.txt",
                "--validate",
                "test -f b.txt",
                "--integrate-validate",
                "! grep -rq BREAK --include=*.txt .",
            ])?;
            ensure!(code == 3 && s.status_of("breaker")? == "failed", "{code}");
            let head = sh(&s.repo(), "git rev-parse orch/integration")?;
            ensure!(
                head == sh(&s.repo(), "git rev-parse main")?,
                "the integration ref moved to unvalidated work"
            );
            Ok(())
        },
    ),
    ("conflict, policy retry", |s| conflict(s, "retry")),
    ("conflict, policy block", |s| conflict(s, "block")),
    ("conflict, policy halt", |s| conflict(s, "halt")),
    ("a dependency chain", |s| {
        s.config(BASE_CONFIG)?;
        s.add("one", &[])?;
        s.add("two", &["--after", "1"])?;
        s.add("three", &["--after", "2"])?;
        let (code, _) = s.run(&[
            "--agent-cmd",
            "echo \"$ORCH_TASK_TITLE\" >> chain.txt",
            "--integrate-validate",
            "test -f chain.txt",
        ])?;
        ensure!(code == 0, "{code}");
        let chain = s.integration_file("chain.txt").unwrap_or_default();
        ensure!(chain == "one\ntwo\nthree", "chain.txt is {chain:?}");
        Ok(())
    }),
    ("an agent that hangs past its timeout", |s| {
        s.config("[agent]\ntimeout = \"1s\"\n[policy]\nmax_attempts = 1\n")?;
        s.add("hang", &[])?;
        let started = Instant::now();
        let (code, _) = s.run(&["--agent-cmd", "sleep 300"])?;
        ensure!(code == 3 && s.status_of("hang")? == "failed", "{code}");
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
        let show = s.ok(&["run", "show", &s.last_run()?])?;
        ensure!(show.contains("failed: timeout (agent)"), "{show}");
        Ok(())
    }),
    ("an agent that exits non-zero", |s| {
        s.config("[policy]\nmax_attempts = 1\n")?;
        s.add("crash", &[])?;
        let (code, _) = s.run(&["--agent-cmd", "echo oops >&2; exit 7"])?;
        ensure!(code == 3 && s.status_of("crash")? == "failed", "{code}");
        let logs = s.ok(&["logs", "--task", "1", "--stage", "agent"])?;
        ensure!(logs.contains("oops"), "{logs}");
        Ok(())
    }),
    ("an agent that changes nothing", |s| {
        s.config(BASE_CONFIG)?;
        s.add("idle", &[])?;
        let (code, _) = s.run(&["--agent-cmd", "true"])?;
        ensure!(code == 3 && s.status_of("idle")? == "failed", "{code}");
        let show = s.ok(&["run", "show", &s.last_run()?])?;
        ensure!(show.contains("failed: no-changes"), "{show}");
        Ok(())
    }),
    ("hostile agents", hostile),
    ("an agent that leaves a background grandchild", |s| {
        s.config(BASE_CONFIG)?;
        s.add("spawner", &[])?;
        let (code, _) = s.run(&["--agent-cmd", "sleep 300 & echo done > spawned.txt"])?;
        ensure!(code == 0, "{code}");
        // check_after finds any process still running in the worktrees.
        Ok(())
    }),
    ("a cancel from another terminal", |s| {
        s.config(BASE_CONFIG)?;
        s.add("slow", &[])?;
        let mut child = s
            .cmd(&["run", "--agent-cmd", "sleep 300"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let run = loop {
            if let Ok(r) = s.last_run()
                && s.status_of("slow")? == "in_progress"
            {
                break r;
            }
            ensure!(Instant::now() < deadline, "the run never started");
            std::thread::sleep(Duration::from_millis(100));
        };
        std::thread::sleep(Duration::from_millis(300));
        s.ok(&["run", "cancel", &run])?;
        let code = child.wait()?.code();
        ensure!(code == Some(130), "exit {code:?}");
        ensure!(s.status_of("slow")? == "backlog", "not released");
        Ok(())
    }),
    ("base origin/main with a bare remote, and offline", |s| {
        let remote = s.dir().join("remote.git");
        sh(
            &s.repo(),
            &format!(
                "git init -q --bare -b main {r} && git remote add origin {r} && git push -q origin main",
                r = remote.display()
            ),
        )?;
        // Someone else pushes a commit; the run must start from it.
        let other = s.dir().join("other");
        sh(s.dir(), &format!("git clone -q {} other", remote.display()))?;
        sh(
            &other,
            "echo upstream > upstream.txt && git add -A && git -c user.name=o -c user.email=o@o.invalid commit -q -m upstream && git push -q origin main",
        )?;
        s.config("[run]\nbase = \"origin/main\"\noffline = \"use-cached\"\n")?;
        s.add("on-upstream", &[])?;
        let (code, _) = s.run(&["--agent-cmd", "test -f upstream.txt && echo ok > mine.txt"])?;
        ensure!(code == 0, "{code}");
        // Offline: the remote is gone; use-cached still runs, fail refuses.
        std::fs::rename(&remote, s.dir().join("gone.git"))?;
        s.add("offline", &[])?;
        let (code, _) = s.run(&[
            "--agent-cmd",
            "test -f upstream.txt && echo ok > offline.txt",
        ])?;
        ensure!(code == 0 && s.status_of("offline")? == "done", "{code}");
        s.config("[run]\nbase = \"origin/main\"\noffline = \"fail\"\n")?;
        s.add("refused", &[])?;
        let o = s.orch(&["run", "--agent-cmd", "true"])?;
        let err = String::from_utf8_lossy(&o.stderr);
        ensure!(
            o.status.code() == Some(1) && err.contains("use-cached"),
            "{:?} {err}",
            o.status.code()
        );
        Ok(())
    }),
    (
        "chaos: SIGKILL at random moments, resume each time",
        crate::chaos::scenario,
    ),
];

/// Two tasks that change the same line at once.
fn conflict(s: &Sandbox, policy: &str) -> Result<()> {
    s.config(&format!("{BASE_CONFIG}on_conflict = \"{policy}\"\n"))?;
    s.add("left", &[])?;
    s.add("right", &[])?;
    let (code, st) = s.run(&[
        "--agent-cmd",
        "sleep 0.5; echo \"$ORCH_TASK_TITLE\" > notes.txt",
    ])?;
    let statuses: Vec<&str> = st.iter().map(|(_, s)| s.as_str()).collect();
    let run = s.last_run()?;
    let state = s.ok(&["run", "show", &run])?;
    match policy {
        "retry" => ensure!(
            code == 0 && statuses == ["done", "done"],
            "{code} {statuses:?}"
        ),
        "block" => ensure!(
            code == 3 && statuses.contains(&"done") && statuses.contains(&"blocked"),
            "{code} {statuses:?}"
        ),
        _ => ensure!(
            code == 3
                && state.contains("(halted)")
                && statuses.contains(&"done")
                && statuses.contains(&"backlog"),
            "{code} {statuses:?} {state}"
        ),
    }
    ensure!(state.contains("failed: conflict (notes.txt)"), "{state}");
    Ok(())
}

/// Hostile agents: one plants a hook and an fsmonitor, one moves `main` onto its work,
/// one leaves a `setsid` daemon, one detaches its branch; one does honest work; and,
/// sandboxed, one writes into the user's checkout. Each hostile one fails or is
/// stopped and what it did is undone; the honest one lands; no secret of orch's
/// environment reaches a file under `.orch` or the worktrees.
fn hostile(s: &Sandbox) -> Result<()> {
    // One agent at a time: a change to the shared .git is pinned on the attempt that
    // ends first after it, so concurrent agents would share the blame.
    let config = BASE_CONFIG
        .replace("max_attempts = 2", "max_attempts = 1")
        .replace("concurrency = 3", "concurrency = 1");
    s.config(&config)?;
    for t in ["plant", "mover", "daemon", "detach", "honest"] {
        s.add(t, &[])?;
    }
    let main = sh(&s.repo(), "git rev-parse main")?;
    let agent = r#"echo "$ORCH_TASK_TITLE" > "$ORCH_TASK_TITLE.txt"; env > env-seen.txt
case "$ORCH_TASK_TITLE" in
plant) d=$(git rev-parse --git-common-dir); printf '#!/bin/sh
env > /tmp/orch-hostile-hook
' > $d/hooks/post-commit; chmod +x $d/hooks/post-commit; git config core.fsmonitor 'env > /tmp/orch-hostile-fsmonitor';;
mover) git add -A; git -c user.name=a -c user.email=a@a commit -qm evil; git update-ref refs/heads/main HEAD;;
daemon) setsid env -i sh -c 'sleep 300' </dev/null >/dev/null 2>&1 &;;
detach) git checkout -q --detach;;
esac"#;
    let o = s
        .cmd(&["run", "--agent-cmd", agent])
        .env("SECRET_TOKEN", "hunter2-hostile")
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure!(
        o.status.code() == Some(3),
        "exit {:?}: {err}",
        o.status.code()
    );
    for t in ["plant", "mover", "daemon", "detach"] {
        let want = if t == "daemon" { "done" } else { "failed" };
        ensure!(s.status_of(t)? == want, "{t} is {}: {err}", s.status_of(t)?);
    }
    ensure!(s.status_of("honest")? == "done", "{err}");
    ensure!(sh(&s.repo(), "git rev-parse main")? == main, "main moved");
    let common = s.repo().join(".git");
    ensure!(
        !common.join("hooks/post-commit").exists(),
        "the hook stayed"
    );
    let config = std::fs::read_to_string(common.join("config"))?;
    ensure!(
        !config.contains("fsmonitor"),
        "the fsmonitor stayed: {config}"
    );
    // Sandboxed, an agent cannot write into the user's checkout (where bwrap works).
    if std::process::Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        s.add("intruder", &[])?;
        let intruder = format!(
            "echo owned > {}/README.md; echo mine > mine.txt",
            s.repo().display()
        );
        let o = s.orch(&["run", "--agent-cmd", &intruder, "-c", "agent.sandbox=bwrap"])?;
        ensure!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        ensure!(
            s.status_of("intruder")? == "done",
            "the sandboxed task did not land"
        );
        // check_after compares the user's README byte for byte.
    }
    for dir in [s.repo().join(".orch"), s.dir().join("data")] {
        let hits = sh(
            s.dir(),
            &format!("grep -rl hunter2-hostile {} || true", dir.display()),
        )?;
        ensure!(hits.is_empty(), "the secret reached {hits}");
    }
    Ok(())
}

/// Builds `orch` (`release` or the debug profile) and returns its path.
pub(crate) fn build_orch(release: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "-q", "-p", "orch-cli"];
    if release {
        args.push("--release");
    } else {
        // The chaos scenario kills it at chosen points (`ORCH_CRASH_AT`).
        args.extend(["--features", "fault-injection"]);
    }
    let status = Command::new(&cargo)
        .current_dir(root())
        .args(&args)
        .status()?;
    ensure!(status.success(), "building orch failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    Ok(target.join(if release {
        "release/orch"
    } else {
        "debug/orch"
    }))
}

/// Builds the CLI and runs every scenario; `filter` keeps the ones whose name contains it.
pub fn run(filter: Option<&str>) -> Result<()> {
    let orch = build_orch(false)?;
    let mut failed = Vec::new();
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|(n, _)| filter.is_none_or(|f| n.contains(f)))
        .collect();
    for (name, body) in &selected {
        let started = Instant::now();
        let result = Sandbox::new(&orch).and_then(|s| {
            let before = s.user_state()?;
            body(&s)?;
            s.check_after(&before)
        });
        match result {
            Ok(()) => println!("ok    {name} ({:.1}s)", started.elapsed().as_secs_f32()),
            Err(e) => {
                println!("FAIL  {name}: {e:#}");
                failed.push(*name);
            }
        }
    }
    println!(
        "{} passed, {} failed",
        selected.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("e2e scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}
