//! `orch agents check`: the preflight of one preset, or of every one.

use anyhow::Result;
use orch_engine::agents::AgentCheck;
use orch_engine::agents::presets;
use orch_engine::core::config::{Config, Preset};
use orch_engine::run::setup;

use crate::ctx::Ctx;
use crate::output;

/// Checks `command` when given, else `preset`, else the configured preset, else every
/// preset. Exit code 1 when anything checked cannot run.
pub(super) fn check(ctx: &Ctx, preset: Option<Preset>, command: Option<&str>) -> Result<u8> {
    // Outside a repository the defaults (and -c flags) still say what an agent sees.
    let config: Config = match ctx.load() {
        Ok((_, settings)) => settings.config,
        Err(_) => Config::default(),
    };
    let chosen = preset.or((config.agent.preset != Preset::None).then_some(config.agent.preset));
    let checks: Vec<AgentCheck> = match (command, chosen) {
        (Some(cmd), _) => vec![setup::check_command(&config, cmd)],
        (None, Some(p)) => presets::spec(p)
            .into_iter()
            .map(|s| setup::check_preset(&config, s))
            .collect(),
        (None, None) => presets::ALL
            .iter()
            .map(|s| setup::check_preset(&config, s))
            .collect(),
    };
    let failed = checks.iter().any(|c| !c.ok());
    if ctx.json {
        output::print_json(&checks)?;
    } else {
        for c in &checks {
            print!("{}", output::render_agent_check(c));
        }
    }
    Ok(u8::from(failed))
}
