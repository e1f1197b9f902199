//! Notifications: which of a run's journal events are worth telling someone about
//! (a run that ends, completed, canceled or halted; a task that failed or was
//! blocked; the quota breaker opening), and where to (`[notify]`).

use serde::{Deserialize, Serialize};

use crate::TaskStatus;
use crate::run::RunEvent;

/// `[notify]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// A shell command run with each notification as JSON on its stdin; empty: none.
    pub command: String,
    /// An `http://` URL each notification is POSTed to as JSON; empty: none.
    pub webhook: String,
}

impl NotifyConfig {
    /// Whether anything is to be told.
    pub fn is_set(&self) -> bool {
        !self.command.trim().is_empty() || !self.webhook.trim().is_empty()
    }

    /// Checks the webhook: what is wrong, naming the key and what is allowed.
    pub fn check(&self) -> Result<(), String> {
        let w = self.webhook.trim();
        if w.is_empty() {
            return Ok(());
        }
        let Some(rest) = w.strip_prefix("http://") else {
            return Err(format!(
                "notify.webhook {w:?} is not an http:// URL; orch posts plain HTTP (for https, point it at a local relay, or use notify.command with curl)"
            ));
        };
        if rest.split('/').next().is_none_or(str::is_empty) {
            return Err(format!(
                "notify.webhook {w:?} names no host: use http://HOST[:PORT]/PATH"
            ));
        }
        Ok(())
    }
}

/// Whether `event` is one to notify about.
pub fn notifies(event: &RunEvent) -> bool {
    match event {
        RunEvent::RunMoved { to, .. } => to.is_terminal(),
        RunEvent::TaskMoved { to, .. } => matches!(to, TaskStatus::Failed | TaskStatus::Blocked),
        RunEvent::QuotaBreaker { until, .. } => until.is_some(),
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
                .contains("http://")
        );
        assert!(w("http:///x").check().unwrap_err().contains("no host"));
        assert!(w("").check().is_ok() && !w("").is_set());
    }
}
