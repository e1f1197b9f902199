//! The dashboard's buttons: POSTs checked for their CSRF token and origin, carried out
//! through the front door (`Repo`, and its `Board`) and journaled as `human:<user>
//! (dashboard)`. A refusal shows the page again with the policy's reason.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use orch_engine::EngineError;
use orch_engine::core::run::RunId;
use orch_engine::core::task::TaskEdit;
use orch_engine::core::{TaskId, TaskStatus};
use serde::Deserialize;

use crate::auth::csrf_ok;
use crate::html::page;
use crate::pages;
use crate::state::AppState;

/// A control's form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ControlForm {
    csrf: Option<String>,
    action: Option<String>,
    priority: Option<String>,
    /// `edit`: the new title and description.
    title: Option<String>,
    body: Option<String>,
    /// `move`: the status to move to.
    to: Option<String>,
    /// The page to come back to: a task's page, else the board.
    back: Option<String>,
}

impl ControlForm {
    /// The page this form came from, when it is a task's page; else the board.
    fn back(&self) -> String {
        match self
            .back
            .as_deref()
            .and_then(|b| b.strip_prefix("/orch/tasks/"))
        {
            Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) => {
                format!("/orch/tasks/{id}")
            }
            _ => "/orch/".to_owned(),
        }
    }

    /// The edit `edit` asks for: a title, a description and a priority, each only if
    /// it changed.
    fn edit(&self, t: &orch_engine::core::Task) -> Result<TaskEdit, EngineError> {
        let priority = self.priority()?.filter(|p| *p != t.priority);
        let title = self
            .title
            .as_deref()
            .map(str::trim)
            .filter(|x| *x != t.title)
            .map(str::to_owned);
        // A browser sends a textarea's newlines as CRLF.
        let body = self
            .body
            .as_deref()
            .map(|b| b.replace("\r\n", "\n"))
            .filter(|b| *b != t.body);
        Ok(TaskEdit {
            title,
            body,
            priority,
            ..TaskEdit::default()
        })
    }

    fn priority(&self) -> Result<Option<i32>, EngineError> {
        priority(self.priority.as_deref())
    }
}

/// A priority as a form sent it: none when empty, else a whole number.
fn priority(field: Option<&str>) -> Result<Option<i32>, EngineError> {
    match field.map(str::trim) {
        None | Some("") => Ok(None),
        Some(p) => p.parse().map(Some).map_err(|_| {
            EngineError::Config("a priority is a whole number, such as 2 or -1".into())
        }),
    }
}

pub(crate) fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(page("Refused", "", Some(why), "", None)),
    )
        .into_response()
}

/// `POST /tasks/{id}` with `action` = retry, unblock, block, cancel or priority.
pub(crate) async fn task(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<ControlForm>,
) -> Response {
    let action = f.action.clone().unwrap_or_default();
    if let Err(why) = csrf_ok(&app, &headers, f.csrf.as_deref()) {
        return forbidden(&why);
    }
    let (board, id) = (app.repo.board(&app.actor), TaskId(id));
    let done: Result<(), EngineError> = match action.as_str() {
        "retry" => board
            .reopen(id, TaskStatus::Failed, "retried", None)
            .await
            .map(drop),
        "unblock" => board
            .reopen(id, TaskStatus::Blocked, "unblocked", None)
            .await
            .map(drop),
        "block" => board
            .move_to(id, TaskStatus::Blocked, Some("blocked".into()))
            .await
            .map(drop)
            .map_err(Into::into),
        "cancel" => board.cancel(id, None).await.map(drop),
        "reopen" => board
            .move_to(id, TaskStatus::Backlog, Some("reopened".into()))
            .await
            .map(drop)
            .map_err(Into::into),
        "priority" => match f.priority() {
            Ok(Some(p)) => {
                let edit = TaskEdit {
                    priority: Some(p),
                    ..TaskEdit::default()
                };
                board.edit(id, &edit).await.map(drop).map_err(Into::into)
            }
            Ok(None) => Err(EngineError::Config(
                "a priority is a whole number, such as 2 or -1".into(),
            )),
            Err(e) => Err(e),
        },
        "edit" => match board.task(id).await {
            Ok(t) => match f.edit(&t) {
                Ok(edit) if edit.is_empty() => Ok(()),
                Ok(edit) => board.edit(id, &edit).await.map(drop).map_err(Into::into),
                Err(e) => Err(e),
            },
            Err(e) => Err(e.into()),
        },
        "move" => match f.to.as_deref().map(str::parse::<TaskStatus>) {
            Some(Ok(to)) => board
                .move_to(id, to, None)
                .await
                .map(drop)
                .map_err(Into::into),
            _ => Err(EngineError::Config(format!(
                "move to what? allowed are {}",
                TaskStatus::ALL.map(|s| s.as_str()).join(", ")
            ))),
        },
        other => Err(EngineError::Config(format!(
            "unknown control {other:?}: allowed are retry, unblock, block, cancel, reopen, priority, edit and move"
        ))),
    };
    finish(&app, &headers, done, &f.back()).await
}

/// `POST /tasks/{id}/review`: approve, request changes or reject, then back to the
/// task's page (with the reason, when refused).
pub(crate) async fn review(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<crate::review::ReviewForm>,
) -> Response {
    if let Err(why) = csrf_ok(&app, &headers, f.csrf.as_deref()) {
        return forbidden(&why);
    }
    let back = format!("/orch/tasks/{id}");
    let done = match f.decision() {
        Ok(d) => app.repo.review(&app.actor, TaskId(id), d).await.map(drop),
        Err(e) => Err(e),
    };
    finish(&app, &headers, done, &back).await
}

/// A task added from the board.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewTaskForm {
    csrf: Option<String>,
    title: Option<String>,
    priority: Option<String>,
    labels: Option<String>,
}

/// `POST /tasks/new`: a task in the backlog, as `orch task add` makes it.
pub(crate) async fn new_task(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<NewTaskForm>,
) -> Response {
    if let Err(why) = csrf_ok(&app, &headers, f.csrf.as_deref()) {
        return forbidden(&why);
    }
    let priority = priority(f.priority.as_deref()).map(Option::unwrap_or_default);
    let done = match priority {
        Ok(priority) => {
            let task = orch_engine::core::task::NewTask {
                title: f.title.unwrap_or_default().trim().to_owned(),
                priority,
                labels: f
                    .labels
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                ..Default::default()
            };
            let board = app.repo.board(&app.actor);
            board.add(task).await.map(drop).map_err(Into::into)
        }
        Err(e) => Err(e),
    };
    finish(&app, &headers, done, "/orch/").await
}

/// `POST /runs/{id}/{cancel|pause|resume}`: the run drains, or stops or starts
/// claiming, whichever process drives it.
pub(crate) async fn run(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ControlForm>,
) -> Response {
    if let Err(why) = csrf_ok(&app, &headers, f.csrf.as_deref()) {
        return forbidden(&why);
    }
    let (repo, id, who) = (&app.repo, RunId(id), app.actor.as_ref());
    let done = match action.as_str() {
        "cancel" => repo.cancel_run(&id, who).await,
        "pause" => repo.pause_run(&id, true, who).await,
        "resume" => repo.pause_run(&id, false, who).await,
        other => Err(EngineError::Config(format!(
            "unknown control {other:?}: allowed are cancel, pause and resume"
        ))),
    };
    finish(&app, &headers, done, "/orch/runs").await
}

/// Back to the page on success; on a refusal, the page again with its reason (409).
pub(crate) async fn finish(
    app: &AppState,
    headers: &HeaderMap,
    done: Result<(), EngineError>,
    back: &str,
) -> Response {
    let why = match done {
        Ok(()) => return Redirect::to(back).into_response(),
        Err(e) => e.to_string(),
    };
    let mut r = match back.strip_prefix("/orch/tasks/").map(str::parse::<i64>) {
        Some(Ok(id)) => {
            let q = crate::task::TaskQuery { notice: Some(why) };
            crate::task::show(State(app.clone()), headers.clone(), Path(id), Query(q)).await
        }
        _ => {
            let q = pages::BoardQuery::with_notice(why);
            match back {
                "/orch/runs" => pages::runs(State(app.clone()), headers.clone(), Query(q)).await,
                _ => pages::board(State(app.clone()), headers.clone(), Query(q)).await,
            }
        }
    };
    *r.status_mut() = StatusCode::CONFLICT;
    r
}

/// `POST /runs/start`: `orch run` with the configured defaults, in its own process
/// group. One that fails at once (no agent configured, nothing to claim) is shown
/// with its output; otherwise the runs page, where the new run appears.
pub(crate) async fn start_run(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<ControlForm>,
) -> Response {
    if let Err(why) = csrf_ok(&app, &headers, f.csrf.as_deref()) {
        return forbidden(&why);
    }
    let Some(start) = app.start.clone() else {
        let why = "this dashboard cannot start runs: start one with `orch run`".to_owned();
        return finish(&app, &headers, Err(EngineError::Config(why)), "/orch/runs").await;
    };
    let how = format!("{} {}", start.program.display(), start.args.join(" "));
    if let Err(e) = app.store.journal_run_request(&app.actor, &how).await {
        return finish(&app, &headers, Err(e.into()), "/orch/runs").await;
    }
    let spawned = tokio::task::spawn_blocking(move || spawn(&start)).await;
    let done = match spawned {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(EngineError::Config(why)),
        Err(e) => Err(EngineError::Config(e.to_string())),
    };
    finish(&app, &headers, done, "/orch/runs").await
}

/// Starts `start` detached; waits a second for an early failure, whose output it
/// returns.
fn spawn(start: &crate::state::StartRun) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let log =
        std::fs::File::create(&start.log).map_err(|e| format!("{}: {e}", start.log.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(&start.program)
        .args(&start.args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting a run: {e}"))?;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(1) {
        if let Ok(Some(status)) = child.try_wait() {
            let out = std::fs::read_to_string(&start.log).unwrap_or_default();
            return match status.success() {
                true => Ok(()),
                false => Err(format!("the run did not start: {}", out.trim())),
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // It runs on its own; a thread reaps it when it ends.
    std::thread::spawn(move || child.wait());
    Ok(())
}
