//! Commit messages people can read: a task's commit is titled with the task, a merge
//! says which task it brings in, and both carry trailers (`Orch-Task`, `Orch-Run`,
//! `Orch-Attempt`, `Co-authored-by` for a preset's agent) that tools and `orch status`
//! read back.

use orch_core::Task;
use orch_core::config::{MergeStyle, RunConfig};
use orch_core::run::{AttemptId, RunId};

/// The trailer that names a commit's task (its board key).
pub const TASK_TRAILER: &str = "Orch-Task";

/// What a commit message is about.
pub(crate) struct Subject<'a> {
    pub(crate) run: &'a RunId,
    pub(crate) attempt: AttemptId,
    /// The task as last read; `None` if it left the board.
    pub(crate) task: Option<&'a Task>,
    /// The preset agent's `Co-authored-by` value, if the agent is a preset.
    pub(crate) co_author: Option<&'a str>,
}

impl Subject<'_> {
    fn key(&self) -> String {
        self.task
            .map(|t| t.key.clone())
            .unwrap_or_else(|| format!("task-{}", self.attempt.task))
    }

    fn title(&self) -> String {
        self.task
            .map(|t| t.title.trim().to_owned())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| self.key())
    }

    fn trailers(&self, co_author: bool) -> String {
        let mut t = format!(
            "{TASK_TRAILER}: {}\nOrch-Run: {}\nOrch-Attempt: {}",
            self.key(),
            self.run,
            self.attempt
        );
        if let (true, Some(a)) = (co_author, self.co_author) {
            t.push_str(&format!("\nCo-authored-by: {a}"));
        }
        t
    }
}

/// The message of the commit orch makes of an agent's work: `run.commit_template`
/// (default: the task's title), then the trailers.
pub(crate) fn task_commit(cfg: &RunConfig, s: &Subject<'_>) -> String {
    let head = match cfg.commit_template.trim() {
        "" => s.title(),
        template => {
            let body = s.task.map(|t| t.body.trim().to_owned()).unwrap_or_default();
            crate::agents::prompt::fill(
                template,
                &[
                    ("{title}", s.title()),
                    ("{body}", body),
                    ("{key}", s.key()),
                    ("{task_id}", s.attempt.task.to_string()),
                    ("{run}", s.run.to_string()),
                    ("{attempt}", s.attempt.to_string()),
                ],
            )
            .trim()
            .to_owned()
        }
    };
    format!("{head}\n\n{}\n", s.trailers(true))
}

/// The message of the commit that brings a task into the integration line: a merge
/// names the task; a squash is the task's one commit, so it reads like one.
pub(crate) fn merge_commit(style: MergeStyle, s: &Subject<'_>) -> String {
    match style {
        MergeStyle::Merge => format!(
            "Merge {}: {}\n\n{}\n",
            s.key(),
            s.title(),
            s.trailers(false)
        ),
        MergeStyle::Squash => {
            let body = s.task.map(|t| t.body.trim()).unwrap_or("");
            let body = if body.is_empty() {
                String::new()
            } else {
                format!("{body}\n\n")
            };
            format!(
                "{} ({})\n\n{body}{}\n",
                s.title(),
                s.key(),
                s.trailers(true)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::TaskId;

    fn task() -> Task {
        Task {
            id: TaskId(2),
            key: "add-login".into(),
            title: "Add a login page".into(),
            body: "With a form.".into(),
            status: orch_core::TaskStatus::InProgress,
            priority: 0,
            depends_on: vec![],
            labels: vec![],
            touches: vec![],
            review: None,
            created_at: orch_core::Timestamp(0),
            updated_at: orch_core::Timestamp(0),
        }
    }

    #[test]
    fn messages_name_the_task_and_carry_trailers() {
        let (t, run) = (task(), RunId("r1".into()));
        let s = Subject {
            run: &run,
            attempt: AttemptId {
                task: TaskId(2),
                number: 1,
            },
            task: Some(&t),
            co_author: Some("Claude <noreply@anthropic.com>"),
        };
        let cfg = RunConfig::default();
        assert_eq!(
            task_commit(&cfg, &s),
            "Add a login page\n\nOrch-Task: add-login\nOrch-Run: r1\nOrch-Attempt: task-2-1\nCo-authored-by: Claude <noreply@anthropic.com>\n"
        );
        assert!(
            merge_commit(MergeStyle::Merge, &s)
                .starts_with("Merge add-login: Add a login page\n\nOrch-Task: add-login\n")
        );
        assert!(
            merge_commit(MergeStyle::Squash, &s)
                .starts_with("Add a login page (add-login)\n\nWith a form.\n\nOrch-Task:")
        );
        let cfg = RunConfig {
            commit_template: "feat: {title}\n\n{body}".into(),
            ..RunConfig::default()
        };
        assert!(
            task_commit(&cfg, &s)
                .starts_with("feat: Add a login page\n\nWith a form.\n\nOrch-Task: add-login\n")
        );
    }
}
