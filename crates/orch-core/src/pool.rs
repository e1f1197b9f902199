//! The worktree pool's policy: which pooled worktree an attempt or an integration gate
//! takes, when a new one is made, which idle ones are retired (past the pool's size,
//! or over `worktrees.max_bytes`, largest first), and the slot's ports. The store
//! applies these decisions as compare-and-swaps on its `pool` rows; the engine does
//! the git and file work. Nothing here touches either. [`warmth`]: which worktree a
//! cold gate copies its caches from, or whether it builds them first.

use std::path::{Path, PathBuf};

pub mod warmth;
pub use warmth::{ColdGate, Warmth};

use crate::config::{Config, WorktreesConfig};
use crate::time::Timestamp;

/// What a pooled worktree is used for. Attempt worktrees hold a task branch; the
/// integration ones are detached checkouts of merge candidates for the integration
/// gate. Each kind is reused only as its own kind, so each keeps its own caches warm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoolKind {
    /// An attempt's worktree.
    Attempt,
    /// An integration gate's checkout.
    Integration,
}

impl std::fmt::Display for PoolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolKind::Attempt => "attempt",
            PoolKind::Integration => "integration",
        })
    }
}

impl PoolKind {
    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<PoolKind> {
        match s {
            "attempt" => Some(PoolKind::Attempt),
            "integration" => Some(PoolKind::Integration),
            _ => None,
        }
    }
}

/// Who holds a leased worktree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    /// The run.
    pub run: String,
    /// The attempt (`task-3-1`), or `integration` for a gate's checkout.
    pub holder: String,
}

/// The state of one pooled worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Idle, to be scrubbed and switched by the next taker.
    Free,
    /// Held; written before the worktree is touched (write-ahead).
    Leased(Holder),
    /// Being removed: never handed out again.
    Retired,
}

impl SlotState {
    /// The stored name: `free`, `leased` or `retired`.
    pub fn name(&self) -> &'static str {
        match self {
            SlotState::Free => "free",
            SlotState::Leased(_) => "leased",
            SlotState::Retired => "retired",
        }
    }
}

/// One pooled worktree, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSlot {
    /// Its number: `ORCH_SLOT`, and where its ports start.
    pub slot: u32,
    /// What it is used for.
    pub kind: PoolKind,
    /// Its directory.
    pub path: PathBuf,
    /// Free, leased or retired.
    pub state: SlotState,
    /// `worktrees.setup` has run in it to the end.
    pub set_up: bool,
    /// The last attempt (or run, for integration) that used it.
    pub last_holder: Option<String>,
    /// When it was last leased or released.
    pub last_used: Timestamp,
    /// Its size on disk when last released (0 until measured).
    pub bytes: u64,
}

/// The pool's limits, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Attempt worktrees kept idle: `worktrees.pool`, or when it is 0 `run.concurrency`
    /// plus the integration depth.
    pub keep_attempt: u32,
    /// As `keep_attempt`, for integration checkouts.
    pub keep_integration: u32,
    /// No more live worktrees than this, in all (`worktrees.pool_max`; 0: no cap).
    pub max: u32,
    /// `worktrees.max_bytes` (0: no cap).
    pub max_bytes: u64,
}

impl PoolLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> PoolLimits {
        let w = &config.worktrees;
        let depth = crate::run::Shape::of(config).depth as u32;
        // Headroom over the agents: worktrees on their way back while new ones are
        // leased (attempts waiting to integrate have given theirs back).
        let (attempt, integration) = match w.pool {
            0 => (config.run.concurrency.get() + depth, depth),
            n => (n, depth),
        };
        PoolLimits {
            keep_attempt: attempt,
            keep_integration: integration,
            max: w.pool_max,
            max_bytes: w.max_bytes.0,
        }
    }

    fn keep(&self, kind: PoolKind) -> usize {
        match kind {
            PoolKind::Attempt => self.keep_attempt as usize,
            PoolKind::Integration => self.keep_integration as usize,
        }
    }
}

/// What a taker gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Reuse this free worktree: scrub it and switch it.
    Reuse(u32),
    /// Make a new worktree with this slot number at this path.
    Create(u32, PathBuf),
    /// Every worktree is held and the pool is at `worktrees.pool_max`.
    Full {
        /// How many are held.
        held: usize,
    },
}

/// `<root>/pool/<kind>-<slot>`: where slot `slot` lives.
pub fn slot_path(root: &Path, kind: PoolKind, slot: u32) -> PathBuf {
    root.join("pool").join(format!("{kind}-{slot}"))
}

/// Whether `slot` is one of the pool under `root`: one clone's, on one machine. A
/// store shared by several machines (or clones, or workers) holds several pools, and
/// each takes, counts and retires only its own.
pub fn is_under(slot: &PoolSlot, root: &Path) -> bool {
    slot.path.starts_with(root.join("pool"))
}

/// Which worktree a taker of `kind` in the pool under `root` gets. A free one of its
/// kind first, the one used most recently (its caches are the warmest; ties by the
/// lower slot); else a new one under the lowest slot number no pool uses, unless
/// `limits.max` live worktrees exist in this pool.
pub fn choose(slots: &[PoolSlot], kind: PoolKind, limits: &PoolLimits, root: &Path) -> Choice {
    let mine = || slots.iter().filter(|s| is_under(s, root));
    let free = mine()
        .filter(|s| s.kind == kind && s.state == SlotState::Free)
        .max_by_key(|s| (s.last_used, std::cmp::Reverse(s.slot)));
    if let Some(s) = free {
        return Choice::Reuse(s.slot);
    }
    let live = mine().filter(|s| s.state != SlotState::Retired).count();
    if limits.max > 0 && live >= limits.max as usize {
        return Choice::Full { held: live };
    }
    let slot = (0u32..)
        .find(|n| !slots.iter().any(|s| s.slot == *n))
        .expect("fewer than u32::MAX slots exist");
    Choice::Create(slot, slot_path(root, kind, slot))
}

/// The idle worktrees of the pool under `root` to retire: of each kind, the free ones
/// past the number the pool keeps (least recently used first); then, while the pool's
/// measured size is over `max_bytes`, the largest free ones. Held worktrees, and
/// other pools' worktrees, are never retired.
pub fn to_retire(all: &[PoolSlot], limits: &PoolLimits, root: &Path) -> Vec<u32> {
    let slots: Vec<PoolSlot> = all.iter().filter(|s| is_under(s, root)).cloned().collect();
    let slots = &slots[..];
    let mut out = Vec::new();
    for kind in [PoolKind::Attempt, PoolKind::Integration] {
        let live: Vec<&PoolSlot> = slots
            .iter()
            .filter(|s| s.kind == kind && s.state != SlotState::Retired)
            .collect();
        let mut free: Vec<&PoolSlot> = live
            .iter()
            .copied()
            .filter(|s| s.state == SlotState::Free)
            .collect();
        free.sort_by_key(|s| (s.last_used, s.slot));
        let extra = live.len().saturating_sub(limits.keep(kind)).min(free.len());
        out.extend(free.iter().take(extra).map(|s| s.slot));
    }
    if limits.max_bytes > 0 {
        let kept = |s: &&PoolSlot| s.state != SlotState::Retired && !out.contains(&s.slot);
        let mut total: u64 = slots.iter().filter(kept).map(|s| s.bytes).sum();
        let mut free: Vec<&PoolSlot> = slots
            .iter()
            .filter(kept)
            .filter(|s| s.state == SlotState::Free)
            .collect();
        free.sort_by_key(|s| (std::cmp::Reverse(s.bytes), s.slot));
        for s in free {
            if total <= limits.max_bytes {
                break;
            }
            total -= s.bytes;
            out.push(s.slot);
        }
    }
    out
}

/// Where a new worktree (`new`) of the pool under `root` may copy its caches from, the
/// best first: free ones, the one used most recently first (its caches are the
/// warmest), then leased ones. A leased one's files written since it was leased are
/// not to be copied ([`PoolSlot::last_used`] is that moment): they may be
/// half-written. The first that has the caches is the donor.
pub fn warm_donors<'a>(slots: &'a [PoolSlot], root: &Path, new: u32) -> Vec<&'a PoolSlot> {
    let mut out: Vec<&PoolSlot> = slots
        .iter()
        .filter(|s| is_under(s, root) && s.slot != new && s.state != SlotState::Retired)
        .collect();
    out.sort_by_key(|s| {
        std::cmp::Reverse((
            s.state == SlotState::Free,
            s.last_used,
            std::cmp::Reverse(s.slot),
        ))
    });
    out
}

/// What survives a pooled worktree's reuse among the files git ignores: everything
/// (the default), or only what `keep` matches; and never what `scrub` matches.
/// Untracked files git does not ignore, and changes to tracked ones, never survive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheRules {
    /// `worktrees.keep`: `.gitignore` patterns; empty keeps every ignored path.
    pub keep: Vec<String>,
    /// `worktrees.scrub`: `.gitignore` patterns of ignored paths removed all the same.
    pub scrub: Vec<String>,
}

impl CacheRules {
    /// The rules `w` sets.
    pub fn from_config(w: &WorktreesConfig) -> CacheRules {
        CacheRules {
            keep: w.keep.clone(),
            scrub: w.scrub.clone(),
        }
    }

    /// The caches a new pooled worktree starts with a copy of: the `keep` patterns
    /// that name a path (`target/`, `node_modules`), relative to the worktree; globs,
    /// negations and paths out of it are left out.
    pub fn copied(&self) -> Vec<String> {
        self.keep
            .iter()
            .map(|k| k.trim().trim_matches('/').to_owned())
            .filter(|k| {
                !k.is_empty()
                    && !k.contains(['*', '?', '[', '!', '\\'])
                    && !k.split('/').any(|c| c == ".." || c == "." || c.is_empty())
            })
            .collect()
    }
}

/// The slot's variables: `ORCH_SLOT`, and `ORCH_PORT`, the first of its block of
/// `worktrees.ports_per_slot` ports from `worktrees.port_base`.
pub fn slot_env(w: &WorktreesConfig, slot: u32) -> Vec<(String, String)> {
    let port = w.port_base as u64 + slot as u64 * w.ports_per_slot as u64;
    let mut env = vec![("ORCH_SLOT".to_owned(), slot.to_string())];
    // The configured range was checked for the slots a run uses; a slot past it (a
    // pool grown by other clones and workers) gets no port rather than a bad one.
    if port + w.ports_per_slot as u64 - 1 <= 65535 {
        env.push(("ORCH_PORT".to_owned(), port.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(n: u32, kind: PoolKind, state: SlotState, used: i64, bytes: u64) -> PoolSlot {
        PoolSlot {
            slot: n,
            kind,
            path: PathBuf::from(format!("/p/pool/{n}")),
            state,
            set_up: true,
            last_holder: None,
            last_used: Timestamp(used),
            bytes,
        }
    }

    fn limits(keep: u32, max: u32, max_bytes: u64) -> PoolLimits {
        PoolLimits {
            keep_attempt: keep,
            keep_integration: 1,
            max,
            max_bytes,
        }
    }

    fn held() -> SlotState {
        SlotState::Leased(Holder {
            run: "r".into(),
            holder: "task-1-1".into(),
        })
    }

    #[test]
    fn a_new_worktree_copies_the_warmest_free_one_else_a_leased_one() {
        use PoolKind::*;
        let root = Path::new("/p");
        let mut slots = vec![
            slot(0, Attempt, SlotState::Free, 10, 0),
            slot(1, Integration, SlotState::Free, 30, 0),
            slot(2, Attempt, held(), 60, 0),
            slot(3, Attempt, SlotState::Retired, 90, 0),
            slot(4, Attempt, SlotState::Free, 99, 0),
        ];
        slots[4].path = PathBuf::from("/elsewhere/pool/4");
        let order = |slots: &[PoolSlot], new| -> Vec<u32> {
            warm_donors(slots, root, new)
                .iter()
                .map(|s| s.slot)
                .collect()
        };
        assert_eq!(order(&slots, 5), vec![1, 0, 2]);
        assert_eq!(order(&slots[..1], 0), Vec::<u32>::new());
        slots[1].state = held();
        assert_eq!(order(&slots, 5), vec![0, 2, 1]);
        let rules = CacheRules {
            keep: [
                "target/",
                "/node_modules",
                "*.o",
                "!keep",
                "../up",
                "a//b",
                " .venv ",
            ]
            .map(String::from)
            .to_vec(),
            scrub: Vec::new(),
        };
        assert_eq!(rules.copied(), vec!["target", "node_modules", ".venv"]);
    }

    #[test]
    fn the_warmest_free_worktree_of_the_kind_is_reused() {
        use PoolKind::*;
        let slots = [
            slot(0, Attempt, SlotState::Free, 10, 0),
            slot(1, Attempt, SlotState::Free, 30, 0),
            slot(2, Integration, SlotState::Free, 50, 0),
            slot(3, Attempt, held(), 60, 0),
        ];
        let root = Path::new("/p");
        assert_eq!(
            choose(&slots, Attempt, &limits(2, 0, 0), root),
            Choice::Reuse(1)
        );
        assert_eq!(
            choose(&slots, Integration, &limits(2, 0, 0), root),
            Choice::Reuse(2)
        );
    }

    #[test]
    fn a_new_worktree_takes_the_lowest_free_number_until_the_cap() {
        use PoolKind::*;
        let slots = [
            slot(0, Attempt, held(), 1, 0),
            slot(2, Attempt, held(), 1, 0),
            slot(1, Attempt, SlotState::Retired, 1, 0),
        ];
        let root = Path::new("/p");
        assert_eq!(
            choose(&slots, Attempt, &limits(2, 0, 0), root),
            Choice::Create(3, PathBuf::from("/p/pool/attempt-3"))
        );
        assert_eq!(
            choose(&slots[..2], Integration, &limits(2, 0, 0), root),
            Choice::Create(1, PathBuf::from("/p/pool/integration-1"))
        );
        assert_eq!(
            choose(&slots, Attempt, &limits(2, 2, 0), root),
            Choice::Full { held: 2 }
        );
    }

    #[test]
    fn each_root_is_a_pool_of_its_own_and_slot_numbers_stay_unique() {
        use PoolKind::*;
        // Another machine's (or clone's) pool: a free worktree, and one over the cap.
        let mut other = slot(0, Attempt, SlotState::Free, 99, 0);
        other.path = PathBuf::from("/q/pool/attempt-0");
        let mut big = slot(1, Attempt, SlotState::Free, 1, 1 << 40);
        big.path = PathBuf::from("/q/pool/attempt-1");
        let slots = [other, big];
        let root = Path::new("/p");
        assert_eq!(
            choose(&slots, Attempt, &limits(2, 1, 0), root),
            Choice::Create(2, PathBuf::from("/p/pool/attempt-2")),
            "not reused, not counted against the cap, its numbers not taken"
        );
        assert_eq!(to_retire(&slots, &limits(0, 0, 1), root), Vec::<u32>::new());
        assert_eq!(
            to_retire(&slots, &limits(0, 0, 1), Path::new("/q")),
            vec![1, 0]
        );
    }

    #[test]
    fn idle_worktrees_past_the_pool_size_go_least_recently_used_first() {
        use PoolKind::*;
        let slots = [
            slot(0, Attempt, SlotState::Free, 50, 0),
            slot(1, Attempt, SlotState::Free, 10, 0),
            slot(2, Attempt, held(), 5, 0),
            slot(3, Attempt, SlotState::Free, 20, 0),
            slot(4, Integration, SlotState::Free, 1, 0),
        ];
        assert_eq!(
            to_retire(&slots, &limits(2, 0, 0), Path::new("/p")),
            vec![1, 3]
        );
        assert_eq!(
            to_retire(&slots, &limits(4, 0, 0), Path::new("/p")),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn over_max_bytes_the_largest_idle_worktrees_go_and_held_ones_never() {
        use PoolKind::*;
        let slots = [
            slot(0, Attempt, SlotState::Free, 1, 100),
            slot(1, Attempt, SlotState::Free, 2, 500),
            slot(2, Attempt, held(), 3, 900),
            slot(3, Attempt, SlotState::Free, 4, 300),
        ];
        // 1800 in all; the cap is 1000: 500 goes (1300), then 300 (1000).
        assert_eq!(
            to_retire(&slots, &limits(8, 0, 1000), Path::new("/p")),
            vec![1, 3]
        );
        // Only the held one would fit: every free one goes, the held one stays.
        assert_eq!(
            to_retire(&slots, &limits(8, 0, 10), Path::new("/p")),
            vec![1, 3, 0]
        );
    }

    #[test]
    fn each_slot_has_its_own_block_of_ports() {
        let w = WorktreesConfig::default();
        let a = slot_env(&w, 0);
        let b = slot_env(&w, 3);
        assert_eq!(a[1].1, w.port_base.to_string());
        assert_eq!(b[0].1, "3");
        assert_eq!(
            b[1].1.parse::<u32>().unwrap(),
            w.port_base + 3 * w.ports_per_slot
        );
    }
}
