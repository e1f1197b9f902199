//! The revert guard's policy: an attempt whose change undoes other tasks' landed work
//! (it removes lines they added, putting back what those replaced, or nothing) fails
//! as `reverts-landed-work` and is retried told what to keep (`policy.on_revert =
//! "retry"`), or blocks its task (`"block"`), or lands journaled and flagged
//! (`"allow"`). A retry that, told, undoes the same work again meant it: it lands,
//! journaled and flagged (`attempt.reverts`), and so does an undo of a task the
//! attempt's own task says it reverts.

use super::Orchestrator;
use super::event::RunEvent;
use super::types::{AttemptId, AttemptState, FailureKind};
use crate::config::OnRevert;
use crate::ports::Undo;

impl Orchestrator {
    /// Whether `attempt` may land although its change undoes `undoes`; if so, the
    /// undo is journaled with why.
    pub(super) fn undo_accepted(&mut self, attempt: AttemptId, undoes: &[Undo]) -> bool {
        let why = if self.policy.on_revert == OnRevert::Allow {
            "policy.on_revert = \"allow\""
        } else if self.declared_reverts(attempt, undoes) {
            "its task says it reverts that work"
        } else if self.told_and_did_it_again(attempt, undoes) {
            "its previous attempt was told to keep that work, and it undid it again: taken as meant"
        } else {
            return false;
        };
        self.persist(RunEvent::Reverts {
            attempt,
            undone: undoes.to_vec(),
            why: why.to_owned(),
        });
        true
    }

    /// Every task it undoes is one the attempt's task declares it reverts.
    fn declared_reverts(&self, attempt: AttemptId, undoes: &[Undo]) -> bool {
        let Some(spec) = self.sched.tasks.get(&attempt.task) else {
            return false;
        };
        undoes.iter().all(|u| spec.reverts.contains(&u.task))
    }

    /// The task's previous attempt failed for undoing the same tasks' work in the
    /// same files, and its retry (this attempt, told so in its prompt) did it again.
    fn told_and_did_it_again(&self, attempt: AttemptId, undoes: &[Undo]) -> bool {
        let previous = self
            .attempts
            .of_task(attempt.task)
            .rev()
            .find(|(id, _)| id.number < attempt.number)
            .map(|(_, a)| &a.rec.state);
        let Some(AttemptState::Failed(FailureKind::RevertsLandedWork { undone })) = previous else {
            return false;
        };
        undoes
            .iter()
            .all(|u| undone.iter().any(|p| p.task == u.task && p.file == u.file))
    }
}
