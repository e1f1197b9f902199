//! `orch status` and `orch land`: the integration line, and landing it by hand.

use anyhow::Result;
use orch_engine::Engine;
use orch_engine::land::LandOptions;
use orch_engine::setup;

use crate::cli::LandArgs;
use crate::ctx::{Ctx, Opened};
use crate::output;

fn engine(opened: &Opened) -> Result<Engine> {
    let artifacts = opened.repo.orch_dir().join("artifacts");
    let cfg = opened.config.config.clone();
    let ecfg = setup::engine_config(&opened.repo.root, artifacts, cfg, Vec::new(), true)?;
    Ok(Engine::open(opened.store.clone(), &opened.repo.root, ecfg)?)
}

/// `orch status`.
pub(super) async fn status(ctx: &Ctx) -> Result<()> {
    let opened = ctx.open().await?;
    let s = engine(&opened)?.status().await?;
    output::land::print_status(&s, ctx.json)
}

/// `orch land`: what it did, or the command to run where it may not touch a checkout.
pub(super) async fn land(ctx: &Ctx, args: &LandArgs) -> Result<u8> {
    let opened = ctx.open().await?;
    if args.reset_line {
        let note = engine(&opened)?.reset_line(&crate::ctx::actor()).await?;
        output::land::print_landed(&[note], ctx.json)?;
        opened.store.close().await?;
        return Ok(0);
    }
    let opts = LandOptions {
        fast_forward: !args.no_fast_forward,
        push: args.push,
        update_checkout: args.update_checkout || opened.config.config.run.update_checkout,
    };
    let notes = engine(&opened)?.land_now(opts).await?;
    output::land::print_landed(&notes, ctx.json)?;
    opened.store.close().await?;
    Ok(0)
}
