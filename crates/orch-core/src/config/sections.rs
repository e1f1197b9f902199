//! The `[worker]`, `[notify]`, `[review]` and `[board]` sections: their values, defaults and checks. The
//! rules that use them live with their subsystems (`crate::jobs`, `crate::notify`).

use serde::{Deserialize, Serialize};

use super::BadSetting;
use crate::units::Duration;

/// `[worker]`: how `orch worker` holds its jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// How long a job stays a worker's after its last heartbeat; past it, another
    /// worker takes the job. The heartbeat comes every third of it.
    pub lease_ttl: Duration,
    /// How often an idle worker looks for a job, and a coordinator for results.
    pub poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease_ttl: Duration::from_secs(30),
            poll: Duration(std::time::Duration::from_millis(500)),
        }
    }
}

impl WorkerConfig {
    /// Checks the values: a lease of at least 3 s (a heartbeat a second at the
    /// quickest), a poll of at least 10 ms and shorter than the lease.
    pub fn check(&self) -> Result<(), BadSetting> {
        if self.lease_ttl.0 < std::time::Duration::from_secs(3) {
            return Err(BadSetting::new(
                "worker.lease_ttl",
                format!(
                    "worker.lease_ttl is {}; it must be at least 3s",
                    self.lease_ttl
                ),
            ));
        }
        if self.poll.0 < std::time::Duration::from_millis(10) || self.poll.0 >= self.lease_ttl.0 {
            return Err(BadSetting::new(
                "worker.poll",
                format!(
                    "worker.poll is {}; it must be at least 10ms and shorter than worker.lease_ttl ({})",
                    self.poll, self.lease_ttl
                ),
            ));
        }
        Ok(())
    }

    /// How often a worker renews its leases.
    pub fn heartbeat(&self) -> std::time::Duration {
        self.lease_ttl.0 / 3
    }
}

/// `[notify]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// A shell command run with each notification as JSON on its stdin; empty: none.
    pub command: String,
    /// An `http://` URL each notification is POSTed to as JSON; empty: none.
    pub webhook: String,
}

impl NotifyConfig {
    /// Whether anything is to be told.
    pub fn is_set(&self) -> bool {
        !self.command.trim().is_empty() || !self.webhook.trim().is_empty()
    }

    /// Checks the webhook: what is wrong, naming the key and what is allowed.
    pub fn check(&self) -> Result<(), BadSetting> {
        let w = self.webhook.trim();
        if w.is_empty() {
            return Ok(());
        }
        let Some(rest) = w.strip_prefix("http://") else {
            return Err(BadSetting::new(
                "notify.webhook",
                format!(
                    "notify.webhook {w:?} is not an http:// URL; orch posts plain HTTP (for https, point it at a local relay, or use notify.command with curl)"
                ),
            ));
        };
        if rest.split('/').next().is_none_or(str::is_empty) {
            return Err(BadSetting::new(
                "notify.webhook",
                format!("notify.webhook {w:?} names no host: use http://HOST[:PORT]/PATH"),
            ));
        }
        Ok(())
    }
}

/// `review.required`: which tasks wait for a person after their worker gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewRequired {
    /// None: work lands when its gates pass.
    #[default]
    None,
    /// Every task.
    All,
    /// Tasks with one of `review.labels`.
    Labels,
}

/// `[review]`: a person's review before work lands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// Which tasks wait for a person.
    pub required: ReviewRequired,
    /// With `required = "labels"`: the labels that need review.
    pub labels: Vec<String>,
    /// Rounds of requested changes an agent gets before the task goes back to review
    /// with a note.
    pub max_rounds: u32,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            required: ReviewRequired::None,
            labels: Vec::new(),
            max_rounds: 3,
        }
    }
}

impl ReviewConfig {
    /// Checks the values: `labels` set when required by label, and 1 to 20 rounds.
    pub fn check(&self) -> Result<(), BadSetting> {
        if self.required == ReviewRequired::Labels && self.labels.is_empty() {
            return Err(BadSetting::new(
                "review.labels",
                "review.required is \"labels\" but review.labels is empty: list the labels whose tasks need review, such as [\"security\"]".into(),
            ));
        }
        if !(1..=20).contains(&self.max_rounds) {
            return Err(BadSetting::new(
                "review.max_rounds",
                format!("review.max_rounds is {}; allowed: 1 to 20", self.max_rounds),
            ));
        }
        Ok(())
    }
}

/// Where the board's tasks come from (`board.source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BoardSource {
    /// orch's own board, in its store.
    #[default]
    #[serde(rename = "orch")]
    Orch,
    /// Backlog.md's markdown task files (`backlog/tasks/*.md`).
    #[serde(rename = "backlog.md")]
    BacklogMd,
    /// Taskmaster's `.taskmaster/tasks/tasks.json`.
    #[serde(rename = "taskmaster")]
    Taskmaster,
}

impl BoardSource {
    /// The value as written in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            BoardSource::Orch => "orch",
            BoardSource::BacklogMd => "backlog.md",
            BoardSource::Taskmaster => "taskmaster",
        }
    }
}

impl std::fmt::Display for BoardSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[board]`: where the board's tasks come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoardConfig {
    /// `orch` (its own board), `backlog.md` or `taskmaster`.
    pub source: BoardSource,
    /// The source's place, relative to the repository: empty for its default
    /// (`backlog` for Backlog.md, `.taskmaster/tasks/tasks.json` for Taskmaster).
    pub path: String,
    /// Taskmaster's tag (its task list) to read; empty: `master`.
    pub tag: String,
}

impl BoardConfig {
    /// The source's place relative to the repository, the default filled in.
    pub fn place(&self) -> &str {
        match (self.path.trim(), self.source) {
            ("", BoardSource::Orch) => "",
            ("", BoardSource::BacklogMd) => "backlog",
            ("", BoardSource::Taskmaster) => ".taskmaster/tasks/tasks.json",
            (p, _) => p,
        }
    }

    /// Taskmaster's tag, the default filled in.
    pub fn tag(&self) -> &str {
        match self.tag.trim() {
            "" => "master",
            t => t,
        }
    }

    /// Checks the values: a relative path that stays inside the repository.
    pub fn check(&self) -> Result<(), BadSetting> {
        let p = std::path::Path::new(self.path.trim());
        let outside = p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if outside {
            return Err(BadSetting::new(
                "board.path",
                format!(
                    "board.path {:?} leaves the repository; give a path relative to it, such as \"backlog\"",
                    self.path
                ),
            ));
        }
        if !self.path.trim().is_empty() && self.source == BoardSource::Orch {
            return Err(BadSetting::new(
                "board.path",
                "board.path is set but board.source is \"orch\": set board.source to \"backlog.md\" or \"taskmaster\", or leave board.path empty".into(),
            ));
        }
        Ok(())
    }
}
