//! A new pooled worktree starts warm: the caches `worktrees.keep` names as paths
//! (`target/`, `node_modules/`) are copied in from the pool's warmest worktree
//! ([`orch_core::pool::warm_donors`]: the first that has them). A gate in a pooled
//! worktree still without them copies them from the worktree whose gate ended last
//! with them, or, with none yet, builds them while the pool's other cold gates wait
//! ([`orch_core::pool::Warmth`]), so only the pool's first worktree builds cold.
//! `std::fs::copy` clones the data where the file system can (Linux's
//! `copy_file_range`: a reflink on btrfs and XFS), and copies it elsewhere; never a
//! hard link, which an edit in one worktree would carry into the other. A file the
//! donor's holder changed since it took the donor, or that changes during the copy,
//! is left out: it may be half-written, and the build makes it again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use orch_core::pool::{CacheRules, ColdGate, Warmth, warm_donors};
use orch_core::time::Timestamp;
use tokio::sync::OwnedMutexGuard;

use super::{Ctx, Stop, blocking};

/// The run's cold starts: where the pool's caches are warm, and the lock a gate
/// that builds them first holds while the pool's other cold gates wait.
#[derive(Debug, Default)]
pub(crate) struct ColdStarts {
    warmth: std::sync::Mutex<Warmth>,
    first: Arc<tokio::sync::Mutex<()>>,
}

impl ColdStarts {
    fn warmth(&self) -> std::sync::MutexGuard<'_, Warmth> {
        // Every holder leaves the state whole: a poisoned lock's data is sound.
        self.warmth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Held by the gate that builds the pool's caches first; given to [`after_gate`].
pub(crate) struct FirstBuild(Option<OwnedMutexGuard<()>>);

/// Whether the worktree at `dir` has any of the caches at `paths`.
fn has_caches(dir: &Path, paths: &[String]) -> bool {
    paths.iter().any(|p| dir.join(p).exists())
}

/// Before a gate in the pooled worktree `cwd`: copies the caches in when it has none
/// and a warm worktree exists, else waits while another gate builds them first, else
/// builds them first itself (the result says so, and holds the others back).
pub(crate) async fn before_gate(ctx: &Ctx, cwd: &Path, stop: &Stop) -> FirstBuild {
    let paths = CacheRules::from_config(&ctx.cfg.config.worktrees).copied();
    if paths.is_empty() || ctx.cold.warmth().before(cwd, has_caches(cwd, &paths)) == ColdGate::Run {
        return FirstBuild(None);
    }
    let guard = tokio::select! {
        g = ctx.cold.first.clone().lock_owned() => g,
        () = stop.term.cancelled() => return FirstBuild(None),
    };
    let decision = ctx.cold.warmth().before(cwd, has_caches(cwd, &paths));
    match decision {
        ColdGate::Run => FirstBuild(None),
        ColdGate::BuildFirst => {
            tracing::info!(worktree = %cwd.display(), "a gate builds the pool's caches first; other cold gates wait for it");
            FirstBuild(Some(guard))
        }
        ColdGate::CopyFrom(from, ended) => {
            let since = SystemTime::UNIX_EPOCH + Duration::from_millis(ended.0.max(0) as u64);
            let (src, dst) = (from.clone(), cwd.to_path_buf());
            let copied = blocking(move || copy_caches(&src, &dst, &paths, since)).await;
            let files = copied.map_or(0, |c| c.files);
            tracing::info!(worktree = %cwd.display(), donor = %from.display(), files, "a cold gate starts with a copy of the pool's caches");
            FirstBuild((files == 0).then_some(guard))
        }
    }
}

/// After a gate in the pooled worktree `cwd`: it is a donor if it has the caches.
pub(crate) fn after_gate(ctx: &Ctx, cwd: &Path, first: FirstBuild) {
    let paths = CacheRules::from_config(&ctx.cfg.config.worktrees).copied();
    if paths.is_empty() {
        return;
    }
    // Rounded up: every file the gate wrote is older than its end.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64 + 1);
    let has = has_caches(cwd, &paths);
    ctx.cold
        .warmth()
        .ended(cwd, Timestamp(now), has, first.0.is_some());
}

/// Copies the caches at `paths` from the worktree `from` into `to`, leaving out
/// files changed after `since`. Best effort: what cannot be copied is built again.
fn copy_caches(from: &Path, to: &Path, paths: &[String], since: SystemTime) -> Copied {
    let mut c = Copied::default();
    for p in paths {
        let (src, dst) = (from.join(p), to.join(p));
        if src.exists()
            && !dst.exists()
            && let Err(e) = copy_tree(&src, &dst, since, &mut c)
        {
            tracing::warn!(path = %src.display(), error = %e, "a cache could not be copied into a worktree");
        }
    }
    c
}

/// What one warm start copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// Files left out: changed since the donor was taken, or during the copy.
    pub(crate) skipped: u64,
}

/// Copies the kept caches into the new worktree `slot` at `dest`, from the warmest
/// other worktree of the pool. Best effort: what cannot be copied is built again.
pub(crate) async fn warm(ctx: &Ctx, slot: u32, dest: &Path) {
    let paths = CacheRules::from_config(&ctx.cfg.config.worktrees).copied();
    if paths.is_empty() {
        return;
    }
    let Ok(slots) = ctx.journal.pool_slots().await else {
        return;
    };
    let donors = warm_donors(&slots, &ctx.cfg.worktree_root, slot);
    let Some(donor) = donors
        .into_iter()
        .find(|d| paths.iter().any(|p| d.path.join(p).exists()))
    else {
        return;
    };
    let since = SystemTime::UNIX_EPOCH + Duration::from_millis(donor.last_used.0.max(0) as u64);
    let (from, to, donor_slot) = (donor.path.clone(), dest.to_path_buf(), donor.slot);
    let copied = blocking(move || copy_caches(&from, &to, &paths, since)).await;
    if let Ok(c) = copied {
        tracing::info!(
            slot,
            donor = donor_slot,
            files = c.files,
            bytes = c.bytes,
            skipped = c.skipped,
            "a new worktree starts with a copy of the pool's caches"
        );
    }
}

/// Copies `src` to `dst` (a file, a link or a whole directory), leaving out files
/// changed after `since`.
pub(crate) fn copy_tree(
    src: &Path,
    dst: &Path,
    since: SystemTime,
    c: &mut Copied,
) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if kind.is_dir() {
        std::fs::create_dir_all(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()), since, c)?;
        }
    } else if kind.is_file() {
        let before = meta.modified()?;
        if before > since {
            c.skipped += 1;
            return Ok(());
        }
        let bytes = std::fs::copy(src, dst)?;
        let after = std::fs::symlink_metadata(src)?;
        if after.modified()? != before || after.len() != meta.len() {
            std::fs::remove_file(dst)?;
            c.skipped += 1;
            return Ok(());
        }
        c.files += 1;
        c.bytes += bytes;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_copied_but_what_changed_since_the_donor_was_taken() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("a/target"), dir.path().join("b/target"));
        std::fs::create_dir_all(src.join("debug/deps")).unwrap();
        std::fs::write(src.join("debug/deps/old.rlib"), "old").unwrap();
        std::os::unix::fs::symlink("deps/old.rlib", src.join("debug/link")).unwrap();
        let taken = SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(src.join("debug/deps/new.rlib"), "half").unwrap();
        let mut c = Copied::default();
        copy_tree(&src, &dst, taken, &mut c).unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.join("debug/deps/old.rlib")).unwrap(),
            "old"
        );
        assert_eq!(
            std::fs::read_to_string(dst.join("debug/link")).unwrap(),
            "old"
        );
        assert!(!dst.join("debug/deps/new.rlib").exists());
        assert_eq!(
            c,
            Copied {
                files: 1,
                bytes: 3,
                skipped: 1
            }
        );
        // A copy, not a link: a change on one side stays there.
        std::fs::write(dst.join("debug/deps/old.rlib"), "changed").unwrap();
        assert_eq!(
            std::fs::read_to_string(src.join("debug/deps/old.rlib")).unwrap(),
            "old"
        );
    }
}
