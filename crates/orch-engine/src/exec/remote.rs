//! The coordinator's side of `run.executors = "workers"`: an attempt's agent and
//! worker gate run as a job on an `orch worker`, and its branch moves through
//! `run.remote`. Provisioning puts the attempt's branch on the remote at its base;
//! the agent command posts the job with the prompt and waits for its result (a cancel
//! asks the worker to stop); the worker gate's verdict is read from the result; the
//! integration ref moves on the remote first, by compare-and-swap, and the local one
//! follows.

use std::sync::Arc;

use orch_core::jobs::{JobResult, JobSpec, JobState};
use orch_core::run::{AgentExit, AttemptId, Command, CommitId, FinishedAgent, Input, Stage};
use orch_git::Expect;

use super::agent::{Ask, no_work};
use super::{Ctx, Stop, blocking};
use crate::ports::RefError;
use orch_core::ports::PortError;

/// Whether the run's attempts run on workers.
pub(crate) fn on_workers(ctx: &Ctx) -> bool {
    ctx.cfg.config.run.executors == orch_core::config::Executors::Workers
}

fn remote(ctx: &Ctx) -> String {
    ctx.cfg.config.run.remote.clone()
}

/// With workers, the work of the commands that differ; any other command (and every
/// command of a local run) comes back.
pub(crate) fn work(
    ctx: Arc<Ctx>,
    cmd: Command,
    stop: &Stop,
    base: Option<CommitId>,
) -> Result<super::Work, Box<Command>> {
    if !on_workers(&ctx) {
        return Err(Box::new(cmd));
    }
    match cmd {
        Command::Provision {
            attempt,
            branch,
            base,
        } => Ok(Box::pin(async move {
            Some(provision(ctx, attempt, branch, base).await)
        })),
        cmd @ Command::SpawnAgent { .. } => {
            let ask = Ask::of(cmd, base).expect("just matched");
            let stop = stop.clone();
            Ok(Box::pin(async move { Some(agent(ctx, ask, stop).await) }))
        }
        Command::RunGate {
            attempt,
            stage: Stage::Worker,
            ..
        } => Ok(Box::pin(async move { Some(gate(ctx, attempt).await) })),
        other => Err(Box::new(other)),
    }
}

/// Puts the attempt's branch on the remote at `base`, for a worker to start from.
pub(crate) async fn provision(
    ctx: Arc<Ctx>,
    attempt: AttemptId,
    branch: String,
    base: CommitId,
) -> Input {
    let (git, remote) = (ctx.git.clone(), remote(&ctx));
    let reference = format!("refs/heads/{branch}");
    match blocking(move || git.push_ref(&remote, &base, &reference, &Expect::Any)).await {
        Ok(Ok(())) => Input::WorktreeReady { attempt },
        Ok(Err(RefError::Failed(e) | RefError::Refused(e))) => Input::WorktreeFailed {
            attempt,
            error: format!("pushing the attempt's branch to {}: {e}", remote_name(&ctx)),
        },
        Ok(Err(RefError::LostRace {
            actual: CommitId(e),
        }))
        | Err(e) => Input::WorktreeFailed {
            attempt,
            error: format!("pushing the attempt's branch to {}: {e}", remote_name(&ctx)),
        },
    }
}

fn remote_name(ctx: &Ctx) -> String {
    format!("run.remote {:?}", ctx.cfg.config.run.remote)
}

/// Posts the attempt's job and waits for its result; `stop` asks the worker to stop.
pub(crate) async fn agent(ctx: Arc<Ctx>, ask: Ask, stop: Stop) -> Input {
    let attempt = ask.attempt;
    let failed = |why: String| no_work(attempt, AgentExit::FailedToStart(why));
    let dir = match ctx.artifacts.attempt_dir(&ctx.run, attempt) {
        Ok(d) => d,
        Err(e) => return failed(e.to_string()),
    };
    let prompt = super::agent::render(&ctx, &ask).await;
    if let Err(e) = orch_validate::files::write(&dir.join("prompt.md"), prompt.as_bytes()) {
        return failed(format!("writing the prompt: {e}"));
    }
    let spec = JobSpec {
        run: ctx.run.0.clone(),
        task: attempt.task,
        attempt: attempt.number,
        prompt,
        base: ask.base.clone(),
        branch: attempt.branch(&ctx.run),
        gates: ctx.cfg.config.validate.worker.clone(),
        labels: ctx.task(attempt.task).map(|t| t.labels).unwrap_or_default(),
        resume_session: ask.resume_session.clone(),
        deadline: ctx.journal.db_clock().await.ok().map(|now| {
            now + i64::try_from(ctx.cfg.config.agent.timeout.0.as_millis()).unwrap_or(i64::MAX / 2)
        }),
    };
    if let Err(e) = ctx.journal.post_job(&spec).await {
        return failed(format!("posting the job: {e}"));
    }
    let result = match wait(&ctx, attempt, &stop).await {
        Ok(Some(r)) => r,
        Ok(None) => return no_work(attempt, AgentExit::Signal(15)),
        Err(e) => return failed(e),
    };
    take_result(&ctx, attempt, &spec.branch, &dir, result).await
}

/// The job's result, or `None` when it was stopped before it gave one.
async fn wait(ctx: &Ctx, attempt: AttemptId, stop: &Stop) -> Result<Option<JobResult>, String> {
    // Woken by the store's announcements, and every `worker.poll` in any case.
    let poll = ctx.cfg.config.worker.poll.0;
    let changes = ctx
        .job_changes
        .get_or_init(|| ctx.journal.job_changes())
        .await
        .clone();
    let mut changes = changes.unwrap_or_else(|| tokio::sync::watch::channel(0).1);
    let mut asked = false;
    loop {
        changes.borrow_and_update();
        if !asked && stop.term.is_cancelled() {
            asked = true;
            match ctx.journal.cancel_job(&ctx.run, attempt).await {
                Ok(None) => return Ok(None),
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(%attempt, error = %e, "asking a job to stop"),
            }
        }
        // A busy or unreachable store is waited out: the worker goes on meanwhile.
        if let Ok(job) = ctx.journal.job(&ctx.run, attempt).await {
            let Some(job) = job else {
                return Err("the job is gone from the queue".into());
            };
            match job.state {
                JobState::Done => return Ok(job.result),
                // A stopped job whose worker is gone will not answer.
                JobState::Canceling | JobState::Claimed if asked => {
                    let now = ctx.journal.db_clock().await.unwrap_or(0);
                    if job.lease_until.is_some_and(|u| u < now) {
                        return Ok(None);
                    }
                }
                _ => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            Ok(()) = changes.changed() => {}
            _ = stop.term.cancelled(), if !asked => {}
        }
    }
}

/// The result as the local path reports it: the branch fetched and checked, the logs
/// and the exit marker written beside the attempt's prompt.
async fn take_result(
    ctx: &Ctx,
    attempt: AttemptId,
    branch: &str,
    dir: &std::path::Path,
    r: JobResult,
) -> Input {
    for (name, tail) in &r.logs {
        let safe = !name.contains('/') && !name.starts_with('.');
        if safe {
            let _ = orch_validate::files::write(&dir.join(name), tail.as_bytes());
        }
    }
    let worker = r.worker.clone();
    let mut agent = r.finished();
    if let Some(head) = agent.changes.as_ref().map(|c| c.head.clone()) {
        let (git, remote) = (ctx.git.clone(), remote(ctx));
        let spec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        let b = format!("refs/heads/{branch}");
        let fetched = blocking(move || {
            git.fetch_refs(&remote, &[spec])?;
            git.ref_target(&b)
        })
        .await;
        match fetched {
            Ok(Ok(Some(at))) if at == head => {}
            Ok(Ok(at)) => {
                agent.exit = AgentExit::FailedToStart(format!(
                    "worker {worker} reported {head} but the remote's {branch} is at {at:?}"
                ));
                agent.changes = None;
            }
            Ok(Err(e)) => {
                agent.exit = AgentExit::FailedToStart(format!("fetching {branch}: {e}"));
                agent.changes = None;
            }
            Err(e) => {
                agent.exit = AgentExit::FailedToStart(format!("fetching {branch}: {e}"));
                agent.changes = None;
            }
        }
    }
    let _ = super::agent::write_exit_marker(dir, &agent);
    let FinishedAgent {
        exit,
        changes,
        report,
    } = agent;
    Input::AgentExited {
        attempt,
        exit,
        changes,
        report,
    }
}

/// The worker gate's verdict, from the job's result.
pub(crate) async fn gate(ctx: Arc<Ctx>, attempt: AttemptId) -> Input {
    let stage = Stage::Worker;
    let verdict = match ctx.journal.job(&ctx.run, attempt).await {
        Ok(Some(j)) => j.result.and_then(|r| r.gate),
        Ok(None) => None,
        Err(e) => {
            return Input::GateBroken {
                attempt,
                stage,
                message: format!("reading the job's result: {e}"),
            };
        }
    };
    match verdict {
        Some(v) if !v.broken => Input::GateFinished {
            attempt,
            stage,
            passed: v.passed,
            summary: v.summary,
            reused: None,
        },
        Some(v) => Input::GateBroken {
            attempt,
            stage,
            message: v.summary,
        },
        None => Input::GateBroken {
            attempt,
            stage,
            message: "the worker ran no gate on this attempt".into(),
        },
    }
}

/// Moves the integration ref on the remote from `expected` to `new` (a line not on
/// the remote yet must still be absent), before the local ref follows. `Ok` too when
/// the remote is at `new` already (a resume after a crash in between).
pub(crate) async fn advance_remote(
    ctx: &Ctx,
    expected: &CommitId,
    new: &CommitId,
) -> Result<(), RefError> {
    let reference = crate::line::layout::integration_ref(&ctx.cfg.config.run, &ctx.run);
    let (git, remote, e, n) = (ctx.git.clone(), remote(ctx), expected.clone(), new.clone());
    blocking(move || {
        // The usual case in one round trip; the remote is asked only on a refusal. A
        // refusal with the ref still where expected (another push held its lock) is
        // tried again.
        for i in 1..=5u64 {
            let refused = match git.push_ref(&remote, &n, &reference, &Expect::At(e.clone())) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            };
            match git
                .remote_ref(&remote, &reference)
                .map_err(RefError::Failed)?
            {
                Some(a) if a == n => return Ok(()),
                Some(a) if a == e && i < 5 => {}
                Some(_) => return Err(refused),
                None => return git.push_ref(&remote, &n, &reference, &Expect::Absent),
            }
            std::thread::sleep(std::time::Duration::from_millis(50 * i));
        }
        unreachable!("the fifth refusal returns")
    })
    .await
    .map_err(|e| RefError::Failed(PortError::other(e)))?
}

/// After an attempt: its job forgotten, and its branch deleted on the remote when
/// the policy deletes it locally.
pub(crate) async fn cleanup(ctx: &Ctx, attempt: AttemptId, delete_branch: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = ctx.journal.forget_job(&ctx.run, attempt).await {
        errors.push(e.to_string());
    }
    let (git, remote) = (ctx.git.clone(), remote(ctx));
    let mut refs = vec![crate::line::layout::candidate_ref(&ctx.run, attempt)];
    if delete_branch {
        refs.push(format!("refs/heads/{}", attempt.branch(&ctx.run)));
    }
    let deleted = blocking(move || {
        refs.iter()
            .filter_map(|r| git.delete_remote_ref(&remote, r).err())
            .map(String::from)
            .collect::<Vec<_>>()
    })
    .await;
    match deleted {
        Ok(e) => errors.extend(e),
        Err(e) => errors.push(e),
    }
    errors
}
