//! `orch status` and `orch land`: the integration line, and landing it by hand.

use anyhow::Result;
use orch_engine::line::land::{LandOptions, LandOutcome};

use crate::cli::LandArgs;
use crate::ctx::Ctx;
use crate::output;

/// The exit code of an `orch land` that landed nothing (it says why, and what to run).
pub const EXIT_NOTHING_LANDED: u8 = 4;

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
        let mut reset = LandOutcome::default();
        reset.landed.push(note);
        output::land::print_landed(&reset, ctx.json)?;
        repo.close().await?;
        return Ok(0);
    }
    let mut opts = LandOptions::default();
    opts.fast_forward = !args.no_fast_forward;
    opts.push = args.push;
    // The person asked to land: a clean checkout moves, as `git merge --ff-only` would.
    opts.update_checkout = !args.no_update_checkout;
    let outcome = repo.land(opts).await?;
    output::land::print_landed(&outcome, ctx.json)?;
    repo.close().await?;
    // Nothing moved: a distinct exit, so a script does not take it for a landing.
    let nothing = outcome.landed.is_empty() && !outcome.not_landed.is_empty();
    Ok(if nothing { EXIT_NOTHING_LANDED } else { 0 })
}
