//! The worktree pool outside a run: `orch pool` (each pooled worktree with its state,
//! holder and size on disk), what `orch cleanup` does to it (leases left by runs that
//! ended are given back; retired worktrees a crash left are removed), and `orch
//! cleanup --pool` (every worktree no unfinished run holds removed, bytes reported).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use orch_core::cleanup::Kept;
use orch_core::pool::{PoolSlot, SlotState};
use orch_git::Git;
use orch_store::Store;

use crate::EngineError;
use crate::exec::pooled::dir_bytes;

/// One pooled worktree, as `orch pool` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    /// The store's row.
    pub slot: PoolSlot,
    /// Bytes on disk now (0 when the directory is gone).
    pub bytes: u64,
    /// Whether its directory exists.
    pub exists: bool,
}

/// Every pooled worktree, measured (off the async threads).
pub async fn list(store: &Store) -> Result<Vec<PoolEntry>, EngineError> {
    let slots = store.pool_slots().await?;
    Ok(tokio::task::spawn_blocking(move || {
        slots
            .into_iter()
            .map(|slot| PoolEntry {
                bytes: dir_bytes(&slot.path),
                exists: slot.path.exists(),
                slot,
            })
            .collect()
    })
    .await
    .expect("measuring does not panic"))
}

/// What `orch cleanup --pool` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolRemoval {
    /// The worktrees removed, with the bytes each held.
    pub removed: Vec<(PathBuf, u64)>,
    /// What stayed, and why.
    pub kept: Vec<Kept>,
}

impl PoolRemoval {
    /// Bytes freed in all.
    pub fn bytes_freed(&self) -> u64 {
        self.removed.iter().map(|(_, b)| b).sum()
    }
}

/// The runs that have not ended (live or interrupted): what they hold stays.
async fn unfinished(store: &Store) -> Result<BTreeSet<String>, EngineError> {
    Ok(store
        .runs()
        .await?
        .into_iter()
        .filter(|r| !r.state.is_terminal())
        .map(|r| r.id.0)
        .collect())
}

/// For `orch cleanup`, in the pool under `root`: leases held by runs that ended are
/// given back (a run killed after its last cleanup), and worktrees retired but left on
/// disk by a crash are removed.
pub async fn tidy(store: &Store, repo: &Path, root: &Path) -> Result<(), EngineError> {
    let open = unfinished(store).await?;
    let mut retired = Vec::new();
    let slots = store.pool_slots().await?;
    for s in slots
        .into_iter()
        .filter(|s| orch_core::pool::is_under(s, root))
    {
        match &s.state {
            SlotState::Leased(h) if !open.contains(&h.run) => {
                store.release_pool_slot(s.slot, h, None).await?;
            }
            SlotState::Retired => retired.push(s),
            _ => {}
        }
    }
    remove_all(store, repo, retired).await?;
    Ok(())
}

/// `orch cleanup --pool`: every worktree of the pool under `root` that no unfinished
/// run holds is retired and removed, and its bytes counted.
pub async fn remove(store: &Store, repo: &Path, root: &Path) -> Result<PoolRemoval, EngineError> {
    let open = unfinished(store).await?;
    let (gone, held) = store
        .retire_whole_pool(|run| open.contains(run), root)
        .await?;
    let removed = remove_all(store, repo, gone).await?;
    let kept = held.iter().map(held_by_a_run).collect();
    Ok(PoolRemoval { removed, kept })
}

/// What `orch cleanup --pool` would remove and keep, removing nothing
/// (`--dry-run`).
pub async fn removal_preview(store: &Store, root: &Path) -> Result<PoolRemoval, EngineError> {
    let open = unfinished(store).await?;
    let (held, gone): (Vec<PoolSlot>, Vec<PoolSlot>) = store
        .pool_slots()
        .await?
        .into_iter()
        .filter(|s| orch_core::pool::is_under(s, root))
        .partition(|s| matches!(&s.state, SlotState::Leased(h) if open.contains(&h.run)));
    let removed = tokio::task::spawn_blocking(move || {
        gone.into_iter()
            .map(|s| {
                let bytes = dir_bytes(&s.path);
                (s.path, bytes)
            })
            .collect()
    })
    .await
    .expect("measuring does not panic");
    let kept = held.iter().map(held_by_a_run).collect();
    Ok(PoolRemoval { removed, kept })
}

/// Why a pooled worktree stays: the unfinished run holding it.
fn held_by_a_run(s: &PoolSlot) -> Kept {
    let run = match &s.state {
        SlotState::Leased(h) => h.run.clone(),
        _ => String::new(),
    };
    Kept {
        what: s.path.display().to_string(),
        why: format!(
            "held by run {run}, which has not ended; `orch run resume {run}` or `orch run cancel {run}` first"
        ),
    }
}

async fn remove_all(
    store: &Store,
    repo: &Path,
    slots: Vec<PoolSlot>,
) -> Result<Vec<(PathBuf, u64)>, EngineError> {
    let git = Git::open(repo)?;
    let paths: Vec<PathBuf> = slots.iter().map(|s| s.path.clone()).collect();
    let removed = tokio::task::spawn_blocking(move || {
        paths
            .into_iter()
            .map(|p| {
                let bytes = dir_bytes(&p);
                if p.exists() {
                    let _ = git.remove_worktree(&p, true);
                    let _ = std::fs::remove_dir_all(&p);
                }
                // The registration of a directory someone removed by hand.
                let _ = git.remove_worktree(&p, true);
                (p, bytes)
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("removing worktrees does not panic");
    for (s, (p, _)) in slots.iter().zip(&removed) {
        if !p.exists() {
            store.forget_pool_slot(s.slot).await?;
        }
    }
    Ok(removed.into_iter().filter(|(p, _)| !p.exists()).collect())
}
