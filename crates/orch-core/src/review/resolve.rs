//! A conflict a person resolves (`policy.on_conflict = "ask"`): what a resolution
//! leaves on the task, and why a step of one is refused. A resolved conflict is work
//! approved by the person who resolved it: the next claim integrates it, through the
//! integration gate, like approved review work. One handed to the agent is a round of
//! changes whose feedback is the conflict, both sides marked.

use std::fmt::Write as _;

use super::state::{Review, ReviewWork, Verdict};
use crate::task::{TaskId, TaskStatus};

/// Why a step of a resolution is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveRefused {
    /// The task is not blocked.
    #[error(
        "task {task} is {status}: only a blocked task whose work conflicted is resolved by hand"
    )]
    NotBlocked {
        /// The task.
        task: TaskId,
        /// Where it is.
        status: TaskStatus,
    },
    /// Its last attempt did not end in a conflict.
    #[error(
        "task {0}'s last attempt did not end in a merge conflict (or its branch is gone): there is nothing to resolve; `orch task unblock {0}` runs it again"
    )]
    NoConflict(TaskId),
    /// No resolution is under way.
    #[error("no resolution of task {0} is under way: `orch task resolve {0}` prepares one")]
    NotUnderWay(TaskId),
    /// Conflict markers are left.
    #[error(
        "conflict markers are left in {}: resolve them, then `orch task resolve {task} --continue`",
        list(at)
    )]
    MarkersLeft {
        /// The task.
        task: TaskId,
        /// Each file with the line of its first marker.
        at: Vec<(String, usize)>,
    },
}

fn list(at: &[(String, usize)]) -> String {
    at.iter()
        .map(|(f, l)| format!("{f}:{l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that `task`, in `status`, can have a resolution started or handed on.
pub fn check_blocked(task: TaskId, status: TaskStatus) -> Result<(), ResolveRefused> {
    match status {
        TaskStatus::Blocked => Ok(()),
        status => Err(ResolveRefused::NotBlocked { task, status }),
    }
}

/// The review a resolution leaves: the resolved merge (`work.head`, made on
/// `work.base`, the integration head it resolved against) approved by `who`.
pub fn resolved(work: ReviewWork, who: &str) -> Review {
    Review {
        round: 1,
        work,
        verdict: Verdict::Approved,
        note: Some(format!("the conflict was resolved by hand by {who}")),
    }
}

/// The review a conflict handed to the agent leaves: a round of changes whose
/// feedback is each conflicted file, both sides between git's markers.
pub fn handed_to_agent(work: ReviewWork, conflicts: &[(String, String)]) -> Review {
    let mut feedback = String::from(
        "Your work conflicted with work merged into the integration line meanwhile. You start from the line as it is now: redo your change on top of it, keeping what the line has. Each conflicted file, as the merge left it (`integration line` is what landed, `this task` is your work):\n",
    );
    for (path, text) in conflicts {
        let _ = write!(feedback, "\n{path}:\n```\n{}\n```\n", text.trim_end());
    }
    Review {
        round: 1,
        work,
        verdict: Verdict::Changes { feedback },
        note: None,
    }
}
