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
mod run;
mod settings;
mod task;
mod timeline;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use orch_engine::Repo;
use orch_store::Store;

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

/// A run started from the dashboard: a program run in its own process group, detached,
/// its output to `log`.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// The program (`orch`).
    pub program: std::path::PathBuf,
    /// Its arguments (`--repo PATH run`).
    pub args: Vec<String>,
    /// Where its output goes.
    pub log: std::path::PathBuf,
}

/// The dashboard's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No random token could be made.
    #[error("cannot make a random token: {0}")]
    Random(String),
    /// The token given is too easy to guess or cannot go in a URL.
    #[error(
        "the dashboard token must be at least 16 characters of A-Z, a-z, 0-9, '-' and '_' (got {0} characters)"
    )]
    Token(usize),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) token: Arc<str>,
    /// The token cookie's name: this server's own (`auth::cookie_name`).
    pub(crate) cookie: Arc<str>,
    /// Put into every form and required back: a POST from another page has not got it.
    pub(crate) csrf: Arc<str>,
    pub(crate) actor: Arc<str>,
    /// The repository's artifacts directory (`.orch/artifacts`): prompts and logs.
    pub(crate) artifacts: Arc<std::path::Path>,
    /// The front door every change and every read of git goes through.
    pub(crate) repo: Arc<Repo>,
    pub(crate) start: Option<Arc<StartRun>>,
    /// Every new event of the log, read once for all live clients.
    pub(crate) feed: tokio::sync::broadcast::Sender<live::Message>,
    /// The board's data as of the newest event when it was last read.
    pub(crate) board: Arc<std::sync::Mutex<Option<Arc<board::BoardData>>>>,
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
    let (feed, poller) = live::spawn_poller(store.clone());
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
