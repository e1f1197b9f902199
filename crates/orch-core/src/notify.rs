//! Notifications: which of a run's journal events are worth telling someone about
//! (a run that ends, completed, canceled or halted; a task that failed or was
//! blocked; the quota breaker opening; work waiting for review), and where to (`[notify]`).

use crate::TaskStatus;
pub use crate::config::NotifyConfig;
use crate::run::RunEvent;

/// Whether `event` is one to notify about.
pub fn notifies(event: &RunEvent) -> bool {
    match event {
        RunEvent::RunMoved { to, .. } => to.is_terminal(),
        RunEvent::TaskMoved { to, .. } => matches!(to, TaskStatus::Failed | TaskStatus::Blocked),
        RunEvent::QuotaBreaker { until, .. } => until.is_some(),
        RunEvent::ReviewRequested { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunState;

    #[test]
    fn ends_failures_blocks_and_an_open_breaker_notify() {
        let moved = |to| RunEvent::RunMoved {
            from: RunState::Running,
            to,
            reason: String::new(),
        };
        assert!(notifies(&moved(RunState::Completed)));
        assert!(notifies(&moved(RunState::Halted)));
        assert!(!notifies(&moved(RunState::Draining)));
    }

    #[test]
    fn a_webhook_is_plain_http_with_a_host() {
        let w = |u: &str| NotifyConfig {
            webhook: u.into(),
            ..NotifyConfig::default()
        };
        assert!(w("http://127.0.0.1:9/hook").check().is_ok());
        assert!(
            w("https://example.com/hook")
                .check()
                .unwrap_err()
                .message
                .contains("http://")
        );
        assert!(
            w("http:///x")
                .check()
                .unwrap_err()
                .message
                .contains("no host")
        );
        assert!(w("").check().is_ok() && !w("").is_set());
    }
}
