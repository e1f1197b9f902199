//! One line per event on stderr, for logs and pipes.

use orch_engine::core::run::RunEvent;
use orch_engine::{RunUpdate, Subscription};

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
        | RunEvent::BudgetSpent { .. }
        | RunEvent::QuotaBreaker { .. } => Some(e.reason()),
        RunEvent::CleanupDone { error: Some(_), .. } => Some(e.reason()),
        _ => None,
    }
}

pub(super) async fn report(mut sub: Subscription) {
    while let Some(u) = sub.next().await {
        if let RunUpdate::Journal(j) = u
            && let Some(line) = progress_line(&j.event)
        {
            eprintln!("{}", super::short_shas(&line));
        }
    }
}
