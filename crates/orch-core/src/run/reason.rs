//! Each [`RunEvent`]'s one-line reason, for the audit log's `reason` column.

use super::event::RunEvent;

impl RunEvent {
    /// A one-line description for the audit log's `reason` column.
    pub fn reason(&self) -> String {
        match self {
            RunEvent::RunMoved { from, to, reason } => {
                format!("{from:?} -> {to:?}: {reason}").to_lowercase()
            }
            RunEvent::HeadSet { head } => format!("integration branch starts at {head}"),
            RunEvent::HeadAdvanced { attempt, from, to } => {
                format!("{attempt} advanced the integration ref {from} -> {to}")
            }
            RunEvent::TaskMoved {
                from, to, reason, ..
            } => format!("{from} -> {to}: {reason}"),
            RunEvent::AttemptCreated { attempt, base, .. } => {
                format!("{attempt} created from {base}")
            }
            RunEvent::AttemptMoved {
                attempt,
                from,
                to,
                reason,
            } => {
                format!(
                    "{attempt} {} -> {}: {reason}",
                    format!("{from:?}").to_lowercase(),
                    format!("{:?}", to.phase()).to_lowercase()
                )
            }
            RunEvent::AttemptHead {
                attempt,
                head,
                empty,
            } => {
                format!(
                    "{attempt} head {head}{}",
                    if *empty { " (no changes)" } else { "" }
                )
            }
            RunEvent::MergeWritten {
                attempt,
                commit,
                onto,
            } => format!("{attempt} merged cleanly as {commit} onto {onto}"),
            RunEvent::IntegrationPassed { attempt, commit } => {
                format!("{attempt} passed integration validation on {commit}")
            }
            RunEvent::CleanupRequested { attempt } => format!("{attempt} cleanup requested"),
            RunEvent::CleanupDone { attempt, error } => match error {
                Some(e) => format!("{attempt} cleanup left something behind: {e}"),
                None => format!("{attempt} cleaned up"),
            },
            RunEvent::ProposalJudged { proposal, verdict } => format!("{proposal:?}: {verdict:?}"),
            RunEvent::PlannerFallback { reason } => reason.clone(),
            RunEvent::InputRefused {
                input,
                about,
                reason,
            } => match about {
                Some(a) => format!("{input} for {a} refused: {reason}"),
                None => format!("{input} refused: {reason}"),
            },
            RunEvent::ClaimSkipped { task, why } => {
                format!("task {task} skipped: the claim was refused ({why})")
            }
            RunEvent::TaskTaken { task, status } => match status {
                Some(s) => format!("task {task} was moved to {s} by a person; the run lets it go"),
                None => format!("task {task} was removed from the board; the run lets it go"),
            },
            RunEvent::ClaimsPaused { paused: true } => "claiming paused".into(),
            RunEvent::ClaimsPaused { paused: false } => "claiming resumed".into(),
            RunEvent::Resumed { reason, .. } => format!("resumed: {reason}"),
            _ => self.later_reason(),
        }
    }

    /// The reasons of usage, landing and integration-stack events (an event without
    /// one of its own here has none).
    fn later_reason(&self) -> String {
        match self {
            RunEvent::GateRerun {
                attempt,
                rerun,
                summary,
            } => format!(
                "{attempt}: the integration gate failed ({summary}); running it again ({rerun})"
            ),
            RunEvent::IntegrationImplied {
                attempt,
                by,
                commit,
            } => format!(
                "{attempt} is validated with its batch: the gate passed on {by}'s merge {}, which holds its work",
                commit.short()
            ),
            RunEvent::Shaped { why, .. } => format!("integration: {why}"),
            RunEvent::SetAside {
                batch,
                failed,
                onto,
            } => format!(
                "{failed}'s gate failed with everything below it validated: its batch of {} is bisected beside the stack, on {}, while the stack goes on without it",
                batch.len(),
                onto.short()
            ),
            RunEvent::Flaky {
                attempt,
                failures,
                summary,
            } => format!(
                "{attempt}: the integration gate passed after {failures} failure(s): flaky ({summary})"
            ),
            RunEvent::LineMovedOn { attempt, from, to } => format!(
                "the integration line moved on from {} to {} (another run landed work); {}",
                from.short(),
                to.short(),
                match attempt {
                    Some(a) => format!("{a} is merged again onto it"),
                    None => "the run builds on it".to_owned(),
                }
            ),
            RunEvent::Landed {
                branch,
                from,
                to,
                how,
            } => match from {
                Some(f) => format!("{branch} {} -> {}: {how}", f.short(), to.short()),
                None => format!("{branch} at {}: {how}", to.short()),
            },
            RunEvent::AttemptUsage { attempt, usage } => {
                format!("{attempt} used {}", usage.summary())
            }
            RunEvent::PlannerUsage { request, usage } => {
                format!("the planner used {} for request {request}", usage.summary())
            }
            RunEvent::UserRefsMoved { moves, .. } => moves.join("; "),
            RunEvent::Reverts {
                attempt,
                undone,
                why,
            } => {
                let each: Vec<String> = undone.iter().map(|u| u.to_string()).collect();
                format!("{attempt} undoes {} ({why})", each.join("; "))
            }
            RunEvent::GateReused { attempt, stage, by } => format!(
                "{attempt}'s {} gate was not run: {by} passed it on the same tree",
                stage.as_str()
            ),
            RunEvent::RetryWaits { attempt, on, .. } => {
                let on: Vec<String> = on.iter().map(|t| format!("#{t}")).collect();
                format!(
                    "{attempt} failed while work it may need was yet to land ({}): its retry waits for that work to land or fail",
                    on.join(", ")
                )
            }
            RunEvent::BudgetSpent { attempt, detail } => match attempt {
                Some(a) => format!("{a} stopped: {detail}"),
                None => format!("the run stops claiming: {detail}"),
            },
            RunEvent::QuotaBreaker { until, reason } => match until {
                Some(t) => format!("quota breaker open until {t}: {reason}"),
                None => format!("quota breaker closed: {reason}"),
            },
            _ => self.guard_reason(),
        }
    }

    /// The reasons of what orch's guards journal: refused reports, the user's refs,
    /// waiting retries, reused verdicts and undone work.
    fn guard_reason(&self) -> String {
        match self {
            RunEvent::ReviewRequested { attempt, review } => format!(
                "{attempt} passed its worker gate; round {} of its work ({}) waits for review: `orch review show {}`",
                review.round,
                review.work.head.short(),
                attempt.task
            ),
            RunEvent::ReportRefused { attempt, reason } => {
                format!("{attempt}'s report was refused, its figure left out: {reason}")
            }
            _ => String::new(),
        }
    }
}
