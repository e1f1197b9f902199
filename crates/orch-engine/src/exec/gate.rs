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

/// A gate to run: `stage` of `attempt` on `commit`, and whether a pass of the same
/// recipe on the same tree may stand for it.
#[derive(Debug, Clone)]
pub(crate) struct GateAsk {
    pub(crate) attempt: AttemptId,
    pub(crate) stage: Stage,
    pub(crate) commit: CommitId,
    pub(crate) reuse: bool,
}

impl GateAsk {
    /// The gate a `RunGate` command asks for; `None` for any other command.
    pub(crate) fn of(cmd: orch_core::run::Command) -> Option<GateAsk> {
        let orch_core::run::Command::RunGate {
            attempt,
            stage,
            commit,
            reuse,
        } = cmd
        else {
            return None;
        };
        Some(GateAsk {
            attempt,
            stage,
            commit,
            reuse,
        })
    }
}

/// Runs the gate `ask` names, unless a pass of the same commands with the same named
/// environment on the same tree stands for it (`validate.reuse`).
pub(crate) async fn run(ctx: Arc<Ctx>, ask: GateAsk, stop: Stop) -> Input {
    let GateAsk {
        attempt,
        stage,
        commit,
        reuse,
    } = ask;
    let broken = |message: String| Input::GateBroken {
        attempt,
        stage,
        message,
    };
    let commands = match stage {
        Stage::Worker => ctx.cfg.config.validate.worker.clone(),
        Stage::Integration => ctx.cfg.config.validate.integration.clone(),
    };
    let verdict = match reuse {
        true => verdict_key(&ctx, attempt, &commit, &commands).await,
        false => None,
    };
    if let Some(v) = &verdict
        && let Ok(Some(by)) = ctx.journal.gate_verdict(&v.tree, &v.recipe).await
    {
        return Input::GateFinished {
            attempt,
            stage,
            passed: true,
            summary: format!("not run: {by} passed it on the same tree"),
            reused: Some(by),
        };
    }
    let run = Gate {
        attempt,
        stage,
        commit: commit.clone(),
        verdict,
    };
    if stage == Stage::Worker {
        let slot = ctx.held(attempt).map(|p| p.slot);
        let cwd = ctx.attempt_worktree(attempt);
        return run_in(ctx, run, stop, (cwd, slot, commands)).await;
    }
    if !ctx.pooled() {
        let lease = ctx.lease_integration();
        if let Err(e) = checkout(&ctx, &lease.path, &commit, false).await {
            return broken(format!("could not check out {commit}: {e}"));
        }
        let at = (lease.path.clone(), None, commands);
        return run_in(ctx, run, stop, at).await;
    }
    let p = match super::pooled::lease_integration(&ctx, attempt).await {
        Ok(p) => p,
        Err(e) => return broken(format!("no integration checkout: {e}")),
    };
    if let Err(e) = checkout(&ctx, &p.path, &commit, true).await {
        super::pooled::release_integration(&ctx, attempt, &p, true).await;
        return broken(format!("could not check out {commit}: {e}"));
    }
    if p.fresh {
        super::warm::warm(&ctx, p.slot, &p.path).await;
    }
    let at = (p.path.clone(), Some(p.slot), commands);
    let input = run_in(ctx.clone(), run, stop, at).await;
    super::pooled::release_integration(&ctx, attempt, &p, false).await;
    input
}

/// What a gate's verdict is kept by: the tree, and the recipe (its commands and the
/// environment it inherits by name, orch's per-attempt variables left out), hashed so
/// the store never holds a secret the environment carries.
#[derive(Debug, Clone)]
struct VerdictKey {
    tree: String,
    recipe: String,
}

async fn verdict_key(
    ctx: &Ctx,
    attempt: AttemptId,
    commit: &CommitId,
    commands: &[String],
) -> Option<VerdictKey> {
    let (git, c) = (ctx.git.clone(), commit.clone());
    let tree = blocking(move || git.tree_of(&c)).await.ok()?.ok()?;
    let here = std::path::Path::new("");
    let env: Vec<(String, String)> = ctx
        .env_in(attempt, here, here, commit, None)
        .resolve()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("ORCH_"))
        .collect();
    let recipe = serde_json::json!({ "commands": commands, "env": env }).to_string();
    Some(VerdictKey {
        tree,
        recipe: orch_git::content_id(recipe.as_bytes()),
    })
}

/// A gate being run.
struct Gate {
    attempt: AttemptId,
    stage: Stage,
    commit: CommitId,
    /// Set when its pass is kept for others (`validate.reuse`).
    verdict: Option<VerdictKey>,
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

/// Runs the gate's `commands` in `cwd` (pooled slot `slot`, if any); a pass is kept
/// by its tree and recipe, for others to stand on.
async fn run_in(
    ctx: Arc<Ctx>,
    gate: Gate,
    stop: Stop,
    (cwd, slot, commands): (PathBuf, Option<u32>, Vec<String>),
) -> Input {
    let Gate {
        attempt,
        stage,
        commit,
        verdict,
    } = gate;
    let broken = |message: String| Input::GateBroken {
        attempt,
        stage,
        message,
    };
    // A pooled worktree's caches: copied in, or built first while others wait.
    let first = match slot {
        Some(_) => Some((
            cwd.clone(),
            super::warm::before_gate(&ctx, &cwd, &stop).await,
        )),
        None => None,
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
    if let Some((cwd, first)) = first {
        super::warm::after_gate(&ctx, &cwd, first);
    }
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
    if let Some(v) = verdict.filter(|_| r.passed) {
        let by = format!("{attempt} of run {} ({} gate)", ctx.run, stage.as_str());
        if let Err(e) = ctx.journal.record_gate_pass(&v.tree, &v.recipe, &by).await {
            tracing::warn!(error = %e, "a gate's pass could not be kept for reuse");
        }
    }
    Input::GateFinished {
        attempt,
        stage,
        passed: r.passed,
        summary: r.summary(),
        reused: None,
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
