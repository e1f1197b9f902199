//! The script every API stand-in follows, written in the conversation's newest prompt,
//! one line a step: `stand-in: write PATH TEXT`, `stand-in: bash COMMAND`,
//! `stand-in: tokens N` (report N input tokens), `stand-in: hang` (wait before the
//! next answer); `stand-in: first-only ...` applies only to a first attempt, and
//! `stand-in: retry-only ...` only to a retry (a resumed session, or a prompt saying
//! why the last attempt failed or what a reviewer asked for).

/// One step of a script: a tool call the stand-in makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write `text` and a newline to `path`.
    Write { path: String, text: String },
    /// Run a shell command.
    Bash(String),
}

/// A prompt's script, as a first attempt or a retry reads it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    pub(crate) steps: Vec<Step>,
    /// Input tokens to report on each turn.
    pub(crate) tokens: u64,
    /// The step before which the stand-in hangs, if any.
    pub(crate) hang_after: Option<usize>,
}

/// Whether `prompt` starts a retry on its own (a new session told why).
pub(crate) fn says_retry(prompt: &str) -> bool {
    prompt.contains("The previous attempt failed") || prompt.contains("## Review")
}

/// The script in `prompt`, read as a retry or not.
pub(crate) fn parse(prompt: &str, retry: bool) -> Script {
    let mut s = Script {
        tokens: 100,
        ..Script::default()
    };
    for l in prompt.lines() {
        // opencode shows an attached file with line numbers (`3: stand-in: ...`).
        let Some(at) = l.find("stand-in: ") else {
            continue;
        };
        let rest = l[at + "stand-in: ".len()..].trim_end();
        let rest = match (
            rest.strip_prefix("first-only "),
            rest.strip_prefix("retry-only "),
        ) {
            (Some(_), _) if retry => continue,
            (_, Some(_)) if !retry => continue,
            (Some(r), _) | (_, Some(r)) => r,
            (None, None) => rest,
        };
        if let Some(n) = rest.strip_prefix("tokens ") {
            s.tokens = n.trim().parse().unwrap_or(100);
        } else if rest.trim() == "hang" {
            s.hang_after = Some(s.steps.len());
        } else if let Some(w) = rest.strip_prefix("write ") {
            let (path, text) = w.split_once(' ').unwrap_or((w, ""));
            s.steps.push(Step::Write {
                path: path.to_owned(),
                text: text.to_owned(),
            });
        } else if let Some(cmd) = rest.strip_prefix("bash ") {
            s.steps.push(Step::Bash(cmd.to_owned()));
        }
    }
    s
}

/// The text of a list of message parts (each `{"text": ...}` among them), joined.
pub(crate) fn texts(parts: &serde_json::Value) -> String {
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}
