//! `/live`: the audit log as Server-Sent Events, one message per event with its `seq`
//! as the id. A browser that reconnects sends `Last-Event-ID` and gets every event
//! after it, none twice; a page asks for those after the newest it was drawn from.
//! Runs driven by other processes write the same log, so one poller reads it every
//! 100 ms for every client (well inside the 250 ms a change may take to reach a
//! browser) and broadcasts; a client catches up from the store first, and again if it
//! falls behind the broadcast.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use orch_store::{EventFilter, Store};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::state::{AppState, Message};

/// How often the log is looked at.
const TICK: Duration = Duration::from_millis(100);

/// The poller's side: every new event, once, to every client.
pub(crate) async fn spawn_poller(
    store: Store,
) -> (broadcast::Sender<Message>, tokio::task::JoinHandle<()>) {
    let (tx, _) = broadcast::channel(4096);
    let feed = tx.clone();
    // Where it starts is read before the server serves. Read by the spawned task, it
    // could come late on a loaded machine: an event written in between was then never
    // broadcast, and a client that caught up before it waited for it for ever.
    let mut after = store.last_event_seq().await.unwrap_or(0);
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            for m in read(&store, after).await {
                after = m.0;
                // No client listening is not an error.
                let _ = feed.send(m);
            }
        }
    });
    (tx, task)
}

/// Up to 500 events after `after`, as messages.
async fn read(store: &Store, after: i64) -> Vec<Message> {
    let filter = EventFilter {
        after_seq: Some(after),
        limit: Some(500),
        ..EventFilter::default()
    };
    let events = store.events(&filter).await.unwrap_or_default();
    events
        .into_iter()
        .map(|e| {
            let data = serde_json::json!({
                "seq": e.seq,
                "at": e.at.as_millis(),
                "kind": e.kind,
                "run": e.run_id,
                "task": e.task_id.map(|t| t.0),
                "reason": e.reason,
            });
            Arc::new((e.seq, data.to_string()))
        })
        .collect()
}

/// `?after=SEQ`: where to start, for clients that cannot send `Last-Event-ID`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LiveQuery {
    after: Option<i64>,
}

/// One client's position: the last `seq` sent, what waits to be sent, its
/// subscription.
struct Client {
    store: Store,
    sent: i64,
    queue: VecDeque<Message>,
    feed: broadcast::Receiver<Message>,
    caught_up: bool,
}

/// `GET /live`.
pub(crate) async fn stream(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before catching up, so nothing falls between the two.
    let feed = app.feed.subscribe();
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let sent = match resumed.or(q.after) {
        Some(seq) => seq,
        None => app.store.last_event_seq().await.unwrap_or(0),
    };
    let client = Client {
        store: app.store.clone(),
        sent,
        queue: VecDeque::new(),
        feed,
        caught_up: false,
    };
    let events = futures_util::stream::unfold(client, |mut c| async move {
        loop {
            if let Some(m) = c.queue.pop_front() {
                if m.0 <= c.sent {
                    continue;
                }
                c.sent = m.0;
                let ev = Event::default().id(m.0.to_string()).data(m.1.clone());
                return Some((Ok(ev), c));
            }
            if !c.caught_up {
                let batch = read(&c.store, c.sent).await;
                c.caught_up = batch.len() < 500;
                c.queue.extend(batch);
                continue;
            }
            match c.feed.recv().await {
                Ok(m) => c.queue.push_back(m),
                // Fell behind the broadcast: catch up from the store again.
                Err(broadcast::error::RecvError::Lagged(_)) => c.caught_up = false,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
