//! The attempt lifecycle. An attempt's state ([`AttemptRecord::state`]) is the one
//! source of truth; what it waits on from the outside world ([`Op`]) is derived from
//! that state and a `busy` flag, never stored beside it.

use std::collections::{BTreeMap, BTreeSet};

use super::Refusal;
use super::io::{Retention, Stage};
use super::journal::AttemptRecord;
use super::report::{AgentExit, Changes};
use super::types::{AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind};
use crate::config::Cleanup;
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

    /// Marks the attempt stopped for `why`: true when that is new and its operation
    /// must be stopped now. A re-stack gives way to a person's or the run's reason,
    /// which then decides, when the stopped operation comes back, how it ends.
    pub(super) fn stop(&mut self, why: Abort) -> bool {
        match (self.abort, why) {
            (None, _) => {
                self.abort = Some(why);
                true
            }
            (Some(Abort::Restack), w) if !matches!(w, Abort::Timeout(_) | Abort::Restack) => {
                self.abort = Some(w);
                false
            }
            (Some(_), _) => false,
        }
    }

    /// How the attempt's cleanup goes, as `policy` says: how long its logs stay,
    /// whether its worktree goes, and whether its branch does. An interrupted attempt's partial work is
    /// superseded by the one that replaces it, so it goes as a success's does.
    ///
    /// Work awaiting review keeps its branch whatever the policy says: it is what a
    /// person reviews, and what an approval integrates; so does a conflict a person
    /// resolves (`keep_conflicts`, `policy.on_conflict = "ask"`).
    pub(super) fn cleanup_plan(
        &self,
        policy: Cleanup,
        keep_conflicts: bool,
    ) -> (Retention, bool, bool) {
        let retention = match self.rec.state {
            AttemptState::Succeeded | AttemptState::Interrupted | AttemptState::AwaitingReview => {
                Retention::Success
            }
            _ => Retention::Failure,
        };
        let remove = match policy {
            Cleanup::Always => true,
            Cleanup::OnSuccess => retention == Retention::Success,
            Cleanup::Never => false,
        };
        let keep_branch = match &self.rec.state {
            AttemptState::AwaitingReview => true,
            AttemptState::Failed(FailureKind::Conflict { .. }) => keep_conflicts,
            _ => false,
        };
        (retention, remove, remove && !keep_branch)
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

    /// The operation a live attempt has out, if any.
    pub(super) fn op_out(&self, a: AttemptId) -> Option<Op> {
        self.get(a)?.op().filter(|_| self.live.contains(&a))
    }

    /// Refuses an answer to `op` unless `a` is live and waiting on it.
    pub(super) fn expecting(&self, a: AttemptId, op: Op) -> Result<(), Refusal> {
        match self.get(a) {
            Some(x) if x.op() == Some(op) && self.live.contains(&a) => Ok(()),
            Some(x) => Err(Refusal::NotWaiting {
                attempt: a,
                answers: format!("{op:?}"),
                waits_for: x.op().map(|o| format!("{o:?}")),
            }),
            None => Err(Refusal::UnknownAttempt(a)),
        }
    }

    /// The attempts of `a`'s task before it, newest first.
    fn earlier(&self, a: AttemptId) -> impl Iterator<Item = &Attempt> {
        self.of_task(a.task)
            .rev()
            .filter(move |(id, _)| id.number < a.number)
            .map(|(_, x)| x)
    }

    /// The task's attempt before `a`.
    pub(super) fn before(&self, a: AttemptId) -> Option<&Attempt> {
        self.earlier(a).next()
    }

    /// The base of the task's attempt before `a`.
    pub(super) fn base_before(&self, a: AttemptId) -> Option<CommitId> {
        self.before(a).map(|x| x.rec.base.clone())
    }

    /// The newest agent session an earlier attempt of `a`'s task reported.
    pub(super) fn session_before(&self, a: AttemptId) -> Option<String> {
        self.earlier(a)
            .find_map(|x| x.rec.usage.as_ref()?.session_id.clone())
    }

    /// (attempts that count against the task's budget, failures spent from its stale
    /// budget), in attempt order. Failures for the agent's reasons count, and
    /// successes; interruptions and orch's own failures do not. A failure whose next
    /// attempt started on another base was the stale head's, while `stale_retries`
    /// last.
    pub(super) fn tally(&self, task: TaskId, stale_retries: u32) -> (u32, u32) {
        let attempts: Vec<_> = self.of_task(task).map(|(_, a)| &a.rec).collect();
        let (mut counted, mut stale) = (0, 0);
        for (i, rec) in attempts.iter().enumerate() {
            match &rec.state {
                AttemptState::Failed(k) if k.counts() => {
                    let next_base = attempts.get(i + 1).map(|n| &n.base);
                    if next_base.is_some_and(|b| *b != rec.base) && stale < stale_retries {
                        stale += 1;
                    } else {
                        counted += 1;
                    }
                }
                s if s.phase() == AttemptPhase::Succeeded => counted += 1,
                _ => {}
            }
        }
        (counted, stale)
    }
}

/// The agent's exit judged: the failure it is, or the `changes` it committed on its
/// branch (not yet a success: its gates decide).
/// `hint` is what its output said about a failure; `symlinks_inside` refuses links
/// that leave the repository.
pub(super) fn judge_exit(
    exit: &AgentExit,
    changes: Option<Changes>,
    hint: Option<String>,
    symlinks_inside: bool,
) -> Result<Changes, FailureKind> {
    let detail = match exit {
        AgentExit::Code(0) => None,
        AgentExit::Code(c) => Some(format!("exit code {c}")),
        AgentExit::Signal(s) => Some(format!("killed by signal {s}")),
        AgentExit::FailedToStart(m) => Some(format!("failed to start: {m}")),
    };
    if let Some(detail) = detail {
        let detail = match hint {
            Some(h) => format!("{detail}; {h}"),
            None => detail,
        };
        return Err(FailureKind::AgentError { detail });
    }
    let Some(changes) = changes else {
        let why = hint.map(|h| format!(": {h}")).unwrap_or_default();
        return Err(FailureKind::Infrastructure {
            message: format!("the agent's work could not be committed{why}"),
        });
    };
    if let Some(misdeed) = misbehaviour(&changes) {
        return Err(FailureKind::AgentError { detail: misdeed });
    }
    let escaping = crate::symlinks::refused(&changes.symlinks);
    if symlinks_inside && !escaping.is_empty() {
        let links: Vec<String> = escaping.iter().map(|l| l.to_string()).collect();
        let detail = format!(
            "the agent committed symlinks that leave the repository ({}); policy.symlinks = \"inside\" allows only links to paths inside it",
            links.join(", ")
        );
        return Err(FailureKind::AgentError { detail });
    }
    Ok(changes)
}

/// What the agent did to its branch that it must not: the retry prompt quotes it.
fn misbehaviour(c: &Changes) -> Option<String> {
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
