//! The pages: the board (a column per status, filterable by label and status) and the
//! runs. Each renders whole, or only its main part when the page's script asks for it
//! again after a live update.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::state::BoardData;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use orch_engine::core::run::{RunSnapshot, RunState};
use orch_engine::core::{Task, TaskStatus};
use serde::Deserialize;

use crate::board::board_data;
use crate::html::{button, esc, human_duration, notice_html, page, status_chip};
use crate::state::AppState;

/// The board's filters, and a notice to show (a refused control's reason).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BoardQuery {
    label: Option<String>,
    status: Option<String>,
    notice: Option<String>,
}

impl BoardQuery {
    /// No filter, and `notice` shown.
    pub(crate) fn with_notice(notice: String) -> BoardQuery {
        BoardQuery {
            notice: Some(notice),
            ..BoardQuery::default()
        }
    }
}

/// The whole page, or its main part when the page's script asks.
pub(crate) fn respond(
    headers: &HeaderMap,
    (title, active): (&str, &str),
    notice: Option<&str>,
    body: String,
    seq: i64,
) -> Response {
    if headers.contains_key("x-orch-partial") {
        return Html(format!("{}{body}", notice_html(notice))).into_response();
    }
    Html(page(title, active, notice, &body, Some(seq))).into_response()
}

pub(crate) fn failed(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(page("Error", "", Some(&e.to_string()), "", None)),
    )
        .into_response()
}

/// `GET /`: the board.
pub(crate) async fn board(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<BoardQuery>,
) -> Response {
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let data = match board_data(&app, seq).await {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let tasks = &data.tasks;
    let only = q.status.as_deref().filter(|s| !s.is_empty());
    let label = q.label.as_deref().filter(|s| !s.is_empty());
    let mut body = filters(&q);
    let source = app.repo.source();
    if let Some(s) = &source {
        let _ = write!(
            body,
            "<p class=\"source\">From <b>{}</b> (<code>{}</code>): each card shows its id there. Edits there reach this board while a run goes, or with <code>orch board sync</code>; orch writes statuses and notes back.</p>",
            esc(s.kind().as_str()),
            esc(s.place())
        );
    }
    body.push_str(&new_task_form(&app));
    body.push_str("<div class=\"board\">");
    for s in TaskStatus::ALL {
        if only.is_some_and(|o| o != s.as_str()) {
            continue;
        }
        let cards: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.status == s)
            .filter(|t| label.is_none_or(|l| t.labels.iter().any(|x| x == l)))
            .collect();
        let _ = write!(
            body,
            "<section class=\"col\" data-status=\"{s}\"><h2>{s} ({})</h2>",
            cards.len()
        );
        for t in cards {
            body.push_str(&card(&app, t, &data, source.is_some()));
        }
        body.push_str("</section>");
    }
    body.push_str("</div>");
    respond(&headers, ("Board", "Board"), q.notice.as_deref(), body, seq)
}

/// A task added from the board: a title, and optionally a priority and labels; its
/// description is written on its page.
fn new_task_form(app: &AppState) -> String {
    format!(
        "<form class=\"new\" method=\"post\" action=\"/orch/tasks/new\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input name=\"title\" placeholder=\"a new task\" required> <input name=\"priority\" size=\"3\" placeholder=\"priority\"> \
         <input name=\"labels\" size=\"12\" placeholder=\"labels, comma separated\"> <button>add</button></form>",
        esc(&app.csrf)
    )
}

fn filters(q: &BoardQuery) -> String {
    let mut options = String::from("<option value=\"\">every status</option>");
    for s in TaskStatus::ALL {
        let sel = if q.status.as_deref() == Some(s.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(options, "<option{sel}>{s}</option>");
    }
    format!(
        "<input id=\"find\" type=\"search\" placeholder=\"find: text or a label, as you type\"> \
         <form class=\"filters\" method=\"get\" action=\"/orch/\">label <input name=\"label\" value=\"{}\"> \
         <select name=\"status\">{options}</select> <button>filter</button></form>",
        esc(q.label.as_deref().unwrap_or(""))
    )
}

fn card(app: &AppState, t: &Task, data: &BoardData, keyed: bool) -> String {
    let (status, held, usage) = (&data.status, data.held.get(&t.id), data.usage.get(&t.id));
    let mut c = format!(
        "<div class=\"card s-{st}\" id=\"task-{id}\" data-task=\"{id}\" draggable=\"true\"><div><a class=\"open\" href=\"/orch/tasks/{id}\"><b>#{id}</b> <span class=\"title\">{}</span></a></div><div class=\"meta\">p{}",
        esc(&t.title),
        t.priority,
        id = t.id,
        st = t.status.as_str(),
    );
    if keyed {
        let _ = write!(c, " <span class=\"key\">{}</span>", esc(&t.key));
    }
    for l in &t.labels {
        let _ = write!(c, " <span class=\"label\">{}</span>", esc(l));
    }
    // Only a task that waits to be claimed is ready or waiting.
    if !t.depends_on.is_empty() && t.status == TaskStatus::Backlog {
        let waiting: Vec<String> = t
            .depends_on
            .iter()
            .filter(|d| status.get(d) != Some(&TaskStatus::Done))
            .map(|d| format!("#{d}"))
            .collect();
        match waiting.is_empty() {
            true => c.push_str(" <span class=\"ready\">ready</span>"),
            false => {
                let _ = write!(
                    c,
                    " <span class=\"waiting\">waiting on {}</span>",
                    waiting.join(", ")
                );
            }
        }
    }
    if let Some(on) = data.retrying.get(&t.id) {
        let on: Vec<String> = on.iter().map(|d| format!("#{d}")).collect();
        let _ = write!(
            c,
            " <span class=\"waiting\">retry waits for {}</span>",
            on.join(", ")
        );
    }
    c.push_str("</div>");
    if let Some((run, attempt, since)) = held {
        let (task, n) = (t.id, attempt.rsplit('-').next().unwrap_or("1"));
        let _ = write!(
            c,
            "<div class=\"meta holder\"><a href=\"/orch/runs/{r}/attempts/{task}/{n}\">{}</a> in run <a href=\"/orch/runs/{r}\">{r}</a> · <span data-since=\"{since}\"></span></div>",
            esc(attempt),
            r = esc(&run.0),
            n = esc(n),
        );
    }
    if let Some(u) = usage {
        let cost = u
            .cost
            .map(|c| format!(" · ${:.2}", c.dollars()))
            .unwrap_or_default();
        let tokens = u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens;
        let _ = write!(c, "<div class=\"meta\">{tokens} tokens{cost}</div>");
    }
    if let Some((run, a)) = data.failures.get(&t.id) {
        let kind = a
            .failure
            .clone()
            .and_then(|f| serde_json::from_value::<orch_engine::core::run::FailureKind>(f).ok());
        if let Some(kind) = kind {
            let (task, n) = (a.attempt.task, a.attempt.number);
            let _ = write!(
                c,
                "<div class=\"meta failure\"><a href=\"/orch/runs/{r}/attempts/{task}/{n}\">#{task}.{n}</a> {}</div>",
                esc(&kind.explain().headline),
                r = esc(&run.0)
            );
        }
    }
    c.push_str(&task_controls(app, t));
    c.push_str("</div>");
    c
}

/// A card's buttons, in one form: each button names its action.
fn task_controls(app: &AppState, t: &Task) -> String {
    if t.status == TaskStatus::Done {
        return String::new();
    }
    let mut out = format!(
        "<form method=\"post\" action=\"/orch/tasks/{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        t.id,
        esc(&app.csrf)
    );
    let mut act = |a: &str| {
        let _ = write!(out, "<button name=\"action\" value=\"{a}\">{a}</button>");
    };
    match t.status {
        TaskStatus::Failed => act("retry"),
        TaskStatus::Blocked => act("unblock"),
        TaskStatus::Backlog => act("block"),
        TaskStatus::Canceled => act("reopen"),
        _ => {}
    }
    if t.status != TaskStatus::Canceled {
        act("cancel");
    }
    // The priority, the title and the description are edited on the task's page.
    out.push_str("</form>");
    out
}

/// `GET /runs`: every run with its state, outcomes, duration and integration branch
/// with the commit it is at.
pub(crate) async fn runs(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<BoardQuery>,
) -> Response {
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let runs = match app.store.runs().await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let mut body = String::from(
        "<table><tr><th>run</th><th>state</th><th>attempts</th><th>cost</th><th>started</th><th>duration</th><th>integration head</th><th></th></tr>",
    );
    for r in &runs {
        let attempts = app.store.attempts(&r.id).await.unwrap_or_default();
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        let mut cost = 0.0;
        for a in &attempts {
            *by.entry(a.state.clone()).or_default() += 1;
            cost += a
                .usage
                .as_ref()
                .and_then(|u| u.cost)
                .map_or(0.0, |c| c.dollars());
        }
        let counts: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
        // The run's own journal: whether it is paused, where it left its line, and
        // whether any of its tasks failed.
        let snap = RunSnapshot::from_events(&app.store.run_events(&r.id).await.unwrap_or_default());
        let line = match app.repo.run_line(r, None) {
            Ok(l) => match snap.head.as_ref().or(l.head.as_ref()) {
                Some(h) => format!("{} at {}", l.branch, h.0.get(..10).unwrap_or(&h.0)),
                None => format!("{} (gone)", l.branch),
            },
            Err(e) => format!("unreadable: {e}"),
        };
        let state = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let took = match r.state.is_terminal() {
            true => human_duration((r.updated_at.as_millis() - r.created_at.as_millis()) / 1000),
            false => format!("<span data-since=\"{}\"></span>", r.created_at.as_millis()),
        };
        let controls = match (r.state.is_terminal(), snap.paused) {
            (true, _) => Vec::new(),
            (false, true) => vec!["resume", "cancel"],
            (false, false) => vec!["pause", "cancel"],
        };
        let controls: String = controls
            .iter()
            .map(|a| button(&format!("/orch/runs/{}/{a}", r.id), a, &app.csrf, &[]))
            .collect();
        let failing =
            r.state == RunState::Halted || snap.tasks.values().any(|s| *s == TaskStatus::Failed);
        let class = if failing { " class=\"failing\"" } else { "" };
        let _ = write!(
            body,
            "<tr data-run=\"{id}\"{class}><td><a href=\"/orch/runs/{id}\">{id}</a></td><td class=\"state\">{}{}</td><td>{}</td><td>${cost:.2}</td><td>{}</td><td>{took}</td><td>{}</td><td>{controls}</td></tr>",
            status_chip(&state),
            if snap.paused && !r.state.is_terminal() {
                " <span class=\"chip\">paused</span>"
            } else {
                ""
            },
            esc(&counts.join(", ")),
            r.created_at,
            esc(&line),
            id = esc(&r.id.0),
        );
    }
    body.push_str("</table>");
    if app.start.is_some() {
        body.push_str(&button(
            "/orch/runs/start",
            "start a run (configured defaults)",
            &app.csrf,
            &[],
        ));
    }
    if runs.is_empty() {
        body.push_str("<p>No run yet: <code>orch run</code> starts one.</p>");
    }
    respond(&headers, ("Runs", "Runs"), q.notice.as_deref(), body, seq)
}
