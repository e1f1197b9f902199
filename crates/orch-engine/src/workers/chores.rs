//! A worker's git chores: pushing a job's branch over what a fenced predecessor
//! pushed, the tails of a job's logs, and clearing what a dead worker of the same name
//! left (its processes, stray worktrees, pool leases and branches).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orch_core::run::CommitId;
use orch_git::{Expect, Git};
use orch_store::Store;

use crate::StoredRun;
use crate::exec;
use crate::ports::GitPort;

/// Pushes `head` to `reference`, expected at `base`; over what a fenced worker of the
/// same job pushed, if the remote holds that instead; done if it holds `head` already.
/// A refusal that is not a race (a lock held by another push to the same remote) is
/// tried again, up to five times.
pub(super) fn push_over(
    git: &dyn GitPort,
    remote: &str,
    head: &CommitId,
    reference: &str,
    base: CommitId,
) -> Result<(), String> {
    use crate::ports::RefError;
    let mut expect = Expect::At(base);
    let mut last = String::new();
    for i in 1..=5u32 {
        match git.push_ref(remote, head, reference, &expect) {
            Ok(()) => return Ok(()),
            Err(RefError::LostRace { actual }) if &actual == head => return Ok(()),
            Err(RefError::LostRace { actual }) => {
                last = format!("the remote's {reference} is at {actual}");
                expect = match actual.0.is_empty() {
                    true => Expect::Absent,
                    false => Expect::At(actual),
                };
            }
            Err(RefError::Failed(e) | RefError::Refused(e)) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50 * u64::from(i)));
    }
    Err(last)
}

/// The last 64 KiB of each log in an attempt's directory.
pub(super) fn tails(dir: &Path) -> Vec<(String, String)> {
    const CAP: u64 = 64 << 10;
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".log") {
            continue;
        }
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let from = bytes.len().saturating_sub(CAP as usize);
        out.push((name, String::from_utf8_lossy(&bytes[from..]).into_owned()));
    }
    out.sort();
    out
}

/// Removes what a worker of this name left when it died mid-job: its processes, the
/// worktrees under
/// its own root (`<run>/<attempt>`) and their branches. Its jobs went back to the queue
/// when their leases ran out.
pub(super) async fn clear_leftovers(git: &Arc<Git>, store: &Store, root: &Path, name: &str) {
    let (g, dir) = (git.clone(), root.to_path_buf());
    let mine = format!("@worker:{name}");
    let _ = exec::blocking(move || {
        let git = g;
        orch_validate::procs::stop_groups(|t| t.ends_with(&mine), Duration::from_secs(5));
        // A predecessor killed while it moved a ref left its lock: every ref update
        // would fail on it.
        for lock in git.clear_abandoned_ref_locks() {
            tracing::warn!(lock = %lock.display(), "removed a lock file a killed process left");
        }
        // The pool's worktrees stay (the next lease scrubs them); the rest go.
        let runs = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        for run in runs.filter(|r| r.file_name() != "pool") {
            for a in std::fs::read_dir(run.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = git.remove_worktree(&a.path(), true);
                let _ = std::fs::remove_dir_all(a.path());
                let branch = format!(
                    "orch/{}/{}",
                    run.file_name().to_string_lossy(),
                    a.file_name().to_string_lossy()
                );
                let _ = git.delete_branch(&branch, true);
            }
            let _ = std::fs::remove_dir(run.path());
        }
    })
    .await;
    // The pooled worktrees its predecessor held: it died in the middle of them, so
    // they are retired and removed with their jobs' branches (the jobs went to other
    // workers when their leases ran out).
    // Limits that retire nothing else.
    let limits = orch_core::pool::PoolLimits {
        keep_attempt: u32::MAX,
        keep_integration: u32::MAX,
        max: 0,
        max_bytes: 0,
    };
    for s in store.pool_slots().await.unwrap_or_default() {
        if let orch_core::pool::SlotState::Leased(h) = &s.state
            && orch_core::pool::is_under(&s, root)
        {
            let retired = store
                .retire_pool_slots(&limits, Some((s.slot, h)), root)
                .await;
            let (git, path) = (git.clone(), s.path.clone());
            let branch = format!("orch/{}/{}", h.run, h.holder);
            let _ = exec::blocking(move || {
                let _ = git.remove_worktree(&path, true);
                let _ = std::fs::remove_dir_all(&path);
                let _ = git.remove_worktree(&path, true);
                let _ = git.delete_branch(&branch, true);
            })
            .await;
            if retired.is_ok() && !s.path.exists() {
                let _ = store.forget_pool_slot(s.slot).await;
            }
        }
    }
    clear_branches(git, store).await;
}

/// Deletes the local branches of workers' runs that no worktree has checked out: a
/// worker killed between giving a worktree back and deleting the branch leaves one.
/// (Their work is on the remote, or its job ran again elsewhere.)
async fn clear_branches(git: &Arc<Git>, store: &Store) {
    let workers = orch_core::config::Executors::Workers;
    let runs: std::collections::HashSet<String> = store
        .runs()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            StoredRun::from_json(&r.id.0, &r.config)
                .is_ok_and(|s| s.config.run.executors == workers)
        })
        .map(|r| r.id.0)
        .collect();
    let git = git.clone();
    let _ = exec::blocking(move || {
        let Ok(inv) = git.inventory() else { return };
        for b in inv.branches.iter().filter(|b| b.worktree.is_none()) {
            let mut parts = b.name.splitn(3, '/');
            let (orch, run, attempt) = (parts.next(), parts.next(), parts.next());
            let ours = orch == Some("orch")
                && run.is_some_and(|r| runs.contains(r))
                && attempt.is_some_and(|a| a.starts_with("task-"));
            if ours {
                let _ = git.delete_branch(&b.name, true);
            }
        }
    })
    .await;
}
