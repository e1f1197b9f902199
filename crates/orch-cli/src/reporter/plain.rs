//! One line per event on stderr, for logs and pipes: each with the time of day and
//! the time since the run started, and every 10 s while agents work, a line saying
//! which attempts are running and for how long.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orch_engine::core::run::{Journaled, RunEvent};
use orch_engine::{RunUpdate, Subscription};

/// How often the status line is printed while attempts are live.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// One line of progress for an event, or nothing for the quiet ones.
pub fn progress_line(e: &RunEvent) -> Option<String> {
    match e {
        RunEvent::TaskMoved { task, .. } => Some(format!("#{task} {}", e.reason())),
        RunEvent::AttemptMoved { .. }
        | RunEvent::RunMoved { .. }
        | RunEvent::HeadAdvanced { .. }
        | RunEvent::Resumed { .. }
        | RunEvent::PlannerFallback { .. }
        | RunEvent::ClaimSkipped { .. }
        | RunEvent::TaskTaken { .. }
        | RunEvent::ClaimsPaused { .. }
        | RunEvent::AttemptUsage { .. }
        | RunEvent::PlannerUsage { .. }
        | RunEvent::BudgetSpent { .. }
        | RunEvent::ReportRefused { .. }
        | RunEvent::UserRefsMoved { .. }
        | RunEvent::RetryWaits { .. }
        | RunEvent::GateReused { .. }
        | RunEvent::Reverts { .. }
        | RunEvent::Landed { .. }
        | RunEvent::QuotaBreaker { .. } => Some(e.reason()),
        RunEvent::CleanupDone { error: Some(_), .. } => Some(e.reason()),
        _ => None,
    }
}

/// `12:53:20 +4.2s`: the entry's time of day (UTC) and the time since the run began.
fn stamp(j: &Journaled, started: Instant) -> String {
    let at = j.at.to_string();
    let clock = at.get(11..19).unwrap_or(&at);
    format!("{clock} +{:.1}s", started.elapsed().as_secs_f64())
}

pub(super) async fn report(mut sub: Subscription) {
    let started = Instant::now();
    let mut live: BTreeMap<String, (String, Instant)> = BTreeMap::new();
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            u = sub.next() => match u {
                None => return,
                Some(RunUpdate::Journal(j)) => {
                    if let RunEvent::AttemptMoved { attempt, to, .. } = &j.event {
                        if to.is_terminal() {
                            live.remove(&attempt.to_string());
                        } else {
                            let phase = format!("{:?}", to.phase()).to_lowercase();
                            live.insert(attempt.to_string(), (phase, Instant::now()));
                        }
                    }
                    if let Some(line) = progress_line(&j.event) {
                        eprintln!("{} {}", stamp(&j, started), super::short_shas(&line));
                    }
                }
                Some(_) => {}
            },
            _ = tick.tick() => {
                if !live.is_empty() {
                    let who: Vec<String> = live
                        .iter()
                        .map(|(a, (phase, since))| format!("{a} {phase} {}s", since.elapsed().as_secs()))
                        .collect();
                    eprintln!("+{:.0}s still working: {}", started.elapsed().as_secs_f64(), who.join(", "));
                }
            }
        }
    }
}
