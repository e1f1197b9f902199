//! The run's store lane: one store operation at a time (a batch of journal writes, a
//! batch of claims, a board read, the controls), each in order with the others, so a command
//! never runs before the writes that license it are durable and a read is never
//! older than what the core already wrote. A busy or unreachable store is waited out
//! with backoff, up to `run.store_patience`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use orch_core::run::{Command, Journaled};
use orch_core::{Task, TaskId};
use orch_store::{Control, StoreError};

use crate::EngineError;
use crate::exec::Ctx;

/// One store operation of the lane.
pub(super) enum Lane {
    Write(Vec<Journaled>),
    /// Claims, each decided on the board version beside it.
    Claims(Vec<(TaskId, Journaled, i64)>),
    /// Read the board if it changed; with `fresh`, read it in any case (the core asked).
    Board {
        fresh: bool,
    },
    Controls,
}

/// What a lane operation came back with.
pub(super) enum Done {
    Written(Vec<Journaled>),
    /// Each claim's answer, in order: written, or refused and why.
    Claims(Vec<(TaskId, Result<Journaled, String>)>),
    Board(Option<(i64, Vec<Task>)>),
    Controls(Vec<Control>),
}

pub(super) type LaneFuture = Pin<Box<dyn Future<Output = Result<Done, EngineError>> + Send>>;

/// Runs one lane operation, waiting out a busy or unreachable store.
pub(super) async fn run_lane(ctx: Arc<Ctx>, op: Lane, seen: i64) -> Result<Done, EngineError> {
    let store = &ctx.journal;
    let patience = ctx.cfg.config.run.store_patience.0;
    match op {
        Lane::Write(batch) => {
            patient(&ctx, patience, || store.append(&ctx.run, &batch)).await?;
            Ok(Done::Written(batch))
        }
        Lane::Claims(claims) => {
            let asked: Vec<(Journaled, i64)> = claims
                .iter()
                .map(|(_, e, seen)| (e.clone(), *seen))
                .collect();
            let answers = patient(&ctx, patience, || store.claim(&ctx.run, &asked)).await?;
            let done = claims
                .into_iter()
                .zip(answers)
                .map(|((task, event, _), answer)| match answer {
                    Ok(()) => Ok((task, Ok(event))),
                    Err(e @ (StoreError::ClaimLost { .. } | StoreError::TaskChanged { .. })) => {
                        Ok((task, Err(e.to_string())))
                    }
                    Err(e) => Err(EngineError::Store(e)),
                })
                .collect::<Result<_, _>>()?;
            Ok(Done::Claims(done))
        }
        // The core asked for a fresh look: it waits for it, so it is patient.
        Lane::Board { fresh: true } => {
            let read = patient(&ctx, patience, || async {
                Ok((store.board_version(&ctx.run).await?, store.tasks().await?))
            })
            .await?;
            Ok(Done::Board(Some(read)))
        }
        // Polls are best effort: a busy store only delays them to the next tick.
        Lane::Board { fresh: false } => {
            let Ok(version) = store.board_version(&ctx.run).await else {
                return Ok(Done::Board(None));
            };
            if version == seen {
                return Ok(Done::Board(None));
            }
            Ok(Done::Board(store.tasks().await.ok().map(|t| (version, t))))
        }
        Lane::Controls => {
            let Ok(controls) = store.pending_controls(&ctx.run).await else {
                return Ok(Done::Controls(Vec::new()));
            };
            let mut handled = Vec::new();
            for c in controls {
                if store.mark_control_handled(c.id).await.is_ok() {
                    handled.push(c);
                }
            }
            Ok(Done::Controls(handled))
        }
    }
}

/// Retries `op` while the store is busy or unreachable, with backoff, for up to
/// `patience`; a refusal (a lost claim, a lost lease) is returned at once.
async fn patient<T, F, Fut>(ctx: &Ctx, patience: Duration, mut op: F) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if !transient(&e) => return Err(e.into()),
            Err(e) if started.elapsed() >= patience => {
                tracing::error!(error = %e, "the store stayed unavailable past run.store_patience");
                return Err(EngineError::StoreUnavailable {
                    run: ctx.run.0.clone(),
                    waited_secs: started.elapsed().as_secs(),
                    why: e.to_string(),
                });
            }
            Err(e) => {
                let waited_ms = started.elapsed().as_millis() as u64;
                match e.is_disk_full() {
                    true => {
                        tracing::warn!(error = %e, waited_ms, "no space left for the store's write; waiting for space")
                    }
                    false => {
                        tracing::warn!(error = %e, waited_ms, "the store is busy; retrying the write")
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A busy database, or one that could not be reached: worth waiting out.
fn transient(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Busy | StoreError::DiskFull { .. } | StoreError::Database { .. }
    )
}

/// Takes every write waiting in `outbox` before the next board read, in order, to be
/// written at once. The commands between them stay, and run once it is written: each
/// still after every write ahead of it, and the store is asked once, not once for each
/// (64 agents at once made 376 writes, 1.2 s of the lane, and 260 after).
pub(super) fn take_writes(outbox: &mut VecDeque<Command>) -> Vec<Journaled> {
    let barrier = outbox
        .iter()
        .position(|c| matches!(c, Command::RefreshBoard))
        .unwrap_or(outbox.len());
    let mut batch = Vec::new();
    let mut rest = VecDeque::with_capacity(outbox.len());
    for (i, c) in std::mem::take(outbox).into_iter().enumerate() {
        match c {
            Command::Persist(e) if i < barrier => batch.push(e),
            c => rest.push_back(c),
        }
    }
    *outbox = rest;
    batch
}

#[cfg(test)]
mod tests {
    use orch_core::Timestamp;
    use orch_core::run::{RunEvent, RunState};

    use super::*;

    fn write(n: i64) -> Command {
        Command::Persist(Journaled {
            at: Timestamp(n),
            event: RunEvent::RunMoved {
                from: RunState::Running,
                to: RunState::Running,
                reason: n.to_string(),
            },
        })
    }

    #[test]
    fn the_writes_before_a_board_read_go_at_once_and_the_rest_keeps_its_order() {
        let mut outbox = VecDeque::from([
            write(1),
            Command::Finish {
                state: RunState::Completed,
            },
            write(2),
            Command::RefreshBoard,
            write(3),
        ]);
        let batch = take_writes(&mut outbox);
        assert_eq!(batch.iter().map(|j| j.at.0).collect::<Vec<_>>(), [1, 2]);
        let left: Vec<&str> = outbox.iter().map(Command::name).collect();
        assert_eq!(left, ["finish", "refresh_board", "persist"]);
    }
}
