//! What every command starts from: the global options, and the repository opened
//! through the engine's front door ([`orch_engine::Repo`]), once per command.

use std::path::PathBuf;

use anyhow::{Context, Result};
use orch_engine::repo::{RepoDir, Settings};
use orch_engine::{OpenOptions, Repo};

use crate::error::BadInput;

/// Global options every command sees.
pub struct Ctx {
    /// `--repo`
    pub repo: Option<PathBuf>,
    /// `-c KEY=VALUE`
    pub set: Vec<String>,
    /// `--json`
    pub json: bool,
}

impl Ctx {
    /// `--repo`, or the current directory.
    fn start(&self) -> Result<PathBuf> {
        match &self.repo {
            Some(p) if !p.is_dir() => {
                Err(BadInput(format!("--repo {}: no such directory", p.display())).into())
            }
            Some(p) => Ok(p.clone()),
            None => std::env::current_dir().context("reading the current directory"),
        }
    }

    /// How the front door opens the repository: with the `-c` flags.
    pub fn options(&self) -> OpenOptions {
        self.set
            .iter()
            .fold(OpenOptions::default(), |o, kv| o.set(kv.clone()))
    }

    /// The repository at `--repo`, or around the current directory.
    pub fn repo(&self) -> Result<RepoDir> {
        Ok(RepoDir::discover(&self.start()?)?)
    }

    /// The repository and its configuration, without its store.
    pub fn load(&self) -> Result<(RepoDir, Settings)> {
        Ok(Repo::settings_of(&self.start()?, &self.options())?)
    }

    /// The repository, its configuration and its store. Only `orch init` creates the
    /// database: a missing one is a setup to do, and a file removed behind orch's back
    /// is not silently replaced by an empty board.
    pub async fn open(&self) -> Result<Repo> {
        Ok(Repo::open(&self.start()?, &self.options()).await?)
    }
}
