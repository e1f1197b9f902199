//! The run event stream and the run's steering wheel: [`RunHandle`]. It is the one API
//! the CLI's live view, `--json-events`, the dashboard and embedders all read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use orch_core::run::{AttemptId, CancelScope, Journaled, RunState, Stage};
use orch_core::{TaskId, Timestamp};
use orch_validate::CancellationToken;
use tokio::sync::{broadcast, mpsc};

/// One item of a run's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunUpdate {
    /// A journal event, once durable. Never lost.
    Journal(Journaled),
    /// A line an attempt's process printed, live. Lossy for a slow reader.
    Output {
        /// The attempt.
        attempt: AttemptId,
        /// The gate, or `None` for the agent.
        stage: Option<Stage>,
        /// The line, without its newline.
        line: String,
    },
    /// About once a second while the run is driven: where it stands. Lossy.
    Heartbeat(Progress),
    /// The run stopped being driven: it ended (`state`), or the driver stopped with
    /// `error` (the run is then resumable). The last item of every stream.
    Ended {
        /// How it ended, if it did.
        state: Option<RunState>,
        /// Why the driver stopped, if it failed.
        error: Option<String>,
    },
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// When.
    pub at: Timestamp,
    /// The run's state.
    pub state: RunState,
    /// Attempts holding a slot.
    pub live_attempts: usize,
    /// Whether claiming is paused.
    pub paused: bool,
}

/// A request to steer a live run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Steer {
    CancelTask(TaskId),
    Pause,
    Resume,
}

/// How many lossy updates a slow subscriber may fall behind before it loses some.
const LIVE: usize = 1024;

/// A live run's event stream and controls. Cheap to clone; create one per run.
#[derive(Debug, Clone)]
pub struct RunHandle {
    cancel: CancellationToken,
    steer: mpsc::UnboundedSender<Steer>,
    steer_rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Steer>>>>,
    journal: Arc<Mutex<Vec<mpsc::UnboundedSender<RunUpdate>>>>,
    live: broadcast::Sender<RunUpdate>,
    ended: Arc<AtomicBool>,
}

impl Default for RunHandle {
    fn default() -> Self {
        RunHandle::new()
    }
}

impl RunHandle {
    /// A handle for a run about to start (or resume).
    pub fn new() -> RunHandle {
        RunHandle::with_cancel(CancellationToken::new())
    }

    /// A handle whose run-wide cancel is `cancel` (canceling it drains the run).
    pub fn with_cancel(cancel: CancellationToken) -> RunHandle {
        let (steer, rx) = mpsc::unbounded_channel();
        RunHandle {
            cancel,
            steer,
            steer_rx: Arc::new(Mutex::new(Some(rx))),
            journal: Arc::new(Mutex::new(Vec::new())),
            live: broadcast::channel(LIVE).0,
            ended: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The run's events from now on: every journal event, and live output and
    /// heartbeats (lossy for a reader that falls behind), ending with `Ended`.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.journal.lock().expect("never poisoned").push(tx);
        Subscription {
            journal: rx,
            live: self.live.subscribe(),
            end: None,
            ended: false,
        }
    }

    /// Cancels the run (it drains: no new claims, its attempts are stopped, their
    /// tasks released) or one task's attempt (the task becomes `canceled`).
    pub fn cancel(&self, scope: CancelScope) {
        match scope {
            CancelScope::Run => self.cancel.cancel(),
            CancelScope::Task(t) => {
                let _ = self.steer.send(Steer::CancelTask(t));
            }
        }
    }

    /// Stops claiming new tasks; live attempts go on.
    pub fn pause_claims(&self) {
        let _ = self.steer.send(Steer::Pause);
    }

    /// Claims again after [`RunHandle::pause_claims`].
    pub fn resume_claims(&self) {
        let _ = self.steer.send(Steer::Resume);
    }

    pub(crate) fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The steering requests, for the one driver of the run.
    pub(crate) fn take_steer(&self) -> Option<mpsc::UnboundedReceiver<Steer>> {
        self.steer_rx.lock().expect("never poisoned").take()
    }

    /// Publishes an update: journal events and the end to every subscriber, the rest
    /// to those keeping up. Only the first `Ended` counts.
    pub(crate) fn publish(&self, u: RunUpdate) {
        if matches!(u, RunUpdate::Ended { .. }) && self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        match u {
            RunUpdate::Journal(_) | RunUpdate::Ended { .. } => {
                let mut subs = self.journal.lock().expect("never poisoned");
                subs.retain(|s| s.send(u.clone()).is_ok());
            }
            RunUpdate::Output { .. } | RunUpdate::Heartbeat(_) => {
                let _ = self.live.send(u);
            }
        }
    }
}

/// A subscriber's view of a run's event stream.
#[derive(Debug)]
pub struct Subscription {
    journal: mpsc::UnboundedReceiver<RunUpdate>,
    live: broadcast::Receiver<RunUpdate>,
    /// `Ended` arrived; the live feed is drained before it is handed out.
    end: Option<RunUpdate>,
    ended: bool,
}

impl Subscription {
    /// The next update; `None` after `Ended`. Journal events come first when both are
    /// waiting, so a slow reader loses output lines, never the journal; what the live
    /// feed still holds is delivered before `Ended`.
    pub async fn next(&mut self) -> Option<RunUpdate> {
        if let Some(end) = self.end.take() {
            return match self.live.try_recv() {
                Ok(u) => {
                    self.end = Some(end);
                    Some(u)
                }
                Err(_) => {
                    self.ended = true;
                    Some(end)
                }
            };
        }
        if self.ended {
            return None;
        }
        loop {
            let u = tokio::select! {
                biased;
                u = self.journal.recv() => u?,
                l = self.live.recv() => match l {
                    Ok(u) => u,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => self.journal.recv().await?,
                },
            };
            if matches!(u, RunUpdate::Ended { .. }) {
                self.end = Some(u);
                return Box::pin(self.next()).await;
            }
            return Some(u);
        }
    }
}
