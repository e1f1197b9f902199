//! Output shapes and rendering. The CLI owns its JSON shapes: library types are mapped
//! here, so a library change cannot silently change what scripts parse.

pub mod cleanup;
pub mod land;
pub mod pool;
pub mod run;
pub mod task;
pub mod transcript;

use std::collections::BTreeMap;

use orch_engine::core::event::Event;
use orch_engine::core::{Task, TaskId, TaskStatus};
use serde::Serialize;

/// A task in `task list --json` and `task show --json`.
#[derive(Debug, Serialize)]
pub struct TaskJson {
    id: i64,
    key: String,
    title: String,
    body: String,
    status: TaskStatus,
    priority: i32,
    depends_on: Vec<i64>,
    labels: Vec<String>,
    touches: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<&Task> for TaskJson {
    fn from(t: &Task) -> Self {
        TaskJson {
            id: t.id.0,
            key: t.key.clone(),
            title: t.title.clone(),
            body: t.body.clone(),
            status: t.status,
            priority: t.priority,
            depends_on: t.depends_on.iter().map(|d| d.0).collect(),
            labels: t.labels.clone(),
            touches: t.touches.clone(),
            created_at: t.created_at.to_string(),
            updated_at: t.updated_at.to_string(),
        }
    }
}

/// An event in JSON output.
#[derive(Debug, Serialize)]
pub struct EventJson {
    seq: i64,
    at: String,
    run_id: Option<String>,
    task_id: Option<i64>,
    attempt: Option<i64>,
    kind: String,
    reason: String,
    actor: String,
    payload: serde_json::Value,
    /// The title of the task it is about, where the caller knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    task_title: Option<String>,
}

impl EventJson {
    /// The event, with the title of the task it is about.
    pub fn titled(e: &Event, title: Option<&str>) -> EventJson {
        EventJson {
            task_title: title.map(str::to_owned),
            ..EventJson::from(e)
        }
    }
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            seq: e.seq,
            at: e.at.to_string(),
            run_id: e.run_id.clone(),
            task_id: e.task_id.map(|t| t.0),
            attempt: e.attempt,
            kind: e.kind.clone(),
            reason: e.reason.clone(),
            actor: e.actor.clone(),
            payload: e.payload.clone(),
            task_title: None,
        }
    }
}

/// Text from the board made safe for a terminal: control characters (escape
/// sequences, carriage returns, NUL) are shown as `\x1b`-style escapes, never sent raw.
/// Newlines and tabs stay.
pub fn printable(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.to_owned();
    }
    s.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => format!("\\x{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The unfinished dependencies of each task, for marking tasks as waiting.
pub fn waiting_on(tasks: &[Task]) -> BTreeMap<TaskId, Vec<TaskId>> {
    let status: BTreeMap<TaskId, TaskStatus> = tasks.iter().map(|t| (t.id, t.status)).collect();
    tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Backlog)
        .map(|t| {
            let w: Vec<TaskId> = t
                .depends_on
                .iter()
                .copied()
                .filter(|d| status.get(d) != Some(&TaskStatus::Done))
                .collect();
            (t.id, w)
        })
        .filter(|(_, w)| !w.is_empty())
        .collect()
}

fn ids(v: &[TaskId]) -> String {
    v.iter()
        .map(|d| format!("#{d}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cuts `s` to at most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Pads `s` with spaces to `width` characters.
pub fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

fn column_title(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Backlog => "BACKLOG",
        TaskStatus::InProgress => "IN PROGRESS",
        TaskStatus::Review => "REVIEW",
        TaskStatus::Done => "DONE",
        TaskStatus::Failed => "FAILED",
        TaskStatus::Blocked => "BLOCKED",
        TaskStatus::Canceled => "CANCELED",
    }
}

/// Board order: priority (highest first), then age.
pub fn board_order(tasks: &[Task]) -> Vec<&Task> {
    let mut v: Vec<&Task> = tasks.iter().collect();
    v.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    v
}

/// Narrower than this, columns stack vertically.
pub const WIDE_BOARD: usize = 120;

/// Renders the Kanban board for a terminal `width` columns wide.
pub fn render_board(
    tasks: &[Task],
    labels: &[String],
    usage: &TaskUsage,
    retrying: &Retrying,
    width: usize,
    keys: bool,
) -> String {
    let notes = CardNotes {
        waiting: waiting_on(tasks),
        retrying,
        usage,
        keys,
    };
    let mut ordered = board_order(tasks);
    ordered.retain(|t| has_labels(t, labels));
    if ordered.is_empty() && !tasks.is_empty() {
        return format!(
            "No task carries the label{} {}; `orch task list` shows every task.\n",
            if labels.len() == 1 { "" } else { "s" },
            labels.join(", ")
        );
    }
    let columns: Vec<(TaskStatus, Vec<&Task>)> = TaskStatus::ALL
        .iter()
        .map(|s| {
            (
                *s,
                ordered.iter().copied().filter(|t| t.status == *s).collect(),
            )
        })
        .collect();
    if tasks.is_empty() {
        return "The board is empty. Add a task with `orch task add TITLE`, or import a board file with `orch board import FILE`.\n".to_owned();
    }
    if width >= WIDE_BOARD {
        render_wide(&columns, &notes, width)
    } else {
        render_stacked(&columns, &notes, width.max(40))
    }
}

/// Whether `t` carries every one of `labels` (any task, when there are none).
pub fn has_labels(t: &Task, labels: &[String]) -> bool {
    labels.iter().all(|l| t.labels.contains(l))
}

/// Each task's agents' usage, summed over every run.
pub type TaskUsage = BTreeMap<TaskId, orch_engine::core::usage::Usage>;

/// Tasks whose retry waits for other tasks' work in flight, with those tasks.
pub type Retrying = BTreeMap<TaskId, Vec<TaskId>>;

/// What a card notes besides its title: its source's id, what it waits on, what it
/// has cost.
struct CardNotes<'a> {
    waiting: BTreeMap<TaskId, Vec<TaskId>>,
    retrying: &'a Retrying,
    usage: &'a TaskUsage,
    /// Whether each card shows its key (the board's source's id for the task).
    keys: bool,
}

fn card_note(t: &Task, notes: &CardNotes) -> String {
    let mut parts = Vec::new();
    if notes.keys {
        parts.push(t.key.clone());
    }
    if t.priority != 0 {
        parts.push(format!("p{}", t.priority));
    }
    if let Some(w) = notes.waiting.get(&t.id) {
        parts.push(format!("waiting on {}", ids(w)));
    }
    if let Some(w) = notes.retrying.get(&t.id) {
        parts.push(format!("retry waits for {}", ids(w)));
    }
    if let Some(u) = notes.usage.get(&t.id) {
        parts.push(match u.cost {
            Some(c) => c.to_string(),
            None => format!("{} tok", orch_engine::core::usage::thousands(u.tokens())),
        });
    }
    parts.join(" · ")
}

fn render_stacked(columns: &[(TaskStatus, Vec<&Task>)], notes: &CardNotes, width: usize) -> String {
    let id_w = columns
        .iter()
        .flat_map(|(_, ts)| ts.iter().map(|t| t.id.to_string().len() + 1))
        .max()
        .unwrap_or(2);
    let mut out = String::new();
    let mut empty = Vec::new();
    for (status, ts) in columns {
        if ts.is_empty() {
            empty.push(status.as_str());
            continue;
        }
        out.push_str(&format!("{} ({})\n", column_title(*status), ts.len()));
        for t in ts {
            let id = pad(&format!("#{}", t.id), id_w);
            let note = card_note(t, notes);
            // "  #id  title  note"
            let room = width.saturating_sub(2 + id_w + 2);
            let line = if note.is_empty() {
                truncate(&printable(&t.title), room)
            } else {
                let title_room = room.saturating_sub(note.chars().count() + 2).max(12);
                truncate(
                    &format!("{}  {note}", truncate(&printable(&t.title), title_room)),
                    room,
                )
            };
            out.push_str(&format!("  {id}  {}\n", line.trim_end()));
        }
        out.push('\n');
    }
    if !empty.is_empty() {
        out.push_str(&format!("empty: {}\n", empty.join(", ")));
    } else {
        out.pop();
    }
    out
}

fn render_wide(columns: &[(TaskStatus, Vec<&Task>)], notes: &CardNotes, width: usize) -> String {
    const GAP: usize = 2;
    let n = columns.len();
    let col_w = (width - GAP * (n - 1)) / n;
    let cells: Vec<Vec<String>> = columns
        .iter()
        .map(|(status, ts)| {
            let mut c = vec![
                format!("{} ({})", column_title(*status), ts.len()),
                "─".repeat(col_w),
            ];
            for t in ts {
                c.push(truncate(
                    &format!("#{} {}", t.id, printable(&t.title)),
                    col_w,
                ));
                let note = card_note(t, notes);
                if !note.is_empty() {
                    c.push(truncate(&format!("  {note}"), col_w));
                }
            }
            c
        })
        .collect();
    let rows = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = String::new();
    for r in 0..rows {
        let line: Vec<String> = cells
            .iter()
            .map(|c| pad(c.get(r).map(String::as_str).unwrap_or(""), col_w))
            .collect();
        out.push_str(line.join(&" ".repeat(GAP)).trim_end());
        out.push('\n');
    }
    out
}

/// `task list` as a table.
pub fn render_task_table(tasks: &[Task], waiting: &BTreeMap<TaskId, Vec<TaskId>>) -> String {
    if tasks.is_empty() {
        return "No tasks.\n".to_owned();
    }
    let rows: Vec<[String; 5]> = tasks
        .iter()
        .map(|t| {
            let mut status = t.status.to_string();
            if waiting.contains_key(&t.id) {
                status.push_str(" (waiting)");
            }
            [
                format!("#{}", t.id),
                status,
                t.priority.to_string(),
                ids(&t.depends_on),
                printable(&t.title),
            ]
        })
        .collect();
    let head = ["ID", "STATUS", "PRI", "AFTER", "TITLE"];
    let w: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in std::iter::once(head.map(String::from)).chain(rows) {
        let line = format!(
            "{}  {}  {:>pw$}  {}  {}",
            pad(&r[0], w[0]),
            pad(&r[1], w[1]),
            r[2],
            pad(&r[3], w[3]),
            r[4],
            pw = w[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `task show` for people.
pub fn render_task(t: &Task, board: &[Task], events: &[Event]) -> String {
    let by_id: BTreeMap<TaskId, &Task> = board.iter().map(|t| (t.id, t)).collect();
    let waiting = waiting_on(board);
    let mut s = format!("#{} {}\n", t.id, printable(&t.title));
    let status = match waiting.get(&t.id) {
        Some(w) => format!("{} (waiting on {})", t.status, ids(w)),
        None => t.status.to_string(),
    };
    let deps: Vec<String> = t
        .depends_on
        .iter()
        .map(|d| match by_id.get(d) {
            Some(x) => format!("#{d} {} ({})", x.title, x.status),
            None => format!("#{d}"),
        })
        .collect();
    let dependents: Vec<String> = board
        .iter()
        .filter(|x| x.depends_on.contains(&t.id))
        .map(|x| format!("#{} {}", x.id, x.title))
        .collect();
    let field = |s: &mut String, name: &str, v: String| {
        if !v.is_empty() {
            s.push_str(&format!("  {:<11} {v}\n", format!("{name}:")));
        }
    };
    field(&mut s, "key", t.key.clone());
    field(&mut s, "status", status);
    field(&mut s, "priority", t.priority.to_string());
    field(&mut s, "after", deps.join("; "));
    field(&mut s, "needed by", dependents.join("; "));
    field(&mut s, "labels", t.labels.join(", "));
    field(&mut s, "touches", t.touches.join(", "));
    if let Some(u) = usage_of(events) {
        field(&mut s, "used", describe_usage(&u));
    }
    field(&mut s, "created", t.created_at.to_string());
    field(&mut s, "updated", t.updated_at.to_string());
    if !t.body.is_empty() {
        s.push('\n');
        for l in printable(&t.body).lines() {
            s.push_str(&format!("  {l}\n"));
        }
    }
    s.push_str("\nHistory:\n");
    // Columns as wide as their widest entry, so long kinds and actors stay aligned.
    let kind_w = events
        .iter()
        .map(|e| e.kind.chars().count())
        .max()
        .unwrap_or(0)
        .max(14);
    let actor_w = events
        .iter()
        .map(|e| e.actor.chars().count())
        .max()
        .unwrap_or(0)
        .max(16);
    for e in events {
        let what = match (e.payload["from"].as_str(), e.payload["to"].as_str()) {
            // A run's own moves say where from and to in their reason already.
            (Some(from), Some(to)) if !e.reason.starts_with(&format!("{from} -> {to}")) => {
                format!("{from} -> {to}: {}", e.reason)
            }
            _ => e.reason.clone(),
        };
        s.push_str(&format!(
            "  {}  {:<kind_w$} {:<actor_w$} {}\n",
            e.at,
            e.kind,
            e.actor,
            printable(&what)
        ));
    }
    s
}

/// Every attempt's usage among `events` (the `attempt.usage` entries), summed; `None`
/// when none reported any.
pub fn usage_of(events: &[Event]) -> Option<orch_engine::core::usage::Usage> {
    use orch_engine::core::run::RunEvent;
    let mut total: Option<orch_engine::core::usage::Usage> = None;
    for e in events.iter().filter(|e| e.kind == "attempt.usage") {
        if let Ok(RunEvent::AttemptUsage { usage, .. }) = serde_json::from_value(e.payload.clone())
        {
            total.get_or_insert_with(Default::default).add(&usage);
        }
    }
    if let Some(t) = &mut total {
        t.session_id = None;
    }
    total
}

/// An attempt's usage for people: `1,234 tokens (1,000 in, 200 out, 34 cached),
/// $0.0125, 3 turns; claude-x; session 5e55…`.
pub fn describe_usage(u: &orch_engine::core::usage::Usage) -> String {
    use orch_engine::core::usage::thousands;
    let mut s = format!(
        "{} tokens ({} in, {} out, {} cached)",
        thousands(u.tokens()),
        thousands(u.input_tokens),
        thousands(u.output_tokens),
        thousands(u.cache_read_tokens + u.cache_write_tokens)
    );
    if let Some(c) = u.cost {
        s.push_str(&format!(", {c}"));
    }
    if u.turns > 0 {
        s.push_str(&format!(", {} turns", u.turns));
    }
    if !u.model.is_empty() {
        s.push_str(&format!("; {}", printable(&u.model)));
    }
    if let Some(id) = &u.session_id {
        s.push_str(&format!("; session {}", printable(id)));
    }
    if !u.denied_tools.is_empty() {
        s.push_str(&format!(
            "; denied: {}",
            printable(&u.denied_tools.join(", "))
        ));
    }
    s
}

/// One preset's preflight for people.
pub fn render_agent_check(c: &orch_engine::agents::AgentCheck) -> String {
    let mut s = format!(
        "{}: {}\n",
        c.preset,
        if c.ok() { "ok" } else { "cannot run" }
    );
    let path = c
        .path
        .as_ref()
        .map_or("not on PATH".to_owned(), |p| p.display().to_string());
    if c.preset == "custom" {
        // A custom command: only its program can be checked.
        let path = if c.ok() && c.path.is_none() {
            "a shell builtin".to_owned()
        } else {
            path
        };
        s.push_str(&format!("  program:    {} ({path})\n", c.binary));
        for p in &c.problems {
            s.push_str(&format!("  fix:        {p}\n"));
        }
        return s;
    }
    s.push_str(&format!("  binary:     {} ({path})\n", c.binary));
    s.push_str(&format!(
        "  version:    {} (checked at {})\n",
        c.version.as_deref().unwrap_or("unknown"),
        c.checked
    ));
    if c.path.is_some() {
        let flags = if c.missing_flags.is_empty() {
            "every flag the preset uses is accepted".to_owned()
        } else {
            format!("missing {}", c.missing_flags.join(", "))
        };
        s.push_str(&format!("  flags:      {flags}\n"));
    }
    s.push_str(&format!(
        "  credential: {}\n",
        c.credential.as_deref().unwrap_or("none found")
    ));
    for p in &c.problems {
        s.push_str(&format!("  fix:        {p}\n"));
    }
    s
}
