//! Who drives a run: the owner's identity, the heartbeat that renews its lease, and
//! which runs no live process drives (interrupted, to be resumed).

use std::time::Duration;

use orch_core::lease::{LeaseFacts, is_interrupted};
use orch_core::run::RunId;
use orch_store::{Store, StoreError};
use tokio::sync::mpsc;

use crate::{EngineError, now};

/// Who drives a run, and how long its lease lasts without a heartbeat.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// `orch@<host>:<pid>:<nonce>`.
    pub(crate) id: String,
    pub(crate) ttl: Duration,
}

impl Owner {
    /// This process, with `ttl` (at least 1 s).
    pub(crate) fn this_process(ttl: Duration) -> Owner {
        Owner {
            id: format!("orch@{}:{}:{:x}", hostname(), std::process::id(), now().0),
            ttl: ttl.max(Duration::from_secs(1)),
        }
    }
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// True if a lease `owner` is an orch process on this host that no longer exists. A
/// recycled pid reads as alive, which only means waiting for the lease to expire.
pub(crate) fn owner_is_dead(owner: &str) -> bool {
    match orch_core::lease::owner_process(owner) {
        Some((host, pid)) if host == hostname() => !orch_validate::procs::pid_alive(pid),
        _ => false,
    }
}

/// Of `runs`, those not finished that no live process drives (their orch crashed or
/// was killed, and its lease expired or its owner is proven dead), in the same order.
/// `orch run --resume` takes the first of them.
pub async fn interrupted_runs(
    store: &Store,
    runs: &[orch_store::RunInfo],
) -> Result<Vec<RunId>, EngineError> {
    let mut out = Vec::new();
    for r in runs.iter().filter(|r| !r.state.is_terminal()) {
        let lease = store.lease(&r.id).await?.map(|l| LeaseFacts {
            owner: l.owner,
            expires_at: l.expires_at,
        });
        let dead = lease.as_ref().is_some_and(|l| owner_is_dead(&l.owner));
        if is_interrupted(lease.as_ref(), now(), dead) {
            out.push(r.id.clone());
        }
    }
    Ok(out)
}

/// Renews the lease every third of its TTL, on its own task so a slow store never
/// stalls the run's loop. Sends an error and stops once the lease is lost, or could
/// not be renewed for a whole TTL (another process may have taken it over).
pub(crate) async fn heartbeat(
    store: std::sync::Arc<dyn crate::ports::JournalPort>,
    run: RunId,
    owner: Owner,
    lost: mpsc::UnboundedSender<EngineError>,
) {
    let mut beat = tokio::time::interval(owner.ttl / 3);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    let mut renewed = tokio::time::Instant::now();
    loop {
        beat.tick().await;
        let err = match store.renew_lease(&run, &owner.id, owner.ttl).await {
            Ok(()) => {
                renewed = tokio::time::Instant::now();
                continue;
            }
            Err(e @ StoreError::LeaseLost { .. }) => EngineError::from(e),
            Err(e) if renewed.elapsed() >= owner.ttl => EngineError::LeaseExpired {
                run: run.0.clone(),
                why: e.to_string(),
            },
            // A busy database: the next beat tries again, within the TTL.
            Err(_) => continue,
        };
        let _ = lost.send(err);
        return;
    }
}

/// Stops every process of `run` at once (SIGTERM, then SIGKILL after a short grace),
/// wherever they are in their groups: for a frontend that must exit now.
pub async fn kill_run_processes(run: &RunId) {
    let tag = run.0.clone();
    let _ = tokio::task::spawn_blocking(move || {
        orch_validate::procs::stop_groups(|r| r == tag, Duration::from_millis(500))
    })
    .await;
}

/// Whether a run whose start failed never got going, by its journal: only then is it
/// abandoned. A journal that cannot be read says nothing, and the run stays
/// resumable: an empty journal read as a default would end a run that had work.
pub(crate) fn never_started(
    run: &orch_core::run::RunId,
    journal: Result<Vec<orch_core::run::RunEvent>, orch_store::StoreError>,
) -> bool {
    match journal {
        Ok(events) => {
            orch_core::run::RunSnapshot::from_events(&events).state
                == orch_core::run::RunState::Created
        }
        Err(e) => {
            tracing::error!(%run, error = %e, "the run's journal cannot be read; it is left to resume");
            false
        }
    }
}

#[cfg(test)]
mod journal_tests {
    use orch_core::run::{RunEvent, RunId, RunState};
    use orch_store::StoreError;

    use super::never_started;

    /// A failed read never ends a run; an empty or unstarted journal does.
    #[test]
    fn only_a_journal_read_whole_can_abandon_a_run() {
        let run = RunId("r1".into());
        let unreadable = Err(StoreError::Busy);
        assert!(!never_started(&run, unreadable));
        assert!(never_started(&run, Ok(Vec::new())));
        let started = vec![RunEvent::RunMoved {
            from: RunState::Created,
            to: RunState::Running,
            reason: "started".into(),
        }];
        assert!(!never_started(&run, Ok(started)));
    }
}
