//! On a terminal: a block of lines, one per attempt with its state and how long it has
//! been in it, redrawn in place; finished attempts scroll above it as plain lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use orch_engine::core::run::{AttemptState, RunEvent};
use orch_engine::{RunUpdate, Subscription};

/// What the block shows: the attempts in flight, and what scrolls above it.
struct Block {
    live: BTreeMap<String, (String, Instant)>,
    started: Instant,
    drawn: usize,
}

impl Block {
    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.started.elapsed().as_secs_f32())
    }

    /// Takes one event in; returns the line that scrolls above the block, if any.
    fn take(&mut self, e: &RunEvent) -> Option<String> {
        match e {
            RunEvent::AttemptMoved { attempt, to, .. } => {
                let name = attempt.to_string();
                if !to.is_terminal() {
                    let phase = format!("{:?}", to.phase()).to_lowercase();
                    self.live.insert(name, (phase, Instant::now()));
                    return None;
                }
                self.live.remove(&name);
                let what = match to {
                    AttemptState::Failed(k) => format!("failed: {k}"),
                    other => format!("{:?}", other.phase()).to_lowercase(),
                };
                Some(format!("{} {name:<14} {what}", self.stamp()))
            }
            RunEvent::HeadAdvanced { attempt, to, .. } => {
                let short: String = to.0.chars().take(12).collect();
                Some(format!(
                    "{} {:<14} merged; the integration branch is now at {short}",
                    self.stamp(),
                    attempt.to_string()
                ))
            }
            RunEvent::RunMoved { .. }
            | RunEvent::ClaimSkipped { .. }
            | RunEvent::TaskTaken { .. }
            | RunEvent::AttemptUsage { .. }
            | RunEvent::BudgetSpent { .. }
            | RunEvent::ReportRefused { .. }
            | RunEvent::UserRefsMoved { .. }
            | RunEvent::RetryWaits { .. }
            | RunEvent::GateReused { .. }
            | RunEvent::Reverts { .. }
            | RunEvent::Landed { .. }
            | RunEvent::QuotaBreaker { .. } => Some(format!("{} {}", self.stamp(), e.reason())),
            _ => None,
        }
    }

    fn draw(&mut self, scroll: Vec<String>) {
        let mut err = std::io::stderr().lock();
        // Move up over the block drawn last time and clear it.
        for _ in 0..self.drawn {
            let _ = write!(err, "\x1b[1A\x1b[2K");
        }
        for line in scroll {
            let _ = writeln!(err, "{}", super::short_shas(&line));
        }
        for (name, (state, since)) in &self.live {
            let secs = since.elapsed().as_secs_f32();
            let _ = writeln!(err, "  {name:<14} {state:<12} {secs:>5.0}s");
        }
        self.drawn = self.live.len();
        let _ = err.flush();
    }
}

pub(super) async fn report(mut sub: Subscription) {
    let mut block = Block {
        live: BTreeMap::new(),
        started: Instant::now(),
        drawn: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let mut scroll = Vec::new();
        tokio::select! {
            u = sub.next() => match u {
                None => {
                    block.live.clear();
                    block.draw(scroll);
                    return;
                }
                Some(RunUpdate::Journal(j)) => scroll.extend(block.take(&j.event)),
                Some(_) => {}
            },
            _ = tick.tick() => {}
        }
        block.draw(scroll);
    }
}
