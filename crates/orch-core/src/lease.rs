//! Who drives a run, decided from facts: a lease's owner and expiry, and whether the
//! owner's process is known to be gone. The store keeps leases; the engine gathers the
//! facts; the decisions are here.

use crate::time::Timestamp;

/// A run's lease, as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFacts {
    /// `orch@<host>:<pid>:<nonce>`.
    pub owner: String,
    /// When it lapses without a heartbeat.
    pub expires_at: Timestamp,
}

/// True when no live process drives a run that has not finished: it has no lease, its
/// lease expired, or its owner is proven dead (`owner_dead`). Such a run is
/// interrupted: `orch run resume` takes it over.
pub fn is_interrupted(lease: Option<&LeaseFacts>, now: Timestamp, owner_dead: bool) -> bool {
    match lease {
        None => true,
        Some(l) => l.expires_at <= now || owner_dead,
    }
}

/// The host and pid an owner names, if it is an orch process's (`orch@host:pid:nonce`).
/// Only an owner on this host whose pid is gone can be proven dead; anyone else's lease
/// is waited out.
pub fn owner_process(owner: &str) -> Option<(&str, i32)> {
    let rest = owner.strip_prefix("orch@")?;
    let mut parts = rest.rsplitn(3, ':');
    let (_nonce, pid, host) = (parts.next()?, parts.next()?, parts.next()?);
    Some((host, pid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_drives_until_it_lapses_or_its_owner_is_proven_dead() {
        let l = LeaseFacts {
            owner: "orch@box:42:ab".into(),
            expires_at: Timestamp(1_000),
        };
        assert!(!is_interrupted(Some(&l), Timestamp(999), false));
        assert!(is_interrupted(Some(&l), Timestamp(1_000), false));
        assert!(is_interrupted(Some(&l), Timestamp(10), true));
        assert!(is_interrupted(None, Timestamp(10), false));
        assert_eq!(owner_process(&l.owner), Some(("box", 42)));
        assert_eq!(owner_process("orch@my:host:7:ff"), Some(("my:host", 7)));
        assert_eq!(owner_process("someone else"), None);
    }
}
