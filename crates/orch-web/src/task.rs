//! The task page (`/tasks/ID`): its title and body (markdown, with raw HTML shown as
//! text and links only to http, https, mailto or this site), its dependencies and
//! dependents, labels and priority; every attempt over every run with its state,
//! duration, cost and failure (the headline, its last lines folded), linked to its
//! logs and diff; its review, while it is in review; its controls; and its history,
//! newest first.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use orch_engine::core::run::{FailureKind, RunId};
use orch_engine::core::{Task, TaskId, TaskStatus};
use orch_store::{AttemptRow, EventFilter};
use pulldown_cmark::{CowStr, Event, Parser, Tag};
use serde::Deserialize;

use crate::html::{esc, human_duration, status_chip};
use crate::pages::respond;
use crate::state::AppState;

/// A notice to show: a refused control's reason.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TaskQuery {
    pub(crate) notice: Option<String>,
}

/// `GET /tasks/{id}`.
pub(crate) async fn show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<TaskQuery>,
) -> Response {
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let id = TaskId(id);
    let Ok(t) = app.store.task(id).await else {
        let mut r = respond(
            &headers,
            ("No such task", "Board"),
            Some(&format!("task {id} does not exist")),
            String::new(),
            seq,
        );
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let board = app.store.tasks(&[]).await.unwrap_or_default();
    let attempts = app.store.task_attempts(id).await.unwrap_or_default();
    let filter = EventFilter {
        task: Some(id),
        ..EventFilter::default()
    };
    let events = app.store.events(&filter).await.unwrap_or_default();
    let mut body = heading(&t);
    body.push_str(&source_line(&app, &t));
    if t.status == TaskStatus::Review {
        body.push_str(&crate::review::section(&app, id).await);
    }
    if t.status == TaskStatus::Blocked {
        body.push_str(&conflict_html(&t, &attempts));
    }
    body.push_str(&relations(&t, &board));
    body.push_str(&attempts_html(&attempts));
    body.push_str(&controls(&app, &t));
    body.push_str("<h2>History</h2><table class=\"history\"><tr><th>at</th><th>what</th><th>who</th><th>why</th></tr>");
    for e in events.iter().rev() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at,
            esc(&e.kind),
            esc(&e.actor),
            esc(&e.reason)
        );
    }
    body.push_str("</table>");
    let title = format!("#{} {}", t.id, t.title);
    respond(&headers, (&title, "Board"), q.notice.as_deref(), body, seq)
}

fn heading(t: &Task) -> String {
    let mut out = format!(
        "<h1 class=\"task\">#{} {}</h1><p class=\"meta\">{} · priority {} · key <code>{}</code>",
        t.id,
        esc(&t.title),
        status_chip(t.status.as_str()),
        t.priority,
        esc(&t.key)
    );
    for l in &t.labels {
        let _ = write!(out, " <span class=\"label\">{}</span>", esc(l));
    }
    out.push_str("</p>");
    match t.body.trim().is_empty() {
        true => out.push_str("<p class=\"meta\">No description.</p>"),
        false => {
            let _ = write!(
                out,
                "<article class=\"body\">{}</article>",
                markdown(&t.body)
            );
        }
    }
    out
}

/// Where the task comes from, on a board kept in another tool (`board.source`).
fn source_line(app: &AppState, t: &Task) -> String {
    let Some(s) = app.repo.source() else {
        return String::new();
    };
    match s.holds(&t.key) {
        true => format!(
            "<p class=\"source\">From <b>{}</b> (<code>{}</code>), where its id is <code>{}</code>: edits there reach this task, and orch writes its status and notes there.</p>",
            s.kind(),
            esc(s.place()),
            esc(&t.key)
        ),
        false => format!(
            "<p class=\"source\">Only on orch's board: the board comes from <b>{}</b> (<code>{}</code>), but this task is not there, and nothing of it is written there.</p>",
            s.kind(),
            esc(s.place())
        ),
    }
}

/// What the task waits on, and what waits on it, each linked with its status.
fn relations(t: &Task, board: &[Task]) -> String {
    let link = |d: &Task| {
        format!(
            "<li><a href=\"/orch/tasks/{id}\">#{id} {}</a> {}</li>",
            esc(&d.title),
            status_chip(d.status.as_str()),
            id = d.id
        )
    };
    let after: Vec<String> = board
        .iter()
        .filter(|d| t.depends_on.contains(&d.id))
        .map(link)
        .collect();
    let before: Vec<String> = board
        .iter()
        .filter(|d| d.depends_on.contains(&t.id))
        .map(link)
        .collect();
    let mut out = String::new();
    for (title, list) in [("After", after), ("Before", before)] {
        if !list.is_empty() {
            let _ = write!(out, "<h2>{title}</h2><ul>{}</ul>", list.concat());
        }
    }
    out
}

/// Every attempt, oldest first: the run, state, duration, cost, failure.
fn attempts_html(attempts: &[(RunId, AttemptRow)]) -> String {
    if attempts.is_empty() {
        return "<h2>Attempts</h2><p class=\"meta\">None yet.</p>".to_owned();
    }
    let mut out = String::from(
        "<h2>Attempts</h2><table class=\"attempts\"><tr><th>attempt</th><th>run</th><th>state</th><th>took</th><th>cost</th><th>failure</th></tr>",
    );
    for (run, a) in attempts {
        let (task, n) = (a.attempt.task, a.attempt.number);
        let href = format!("/orch/runs/{}/attempts/{task}/{n}", esc(&run.0));
        let secs = (a.updated_at.as_millis() - a.created_at.as_millis()).max(0) / 1000;
        let cost = a
            .usage
            .as_ref()
            .and_then(|u| u.cost)
            .map(|c| format!("${:.2}", c.dollars()))
            .unwrap_or_default();
        let failure = a
            .failure
            .clone()
            .and_then(|f| serde_json::from_value::<FailureKind>(f).ok())
            .map(|k| failure_html(&k))
            .unwrap_or_default();
        let diff = match a.head {
            Some(_) => format!(" · <a href=\"{href}#change\">diff</a>"),
            None => String::new(),
        };
        let _ = write!(
            out,
            "<tr class=\"attempt\"><td><a href=\"{href}\">#{task}.{n}</a> · <a href=\"{href}#logs\">logs</a>{diff}</td><td><a href=\"/orch/runs/{r}\">{r}</a></td><td>{}</td><td>{}</td><td>{cost}</td><td>{failure}</td></tr>",
            status_chip(&a.state),
            human_duration(secs),
            r = esc(&run.0),
        );
    }
    out.push_str("</table>");
    out
}

/// A blocked task whose last attempt conflicted: the paths, and the commands that
/// resolve it by hand or hand it to the agent.
fn conflict_html(t: &Task, attempts: &[(RunId, AttemptRow)]) -> String {
    let last = attempts
        .last()
        .and_then(|(_, a)| a.failure.clone())
        .and_then(|f| serde_json::from_value::<FailureKind>(f).ok());
    let Some(FailureKind::Conflict { paths }) = last else {
        return String::new();
    };
    let files: Vec<String> = paths
        .iter()
        .map(|p| format!("<code>{}</code>", esc(p)))
        .collect();
    format!(
        "<section class=\"conflict\"><h2>Conflict</h2><p>Its work conflicted with work merged meanwhile, in {}. Resolve it by hand:</p>\
         <pre>orch task resolve {id}            # a worktree with the markers in place\norch task resolve {id} --continue # commit it as yours and land it\norch task resolve {id} --abort    # put things back</pre>\
         <p>or hand it to its agent: <code>orch task resolve {id} --agent</code>.</p></section>",
        files.join(", "),
        id = t.id
    )
}

/// A failure's headline, and its last lines folded below it.
pub(crate) fn failure_html(kind: &FailureKind) -> String {
    let e = kind.explain();
    let mut out = format!("<span class=\"failure\">{}</span>", esc(&e.headline));
    if !e.tail.is_empty() {
        let _ = write!(
            out,
            "<details><summary>last lines</summary><pre class=\"tail\">{}</pre></details>",
            esc(&e.tail.join("\n"))
        );
    }
    out
}

/// Edit the title and body, set the priority, move, retry, unblock or cancel; each a
/// POST that comes back to this page.
fn controls(app: &AppState, t: &Task) -> String {
    let id = t.id;
    let csrf = esc(&app.csrf);
    let hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"back\" value=\"/orch/tasks/{id}\">"
    );
    let mut out = format!(
        "<h2>Change it</h2><form class=\"edit\" method=\"post\" action=\"/orch/tasks/{id}\">{hidden}\
         <label>title <input name=\"title\" value=\"{}\"></label>\
         <label>description <textarea name=\"body\" rows=\"6\">{}</textarea></label>\
         <label>priority <input name=\"priority\" size=\"4\" value=\"{}\"></label>\
         <button name=\"action\" value=\"edit\">save</button></form>",
        esc(&t.title),
        esc(&t.body),
        t.priority
    );
    let _ = write!(
        out,
        "<form class=\"actions\" method=\"post\" action=\"/orch/tasks/{id}\">{hidden}"
    );
    match t.status {
        TaskStatus::Failed => {
            out.push_str("<button name=\"action\" value=\"retry\">retry</button>")
        }
        TaskStatus::Blocked => {
            out.push_str("<button name=\"action\" value=\"unblock\">unblock</button>");
        }
        TaskStatus::Backlog => {
            out.push_str("<button name=\"action\" value=\"block\">block</button>")
        }
        TaskStatus::Canceled => {
            out.push_str("<button name=\"action\" value=\"reopen\">reopen</button>");
        }
        _ => {}
    }
    if !matches!(t.status, TaskStatus::Canceled | TaskStatus::Done) {
        out.push_str("<button name=\"action\" value=\"cancel\">cancel</button>");
    }
    let mut options = String::new();
    for s in TaskStatus::ALL.iter().filter(|s| **s != t.status) {
        let _ = write!(options, "<option>{s}</option>");
    }
    let _ = write!(
        out,
        " move to <select name=\"to\">{options}</select> <button name=\"action\" value=\"move\">move</button></form>"
    );
    out
}

/// `url`, when it goes to http, https, mailto or a path on this site; else `#`.
fn safe(url: CowStr<'_>) -> CowStr<'_> {
    let u = url.trim_start().to_ascii_lowercase();
    let ok = ["http://", "https://", "mailto:", "/", "#"]
        .iter()
        .any(|p| u.starts_with(p))
        || !u.contains(':');
    if ok { url } else { CowStr::Borrowed("#") }
}

/// Markdown as HTML: raw HTML in it is shown as text, and a link or image goes only to
/// http, https, mailto, or a path on this site.
pub(crate) fn markdown(text: &str) -> String {
    let events = Parser::new(text).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_but_never_runs() {
        let html = markdown(
            "# Plan\n\nUse **care**.\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [ok](https://example.com) [rel](/orch/runs)\n\n<img src=x onerror=alert(1)>\n",
        );
        assert!(html.contains("<h1>Plan</h1>"), "{html}");
        assert!(html.contains("<strong>care</strong>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://example.com\""), "{html}");
        assert!(html.contains("href=\"/orch/runs\""), "{html}");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(185), "3m 5s");
        assert_eq!(human_duration(3720), "1h 2m");
    }
}
