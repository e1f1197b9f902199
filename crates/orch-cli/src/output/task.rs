//! JSON shapes of the task and board commands beyond a bare task.

use orch_engine::core::event::Event;
use orch_engine::core::{Task, TaskId, TaskStatus};
use serde::Serialize;

use super::{EventJson, TaskJson, board_order, waiting_on};

/// `task show --json`: the task, what it waits on, and its history.
#[derive(Serialize)]
pub struct TaskShowJson {
    #[serde(flatten)]
    task: TaskJson,
    waiting_on: Vec<i64>,
    /// Its attempts' usage, summed over every run.
    usage: Option<orch_engine::core::usage::Usage>,
    events: Vec<EventJson>,
}

impl TaskShowJson {
    /// `t` on `board`, with its `events`.
    pub fn new(t: &Task, board: &[Task], events: &[Event]) -> TaskShowJson {
        TaskShowJson {
            task: TaskJson::from(t),
            waiting_on: waiting_on(board)
                .get(&t.id)
                .map(|w| w.iter().map(|d| d.0).collect())
                .unwrap_or_default(),
            usage: super::usage_of(events),
            events: events.iter().map(EventJson::from).collect(),
        }
    }
}

/// `task rm --json`.
#[derive(Serialize)]
pub struct Removed {
    /// The removed task.
    pub removed: TaskJson,
}

/// A cancel posted for a live run to pick up.
#[derive(Serialize)]
pub struct CancelRequested {
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    cancel: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<String>,
}

impl CancelRequested {
    /// A task's cancel, posted to `runs`.
    pub fn task(id: TaskId, runs: Vec<String>) -> CancelRequested {
        CancelRequested {
            task: Some(id.0),
            run: None,
            cancel: "requested",
            runs,
        }
    }

    /// A run's cancel.
    pub fn run(run: &str) -> CancelRequested {
        CancelRequested {
            task: None,
            run: Some(run.to_owned()),
            cancel: "requested",
            runs: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct CardJson<'a> {
    id: i64,
    key: &'a str,
    title: &'a str,
    priority: i32,
    waiting_on: Vec<i64>,
    /// Its agents' usage over every run, if any reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a orch_engine::core::usage::Usage>,
    /// Tasks whose work in flight its retry waits for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    retry_waits_for: Vec<i64>,
}

#[derive(Serialize)]
struct ColumnJson<'a> {
    status: TaskStatus,
    tasks: Vec<CardJson<'a>>,
}

/// `board --json`: one column per status, cards in board order.
#[derive(Serialize)]
pub struct BoardJson<'a> {
    columns: Vec<ColumnJson<'a>>,
}

impl<'a> BoardJson<'a> {
    /// The board of `tasks`.
    pub fn new(
        tasks: &'a [Task],
        labels: &[String],
        usage: &'a super::TaskUsage,
        retrying: &'a super::Retrying,
    ) -> BoardJson<'a> {
        let waiting = waiting_on(tasks);
        let mut ordered = board_order(tasks);
        ordered.retain(|t| super::has_labels(t, labels));
        let columns = TaskStatus::ALL
            .iter()
            .map(|s| ColumnJson {
                status: *s,
                tasks: ordered
                    .iter()
                    .filter(|t| t.status == *s)
                    .map(|t| CardJson {
                        id: t.id.0,
                        key: &t.key,
                        title: &t.title,
                        priority: t.priority,
                        waiting_on: waiting
                            .get(&t.id)
                            .map(|w| w.iter().map(|d| d.0).collect())
                            .unwrap_or_default(),
                        usage: usage.get(&t.id),
                        retry_waits_for: retrying
                            .get(&t.id)
                            .map(|w| w.iter().map(|d| d.0).collect())
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        BoardJson { columns }
    }
}

#[derive(Serialize)]
struct KeyedJson<'a> {
    key: &'a str,
    id: i64,
}

/// `board import --json`.
#[derive(Serialize)]
pub struct ImportJson<'a> {
    created: Vec<KeyedJson<'a>>,
    updated: Vec<KeyedJson<'a>>,
    unchanged: Vec<KeyedJson<'a>>,
}

impl<'a> ImportJson<'a> {
    /// What an import did.
    pub fn new(r: &'a orch_store::ImportReport) -> ImportJson<'a> {
        let list = |v: &'a [(String, TaskId)]| {
            v.iter()
                .map(|(k, id)| KeyedJson { key: k, id: id.0 })
                .collect()
        };
        ImportJson {
            created: list(&r.created),
            updated: list(&r.updated),
            unchanged: list(&r.unchanged),
        }
    }
}

/// `orch board sync`, in words.
pub fn sync_report(r: &orch_engine::boards::SyncReport) -> String {
    let keys = |v: &[String]| v.join(", ");
    let mut out = format!("Synced {} tasks from {} ({}).\n", r.tasks, r.source, r.path);
    let mut line = |what: &str, list: String| {
        if !list.is_empty() {
            out.push_str(&format!("  {what}: {list}\n"));
        }
    };
    line("created", keys(&r.created));
    line("updated", keys(&r.updated));
    line(
        "moved as the source says",
        r.moved
            .iter()
            .map(|(k, s)| format!("{k} to {s}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    line("removed (gone from the source)", keys(&r.removed));
    line(
        "written back",
        r.written
            .iter()
            .map(|(k, s)| format!("{k} {s:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    line(
        "left alone (a person changed them first)",
        keys(&r.conflicts),
    );
    out
}
