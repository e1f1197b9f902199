//! The words of a run's progress, shared by the live and the plain reporter: a task
//! reads `#5 Add parser`, an attempt `#5.2 Add parser`; a failure names its gate
//! command or the agent's exit, with at most five last lines of output; a retry says
//! which attempt it is, of how many, and on what.

use std::collections::HashMap;

use orch_engine::core::TaskId;
use orch_engine::core::TaskStatus;
use orch_engine::core::run::{AttemptId, AttemptState, FailureKind, RunEvent};
use orch_store::Store;

/// How a line reads at a glance (its colour on a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    /// Work that landed.
    Good,
    /// A failure.
    Bad,
    /// A retry, a block, a wait: attention, not alarm.
    Warn,
    /// Everything else.
    Plain,
}

/// One line of progress: a verb (`Claimed`, `Failed`), the rest, and the output lines
/// that explain a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub(super) verb: &'static str,
    pub(super) tone: Tone,
    pub(super) text: String,
    pub(super) tail: Vec<String>,
}

/// What the reporter knows besides the events: the tasks' titles, and how many
/// attempts count against a task.
pub(super) struct Words {
    store: Store,
    titles: HashMap<TaskId, String>,
    max_attempts: u32,
}

impl Words {
    pub(super) fn new(store: Store, max_attempts: u32) -> Words {
        Words {
            store,
            titles: HashMap::new(),
            max_attempts,
        }
    }

    /// Reads the board's titles again when `e` names a task not known yet (a task
    /// added during the run). A failed read leaves the ids bare.
    pub(super) async fn learn(&mut self, e: &RunEvent) {
        if let Some(t) = e.task()
            && !self.titles.contains_key(&t)
            && let Ok(tasks) = self.store.tasks(&[]).await
        {
            self.titles = tasks.into_iter().map(|t| (t.id, t.title)).collect();
        }
    }

    /// `#5 Add parser`.
    pub(super) fn task(&self, t: TaskId) -> String {
        match self.titles.get(&t) {
            Some(title) => format!("#{t} {}", crate::output::printable(title)),
            None => format!("#{t}"),
        }
    }

    /// `#5.2 Add parser`.
    pub(super) fn attempt(&self, a: AttemptId) -> String {
        match self.titles.get(&a.task) {
            Some(title) => format!(
                "#{}.{} {}",
                a.task,
                a.number,
                crate::output::printable(title)
            ),
            None => format!("#{}.{}", a.task, a.number),
        }
    }

    /// The line for `e`, or nothing for the quiet events.
    pub(super) fn line(&self, e: &RunEvent) -> Option<Line> {
        let line = |verb, tone, text: String| Line {
            verb,
            tone,
            text,
            tail: Vec::new(),
        };
        Some(match e {
            RunEvent::TaskMoved {
                task, to, reason, ..
            } => self.task_moved(*task, *to, reason),
            RunEvent::AttemptCreated { attempt, base, .. } if attempt.number > 1 => {
                let of = if attempt.number <= self.max_attempts {
                    format!("attempt {} of {}", attempt.number, self.max_attempts)
                } else {
                    format!(
                        "attempt {}; only failures that were the task's count against its {}",
                        attempt.number, self.max_attempts
                    )
                };
                let on: String = base.0.chars().take(12).collect();
                line(
                    "Retrying",
                    Tone::Warn,
                    format!("{} ({of}) on {on}", self.task(attempt.task)),
                )
            }
            RunEvent::AttemptMoved {
                attempt,
                to: AttemptState::Failed(kind),
                ..
            } => {
                let (what, tail) = failure(kind);
                Line {
                    verb: "Failed",
                    tone: Tone::Bad,
                    text: format!("{}: {what}", self.attempt(*attempt)),
                    tail,
                }
            }
            RunEvent::HeadAdvanced { attempt, to, .. } => {
                let at: String = to.0.chars().take(12).collect();
                line(
                    "Merged",
                    Tone::Good,
                    format!(
                        "{}; the integration line is at {at}",
                        self.attempt(*attempt)
                    ),
                )
            }
            RunEvent::Landed { .. } => line("Line", Tone::Good, ids(&e.reason())),
            RunEvent::RunMoved { .. } => line("Run", Tone::Plain, ids(&e.reason())),
            RunEvent::Shaped { .. } => line("Queue", Tone::Plain, ids(&e.reason())),
            RunEvent::RetryWaits { .. }
            | RunEvent::QuotaBreaker { .. }
            | RunEvent::BudgetSpent { .. }
            | RunEvent::Reverts { .. }
            | RunEvent::ClaimSkipped { .. }
            | RunEvent::TaskTaken { .. }
            | RunEvent::UserRefsMoved { .. }
            | RunEvent::ReportRefused { .. } => line("Note", Tone::Warn, ids(&e.reason())),
            RunEvent::Resumed { .. }
            | RunEvent::PlannerFallback { .. }
            | RunEvent::ClaimsPaused { .. }
            | RunEvent::GateReused { .. } => line("Note", Tone::Plain, ids(&e.reason())),
            RunEvent::CleanupDone { error: Some(_), .. } => {
                line("Note", Tone::Warn, ids(&e.reason()))
            }
            _ => return None,
        })
    }

    fn task_moved(&self, task: TaskId, to: TaskStatus, reason: &str) -> Line {
        let (verb, tone) = match to {
            TaskStatus::InProgress => ("Claimed", Tone::Plain),
            TaskStatus::Review => ("Review", Tone::Warn),
            TaskStatus::Done => ("Done", Tone::Good),
            TaskStatus::Failed => ("Failed", Tone::Bad),
            TaskStatus::Blocked => ("Blocked", Tone::Warn),
            TaskStatus::Canceled => ("Canceled", Tone::Warn),
            TaskStatus::Backlog => ("Released", Tone::Warn),
        };
        let why = match to {
            // Its attempt's lines said how; these say it again.
            TaskStatus::InProgress | TaskStatus::Done => String::new(),
            _ => format!(": {}", ids(reason)),
        };
        Line {
            verb,
            tone,
            text: format!("{}{why}", self.task(task)),
            tail: Vec::new(),
        }
    }
}

/// A failure as a headline and its last lines of output, printable on a terminal.
fn failure(kind: &FailureKind) -> (String, Vec<String>) {
    let e = kind.explain();
    let tail = e.tail.iter().map(|l| crate::output::printable(l)).collect();
    (ids(&e.headline), tail)
}

/// A line with every full commit id (40 hex digits) cut to its first 12, as people
/// read them.
pub(super) fn short_shas(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() == 40 && word.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str(&word[..12]);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A reason with the journal's attempt ids (`task-5-2`) as people read them (`#5.2`).
pub(super) fn ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("task-") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 5..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (t, tail) = after.split_at(digits(after));
        let parsed = tail
            .strip_prefix('-')
            .map(|n| n.split_at(digits(n)))
            .filter(|(n, _)| !t.is_empty() && !n.is_empty());
        let word_before = out.ends_with(|c: char| c.is_alphanumeric() || c == '/');
        match parsed {
            Some((n, tail)) if !word_before => {
                out.push_str(&format!("#{t}.{n}"));
                rest = tail;
            }
            _ => {
                out.push_str("task-");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    crate::output::printable(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_ids_read_as_people_read_them() {
        assert_eq!(
            ids("task-5-2 passed; task-12-1 failed"),
            "#5.2 passed; #12.1 failed"
        );
        // A branch keeps its name; a word that is not an id is left alone.
        assert_eq!(ids("orch/r1/task-5-2"), "orch/r1/task-5-2");
        assert_eq!(ids("task-x and task-5"), "task-x and task-5");
    }
}
