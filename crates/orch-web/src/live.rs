//! `/live`: the audit log as Server-Sent Events, one message per event with its `seq`
//! as the id. A browser that reconnects sends `Last-Event-ID` and gets every event
//! after it, none twice; a new client starts at the newest. Runs driven by other
//! processes write the same log, so the dashboard sees them as well as its own; the
//! stream looks at the log every 100 ms, well inside the 250 ms a change may take to
//! reach the browser.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use orch_store::EventFilter;
use serde::Deserialize;

use crate::AppState;

/// How often the log is looked at.
const TICK: Duration = Duration::from_millis(100);

/// `?after=SEQ`: where to start, for clients that cannot send `Last-Event-ID`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LiveQuery {
    after: Option<i64>,
}

/// `GET /live`.
pub(crate) async fn stream(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = match resumed.or(q.after) {
        Some(seq) => seq,
        None => app.store.last_event_seq().await.unwrap_or(0),
    };
    let state = (app, after, VecDeque::new());
    let events = futures_util::stream::unfold(state, |(app, mut after, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                return Some((Ok(e), (app, after, queue)));
            }
            tokio::time::sleep(TICK).await;
            let filter = EventFilter {
                after_seq: Some(after),
                limit: Some(500),
                ..EventFilter::default()
            };
            for e in app.store.events(&filter).await.unwrap_or_default() {
                after = e.seq;
                let data = serde_json::json!({
                    "seq": e.seq,
                    "kind": e.kind,
                    "run": e.run_id,
                    "task": e.task_id.map(|t| t.0),
                    "reason": e.reason,
                });
                queue.push_back(
                    Event::default()
                        .id(e.seq.to_string())
                        .data(data.to_string()),
                );
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
