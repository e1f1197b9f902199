//! The agent's prompt and command line.

use orch_core::Task;
use orch_core::run::FailureKind;

/// Quotes a value for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The values a command template is filled with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandValues {
    /// The prompt file.
    pub prompt_file: String,
    /// The attempt's worktree.
    pub worktree: String,
    /// The attempt's artifact directory.
    pub artifacts: String,
    /// The task.
    pub task_id: i64,
    /// The attempt number.
    pub attempt: u32,
    /// The session a retry resumes, if it does.
    pub session_id: Option<String>,
    /// The worker gate commands, which the agent may run itself.
    pub gates: Vec<String>,
}

/// Fills a command template: `{prompt_file}`, `{worktree}`, `{artifacts}`,
/// `{task_id}`, `{attempt}` and `{session_id}` become shell-quoted values; with a
/// preset, `{resume}` and `{allowed_tools}` become its fragments (or nothing).
pub fn render_command(
    template: &str,
    preset: Option<&crate::agents::presets::PresetSpec>,
    v: &CommandValues,
) -> String {
    let session = v.session_id.as_deref().map(shell_quote);
    let resume = match (preset.and_then(|p| p.resume), &session) {
        (Some(r), Some(s)) => fill(r, &[("{session_id}", s.clone())]),
        _ => String::new(),
    };
    let allowed = match preset.and_then(|p| p.allow) {
        Some(a) if !v.gates.is_empty() => {
            let rules: Vec<String> = v
                .gates
                .iter()
                .flat_map(|g| [format!("Bash({g})"), format!("Bash({g}:*)")])
                .map(|r| shell_quote(&r))
                .collect();
            fill(a, &[("{tools}", rules.join(" "))])
        }
        _ => String::new(),
    };
    // Each value is quoted exactly once and never scanned for placeholders again, so a
    // path holding `{worktree}` or `$(...)` stays a path.
    fill(
        template,
        &[
            ("{prompt_file}", shell_quote(&v.prompt_file)),
            ("{worktree}", shell_quote(&v.worktree)),
            ("{artifacts}", shell_quote(&v.artifacts)),
            ("{task_id}", v.task_id.to_string()),
            ("{attempt}", v.attempt.to_string()),
            ("{session_id}", session.unwrap_or_default()),
            ("{resume}", resume),
            ("{allowed_tools}", allowed),
        ],
    )
}

/// Fills `template` in one pass: each placeholder is replaced by its value, and what a
/// value holds is never filled again. Unknown `{...}` stay as they are.
pub(crate) fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match values.iter().find(|(k, _)| rest.starts_with(k)) {
            Some((k, v)) => {
                out.push_str(v);
                rest = &rest[k.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a retry is told besides why the last attempt failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryContext {
    /// What landed on the line since the last attempt's base, oldest first: each
    /// landing's tasks (`#3 Add the parser`, or the key of one no longer on the
    /// board) and the files it changed.
    pub landed: Vec<orch_core::ports::Landing>,
    /// Where the agent works now, said when it resumes a session whose history
    /// names another directory.
    pub workdir: Option<String>,
}

/// The most files named per landing.
const FILES_NAMED: usize = 10;

impl RetryContext {
    /// The sections it adds to a prompt (empty when it says nothing).
    pub fn words(&self) -> String {
        let mut s = String::new();
        if !self.landed.is_empty() {
            s.push_str("## What landed since the last attempt\n\nThe integration line moved on, and you start from it. Keep these changes:\n");
            for orch_core::ports::Landing { tasks, files } in &self.landed {
                let mut named: Vec<&str> =
                    files.iter().take(FILES_NAMED).map(String::as_str).collect();
                let more = files.len().saturating_sub(FILES_NAMED);
                let extra = format!("{more} more");
                if more > 0 {
                    named.push(&extra);
                }
                s.push_str(&format!("- {} ({})\n", tasks.join(", "), named.join(", ")));
            }
        }
        if let Some(dir) = &self.workdir {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(&format!(
                "## Where you work now\n\nYou resume an earlier session, but you now work in {dir}. The directory named earlier in this session is gone: read and write only here.\n"
            ));
        }
        s
    }
}

/// Everything an agent's prompt is made of.
#[derive(Debug, Clone, Copy)]
pub struct Prompt<'a> {
    /// The task.
    pub task: &'a Task,
    /// The worker gate's commands.
    pub worker: &'a [String],
    /// The integration gate's commands.
    pub integration: &'a [String],
    /// A planner's note.
    pub note: Option<&'a str>,
    /// A reviewer's requested changes (a new review round).
    pub review: Option<&'a str>,
    /// Why the previous attempt failed.
    pub previous: Option<&'a FailureKind>,
    /// What a retry is told besides.
    pub retry: &'a RetryContext,
}

impl Prompt<'_> {
    /// The built-in prompt: the task, the gates its work must pass, and on a retry why
    /// the last attempt failed, what landed since, and where it works.
    pub fn render(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "  (none)\n".to_owned()
            } else {
                v.iter().map(|c| format!("  $ {c}\n")).collect()
            }
        };
        let task = self.task;
        let mut s = format!("# Task #{}: {}\n\n", task.id, task.title);
        if !task.body.is_empty() {
            s.push_str(&task.body);
            s.push_str("\n\n");
        }
        s.push_str("## Done means\n\nWork in this directory. When you exit, orch commits what you changed. It must pass\nthe worker validation, run here:\n");
        s.push_str(&list(self.worker));
        s.push_str(
            "and, after it is merged with the other tasks' work, the integration validation:\n",
        );
        s.push_str(&list(self.integration));
        if let Some(n) = self.note {
            s.push_str(&format!("\n## Note from the planner\n\n{n}\n"));
        }
        if let Some(r) = self.review {
            s.push_str(&format!(
                "\n## Review\n\n{r}\nChange your work as the reviewer asks, starting from the files as they are now.\n"
            ));
        }
        if let Some(f) = self.previous {
            s.push_str("\n## The previous attempt failed\n\n");
            match f {
                FailureKind::Conflict { paths } => s.push_str(&format!(
                    "Its work conflicted with work merged meanwhile, in: {}. You start from the\nnew integration head; redo the task on top of it.\n",
                    paths.join(", ")
                )),
                FailureKind::WorkerValidation { summary }
                | FailureKind::IntegrationValidation { summary } => {
                    s.push_str(summary);
                    s.push('\n');
                }
                FailureKind::RevertsLandedWork { undone } => {
                    s.push_str("Its change undid work other tasks had already landed. Keep that work:\n");
                    for u in undone {
                        s.push_str(&format!("- {u}\n"));
                    }
                    s.push_str("Start from the files as they are now and change only what your task needs; if it needs those lines changed, change them into something new, not back to what they were. If undoing that work is what your task asks for, do it again, and it lands.\n");
                }
                other => s.push_str(&format!("{other}\n")),
            }
        }
        let retry = self.retry.words();
        if !retry.is_empty() {
            s.push('\n');
            s.push_str(&retry);
        }
        s
    }

    /// Fills a user's prompt template: `{task_id}`, `{title}`, `{body}`,
    /// `{worker_validation}`, `{integration_validation}` (one command per line),
    /// `{note}`, `{review}` (a reviewer's requested changes), `{previous_failure}` and
    /// `{since_last_attempt}` (what landed since, and where it works now; each empty
    /// when there is none). Other braces are left alone.
    pub fn render_template(&self, template: &str) -> String {
        let previous = self
            .previous
            .map(|f| match f {
                FailureKind::WorkerValidation { summary }
                | FailureKind::IntegrationValidation { summary } => summary.clone(),
                FailureKind::Conflict { paths } => format!("conflict in: {}", paths.join(", ")),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let task = self.task;
        fill(
            template,
            &[
                ("{task_id}", task.id.to_string()),
                ("{title}", task.title.clone()),
                ("{body}", task.body.clone()),
                ("{worker_validation}", self.worker.join("\n")),
                ("{integration_validation}", self.integration.join("\n")),
                ("{note}", self.note.unwrap_or("").to_owned()),
                ("{review}", self.review.unwrap_or("").to_owned()),
                ("{previous_failure}", previous),
                ("{since_last_attempt}", self.retry.words()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_user_template() {
        let task = Task {
            id: orch_core::TaskId(4),
            key: "k".into(),
            title: "Parse".into(),
            body: "the grammar".into(),
            status: orch_core::TaskStatus::InProgress,
            priority: 0,
            depends_on: vec![],
            labels: vec![],
            touches: vec![],
            review: None,
            created_at: orch_core::Timestamp(0),
            updated_at: orch_core::Timestamp(0),
        };
        let failure = FailureKind::Conflict {
            paths: vec!["a.rs".into()],
        };
        let prompt = Prompt {
            task: &task,
            worker: &["cargo test".into(), "cargo clippy".into()],
            integration: &[],
            note: None,
            review: Some("rename it"),
            previous: Some(&failure),
            retry: &RetryContext::default(),
        };
        let out = prompt.render_template(
            "#{task_id} {title}: {body}\nchecks:\n{worker_validation}\nlast time: {previous_failure}{note} {unknown}\n{review}",
        );
        assert_eq!(
            out,
            "#4 Parse: the grammar\nchecks:\ncargo test\ncargo clippy\nlast time: conflict in: a.rs {unknown}\nrename it"
        );
        assert!(prompt.render().contains("## Review\n\nrename it\n"));
    }

    fn values(prompt: &str, worktree: &str, task_id: i64, attempt: u32) -> CommandValues {
        CommandValues {
            prompt_file: prompt.into(),
            worktree: worktree.into(),
            task_id,
            attempt,
            ..CommandValues::default()
        }
    }

    #[test]
    fn renders_quoted_commands() {
        assert_eq!(
            render_command(
                "agent --prompt {prompt_file} --cwd {worktree} --id {task_id}-{attempt}",
                None,
                &values("/tmp/p q.md", "/w/it's", 3, 2)
            ),
            "agent --prompt '/tmp/p q.md' --cwd '/w/it'\\''s' --id 3-2"
        );
    }

    /// A value holding a placeholder or a command substitution is filled once, quoted.
    #[test]
    fn a_value_is_never_filled_twice() {
        let out = render_command(
            "agent {prompt_file} {worktree}",
            None,
            &values(
                "/data/$(touch pwned)/{worktree}/p.md",
                "/repo/{prompt_file}",
                1,
                1,
            ),
        );
        assert_eq!(
            out,
            "agent '/data/$(touch pwned)/{worktree}/p.md' '/repo/{prompt_file}'"
        );
    }

    /// What each preset runs, with the placeholders filled in.
    #[test]
    fn rendered_command_lines() {
        let mut out = String::new();
        for p in crate::agents::presets::ALL {
            let v = CommandValues {
                prompt_file: "/data/art/r1/3/2/prompt.md".into(),
                worktree: "/data/wt/r1/task-3-2".into(),
                artifacts: "/data/art/r1/3/2".into(),
                task_id: 3,
                attempt: 2,
                session_id: Some("5e55-10n".into()),
                gates: vec!["cargo test".into()],
            };
            let line = render_command(p.command, Some(p), &v);
            out.push_str(&format!("{}: {line}\n", p.preset));
        }
        assert_eq!(
            crate::agents::presets::template(orch_core::config::Preset::None),
            None
        );
        insta::assert_snapshot!(out);
    }
}
