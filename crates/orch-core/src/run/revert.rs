//! The revert guard's policy: an attempt whose change undoes other tasks' landed work
//! (it removes lines they added, putting back what those replaced, or nothing) fails
//! as `reverts-landed-work` and is retried told what to keep (`policy.on_revert =
//! "retry"`), or blocks its task (`"block"`), or lands journaled and flagged
//! (`"allow"`). A retry that, told, undoes the same work again meant it: it lands,
//! journaled and flagged (`attempt.reverts`), and so does an undo of a task the
//! attempt's own task says it reverts.

use super::types::{AttemptState, FailureKind};
use crate::config::OnRevert;
use crate::ports::Undo;

/// Why an attempt may land although its change undoes `undoes`, if it may:
/// `policy.on_revert = "allow"`, its task declares it reverts every task undone
/// (`reverts`, the task's keys), or its `previous` attempt failed for undoing the same
/// tasks' work in the same files and this one, told so, did it again.
pub(super) fn undo_accepted(
    on_revert: OnRevert,
    reverts: &[String],
    previous: Option<&AttemptState>,
    undoes: &[Undo],
) -> Option<&'static str> {
    if on_revert == OnRevert::Allow {
        return Some("policy.on_revert = \"allow\"");
    }
    if undoes.iter().all(|u| reverts.contains(&u.task)) {
        return Some("its task says it reverts that work");
    }
    let told = match previous {
        Some(AttemptState::Failed(FailureKind::RevertsLandedWork { undone })) => undoes
            .iter()
            .all(|u| undone.iter().any(|p| p.task == u.task && p.file == u.file)),
        _ => false,
    };
    told.then_some(
        "its previous attempt was told to keep that work, and it undid it again: taken as meant",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undo(task: &str, file: &str) -> Undo {
        Undo {
            task: task.into(),
            file: file.into(),
            lines: (1, 2),
            restores: true,
        }
    }

    /// An undo lands only when allowed, declared, or done again after being told.
    #[test]
    fn an_undo_lands_only_when_allowed_declared_or_meant() {
        let undoes = [undo("task-7", "x.py")];
        let retry = OnRevert::Retry;
        assert_eq!(undo_accepted(retry, &[], None, &undoes), None);
        assert!(undo_accepted(OnRevert::Allow, &[], None, &undoes).is_some());
        assert!(undo_accepted(retry, &["task-7".into()], None, &undoes).is_some());
        let told = AttemptState::Failed(FailureKind::RevertsLandedWork {
            undone: vec![undo("task-7", "x.py")],
        });
        assert!(undo_accepted(retry, &[], Some(&told), &undoes).is_some());
        let other_file = [undo("task-7", "y.py")];
        assert_eq!(undo_accepted(retry, &[], Some(&told), &other_file), None);
    }
}
