//! `orch events [--run RUN] [--task ID] [--kind KIND] [--since DURATION] [--limit N]
//! [--follow]`: the audit log, each line naming its task.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use orch_engine::core::event::Event;
use orch_engine::core::{TaskId, Timestamp};
use orch_store::Store;

use crate::cli::EventsArgs;
use crate::ctx::Ctx;
use crate::output;

/// `orch events`: the audit log, filtered, optionally followed.
pub(super) async fn events(ctx: &Ctx, args: &EventsArgs) -> Result<()> {
    let store = ctx.open().await?.store().clone();
    let mut filter = orch_store::EventFilter {
        task: args.task,
        run: args.run.clone(),
        kind: args.kind.clone().filter(|k| !k.is_empty()),
        since: args.since.map(|d| ago(d.0)),
        last: args.limit,
        ..Default::default()
    };
    let mut titles = Titles::default();
    loop {
        let events = store.events(&filter).await?;
        for e in &events {
            let title = titles.of(&store, e.task_id).await?;
            if ctx.json {
                let json = output::EventJson::titled(e, title.as_deref());
                println!("{}", serde_json::to_string(&json)?);
            } else {
                println!("{}", line(e, title.as_deref()));
            }
        }
        if let Some(last) = events.last() {
            filter.after_seq = Some(last.seq);
        }
        if !args.follow {
            return Ok(());
        }
        // Following: everything new, however many.
        filter.last = None;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One event as a line: when, what kind, the task (`#5 Add parser`), why, the run.
fn line(e: &Event, title: Option<&str>) -> String {
    let task = match (e.task_id, title) {
        (Some(t), Some(title)) => format!("#{t} {}: ", output::printable(title)),
        (Some(t), None) => format!("#{t}: "),
        (None, _) => String::new(),
    };
    let run = e
        .run_id
        .as_deref()
        .map(|r| format!(" [{r}]"))
        .unwrap_or_default();
    format!(
        "{}  {:<18} {task}{}{run}",
        e.at,
        e.kind,
        output::printable(&e.reason)
    )
}

/// The instant `d` ago.
fn ago(d: Duration) -> Timestamp {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |n| i64::try_from(n.as_millis()).unwrap_or(i64::MAX));
    Timestamp(now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// Task titles, read from the board once and again when a task it did not know shows
/// up (a task added while following); a removed task has none.
#[derive(Default)]
struct Titles {
    known: HashMap<TaskId, String>,
    read: bool,
}

impl Titles {
    async fn of(&mut self, store: &Store, task: Option<TaskId>) -> Result<Option<String>> {
        let Some(t) = task else {
            return Ok(None);
        };
        if !self.known.contains_key(&t) && (!self.read || t.0 > self.newest()) {
            self.known = store
                .tasks(&[])
                .await?
                .into_iter()
                .map(|t| (t.id, t.title))
                .collect();
            self.read = true;
        }
        Ok(self.known.get(&t).cloned())
    }

    fn newest(&self) -> i64 {
        self.known.keys().map(|t| t.0).max().unwrap_or(0)
    }
}
