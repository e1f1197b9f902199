//! One run and one attempt. The run page: its state (red when it halted or a task
//! failed), its timeline (`timeline`), its attempts with their failures and costs, and
//! each task's cost, its configuration as resolved, the gates' results with a failing
//! command's tail, merges and conflicts with their paths, planner proposals with their
//! verdicts, and the integration ref's history. The attempt page: its prompt, and the
//! agent's and the gates' logs, which `/runs/{run}/attempts/{task}/{n}/log/{file}`
//! streams as Server-Sent Events while they grow.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use orch_engine::core::run::{AttemptId, RunId};
use orch_engine::core::{TaskId, TaskStatus};
use orch_engine::files;
use orch_store::EventFilter;

use crate::html::{button, esc, human_duration, page, status_chip};
use crate::pages::respond;
use crate::state::AppState;

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page("Not found", "", Some(what), "", None)),
    )
        .into_response()
}

/// `GET /runs/{run}`.
pub(crate) async fn show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(run): Path<String>,
) -> Response {
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let id = RunId(run);
    let Ok(info) = app.store.run(&id).await else {
        return not_found(&format!("no run {}", id.0));
    };
    let attempts = app.store.attempts(&id).await.unwrap_or_default();
    let events = app
        .store
        .events(&EventFilter {
            run: Some(id.0.clone()),
            ..EventFilter::default()
        })
        .await
        .unwrap_or_default();
    let state = serde_json::to_value(info.state).unwrap_or_default();
    let state = state.as_str().unwrap_or("");
    let snap = orch_engine::core::run::RunSnapshot::from_events(
        &app.store.run_events(&id).await.unwrap_or_default(),
    );
    let failing = info.state == orch_engine::core::run::RunState::Halted
        || snap.tasks.values().any(|s| *s == TaskStatus::Failed);
    let mut body = format!(
        "<h1>Run {}</h1><p class=\"state{}\">{} · started {}</p>",
        esc(&id.0),
        if failing { " failing" } else { "" },
        status_chip(state),
        info.created_at
    );
    if !info.state.is_terminal() {
        body.push_str(&button(
            &format!("/orch/runs/{}/cancel", id.0),
            "cancel the run",
            &app.csrf,
            &[],
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    body.push_str("<h2>Timeline</h2>");
    body.push_str(&crate::timeline::timeline(&attempts, &events, now));
    let titles: BTreeMap<TaskId, String> = app
        .store
        .tasks(&[])
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.id, t.title))
        .collect();
    body.push_str(&attempts_table(&id, &attempts, &titles, now));
    body.push_str(&config(&id, &info.config));
    body.push_str(&shaped(&events));
    body.push_str(&flags(&events));
    body.push_str(&story(&app, &id).await);
    body.push_str("<h2>The integration ref</h2><ul>");
    for e in events
        .iter()
        .filter(|e| e.kind == "run.head_advanced" || e.kind == "run.landed")
    {
        let _ = write!(body, "<li>{} {}</li>", e.at, esc(&e.reason));
    }
    body.push_str("</ul>");
    let title = format!("Run {}", id.0);
    respond(&headers, (&title, "Runs"), None, body, seq)
}

/// Each attempt in a line: its task, state, how long it took, its failure (the headline,
/// its last lines folded) and cost; then what each task cost, over its attempts.
fn attempts_table(
    id: &RunId,
    attempts: &[orch_store::AttemptRow],
    titles: &BTreeMap<TaskId, String>,
    now: i64,
) -> String {
    let mut out = String::from(
        "<h2>Attempts</h2><table class=\"attempts\"><tr><th>attempt</th><th>state</th><th>took</th><th>failure</th><th>cost</th></tr>",
    );
    let mut per_task: BTreeMap<TaskId, f64> = BTreeMap::new();
    for a in attempts {
        let (task, n) = (a.attempt.task, a.attempt.number);
        let live = a.phase().is_some_and(|p| !p.is_terminal());
        let end = if live { now } else { a.updated_at.as_millis() };
        let failure = a
            .failure
            .clone()
            .and_then(|f| serde_json::from_value(f).ok())
            .map(|k| crate::task::failure_html(&k))
            .unwrap_or_default();
        let cost = a.usage.as_ref().and_then(|u| u.cost).map(|c| c.dollars());
        *per_task.entry(task).or_default() += cost.unwrap_or(0.0);
        let title = titles.get(&task).map(String::as_str).unwrap_or("");
        let _ = write!(
            out,
            "<tr data-attempt=\"{}\"><td><a href=\"/orch/runs/{run}/attempts/{task}/{n}\">#{task}.{n}</a> {}</td><td class=\"state\">{}</td><td>{}</td><td>{failure}</td><td>{}</td></tr>",
            a.attempt,
            esc(title),
            status_chip(&a.state),
            human_duration((end - a.created_at.as_millis()).max(0) / 1000),
            cost.map(|c| format!("${c:.2}")).unwrap_or_default(),
            run = esc(&id.0),
        );
    }
    out.push_str("</table>");
    if per_task.values().any(|c| *c > 0.0) {
        out.push_str(
            "<h2>Cost per task</h2><table class=\"costs\"><tr><th>task</th><th>cost</th></tr>",
        );
        for (task, cost) in &per_task {
            let title = titles.get(task).map(String::as_str).unwrap_or("");
            let _ = write!(
                out,
                "<tr><td><a href=\"/orch/tasks/{task}\">#{task}</a> {}</td><td>${cost:.2}</td></tr>",
                esc(title)
            );
        }
        out.push_str("</table>");
    }
    out
}

/// How the integration queue was shaped, as the run started and each time `auto`
/// sized batches anew, with why.
fn shaped(events: &[orch_engine::core::event::Event]) -> String {
    let shaped: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "run.integration_shaped")
        .collect();
    if shaped.is_empty() {
        // A run from before the shape was journaled.
        return String::new();
    }
    let mut out = String::from("<h2>The integration queue</h2><ul class=\"shaped\">");
    for e in shaped {
        let _ = write!(out, "<li>{} {}</li>", e.at, esc(&e.reason));
    }
    out.push_str("</ul>");
    out
}

/// What a person should look at: landed undos of other tasks' work, flaky gates.
fn flags(events: &[orch_engine::core::event::Event]) -> String {
    let flagged: Vec<&orch_engine::core::event::Event> = events
        .iter()
        .filter(|e| e.kind == "attempt.reverts" || e.kind == "attempt.flaky")
        .collect();
    if flagged.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Flags</h2><ul class=\"flags\">");
    for e in flagged {
        let _ = write!(
            out,
            "<li class=\"{}\">{} {}</li>",
            esc(e.kind.trim_start_matches("attempt.")),
            e.at,
            esc(&e.reason)
        );
    }
    out.push_str("</ul>");
    out
}

/// The run's configuration as resolved, as the run recorded it.
fn config(id: &RunId, raw: &serde_json::Value) -> String {
    let Ok(stored) = orch_engine::StoredRun::from_json(&id.0, raw) else {
        return "<p>Its configuration could not be read.</p>".into();
    };
    let c = &stored.config;
    let rows = [
        ("agent", stored.engine.agent_command.clone()),
        ("concurrency", c.run.concurrency.to_string()),
        ("base", c.run.base.clone()),
        ("integration branch", c.run.line_branch(&id.0)),
        (
            "integration",
            format!(
                "{}: {}",
                c.run.integration,
                orch_engine::core::run::Shape::of(c).describe()
            ),
        ),
        ("worker gate", c.validate.worker.join(" && ")),
        ("integration gate", c.validate.integration.join(" && ")),
        ("max attempts", c.policy.max_attempts.to_string()),
        (
            "on conflict",
            format!("{:?}", c.policy.on_conflict).to_lowercase(),
        ),
    ];
    let mut out = String::from("<h2>Configuration</h2><table>");
    for (k, v) in rows {
        let _ = write!(
            out,
            "<tr><th>{k}</th><td><code>{}</code></td></tr>",
            esc(&v)
        );
    }
    out.push_str("</table>");
    out
}

/// Gates, merges and proposals.
async fn story(app: &AppState, id: &RunId) -> String {
    let mut out = String::from(
        "<h2>Gates</h2><table><tr><th>attempt</th><th>stage</th><th>command</th><th>outcome</th><th>ms</th><th>tail</th></tr>",
    );
    for v in app.store.validations(id).await.unwrap_or_default() {
        let r = &v.record;
        let tail = match r.outcome.as_str() {
            "passed" => String::new(),
            _ => r.tail.join("\n"),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            v.attempt,
            esc(&v.stage),
            esc(&r.command),
            esc(&r.outcome),
            r.duration_ms,
            esc(&tail)
        );
    }
    out.push_str("</table><h2>Merges</h2><ul>");
    for m in app.store.merges(id).await.unwrap_or_default() {
        let what = match (&m.commit, m.conflicts.is_empty()) {
            (Some(c), true) => format!("merged cleanly as {c}"),
            _ => format!("conflicts in {}", m.conflicts.join(", ")),
        };
        let _ = write!(out, "<li>{}: {}</li>", m.attempt, esc(&what));
    }
    out.push_str("</ul><h2>Planner proposals</h2><ul>");
    for p in app.store.proposals(id).await.unwrap_or_default() {
        let _ = write!(
            out,
            "<li>{}: {} {}</li>",
            esc(&p.proposal.to_string()),
            esc(&p.verdict),
            esc(&p.reason)
        );
    }
    out.push_str("</ul>");
    out
}

/// The attempt's artifacts directory, from parts that cannot name anything else.
fn attempt_dir(app: &AppState, run: &str, task: i64, n: u32) -> Option<PathBuf> {
    let safe = !run.is_empty() && run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    safe.then(|| {
        app.artifacts
            .join(run)
            .join(task.to_string())
            .join(n.to_string())
    })
}

/// `GET /runs/{run}/attempts/{task}/{n}`.
pub(crate) async fn attempt(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((run, task, n)): Path<(String, i64, u32)>,
) -> Response {
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let Some(dir) = attempt_dir(&app, &run, task, n) else {
        return not_found("no such attempt");
    };
    let a = AttemptId {
        task: TaskId(task),
        number: n,
    };
    if !dir.is_dir() {
        // It ran on a worker elsewhere: its logs are in the store.
        let _ = app.repo.fetch_logs(Some(&run), a.task).await;
    }
    let prompt = files::read_under(&app.artifacts, &dir.join("prompt.md"), 0, u64::MAX)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let row = app
        .store
        .attempt(&RunId(run.clone()), a)
        .await
        .ok()
        .flatten();
    let mut body = format!(
        "<h1>Attempt <a href=\"/orch/tasks/{task}\">#{task}</a>.{n} of run <a href=\"/orch/runs/{r}\">{r}</a></h1>",
        r = esc(&run)
    );
    if let Some(r) = &row {
        let _ = write!(
            body,
            "<p class=\"meta\">{}</p>",
            crate::html::status_chip(&r.state)
        );
        let failure = r
            .failure
            .clone()
            .and_then(|f| serde_json::from_value(f).ok());
        if let Some(kind) = failure {
            let _ = write!(body, "<p>{}</p>", crate::task::failure_html(&kind));
        }
    }
    body.push_str(&button(
        &format!("/orch/tasks/{task}"),
        "cancel this task",
        &app.csrf,
        &[("action", "cancel")],
    ));
    body.push_str("<h2 id=\"logs\">Its logs</h2>");
    body.push_str(&logs_html(&app, &dir, &run, a));
    if let Some(head) = row.as_ref().and_then(|r| r.head.clone()) {
        let (repo, base) = (app.repo.clone(), row.map(|r| r.base).unwrap_or_default());
        let diff = tokio::task::spawn_blocking(move || repo.attempt_diff(&base, &head, 1 << 20))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        body.push_str("<h2 id=\"change\">Its change</h2>");
        match diff {
            Ok(d) => body.push_str(&crate::diff::diff_html(&d)),
            Err(e) => {
                let _ = write!(
                    body,
                    "<p class=\"notice\">the diff could not be read: {}</p>",
                    esc(&e)
                );
            }
        }
    }
    let _ = write!(body, "<h2>The prompt</h2><pre>{}</pre>", esc(&prompt));
    let title = format!("Attempt {a}");
    respond(&headers, (&title, "Runs"), None, body, seq)
}

/// The attempt's logs, each in a `<pre>` that streams what is added. Only regular
/// files under the artifacts are shown: a link an agent planted (`x.log ->
/// /etc/passwd`) is named and refused, never followed.
fn logs_html(app: &AppState, dir: &std::path::Path, run: &str, a: AttemptId) -> String {
    let mut logs: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            let text = files::read_under(&app.artifacts, &e.path(), 0, u64::MAX)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| e.to_string());
            logs.insert(name, text);
        }
    }
    let mut body = String::new();
    for (name, text) in &logs {
        let text = match text {
            Ok(t) => t,
            Err(why) => {
                let _ = write!(
                    body,
                    "<h2>{}</h2><p class=\"notice\">not shown: {}</p>",
                    esc(name),
                    esc(why)
                );
                continue;
            }
        };
        let _ = write!(
            body,
            "<h2>{n}</h2><pre class=\"log\" data-log=\"/orch/runs/{r}/attempts/{}/{num}/log/{n}\" data-bytes=\"{}\">{}</pre>",
            a.task,
            text.len(),
            esc(text),
            n = esc(name),
            r = esc(run),
            num = a.number,
        );
    }
    body
}

/// `GET /orch/runs/{run}/attempts/{task}/{n}/log/{file}?from=BYTES`: the log's lines
/// past `from` (or `Last-Event-ID`), as they are written; each message's id is the
/// byte offset after it, so a reconnect goes on where it stopped. Only what is new is
/// read; once the attempt has ended and the log stopped growing, an `end` event closes
/// the stream (the page does not reconnect). A log that is not a regular file under
/// the artifacts (a planted link) is refused.
pub(crate) async fn log(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((run, task, n, file)): Path<(String, i64, u32, String)>,
    axum::extract::Query(q): axum::extract::Query<BTreeMap<String, String>>,
) -> Response {
    let safe_file = file.ends_with(".log") && !file.contains('/') && !file.starts_with('.');
    let Some(dir) = attempt_dir(&app, &run, task, n).filter(|_| safe_file) else {
        return not_found("no such log");
    };
    let path = dir.join(file);
    if let Err(e) = files::open_under(&app.artifacts, &path) {
        return not_found(&e.to_string());
    }
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("from").map(String::as_str))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let attempt = AttemptId {
        task: TaskId(task),
        number: n,
    };
    let tail = Tail {
        app,
        run: RunId(run),
        attempt,
        path,
        at: from,
        partial: String::new(),
        ended: false,
    };
    Sse::new(tail.stream())
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// How much of a log one poll reads at most.
const CHUNK: u64 = 256 << 10;

/// One log stream's position.
struct Tail {
    app: AppState,
    run: RunId,
    attempt: AttemptId,
    path: PathBuf,
    /// The offset read up to.
    at: u64,
    /// Bytes past the last whole line.
    partial: String,
    ended: bool,
}

impl Tail {
    fn stream(self) -> impl Stream<Item = Result<Event, Infallible>> {
        futures_util::stream::unfold(self, |mut t| async move {
            if t.ended {
                return None;
            }
            let mut idle = 0u32;
            loop {
                let new =
                    files::read_under(&t.app.artifacts, &t.path, t.at, CHUNK).unwrap_or_default();
                t.at += new.len() as u64;
                t.partial.push_str(&String::from_utf8_lossy(&new));
                if let Some(end) = t.partial.rfind('\n') {
                    let lines: String = t.partial.drain(..=end).collect();
                    let ev = Event::default()
                        .id((t.at - t.partial.len() as u64).to_string())
                        .data(lines.trim_end_matches('\n'));
                    return Some((Ok(ev), t));
                }
                if new.is_empty() {
                    idle += 1;
                    // About once a second of quiet: has the attempt ended?
                    if idle % 10 == 1 && t.finished().await {
                        t.ended = true;
                        return Some((Ok(Event::default().event("end").data("")), t));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    /// The attempt ended (or the store no longer knows it): its logs are whole.
    async fn finished(&self) -> bool {
        match self.app.store.attempt(&self.run, self.attempt).await {
            Ok(Some(row)) => row.phase().is_none_or(|p| p.is_terminal()),
            Ok(None) => true,
            Err(_) => false,
        }
    }
}
