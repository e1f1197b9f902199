//! Landing policy: how a run opens the integration line it builds on, and what its
//! finish may do to the target branch. Decided from facts the engine reads from git
//! (in the style of [`crate::cleanup::plan`]); nothing here touches git.

use crate::config::{Finish, RunConfig};
use crate::run::{CommitId, RunState};

/// Where the integration line and the base stand when a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFacts {
    /// The line's head; `None` when the branch does not exist yet.
    pub line: Option<CommitId>,
    /// The base the run resolved.
    pub base: CommitId,
    /// The base is the line's head or one of its ancestors.
    pub base_in_line: bool,
    /// The line's head is an ancestor of the base (the line was landed, and the base
    /// moved on since).
    pub line_in_base: bool,
}

/// How a run opens its integration line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOpen {
    /// No line yet: create it at the base.
    Create,
    /// The line holds the base: build on its head.
    Continue(CommitId),
    /// Everything on the line is in the base already: move the line to the base
    /// (compare-and-swap from its head). Nothing new needs validating.
    FastForward {
        /// The line's head.
        from: CommitId,
    },
    /// The base moved on beside the line: merge the base into the line in memory,
    /// validate the merge with the integration gate, and advance the line to it.
    MergeBase {
        /// The line's head.
        onto: CommitId,
    },
}

/// Decides how a run opens the line.
pub fn open_line(f: &LineFacts) -> LineOpen {
    match &f.line {
        None => LineOpen::Create,
        Some(l) if f.base_in_line => LineOpen::Continue(l.clone()),
        Some(l) if f.line_in_base => LineOpen::FastForward { from: l.clone() },
        Some(l) => LineOpen::MergeBase { onto: l.clone() },
    }
}

/// Whether the integration line's head is work orch put there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineTrust {
    /// A run started from it, validated it or landed it, or the base holds it.
    Trusted,
    /// Nothing orch did put it there: an agent or a person moved the line. Nothing
    /// lands from it, and no run builds on it, until it is put back.
    Untrusted {
        /// The line's head.
        head: CommitId,
        /// The newest trusted commit below it on its first-parent history, if any
        /// was found: where `orch land --reset-line` puts the line back.
        last_validated: Option<CommitId>,
    },
}

/// Judges the line from its first-parent history, head first, each commit with
/// whether it is trusted (see [`LineTrust::Trusted`]).
pub fn trust_line(history: &[(CommitId, bool)]) -> LineTrust {
    match history.first() {
        None | Some((_, true)) => LineTrust::Trusted,
        Some((head, false)) => LineTrust::Untrusted {
            head: head.clone(),
            last_validated: history.iter().find(|(_, t)| *t).map(|(c, _)| c.clone()),
        },
    }
}

/// What is known of a line found away from where a run left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedLine {
    /// Its head builds on the head the run left.
    pub builds_on: bool,
    /// A run's journal says it validated that head (written before that run's advance,
    /// which it licensed). Unreadable counts as no.
    pub vouched: bool,
}

/// Whether the line moved by orch's own validated work (another run landed on a shared
/// line): only when its head builds on the run's and a journal vouches for it. A pin
/// under `refs/orch/` is not enough, since any agent can write one. Anything else is a
/// ref moved outside orch, and halts the run.
pub fn moved_by_orch(m: MovedLine) -> bool {
    m.builds_on && m.vouched
}

/// How a run's work lands on its target when the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishLanding {
    /// Fast-forward the target (by compare-and-swap).
    pub fast_forward: bool,
    /// Push it.
    pub push: bool,
    /// Bring a clean checkout of the target along.
    pub update_checkout: bool,
}

/// Whether a run that ended in `state` lands its work as `run.finish` says: only a
/// completed run, whose line still holds the head it validated, and never with
/// `finish = "leave"` (`orch land` is then the person's to run).
pub fn land_at_finish(
    run: &RunConfig,
    state: RunState,
    holds_validated: bool,
) -> Option<FinishLanding> {
    (run.finish != Finish::Leave && state == RunState::Completed && holds_validated).then_some(
        FinishLanding {
            fast_forward: run.finish.fast_forwards(),
            push: run.finish.pushes(),
            update_checkout: run.update_checkout,
        },
    )
}

/// The user's checkout of the target branch, if they have it checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The worktree's path, for messages.
    pub path: String,
    /// No changes and no untracked files.
    pub clean: bool,
}

/// Where the target branch and the line stand when a run finishes (or `orch land`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFacts {
    /// The target branch.
    pub target: String,
    /// Its head.
    pub head: CommitId,
    /// The line's validated head.
    pub line: CommitId,
    /// The line's head is the target's head or an ancestor: nothing to land.
    pub landed: bool,
    /// The target's head is an ancestor of the line: a fast-forward lands it.
    pub fast_forward: bool,
    /// The target's checkout, if some worktree has it checked out.
    pub checkout: Option<Checkout>,
    /// Update a clean checkout's files too (`orch land` does unless
    /// `--no-update-checkout`; a run's finish, with `run.update_checkout`).
    pub update_checkout: bool,
}

/// What a finish does with the target branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Land {
    /// The target holds the line already.
    UpToDate,
    /// The target moved on beside the line: merge it into the line, validate, and
    /// decide again.
    MergeTargetFirst,
    /// Move the target's ref by compare-and-swap; no checkout is touched.
    MoveRef,
    /// Move the ref and update the user's clean checkout.
    MoveRefAndCheckout,
    /// The target is checked out: orch does not touch the user's files, and says what
    /// to run instead.
    Instruct {
        /// What to run, in the checkout.
        command: String,
        /// Why orch did not.
        why: String,
    },
}

/// Decides what a finish does with the target branch.
pub fn land(f: &TargetFacts) -> Land {
    if f.landed {
        return Land::UpToDate;
    }
    if !f.fast_forward {
        return Land::MergeTargetFirst;
    }
    let Some(c) = &f.checkout else {
        return Land::MoveRef;
    };
    let command = format!("git -C {} merge --ff-only {}", c.path, f.line);
    match (c.clean, f.update_checkout) {
        (true, true) => Land::MoveRefAndCheckout,
        (false, true) => Land::Instruct {
            command,
            why: format!(
                "{} is checked out in {} with uncommitted changes, so orch touches nothing; commit or stash them and run",
                f.target, c.path
            ),
        },
        (_, false) => Land::Instruct {
            command,
            why: format!(
                "{} is checked out in {}, and orch changes your files only when asked (`orch land` does, when the checkout is clean); run",
                f.target, c.path
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a completed run whose line holds what it validated lands, and never with
    /// `finish = "leave"`.
    #[test]
    fn a_run_lands_at_its_finish_only_when_completed_validated_and_asked() {
        let mut run = RunConfig {
            finish: Finish::FastForwardPush,
            ..RunConfig::default()
        };
        let lands = land_at_finish(&run, RunState::Completed, true).expect("it lands");
        assert!(lands.fast_forward && lands.push && !lands.update_checkout);
        assert_eq!(land_at_finish(&run, RunState::Completed, false), None);
        assert_eq!(land_at_finish(&run, RunState::Halted, true), None);
        run.finish = Finish::Leave;
        assert_eq!(land_at_finish(&run, RunState::Completed, true), None);
    }

    /// Only a head that builds on the run's and that a journal vouches for was moved by
    /// orch; a pin an agent wrote vouches for nothing.
    #[test]
    fn a_line_moved_by_orch_builds_on_the_run_and_is_vouched_for() {
        let m = |builds_on, vouched| moved_by_orch(MovedLine { builds_on, vouched });
        assert!(m(true, true));
        assert!(!m(true, false) && !m(false, true) && !m(false, false));
    }

    fn c(s: &str) -> CommitId {
        CommitId(s.into())
    }

    #[test]
    fn the_line_opens_by_ancestry() {
        let f = |line: Option<&str>, base_in_line, line_in_base| LineFacts {
            line: line.map(c),
            base: c("b"),
            base_in_line,
            line_in_base,
        };
        assert_eq!(open_line(&f(None, false, false)), LineOpen::Create);
        assert_eq!(
            open_line(&f(Some("l"), true, false)),
            LineOpen::Continue(c("l"))
        );
        assert_eq!(
            open_line(&f(Some("l"), false, true)),
            LineOpen::FastForward { from: c("l") }
        );
        assert_eq!(
            open_line(&f(Some("l"), false, false)),
            LineOpen::MergeBase { onto: c("l") }
        );
    }

    #[test]
    fn a_line_on_work_nothing_validated_names_the_last_validated_commit() {
        assert_eq!(trust_line(&[]), LineTrust::Trusted);
        assert_eq!(trust_line(&[(c("v"), true)]), LineTrust::Trusted);
        assert_eq!(
            trust_line(&[(c("x"), false), (c("y"), false), (c("v"), true)]),
            LineTrust::Untrusted {
                head: c("x"),
                last_validated: Some(c("v")),
            }
        );
        assert_eq!(
            trust_line(&[(c("x"), false)]),
            LineTrust::Untrusted {
                head: c("x"),
                last_validated: None,
            }
        );
    }

    #[test]
    fn a_checked_out_target_is_never_touched_unless_asked_and_clean() {
        let f = |checkout: Option<bool>, update| TargetFacts {
            target: "main".into(),
            head: c("m"),
            line: c("l"),
            landed: false,
            fast_forward: true,
            checkout: checkout.map(|clean| Checkout {
                path: "/src".into(),
                clean,
            }),
            update_checkout: update,
        };
        assert_eq!(land(&f(None, false)), Land::MoveRef);
        assert_eq!(land(&f(Some(true), true)), Land::MoveRefAndCheckout);
        assert!(
            matches!(land(&f(Some(false), true)), Land::Instruct { why, .. } if why.contains("uncommitted"))
        );
        assert!(
            matches!(land(&f(Some(true), false)), Land::Instruct { command, .. } if command == "git -C /src merge --ff-only l")
        );
        let moved = TargetFacts {
            fast_forward: false,
            ..f(None, false)
        };
        assert_eq!(land(&moved), Land::MergeTargetFirst);
        let done = TargetFacts {
            landed: true,
            ..moved
        };
        assert_eq!(land(&done), Land::UpToDate);
    }
}
