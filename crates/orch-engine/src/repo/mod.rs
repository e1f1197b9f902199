//! The front door: a repository opened with its layered configuration and its store,
//! and every operation a frontend offers on it (init, the board, runs, status, land,
//! cleanup). The CLI and the dashboard come in here; so does an embedding program.

mod board;
mod dir;
mod edit;
mod resolve;
mod review;
mod runs;
mod settings;
mod start;
pub mod template;
mod upkeep;

use std::path::{Path, PathBuf};

use orch_core::config::Config;
use orch_core::task::TaskId;
use orch_store::{Location, Store, StoreError};

pub use board::Board;
pub use dir::{RepoDir, git, write_atomic};
pub use edit::{SetError, SetOutcome, set_setting};
pub use resolve::{Resolved, Resolving};
pub use review::{REVIEW_DIFF_CAP, ReviewDetail, Reviewed, Waiting};
pub use settings::{ConfigError, Entry, Settings, user_file};
pub use start::{Run, RunOptions};

use crate::line::land::{LandOptions, LandOutcome};
use crate::line::status::LineStatus;
use crate::run::setup;
use crate::{Engine, EngineError};

/// Who a person working in the repository at `root` is: `human:<git user.name>` (as
/// git resolves it there), else `human:<$USER>` (or `$LOGNAME`), else `human:unknown`.
pub fn actor_at(root: &Path) -> String {
    let name = git(root, &["config", "user.name"])
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|n| !n.is_empty());
    let user = name
        .or_else(|| {
            ["USER", "LOGNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        })
        .unwrap_or_else(|| "unknown".into());
    format!("human:{user}")
}

/// Why a repository could not be opened or set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The path is not a directory.
    #[error("{}: no such directory", .0.display())]
    NoSuchDirectory(PathBuf),
    /// No git repository around the path.
    #[error(
        "{} is not inside a git repository: orch keeps one board per repository; run `git init` there first, or pass --repo PATH",
        .0.display()
    )]
    NotARepository(PathBuf),
    /// A bare repository: nothing to check out into.
    #[error("{} is inside a bare git repository: orch needs a working tree", .0.display())]
    Bare(PathBuf),
    /// git itself could not be run.
    #[error("running git (is it installed and on PATH?)")]
    Git(#[source] std::io::Error),
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file under `.orch/` or `.git/info` could not be read or written.
    #[error("{what} {}", path.display())]
    Io {
        /// What orch was doing.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The store did not open (for a repository never set up: run `orch init`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpenError {
    /// Whether the caller can fix it (a path, a setting, a setup step), rather than a
    /// fault of the machine.
    pub fn is_refusal(&self) -> bool {
        match self {
            OpenError::Git(_) | OpenError::Io { .. } => false,
            OpenError::Store(e) => e.is_refusal(),
            _ => true,
        }
    }
}

/// How to open a repository.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// `KEY=VALUE` settings over every configuration file and `ORCH_*` variable (the
    /// CLI's `-c`).
    pub overrides: Vec<String>,
}

impl OpenOptions {
    /// Sets `KEY=VALUE` over the files, as `-c` does: `set("run.concurrency=8")`.
    pub fn set(mut self, key_value: impl Into<String>) -> OpenOptions {
        self.overrides.push(key_value.into());
        self
    }
}

/// A repository orch works on, with its configuration and its store.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: RepoDir,
    settings: Settings,
    store: Store,
}

impl Repo {
    /// Sets orch up in the repository around `path`: `.orch/` (listed in
    /// `.git/info/exclude`), a commented `orch.toml` when there is none, and the
    /// database. Idempotent. Returns the opened repository and what was changed.
    pub async fn init(path: &Path, opts: &OpenOptions) -> Result<(Repo, Vec<String>), OpenError> {
        let dir = RepoDir::discover(path)?;
        let mut changed = dir.ensure_orch_dir()?;
        let toml_path = dir.root.join("orch.toml");
        if !toml_path.exists() {
            write_atomic(&toml_path, template::ORCH_TOML.as_bytes()).map_err(|source| {
                OpenError::Io {
                    what: "writing",
                    path: toml_path.clone(),
                    source,
                }
            })?;
            changed.push("created orch.toml".to_owned());
        }
        let settings = settings::load(&dir.root, &opts.overrides)?;
        let loc = Location::from_setting(&settings.config.database_url, &dir.root)?;
        let existed = matches!(&loc, Location::Sqlite(p) if p.exists());
        let store = Store::open(&loc).await?;
        if !existed && matches!(loc, Location::Sqlite(_)) {
            changed.push("created .orch/orch.db".to_owned());
        }
        Ok((
            Repo {
                dir,
                settings,
                store,
            },
            changed,
        ))
    }

    /// Opens the repository around `path`, set up before by [`Repo::init`]: its
    /// configuration (defaults, the user's file, `orch.toml`, `ORCH_*` variables, then
    /// `opts`) and its store. A missing database is an error, never an empty board.
    pub async fn open(path: &Path, opts: &OpenOptions) -> Result<Repo, OpenError> {
        let (dir, settings) = Repo::settings_of(path, opts)?;
        let loc = Location::from_setting(&settings.config.database_url, &dir.root)?;
        let store = Store::open_existing(&loc).await?;
        Ok(Repo {
            dir,
            settings,
            store,
        })
    }

    /// The repository around `path` and its configuration, without opening its store.
    pub fn settings_of(path: &Path, opts: &OpenOptions) -> Result<(RepoDir, Settings), OpenError> {
        let dir = RepoDir::discover(path)?;
        let settings = settings::load(&dir.root, &opts.overrides)?;
        Ok((dir, settings))
    }

    /// The top level of the working tree.
    pub fn root(&self) -> &Path {
        &self.dir.root
    }

    /// Where the repository is.
    pub fn dir(&self) -> &RepoDir {
        &self.dir
    }

    /// `<repo>/.orch/artifacts`: prompts and logs.
    pub fn artifacts(&self) -> PathBuf {
        self.dir.orch_dir().join("artifacts")
    }

    /// The merged configuration.
    pub fn config(&self) -> &Config {
        &self.settings.config
    }

    /// The configuration, to change before a run (a frontend's flags over the files).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.settings.config
    }

    /// The configuration with where each value came from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Sets `key` to `raw` in the repository's `orch.toml`, keeping its comments, after
    /// checking the whole configuration with it (see [`set_setting`]). This `Repo`
    /// keeps the configuration it was opened with.
    pub fn set_setting(&self, key: &str, raw: &str) -> Result<SetOutcome, SetError> {
        set_setting(self.root(), key, raw)
    }

    /// The board's source (`board.source`), when the board lives in another tool's
    /// files.
    pub fn source(&self) -> Option<crate::boards::Source> {
        crate::boards::Source::of(self.config(), self.root(), &self.dir.orch_dir())
    }

    /// Syncs the board with its source now (`orch board sync`); `None` for orch's own
    /// board.
    pub async fn sync_board(&self) -> Result<Option<crate::boards::SyncReport>, EngineError> {
        match self.source() {
            None => Ok(None),
            Some(s) => Ok(Some(s.sync(self.store(), &self.actor()).await?)),
        }
    }

    /// The store: the board, the journal and the runs.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Who a person at this repository is, as the journal names them:
    /// `human:<git user.name>`, else `human:<$USER>`.
    pub fn actor(&self) -> String {
        actor_at(self.root())
    }

    /// The board, as a person edits it (`actor` is journaled with each change).
    pub fn board<'a>(&'a self, actor: &'a str) -> Board<'a> {
        Board::new(&self.store, actor)
    }

    /// An engine over this repository for work on `tasks` (all claimable when empty).
    /// A new run needs an agent; with `resuming`, the run's own record says which.
    pub fn engine(&self, tasks: Vec<TaskId>, resuming: bool) -> Result<Engine, EngineError> {
        let cfg = setup::engine_config(
            self.root(),
            self.artifacts(),
            self.config().clone(),
            tasks,
            resuming,
        )?;
        Engine::open(self.store.clone(), self.root(), cfg)
    }

    /// The integration lines: where they stand, whether they hold validated work, and
    /// what `land` would do.
    pub async fn status(&self) -> Result<LineStatus, EngineError> {
        self.engine(Vec::new(), true)?.status().await
    }

    /// Lands the validated integration line onto its target; returns what it did, and
    /// what it could not do and why.
    pub async fn land(&self, opts: LandOptions) -> Result<LandOutcome, EngineError> {
        self.engine(Vec::new(), true)?.land_now(opts).await
    }

    /// Closes the store (a SQLite file is checkpointed).
    pub async fn close(self) -> Result<(), StoreError> {
        self.store.close().await
    }
}
