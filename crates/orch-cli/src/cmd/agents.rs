//! `orch agents check`: the preflight of one preset, or of every one.

use anyhow::Result;
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
    let checks = setup::check_agents(&config, preset, command);
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
