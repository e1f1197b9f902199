//! `orch cleanup`, carried out: the facts gathered (runs, attempts, leases, git's
//! inventory, tagged processes, directories under the worktree root), the core's
//! [`orch_core::cleanup::plan`] asked what may go, and the plan applied or previewed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_core::cleanup::{AttemptFacts, CleanupFacts, CleanupPlan, Kept, RunFacts, plan};
use orch_core::ports::{BranchInfo, WorktreeInfo};
use orch_git::Git;
use orch_store::Store;

use crate::{EngineError, interrupted_runs, now};

/// What to clean.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CleanupOptions {
    /// `worktrees.root`; empty for the default under the user's data directory.
    pub worktree_root: String,
    /// `worktrees.keep_failed`.
    pub keep_failed: orch_core::config::Duration,
    /// Remove dirty worktrees, unmerged branches and strays holding files too.
    pub force: bool,
}

impl CleanupOptions {
    /// What `config` asks for, not forced.
    pub fn from_config(config: &orch_core::config::Config) -> CleanupOptions {
        CleanupOptions {
            worktree_root: config.worktrees.root.clone(),
            keep_failed: config.worktrees.keep_failed,
            force: false,
        }
    }
}

/// A directory under the worktree root that git does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    /// Its path.
    pub path: PathBuf,
    /// It holds something besides a `.git` link (kept unless forced).
    pub has_files: bool,
}

/// A leftover process of a run no orch drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Its pid.
    pub pid: i32,
    /// Its process group.
    pub pgid: i32,
    /// Its run.
    pub run: String,
    /// Its command line.
    pub command: String,
}

/// What a cleanup would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    /// Worktrees no live attempt uses.
    pub worktrees: Vec<WorktreeInfo>,
    /// `orch/*` branches no live attempt uses.
    pub branches: Vec<BranchInfo>,
    /// Unregistered directories under the worktree root.
    pub strays: Vec<Stray>,
    /// Processes of runs no orch drives.
    pub processes: Vec<Leftover>,
    /// What stays, and why.
    pub kept: Vec<Kept>,
}

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Worktrees removed.
    pub removed_worktrees: Vec<PathBuf>,
    /// Branches deleted.
    pub deleted_branches: Vec<String>,
    /// Unregistered directories removed.
    pub removed_directories: Vec<PathBuf>,
    /// Process groups stopped.
    pub stopped_process_groups: Vec<i32>,
    /// What stayed, and why.
    pub kept: Vec<Kept>,
}

impl Report {
    /// True when nothing was removed, stopped or kept.
    pub fn is_empty(&self) -> bool {
        self.removed_worktrees.is_empty()
            && self.deleted_branches.is_empty()
            && self.removed_directories.is_empty()
            && self.stopped_process_groups.is_empty()
            && self.kept.is_empty()
    }
}

/// Everything the plan and its execution need.
struct Gathered {
    git: Git,
    root: Option<PathBuf>,
    plan: CleanupPlan,
    strays: Vec<Stray>,
    processes: Vec<Leftover>,
}

async fn gather(
    store: &Store,
    repo: &Path,
    opts: &CleanupOptions,
) -> Result<Gathered, EngineError> {
    let git = Git::open(repo)?;
    let root = worktree_root(repo, opts);
    let runs = store.runs().await?;
    let stuck = interrupted_runs(store, &runs).await?;
    let mut facts = Vec::new();
    for r in &runs {
        let attempts = store
            .attempts(&r.id)
            .await?
            .into_iter()
            .filter_map(|a| {
                Some(AttemptFacts {
                    phase: a.phase()?,
                    attempt: a.attempt,
                    branch: a.branch,
                    changed_at: a.updated_at,
                })
            })
            .collect();
        facts.push(RunFacts {
            id: r.id.clone(),
            state: r.state,
            interrupted: stuck.contains(&r.id),
            line: crate::StoredRun::from_json(&r.id.0, &r.config)
                .map(|s| s.config.run.line_branch(&r.id.0))
                .unwrap_or_else(|_| format!("orch/{}/integration", r.id)),
            attempts,
        });
    }
    let in_review: BTreeSet<String> = store
        .tasks(&[orch_core::TaskStatus::Review])
        .await?
        .into_iter()
        .filter_map(|t| Some(t.review?.work.branch))
        .collect();
    let mut plan = plan(&CleanupFacts {
        in_review: &in_review,
        runs: &facts,
        now: now(),
        keep_failed: opts.keep_failed,
        force: opts.force,
        worktree_root: root.as_deref(),
    });
    // The pool's worktrees are the pool's: `orch cleanup --pool` removes them.
    plan.live_worktrees.extend(
        store
            .pool_slots()
            .await?
            .into_iter()
            .filter(|s| s.state != orch_core::pool::SlotState::Retired)
            .map(|s| s.path),
    );
    let dead: BTreeSet<String> = plan.stop_processes_of.iter().map(|r| r.0.clone()).collect();
    let processes = orch_validate::procs::tagged(|r| dead.contains(r))
        .into_iter()
        .map(|p| Leftover {
            pid: p.pid,
            pgid: p.pgid,
            run: p.run,
            command: p.command,
        })
        .collect();
    let strays = strays(&git, root.as_deref(), &plan.live_worktrees)?;
    Ok(Gathered {
        git,
        root,
        plan,
        strays,
        processes,
    })
}

/// Directories under the worktree root that git no longer knows (a crash between
/// creating the directory and registering it, or a registration pruned by hand).
fn strays(
    git: &Git,
    root: Option<&Path>,
    live: &BTreeSet<PathBuf>,
) -> Result<Vec<Stray>, EngineError> {
    let Some(root) = root else {
        return Ok(Vec::new());
    };
    let registered: BTreeSet<PathBuf> = git
        .inventory()?
        .worktrees
        .iter()
        .map(|w| w.path.canonicalize().unwrap_or_else(|_| w.path.clone()))
        .collect();
    let dirs = |p: &Path| {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>()
    };
    Ok(dirs(root)
        .iter()
        .flat_map(|run| dirs(run))
        .filter(|p| p.is_dir())
        .filter(|p| {
            let c = p.canonicalize().unwrap_or_else(|_| p.clone());
            !registered.contains(&c) && !live.contains(p)
        })
        .map(|path| Stray {
            // Anything besides a `.git` link may be someone's files.
            has_files: std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name() != ".git"),
            path,
        })
        .collect())
}

/// What `orch cleanup --dry-run` reports.
pub async fn preview(
    store: &Store,
    repo: &Path,
    opts: &CleanupOptions,
) -> Result<Preview, EngineError> {
    let g = gather(store, repo, opts).await?;
    let inventory = g.git.inventory()?;
    let orphans = g
        .git
        .orphans(&g.plan.live_branches, &g.plan.live_worktrees)?;
    let mut kept = g.plan.kept;
    // Only what still exists is worth reporting as kept.
    kept.retain(|k| inventory.branches.iter().any(|b| b.name == k.what));
    Ok(Preview {
        worktrees: orphans.worktrees,
        branches: orphans.branches,
        strays: g.strays,
        processes: g.processes,
        kept,
    })
}

/// The worktree root `opts` name for the repository at `repo` (the default under the
/// user's data directory when empty), where its pool is.
pub fn worktree_root(repo: &Path, opts: &CleanupOptions) -> Option<PathBuf> {
    match opts.worktree_root.trim() {
        "" => orch_git::default_worktree_root(repo),
        r => Some(repo.join(r)),
    }
}

/// Carries a cleanup out.
pub async fn apply(
    store: &Store,
    repo: &Path,
    opts: &CleanupOptions,
) -> Result<Report, EngineError> {
    if let Some(root) = worktree_root(repo, opts) {
        crate::upkeep::pool::tidy(store, repo, &root).await?;
    }
    let g = gather(store, repo, opts).await?;
    let inventory = g.git.inventory()?;
    let dead: BTreeSet<String> = g
        .plan
        .stop_processes_of
        .iter()
        .map(|r| r.0.clone())
        .collect();
    let stopped = if g.processes.is_empty() {
        orch_validate::Stopped::default()
    } else {
        tokio::task::spawn_blocking(move || {
            orch_validate::procs::stop_groups(|r| dead.contains(r), Duration::from_secs(5))
        })
        .await
        .expect("stopping processes does not panic")
    };
    let expired = &g.plan.expired;
    let orphans = g
        .git
        .remove_orphans(&g.plan.live_branches, &g.plan.live_worktrees, |b| {
            opts.force || b.is_some_and(|b| expired.contains(b))
        })?;
    let mut kept: Vec<Kept> = orphans
        .kept
        .into_iter()
        .map(|(what, why)| Kept { what, why })
        .collect();
    kept.extend(
        g.plan
            .kept
            .into_iter()
            .filter(|k| inventory.branches.iter().any(|b| b.name == k.what)),
    );
    kept.extend(g.plan.kept_runs);
    let mut removed_directories = Vec::new();
    for s in g.strays {
        if s.has_files && !opts.force {
            kept.push(Kept {
                what: s.path.display().to_string(),
                why: "not a registered worktree, and it holds files; --force removes it".into(),
            });
        } else if std::fs::remove_dir_all(&s.path).is_ok() {
            removed_directories.push(s.path);
        }
    }
    // Run directories left empty.
    if let Some(root) = &g.root {
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    Ok(Report {
        removed_worktrees: orphans.removed_worktrees,
        deleted_branches: orphans.deleted_branches,
        removed_directories,
        stopped_process_groups: stopped
            .terminated
            .into_iter()
            .chain(stopped.killed)
            .collect(),
        kept,
    })
}
