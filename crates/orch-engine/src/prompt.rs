//! The agent's prompt and command line.

use orch_core::Task;
use orch_core::run::FailureKind;

/// Quotes a value for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Fills a command template: `{prompt_file}`, `{worktree}`, `{task_id}` and
/// `{attempt}` become shell-quoted values.
pub fn render_command(
    template: &str,
    prompt_file: &str,
    worktree: &str,
    task_id: i64,
    attempt: u32,
) -> String {
    // Each value is quoted exactly once and never scanned for placeholders again, so a
    // path holding `{worktree}` or `$(...)` stays a path.
    fill(
        template,
        &[
            ("{prompt_file}", shell_quote(prompt_file)),
            ("{worktree}", shell_quote(worktree)),
            ("{task_id}", task_id.to_string()),
            ("{attempt}", attempt.to_string()),
        ],
    )
}

/// Fills `template` in one pass: each placeholder is replaced by its value, and what a
/// value holds is never filled again. Unknown `{...}` stay as they are.
fn fill(template: &str, values: &[(&str, String)]) -> String {
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

/// The built-in prompt: the task, the gates its work must pass, and on a retry why the
/// last attempt failed.
pub fn render_prompt(
    task: &Task,
    worker: &[String],
    integration: &[String],
    note: Option<&str>,
    previous: Option<&FailureKind>,
) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "  (none)\n".to_owned()
        } else {
            v.iter().map(|c| format!("  $ {c}\n")).collect()
        }
    };
    let mut s = format!("# Task #{}: {}\n\n", task.id, task.title);
    if !task.body.is_empty() {
        s.push_str(&task.body);
        s.push_str("\n\n");
    }
    s.push_str("## Done means\n\nWork in this directory. When you exit, orch commits what you changed. It must pass\nthe worker validation, run here:\n");
    s.push_str(&list(worker));
    s.push_str("and, after it is merged with the other tasks' work, the integration validation:\n");
    s.push_str(&list(integration));
    if let Some(n) = note {
        s.push_str(&format!("\n## Note from the planner\n\n{n}\n"));
    }
    if let Some(f) = previous {
        s.push_str("\n## The previous attempt failed\n\n");
        match f {
            FailureKind::Conflict { paths } => s.push_str(&format!(
                "Its work conflicted with work merged meanwhile, in: {}. You start from the\nnew integration head; redo the task on top of it.\n",
                paths.join(", ")
            )),
            FailureKind::WorkerValidation { summary } | FailureKind::IntegrationValidation { summary } => {
                s.push_str(summary);
                s.push('\n');
            }
            other => s.push_str(&format!("{other}\n")),
        }
    }
    s
}

/// Fills a user's prompt template: `{task_id}`, `{title}`, `{body}`,
/// `{worker_validation}`, `{integration_validation}` (one command per line), `{note}` and
/// `{previous_failure}` (both empty when there is none). Other braces are left alone.
pub fn render_template(
    template: &str,
    task: &Task,
    worker: &[String],
    integration: &[String],
    note: Option<&str>,
    previous: Option<&FailureKind>,
) -> String {
    let previous = previous
        .map(|f| match f {
            FailureKind::WorkerValidation { summary }
            | FailureKind::IntegrationValidation { summary } => summary.clone(),
            FailureKind::Conflict { paths } => format!("conflict in: {}", paths.join(", ")),
            other => other.to_string(),
        })
        .unwrap_or_default();
    fill(
        template,
        &[
            ("{task_id}", task.id.to_string()),
            ("{title}", task.title.clone()),
            ("{body}", task.body.clone()),
            ("{worker_validation}", worker.join("\n")),
            ("{integration_validation}", integration.join("\n")),
            ("{note}", note.unwrap_or("").to_owned()),
            ("{previous_failure}", previous),
        ],
    )
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
            created_at: orch_core::Timestamp(0),
            updated_at: orch_core::Timestamp(0),
        };
        let out = render_template(
            "#{task_id} {title}: {body}\nchecks:\n{worker_validation}\nlast time: {previous_failure}{note} {unknown}",
            &task,
            &["cargo test".into(), "cargo clippy".into()],
            &[],
            None,
            Some(&FailureKind::Conflict {
                paths: vec!["a.rs".into()],
            }),
        );
        assert_eq!(
            out,
            "#4 Parse: the grammar\nchecks:\ncargo test\ncargo clippy\nlast time: conflict in: a.rs {unknown}"
        );
    }

    #[test]
    fn renders_quoted_commands() {
        assert_eq!(
            render_command(
                "agent --prompt {prompt_file} --cwd {worktree} --id {task_id}-{attempt}",
                "/tmp/p q.md",
                "/w/it's",
                3,
                2
            ),
            "agent --prompt '/tmp/p q.md' --cwd '/w/it'\\''s' --id 3-2"
        );
    }

    /// A value holding a placeholder or a command substitution is filled once, quoted.
    #[test]
    fn a_value_is_never_filled_twice() {
        let out = render_command(
            "agent {prompt_file} {worktree}",
            "/data/$(touch pwned)/{worktree}/p.md",
            "/repo/{prompt_file}",
            1,
            1,
        );
        assert_eq!(
            out,
            "agent '/data/$(touch pwned)/{worktree}/p.md' '/repo/{prompt_file}'"
        );
    }
}
