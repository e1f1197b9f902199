//! `orch cleanup`'s output: its `--json` shapes and its lines.

use std::path::PathBuf;

use orch_engine::upkeep::cleanup::{Preview, Report};
use orch_engine::upkeep::pool::PoolRemoval;
use serde::Serialize;

#[derive(Serialize)]
struct KeptJson<'a> {
    what: &'a str,
    why: &'a str,
}

#[derive(Serialize)]
struct WorktreeJson<'a> {
    path: &'a PathBuf,
    branch: &'a Option<String>,
    dirty: Option<bool>,
    prunable: bool,
}

#[derive(Serialize)]
struct BranchJson<'a> {
    name: &'a str,
    merged: bool,
}

#[derive(Serialize)]
struct StrayJson<'a> {
    path: &'a PathBuf,
    has_files: bool,
}

#[derive(Serialize)]
struct ProcessJson<'a> {
    pid: i32,
    pgid: i32,
    run: &'a str,
    command: &'a str,
}

/// `orch cleanup --dry-run --json`.
#[derive(Serialize)]
struct PreviewJson<'a> {
    worktrees: Vec<WorktreeJson<'a>>,
    branches: Vec<BranchJson<'a>>,
    unregistered_directories: Vec<StrayJson<'a>>,
    processes: Vec<ProcessJson<'a>>,
    kept: Vec<KeptJson<'a>>,
    /// With `--pool`: what it would remove of the pool, and keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<PoolRemovalJson<'a>>,
}

/// `orch cleanup --json`.
#[derive(Serialize)]
struct ReportJson<'a> {
    removed_worktrees: &'a [PathBuf],
    deleted_branches: &'a [String],
    removed_directories: &'a [PathBuf],
    stopped_process_groups: &'a [i32],
    kept: Vec<KeptJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool: Option<PoolRemovalJson<'a>>,
}

/// `orch cleanup --pool --json`'s `pool` (with `--dry-run`: what it would do).
#[derive(Serialize)]
struct PoolRemovalJson<'a> {
    removed: Vec<PoolPathJson<'a>>,
    freed_bytes: u64,
    kept: Vec<KeptJson<'a>>,
}

#[derive(Serialize)]
struct PoolPathJson<'a> {
    path: &'a std::path::Path,
    bytes: u64,
}

impl<'a> PoolRemovalJson<'a> {
    fn new(p: &'a PoolRemoval) -> PoolRemovalJson<'a> {
        PoolRemovalJson {
            removed: p
                .removed
                .iter()
                .map(|(path, bytes)| PoolPathJson {
                    path,
                    bytes: *bytes,
                })
                .collect(),
            freed_bytes: p.bytes_freed(),
            kept: kept(&p.kept),
        }
    }
}

/// The pool's lines: what was (or, `would`, would be) removed and kept.
fn print_pool(p: &PoolRemoval, would: bool) {
    let size = |b: u64| orch_engine::core::units::ByteSize(b).approx();
    let (removed, kept) = match would {
        true => ("would remove", "would keep"),
        false => ("removed", "kept"),
    };
    for (path, b) in &p.removed {
        println!(
            "{removed} pooled worktree {} ({})",
            path.display(),
            size(*b)
        );
    }
    for k in &p.kept {
        println!("{kept} pooled worktree {}: {}", k.what, k.why);
    }
}

fn kept(k: &[orch_engine::core::cleanup::Kept]) -> Vec<KeptJson<'_>> {
    k.iter()
        .map(|k| KeptJson {
            what: &k.what,
            why: &k.why,
        })
        .collect()
}

impl<'a> PreviewJson<'a> {
    fn new(p: &'a Preview, pool: Option<&'a PoolRemoval>) -> PreviewJson<'a> {
        PreviewJson {
            pool: pool.map(PoolRemovalJson::new),
            worktrees: p
                .worktrees
                .iter()
                .map(|w| WorktreeJson {
                    path: &w.path,
                    branch: &w.branch,
                    dirty: w.dirty,
                    prunable: w.prunable,
                })
                .collect(),
            branches: p
                .branches
                .iter()
                .map(|b| BranchJson {
                    name: &b.name,
                    merged: b.merged,
                })
                .collect(),
            unregistered_directories: p
                .strays
                .iter()
                .map(|s| StrayJson {
                    path: &s.path,
                    has_files: s.has_files,
                })
                .collect(),
            processes: p
                .processes
                .iter()
                .map(|x| ProcessJson {
                    pid: x.pid,
                    pgid: x.pgid,
                    run: &x.run,
                    command: &x.command,
                })
                .collect(),
            kept: kept(&p.kept),
        }
    }
}

/// Prints what a cleanup would do.
pub fn print_preview(p: &Preview, pool: Option<&PoolRemoval>, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(&PreviewJson::new(p, pool));
    }
    if let Some(pool) = pool {
        print_pool(pool, true);
    }
    let nothing = p.worktrees.is_empty()
        && p.branches.is_empty()
        && p.strays.is_empty()
        && p.processes.is_empty();
    if nothing && p.kept.is_empty() {
        println!("Nothing to clean up.");
    } else if nothing {
        println!("Nothing to remove.");
    }
    for k in &p.kept {
        println!("would keep {}: {}", k.what, k.why);
    }
    for w in &p.worktrees {
        let note = match (w.prunable, w.dirty) {
            (true, _) => " (its directory is gone)",
            (_, Some(true)) => " (dirty: kept unless --force)",
            _ => "",
        };
        println!("would remove worktree {}{note}", w.path.display());
    }
    for b in &p.branches {
        let note = if b.merged {
            ""
        } else {
            " (work in no integration branch: kept unless --force)"
        };
        println!("would delete branch {}{note}", b.name);
    }
    for s in &p.strays {
        let note = if s.has_files {
            " (holds files: kept unless --force)"
        } else {
            ""
        };
        println!(
            "would remove {} (not a registered worktree){note}",
            s.path.display()
        );
    }
    for x in &p.processes {
        println!(
            "would stop process {} (group {}) of run {}: {}",
            x.pid, x.pgid, x.run, x.command
        );
    }
    Ok(())
}

/// Prints what a cleanup did, and what `--pool` removed of the pool.
pub fn print_report(r: &Report, pool: Option<&PoolRemoval>, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(&ReportJson {
            removed_worktrees: &r.removed_worktrees,
            deleted_branches: &r.deleted_branches,
            removed_directories: &r.removed_directories,
            stopped_process_groups: &r.stopped_process_groups,
            kept: kept(&r.kept),
            pool: pool.map(PoolRemovalJson::new),
        });
    }
    for w in &r.removed_worktrees {
        println!("removed worktree {}", w.display());
    }
    for b in &r.deleted_branches {
        println!("deleted branch {b}");
    }
    for d in &r.removed_directories {
        println!("removed {} (not a registered worktree)", d.display());
    }
    for g in &r.stopped_process_groups {
        println!("stopped process group {g} of a run no orch drives");
    }
    for k in &r.kept {
        println!("kept {}: {}", k.what, k.why);
    }
    if let Some(p) = pool {
        print_pool(p, false);
        println!(
            "pool: {} worktrees removed, {} freed",
            p.removed.len(),
            orch_engine::core::units::ByteSize(p.bytes_freed()).approx()
        );
    } else if r.is_empty() {
        println!("Nothing to clean up.");
    }
    Ok(())
}

#[derive(Serialize)]
struct ArtifactsJson<'a> {
    removed: Vec<SizedJson<'a>>,
    freed_bytes: u64,
    kept_bytes: u64,
    kept_runs: Vec<SizedJson<'a>>,
}

#[derive(Serialize)]
struct SizedJson<'a> {
    path: &'a str,
    bytes: u64,
}

/// Prints what artifact retention removed and kept.
pub fn print_artifacts(r: &orch_engine::GcReport, json: bool) -> anyhow::Result<()> {
    let removed: Vec<(String, u64)> = r
        .removed
        .iter()
        .map(|(p, b)| (p.display().to_string(), *b))
        .collect();
    if json {
        return super::print_json(&ArtifactsJson {
            removed: sized(&removed),
            freed_bytes: r.freed_bytes,
            kept_bytes: r.kept_bytes,
            kept_runs: sized(&r.kept_runs),
        });
    }
    let size = |b: u64| orch_engine::core::units::ByteSize(b).approx();
    for (p, b) in &removed {
        println!("removed {p} ({})", size(*b));
    }
    for (run, b) in &r.kept_runs {
        println!("kept run {run} ({})", size(*b));
    }
    println!(
        "artifacts: {} removed, {} freed, {} kept",
        removed.len(),
        size(r.freed_bytes),
        size(r.kept_bytes)
    );
    Ok(())
}

fn sized(v: &[(String, u64)]) -> Vec<SizedJson<'_>> {
    v.iter()
        .map(|(path, bytes)| SizedJson {
            path,
            bytes: *bytes,
        })
        .collect()
}
