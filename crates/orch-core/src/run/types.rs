//! Run-level types: attempt ids, the attempt and run state machines with their transition
//! tables, and failure kinds.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use super::ids::{CommitId, RunId};
use crate::config::FailureClass;
use crate::task::TaskId;

/// One worker run for one task: the task and the attempt number (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    /// The task.
    pub task: TaskId,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub number: u32,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task-{}-{}", self.task, self.number)
    }
}

impl AttemptId {
    /// The attempt's branch: `orch/<run>/task-<id>-<n>`.
    pub fn branch(&self, run: &RunId) -> String {
        format!("orch/{run}/{self}")
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailureKind {
    /// The agent exited non-zero, was killed by a signal, or could not start.
    AgentError {
        /// What happened, e.g. `exit code 1`.
        detail: String,
    },
    /// The agent or a gate ran past its deadline.
    Timeout {
        /// Which phase timed out: `agent`, `worker` or `integration`.
        phase: String,
    },
    /// The agent changed nothing (and the empty-diff policy is `fail`).
    NoChanges,
    /// The worker gate failed.
    WorkerValidation {
        /// The gate's summary (failing command, tail of its output).
        summary: String,
    },
    /// The merge into the integration head conflicted.
    Conflict {
        /// The conflicting paths.
        paths: Vec<String>,
    },
    /// The integration gate failed on the merge commit.
    IntegrationValidation {
        /// The gate's summary.
        summary: String,
    },
    /// orch itself could not proceed (worktree, merge or ref update failed).
    Infrastructure {
        /// What failed.
        message: String,
    },
    /// The task's budget was spent; the attempt was stopped.
    Budget {
        /// Which cap, and how much was spent.
        detail: String,
    },
    /// The agent hit a rate limit or an exhausted quota: the quota breaker opened,
    /// and the task waits for it without spending an attempt.
    Quota {
        /// What gave it away.
        signature: String,
    },
    /// The attempt's change undoes other tasks' landed work (`policy.on_revert`).
    RevertsLandedWork {
        /// Each hunk that does, with the task whose work it undoes.
        undone: Vec<Undo>,
    },
}

impl FailureKind {
    /// Whether the failure spends one of the task's attempts. orch's own failures
    /// (infrastructure) do not: they are not the agent's fault.
    pub fn counts(&self) -> bool {
        !matches!(
            self,
            FailureKind::Infrastructure { .. } | FailureKind::Quota { .. }
        )
    }

    /// The failure's class, as `policy.retry_on` names it.
    pub fn class(&self) -> FailureClass {
        match self {
            FailureKind::AgentError { .. } => FailureClass::AgentError,
            FailureKind::Timeout { .. } => FailureClass::Timeout,
            FailureKind::NoChanges => FailureClass::NoChanges,
            FailureKind::WorkerValidation { .. } => FailureClass::WorkerValidation,
            FailureKind::Conflict { .. } => FailureClass::Conflict,
            FailureKind::IntegrationValidation { .. } => FailureClass::IntegrationValidation,
            FailureKind::Infrastructure { .. } => FailureClass::Infrastructure,
            FailureKind::Budget { .. } => FailureClass::Budget,
            FailureKind::Quota { .. } => FailureClass::Quota,
            FailureKind::RevertsLandedWork { .. } => FailureClass::RevertsLandedWork,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::AgentError { detail } => write!(f, "agent-error ({detail})"),
            FailureKind::Timeout { phase } => write!(f, "timeout ({phase})"),
            FailureKind::NoChanges => f.write_str("no-changes"),
            FailureKind::WorkerValidation { .. } => f.write_str("worker-validation"),
            FailureKind::Conflict { paths } => write!(f, "conflict ({})", paths.join(", ")),
            FailureKind::IntegrationValidation { .. } => f.write_str("integration-validation"),
            FailureKind::Infrastructure { message } => write!(f, "infrastructure ({message})"),
            FailureKind::Budget { detail } => write!(f, "budget ({detail})"),
            FailureKind::Quota { signature } => write!(f, "quota ({signature})"),
            FailureKind::RevertsLandedWork { undone } => {
                let each: Vec<String> = undone.iter().map(|u| u.to_string()).collect();
                write!(f, "reverts-landed-work (it undoes {})", each.join("; "))
            }
        }
    }
}

/// An attempt's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AttemptState {
    /// Created, waiting for its worktree to be requested.
    Queued,
    /// Its branch and worktree are being created.
    Provisioning,
    /// The agent is running.
    Running,
    /// The worker gate is running in the task worktree.
    Validating,
    /// Waiting for, or doing, the in-memory merge into the integration head.
    Merging,
    /// The integration gate is running on the merge commit, or the ref is advancing.
    Integrating,
    /// Merged, validated, and in the integration ref.
    Succeeded,
    /// Passed its worker gate; its work waits for a person on its branch (`[review]`).
    /// An approval's claim integrates it as a new attempt of the task.
    AwaitingReview,
    /// Failed; see the kind.
    Failed(FailureKind),
    /// Canceled by a person or by a run cancel.
    Canceled,
    /// Found in flight after a crash.
    Interrupted,
}

/// [`AttemptState`] without its payload, for the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptPhase {
    /// See [`AttemptState::Queued`].
    Queued,
    /// See [`AttemptState::Provisioning`].
    Provisioning,
    /// See [`AttemptState::Running`].
    Running,
    /// See [`AttemptState::Validating`].
    Validating,
    /// See [`AttemptState::Merging`].
    Merging,
    /// See [`AttemptState::Integrating`].
    Integrating,
    /// See [`AttemptState::Succeeded`].
    Succeeded,
    /// See [`AttemptState::AwaitingReview`].
    AwaitingReview,
    /// See [`AttemptState::Failed`].
    Failed,
    /// See [`AttemptState::Canceled`].
    Canceled,
    /// See [`AttemptState::Interrupted`].
    Interrupted,
}

impl AttemptPhase {
    /// Every phase.
    pub const ALL: [AttemptPhase; 11] = [
        AttemptPhase::Queued,
        AttemptPhase::Provisioning,
        AttemptPhase::Running,
        AttemptPhase::Validating,
        AttemptPhase::Merging,
        AttemptPhase::Integrating,
        AttemptPhase::Succeeded,
        AttemptPhase::AwaitingReview,
        AttemptPhase::Failed,
        AttemptPhase::Canceled,
        AttemptPhase::Interrupted,
    ];

    /// True for states an attempt never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AttemptPhase::Succeeded
                | AttemptPhase::AwaitingReview
                | AttemptPhase::Failed
                | AttemptPhase::Canceled
                | AttemptPhase::Interrupted
        )
    }
}

impl AttemptState {
    /// The state without its payload.
    pub fn phase(&self) -> AttemptPhase {
        match self {
            AttemptState::Queued => AttemptPhase::Queued,
            AttemptState::Provisioning => AttemptPhase::Provisioning,
            AttemptState::Running => AttemptPhase::Running,
            AttemptState::Validating => AttemptPhase::Validating,
            AttemptState::Merging => AttemptPhase::Merging,
            AttemptState::Integrating => AttemptPhase::Integrating,
            AttemptState::Succeeded => AttemptPhase::Succeeded,
            AttemptState::AwaitingReview => AttemptPhase::AwaitingReview,
            AttemptState::Failed(_) => AttemptPhase::Failed,
            AttemptState::Canceled => AttemptPhase::Canceled,
            AttemptState::Interrupted => AttemptPhase::Interrupted,
        }
    }

    /// True for states an attempt never leaves.
    pub fn is_terminal(&self) -> bool {
        self.phase().is_terminal()
    }
}

/// The failure kinds each live phase may end in.
const ATTEMPT_FAILURES: &[(AttemptPhase, &[FailureClass])] = &[
    (AttemptPhase::Queued, &[FailureClass::Infrastructure]),
    (AttemptPhase::Provisioning, &[FailureClass::Infrastructure]),
    (
        AttemptPhase::Running,
        &[
            FailureClass::AgentError,
            FailureClass::Timeout,
            FailureClass::NoChanges,
            FailureClass::Infrastructure,
            FailureClass::Budget,
            FailureClass::Quota,
        ],
    ),
    (
        AttemptPhase::Validating,
        &[
            FailureClass::WorkerValidation,
            FailureClass::Timeout,
            FailureClass::Infrastructure,
        ],
    ),
    (
        AttemptPhase::Merging,
        &[
            FailureClass::Conflict,
            FailureClass::RevertsLandedWork,
            FailureClass::Infrastructure,
        ],
    ),
    (
        AttemptPhase::Integrating,
        &[
            FailureClass::IntegrationValidation,
            FailureClass::Timeout,
            FailureClass::Infrastructure,
        ],
    ),
];

/// The attempt transition table, besides failing (see `ATTEMPT_FAILURES`): every
/// live phase may also become `canceled` or `interrupted`.
const ATTEMPT_TABLE: &[(AttemptPhase, AttemptPhase)] = &[
    (AttemptPhase::Queued, AttemptPhase::Provisioning),
    (AttemptPhase::Provisioning, AttemptPhase::Running),
    (AttemptPhase::Running, AttemptPhase::Validating),
    (AttemptPhase::Validating, AttemptPhase::Merging),
    (AttemptPhase::Validating, AttemptPhase::AwaitingReview),
    // An approved review's work, integrated as it is: no agent, no worker gate.
    (AttemptPhase::Queued, AttemptPhase::Merging),
    (AttemptPhase::Merging, AttemptPhase::Integrating),
    (AttemptPhase::Integrating, AttemptPhase::Succeeded),
    // Another run landed first on a shared line: merged again onto its new head.
    (AttemptPhase::Integrating, AttemptPhase::Merging),
];

/// An illegal state change: a bug in the caller, reported as a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {machine} transition: {from} -> {to}")]
pub struct IllegalTransition {
    /// `attempt` or `run`.
    pub machine: &'static str,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
}

/// Checks an attempt transition against the table.
pub fn check_attempt(from: &AttemptState, to: &AttemptState) -> Result<(), IllegalTransition> {
    let (f, t) = (from.phase(), to.phase());
    let ok = !f.is_terminal()
        && match to {
            AttemptState::Canceled | AttemptState::Interrupted => true,
            AttemptState::Failed(kind) => ATTEMPT_FAILURES
                .iter()
                .any(|(p, classes)| *p == f && classes.contains(&kind.class())),
            _ => ATTEMPT_TABLE.contains(&(f, t)),
        };
    if ok {
        Ok(())
    } else {
        Err(IllegalTransition {
            machine: "attempt",
            from: format!("{f:?}").to_lowercase(),
            to: format!("{t:?}").to_lowercase(),
        })
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Configured, not started.
    Created,
    /// Claiming and working.
    Running,
    /// No new claims; waiting for live attempts to end.
    Draining,
    /// Finished: nothing left to claim.
    Completed,
    /// Finished after a cancel.
    Canceled,
    /// Finished after the conflict policy `halt` (or a planner's stop).
    Halted,
}

impl RunState {
    /// Every state.
    pub const ALL: [RunState; 6] = [
        RunState::Created,
        RunState::Running,
        RunState::Draining,
        RunState::Completed,
        RunState::Canceled,
        RunState::Halted,
    ];

    /// True once the run has finished.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Canceled | RunState::Halted
        )
    }
}

/// The run transition table.
const RUN_TABLE: &[(RunState, RunState)] = &[
    (RunState::Created, RunState::Running),
    (RunState::Created, RunState::Canceled),
    (RunState::Running, RunState::Draining),
    (RunState::Running, RunState::Completed),
    (RunState::Draining, RunState::Completed),
    (RunState::Draining, RunState::Canceled),
    (RunState::Draining, RunState::Halted),
];

/// Checks a run transition against the table.
pub fn check_run(from: RunState, to: RunState) -> Result<(), IllegalTransition> {
    if RUN_TABLE.contains(&(from, to)) {
        Ok(())
    } else {
        Err(IllegalTransition {
            machine: "run",
            from: format!("{from:?}").to_lowercase(),
            to: format!("{to:?}").to_lowercase(),
        })
    }
}

/// A validation stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// In the task worktree, on the attempt's head.
    Worker,
    /// On the merge commit, in the integration worktree.
    Integration,
}

impl Stage {
    /// `worker` or `integration`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Worker => "worker",
            Stage::Integration => "integration",
        }
    }
}

/// A hunk of an attempt's change that undoes another task's landed work: it removes
/// lines that task added, putting back what they replaced (`restores`) or nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Undo {
    /// The task whose work it undoes (its key, as its commit's trailer names it).
    pub task: String,
    /// The file.
    pub file: String,
    /// The lines of the attempt's base it replaces (first, last; 1-based).
    pub lines: (u32, u32),
    /// True when it puts back what that task's change replaced; false when it only
    /// removes what the task added.
    pub restores: bool,
}

impl std::fmt::Display for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.lines;
        let lines = if a == b {
            format!("line {a}")
        } else {
            format!("lines {a}-{b}")
        };
        let how = if self.restores {
            "puts back what it replaced"
        } else {
            "removes what it added"
        };
        write!(f, "{}'s change to {} {lines} ({how})", self.task, self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(p: AttemptPhase) -> Vec<AttemptState> {
        match p {
            AttemptPhase::Queued => vec![AttemptState::Queued],
            AttemptPhase::Provisioning => vec![AttemptState::Provisioning],
            AttemptPhase::Running => vec![AttemptState::Running],
            AttemptPhase::Validating => vec![AttemptState::Validating],
            AttemptPhase::Merging => vec![AttemptState::Merging],
            AttemptPhase::Integrating => vec![AttemptState::Integrating],
            AttemptPhase::Succeeded => vec![AttemptState::Succeeded],
            AttemptPhase::AwaitingReview => vec![AttemptState::AwaitingReview],
            AttemptPhase::Canceled => vec![AttemptState::Canceled],
            AttemptPhase::Interrupted => vec![AttemptState::Interrupted],
            AttemptPhase::Failed => vec![
                AttemptState::Failed(FailureKind::AgentError { detail: "x".into() }),
                AttemptState::Failed(FailureKind::Timeout {
                    phase: "agent".into(),
                }),
                AttemptState::Failed(FailureKind::NoChanges),
                AttemptState::Failed(FailureKind::WorkerValidation {
                    summary: String::new(),
                }),
                AttemptState::Failed(FailureKind::Conflict { paths: vec![] }),
                AttemptState::Failed(FailureKind::IntegrationValidation {
                    summary: String::new(),
                }),
                AttemptState::Failed(FailureKind::Infrastructure {
                    message: String::new(),
                }),
                AttemptState::Failed(FailureKind::Budget {
                    detail: String::new(),
                }),
                AttemptState::Failed(FailureKind::Quota {
                    signature: String::new(),
                }),
                AttemptState::Failed(FailureKind::RevertsLandedWork { undone: vec![] }),
            ],
        }
    }

    /// Every pair of states, against the rules written out independently here.
    #[test]
    fn attempt_table_is_exhaustively_what_the_design_says() {
        use AttemptPhase::*;
        let forward = [
            (Queued, Provisioning),
            (Provisioning, Running),
            (Running, Validating),
            (Validating, Merging),
            (Validating, AwaitingReview),
            (Queued, Merging),
            (Merging, Integrating),
            (Integrating, Succeeded),
            (Integrating, Merging),
        ];
        let mut legal = 0;
        for f in AttemptPhase::ALL {
            for t in AttemptPhase::ALL {
                for from in sample(f) {
                    for to in sample(t) {
                        let ok = check_attempt(&from, &to).is_ok();
                        let expected = !f.is_terminal()
                            && match &to {
                                AttemptState::Canceled | AttemptState::Interrupted => true,
                                AttemptState::Failed(k) => match k {
                                    FailureKind::Infrastructure { .. } => true,
                                    FailureKind::AgentError { .. }
                                    | FailureKind::NoChanges
                                    | FailureKind::Budget { .. }
                                    | FailureKind::Quota { .. } => f == Running,
                                    FailureKind::Timeout { .. } => {
                                        matches!(f, Running | Validating | Integrating)
                                    }
                                    FailureKind::WorkerValidation { .. } => f == Validating,
                                    FailureKind::Conflict { .. }
                                    | FailureKind::RevertsLandedWork { .. } => f == Merging,
                                    FailureKind::IntegrationValidation { .. } => f == Integrating,
                                },
                                _ => forward.contains(&(f, t)),
                            };
                        assert_eq!(ok, expected, "{from:?} -> {to:?}");
                        legal += ok as usize;
                    }
                }
            }
        }
        assert_eq!(legal, 8 + 6 * 2 + 6 + (2 + 2) + 3 + 1 + 1 + 1 + 2);
    }

    #[test]
    fn run_table_is_exhaustive() {
        let mut legal = Vec::new();
        for f in RunState::ALL {
            for t in RunState::ALL {
                if check_run(f, t).is_ok() {
                    legal.push((f, t));
                }
            }
        }
        assert_eq!(legal.len(), 7);
        for (f, _) in &legal {
            assert!(!f.is_terminal());
        }
        let err = check_run(RunState::Completed, RunState::Running).unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal run transition: completed -> running"
        );
    }

    #[test]
    fn names() {
        let a = AttemptId {
            task: TaskId(7),
            number: 2,
        };
        assert_eq!(a.branch(&RunId("r1".into())), "orch/r1/task-7-2");
        assert_eq!(
            FailureKind::Conflict {
                paths: vec!["a".into(), "b".into()]
            }
            .to_string(),
            "conflict (a, b)"
        );
    }
}
