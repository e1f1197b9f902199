//! Project automation, run as `cargo xtask <task>`.
//!
//! - `tidy`: repository rules that the compiler does not check: `orch-core` stays free
//!   of I/O dependencies and I/O calls, every Rust file opens with a `//!` doc, and
//!   library crates carry `#![warn(missing_docs)]` and `#![forbid(unsafe_code)]`.
//!   The same checks run as this crate's tests, so `cargo test --workspace` enforces them.
//! - `e2e [FILTER]`: builds the CLI and drives it through end-to-end scenarios against
//!   fresh repositories (see `e2e.rs`).
//! - `bench gate` (P3): landed tasks per hour at integration depth 1 against 4, with a
//!   scripted gate that sleeps `ORCH_BENCH_GATE_SECS` (2 s) and fails bad candidates.
//! - `bench run [--tasks N] [--files N]` (P1, P2, P6, disk): the worktree pool on a
//!   generated 20,000-file repository against a pooled bare-git script, provisioning
//!   against `git worktree add`, and warm `cargo build` gates (see `poolbench.rs`).
//! - `bench replay [--rust] [--whole-file]`: a real project's history as a
//!   backlog (24 commits of more-itertools, or 16 releases of semver with `--rust`),
//!   its own suite as both gates, by hand against orch (see `replay.rs`).
//! - `bench web`: the dashboard's board with 10,000 tasks, and 100 live clients
//!   during a 16-agent run (see `webbench.rs`).
//! - `bench workers`: the worker path (claim, fetch, push, post) against a local
//!   attempt, and tasks per minute with 1 and 3 workers (see `workerbench.rs`).
//! - `bench [core|import|validate|git]`: the criterion benchmarks (`core`: the orchestrator's
//!   `handle` on a 10,000-task board; `import`: a board file's dependency check on
//!   2,000- and 8,000-task chains; `validate`: the runner's spawn overhead; `git`:
//!   worktree, switch, merge and ref update on a 20,000-file repository, against the
//!   git CLI). Report ratios from one run: these machines are noisy.

mod chaos;
mod cycles;
mod docpaths;
mod e2e;
mod embed;
mod gatebench;
mod layers;
mod poolbench;
mod replay;
mod tidy;
mod webbench;
mod workerbench;
mod workers;

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The benchmark suites: name, package, bench target.
const BENCHES: &[(&str, &str, &str)] = &[
    ("core", "orch-core", "handle"),
    ("import", "orch-core", "import"),
    ("validate", "orch-validate", "spawn"),
    ("git", "orch-git", "git"),
];

fn bench(which: Option<&str>, rest: &[String]) -> Result<()> {
    if which == Some("run") {
        return poolbench::run(rest);
    }
    if which == Some("agents") {
        return poolbench::agents(rest);
    }
    if which == Some("growth") {
        return poolbench::growth(rest);
    }
    if which == Some("replay") {
        return replay::run(rest);
    }
    if which == Some("web") {
        return webbench::run();
    }
    if which == Some("workers") {
        return workerbench::run();
    }
    if which == Some("gate") {
        let secs = std::env::var("ORCH_BENCH_GATE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0);
        return gatebench::run(secs);
    }
    let selected: Vec<_> = BENCHES
        .iter()
        .filter(|(name, _, _)| which.is_none_or(|w| w == *name))
        .collect();
    if selected.is_empty() {
        let mut names: Vec<&str> = BENCHES.iter().map(|b| b.0).collect();
        names.extend([
            "agents", "gate", "growth", "replay", "run", "web", "workers",
        ]);
        bail!(
            "unknown benchmark {:?}; available: {}",
            which.unwrap_or(""),
            names.join(", ")
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (_, package, target) in selected {
        let status = Command::new(&cargo)
            .current_dir(tidy::root())
            .args(["bench", "-p", package, "--bench", target])
            .status()
            .context("running cargo bench")?;
        if !status.success() {
            bail!("cargo bench -p {package} --bench {target} failed");
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("tidy") => {
            let problems = tidy::all()?;
            if problems.is_empty() {
                println!("tidy: ok");
                Ok(())
            } else {
                for p in &problems {
                    eprintln!("tidy: {p}");
                }
                bail!("{} tidy problem(s)", problems.len())
            }
        }
        Some("bench") => bench(
            args.get(1).map(String::as_str),
            args.get(2..).unwrap_or(&[]),
        ),
        Some("e2e") => e2e::run(args.get(1).map(String::as_str)),
        Some(other) => bail!("unknown task {other:?}; available: tidy, bench, e2e"),
        None => bail!(
            "usage: cargo xtask <task>; available: tidy, bench [core|import|validate|git|gate|replay|run|web|workers], e2e [FILTER]"
        ),
    }
}
