//! `orch events [--run RUN] [--task ID] [--follow]`: the audit log.

use std::time::Duration;

use anyhow::Result;

use crate::cli::EventsArgs;
use crate::ctx::Ctx;
use crate::output;

/// `orch events`: the audit log, optionally followed.
pub(super) async fn events(ctx: &Ctx, args: &EventsArgs) -> Result<()> {
    let store = ctx.open().await?.store().clone();
    let mut filter = orch_store::EventFilter {
        task: args.task,
        run: args.run.clone(),
        ..Default::default()
    };
    loop {
        let events = store.events(&filter).await?;
        for e in &events {
            if ctx.json {
                println!("{}", serde_json::to_string(&output::EventJson::from(e))?);
            } else {
                let run = e
                    .run_id
                    .as_deref()
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default();
                println!("{}  {:<18} {}{run}", e.at, e.kind, e.reason);
            }
        }
        if let Some(last) = events.last() {
            filter.after_seq = Some(last.seq);
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
