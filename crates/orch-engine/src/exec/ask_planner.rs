//! `AskPlanner`: the planner command run with its request on stdin (a planner preset:
//! its CLI with the planner prompt, answering in the planner schema, its usage sent to
//! the core first); its deadline is the core's (`Policy::planner_timeout`), the
//! runner's timeout only a backstop.

use std::sync::Arc;
use std::time::Duration;

use orch_core::TaskId;
use orch_core::run::{FailureKind, Input};
use orch_validate::{CommandSpec, Environment, Program};

use super::{Ctx, Stop};
use crate::agents::presets::PlannerSpec;
use crate::agents::proposals::{Candidate, Request, extract_answer, parse_proposals};
use crate::agents::report::OutputReader;

/// What the core asked the planner.
pub(crate) struct Ask {
    pub(crate) request: u64,
    pub(crate) claimable: Vec<TaskId>,
    pub(crate) free_slots: u32,
    pub(crate) failures: Vec<(TaskId, FailureKind)>,
}

/// Asks the planner; a missing, failing or unparsable planner is `PlannerFailed`.
pub(crate) async fn ask(ctx: Arc<Ctx>, ask: Ask, stop: Stop) -> Input {
    let request = ask.request;
    let planner = ctx.cfg.config.run.planner.trim().to_owned();
    if planner.is_empty() {
        let reason = "no planner is configured".into();
        return Input::PlannerFailed { request, reason };
    }
    let req = self::request(&ctx, &ask);
    let preset = crate::agents::presets::planner(&planner);
    let spec = command(&ctx, &planner, preset, &req);
    let result = ctx.procs.run(&spec, &stop.term, None).await;
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            let reason = e.to_string();
            return Input::PlannerFailed { request, reason };
        }
    };
    let stdout = r.stdout.as_deref().unwrap_or_default();
    if let Some(p) = preset {
        // What it cost, before what it said: the core counts it toward the budget.
        let mut reader = OutputReader::new(p.output);
        for l in String::from_utf8_lossy(stdout).lines() {
            reader.line(l);
        }
        if let Some(usage) = reader.report().usage {
            let _ = ctx.live.send(Input::PlannerUsage { request, usage });
        }
    }
    if !r.outcome.success() {
        let reason = format!("the planner {}", r.outcome);
        return Input::PlannerFailed { request, reason };
    }
    let answer = match preset {
        Some(_) => extract_answer(stdout),
        None => stdout.to_vec(),
    };
    parse_proposals(&answer)
        .map(|proposals| Input::PlannerProposed { request, proposals })
        .unwrap_or_else(|reason| Input::PlannerFailed { request, reason })
}

fn request(ctx: &Ctx, ask: &Ask) -> Request {
    let failure = |id: TaskId| {
        ask.failures
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, k)| k.to_string())
    };
    Request {
        run: ctx.run.0.clone(),
        request: ask.request,
        free_slots: ask.free_slots,
        claimable: ask
            .claimable
            .iter()
            .filter_map(|id| ctx.task(*id))
            .map(|t| Candidate {
                id: t.id.0,
                depends_on: t.depends_on.iter().map(|d| d.0).collect(),
                last_failure: failure(t.id),
                key: t.key,
                title: t.title,
                body: t.body,
                priority: t.priority,
                labels: t.labels,
                touches: t.touches,
            })
            .collect(),
    }
}

/// The planner's process: its own command with the request as JSON on stdin, or a
/// preset's CLI with the planner prompt and the variables that CLI reads.
fn command(ctx: &Ctx, planner: &str, preset: Option<&PlannerSpec>, req: &Request) -> CommandSpec {
    let (line, stdin, allow) = match preset {
        Some(p) => {
            let schema = crate::agents::prompt::shell_quote(crate::agents::proposals::SCHEMA);
            let cli =
                crate::agents::presets::spec(p.preset).expect("every planner preset is a preset");
            (
                p.command.replace("{schema}", &schema),
                crate::agents::proposals::prompt(req).into_bytes(),
                crate::run::setup::preset_env_allow(&ctx.cfg.config, cli),
            )
        }
        None => (
            planner.to_owned(),
            serde_json::to_vec(req).expect("a planner request always serialises"),
            ctx.cfg.config.agent.env_allow.clone(),
        ),
    };
    CommandSpec {
        program: Program::Shell(line),
        cwd: ctx.git.workdir(),
        env: Environment::inherit(&allow, vec![("ORCH_RUN_ID".into(), ctx.run.0.clone())]),
        // The core's planner deadline decides (it falls back and stops waiting); this
        // backstop only ends a process nobody waits for any more.
        timeout: ctx.policy.planner_timeout + Duration::from_secs(5),
        kill_grace: Duration::from_secs(2),
        log_path: ctx
            .cfg
            .artifacts_root
            .join(&ctx.run.0)
            .join(format!("planner-{}.log", req.request)),
        log_cap: ctx.cfg.config.artifacts.log_cap.0,
        stdin: Some(stdin),
        capture_stdout: Some(1 << 20),
        hard_kill: None,
        log_frame: false,
    }
}
