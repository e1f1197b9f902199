//! Backlog.md: one markdown file per task under `backlog/tasks/`, with YAML front
//! matter (id, title, status, labels, dependencies, priority) and sections the
//! `backlog` CLI marks with HTML comments. orch reads the front matter and the
//! sections, and writes a status and a note back the way the CLI does: the `status:`
//! line replaced, the note appended to `## Implementation Notes`. Nothing else in the
//! file changes.

use serde_norway::{Mapping, Value};

use super::model::{SourceError, SourceTask, Statuses, priority_of};

/// Front-matter fields orch keeps for its own bookkeeping without showing them.
const QUIET: &[&str] = &["created_date", "updated_date", "ordinal"];
/// Front-matter fields orch maps to its own.
const MAPPED: &[&str] = &[
    "id",
    "title",
    "status",
    "labels",
    "dependencies",
    "priority",
];
/// Sections that hold what was done, not what to do: not part of the agent's brief.
const AFTERWARDS: &[&str] = &["Implementation Notes", "Final Summary"];

/// The statuses of a Backlog.md project, from its `config.yml` (`None`: the defaults,
/// `To Do`, `In Progress`, `Done`).
pub fn statuses(config: Option<(&str, &str)>) -> Result<Statuses, SourceError> {
    let mut list = vec![
        "To Do".to_owned(),
        "In Progress".to_owned(),
        "Done".to_owned(),
    ];
    let mut default = None;
    if let Some((file, text)) = config {
        let map: Mapping = serde_norway::from_str(text).map_err(|e| yaml_error(file, 0, &e))?;
        if let Some(Value::Sequence(s)) = map.get("statuses") {
            let names: Vec<String> = s
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if names.len() >= 2 {
                list = names;
            }
        }
        default = map
            .get("default_status")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    let todo = default.unwrap_or_else(|| list[0].clone());
    let done = list.last().expect("at least two statuses").clone();
    let in_progress = list
        .iter()
        .find(|s| s.eq_ignore_ascii_case("In Progress"))
        .or_else(|| list.iter().find(|s| **s != todo && **s != done))
        .unwrap_or(&todo)
        .clone();
    let blocked = list
        .iter()
        .find(|s| s.eq_ignore_ascii_case("Blocked"))
        .cloned();
    Ok(Statuses {
        todo,
        in_progress,
        done,
        review: None,
        blocked,
        canceled: None,
        held: Vec::new(),
    })
}

/// Reads one task file (`file` is its path, for errors).
pub fn parse(file: &str, text: &str) -> Result<SourceTask, SourceError> {
    let (front, body) = split(file, text)?;
    let map: Mapping = serde_norway::from_str(front).map_err(|e| yaml_error(file, 1, &e))?;
    let text_of = |key: &str| -> Result<Option<String>, SourceError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(SourceError::at(
                file,
                field_line(front, key),
                format!("`{key}` must be text"),
            )),
        }
    };
    let list_of = |key: &str| -> Result<Vec<String>, SourceError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(s)) => s
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(SourceError::at(
                        file,
                        field_line(front, key),
                        format!("`{key}` must be a list of text"),
                    )),
                })
                .collect(),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(_) => Err(SourceError::at(
                file,
                field_line(front, key),
                format!("`{key}` must be a list"),
            )),
        }
    };
    let key = text_of("id")?.ok_or_else(|| {
        SourceError::at(
            file,
            2,
            "no `id` in the front matter: each task file needs one, such as `id: TASK-1`",
        )
    })?;
    let title = text_of("title")?
        .ok_or_else(|| SourceError::at(file, 2, format!("task {key} has no `title`")))?;
    let status = text_of("status")?.unwrap_or_default();
    let priority = match text_of("priority")? {
        None => 0,
        Some(p) => priority_of(&p).ok_or_else(|| {
            SourceError::at(
                file,
                field_line(front, "priority"),
                format!("priority {p:?} of {key}: allowed: high, medium, low"),
            )
        })?,
    };
    let mut shown = brief(body);
    let extra = extra_fields(&map);
    if !extra.is_empty() {
        shown.push_str("\n\n## Other fields (Backlog.md)\n\n");
        shown.push_str(&extra);
    }
    Ok(SourceTask {
        key,
        title,
        body: shown.trim().to_owned(),
        priority,
        after: list_of("dependencies")?,
        labels: list_of("labels")?,
        status,
        file: file.to_owned(),
        line: 1,
        children: Vec::new(),
    })
}

/// The file with its `status:` set to `status` and `note` appended to its
/// implementation notes; every other byte as it was.
pub fn edit(
    file: &str,
    text: &str,
    status: &str,
    note: Option<&str>,
) -> Result<String, SourceError> {
    let (front, _) = split(file, text)?;
    let start = text
        .find(front)
        .expect("the front matter is a slice of the text");
    let end = start + front.len();
    let value = yaml_scalar(status);
    let mut found = false;
    let mut new_front = String::with_capacity(front.len() + 16);
    for line in front.split_inclusive('\n') {
        if !found && line.starts_with("status:") {
            found = true;
            let eol = if line.ends_with("\r\n") {
                "\r\n"
            } else if line.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            new_front.push_str(&format!("status: {value}{eol}"));
        } else {
            new_front.push_str(line);
        }
    }
    if !found {
        if !new_front.is_empty() && !new_front.ends_with('\n') {
            new_front.push('\n');
        }
        new_front.push_str(&format!("status: {value}\n"));
    }
    let mut out = format!("{}{}{}", &text[..start], new_front, &text[end..]);
    if let Some(note) = note {
        out = with_note(&out, note);
    }
    Ok(out)
}

/// The task's status as the file says it now (for compare-and-swap).
pub fn status_in(file: &str, text: &str) -> Result<String, SourceError> {
    parse(file, text).map(|t| t.status)
}

fn with_note(text: &str, note: &str) -> String {
    const END: &str = "<!-- SECTION:NOTES:END -->";
    if let Some(at) = text.find(END) {
        let before = &text[..at];
        // As `backlog task edit --append-notes` does: a blank line between notes.
        let sep = if before.ends_with("-->\n") { "" } else { "\n" };
        return format!("{before}{sep}{note}\n{}", &text[at..]);
    }
    let sep = if text.ends_with('\n') { "" } else { "\n" };
    format!("{text}{sep}\n## Implementation Notes\n\n<!-- SECTION:NOTES:BEGIN -->\n{note}\n{END}\n")
}

/// Splits a task file into its front matter and the rest.
fn split<'a>(file: &str, text: &'a str) -> Result<(&'a str, &'a str), SourceError> {
    let no_front = || {
        SourceError::at(
            file,
            1,
            "no front matter: a Backlog.md task file starts with a line `---`, its fields, and another `---`",
        )
    };
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or_else(no_front)?;
    let mut at = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            let front = &rest[..at];
            let body = &rest[at + line.len()..];
            return Ok((front, body));
        }
        at += line.len();
    }
    Err(no_front())
}

/// The agent's brief: the sections before the work, without the CLI's markers.
fn brief(body: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in body.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            skipping = AFTERWARDS.contains(&title.trim());
        }
        let marker = line.trim_start().starts_with("<!--") && line.trim_end().ends_with("-->");
        if !skipping && !marker {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The front matter's fields orch does not map, as YAML, in their order.
fn extra_fields(map: &Mapping) -> String {
    let mut out = String::new();
    for (k, v) in map {
        let Some(k) = k.as_str() else { continue };
        if MAPPED.contains(&k) || QUIET.contains(&k) {
            continue;
        }
        let empty = matches!(v, Value::Null)
            || matches!(v, Value::Sequence(s) if s.is_empty())
            || matches!(v, Value::String(s) if s.is_empty());
        if empty {
            continue;
        }
        let shown = serde_norway::to_string(v).unwrap_or_default();
        out.push_str(&format!("- {k}: {}\n", shown.trim().replace('\n', " ")));
    }
    out
}

/// A status as a YAML scalar: plain when that reads back the same, else quoted.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        && !s.starts_with([' ', '-'])
        && !s.ends_with(' ');
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn field_line(front: &str, key: &str) -> usize {
    front
        .lines()
        .position(|l| l.starts_with(&format!("{key}:")))
        .map(|i| i + 2)
        .unwrap_or(1)
}

fn yaml_error(file: &str, offset: usize, e: &serde_norway::Error) -> SourceError {
    let line = e.location().map(|l| l.line() + offset).unwrap_or(1);
    let why = e.to_string();
    let why = why.split(" at line ").next().unwrap_or(&why).to_owned();
    SourceError::at(
        file,
        line,
        format!("the front matter is not valid YAML: {why}"),
    )
}
