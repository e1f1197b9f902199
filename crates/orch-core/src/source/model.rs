//! A task as a board people already keep holds it, before it is an orch task: its
//! source id, fields, status as the source spells it, and where it is written.

use crate::TaskStatus;

/// One task read from a source's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTask {
    /// The source's id (`TASK-3`, `4.2`): orch's key for the task.
    pub key: String,
    /// One-line title.
    pub title: String,
    /// The work described: description, details, acceptance criteria, and the fields
    /// orch does not understand, shown as written.
    pub body: String,
    /// Higher runs first.
    pub priority: i32,
    /// Keys of the tasks this one waits for.
    pub after: Vec<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// The status as the source spells it.
    pub status: String,
    /// The file that holds it, relative to the repository.
    pub file: String,
    /// The line where it starts, from 1.
    pub line: usize,
    /// For a Taskmaster task with subtasks, their keys: such a task is not run
    /// itself, its subtasks are, and its status follows theirs.
    pub children: Vec<String>,
}

impl SourceTask {
    /// Whether orch runs it (it has no subtasks).
    pub fn runnable(&self) -> bool {
        self.children.is_empty()
    }
}

/// A source that does not parse or does not hold together, naming the file and line.
/// Nothing is changed when a source has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct SourceError {
    /// The file, relative to the repository.
    pub file: String,
    /// The line, from 1.
    pub line: usize,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl SourceError {
    /// An error at `file:line`.
    pub fn at(file: &str, line: usize, message: impl Into<String>) -> SourceError {
        SourceError {
            file: file.to_owned(),
            line: line.max(1),
            message: message.into(),
        }
    }
}

/// The source's statuses, both ways: what each means for orch, and how each orch
/// column is written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuses {
    /// Waiting to be done (Backlog.md's first status, `To Do`; Taskmaster's `pending`).
    pub todo: String,
    /// Being worked on.
    pub in_progress: String,
    /// Finished.
    pub done: String,
    /// Waiting for a person's review, when the source has such a status.
    pub review: Option<String>,
    /// Set aside, when the source has such a status.
    pub blocked: Option<String>,
    /// Will not be done, when the source has such a status.
    pub canceled: Option<String>,
    /// Other statuses that mean "set aside" (Taskmaster's `deferred`).
    pub held: Vec<String>,
}

impl Statuses {
    /// The orch column a status set by a person means. `In Progress` that orch did not
    /// write means someone else is on the task: orch leaves it alone (`blocked`), as it
    /// does any status it does not know.
    pub fn meaning(&self, status: &str) -> TaskStatus {
        let is = |s: &str| s.eq_ignore_ascii_case(status);
        if is(&self.todo) {
            TaskStatus::Backlog
        } else if is(&self.done) {
            TaskStatus::Done
        } else if self.canceled.as_deref().is_some_and(is) {
            TaskStatus::Canceled
        } else {
            TaskStatus::Blocked
        }
    }

    /// How an orch column is written in the source. Work that failed or was set aside
    /// stays not done: the source's `blocked` where it has one, else its first status.
    pub fn spelling(&self, column: TaskStatus) -> &str {
        match column {
            TaskStatus::Backlog | TaskStatus::Failed => &self.todo,
            TaskStatus::InProgress => &self.in_progress,
            TaskStatus::Review => self.review.as_deref().unwrap_or(&self.in_progress),
            TaskStatus::Done => &self.done,
            TaskStatus::Blocked => self.blocked.as_deref().unwrap_or(&self.todo),
            TaskStatus::Canceled => self.canceled.as_deref().unwrap_or(&self.todo),
        }
    }

    /// Whether the source's `status` already says what the orch column does.
    pub fn agrees(&self, status: &str, column: TaskStatus) -> bool {
        self.spelling(column).eq_ignore_ascii_case(status)
            || (column == TaskStatus::Blocked && self.meaning(status) == TaskStatus::Blocked)
    }
}

/// The priority orch gives a source's `high`, `medium` and `low` (higher runs first).
pub fn priority_of(word: &str) -> Option<i32> {
    match word.trim().to_ascii_lowercase().as_str() {
        "critical" | "urgent" => Some(40),
        "high" => Some(30),
        "medium" => Some(20),
        "low" => Some(10),
        _ => None,
    }
}

/// Line `n` (from 1) of the byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
