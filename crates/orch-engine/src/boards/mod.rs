//! Boards people already keep (`board.source`): Backlog.md's task files or
//! Taskmaster's `tasks.json`, synced with orch's board. The core plans each sync
//! ([`orch_core::source::plan_sync`]); this module reads the files, applies the plan
//! to the store as the source's edits, and writes statuses and notes back: each file
//! written whole to a temporary file and renamed over, only after checking that the
//! task's status there is still the one the plan saw (else a person changed it: the
//! file is left alone and a `source.conflict` is journaled). What the last sync saw
//! of each task is kept in `.orch/board-source.json`.

mod files;
pub mod mirror;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use orch_core::config::{BoardSource, Config};
use orch_core::event::kind;
use orch_core::run::FailureKind;
use orch_core::source::{Ending, Note, SourceError, Statuses, Synced, plan_sync};
use orch_core::{TaskId, TaskStatus};
use orch_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

pub use files::Fingerprint;

/// A sync that could not be done. Nothing is changed on the board or in the source
/// when the source does not parse or does not hold together.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source does not parse or does not hold together.
    #[error("board.source {source_kind}: {error}")]
    Source {
        /// Which source.
        source_kind: BoardSource,
        /// The file, the line and what is wrong.
        error: SourceError,
    },
    /// The source's files are not where the configuration says.
    #[error("board.source {source_kind}: {path} does not exist: {hint}")]
    Missing {
        /// Which source.
        source_kind: BoardSource,
        /// The path looked for.
        path: String,
        /// How to make it, or where to point `board.path`.
        hint: &'static str,
    },
    /// A file could not be read or written.
    #[error("board.source: {what} {path}: {error}")]
    Io {
        /// Reading or writing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        error: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// True when a person can fix the source (a bad file, a missing folder).
    pub fn is_refusal(&self) -> bool {
        matches!(self, SyncError::Source { .. } | SyncError::Missing { .. })
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The source, as `board.source` names it.
    pub source: String,
    /// Where it is, relative to the repository.
    pub path: String,
    /// Tasks the source has, runnable ones (Taskmaster parents excepted).
    pub tasks: usize,
    /// Keys of tasks created on the board.
    pub created: Vec<String>,
    /// Keys of tasks whose fields or dependencies changed.
    pub updated: Vec<String>,
    /// Tasks moved because the source says so: key and column.
    pub moved: Vec<(String, TaskStatus)>,
    /// Keys of tasks gone from the source, removed from the board.
    pub removed: Vec<String>,
    /// Statuses written to the source: key and status.
    pub written: Vec<(String, String)>,
    /// Keys whose write was left out: a person changed the task there first.
    pub conflicts: Vec<String>,
}

/// What the last sync saw, kept between syncs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Memory {
    source: String,
    path: String,
    tasks: BTreeMap<String, Synced>,
}

/// A repository's board source.
#[derive(Debug, Clone)]
pub struct Source {
    kind: BoardSource,
    root: PathBuf,
    place: String,
    tag: String,
    memory: PathBuf,
    /// The files as last read, with their fingerprint: read again only once they
    /// change (a run syncs whenever its board changes).
    read: Arc<Mutex<Option<LastRead>>>,
}

/// The source as last read, and the fingerprint of its files then.
type LastRead = (Fingerprint, Arc<Read>);

impl Source {
    /// The source `config` names for the repository at `root` (with orch's own
    /// directory `orch_dir`), or `None` for orch's own board.
    pub fn of(config: &Config, root: &Path, orch_dir: &Path) -> Option<Source> {
        let b = &config.board;
        (b.source != BoardSource::Orch).then(|| Source {
            kind: b.source,
            root: root.to_owned(),
            place: b.place().to_owned(),
            tag: b.tag().to_owned(),
            memory: orch_dir.join("board-source.json"),
            read: Arc::default(),
        })
    }

    /// Which source.
    pub fn kind(&self) -> BoardSource {
        self.kind
    }

    /// Where it is, relative to the repository.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Whether the task keyed `key` was in the source at the last sync (one the board
    /// took from it), rather than added on orch's board alone.
    pub fn holds(&self, key: &str) -> bool {
        self.load_memory().tasks.contains_key(key)
    }

    /// Reads the source, plans the sync with the board and carries it out; `actor` is
    /// who the board's events name.
    pub async fn sync(&self, store: &Store, actor: &str) -> Result<SyncReport, SyncError> {
        let read = self.read()?;
        let board: BTreeMap<String, (TaskId, TaskStatus)> = store
            .tasks(&[])
            .await?
            .into_iter()
            .map(|t| (t.key, (t.id, t.status)))
            .collect();
        let mut memory = self.load_memory();
        let plan =
            plan_sync(&read.tasks, &read.statuses, &board, &memory.tasks).map_err(|error| {
                SyncError::Source {
                    source_kind: self.kind,
                    error,
                }
            })?;
        let mut report = SyncReport {
            source: self.kind.to_string(),
            path: self.place.clone(),
            tasks: plan.import.tasks.len(),
            ..SyncReport::default()
        };
        let imported = store.import_changes(&plan.import, actor).await?;
        report.created = imported.created.into_iter().map(|(k, _)| k).collect();
        report.updated = imported.updated.into_iter().map(|(k, _)| k).collect();
        let ids: BTreeMap<String, (TaskId, TaskStatus)> = store
            .tasks(&[])
            .await?
            .into_iter()
            .map(|t| (t.key, (t.id, t.status)))
            .collect();
        for m in &plan.moves {
            let Some((id, now)) = ids.get(&m.key) else {
                continue;
            };
            if *now != m.to {
                let why = format!("{} says {:?}", self.kind, m.said);
                let req = orch_store::MoveRequest {
                    to: m.to,
                    actor: orch_core::transition::Actor::Human,
                    force: true,
                    reason: Some(why),
                };
                store.move_task(*id, &req, actor).await?;
                report.moved.push((m.key.clone(), m.to));
            }
        }
        for key in &plan.removals {
            if let Some((id, _)) = ids.get(key) {
                store.remove_task(*id, true, actor).await?;
                report.removed.push(key.clone());
            }
        }
        memory.tasks = plan.memory;
        for w in &plan.writes {
            let id = ids.get(&w.key).map(|(id, _)| *id);
            let note = match (w.note, id) {
                (Some(n), Some(id)) => Some(n.text(&ending(store, id, n).await?)),
                _ => None,
            };
            match files::write_back(self, w, note.as_deref())? {
                true => {
                    memory.tasks.insert(
                        w.key.clone(),
                        Synced {
                            source: w.status.clone(),
                            orch: w.orch,
                        },
                    );
                    report.written.push((w.key.clone(), w.status.clone()));
                    if let Some(id) = id {
                        let why = format!("wrote {:?} to {}", w.status, w.file);
                        let payload = serde_json::json!({ "source": self.kind.as_str(), "file": w.file, "status": w.status, "note": note });
                        store
                            .note_task(id, (kind::SOURCE_WRITTEN, why, payload), actor)
                            .await?;
                    }
                }
                false => {
                    report.conflicts.push(w.key.clone());
                    if let Some(id) = id {
                        let why = format!(
                            "left {} alone: a person changed {}'s status there from {:?} first, and that change wins",
                            w.file, w.key, w.expect
                        );
                        let payload = serde_json::json!({ "source": self.kind.as_str(), "file": w.file, "wanted": w.status, "expected": w.expect });
                        store
                            .note_task(id, (kind::SOURCE_CONFLICT, why, payload), actor)
                            .await?;
                    }
                }
            }
        }
        self.save_memory(&memory)?;
        Ok(report)
    }

    /// The source as read, again only if its files changed since the last read.
    fn read(&self) -> Result<Arc<Read>, SyncError> {
        let now = self.fingerprint();
        let mut cached = self.read.lock().expect("never poisoned");
        if let Some((seen, read)) = cached.as_ref()
            && *seen == now
        {
            return Ok(read.clone());
        }
        let read = Arc::new(files::read(self)?);
        *cached = Some((now, read.clone()));
        Ok(read)
    }

    /// The files' sizes and times, to tell cheaply whether they changed.
    pub fn fingerprint(&self) -> Fingerprint {
        files::fingerprint(self)
    }

    fn load_memory(&self) -> Memory {
        let m: Memory = std::fs::read(&self.memory)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if m.source == self.kind.as_str() && m.path == self.place {
            m
        } else {
            Memory {
                source: self.kind.to_string(),
                path: self.place.clone(),
                tasks: BTreeMap::new(),
            }
        }
    }

    fn save_memory(&self, m: &Memory) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec_pretty(m).expect("the memory serializes");
        crate::repo::write_atomic(&self.memory, &bytes).map_err(|error| SyncError::Io {
            what: "writing",
            path: self.memory.clone(),
            error,
        })
    }
}

/// The source's statuses and tasks, as read.
#[derive(Debug)]
struct Read {
    statuses: Statuses,
    tasks: Vec<orch_core::source::SourceTask>,
}

/// What the store knows of how task `id` ended, for its note.
async fn ending(store: &Store, id: TaskId, note: Note) -> Result<Ending, StoreError> {
    let attempts = store.task_attempts(id).await?;
    let mut e = Ending {
        id: Some(id),
        ..Ending::default()
    };
    let mut cost = orch_core::usage::Usage::default();
    for (_, a) in &attempts {
        if let Some(u) = &a.usage {
            cost.add(u);
        }
    }
    if let Some((run, last)) = attempts.last() {
        e.run = Some(run.0.clone());
        e.commit = attempts
            .iter()
            .rev()
            .find_map(|(_, a)| a.merge.clone())
            .map(|c| c.chars().take(12).collect());
        e.why = last
            .failure
            .clone()
            .and_then(|f| serde_json::from_value::<FailureKind>(f).ok())
            .map(|f| {
                f.to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect()
            });
    }
    e.cost = cost.cost.map(|c| c.to_string());
    if matches!(note, Note::Done) {
        e.why = None;
    }
    Ok(e)
}
