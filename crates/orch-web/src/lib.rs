//! The orch dashboard (`orch serve`): the board, the runs and the audit log as
//! server-rendered pages kept live over Server-Sent Events, with controls. It is thin:
//! it reads through `orch-store`'s board and run API, asks for changes through the
//! front door, `orch_engine::Repo` (the transition table decides; a refusal is shown
//! with its reason), and formats. Runs driven by another `orch` process, even on another
//! machine with PostgreSQL, are steered through the store's controls table.
//!
//! - `auth`: the token (URL, then an HttpOnly SameSite=Strict cookie; 401 without)
//!   and the CSRF and Origin checks of every POST;
//! - `html`: escaping, the page frame, the embedded assets;
//! - `pages`: the board and runs pages; `events`: the audit log, paged;
//! - `run`: one run (timeline, gates, merges, proposals, the ref's history) and one
//!   attempt (its failure, its logs streamed as they grow, its change, its prompt);
//! - `task`: one task (its body as markdown, its attempts over every run, controls,
//!   history); `diff`: a change as coloured, foldable files;
//! - `live`: `/live`, the event stream, resumed from `Last-Event-ID`;
//! - `settings`: the merged configuration and where each value came from, a key set
//!   into `orch.toml` as `orch config set` does;
//! - `controls`: the POST handlers.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
mod board;
mod controls;
mod diff;
mod events;
mod html;
mod live;
mod pages;
mod review;
mod run;
mod settings;
mod state;
mod task;
mod timeline;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use orch_engine::Repo;

use state::AppState;
pub use state::{StartRun, WebError};

/// What `orch serve` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (127.0.0.1 by default; another address is the caller's choice,
    /// which `orch serve` warns about).
    pub bind: SocketAddr,
    /// The token to require; `None`: a random one.
    pub token: Option<String>,
    /// Who the dashboard's changes are journaled as (`human:<user>`), with ` (dashboard)`.
    pub actor: String,
    /// How to start a run with the configured defaults (the `orch run` of the binary
    /// serving), if the dashboard may.
    pub start: Option<StartRun>,
}

/// A running dashboard.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The URL to open, with the token.
    pub url: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    poller: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serves until the process ends or the server fails.
    pub async fn wait(self) -> std::io::Result<()> {
        let r = (&mut { self.task })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        self.poller.abort();
        r
    }

    /// Stops serving (open event streams are cut).
    pub fn stop(self) {
        self.task.abort();
        self.poller.abort();
    }
}

/// Binds and starts serving `repo`.
pub async fn start(repo: Repo, opts: Options) -> Result<Served, WebError> {
    let store = repo.store().clone();
    let random = || auth::random_token().map_err(|e| WebError::Random(e.to_string()));
    let token = match opts.token {
        Some(t) => auth::checked_token(t)?,
        None => random()?,
    };
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|source| WebError::Bind {
            addr: opts.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| WebError::Bind {
        addr: opts.bind,
        source,
    })?;
    let (feed, poller) = live::spawn_poller(store.clone()).await;
    let state = AppState {
        feed,
        board: Arc::default(),
        store,
        token: token.as_str().into(),
        cookie: auth::cookie_name(addr.port()).into(),
        csrf: random()?.into(),
        actor: format!("{} (dashboard)", opts.actor).into(),
        artifacts: repo.artifacts().into(),
        repo: Arc::new(repo),
        start: opts.start.map(Arc::new),
    };
    let app = router(state);
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Served {
        addr,
        url: format!("http://{addr}{}/?token={token}", auth::BASE),
        task,
        poller,
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/orch/", get(pages::board))
        .route("/orch/runs", get(pages::runs))
        .route("/orch/runs/{id}", get(run::show))
        .route("/orch/runs/{id}/attempts/{task}/{n}", get(run::attempt))
        .route(
            "/orch/runs/{id}/attempts/{task}/{n}/log/{file}",
            get(run::log),
        )
        .route("/orch/events", get(events::events))
        .route("/orch/reviews", get(review::queue))
        .route("/orch/tasks/{id}/review", post(controls::review))
        .route("/orch/settings", get(settings::show).post(settings::set))
        .route("/orch/live", get(live::stream))
        .route("/orch/tasks/new", post(controls::new_task))
        .route("/orch/tasks/{id}", get(task::show).post(controls::task))
        .route("/orch/runs/start", post(controls::start_run))
        .route("/orch/runs/{id}/{action}", post(controls::run))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}
