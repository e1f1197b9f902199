//! The source kept in step with a run: every half second, when the source's files or
//! the board changed, one sync (a person's edit in the source reaches the board, where
//! the run obeys it like any board edit; orch's moves reach the source). A source
//! that stops parsing mid-run is reported and skipped until it changes again: it
//! never stops the run. The run's end is followed by a last sync, so what landed is
//! written back.

use std::time::Duration;

use orch_store::Store;
use tokio_util::sync::CancellationToken;

use super::{Fingerprint, Source, SyncReport};

/// A run's source, ready to follow it.
#[derive(Debug, Clone)]
pub struct Mirror {
    source: Source,
    store: Store,
    actor: String,
}

/// A mirror following a run.
#[derive(Debug)]
pub struct Following {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    mirror: Mirror,
}

impl Mirror {
    /// A mirror of `source` onto the board in `store`, its board edits by `actor`.
    pub fn new(source: Source, store: Store, actor: String) -> Mirror {
        Mirror {
            source,
            store,
            actor,
        }
    }

    /// One sync now.
    pub async fn sync(&self) -> Result<SyncReport, super::SyncError> {
        self.source.sync(&self.store, &self.actor).await
    }

    /// Starts following: a sync whenever the files or the board change.
    pub fn follow(self) -> Following {
        let stop = CancellationToken::new();
        let (mirror, token) = (self.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut seen: Option<(Fingerprint, i64)> = None;
            let mut complained: Option<String> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let seq = mirror.store.last_event_seq().await.unwrap_or(-1);
                let now = (mirror.source.fingerprint(), seq);
                if seen.as_ref() == Some(&now) {
                    continue;
                }
                match mirror.sync().await {
                    Ok(_) => {
                        complained = None;
                        // The files and the board as they were before the sync: a
                        // person's edit, or a run's move, made while it ran is followed.
                        // What the sync itself wrote costs one more sync, which finds
                        // nothing to do and writes nothing.
                        seen = Some(now);
                    }
                    Err(e) => {
                        let words = e.to_string();
                        if complained.as_deref() != Some(&words) {
                            tracing::warn!(error = %words, "the board's source could not be synced; the run goes on with the board as it was");
                            complained = Some(words);
                        }
                        seen = Some(now);
                    }
                }
            }
        });
        Following {
            stop,
            task,
            mirror: self,
        }
    }
}

impl Following {
    /// Stops following, then syncs once more: the run's end reaches the source.
    pub async fn finish(self) -> Result<SyncReport, super::SyncError> {
        self.stop.cancel();
        let _ = self.task.await;
        self.mirror.sync().await
    }
}
