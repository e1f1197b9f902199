//! The audit log (`/events`): newest first, a hundred to a page, filtered by run, task
//! and kind (a kind or its start), the filters and the page kept in the URL.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use orch_engine::core::TaskId;
use orch_store::EventFilter;
use serde::Deserialize;

use crate::html::esc;
use crate::pages::{failed, respond};
use crate::state::AppState;

/// Events to a page.
const PAGE: u64 = 100;

/// The audit log's filters, and where the page starts.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    run: Option<String>,
    task: Option<i64>,
    kind: Option<String>,
    /// Only events older than this one: the page after a first.
    before: Option<i64>,
}

impl EventsQuery {
    /// This query's filters in a URL, on the page that starts before `before`.
    fn url(&self, before: Option<i64>) -> String {
        let (task, before) = (
            self.task.map(|t| t.to_string()),
            before.map(|b| b.to_string()),
        );
        let pairs: Vec<(&str, &str)> = [
            ("run", self.run.as_deref()),
            ("task", task.as_deref()),
            ("kind", self.kind.as_deref()),
            ("before", before.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.filter(|v| !v.is_empty())?)))
        .collect();
        let query = serde_urlencoded::to_string(pairs).expect("strings encode");
        format!("/orch/events?{query}")
    }
}

/// `GET /events`: a page of the events that pass the filters, newest first.
pub(crate) async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    let filter = EventFilter {
        task: q.task.map(TaskId),
        run: q.run.clone().filter(|r| !r.is_empty()),
        kind: q.kind.clone().filter(|k| !k.is_empty()),
        before_seq: q.before,
        // One more than a page: whether there is an older page.
        last: Some(PAGE + 1),
        ..EventFilter::default()
    };
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let mut events = match app.store.events(&filter).await {
        Ok(e) => e,
        Err(e) => return failed(e),
    };
    let older = events.len() as u64 > PAGE;
    if older {
        events.remove(0);
    }
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/orch/events\">run <input name=\"run\" value=\"{}\"> task <input name=\"task\" size=\"5\" value=\"{}\"> kind <input name=\"kind\" value=\"{}\"> <button>filter</button></form><table><tr><th>#</th><th>at</th><th>run</th><th>task</th><th>kind</th><th>who</th><th>what</th></tr>",
        esc(q.run.as_deref().unwrap_or("")),
        q.task.map(|t| t.to_string()).unwrap_or_default(),
        esc(q.kind.as_deref().unwrap_or("")),
    );
    for e in events.iter().rev() {
        let task = e
            .task_id
            .map(|t| format!("<a href=\"/orch/tasks/{t}\">#{t}</a>"))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr data-seq=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{task}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            e.seq,
            e.at,
            esc(e.run_id.as_deref().unwrap_or("")),
            esc(&e.kind),
            esc(&e.actor),
            esc(&e.reason),
        );
    }
    body.push_str("</table><p class=\"pages\">");
    if q.before.is_some() {
        let _ = write!(
            body,
            "<a class=\"newest\" href=\"{}\">newest</a> ",
            esc(&q.url(None))
        );
    }
    if let (true, Some(oldest)) = (older, events.first()) {
        let _ = write!(
            body,
            "<a class=\"older\" href=\"{}\">older</a>",
            esc(&q.url(Some(oldest.seq)))
        );
    }
    body.push_str("</p>");
    // A page further back reads the same when a new event makes it refresh.
    respond(&headers, ("Events", "Events"), None, body, seq)
}
