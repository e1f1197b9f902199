//! `AskPlanner`: the planner command run with its request on stdin; its deadline is the
//! core's (`Policy::planner_timeout`), the runner's timeout only a backstop.

use std::sync::Arc;
use std::time::Duration;

use orch_core::TaskId;
use orch_core::run::Input;
use orch_validate::{CommandSpec, Environment, Program};

use super::{Ctx, Stop};
use crate::planner::{Candidate, Request, parse_proposals};

/// Asks the planner; a missing, failing or unparsable planner is `PlannerFailed`.
pub(crate) async fn ask(
    ctx: Arc<Ctx>,
    request: u64,
    claimable: Vec<TaskId>,
    free_slots: u32,
    stop: Stop,
) -> Input {
    let planner = ctx.cfg.config.run.planner.trim().to_owned();
    if planner.is_empty() {
        let reason = "no planner is configured".into();
        return Input::PlannerFailed { request, reason };
    }
    let req = Request {
        run: ctx.run.0.clone(),
        request,
        free_slots,
        claimable: claimable
            .iter()
            .filter_map(|id| ctx.task(*id))
            .map(|t| Candidate {
                id: t.id.0,
                depends_on: t.depends_on.iter().map(|d| d.0).collect(),
                key: t.key,
                title: t.title,
                body: t.body,
                priority: t.priority,
                labels: t.labels,
                touches: t.touches,
            })
            .collect(),
    };
    let spec = CommandSpec {
        program: Program::Shell(planner),
        cwd: ctx.git.workdir(),
        env: Environment::inherit(
            &ctx.cfg.config.agent.env_allow,
            vec![("ORCH_RUN_ID".into(), ctx.run.0.clone())],
        ),
        // The core's planner deadline decides (it falls back and stops waiting); this
        // backstop only ends a process nobody waits for any more.
        timeout: ctx.policy.planner_timeout + Duration::from_secs(5),
        kill_grace: Duration::from_secs(2),
        log_path: ctx
            .cfg
            .artifacts_root
            .join(&ctx.run.0)
            .join(format!("planner-{request}.log")),
        log_cap: ctx.cfg.config.artifacts.log_cap.0,
        stdin: Some(serde_json::to_vec(&req).expect("a planner request always serialises")),
        capture_stdout: Some(1 << 20),
        hard_kill: None,
    };
    match ctx.procs.run(&spec, &stop.term, None).await {
        Ok(r) if r.outcome.success() => parse_proposals(r.stdout.as_deref().unwrap_or_default())
            .map(|proposals| Input::PlannerProposed { request, proposals })
            .unwrap_or_else(|reason| Input::PlannerFailed { request, reason }),
        Ok(r) => Input::PlannerFailed {
            request,
            reason: format!("the planner {}", r.outcome),
        },
        Err(e) => Input::PlannerFailed {
            request,
            reason: e.to_string(),
        },
    }
}
