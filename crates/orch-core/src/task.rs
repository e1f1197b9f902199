//! Tasks: the cards on the board, with validated fields.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A task's id, assigned by the store. Ids are positive and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub i64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TaskId {
    type Err = FieldError;

    /// Accepts `12` or `#12`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('#').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(n) if n > 0 => Ok(TaskId(n)),
            _ => Err(FieldError::new(
                "task id",
                s,
                "a positive whole number, such as 12 or #12",
            )),
        }
    }
}

/// A task's status: the board column it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting to be claimed.
    Backlog,
    /// Claimed by a run; an attempt is live.
    InProgress,
    /// Its work passed its worker gate and waits for a person (`[review]`).
    Review,
    /// Merged into the integration branch after every gate passed.
    Done,
    /// Out of attempts.
    Failed,
    /// Set aside, by a person or by the conflict policy.
    Blocked,
    /// Will not be done.
    Canceled,
}

impl TaskStatus {
    /// Every status, in board-column order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Backlog,
        TaskStatus::InProgress,
        TaskStatus::Review,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Blocked,
        TaskStatus::Canceled,
    ];

    /// The name used in the CLI, the database and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Backlog => "backlog",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Review => "review",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Canceled => "canceled",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = FieldError;

    /// Accepts the canonical names, and `in-progress` as a spelling of `in_progress`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == norm)
            .ok_or_else(|| {
                FieldError::new(
                    "status",
                    s,
                    "one of backlog, in_progress, review, done, failed, blocked, canceled",
                )
            })
    }
}

/// A bad value for a task field, naming the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: expected {allowed}")]
pub struct FieldError {
    /// The field, e.g. `title`.
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub allowed: &'static str,
}

impl FieldError {
    /// Builds an error for `field` with the rejected `value`.
    pub fn new(field: &'static str, value: &str, allowed: &'static str) -> Self {
        FieldError {
            field,
            value: value.to_owned(),
            allowed,
        }
    }
}

/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Checks a task title: non-empty after trimming, one line, no control characters
/// (NUL, escape sequences, carriage returns), at most [`MAX_TITLE_CHARS`].
pub fn validate_title(title: &str) -> Result<String, FieldError> {
    let t = title.trim();
    if t.is_empty() || t.chars().any(char::is_control) || t.chars().count() > MAX_TITLE_CHARS {
        return Err(FieldError::new(
            "title",
            title,
            "one non-empty line of at most 200 characters, with no control characters",
        ));
    }
    Ok(t.to_owned())
}

/// Checks a task body: any text but a NUL byte, which no agent or prompt file takes.
pub fn validate_body(body: &str) -> Result<(), FieldError> {
    if body.contains('\0') {
        return Err(FieldError::new("body", body, "text with no NUL byte"));
    }
    Ok(())
}

/// Checks a board key: 1–64 characters of `a-z A-Z 0-9 - _ .`, starting with a letter or digit.
pub fn validate_key(key: &str) -> Result<(), FieldError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "key",
            key,
            "1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit",
        ))
    }
}

/// Checks a label: 1–40 characters, no whitespace or commas.
pub fn validate_label(label: &str) -> Result<(), FieldError> {
    let ok = !label.is_empty()
        && label.chars().count() <= 40
        && !label
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "label",
            label,
            "1-40 characters with no spaces, commas or control characters",
        ))
    }
}

/// Checks a `touches` glob: a relative path pattern inside the repository, using `*`,
/// `**`, `?` and `[...]`. Absolute paths, `..` components, empty patterns and
/// unbalanced brackets are rejected.
pub fn validate_touches(glob: &str) -> Result<(), FieldError> {
    const ALLOWED: &str = "a relative path glob inside the repository (using *, **, ? or [...]), \
                           with no leading '/', no '..' and balanced brackets";
    let bad = glob.trim().is_empty()
        || glob.chars().any(char::is_control)
        || glob.starts_with('/')
        || glob.contains('\\')
        || glob.split('/').any(|c| c == "..")
        || !brackets_balanced(glob);
    if bad {
        Err(FieldError::new("touches glob", glob, ALLOWED))
    } else {
        Ok(())
    }
}

fn brackets_balanced(glob: &str) -> bool {
    let mut open = false;
    for c in glob.chars() {
        match (c, open) {
            ('[', false) => open = true,
            ('[', true) => return false,
            (']', true) => open = false,
            (']', false) => return false,
            _ => {}
        }
    }
    !open
}

/// A task as stored on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The store-assigned id.
    pub id: TaskId,
    /// A stable key, unique on the board, used by board files (default `task-<id>`).
    pub key: String,
    /// One-line title.
    pub title: String,
    /// Free-form description handed to the agent.
    pub body: String,
    /// Current column.
    pub status: TaskStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Tasks that must be `done` before this one is claimable, sorted by id.
    pub depends_on: Vec<TaskId>,
    /// Free-form labels, sorted.
    pub labels: Vec<String>,
    /// Globs of the paths this task expects to change.
    pub touches: Vec<String>,
    /// Its review, while one is under way (`[review]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Box<crate::review::Review>>,
    /// When the task was created.
    pub created_at: Timestamp,
    /// When the task last changed.
    pub updated_at: Timestamp,
}

/// The fields of a task to be created. Validate with [`NewTask::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTask {
    /// Optional board key; the store assigns `task-<id>` when absent.
    pub key: Option<String>,
    /// One-line title.
    pub title: String,
    /// Description.
    pub body: String,
    /// Higher runs first.
    pub priority: i32,
    /// Dependencies.
    pub depends_on: Vec<TaskId>,
    /// Labels.
    pub labels: Vec<String>,
    /// Touched-path globs.
    pub touches: Vec<String>,
}

impl NewTask {
    /// A task with `title` and nothing else set.
    pub fn titled(title: impl Into<String>) -> NewTask {
        NewTask {
            title: title.into(),
            ..NewTask::default()
        }
    }

    /// Validates and normalises every field: trims the title, sorts and dedups the lists.
    pub fn validate(mut self) -> Result<NewTask, FieldError> {
        self.title = validate_title(&self.title)?;
        validate_body(&self.body)?;
        if let Some(k) = &self.key {
            validate_key(k)?;
        }
        for l in &self.labels {
            validate_label(l)?;
        }
        for t in &self.touches {
            validate_touches(t)?;
        }
        normalise(&mut self.labels);
        normalise(&mut self.touches);
        self.depends_on.sort();
        self.depends_on.dedup();
        Ok(self)
    }
}

/// A change to a task's editable fields. `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskEdit {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// New priority.
    pub priority: Option<i32>,
    /// Dependencies to add.
    pub add_deps: Vec<TaskId>,
    /// Dependencies to remove.
    pub remove_deps: Vec<TaskId>,
    /// Labels to add.
    pub add_labels: Vec<String>,
    /// Labels to remove.
    pub remove_labels: Vec<String>,
    /// Touches globs to add.
    pub add_touches: Vec<String>,
    /// Touches globs to remove.
    pub remove_touches: Vec<String>,
}

impl TaskEdit {
    /// True when the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == TaskEdit::default()
    }

    /// Applies the edit to `task` (not its dependencies, which the caller checks for
    /// cycles), validating every new value. Returns the names of the fields that changed.
    pub fn apply(&self, task: &mut Task) -> Result<Vec<&'static str>, FieldError> {
        let mut changed = Vec::new();
        if let Some(t) = &self.title {
            let t = validate_title(t)?;
            if t != task.title {
                task.title = t;
                changed.push("title");
            }
        }
        if let Some(b) = &self.body
            && *b != task.body
        {
            validate_body(b)?;
            task.body = b.clone();
            changed.push("body");
        }
        if let Some(p) = self.priority
            && p != task.priority
        {
            task.priority = p;
            changed.push("priority");
        }
        for l in &self.add_labels {
            validate_label(l)?;
        }
        for t in &self.add_touches {
            validate_touches(t)?;
        }
        if edit_list(&mut task.labels, &self.add_labels, &self.remove_labels) {
            changed.push("labels");
        }
        if edit_list(&mut task.touches, &self.add_touches, &self.remove_touches) {
            changed.push("touches");
        }
        let before = task.depends_on.clone();
        task.depends_on.retain(|d| !self.remove_deps.contains(d));
        task.depends_on.extend(self.add_deps.iter().copied());
        task.depends_on.sort();
        task.depends_on.dedup();
        if task.depends_on != before {
            changed.push("depends_on");
        }
        Ok(changed)
    }
}

fn edit_list(list: &mut Vec<String>, add: &[String], remove: &[String]) -> bool {
    let before = list.clone();
    list.retain(|x| !remove.contains(x));
    list.extend(add.iter().cloned());
    normalise(list);
    *list != before
}

fn normalise(list: &mut Vec<String>) {
    list.sort();
    list.dedup();
}

/// The tasks (keys) a task's body says it may undo: each `Reverts: KEY, KEY` line
/// (what `orch task add --reverts` and a board file's `reverts = [...]` write).
pub fn declared_reverts(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| {
            let (head, rest) = l.trim().split_once(':')?;
            head.trim().eq_ignore_ascii_case("reverts").then_some(rest)
        })
        .flat_map(|rest| rest.split([',', ' ']))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `body` with a `Reverts: KEY, KEY` line for those of `keys` it does not declare yet.
pub fn with_reverts(body: &str, keys: &[String]) -> String {
    let declared = declared_reverts(body);
    let new: Vec<&str> = keys
        .iter()
        .filter(|k| !declared.contains(k))
        .map(String::as_str)
        .collect();
    if new.is_empty() {
        return body.to_owned();
    }
    let line = format!("Reverts: {}", new.join(", "));
    match body.trim_end() {
        "" => line,
        text => format!("{text}\n\n{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_declares_the_tasks_it_reverts_once() {
        let body = with_reverts("Undo the cache.\n", &["add-cache".to_owned()]);
        assert_eq!(body, "Undo the cache.\n\nReverts: add-cache");
        assert_eq!(with_reverts(&body, &["add-cache".to_owned()]), body);
        let both = with_reverts(&body, &["add-cache".to_owned(), "task-3".to_owned()]);
        assert_eq!(declared_reverts(&both), ["add-cache", "task-3"]);
        assert_eq!(with_reverts("", &["a".to_owned()]), "Reverts: a");
        assert!(declared_reverts("It reverts nothing: see above.").is_empty());
    }

    #[test]
    fn parses_ids_and_statuses() {
        assert_eq!("#12".parse::<TaskId>(), Ok(TaskId(12)));
        assert!("0".parse::<TaskId>().is_err());
        assert!("x".parse::<TaskId>().is_err());
        assert_eq!(
            "in-progress".parse::<TaskStatus>(),
            Ok(TaskStatus::InProgress)
        );
        let err = "doing".parse::<TaskStatus>().unwrap_err();
        assert!(err.to_string().contains("one of backlog"), "{err}");
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn validates_fields() {
        assert!(validate_title("  ").is_err());
        assert!(validate_title("a\nb").is_err());
        assert!(validate_title("a\0b").is_err());
        assert!(validate_title("red \x1b[31mtitle").is_err());
        assert!(validate_title("a\rb").is_err());
        assert!(validate_body("a\0b").is_err());
        assert!(validate_body("line one\nline two\t").is_ok());
        assert!(validate_label("a\x07").is_err());
        assert_eq!(validate_title(" Fix it ").unwrap(), "Fix it");
        assert!(validate_key("parser-2.0").is_ok());
        assert!(validate_key("-x").is_err());
        assert!(validate_key("a b").is_err());
        assert!(validate_label("needs review").is_err());
        assert!(validate_touches("src/**/*.rs").is_ok());
        assert!(validate_touches("src/[ab].rs").is_ok());
        for bad in ["/etc/passwd", "../x", "src/../x", "", "src/[ab.rs", "a]b"] {
            assert!(validate_touches(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn edit_reports_changed_fields() {
        let mut t = Task {
            id: TaskId(1),
            key: "task-1".into(),
            title: "A".into(),
            body: String::new(),
            status: TaskStatus::Backlog,
            priority: 0,
            depends_on: vec![TaskId(3)],
            labels: vec!["x".into()],
            touches: vec![],
            review: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let edit = TaskEdit {
            title: Some("A".into()),
            priority: Some(5),
            add_labels: vec!["y".into(), "x".into()],
            remove_deps: vec![TaskId(3)],
            ..TaskEdit::default()
        };
        assert_eq!(
            edit.apply(&mut t).unwrap(),
            vec!["priority", "labels", "depends_on"]
        );
        assert_eq!(t.labels, vec!["x", "y"]);
        assert!(t.depends_on.is_empty());
    }
}
