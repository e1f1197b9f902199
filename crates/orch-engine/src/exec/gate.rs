//! `RunGate`: the worker gate in the attempt's worktree, the integration gate in the
//! run's integration worktree switched to the candidate. A gate that cannot run at
//! all (no worktree, a failed checkout, results that cannot be recorded) is
//! `GateBroken`: orch's fault, which never spends the task's attempts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orch_core::pool::CacheRules;
use orch_core::run::{AttemptId, CommitId, Input, Stage, ValidationRecord};
use orch_validate::GateSpec;

use super::{Ctx, Stop, blocking};

/// Runs the `stage` gate of `attempt` on `commit`.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    attempt: AttemptId,
    stage: Stage,
    commit: CommitId,
    stop: Stop,
) -> Input {
    let broken = |message: String| Input::GateBroken {
        attempt,
        stage,
        message,
    };
    if stage == Stage::Worker {
        let slot = ctx.held(attempt).map(|p| p.slot);
        let cwd = ctx.attempt_worktree(attempt);
        let commands = ctx.cfg.config.validate.worker.clone();
        return run_in(ctx, attempt, stage, commit, stop, (cwd, slot, commands)).await;
    }
    let commands = ctx.cfg.config.validate.integration.clone();
    if !ctx.pooled() {
        let lease = ctx.lease_integration();
        if let Err(e) = checkout(&ctx, &lease.path, &commit, false).await {
            return broken(format!("could not check out {commit}: {e}"));
        }
        let at = (lease.path.clone(), None, commands);
        return run_in(ctx, attempt, stage, commit, stop, at).await;
    }
    let p = match super::pool::lease_integration(&ctx, attempt).await {
        Ok(p) => p,
        Err(e) => return broken(format!("no integration checkout: {e}")),
    };
    if let Err(e) = checkout(&ctx, &p.path, &commit, true).await {
        super::pool::release_integration(&ctx, attempt, &p, true).await;
        return broken(format!("could not check out {commit}: {e}"));
    }
    let at = (p.path.clone(), Some(p.slot), commands);
    let input = run_in(ctx.clone(), attempt, stage, commit, stop, at).await;
    super::pool::release_integration(&ctx, attempt, &p, false).await;
    input
}

/// Checks `commit` out in an integration checkout, scrubbed by the cache rules when
/// it is pooled.
async fn checkout(ctx: &Ctx, path: &Path, commit: &CommitId, scrub: bool) -> Result<(), String> {
    let (git, c, p) = (ctx.git.clone(), commit.clone(), path.to_path_buf());
    let submodules = ctx.cfg.config.worktrees.submodules;
    let rules = CacheRules::from_config(&ctx.cfg.config.worktrees);
    blocking(move || {
        // The checkout removed untracked files already: only cache rules that narrow
        // what is kept need the scrub's second pass.
        git.checkout_for_gate(&p, &c, submodules)?;
        if scrub && rules != CacheRules::default() {
            git.scrub(&p, &rules)?;
        }
        Ok(())
    })
    .await
    .and_then(|r| r)
}

/// Runs the gate's `commands` in `cwd` (pooled slot `slot`, if any).
async fn run_in(
    ctx: Arc<Ctx>,
    attempt: AttemptId,
    stage: Stage,
    commit: CommitId,
    stop: Stop,
    (cwd, slot, commands): (PathBuf, Option<u32>, Vec<String>),
) -> Input {
    let broken = |message: String| Input::GateBroken {
        attempt,
        stage,
        message,
    };
    let log_dir = ctx.log_dir(attempt);
    let (tx, forward) = super::forward(&ctx, attempt, Some(stage));
    let spec = GateSpec {
        stage,
        commands,
        env: ctx.env_in(attempt, &cwd, &log_dir.join("prompt.md"), &commit, slot),
        cwd,
        timeout: ctx.cfg.config.validate.timeout.0,
        kill_grace: ctx.policy.kill_grace,
        log_dir,
        log_cap: ctx.cfg.config.artifacts.log_cap.0,
        keep_going: false,
        hard_kill: Some(stop.kill.clone()),
        lines: Some(tx),
    };
    // The gate owns the feed's sender and drops it when done, which ends the forward.
    let (procs, term) = (ctx.procs.clone(), stop.term.clone());
    let gate = async move { procs.run_gate(&spec, &term).await };
    let (r, ()) = tokio::join!(gate, forward);
    let r = match r {
        Ok(r) => r,
        Err(e) => return broken(e.to_string()),
    };
    // The evidence is recorded before the core hears the verdict.
    let records: Vec<ValidationRecord> = r.commands.iter().map(record).collect();
    if let Err(e) = ctx
        .journal
        .record_validations(&ctx.run, attempt, stage, &records)
        .await
    {
        return broken(format!("the validation results could not be recorded: {e}"));
    }
    Input::GateFinished {
        attempt,
        stage,
        passed: r.passed,
        summary: r.summary(),
    }
}

fn record(c: &orch_validate::CommandResult) -> ValidationRecord {
    ValidationRecord {
        command: c.command.clone(),
        outcome: c.outcome.to_string(),
        exit_code: c.exit_code,
        duration_ms: c.duration.as_millis() as u64,
        log_path: c.log_path.display().to_string(),
        tail: c.tail.clone(),
    }
}
