//! `orch demo`: the whole lifecycle in a throwaway repository, with nothing to set up.
//!
//! It creates a git repository holding a tiny calculator in sh with a real test script,
//! imports a six-task board, and runs it with the scripted agent (which executes each
//! task's ```sh block): tasks run in parallel worktrees, one fails its validation and
//! passes on the retry, two conflict and one is retried on top of the other, and
//! everything validated lands on the integration branch. The user's own checkout of
//! the demo repository is never touched.

use std::path::Path;

use anyhow::{Context, Result, bail};
use orch_engine::run::setup::Target;

use super::board::parse_board;
use crate::cli::{DemoArgs, RunArgs};
use crate::ctx::Ctx;
use crate::error::BadInput;
use crate::output;
use orch_engine::Repo;

/// The demo board, also at `examples/demo/board.toml`.
const DEMO_BOARD: &str = include_str!("../../../../examples/demo/board.toml");

const TESTS_SH: &str = r#"# The calculator's tests: each function is checked once it exists.
set -e
. ./calc.sh
for f in mul.sh div.sh; do if [ -f "$f" ]; then . "./$f"; fi; done
check() {
  got=$("$@")
  if [ "$got" != "$expect" ]; then echo "FAIL: $* gave $got, expected $expect"; exit 1; fi
  echo "ok: $* = $got"
}
if command -v add >/dev/null; then expect=5 check add 2 3; fi
if command -v sub >/dev/null; then expect=4 check sub 9 5; fi
if command -v mul >/dev/null; then expect=20 check mul 4 5; fi
if command -v div >/dev/null; then expect=3 check div 9 3; fi
echo "all tests passed"
"#;

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let identity = [
        "-c",
        "user.name=orch demo",
        "-c",
        "user.email=demo@orch.invalid",
    ];
    let all: Vec<&str> = identity.iter().chain(args).copied().collect();
    let out = orch_engine::repo::git(dir, &all).context("running git")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs the demo and returns the run's exit code.
pub(crate) async fn demo(ctx: &Ctx, args: DemoArgs) -> Result<u8> {
    let dir = demo_dir(args.dir)?;
    let exe = std::env::current_exe().context("finding the orch binary")?;
    make_repo(&dir, &exe)?;
    let demo_ctx = Ctx {
        repo: Some(dir.clone()),
        set: Vec::new(),
        json: ctx.json,
    };
    let (mut repo, _) = Repo::init(&dir, &demo_ctx.options()).await?;
    let board = parse_board("examples/demo/board.toml", DEMO_BOARD)?;
    let report = repo.board("demo").import(&board).await?;
    eprintln!("orch demo: a throwaway repository at {}", dir.display());
    eprintln!(
        "orch demo: {} tasks imported; running them with the scripted agent\n",
        report.created.len()
    );
    let target = Target::New {
        beside_interrupted: false,
    };
    let (code, summary) = super::run::start(&demo_ctx, &run_args(), &mut repo, target).await?;
    let tasks = repo.board("demo").list(&[]).await?;
    repo.close().await?;
    if !ctx.json {
        tour(&dir, &exe, &summary, &tasks);
    }
    Ok(code)
}

/// `--dir`, which must be new or empty, or a fresh temporary directory.
fn demo_dir(dir: Option<std::path::PathBuf>) -> Result<std::path::PathBuf> {
    match dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                return Err(BadInput(format!(
                    "--dir {}: the directory is not empty; pass a new or empty directory",
                    d.display()
                ))
                .into());
            }
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            Ok(d.canonicalize()?)
        }
        None => Ok(tempfile::Builder::new()
            .prefix("orch-demo-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep()),
    }
}

/// The calculator repository, with its tests and an `orch.toml` for the demo.
fn make_repo(dir: &Path, exe: &Path) -> Result<()> {
    git(dir, &["init", "-q", "-b", "main"])?;
    std::fs::write(
        dir.join("README.md"),
        "# calc\n\nA tiny calculator, built by agents.\n",
    )?;
    std::fs::write(dir.join("calc.sh"), "# calc: arithmetic in sh\n")?;
    std::fs::write(dir.join("tests.sh"), TESTS_SH)?;
    git(dir, &["add", "-A"])?;
    let message = "A calculator with tests and no functions yet";
    git(dir, &["commit", "-q", "-m", message])?;
    let orch_toml = format!(
        "# Written by `orch demo`.\n\n[run]\nconcurrency = 4\n\n[agent]\n# The scripted agent runs each task's ```sh block.\ncommand = {}\ntimeout = \"2m\"\n\n[validate]\nworker = [\"sh tests.sh\"]\nintegration = [\"sh tests.sh\"]\ntimeout = \"1m\"\n\n[policy]\nmax_attempts = 2\nbackoff = \"1s\"\n\n[worktrees]\n# Beside the demo repository, so the demo leaves nothing in your data directory.\nroot = {}\n",
        toml_string(&format!(
            "{} scripted-agent",
            shlex::try_quote(&exe.display().to_string())
                .context("the path of orch itself holds a NUL byte")?
        )),
        toml_string(&format!("{}.worktrees", dir.display()))
    );
    std::fs::write(dir.join("orch.toml"), orch_toml)?;
    git(dir, &["add", "orch.toml"])?;
    git(dir, &["commit", "-q", "-m", "Configure orch"])
}

/// `orch run` with no flags: the repository's `orch.toml` says it all (the demo's, or
/// the one a resolution lands with).
pub(super) fn run_args() -> RunArgs {
    RunArgs {
        command: None,
        concurrency: None,
        mode: None,
        agent: None,
        agent_cmd: None,
        base: None,
        validate: Vec::new(),
        integrate_validate: Vec::new(),
        max_attempts: None,
        on_conflict: None,
        tasks: Vec::new(),
        planner: None,
        resume: false,
        json_events: false,
        new: false,
        watch: false,
    }
}

/// Where to look once the demo has run.
fn tour(
    dir: &Path,
    exe: &Path,
    summary: &orch_engine::RunSummary,
    tasks: &[orch_engine::core::Task],
) {
    let run = &summary.run;
    println!();
    print!(
        "{}",
        output::render_board(
            tasks,
            &[],
            &output::TaskUsage::new(),
            &output::Retrying::new(),
            80,
            false
        )
    );
    println!();
    println!("Look around:");
    println!("  cd {}", dir.display());
    println!(
        "  git log --oneline --graph {}        # the validated work",
        summary.integration_branch
    );
    println!(
        "  {} run show {run}        # every attempt, and why some failed",
        exe.display()
    );
    println!("  ls .orch/artifacts/{run}/*/*/        # prompts and logs");
    println!(
        "  git branch --list 'orch/{run}/*'        # failed attempts' branches, kept for inspection"
    );
    println!(
        "  {} pool        # the pooled worktrees, reused by the next run",
        exe.display()
    );
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
