//! A run's timeline as server-rendered SVG: one lane per attempt, from its creation to
//! its end, coloured by phase (provisioning, running, validating, merging,
//! integrating); a failure marked red at its end, a success green; each advance of the
//! integration line a tick across the top. Readable at a hundred attempts.

use std::fmt::Write as _;

use orch_engine::core::event::Event;
use orch_store::AttemptRow;

use crate::html::esc;

/// Each lane's height, and the room for its label.
const LANE: i64 = 14;
const LABEL: i64 = 70;
/// The chart's width for time.
const WIDTH: i64 = 900;

/// Phases and their colours.
const PHASES: &[(&str, &str)] = &[
    ("queued", "#c9ced6"),
    ("provisioning", "#a5b4c8"),
    ("running", "#0969da"),
    ("validating", "#8250df"),
    ("merging", "#bf8700"),
    ("integrating", "#1a7f37"),
];

/// The SVG for `attempts`, placed in time by `events` (the run's journal, as the
/// audit log has it); `now` ends lanes still going.
pub(crate) fn timeline(attempts: &[AttemptRow], events: &[Event], now: i64) -> String {
    if attempts.is_empty() {
        return String::new();
    }
    let start = attempts
        .iter()
        .map(|a| a.created_at.as_millis())
        .min()
        .unwrap_or(now);
    let live = attempts
        .iter()
        .any(|a| a.phase().is_some_and(|p| !p.is_terminal()));
    let end = attempts
        .iter()
        .map(|a| a.updated_at.as_millis())
        .chain(events.iter().map(|e| e.at.as_millis()))
        .chain(live.then_some(now))
        .max()
        .unwrap_or(now)
        .max(start + 1);
    let x = |t: i64| LABEL + (t - start).clamp(0, end - start) * WIDTH / (end - start);
    let height = 20 + LANE * attempts.len() as i64;
    let mut svg = format!(
        "<svg class=\"timeline\" role=\"img\" aria-label=\"the run's attempts over time\" viewBox=\"0 0 {w} {height}\" width=\"{w}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"10\" font-family=\"system-ui,sans-serif\">",
        w = LABEL + WIDTH + 10
    );
    for e in events.iter().filter(|e| e.kind == "run.head_advanced") {
        let at = x(e.at.as_millis());
        let _ = write!(
            svg,
            "<line class=\"advance\" x1=\"{at}\" y1=\"2\" x2=\"{at}\" y2=\"{height}\" stroke=\"#2da44e\" stroke-dasharray=\"2 2\"><title>{}</title></line>",
            esc(&e.reason)
        );
    }
    for (i, a) in attempts.iter().enumerate() {
        let y = 16 + LANE * i as i64;
        let (task, n) = (a.attempt.task, a.attempt.number);
        let _ = write!(
            svg,
            "<g class=\"lane\" data-attempt=\"{task}.{n}\"><text x=\"2\" y=\"{}\">#{task}.{n}</text>",
            y + LANE - 4
        );
        for (phase, from, to) in phases(a, events, now) {
            let colour = PHASES
                .iter()
                .find(|(p, _)| *p == phase)
                .map_or("#c9ced6", |(_, c)| *c);
            let (x1, x2) = (x(from), x(to).max(x(from) + 1));
            let _ = write!(
                svg,
                "<rect class=\"{phase}\" x=\"{x1}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"><title>#{task}.{n} {phase}</title></rect>",
                y + 2,
                x2 - x1,
                LANE - 4
            );
        }
        let mark = match a.state.as_str() {
            "failed" => Some("#cf222e"),
            "succeeded" => Some("#2da44e"),
            _ => None,
        };
        if let Some(colour) = mark {
            let at = x(a.updated_at.as_millis());
            let _ = write!(
                svg,
                "<circle class=\"{}\" cx=\"{at}\" cy=\"{}\" r=\"4\" fill=\"{colour}\"><title>#{task}.{n} {}</title></circle>",
                esc(&a.state),
                y + LANE / 2,
                esc(&a.state)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg><p class=\"meta legend\">");
    for (p, c) in PHASES {
        let _ = write!(svg, "<span style=\"color:{c}\">■</span> {p} ");
    }
    svg.push_str("· <span style=\"color:#2da44e\">┆</span> the line advanced</p>");
    svg
}

/// `(phase, from, to)` for each phase an attempt went through, in ms.
fn phases(a: &AttemptRow, events: &[Event], now: i64) -> Vec<(String, i64, i64)> {
    let moves: Vec<(i64, String)> = events
        .iter()
        .filter(|e| e.kind == "attempt.moved" && e.task_id == Some(a.attempt.task))
        .filter(|e| e.attempt == Some(i64::from(a.attempt.number)))
        .filter_map(|e| {
            Some((
                e.at.as_millis(),
                e.payload["to"]["state"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let live = a.phase().is_some_and(|p| !p.is_terminal());
    let end = if live { now } else { a.updated_at.as_millis() };
    let mut out = Vec::new();
    let mut current = ("queued".to_owned(), a.created_at.as_millis());
    for (at, state) in moves {
        out.push((current.0.clone(), current.1, at));
        current = (state, at);
    }
    if PHASES.iter().any(|(p, _)| *p == current.0) {
        out.push((current.0, current.1, end.max(current.1)));
    }
    out.retain(|(p, from, to)| to > from && PHASES.iter().any(|(q, _)| q == p));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_engine::core::run::AttemptId;
    use orch_engine::core::{TaskId, Timestamp};

    fn attempt(task: i64, state: &str, from: i64, to: i64) -> AttemptRow {
        AttemptRow {
            attempt: AttemptId {
                task: TaskId(task),
                number: 1,
            },
            branch: String::new(),
            base: String::new(),
            head: None,
            merge: None,
            state: state.into(),
            failure: None,
            created_at: Timestamp(from),
            updated_at: Timestamp(to),
            usage: None,
        }
    }

    fn moved(task: i64, at: i64, to: &str) -> Event {
        Event {
            seq: at,
            at: Timestamp(at),
            run_id: Some("r".into()),
            task_id: Some(TaskId(task)),
            attempt: Some(1),
            kind: "attempt.moved".into(),
            reason: String::new(),
            actor: "orchestrator".into(),
            payload: serde_json::json!({"to": {"state": to}}),
        }
    }

    /// One lane per attempt, a rectangle per phase it went through, its end marked by
    /// its outcome, an advance of the line as a tick; a hundred lanes stay in one chart.
    #[test]
    fn lanes_phases_outcomes_and_advances() {
        let attempts = [
            attempt(1, "succeeded", 0, 100),
            attempt(2, "failed", 10, 60),
        ];
        let mut events = vec![
            moved(1, 5, "running"),
            moved(1, 50, "validating"),
            moved(1, 80, "integrating"),
            moved(1, 100, "succeeded"),
            moved(2, 20, "running"),
            moved(2, 60, "failed"),
        ];
        events.push(Event {
            kind: "run.head_advanced".into(),
            task_id: None,
            attempt: None,
            reason: "advanced to abc".into(),
            ..moved(1, 100, "x")
        });
        let svg = timeline(&attempts, &events, 1000);
        assert_eq!(svg.matches("<g class=\"lane\"").count(), 2);
        assert_eq!(svg.matches("<rect class=\"running\"").count(), 2);
        assert_eq!(svg.matches("<rect class=\"integrating\"").count(), 1);
        assert_eq!(svg.matches("<circle class=\"failed\"").count(), 1);
        assert_eq!(svg.matches("<circle class=\"succeeded\"").count(), 1);
        assert_eq!(svg.matches("<line class=\"advance\"").count(), 1);
        let many: Vec<AttemptRow> = (1..=100)
            .map(|t| attempt(t, "succeeded", t, t + 50))
            .collect();
        let svg = timeline(&many, &[], 1000);
        assert_eq!(svg.matches("<g class=\"lane\"").count(), 100);
        assert!(
            svg.contains(&format!("height=\"{}\"", 20 + LANE * 100)),
            "one lane of {LANE}px each"
        );
    }
}
