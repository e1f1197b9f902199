//! How a run was started, as its record in the store keeps it: the resolved
//! configuration, the base it resolved, and the engine settings a resume needs to run
//! the same way. Typed here, so no one reads loose JSON keys.

use std::path::PathBuf;

use orch_core::TaskId;
use orch_core::config::Config;
use orch_core::ports::ResolvedBase;
use orch_core::run::CommitId;
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The base a run resolved when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBase {
    /// The commit.
    pub commit: String,
    /// What it was resolved from.
    pub source: String,
    /// Whether a fetch brought it up to date.
    pub fetched: bool,
    /// A warning, when a cached ref was used.
    pub warning: Option<String>,
}

/// The engine settings a resume needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEngine {
    /// The agent's command template.
    pub agent_command: String,
    /// The `--task` filter.
    pub only_tasks: Vec<i64>,
    /// Where the run's worktrees are.
    pub worktree_root: String,
}

/// A run's record.
#[derive(Debug, Clone)]
pub struct StoredRun {
    /// The resolved configuration.
    pub config: Config,
    /// The resolved base; `None` in records of runs that never resolved one.
    pub base: Option<StoredBase>,
    /// The engine settings.
    pub engine: StoredEngine,
}

const BASE: &str = "resolved_base";
const ENGINE: &str = "engine";

impl StoredRun {
    /// A record for a run that starts now.
    pub fn new(config: Config, base: &ResolvedBase, engine: StoredEngine) -> StoredRun {
        StoredRun {
            config,
            base: Some(StoredBase {
                commit: base.commit.0.clone(),
                source: base.source.clone(),
                fetched: base.fetched,
                warning: base.warning.clone(),
            }),
            engine,
        }
    }

    /// The base commit, if one was resolved.
    pub fn base_commit(&self) -> Option<CommitId> {
        self.base.as_ref().map(|b| CommitId(b.commit.clone()))
    }

    /// The `--task` filter.
    pub fn only_tasks(&self) -> Vec<TaskId> {
        self.engine.only_tasks.iter().copied().map(TaskId).collect()
    }

    /// The worktree root, if recorded.
    pub fn worktree_root(&self) -> Option<PathBuf> {
        (!self.engine.worktree_root.is_empty()).then(|| PathBuf::from(&self.engine.worktree_root))
    }

    /// The record as the store keeps it: the configuration's keys, plus the base and
    /// the engine settings under their own keys.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.config).expect("the config always serialises");
        v[BASE] = serde_json::to_value(&self.base).expect("the base always serialises");
        v[ENGINE] = serde_json::to_value(&self.engine).expect("the settings always serialise");
        v
    }

    /// Reads a record back; `run` names it in errors.
    pub fn from_json(run: &str, v: &serde_json::Value) -> Result<StoredRun, EngineError> {
        let unreadable = |what: &str, e: serde_json::Error| {
            EngineError::Unresumable(format!(
                "run {run}: its stored {what} cannot be read by this version of orch ({e})"
            ))
        };
        let mut v = v.clone();
        let obj = v.as_object_mut();
        let (base, engine) = match obj {
            Some(o) => (o.remove(BASE), o.remove(ENGINE)),
            None => (None, None),
        };
        // Runs recorded before the integration line had a branch of their own each.
        let per_run = v["run"].is_object() && v["run"].get("integration_branch").is_none();
        let mut config: Config =
            serde_json::from_value(v).map_err(|e| unreadable("configuration", e))?;
        if per_run {
            config.run.integration_branch = orch_core::config::PER_RUN.into();
        }
        let base = match base {
            Some(b) => serde_json::from_value(b).map_err(|e| unreadable("base", e))?,
            None => None,
        };
        let engine = match engine {
            Some(e) => serde_json::from_value(e).map_err(|e| unreadable("engine settings", e))?,
            None => StoredEngine::default(),
        };
        Ok(StoredRun {
            config,
            base,
            engine,
        })
    }
}
