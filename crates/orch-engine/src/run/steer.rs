//! What a person asks of the board and its runs from outside a run, for every
//! frontend alike (`orch task retry/unblock/block/cancel`, `orch run cancel`, the
//! dashboard's buttons): each is a move the store checks against the transition table,
//! or a control posted for the live run to obey, journaled with who asked.

use orch_core::run::{RunId, RunState};
use orch_core::transition::Actor;
use orch_core::{Task, TaskId, TaskStatus};
use orch_store::{ControlKind, MoveRequest, Store};

use crate::EngineError;

/// How a cancel was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canceled {
    /// The task was not being worked on: it moved to `canceled`.
    Moved(Task),
    /// A live run works on it: each was asked to stop its attempt (and goes on with
    /// the rest). `interrupted` are those no orch drives now: the cancel takes effect
    /// when they are resumed.
    Requested {
        /// The runs asked.
        runs: Vec<RunId>,
        /// Those of them no orch drives.
        interrupted: Vec<RunId>,
    },
}

fn why(verb: &str, reason: Option<String>) -> Option<String> {
    Some(format!(
        "{verb}{}",
        reason.map(|r| format!(": {r}")).unwrap_or_default()
    ))
}

/// Moves a `from` task back to the backlog (`verb`: retried, unblocked); a task in any
/// other status is refused, naming what it is.
pub async fn reopen(
    store: &Store,
    id: TaskId,
    from: TaskStatus,
    verb: &str,
    reason: Option<String>,
    who: &str,
) -> Result<Task, EngineError> {
    let t = store.task(id).await?;
    if t.status != from {
        let hint = if t.status == TaskStatus::Canceled {
            " (a canceled one: orch task move ID backlog)"
        } else {
            ""
        };
        return Err(EngineError::Config(format!(
            "task {id} is {}; only a {from} task can be {verb}{hint}",
            t.status
        )));
    }
    let req = MoveRequest {
        to: TaskStatus::Backlog,
        actor: Actor::Human,
        force: false,
        reason: why(verb, reason),
    };
    Ok(store.move_task(id, &req, who).await?)
}

/// Cancels a task: moved to `canceled` when no run works on it, else each live run is
/// asked to stop its attempt.
pub async fn cancel_task(
    store: &Store,
    id: TaskId,
    reason: Option<String>,
    who: &str,
) -> Result<Canceled, EngineError> {
    let t = store.task(id).await?;
    if t.status != TaskStatus::InProgress {
        let req = MoveRequest {
            to: TaskStatus::Canceled,
            actor: Actor::Human,
            force: false,
            reason: Some(reason.unwrap_or_else(|| "canceled".into())),
        };
        return Ok(Canceled::Moved(store.move_task(id, &req, who).await?));
    }
    let all = store.runs().await?;
    let live: Vec<RunId> = all
        .iter()
        .filter(|r| matches!(r.state, RunState::Running | RunState::Draining))
        .map(|r| r.id.clone())
        .collect();
    if live.is_empty() {
        return Err(EngineError::Config(format!(
            "task {id} is in_progress but no run is live to stop it; move it with `orch task move {id} canceled --force`"
        )));
    }
    for r in &live {
        store
            .post_control(r, ControlKind::CancelTask(id), who)
            .await?;
    }
    let stuck = crate::interrupted_runs(store, &all).await?;
    let interrupted = live.iter().filter(|r| stuck.contains(r)).cloned().collect();
    Ok(Canceled::Requested {
        runs: live,
        interrupted,
    })
}

/// Asks a run to cancel (it drains: no new claims, its agents stopped, its tasks
/// released), journaled as asked by `who`. Refused for a run that has ended.
pub async fn cancel_run(store: &Store, run: &RunId, who: &str) -> Result<(), EngineError> {
    live(store, run).await?;
    store.post_control(run, ControlKind::CancelRun, who).await?;
    Ok(())
}

/// Refuses a run that has ended.
async fn live(store: &Store, run: &RunId) -> Result<(), EngineError> {
    let info = store.run(run).await?;
    if info.state.is_terminal() {
        return Err(EngineError::Config(
            format!("run {run} has already ended ({:?})", info.state).to_lowercase(),
        ));
    }
    Ok(())
}

/// Pauses (or, with `resume`, resumes) a live run's claiming, whichever process drives
/// it: it claims nothing new meanwhile, and its live attempts go on. Journaled as
/// asked by `who`; refused for a run that has ended.
pub async fn pause_claims(
    store: &Store,
    run: &RunId,
    resume: bool,
    who: &str,
) -> Result<(), EngineError> {
    live(store, run).await?;
    let kind = match resume {
        true => ControlKind::ResumeClaims,
        false => ControlKind::PauseClaims,
    };
    store.post_control(run, kind, who).await?;
    Ok(())
}

/// What an attempt changed: its head against its base, as a stat and a patch cut at
/// `cap` bytes, from the repository at `repo`.
pub fn attempt_diff(
    repo: &std::path::Path,
    base: &str,
    head: &str,
    cap: usize,
) -> Result<String, EngineError> {
    use orch_core::run::CommitId;
    let git = orch_git::Git::open(repo)?;
    Ok(git.diff(&CommitId(base.to_owned()), &CommitId(head.to_owned()), cap)?)
}
