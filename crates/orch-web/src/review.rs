//! Review in the dashboard: the queue (`/reviews`), the review section of a task in
//! review (the change with numbered lines to comment on, the worker gate with its
//! tails, the cost, the earlier rounds with their comments, and the decisions), and
//! the decision's form as it reads (its POST is one of the dashboard's controls).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use orch_engine::EngineError;
use orch_engine::core::TaskId;
use orch_engine::core::review::{Comment, Decision, Verdict};
use orch_engine::repo::{ReviewDetail, Waiting};
use serde::Deserialize;

use crate::diff::diff_html_numbered;
use crate::html::{esc, notice_html};
use crate::pages::{failed, respond};
use crate::state::AppState;

/// `GET /reviews`: the work waiting for a person, oldest first.
pub(crate) async fn queue(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let seq = app.store.last_event_seq().await.unwrap_or(0);
    let waiting = match app.repo.reviews().await {
        Ok(w) => w,
        Err(e) => return failed(e),
    };
    let mut body = String::from("<h1>Review</h1>");
    if waiting.is_empty() {
        body.push_str(
            "<p class=\"meta\">Nothing waits for review. With <code>review.required</code> set, a task's work stops here after its worker gate.</p>",
        );
    } else {
        body.push_str("<table class=\"reviews\"><tr><th>task</th><th>round</th><th>waiting</th><th>cost</th><th>worker gate</th><th>verdict</th></tr>");
        for w in &waiting {
            row(&mut body, w);
        }
        body.push_str("</table>");
    }
    respond(&headers, ("Review", "Review"), None, body, seq)
}

fn row(out: &mut String, w: &Waiting) {
    let verdict = w.verdict_words();
    let _ = write!(
        out,
        "<tr class=\"review\"><td><a href=\"/orch/tasks/{id}\">#{id} {}</a></td><td>{}</td><td data-since=\"{}\"></td><td>{}</td><td>{}</td><td>{verdict}</td></tr>",
        esc(&w.task.title),
        w.review.round,
        w.since.as_millis(),
        esc(&w.usage.summary()),
        w.gate_words(),
        id = w.task.id,
    );
}

/// The review section of task `id`'s page.
pub(crate) async fn section(app: &AppState, id: TaskId) -> String {
    match app.repo.review_of(id).await {
        Ok(d) => render(app, &d),
        Err(e) => notice_html(Some(&e.to_string())),
    }
}

fn render(app: &AppState, d: &ReviewDetail) -> String {
    let (w, r) = (&d.waiting, &d.waiting.review);
    let id = w.task.id;
    let mut out = format!(
        "<section class=\"review\"><h2>Review: round {}</h2><p class=\"meta\">{} at <code>{}</code>, made on <code>{}</code> · waiting <span data-since=\"{}\"></span> · cost {}</p>",
        r.round,
        esc(&r.work.branch),
        esc(r.work.head.short()),
        esc(r.work.base.short()),
        w.since.as_millis(),
        esc(&w.usage.summary()),
    );
    if let Some(n) = &r.note {
        let _ = write!(out, "<p class=\"notice\">{}</p>", esc(n));
    }
    let _ = write!(out, "<h3>Worker gate: {}</h3>", w.gate_words());
    for g in &w.gates {
        let _ = write!(
            out,
            "<details class=\"gate\"><summary><code>$ {}</code> {}</summary><pre class=\"tail\">{}</pre></details>",
            esc(&g.command),
            esc(&g.outcome),
            esc(&g.tail.join("\n"))
        );
    }
    rounds(&mut out, d);
    out.push_str("<h3 id=\"change\">The change</h3>");
    out.push_str(&diff_html_numbered(&d.diff));
    if r.verdict == Verdict::Approved {
        out.push_str("<p class=\"meta verdict\">Approved: the next run integrates it as it is and lands it.</p></section>");
        return out;
    }
    let _ = write!(
        out,
        "<form class=\"decide\" method=\"post\" action=\"/orch/tasks/{id}/review\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>comment <textarea name=\"text\" id=\"review-text\" data-keep rows=\"3\"></textarea></label>\
         <label id=\"comments\">line comments, one a line (click a line number above) <textarea name=\"comments\" id=\"review-comments\" data-keep rows=\"3\" placeholder=\"src/lib.rs:12 rename this\"></textarea></label>\
         <label><input type=\"checkbox\" name=\"again\" value=\"1\"> a rejected task goes back to the backlog</label>\
         <button name=\"decision\" value=\"approve\">approve</button> <button name=\"decision\" value=\"changes\">request changes</button> <button name=\"decision\" value=\"reject\">reject</button></form></section>",
        esc(&app.csrf)
    );
    out
}

/// The review's history: each request and decision, with who, their words and their
/// line comments.
fn rounds(out: &mut String, d: &ReviewDetail) {
    if d.history.is_empty() {
        return;
    }
    out.push_str("<h3>Rounds</h3><ul class=\"rounds\">");
    for e in &d.history {
        let _ = write!(
            out,
            "<li><span class=\"kind\">{}</span> by {}: {}",
            esc(&e.kind),
            esc(e.actor.strip_prefix("human:").unwrap_or(&e.actor)),
            esc(&e.reason)
        );
        let decision = Decision::recorded_in(&e.payload);
        if let Some(d) = decision.as_ref().filter(|d| !d.text().trim().is_empty()) {
            let _ = write!(out, "<blockquote>{}</blockquote>", esc(d.text()));
        }
        for c in decision.iter().flat_map(|d| d.comments()) {
            let _ = write!(
                out,
                "<div class=\"comment\"><code>{}:{}</code> {}</div>",
                esc(&c.path),
                c.line,
                esc(&c.text)
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
}

/// A decision's form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReviewForm {
    pub(crate) csrf: Option<String>,
    decision: Option<String>,
    text: Option<String>,
    /// Line comments, one a line: `PATH:LINE TEXT`.
    comments: Option<String>,
    again: Option<String>,
}

impl ReviewForm {
    /// The decision the form asks for: its line comments parsed, or what is wrong
    /// with one.
    pub(crate) fn decision(&self) -> Result<Decision, EngineError> {
        // A browser sends a textarea's newlines as CRLF.
        let text = self.text.as_deref().unwrap_or("").replace("\r\n", "\n");
        Ok(match self.decision.as_deref() {
            Some("approve") => Decision::Approve { text },
            Some("changes") => Decision::Changes {
                text,
                comments: self.comments()?,
            },
            Some("reject") => Decision::Reject {
                text,
                again: self.again.is_some(),
            },
            other => {
                return Err(EngineError::Config(format!(
                    "unknown decision {:?}: allowed are approve, changes and reject",
                    other.unwrap_or("")
                )));
            }
        })
    }

    fn comments(&self) -> Result<Vec<Comment>, EngineError> {
        let text = self.comments.as_deref().unwrap_or("");
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (at, said) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
                Comment::parse(at, said)
                    .map_err(|e| EngineError::Config(format!("line comment {l:?}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_reads_as_its_decision() {
        let f = ReviewForm {
            decision: Some("changes".into()),
            text: Some("Tidy\r\nup".into()),
            comments: Some("src/a.rs:3 rename it\r\n\r\nb.rs:1  fix".into()),
            ..ReviewForm::default()
        };
        let Decision::Changes { text, comments } = f.decision().unwrap() else {
            panic!("not changes");
        };
        assert_eq!(text, "Tidy\nup");
        assert_eq!(
            comments
                .iter()
                .map(|c| (c.path.as_str(), c.line, c.text.as_str()))
                .collect::<Vec<_>>(),
            [("src/a.rs", 3, "rename it"), ("b.rs", 1, "fix")]
        );
        let bad = ReviewForm {
            comments: Some("nowhere fix".into()),
            ..f
        };
        let e = bad.decision().unwrap_err().to_string();
        assert!(
            e.contains("line comment \"nowhere fix\"") && e.contains("PATH:LINE"),
            "{e}"
        );
        let odd = ReviewForm {
            decision: Some("merge".into()),
            ..ReviewForm::default()
        };
        assert!(
            odd.decision()
                .unwrap_err()
                .to_string()
                .contains("allowed are approve")
        );
    }
}
