//! A person's decision on work in review, and what it does to the task: decided here
//! as data, applied by the store in one transaction with its `review.*` event.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::state::{Review, Verdict};
use crate::config::{ReviewConfig, ReviewRequired};
use crate::task::{FieldError, TaskId, TaskStatus};

impl ReviewConfig {
    /// Whether a task with `labels` waits for a person after its worker gate.
    pub fn needs(&self, labels: &[String]) -> bool {
        match self.required {
            ReviewRequired::None => false,
            ReviewRequired::All => true,
            ReviewRequired::Labels => labels.iter().any(|l| self.labels.contains(l)),
        }
    }
}

/// A comment on one line of the reviewed work (`--at path:line TEXT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The file, relative to the repository.
    pub path: String,
    /// The line, from 1, in the reviewed head's version of the file.
    pub line: u32,
    /// What the person says.
    pub text: String,
}

impl Comment {
    /// Parses `path:line` and its text: a relative path with no `..`, a line from 1,
    /// and some text.
    pub fn parse(at: &str, text: &str) -> Result<Comment, FieldError> {
        const ALLOWED: &str = "PATH:LINE, a relative path in the repository and a line number from 1 (such as src/lib.rs:12), followed by the comment's text";
        let bad = || FieldError::new("comment location", at, ALLOWED);
        let (path, line) = at.rsplit_once(':').ok_or_else(bad)?;
        let line: u32 = line.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        let path = path.trim();
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|c| c == "..")
            || path.chars().any(char::is_control)
        {
            return Err(bad());
        }
        if text.trim().is_empty() {
            return Err(FieldError::new(
                "comment",
                text,
                "some text saying what to change",
            ));
        }
        Ok(Comment {
            path: path.to_owned(),
            line,
            text: text.trim().to_owned(),
        })
    }
}

/// A person's decision on a task in review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The work lands as it is, through the integration gate.
    Approve {
        /// An optional remark.
        text: String,
    },
    /// A new round: the agent is told what to change.
    Changes {
        /// What to change, in general.
        text: String,
        /// Comments on lines.
        comments: Vec<Comment>,
    },
    /// The work is thrown away.
    Reject {
        /// Why.
        text: String,
        /// The task goes back to the backlog for a fresh start, not to `failed`.
        again: bool,
    },
}

impl Decision {
    /// The decision a `review.*` event of the audit log records, if it records one.
    pub fn recorded_in(payload: &serde_json::Value) -> Option<Decision> {
        serde_json::from_value(payload.get("decision")?.clone()).ok()
    }

    /// What the person said in general (empty when nothing).
    pub fn text(&self) -> &str {
        match self {
            Decision::Approve { text }
            | Decision::Changes { text, .. }
            | Decision::Reject { text, .. } => text,
        }
    }

    /// Its line comments (none but for changes).
    pub fn comments(&self) -> &[Comment] {
        match self {
            Decision::Changes { comments, .. } => comments,
            _ => &[],
        }
    }

    /// The audit log's kind for it: `review.approved`, `review.changes`,
    /// `review.rejected`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Approve { .. } => crate::event::kind::REVIEW_APPROVED,
            Decision::Changes { .. } => crate::event::kind::REVIEW_CHANGES,
            Decision::Reject { .. } => crate::event::kind::REVIEW_REJECTED,
        }
    }
}

/// What a decision does to its task: where it goes and its review after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The task's column after.
    pub status: TaskStatus,
    /// Its review after (`None`: the review is over).
    pub review: Option<Review>,
    /// In words, for the audit log and the person.
    pub reason: String,
}

/// Why a decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewRefused {
    /// The task is not waiting for a review.
    #[error(
        "task {task} is {status}, not in review: only a task in review can be approved, sent back or rejected (`orch review` lists them)"
    )]
    NotInReview {
        /// The task.
        task: TaskId,
        /// Where it is.
        status: TaskStatus,
    },
    /// The task was approved already.
    #[error("task {0} is approved already: the next run lands it (`orch run`)")]
    Approved(TaskId),
    /// Changes with nothing said, or a rejection with no reason.
    #[error("{0}")]
    NoText(&'static str),
}

/// Decides what `decision` does to `task`, in `status` with `review`. `feedback` is
/// the text a new round's agent gets (see [`feedback`]); `max_rounds` is
/// `review.max_rounds`: a request for changes past it sends the task back to review
/// with a note, and no agent runs.
pub fn decide(
    task: TaskId,
    status: TaskStatus,
    review: Option<&Review>,
    decision: &Decision,
    feedback: String,
    max_rounds: u32,
) -> Result<Decided, ReviewRefused> {
    let r = match review {
        Some(r) if status == TaskStatus::Review => r,
        _ => return Err(ReviewRefused::NotInReview { task, status }),
    };
    if r.verdict == Verdict::Approved {
        return Err(ReviewRefused::Approved(task));
    }
    let with = |verdict: Verdict, note: Option<String>| Review {
        verdict,
        note,
        ..r.clone()
    };
    Ok(match decision {
        Decision::Approve { .. } => Decided {
            status: TaskStatus::Review,
            review: Some(with(Verdict::Approved, None)),
            reason: format!(
                "approved round {}: the next claim integrates {}",
                r.round,
                r.work.head.short()
            ),
        },
        Decision::Changes { text, comments } if text.trim().is_empty() && comments.is_empty() => {
            return Err(ReviewRefused::NoText(
                "say what to change: -m TEXT, --file F, or --at PATH:LINE TEXT",
            ));
        }
        Decision::Changes { .. } if r.round >= max_rounds => {
            let note = format!(
                "review.max_rounds ({max_rounds}) reached: no agent round follows; approve it, reject it (--again for a fresh start), or raise review.max_rounds"
            );
            Decided {
                status: TaskStatus::Review,
                review: Some(with(Verdict::Pending, Some(note.clone()))),
                reason: format!("changes asked for on round {}; {note}", r.round),
            }
        }
        Decision::Changes { .. } => Decided {
            status: TaskStatus::Backlog,
            review: Some(with(Verdict::Changes { feedback }, None)),
            reason: format!(
                "changes asked for on round {}: round {} resumes the agent with them",
                r.round,
                r.round + 1
            ),
        },
        Decision::Reject { text, .. } if text.trim().is_empty() => {
            return Err(ReviewRefused::NoText("say why it is rejected: -m TEXT"));
        }
        Decision::Reject { text, again } => Decided {
            status: if *again {
                TaskStatus::Backlog
            } else {
                TaskStatus::Failed
            },
            review: None,
            reason: match again {
                true => format!(
                    "rejected round {}, to start again: {}",
                    r.round,
                    text.trim()
                ),
                false => format!("rejected round {}: {}", r.round, text.trim()),
            },
        },
    })
}

/// The feedback for a new round's prompt: the general text, then each comment with
/// the line it points at quoted (`lines[i]` is comment `i`'s line in the reviewed
/// head, `None` when the file or line is not there).
pub fn feedback(round: u32, text: &str, comments: &[Comment], lines: &[Option<String>]) -> String {
    let mut out = format!("A reviewer asked for changes to round {round} of your work.\n");
    if !text.trim().is_empty() {
        let _ = write!(out, "\n{}\n", text.trim());
    }
    if !comments.is_empty() {
        out.push_str("\nComments on lines:\n");
    }
    for (i, c) in comments.iter().enumerate() {
        let _ = writeln!(out, "\n{}:{}: {}", c.path, c.line, c.text);
        match lines.get(i).cloned().flatten() {
            Some(l) => {
                let _ = writeln!(out, "    > {}", l.trim_end());
            }
            None => out.push_str("    (that line is not in the reviewed version)\n"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::ReviewWork;
    use crate::run::{CommitId, RunId};

    fn work() -> ReviewWork {
        ReviewWork {
            run: RunId("r1".into()),
            attempt: 1,
            branch: "orch/r1/task-1-1".into(),
            base: CommitId("a".repeat(40)),
            head: CommitId("b".repeat(40)),
            session: Some("s1".into()),
        }
    }

    fn changes(text: &str) -> Decision {
        Decision::Changes {
            text: text.into(),
            comments: vec![],
        }
    }

    #[test]
    fn decisions_move_the_task_and_keep_the_work() {
        let t = TaskId(1);
        let r = Review::pending(1, work());
        let a = decide(
            t,
            TaskStatus::Review,
            Some(&r),
            &Decision::Approve {
                text: String::new(),
            },
            String::new(),
            3,
        )
        .unwrap();
        assert_eq!(a.status, TaskStatus::Review);
        assert!(a.review.as_ref().unwrap().approved());
        assert_eq!(
            decide(
                t,
                TaskStatus::Review,
                a.review.as_ref(),
                &changes("x"),
                "f".into(),
                3
            ),
            Err(ReviewRefused::Approved(t))
        );
        let c = decide(
            t,
            TaskStatus::Review,
            Some(&r),
            &changes("x"),
            "fb".into(),
            3,
        )
        .unwrap();
        assert_eq!(c.status, TaskStatus::Backlog);
        assert_eq!(c.review.as_ref().unwrap().feedback(), Some("fb"));
        assert_eq!(Review::next_round(c.review.as_ref()), 2);
        let rej = Decision::Reject {
            text: "no".into(),
            again: false,
        };
        let j = decide(t, TaskStatus::Review, Some(&r), &rej, String::new(), 3).unwrap();
        assert_eq!((j.status, j.review), (TaskStatus::Failed, None));
        let again = Decision::Reject {
            text: "no".into(),
            again: true,
        };
        assert_eq!(
            decide(t, TaskStatus::Review, Some(&r), &again, String::new(), 3)
                .unwrap()
                .status,
            TaskStatus::Backlog
        );
    }

    #[test]
    fn the_round_cap_sends_the_task_back_to_review_with_a_note() {
        let r = Review::pending(3, work());
        let d = decide(
            TaskId(1),
            TaskStatus::Review,
            Some(&r),
            &changes("x"),
            "fb".into(),
            3,
        )
        .unwrap();
        assert_eq!(d.status, TaskStatus::Review);
        let after = d.review.unwrap();
        assert_eq!(after.verdict, Verdict::Pending);
        assert!(after.note.unwrap().contains("review.max_rounds (3)"));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let r = Review::pending(1, work());
        let e = decide(
            TaskId(4),
            TaskStatus::Backlog,
            Some(&r),
            &changes("x"),
            String::new(),
            3,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("task 4 is backlog, not in review"),
            "{e}"
        );
        let e = decide(
            TaskId(4),
            TaskStatus::Review,
            Some(&r),
            &changes(" "),
            String::new(),
            3,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--at PATH:LINE"), "{e}");
        let rej = Decision::Reject {
            text: String::new(),
            again: false,
        };
        assert!(
            decide(
                TaskId(4),
                TaskStatus::Review,
                Some(&r),
                &rej,
                String::new(),
                3
            )
            .is_err()
        );
    }

    #[test]
    fn comments_parse_and_quote_their_lines() {
        let c = Comment::parse("src/lib.rs:12", " rename it ").unwrap();
        assert_eq!(
            (c.path.as_str(), c.line, c.text.as_str()),
            ("src/lib.rs", 12, "rename it")
        );
        for bad in [
            "src/lib.rs",
            "src/lib.rs:0",
            "/etc/passwd:1",
            "../x:2",
            ":3",
        ] {
            let e = Comment::parse(bad, "t").unwrap_err();
            assert!(e.to_string().contains("PATH:LINE"), "{bad}: {e}");
        }
        assert!(Comment::parse("a:1", " ").is_err());
        let text = feedback(
            1,
            "Tidy up.",
            &[c.clone(), Comment { line: 99, ..c }],
            &[Some("fn lex() {".into()), None],
        );
        assert!(text.contains("round 1"), "{text}");
        assert!(text.contains("Tidy up."), "{text}");
        assert!(
            text.contains("src/lib.rs:12: rename it\n    > fn lex() {"),
            "{text}"
        );
        assert!(
            text.contains("src/lib.rs:99: rename it\n    (that line is not"),
            "{text}"
        );
    }

    #[test]
    fn labels_decide_who_needs_review() {
        let mut c = ReviewConfig::default();
        assert!(!c.needs(&["security".into()]));
        c.required = ReviewRequired::All;
        assert!(c.needs(&[]));
        c.required = ReviewRequired::Labels;
        c.labels = vec!["security".into()];
        assert!(c.needs(&["docs".into(), "security".into()]));
        assert!(!c.needs(&["docs".into()]));
    }
}
