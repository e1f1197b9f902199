//! Taskmaster: `.taskmaster/tasks/tasks.json`, tasks under a tag (`master`) with ids,
//! dependencies, priority, description, details, a test strategy, status and
//! subtasks. A task with subtasks is not run itself: its subtasks are, each keyed
//! `PARENT.SUB`, waiting for what their parent waits for and for the siblings they
//! name; what waits for the parent waits for all of them. orch writes a status by
//! replacing that one JSON string, and a note by appending to `details` in
//! Taskmaster's own `<info added on …>` form. Every other byte stays.

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::common::Range;
use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};

use super::model::{SourceError, SourceTask, Statuses, line_of, priority_of};

/// Task fields orch maps to its own.
const MAPPED: &[&str] = &[
    "id",
    "title",
    "description",
    "details",
    "testStrategy",
    "status",
    "dependencies",
    "priority",
    "subtasks",
];
/// Fields kept for Taskmaster's bookkeeping, not shown.
const QUIET: &[&str] = &["updatedAt", "createdAt", "parentId"];

/// Taskmaster's statuses.
pub fn statuses() -> Statuses {
    Statuses {
        todo: "pending".into(),
        in_progress: "in-progress".into(),
        done: "done".into(),
        review: Some("review".into()),
        blocked: Some("blocked".into()),
        canceled: Some("cancelled".into()),
        held: vec!["deferred".into()],
    }
}

/// Reads the tasks of `tag` (or of a file from before tags, with `tasks` at its top).
pub fn parse(file: &str, text: &str, tag: &str) -> Result<Vec<SourceTask>, SourceError> {
    let root = root(file, text)?;
    let tasks = tasks_of(file, text, &root, tag)?;
    let mut out = Vec::new();
    for t in &tasks.elements {
        let Value::Object(o) = t else {
            return Err(at(file, text, t_range(t), "each task must be an object"));
        };
        let parent = read_task(file, text, o, None)?;
        let subs = match o.get("subtasks").map(|p| &p.value) {
            Some(Value::Array(a)) => a.elements.iter().collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let mut children = Vec::new();
        for s in subs {
            let Value::Object(so) = s else {
                return Err(at(file, text, t_range(s), "each subtask must be an object"));
            };
            let mut sub = read_task(file, text, so, Some(&parent.key))?;
            // A subtask waits for what its parent waits for, and for the siblings it
            // names by their number.
            sub.after = sub
                .after
                .iter()
                .map(|d| {
                    if d.contains('.') {
                        d.clone()
                    } else {
                        format!("{}.{d}", parent.key)
                    }
                })
                .chain(parent.after.iter().cloned())
                .collect();
            children.push(sub.key.clone());
            out.push(sub);
        }
        out.push(SourceTask { children, ..parent });
    }
    expand_containers(&mut out);
    Ok(out)
}

/// The file with the status of task `key` set to `status`, and `note` appended to its
/// details, stamped `stamp` (an RFC 3339 instant); every other byte as it was.
pub fn edit(
    file: &str,
    text: &str,
    tag: &str,
    key: &str,
    status: &str,
    note: Option<(&str, &str)>,
) -> Result<String, SourceError> {
    let root = root(file, text)?;
    let tasks = tasks_of(file, text, &root, tag)?;
    let o = find(&tasks.elements, key)
        .ok_or_else(|| SourceError::at(file, 1, format!("task {key} is no longer in the file")))?;
    let quoted = |s: &str| serde_json::to_string(s).expect("a string serializes");
    // Edits from the end of the file back, so each range still holds.
    let mut edits: Vec<(Range, String)> = Vec::new();
    match o.get("status") {
        Some(p) => edits.push((p.value_range(), quoted(status))),
        None => edits.push((
            Range {
                start: o.range.start + 1,
                end: o.range.start + 1,
            },
            format!("\"status\": {}, ", quoted(status)),
        )),
    }
    if let Some((note, stamp)) = note {
        let block = format!("<info added on {stamp}>\n{note}\n</info added on {stamp}>");
        match o.get("details").map(|p| (&p.value, p.value_range())) {
            Some((Value::StringLit(s), r)) => {
                let joined = if s.value.trim().is_empty() {
                    block
                } else {
                    format!("{}\n{block}", s.value)
                };
                edits.push((r, quoted(&joined)));
            }
            _ => edits.push((
                Range {
                    start: o.range.start + 1,
                    end: o.range.start + 1,
                },
                format!("\"details\": {}, ", quoted(&block)),
            )),
        }
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_owned();
    for (r, new) in edits {
        out.replace_range(r.start..r.end, &new);
    }
    Ok(out)
}

/// The status of task `key` as the file says it now (for compare-and-swap).
pub fn status_in(
    file: &str,
    text: &str,
    tag: &str,
    key: &str,
) -> Result<Option<String>, SourceError> {
    let root = root(file, text)?;
    let tasks = tasks_of(file, text, &root, tag)?;
    Ok(
        find(&tasks.elements, key)
            .and_then(|o| o.get_string("status").map(|s| s.value.to_string())),
    )
}

trait ValueRange {
    fn value_range(&self) -> Range;
}

impl ValueRange for jsonc_parser::ast::ObjectProp<'_> {
    fn value_range(&self) -> Range {
        t_range(&self.value)
    }
}

fn t_range(v: &Value<'_>) -> Range {
    match v {
        Value::StringLit(x) => x.range,
        Value::NumberLit(x) => x.range,
        Value::BooleanLit(x) => x.range,
        Value::Object(x) => x.range,
        Value::Array(x) => x.range,
        Value::NullKeyword(x) => x.range,
    }
}

fn root<'a>(file: &str, text: &'a str) -> Result<Value<'a>, SourceError> {
    let parsed =
        parse_to_ast(text, &CollectOptions::default(), &ParseOptions::default()).map_err(|e| {
            SourceError::at(
                file,
                e.line_display(),
                format!("not valid JSON: {}", e.kind()),
            )
        })?;
    parsed.value.ok_or_else(|| {
        SourceError::at(
            file,
            1,
            "the file is empty: Taskmaster's tasks.json holds an object",
        )
    })
}

fn tasks_of<'a, 'b>(
    file: &str,
    text: &str,
    root: &'b Value<'a>,
    tag: &str,
) -> Result<&'b jsonc_parser::ast::Array<'a>, SourceError> {
    let Value::Object(top) = root else {
        return Err(SourceError::at(
            file,
            1,
            "the file must hold an object, with a tag such as \"master\" holding \"tasks\"",
        ));
    };
    if let Some(a) = top.get_array("tasks") {
        return Ok(a);
    }
    let tags: Vec<&str> = top.properties.iter().map(|p| p.name.as_str()).collect();
    let holder = top.get_object(tag).ok_or_else(|| {
        at(
            file,
            text,
            top.range,
            format!(
                "no tag {tag:?} in the file; it has {}: set board.tag to one of them",
                tags.join(", ")
            ),
        )
    })?;
    holder.get_array("tasks").ok_or_else(|| {
        at(
            file,
            text,
            holder.range,
            format!("tag {tag:?} has no \"tasks\" list"),
        )
    })
}

fn find<'b, 'a>(tasks: &'b [Value<'a>], key: &str) -> Option<&'b Object<'a>> {
    let (top, sub) = match key.split_once('.') {
        Some((t, s)) => (t, Some(s)),
        None => (key, None),
    };
    let task = tasks.iter().find_map(|t| match t {
        Value::Object(o) if id_of(o).as_deref() == Some(top) => Some(o),
        _ => None,
    })?;
    let Some(sub) = sub else { return Some(task) };
    task.get_array("subtasks")?
        .elements
        .iter()
        .find_map(|s| match s {
            Value::Object(o) if id_of(o).as_deref() == Some(sub) => Some(o),
            _ => None,
        })
}

fn id_of(o: &Object<'_>) -> Option<String> {
    match &o.get("id")?.value {
        Value::StringLit(s) => Some(s.value.to_string()),
        Value::NumberLit(n) => Some(n.value.to_owned()),
        _ => None,
    }
}

fn read_task(
    file: &str,
    text: &str,
    o: &Object<'_>,
    parent: Option<&str>,
) -> Result<SourceTask, SourceError> {
    let line = line_of(text, o.range.start);
    let id = id_of(o)
        .ok_or_else(|| SourceError::at(file, line, "a task has no \"id\" (a number or text)"))?;
    let key = match parent {
        Some(p) => format!("{p}.{id}"),
        None => id,
    };
    let text_field = |name: &str| -> Result<String, SourceError> {
        match o.get(name).map(|p| &p.value) {
            None | Some(Value::NullKeyword(_)) => Ok(String::new()),
            Some(Value::StringLit(s)) => Ok(s.value.to_string()),
            Some(v) => Err(at(
                file,
                text,
                t_range(v),
                format!("\"{name}\" of task {key} must be text"),
            )),
        }
    };
    let title = text_field("title")?;
    if title.trim().is_empty() {
        return Err(SourceError::at(
            file,
            line,
            format!("task {key} has no \"title\""),
        ));
    }
    let priority = match text_field("priority")?.as_str() {
        "" => 0,
        p => priority_of(p).ok_or_else(|| {
            SourceError::at(
                file,
                line,
                format!("priority {p:?} of task {key}: allowed: high, medium, low"),
            )
        })?,
    };
    let after = match o.get("dependencies").map(|p| &p.value) {
        None | Some(Value::NullKeyword(_)) => Vec::new(),
        Some(Value::Array(a)) => a
            .elements
            .iter()
            .map(|d| match d {
                Value::NumberLit(n) => Ok(n.value.to_owned()),
                Value::StringLit(s) => Ok(s.value.to_string()),
                v => Err(at(
                    file,
                    text,
                    t_range(v),
                    format!("a dependency of task {key} must be an id"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => Err(at(
            file,
            text,
            t_range(v),
            format!("\"dependencies\" of task {key} must be a list"),
        ))?,
    };
    let mut body = text_field("description")?;
    for (name, heading) in [("details", "Details"), ("testStrategy", "Test strategy")] {
        let v = text_field(name)?;
        if !v.trim().is_empty() {
            body.push_str(&format!("\n\n## {heading}\n\n{}", v.trim()));
        }
    }
    body.push_str(&other_fields(text, o));
    let status = text_field("status")?;
    Ok(SourceTask {
        key,
        title,
        body: body.trim().to_owned(),
        priority,
        after,
        labels: Vec::new(),
        status,
        file: file.to_owned(),
        line,
        children: Vec::new(),
    })
}

/// The fields orch does not map, as written, for the end of the body.
fn other_fields(text: &str, o: &Object<'_>) -> String {
    let extra: Vec<String> = o
        .properties
        .iter()
        .filter(|p| !MAPPED.contains(&p.name.as_str()) && !QUIET.contains(&p.name.as_str()))
        .map(|p| {
            let r = t_range(&p.value);
            format!(
                "- {}: {}",
                p.name.as_str(),
                text[r.start..r.end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect();
    if extra.is_empty() {
        return String::new();
    }
    format!("\n\n## Other fields (Taskmaster)\n\n{}", extra.join("\n"))
}

/// What waits for a task with subtasks waits for every one of them.
fn expand_containers(tasks: &mut [SourceTask]) {
    let containers: std::collections::BTreeMap<String, Vec<String>> = tasks
        .iter()
        .filter(|t| !t.runnable())
        .map(|t| (t.key.clone(), t.children.clone()))
        .collect();
    for t in tasks.iter_mut() {
        let mut after = Vec::new();
        for d in &t.after {
            match containers.get(d) {
                Some(children) => after.extend(children.iter().cloned()),
                None => after.push(d.clone()),
            }
        }
        after.sort();
        after.dedup();
        t.after = after;
    }
}

fn at(file: &str, text: &str, r: Range, message: impl Into<String>) -> SourceError {
    SourceError::at(file, line_of(text, r.start), message)
}
