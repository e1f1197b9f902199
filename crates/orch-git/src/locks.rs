//! Lock files a killed git process left behind. git and gix take a ref or
//! `packed-refs` by creating `<file>.lock` and holding it open until they rename it
//! into place; a process killed in between leaves the lock, and every later ref
//! update fails on it ("Could not lock packed refs") until it is removed. A lock that
//! no process on this machine holds open is such a leftover.

use std::path::{Path, PathBuf};

use crate::Git;

impl Git {
    /// Removes the ref locks (`packed-refs.lock`, `HEAD.lock`, `refs/**.lock`) of the
    /// repository that no process holds open, and returns them. For a clone only orch
    /// uses (a worker's), after the process that used it was killed: a lock still
    /// held open is in use and stays. (A run's resume in the user's repository clears
    /// only its own refs' and its line's locks, by age: [`Git::clear_stale_locks`].)
    pub fn clear_abandoned_ref_locks(&self) -> Vec<PathBuf> {
        let common = self.common_dir();
        let mut locks: Vec<PathBuf> = ["packed-refs.lock", "HEAD.lock"]
            .iter()
            .map(|f| common.join(f))
            .filter(|p| p.is_file())
            .collect();
        ref_locks(&common.join("refs"), &mut locks);
        remove_unheld(locks)
    }

    /// Removes the locks an update of `reference` (a full name) takes, its own and
    /// `packed-refs.lock`, where they exist and no process holds them open, and returns
    /// them: what a process killed mid-update left (another orch run on a shared line,
    /// say), which fails every later update of the ref until it is gone. No live
    /// process can take a lock while the leftover is there, so none is removed from
    /// under one.
    pub(crate) fn clear_abandoned_locks_of(&self, reference: &str) -> Vec<PathBuf> {
        let common = self.common_dir();
        let locks = [format!("{reference}.lock"), "packed-refs.lock".to_owned()]
            .iter()
            .map(|f| common.join(f))
            .filter(|p| p.is_file())
            .collect();
        remove_unheld(locks)
    }
}

/// Removes the `locks` no process holds open; returns those it removed.
fn remove_unheld(mut locks: Vec<PathBuf>) -> Vec<PathBuf> {
    if locks.is_empty() {
        return locks;
    }
    let held = held_open();
    locks.retain(|l| {
        let canonical = l.canonicalize().unwrap_or_else(|_| l.clone());
        !held.contains(&canonical) && std::fs::remove_file(l).is_ok()
    });
    locks
}

/// The `*.lock` files under `dir`, recursively.
pub(crate) fn ref_locks(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => ref_locks(&path, out),
            Ok(t) if t.is_file() && path.extension().is_some_and(|x| x == "lock") => {
                out.push(path);
            }
            _ => {}
        }
    }
}

/// Every file some process on this machine holds open, as `/proc` shows them (those
/// of processes it may read).
fn held_open() -> Vec<PathBuf> {
    let mut held = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        for fd in std::fs::read_dir(p.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                held.push(target);
            }
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_no_one_holds_goes_and_a_held_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let ok = crate::git_command(dir.path())
            .args(["init", "-q"])
            .status()
            .unwrap();
        assert!(ok.success());
        let git = Git::open(dir.path()).unwrap();
        let common = git.common_dir();
        std::fs::create_dir_all(common.join("refs/heads/orch")).unwrap();
        let stale = [
            common.join("packed-refs.lock"),
            common.join("refs/heads/orch/task-1.lock"),
        ];
        for l in &stale {
            std::fs::write(l, "").unwrap();
        }
        let held = common.join("refs/heads/held.lock");
        let _open = std::fs::File::create(&held).unwrap();
        let mut cleared = git.clear_abandoned_ref_locks();
        cleared.sort();
        let mut want = stale.to_vec();
        want.sort();
        assert_eq!(cleared, want);
        assert!(stale.iter().all(|l| !l.exists()));
        assert!(held.exists(), "a lock held open is in use");
        assert!(git.clear_abandoned_ref_locks().is_empty());
    }
}
