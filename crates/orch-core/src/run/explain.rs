//! A failure in a person's words: one headline (the gate command that failed, or how
//! the agent exited) and the last lines of output that explain it, for progress lines,
//! `orch run show` and the dashboard alike.

use super::types::FailureKind;

/// The most output lines a failure is explained with.
pub const EXPLAIN_LINES: usize = 5;

/// A failure explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// One line: `worker validation failed: \`sh tests.sh\` exited with code 1`.
    pub headline: String,
    /// At most [`EXPLAIN_LINES`] last lines of the output behind it.
    pub tail: Vec<String>,
}

impl FailureKind {
    /// This failure as a headline and the last lines of output that explain it: a
    /// gate's failing command, or the agent's exit and the end of what it printed.
    pub fn explain(&self) -> Explained {
        match self {
            FailureKind::WorkerValidation { summary }
            | FailureKind::IntegrationValidation { summary } => {
                let mut lines = summary.lines();
                let headline = lines.next().unwrap_or_default().to_owned();
                let rest: Vec<&str> = lines
                    .skip_while(|l| !l.starts_with("last lines of its output"))
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                Explained {
                    headline,
                    tail: last(&rest),
                }
            }
            FailureKind::AgentError { detail } => match detail.split_once("its output ended: ") {
                Some((exit, out)) => {
                    let exit = exit.trim_end().trim_end_matches(';');
                    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
                    Explained {
                        headline: format!("the agent failed ({exit})"),
                        tail: last(&lines),
                    }
                }
                None => Explained {
                    headline: format!("the agent failed ({detail})"),
                    tail: Vec::new(),
                },
            },
            other => Explained {
                headline: other.to_string(),
                tail: Vec::new(),
            },
        }
    }
}

fn last(lines: &[&str]) -> Vec<String> {
    let from = lines.len().saturating_sub(EXPLAIN_LINES);
    lines[from..].iter().map(|l| (*l).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_failure_names_its_command_and_five_last_lines() {
        let summary = "worker validation failed: `sh tests.sh` exited with code 1\nlast lines of its output:\n1\n2\n3\n4\n5\n6\nFAIL: test_add\n";
        let e = FailureKind::WorkerValidation {
            summary: summary.into(),
        }
        .explain();
        assert_eq!(
            e.headline,
            "worker validation failed: `sh tests.sh` exited with code 1"
        );
        assert_eq!(e.tail, ["3", "4", "5", "6", "FAIL: test_add"]);
        let e = FailureKind::AgentError {
            detail: "exit code 2; its output ended: a\nb".into(),
        }
        .explain();
        assert_eq!(e.headline, "the agent failed (exit code 2)");
        assert_eq!(e.tail, ["a", "b"]);
        let e = FailureKind::NoChanges.explain();
        assert_eq!((e.headline.as_str(), e.tail.len()), ("no-changes", 0));
    }
}
