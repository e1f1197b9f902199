//! Crash reconciliation: rebuilding a run from its journal and squaring it with the
//! real integration ref and the agents that had finished.

use std::collections::BTreeMap;

use super::journal::RunSnapshot;
use super::report::FinishedAgent;
use super::types::{AttemptId, AttemptState, CommitId};

/// Of the agents found finished after a crash (their `agent.exit` markers), those whose
/// work can be trusted: running in the journal, and either with nothing committed or
/// with the commit the marker names still at the tip of their branch (`branch_heads`).
/// An agent whose branch moved since is run again.
pub fn trusted_finished(
    journal: &RunSnapshot,
    markers: BTreeMap<AttemptId, FinishedAgent>,
    branch_heads: &BTreeMap<AttemptId, Option<CommitId>>,
) -> BTreeMap<AttemptId, FinishedAgent> {
    markers
        .into_iter()
        .filter(|(id, _)| {
            journal
                .attempts
                .get(id)
                .is_some_and(|r| r.state == AttemptState::Running)
        })
        .filter(|(id, f)| match &f.changes {
            Some(ch) => branch_heads.get(id).cloned().flatten().as_ref() == Some(&ch.head),
            None => true,
        })
        .collect()
}

/// What the engine found of a shared integration line that moved on while the run was
/// down: another run's validated work is at `to` (a descendant of the journal's head),
/// and `landed` are this run's candidates whose merges the line already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineMoved {
    /// Where the line is.
    pub to: CommitId,
    /// In-flight candidates of this run whose merges `to` holds.
    pub landed: Vec<AttemptId>,
}
