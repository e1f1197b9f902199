//! The planner: a typed request on its stdin, its answer parsed into proposals. The
//! core judges them; the planner's deadline is the core's (`Policy::planner_timeout`).

use std::sync::Arc;
use std::time::Duration;

use orch_core::TaskId;
use orch_core::run::Input;
use orch_validate::{CommandSpec, Environment, Program};
use serde::Serialize;

use crate::exec::{Ctx, Stop};

/// One candidate task, as the planner sees it.
#[derive(Debug, Serialize)]
pub struct Candidate {
    /// Id.
    pub id: i64,
    /// Key.
    pub key: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Priority.
    pub priority: i32,
    /// Dependencies.
    pub depends_on: Vec<i64>,
    /// Labels.
    pub labels: Vec<String>,
    /// Paths it expects to change.
    pub touches: Vec<String>,
}

/// What the planner gets on stdin.
#[derive(Debug, Serialize)]
pub struct Request {
    /// The run.
    pub run: String,
    /// The request id.
    pub request: u64,
    /// How many attempts may start.
    pub free_slots: u32,
    /// The tasks the scheduler could claim now, in its order.
    pub claimable: Vec<Candidate>,
}

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

/// Reads a planner's answer: a JSON list of proposals, or `{"proposals": [...]}`.
pub fn parse_proposals(stdout: &[u8]) -> Result<Vec<orch_core::run::Proposal>, String> {
    let v: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| {
        format!("the planner printed invalid JSON ({e}); expected a list of proposals such as [{{\"action\": \"claim\", \"task\": 3}}]")
    })?;
    let list = match v {
        serde_json::Value::Object(mut o) if o.contains_key("proposals") => {
            o.remove("proposals").unwrap_or_default()
        }
        other => other,
    };
    serde_json::from_value(list).map_err(|e| {
        format!("the planner's proposals are not understood ({e}); each is {{\"action\": \"claim\", \"task\": ID, \"note\"?}}, {{\"action\": \"defer\", \"task\": ID, \"reason\"}} or {{\"action\": \"stop_claiming\", \"reason\"}}")
    })
}
