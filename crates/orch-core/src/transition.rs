//! The task transition table: the one place that decides which task moves are legal.
//!
//! A move is requested by an [`Actor`]. The orchestrator claims, finishes and releases
//! tasks; a human sets tasks aside, reopens them, and may *force* any move, which is
//! recorded as a manual override. Only the orchestrator moves a task to `done`
//! without force, and only after its gates pass (the engine's side of that promise).

use serde::{Deserialize, Serialize};

use crate::task::TaskStatus::{self, *};

/// Who asks for a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The run engine, acting on the core's decisions.
    Orchestrator,
    /// A person, through the CLI or another frontend.
    Human,
}

/// Which actors may make a move without force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Orchestrator,
    Human,
    Either,
}

impl Who {
    fn allows(self, actor: Actor) -> bool {
        matches!(
            (self, actor),
            (Who::Either, _)
                | (Who::Orchestrator, Actor::Orchestrator)
                | (Who::Human, Actor::Human)
        )
    }
}

/// The table: (from, to, who may, the name of the move).
const TABLE: &[(TaskStatus, TaskStatus, Who, &str)] = &[
    (Backlog, InProgress, Who::Orchestrator, "claim"),
    (InProgress, Done, Who::Orchestrator, "complete"),
    (InProgress, Review, Who::Orchestrator, "submit for review"),
    (
        Review,
        InProgress,
        Who::Orchestrator,
        "claim the approved work",
    ),
    (Review, Backlog, Who::Human, "send back"),
    (Review, Failed, Who::Human, "reject"),
    (Review, Blocked, Who::Human, "block"),
    (Review, Canceled, Who::Either, "cancel"),
    (InProgress, Failed, Who::Orchestrator, "fail"),
    (InProgress, Blocked, Who::Orchestrator, "block"),
    (InProgress, Backlog, Who::Orchestrator, "release"),
    (InProgress, Canceled, Who::Either, "cancel"),
    (Backlog, Blocked, Who::Human, "block"),
    (Backlog, Canceled, Who::Either, "cancel"),
    (Blocked, Backlog, Who::Either, "unblock"),
    (Blocked, Canceled, Who::Human, "cancel"),
    (Failed, Backlog, Who::Human, "retry"),
    (Failed, Canceled, Who::Human, "cancel"),
    (Canceled, Backlog, Who::Human, "reopen"),
];

/// An accepted move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// A move in the table, with its name (`claim`, `retry`, ...).
    Regular(&'static str),
    /// A forced move outside the table, recorded as a manual override.
    Override,
}

/// Why a move was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveRejected {
    /// The task is already there.
    #[error("the task is already {0}")]
    Unchanged(TaskStatus),
    /// Only the orchestrator marks a task done, through the gates.
    #[error(
        "only the orchestrator marks a task done, after its worker validation, merge and \
         integration validation pass; use --force to record a manual override"
    )]
    DoneNeedsGates,
    /// Only the orchestrator makes this move.
    #[error(
        "only the orchestrator moves a task from {from} to {to}; use --force to record a manual override"
    )]
    OrchestratorOnly {
        /// Current status.
        from: TaskStatus,
        /// Requested status.
        to: TaskStatus,
    },
    /// The move is not in the table at all.
    #[error(
        "a task cannot move from {from} to {to}; from {from} it can move to: {}; use --force to record a manual override",
        list(allowed)
    )]
    NotAllowed {
        /// Current status.
        from: TaskStatus,
        /// Requested status.
        to: TaskStatus,
        /// Where `actor` may move it from `from`.
        allowed: Vec<TaskStatus>,
    },
}

fn list(s: &[TaskStatus]) -> String {
    if s.is_empty() {
        return "nowhere".to_owned();
    }
    s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The statuses `actor` may move a task to from `from`, without force.
pub fn allowed_targets(from: TaskStatus, actor: Actor) -> Vec<TaskStatus> {
    TABLE
        .iter()
        .filter(|(f, _, who, _)| *f == from && who.allows(actor))
        .map(|(_, t, _, _)| *t)
        .collect()
}

/// Decides a move. `force` is honoured for humans only; the orchestrator never forces.
pub fn check_move(
    from: TaskStatus,
    to: TaskStatus,
    actor: Actor,
    force: bool,
) -> Result<Move, MoveRejected> {
    if from == to {
        return Err(MoveRejected::Unchanged(from));
    }
    match TABLE.iter().find(|(f, t, _, _)| *f == from && *t == to) {
        Some((_, _, who, name)) if who.allows(actor) => Ok(Move::Regular(name)),
        _ if force && actor == Actor::Human => Ok(Move::Override),
        _ if to == Done => Err(MoveRejected::DoneNeedsGates),
        Some(_) => Err(MoveRejected::OrchestratorOnly { from, to }),
        None => Err(MoveRejected::NotAllowed {
            from,
            to,
            allowed: allowed_targets(from, actor),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (from, to, actor, force) combination, checked against the rules stated in
    /// the module docs rather than against the table itself.
    #[test]
    fn exhaustive() {
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                for actor in [Actor::Orchestrator, Actor::Human] {
                    for force in [false, true] {
                        let r = check_move(from, to, actor, force);
                        if from == to {
                            assert_eq!(r, Err(MoveRejected::Unchanged(from)));
                            continue;
                        }
                        let in_table = TABLE.iter().any(|(f, t, _, _)| *f == from && *t == to);
                        match r {
                            Ok(Move::Override) => {
                                assert!(force && actor == Actor::Human)
                            }
                            Ok(Move::Regular(_)) => {
                                assert!(in_table);
                                if to == Done {
                                    assert_eq!(actor, Actor::Orchestrator, "{from}->{to}");
                                }
                            }
                            Err(_) => assert!(!(force && actor == Actor::Human)),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn done_by_hand_needs_force() {
        for from in [Backlog, InProgress, Failed] {
            let err = check_move(from, Done, Actor::Human, false).unwrap_err();
            assert_eq!(err, MoveRejected::DoneNeedsGates);
            assert!(err.to_string().contains("--force"), "{err}");
        }
        assert_eq!(
            check_move(Backlog, Done, Actor::Human, true),
            Ok(Move::Override)
        );
        assert_eq!(
            check_move(InProgress, Done, Actor::Orchestrator, false),
            Ok(Move::Regular("complete"))
        );
        // The orchestrator cannot force.
        assert!(check_move(Backlog, Done, Actor::Orchestrator, true).is_err());
    }

    #[test]
    fn rejection_lists_allowed_targets() {
        let err = check_move(Done, Backlog, Actor::Human, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a task cannot move from done to backlog; from done it can move to: nowhere; \
             use --force to record a manual override"
        );
        assert_eq!(
            allowed_targets(Failed, Actor::Human),
            vec![Backlog, Canceled]
        );
    }
}
