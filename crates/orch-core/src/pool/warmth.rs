//! Only the pool's first worktree builds cold. A gate in a pooled worktree without
//! the kept caches (`worktrees.keep` paths such as `target/`) first copies them from
//! the worktree whose gate ended last with them in place. With none yet, it builds
//! cold, and the pool's other gates that would build cold wait for it, then copy:
//! four cold builds at once on a small machine take about as long as one build and
//! three copies, and use four times the CPU and the disk.
//!
//! A donor's files changed since its gate ended are not copied (its next holder
//! may be writing them), so a donor is safe to copy from whoever holds it now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::time::Timestamp;

/// What a gate in a pooled worktree does about its caches before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColdGate {
    /// Run: the caches are there, or the gates do not make them.
    Run,
    /// Copy the caches from this worktree, leaving out files changed after the
    /// moment, then run (building cold if nothing could be copied).
    CopyFrom(PathBuf, Timestamp),
    /// Build cold: the pool has no warm worktree yet. Others wait for this one.
    BuildFirst,
}

/// Where the pool's caches are warm: the worktrees whose last gate ended with them
/// in place, and when.
#[derive(Debug, Default, Clone)]
pub struct Warmth {
    ended: BTreeMap<PathBuf, Timestamp>,
    /// A gate that built cold ended without the caches: the gates do not make them,
    /// and cold gates stop waiting for one another.
    barren: bool,
}

impl Warmth {
    /// What a gate in the worktree at `at`, which has the caches or not, does first.
    pub fn before(&self, at: &Path, has_caches: bool) -> ColdGate {
        if has_caches || self.barren {
            return ColdGate::Run;
        }
        self.ended
            .iter()
            .filter(|(p, _)| p.as_path() != at)
            .max_by_key(|(p, t)| (**t, std::cmp::Reverse(p.as_path())))
            .map_or(ColdGate::BuildFirst, |(p, t)| {
                ColdGate::CopyFrom(p.clone(), *t)
            })
    }

    /// A gate in `at` ended at `now`, leaving the caches there or not; `built_first`
    /// when it was the one the others waited for.
    pub fn ended(&mut self, at: &Path, now: Timestamp, has_caches: bool, built_first: bool) {
        if has_caches {
            self.ended.insert(at.to_path_buf(), now);
        } else {
            self.ended.remove(at);
            self.barren |= built_first;
        }
    }

    /// Whether the gates were seen not to make the caches.
    pub fn barren(&self) -> bool {
        self.barren
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cold_gate_builds_and_the_next_copy_from_the_latest_warm_one() {
        let mut w = Warmth::default();
        let (a, b, c) = (Path::new("/p/a"), Path::new("/p/b"), Path::new("/p/c"));
        assert_eq!(w.before(a, false), ColdGate::BuildFirst);
        assert_eq!(w.before(a, true), ColdGate::Run);
        w.ended(a, Timestamp(10), true, true);
        assert_eq!(
            w.before(b, false),
            ColdGate::CopyFrom(a.into(), Timestamp(10))
        );
        w.ended(b, Timestamp(20), true, false);
        assert_eq!(
            w.before(c, false),
            ColdGate::CopyFrom(b.into(), Timestamp(20))
        );
        // A worktree is never its own donor; one whose caches went is no donor.
        w.ended(b, Timestamp(30), false, false);
        assert_eq!(w.before(a, false), ColdGate::BuildFirst);
        assert_eq!(
            w.before(c, false),
            ColdGate::CopyFrom(a.into(), Timestamp(10))
        );
        assert!(!w.barren());
    }

    #[test]
    fn gates_that_make_no_caches_stop_the_waiting() {
        let mut w = Warmth::default();
        let a = Path::new("/p/a");
        // A gate that did not build first and left nothing changes nothing.
        w.ended(a, Timestamp(5), false, false);
        assert_eq!(w.before(a, false), ColdGate::BuildFirst);
        w.ended(a, Timestamp(10), false, true);
        assert!(w.barren());
        assert_eq!(w.before(Path::new("/p/b"), false), ColdGate::Run);
    }
}
