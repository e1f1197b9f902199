//! `orch status` and `orch land`: the integration line, and landing it by hand.

use anyhow::Result;
use orch_engine::line::land::LandOptions;

use crate::cli::LandArgs;
use crate::ctx::Ctx;
use crate::output;

/// `orch status`.
pub(super) async fn status(ctx: &Ctx) -> Result<()> {
    let repo = ctx.open().await?;
    let s = repo.status().await?;
    output::land::print_status(&s, ctx.json)
}

/// `orch land`: what it did, or the command to run where it may not touch a checkout.
pub(super) async fn land(ctx: &Ctx, args: &LandArgs) -> Result<u8> {
    let repo = ctx.open().await?;
    if args.reset_line {
        let note = repo
            .engine(Vec::new(), true)?
            .reset_line(&repo.actor())
            .await?;
        output::land::print_landed(&[note], ctx.json)?;
        repo.close().await?;
        return Ok(0);
    }
    let mut opts = LandOptions::default();
    opts.fast_forward = !args.no_fast_forward;
    opts.push = args.push;
    opts.update_checkout = args.update_checkout || repo.config().run.update_checkout;
    let notes = repo.land(opts).await?;
    output::land::print_landed(&notes, ctx.json)?;
    repo.close().await?;
    Ok(0)
}
