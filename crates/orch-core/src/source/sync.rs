//! One sync between a source and the board, planned as data: the tasks to import, the
//! moves a person's edits in the source ask for, the tasks gone from the source, and
//! the statuses (and notes) orch writes back.
//!
//! Who changed what is told by what the last sync saw of each task ([`Synced`]): a
//! status in the source that differs from it is a person's edit, obeyed on the board;
//! an orch column that differs from it is orch's move, written to the source. When
//! both changed, the person wins, and orch's write is left out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::model::{SourceError, SourceTask, Statuses};
use crate::TaskStatus;
use crate::board::{BoardFile, BoardTask, plan_import};
use crate::task::TaskId;

/// What the last sync saw of one task: the source's status and orch's column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    /// The status in the source.
    pub source: String,
    /// orch's column.
    pub orch: TaskStatus,
}

/// A person's edit in the source, to apply on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The task's key.
    pub key: String,
    /// The column it moves to.
    pub to: TaskStatus,
    /// The status the source says, for the journal.
    pub said: String,
}

/// What a write-back says besides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The task landed.
    Done,
    /// The task stopped not done (failed, blocked or canceled).
    Stopped(TaskStatus),
}

/// A status orch writes to the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The task's key.
    pub key: String,
    /// The file that holds it.
    pub file: String,
    /// The status the file must still say (else a person changed it: a conflict).
    pub expect: String,
    /// The status to write.
    pub status: String,
    /// orch's column it writes.
    pub orch: TaskStatus,
    /// The note to append, for a runnable task that ended.
    pub note: Option<Note>,
}

/// One sync, planned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPlan {
    /// The source's runnable tasks, as a board file to import (idempotent by key).
    pub import: BoardFile,
    /// Moves on the board, after the import.
    pub moves: Vec<Move>,
    /// Keys of tasks gone from the source, to remove from the board.
    pub removals: Vec<String>,
    /// Statuses to write to the source.
    pub writes: Vec<Write>,
    /// What this sync saw, before its writes (each write that lands updates its key).
    pub memory: BTreeMap<String, Synced>,
}

/// Plans a sync of `tasks` (the whole source) with `board` (orch's tasks, by key and
/// column), given what the last sync saw. A source that does not hold together (an
/// id twice, a dependency on a missing id, a cycle) is an error naming the file and
/// line, and nothing is planned.
pub fn plan_sync(
    tasks: &[SourceTask],
    statuses: &Statuses,
    board: &BTreeMap<String, (TaskId, TaskStatus)>,
    memory: &BTreeMap<String, Synced>,
) -> Result<SyncPlan, SourceError> {
    let import = check(tasks)?;
    let mut plan = SyncPlan {
        import,
        ..SyncPlan::default()
    };
    for t in tasks {
        decide(&mut plan, t, statuses, column(t, board), memory.get(&t.key));
    }
    let present: BTreeSet<&str> = tasks.iter().map(|t| t.key.as_str()).collect();
    plan.removals = memory
        .keys()
        .filter(|k| !present.contains(k.as_str()) && board.contains_key(*k))
        .cloned()
        .collect();
    Ok(plan)
}

/// What orch knows of how a task ended, for its note.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ending {
    /// The task's id on orch's board.
    pub id: Option<TaskId>,
    /// The run that ended it.
    pub run: Option<String>,
    /// Its integration (merge) commit.
    pub commit: Option<String>,
    /// What its agents cost, as they reported it (`$0.12`).
    pub cost: Option<String>,
    /// Why it stopped, for a task not done.
    pub why: Option<String>,
}

impl Note {
    /// The note's words.
    pub fn text(self, e: &Ending) -> String {
        let run = e
            .run
            .as_deref()
            .map(|r| format!(" in run {r}"))
            .unwrap_or_default();
        match self {
            Note::Done => {
                let commit = e
                    .commit
                    .as_deref()
                    .map(|c| format!(", integration commit {c}"))
                    .unwrap_or_default();
                let cost = e
                    .cost
                    .as_deref()
                    .map(|c| format!(", cost {c}"))
                    .unwrap_or_default();
                format!("orch: done{run}{commit}{cost}.")
            }
            Note::Stopped(col) => {
                let why = e
                    .why
                    .as_deref()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default();
                let id = e.id.map(|i| i.0.to_string()).unwrap_or_else(|| "ID".into());
                let again = match col {
                    TaskStatus::Failed => format!(" To try again: `orch task retry {id}`."),
                    TaskStatus::Blocked => format!(" To try again: `orch task unblock {id}`."),
                    _ => String::new(),
                };
                format!("orch: {}{run}{why}.{again}", col.as_str())
            }
        }
    }
}

/// orch's column for a source task: a Taskmaster parent's follows its subtasks'.
fn column(t: &SourceTask, board: &BTreeMap<String, (TaskId, TaskStatus)>) -> Option<TaskStatus> {
    if t.runnable() {
        return board.get(&t.key).map(|(_, s)| *s);
    }
    let cols: Vec<TaskStatus> = t
        .children
        .iter()
        .filter_map(|c| board.get(c).map(|(_, s)| *s))
        .collect();
    Some(
        if !cols.is_empty() && cols.iter().all(|s| *s == TaskStatus::Done) {
            TaskStatus::Done
        } else if cols.iter().any(|s| {
            matches!(
                s,
                TaskStatus::InProgress | TaskStatus::Review | TaskStatus::Done
            )
        }) {
            TaskStatus::InProgress
        } else {
            TaskStatus::Backlog
        },
    )
}

/// What one task's sync does: a person's edit obeyed, orch's move written back, or
/// nothing; and what is remembered of it.
fn decide(
    plan: &mut SyncPlan,
    t: &SourceTask,
    statuses: &Statuses,
    now: Option<TaskStatus>,
    seen: Option<&Synced>,
) {
    let said = &t.status;
    match (seen, now) {
        // New to the board: the source says where it starts.
        (None, None) => {
            let to = statuses.meaning(said);
            if to != TaskStatus::Backlog {
                plan.moves.push(Move {
                    key: t.key.clone(),
                    to,
                    said: said.clone(),
                });
            }
            plan.memory.insert(
                t.key.clone(),
                Synced {
                    source: said.clone(),
                    orch: to,
                },
            );
        }
        // On the board but never synced (a lost memory): the board's column stands.
        (None, Some(col)) => {
            if !statuses.agrees(said, col) {
                plan.writes.push(write(t, statuses, col, None));
            }
            plan.memory.insert(
                t.key.clone(),
                Synced {
                    source: said.clone(),
                    orch: col,
                },
            );
        }
        (Some(seen), col) => {
            let col = col.unwrap_or(TaskStatus::Backlog);
            if !said.eq_ignore_ascii_case(&seen.source) {
                // A person's edit in the source: obeyed, unless the board says the same.
                let to = statuses.meaning(said);
                let agrees = statuses.agrees(said, col);
                if t.runnable() && !agrees {
                    plan.moves.push(Move {
                        key: t.key.clone(),
                        to,
                        said: said.clone(),
                    });
                }
                let orch = if t.runnable() && !agrees { to } else { col };
                plan.memory.insert(
                    t.key.clone(),
                    Synced {
                        source: said.clone(),
                        orch,
                    },
                );
            } else if col != seen.orch {
                // orch moved it: written back, with a note when it ended.
                let note = match col {
                    TaskStatus::Done if t.runnable() => Some(Note::Done),
                    TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::Canceled
                        if t.runnable() =>
                    {
                        Some(Note::Stopped(col))
                    }
                    _ => None,
                };
                if note.is_some() || !statuses.agrees(said, col) {
                    plan.writes.push(write(t, statuses, col, note));
                    plan.memory.insert(t.key.clone(), seen.clone());
                } else {
                    plan.memory.insert(
                        t.key.clone(),
                        Synced {
                            source: said.clone(),
                            orch: col,
                        },
                    );
                }
            } else {
                plan.memory.insert(t.key.clone(), seen.clone());
            }
        }
    }
}

fn write(t: &SourceTask, statuses: &Statuses, col: TaskStatus, note: Option<Note>) -> Write {
    Write {
        key: t.key.clone(),
        file: t.file.clone(),
        expect: t.status.clone(),
        status: statuses.spelling(col).to_owned(),
        orch: col,
        note,
    }
}

/// The source's runnable tasks as a board file, checked whole: keys, fields, ids
/// once, dependencies on ids the source has, no cycle.
fn check(tasks: &[SourceTask]) -> Result<BoardFile, SourceError> {
    let mut seen: BTreeMap<String, &SourceTask> = BTreeMap::new();
    for t in tasks {
        if let Some(first) = seen.insert(t.key.to_ascii_uppercase(), t) {
            return Err(SourceError::at(
                &t.file,
                t.line,
                format!(
                    "id {} is used twice; {}:{} has it already",
                    t.key, first.file, first.line
                ),
            ));
        }
    }
    let canonical = |d: &str| seen.get(&d.to_ascii_uppercase()).map(|t| t.key.clone());
    let mut runnable: Vec<&SourceTask> = Vec::new();
    let mut file = BoardFile::default();
    for t in tasks.iter().filter(|t| t.runnable()) {
        let after = t
            .after
            .iter()
            .map(|d| {
                canonical(d).ok_or_else(|| {
                    SourceError::at(
                        &t.file,
                        t.line,
                        format!("{} depends on {d}, which is not in the source", t.key),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        runnable.push(t);
        file.tasks.push(BoardTask {
            key: t.key.clone(),
            title: t.title.clone(),
            body: t.body.clone(),
            priority: t.priority,
            after,
            labels: t.labels.clone(),
            touches: Vec::new(),
            reverts: Vec::new(),
        });
    }
    plan_import(&file, &[]).map_err(|e| {
        let t = runnable[e.index];
        SourceError::at(&t.file, t.line, format!("{}: {}", t.key, e.message))
    })?;
    Ok(file)
}
