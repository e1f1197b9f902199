//! The attempt lifecycle. An attempt's state ([`AttemptRecord::state`]) is the one
//! source of truth; what it waits on from the outside world ([`Op`]) is derived from
//! that state and a `busy` flag, never stored beside it.

use std::collections::{BTreeMap, BTreeSet};

use super::io::{Changes, Stage};
use super::journal::AttemptRecord;
use super::types::{AttemptId, AttemptPhase, FailureKind};
use crate::task::TaskId;

/// What an attempt waits on from the outside world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Provision,
    Agent,
    Gate(Stage),
    Merge,
    AdvanceRef,
}

/// Why an attempt is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Abort {
    /// The phase that ran out of time: `agent`, `worker` or `integration`.
    Timeout(&'static str),
    CancelTask,
    CancelRun,
    /// A person moved or removed the task: the run let it go.
    Taken,
    /// The task's budget is spent.
    Budget,
    /// The agent hit a rate limit or quota.
    Quota,
    /// A candidate below it in the integration stack left: its gate's or merge's
    /// result no longer counts, and it is stacked again.
    Restack,
}

/// One attempt, as the core tracks it.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    pub(super) rec: AttemptRecord,
    /// An operation of this attempt is out in the world.
    pub(super) busy: bool,
    pub(super) abort: Option<Abort>,
    pub(super) note: Option<String>,
    pub(super) previous_failure: Option<FailureKind>,
}

impl Attempt {
    pub(super) fn new(
        rec: AttemptRecord,
        note: Option<String>,
        previous_failure: Option<FailureKind>,
    ) -> Attempt {
        Attempt {
            rec,
            busy: false,
            abort: None,
            note,
            previous_failure,
        }
    }

    /// What the attempt waits on, derived from its state.
    pub(super) fn op(&self) -> Option<Op> {
        if !self.busy {
            return None;
        }
        Some(match self.rec.state.phase() {
            AttemptPhase::Provisioning => Op::Provision,
            AttemptPhase::Running => Op::Agent,
            AttemptPhase::Validating => Op::Gate(Stage::Worker),
            AttemptPhase::Merging => Op::Merge,
            AttemptPhase::Integrating if self.rec.integration_passed => Op::AdvanceRef,
            AttemptPhase::Integrating => Op::Gate(Stage::Integration),
            _ => return None,
        })
    }

    /// A process (agent or gate) of this attempt is running.
    pub(super) fn has_process(&self) -> bool {
        matches!(self.op(), Some(Op::Agent | Op::Gate(_)))
    }
}

/// Every attempt of the run, and which hold a slot.
#[derive(Debug, Clone, Default)]
pub(super) struct Attempts {
    map: BTreeMap<AttemptId, Attempt>,
    /// Attempts that hold a slot: from claim until terminal.
    pub(super) live: BTreeSet<AttemptId>,
}

impl Attempts {
    pub(super) fn get(&self, a: AttemptId) -> Option<&Attempt> {
        self.map.get(&a)
    }

    pub(super) fn at(&mut self, a: AttemptId) -> &mut Attempt {
        self.map
            .get_mut(&a)
            .expect("the core only names attempts it created")
    }

    pub(super) fn rec(&self, a: AttemptId) -> &AttemptRecord {
        &self
            .map
            .get(&a)
            .expect("the core only names attempts it created")
            .rec
    }

    pub(super) fn insert(&mut self, a: AttemptId, at: Attempt) {
        self.map.insert(a, at);
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&AttemptId, &Attempt)> {
        self.map.iter()
    }

    /// The attempts of one task, oldest first.
    pub(super) fn of_task(
        &self,
        task: TaskId,
    ) -> impl DoubleEndedIterator<Item = (&AttemptId, &Attempt)> {
        let lo = AttemptId { task, number: 0 };
        let hi = AttemptId {
            task,
            number: u32::MAX,
        };
        self.map.range(lo..=hi)
    }

    /// The number of the task's last attempt, 0 if it has none.
    pub(super) fn last_number(&self, task: TaskId) -> u32 {
        self.of_task(task)
            .next_back()
            .map_or(0, |(id, _)| id.number)
    }

    /// The task's live attempt, if any.
    pub(super) fn live_of(&self, task: TaskId) -> Option<AttemptId> {
        self.live.iter().copied().find(|a| a.task == task)
    }
}

/// What the agent did to its branch that it must not: the retry prompt quotes it.
pub(super) fn misbehaviour(c: &Changes) -> Option<String> {
    if let Some(why) = &c.worktree_broken {
        return Some(format!(
            "the agent broke its worktree ({why}); nothing of it was committed, and orch replaces the worktree. An agent may change its worktree's files, not remove it or its .git"
        ));
    }
    if !c.tampered.is_empty() {
        return Some(format!(
            "the agent changed the repository's shared git files ({}); orch undid it. An agent may change only its worktree",
            c.tampered.join("; ")
        ));
    }
    if let Some(to) = &c.branch_moved {
        return Some(format!(
            "the agent moved the worktree off its branch (HEAD is now {to}); it must commit on the branch it was given, without switching branches or detaching HEAD"
        ));
    }
    c.rewrote_history.then(|| {
        "the agent rewrote history: its branch no longer contains the commit it started from; it must add commits, not reset, rebase or amend".to_owned()
    })
}
