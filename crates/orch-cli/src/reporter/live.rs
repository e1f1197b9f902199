//! On a terminal, in cargo's and nextest's style: what happens scrolls up as lines,
//! each with a coloured verb (none with `NO_COLOR`), a failure's output lines below
//! it; one status line at the bottom, redrawn in place, says which attempts are in
//! flight and for how long.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use orch_engine::core::run::{AttemptId, AttemptPhase, RunEvent};
use orch_engine::{RunUpdate, Subscription};

use super::lines::{Line, Tone, Words};

/// What the status line shows, and how lines are painted.
struct Screen {
    live: BTreeMap<AttemptId, (String, Instant)>,
    started: Instant,
    colour: bool,
    width: usize,
}

impl Screen {
    /// Keeps the attempts in flight up to date with `e`.
    fn track(&mut self, e: &RunEvent) {
        if let RunEvent::AttemptMoved { attempt, to, .. } = e {
            if to.is_terminal() {
                self.live.remove(attempt);
            } else {
                let phase = match to.phase() {
                    AttemptPhase::Running => "agent".to_owned(),
                    p => format!("{p:?}").to_lowercase(),
                };
                self.live.insert(*attempt, (phase, Instant::now()));
            }
        }
    }

    /// `   Failed #5.2 Add parser: ...`, its verb coloured by its tone.
    fn paint(&self, line: &Line) -> Vec<String> {
        let verb = format!("{:>12}", line.verb);
        let verb = match (self.colour, line.tone) {
            (false, _) => verb,
            (true, Tone::Good) => format!("\x1b[1;32m{verb}\x1b[0m"),
            (true, Tone::Bad) => format!("\x1b[1;31m{verb}\x1b[0m"),
            (true, Tone::Warn) => format!("\x1b[1;33m{verb}\x1b[0m"),
            (true, Tone::Plain) => format!("\x1b[1;36m{verb}\x1b[0m"),
        };
        let mut out = vec![format!("{verb} {}", super::lines::short_shas(&line.text))];
        for l in &line.tail {
            let bar = if self.colour { "\x1b[2m|\x1b[0m" } else { "|" };
            out.push(format!("{:>12} {bar} {l}", ""));
        }
        out
    }

    /// `     Running [ 12.3s] 3 in flight: #5.1 Add parser agent 10s, ...`, cut to the
    /// terminal's width.
    fn status(&self, words: &Words) -> String {
        let elapsed = self.started.elapsed().as_secs_f32();
        let who: Vec<String> = self
            .live
            .iter()
            .map(|(a, (phase, since))| {
                format!(
                    "{} {phase} {}s",
                    words.attempt(*a),
                    since.elapsed().as_secs()
                )
            })
            .collect();
        let text = format!(
            "[{elapsed:>6.1}s] {} in flight: {}",
            who.len(),
            who.join(", ")
        );
        let text: String = text.chars().take(self.width.saturating_sub(14)).collect();
        match self.colour {
            true => format!("\x1b[1;36m{:>12}\x1b[0m {text}", "Running"),
            false => format!("{:>12} {text}", "Running"),
        }
    }

    /// Clears the status line, prints `scroll`, and draws the status line again
    /// (unless nothing is in flight).
    fn draw(&self, scroll: &[String], words: &Words) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        for line in scroll {
            let _ = writeln!(err, "{line}");
        }
        if !self.live.is_empty() {
            let _ = write!(err, "{}", self.status(words));
        }
        let _ = err.flush();
    }
}

pub(super) async fn report(mut sub: Subscription, mut words: Words, colour: bool) {
    let width = terminal_size::terminal_size().map_or(100, |(w, _)| w.0 as usize);
    let mut screen = Screen {
        live: BTreeMap::new(),
        started: Instant::now(),
        colour,
        width,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let mut scroll = Vec::new();
        tokio::select! {
            u = sub.next() => match u {
                None => {
                    screen.live.clear();
                    screen.draw(&scroll, &words);
                    return;
                }
                Some(RunUpdate::Journal(j)) => {
                    screen.track(&j.event);
                    words.learn(&j.event).await;
                    if let Some(line) = words.line(&j.event) {
                        scroll.extend(screen.paint(&line));
                    }
                }
                Some(_) => {}
            },
            _ = tick.tick() => {}
        }
        screen.draw(&scroll, &words);
    }
}
