//! What every command starts from: the global options, and the repository, its
//! configuration and its store, each found and opened once.

use std::path::PathBuf;

use anyhow::Result;
use orch_store::{Location, Store};

use crate::config::{self, Loaded};
use crate::repo::Repo;

/// Global options every command sees.
pub struct Ctx {
    /// `--repo`
    pub repo: Option<PathBuf>,
    /// `-c KEY=VALUE`
    pub set: Vec<String>,
    /// `--json`
    pub json: bool,
}

/// The repository with its configuration and store, opened once for a command.
pub struct Opened {
    /// The repository.
    pub repo: Repo,
    /// Its configuration, with where each value came from.
    pub config: Loaded,
    /// Its store.
    pub store: Store,
}

impl Ctx {
    /// The repository at `--repo`, or around the current directory.
    pub fn repo(&self) -> Result<Repo> {
        Repo::discover(self.repo.as_deref())
    }

    /// The repository and its configuration.
    pub fn load(&self) -> Result<(Repo, Loaded)> {
        let repo = self.repo()?;
        let config = config::load(&repo.root, &self.set)?;
        Ok((repo, config))
    }

    /// The repository, its configuration and its store, creating `.orch/` for the
    /// default SQLite file. Every command that needs the store comes through here.
    pub async fn open(&self) -> Result<Opened> {
        let (repo, config) = self.load()?;
        let loc = Location::from_setting(&config.config.database_url, &repo.root)?;
        // Only `orch init` creates the database: a missing one is a setup to do, and a
        // file removed behind orch's back is not silently replaced by an empty board.
        let store = Store::open_existing(&loc).await?;
        Ok(Opened {
            repo,
            config,
            store,
        })
    }
}

/// The name recorded as the actor of a person's changes.
pub fn actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    format!("human:{user}")
}
