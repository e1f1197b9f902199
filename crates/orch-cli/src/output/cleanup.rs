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

/// `orch cleanup --pool --json`'s `pool`.
#[derive(Serialize)]
struct PoolRemovalJson<'a> {
    removed: Vec<SizedJson<'a>>,
    freed_bytes: u64,
    kept: Vec<KeptJson<'a>>,
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
    fn new(
        p: &'a Preview,
        pool: Option<(&'a PoolRemoval, &'a [(String, u64)])>,
    ) -> PreviewJson<'a> {
        PreviewJson {
            pool: pool.map(|(p, paths)| PoolRemovalJson {
                removed: sized(paths),
                freed_bytes: p.bytes_freed(),
                kept: kept(&p.kept),
            }),
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
    let pool_paths = pool.map(pool_paths);
    if json {
        return super::print_json(&PreviewJson::new(p, pool.zip(pool_paths.as_deref())));
    }
    let size = |b: u64| orch_engine::core::units::ByteSize(b).approx();
    if let (Some(pool), Some(paths)) = (pool, &pool_paths) {
        for (path, b) in paths {
            println!("would remove pooled worktree {path} ({})", size(*b));
        }
        for k in &pool.kept {
            println!("would keep pooled worktree {}: {}", k.what, k.why);
        }
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

/// The pool's removed (or removable) worktrees as text, with their sizes.
fn pool_paths(p: &PoolRemoval) -> Vec<(String, u64)> {
    p.removed
        .iter()
        .map(|(path, b)| (path.display().to_string(), *b))
        .collect()
}

/// Prints what a cleanup did, and what `--pool` removed of the pool.
pub fn print_report(r: &Report, pool: Option<&PoolRemoval>, json: bool) -> anyhow::Result<()> {
    let pool_paths = pool.map(pool_paths);
    if json {
        return super::print_json(&ReportJson {
            removed_worktrees: &r.removed_worktrees,
            deleted_branches: &r.deleted_branches,
            removed_directories: &r.removed_directories,
            stopped_process_groups: &r.stopped_process_groups,
            kept: kept(&r.kept),
            pool: pool
                .zip(pool_paths.as_ref())
                .map(|(p, paths)| PoolRemovalJson {
                    removed: sized(paths),
                    freed_bytes: p.bytes_freed(),
                    kept: kept(&p.kept),
                }),
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
    let size = |b: u64| orch_engine::core::units::ByteSize(b).approx();
    if let (Some(p), Some(paths)) = (pool, &pool_paths) {
        for (path, b) in paths {
            println!("removed pooled worktree {path} ({})", size(*b));
        }
        for k in &p.kept {
            println!("kept pooled worktree {}: {}", k.what, k.why);
        }
        println!(
            "pool: {} worktrees removed, {} freed",
            paths.len(),
            size(p.bytes_freed())
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
