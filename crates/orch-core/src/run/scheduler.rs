//! The scheduler: the board as the run sees it, the ready set, deferrals, retries and
//! claims in flight, and how a board change is obeyed.
//!
//! A claim is its own step: [`Command::Claim`] asks the store for a compare-and-swap
//! of the task's status, and only [`Input::Claimed`](super::Input::Claimed) creates the
//! attempt. A refused claim skips the task; the run goes on.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::io::TaskSpec;
use super::policy::touches_overlap;
use super::proposal::{Proposal, Verdict};
use super::types::{AttemptId, CommitId, FailureKind};
use crate::task::{TaskId, TaskStatus};
use crate::time::Timestamp;

/// A task waiting to be retried.
#[derive(Debug, Clone)]
pub(super) struct Retry {
    pub(super) due: crate::time::Timestamp,
    pub(super) previous: Option<FailureKind>,
    /// Set while the retry waits for work in flight (it is not due meanwhile).
    pub(super) wait: Option<Wait>,
}

/// What a retry waits for: the integration line to move on from `base` (the failed
/// attempt's), or else every attempt of `on` (other tasks' work in flight when it
/// failed) to end. With `all`, only the second: a conflict with work still in the
/// integration queue is retried once that work has landed (or failed), not on a
/// line that moved on without it. Either way, first the tasks of `before` (ahead of
/// it on the board, in flight or to be retried when it failed) must have settled: a
/// sequential run would have landed them first, and the work it lacked is most
/// likely theirs (a backlog's later task builds on its earlier ones), so a retry on a
/// line that moved on without them would likely fail again.
#[derive(Debug, Clone)]
pub(super) struct Wait {
    pub(super) attempt: AttemptId,
    pub(super) base: CommitId,
    pub(super) on: BTreeSet<AttemptId>,
    pub(super) all: bool,
    pub(super) before: BTreeSet<TaskId>,
}

/// The board as the run sees it, and what waits to be claimed.
#[derive(Debug, Clone, Default)]
pub(super) struct Scheduler {
    /// Every task the run may consider, with its status as last seen.
    pub(super) tasks: BTreeMap<TaskId, TaskSpec>,
    dependents: BTreeMap<TaskId, Vec<TaskId>>,
    /// Backlog tasks whose dependencies are all done, by priority then age.
    ready: BTreeSet<(Reverse<i32>, TaskId)>,
    /// Tasks the planner deferred until it is asked again.
    pub(super) deferred: BTreeSet<TaskId>,
    /// Tasks of the run waiting to be retried.
    pub(super) retries: BTreeMap<TaskId, Retry>,
    /// Claims sent to the store and not yet answered, with the planner's note.
    pub(super) claiming: BTreeMap<TaskId, Option<String>>,
    /// Tasks whose claim was refused, until the board shows them claimable again.
    skipped: BTreeSet<TaskId>,
}

/// Whether a task waits to be claimed: in the backlog, or in review with its work
/// approved (the claim integrates it).
fn waits_for_claim(spec: &TaskSpec) -> bool {
    spec.status == TaskStatus::Backlog
        || (spec.status == TaskStatus::Review && spec.review.as_ref().is_some_and(|r| r.approved()))
}

/// Whether a run started on `board` would find anything to claim: a backlog task
/// whose dependencies are all done, or approved work. A run that would not is not
/// started.
pub fn has_claimable(board: Vec<TaskSpec>) -> bool {
    let mut s = Scheduler::default();
    s.set_board(board);
    !s.ready.is_empty()
}

impl Scheduler {
    /// Replaces the board and recomputes the ready set.
    pub(super) fn set_board(&mut self, board: Vec<TaskSpec>) {
        self.tasks = board.into_iter().map(|t| (t.id, t)).collect();
        self.dependents.clear();
        for t in self.tasks.values() {
            for d in &t.depends_on {
                self.dependents.entry(*d).or_default().push(t.id);
            }
        }
        self.ready.clear();
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for t in ids {
            self.refresh_ready(t);
        }
    }

    /// Takes the board as read, against the tasks the run owns (`owned`, as its journal
    /// tells them): a task the run owns that a person moved or removed is returned,
    /// with its status on the board, to be let go; a move of the run's own not yet on
    /// the board, or a claim not yet answered, wins over the board.
    pub(super) fn board_changed(
        &mut self,
        board: Vec<TaskSpec>,
        owned: &BTreeMap<TaskId, TaskStatus>,
    ) -> Vec<(TaskId, Option<TaskStatus>)> {
        let mut next: BTreeMap<TaskId, TaskSpec> = board.into_iter().map(|t| (t.id, t)).collect();
        let mut taken = Vec::new();
        for (task, status) in owned {
            let on_board = next.get(task).map(|s| s.status);
            match (status, on_board) {
                // Owned, and still in progress on the board: ours.
                (TaskStatus::InProgress, Some(TaskStatus::InProgress)) => {}
                (TaskStatus::InProgress, other) => taken.push((*task, other)),
                // The board lags behind a move of ours not yet written: ours wins.
                (mine, Some(TaskStatus::InProgress)) => {
                    if let Some(s) = next.get_mut(task) {
                        s.status = *mine;
                    }
                }
                _ => {}
            }
        }
        for (task, _) in self.claiming.iter() {
            // The claim's answer decides; until then the task is ours to wait for.
            if let Some(s) = next.get_mut(task) {
                s.status = TaskStatus::InProgress;
            }
        }
        // A skipped task is tried again only once the board shows it claimable.
        self.skipped
            .retain(|t| next.get(t).is_some_and(|s| !waits_for_claim(s)));
        for (task, status) in &taken {
            if let (Some(st), Some(s)) = (status, next.get_mut(task)) {
                s.status = *st;
            }
        }
        self.set_board(next.into_values().collect());
        taken
    }

    /// The retries whose wait is over, with whether the line moved on from the base
    /// they failed on (`head` is the line's now); else all the work they waited for
    /// ended (`live` holds what still runs). None is over while a task it waits to
    /// settle first is still pending.
    pub(super) fn waits_over(
        &self,
        head: Option<&CommitId>,
        live: &BTreeSet<AttemptId>,
    ) -> Vec<(TaskId, bool)> {
        // After every input: nothing to read when no retry waits.
        if self.retries.values().all(|r| r.wait.is_none()) {
            return Vec::new();
        }
        let pending = self.pending(live);
        self.retries
            .iter()
            .filter_map(|(t, r)| {
                let w = r.wait.as_ref()?;
                // Still ahead of it: a person may have changed priorities since (two
                // retries never wait for each other).
                let own = self.rank(t);
                let ahead = |b: &TaskId| self.rank(b).is_some_and(|rb| Some(rb) < own);
                if w.before.iter().any(|b| pending.contains(b) && ahead(b)) {
                    return None;
                }
                let moved = head != Some(&w.base);
                let ended = w.on.iter().all(|a| !live.contains(a));
                ((moved && !w.all) || ended).then_some((*t, moved))
            })
            .collect()
    }

    /// The tasks the run has not settled: an attempt of theirs runs (`live`), or they
    /// are being claimed or wait to be retried.
    fn pending(&self, live: &BTreeSet<AttemptId>) -> BTreeSet<TaskId> {
        let live = live.iter().map(|a| a.task);
        let queued = self.claiming.keys().chain(self.retries.keys()).copied();
        live.chain(queued).collect()
    }

    /// The pending tasks ahead of `t` in the order the run claims in (priority, then
    /// age).
    pub(super) fn pending_before(&self, t: TaskId, live: &BTreeSet<AttemptId>) -> BTreeSet<TaskId> {
        let Some(own) = self.rank(&t) else {
            return BTreeSet::new();
        };
        self.pending(live)
            .into_iter()
            .filter(|u| self.rank(u).is_some_and(|r| r < own))
            .collect()
    }

    /// Where `t` is in the order the run claims in: first the highest priority, then
    /// the oldest.
    fn rank(&self, t: &TaskId) -> Option<(Reverse<i32>, TaskId)> {
        self.tasks.get(t).map(|s| (Reverse(s.priority), *t))
    }

    /// `t`'s claim was refused: it is not tried again until the board shows it
    /// claimable again.
    pub(super) fn skip(&mut self, t: TaskId) {
        self.skipped.insert(t);
        self.refresh_ready(t);
    }

    pub(super) fn status(&self, t: TaskId) -> Option<TaskStatus> {
        self.tasks.get(&t).map(|s| s.status)
    }

    /// The task's review, as the board (or the run's own submission) last said.
    pub(super) fn review_of(&self, t: TaskId) -> Option<&crate::review::Review> {
        self.tasks.get(&t)?.review.as_deref()
    }

    /// The run submitted `t`'s work for review: until the board says more, that is
    /// its review (an earlier round's approval must not be claimed again).
    pub(super) fn set_review(&mut self, t: TaskId, review: crate::review::Review) {
        if let Some(s) = self.tasks.get_mut(&t) {
            s.review = Some(Box::new(review));
        }
        self.refresh_ready(t);
    }

    pub(super) fn set_status(&mut self, t: TaskId, to: TaskStatus) {
        if let Some(s) = self.tasks.get_mut(&t) {
            s.status = to;
        }
        self.refresh_ready(t);
    }

    pub(super) fn refresh_dependents(&mut self, t: TaskId) {
        for d in self.dependents.get(&t).cloned().unwrap_or_default() {
            self.refresh_ready(d);
        }
    }

    fn refresh_ready(&mut self, t: TaskId) {
        let Some(spec) = self.tasks.get(&t) else {
            return;
        };
        let key = (Reverse(spec.priority), t);
        let ready = waits_for_claim(spec)
            && !self.skipped.contains(&t)
            && spec
                .depends_on
                .iter()
                .all(|d| self.tasks.get(d).map(|s| s.status) == Some(TaskStatus::Done));
        if ready {
            self.ready.insert(key);
        } else {
            self.ready.remove(&key);
        }
    }

    /// Up to `limit` tasks to claim now, in order: due retries and ready backlog tasks
    /// by priority then age, skipping tasks with a live attempt and any whose
    /// `touches` overlap a live task's or an earlier candidate's. Stops early, so a
    /// large board costs only what is needed.
    pub(super) fn claimable(
        &self,
        now: crate::time::Timestamp,
        limit: usize,
        live: &BTreeSet<TaskId>,
    ) -> Vec<TaskId> {
        let mut due: Vec<(Reverse<i32>, TaskId)> = self
            .retries
            .iter()
            .filter(|(t, r)| r.due <= now && !live.contains(t))
            .map(|(t, _)| (Reverse(self.tasks.get(t).map_or(0, |s| s.priority)), *t))
            .collect();
        due.sort();
        let touches_of = |t: &TaskId| self.tasks.get(t).map_or(&[][..], |s| s.touches.as_slice());
        let mut taken: Vec<&[String]> = live.iter().map(touches_of).collect();
        let mut from_ready = self
            .ready
            .iter()
            .filter(|(_, t)| !self.deferred.contains(t) && !live.contains(t))
            .peekable();
        let mut from_due = due.iter().peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let next = match (from_due.peek(), from_ready.peek()) {
                (Some(a), Some(b)) if a <= b => from_due.next(),
                (_, Some(_)) => from_ready.next(),
                (Some(_), None) => from_due.next(),
                (None, None) => break,
            };
            let (_, t) = *next.expect("peeked");
            let touches = touches_of(&t);
            if taken.iter().any(|o| touches_overlap(o, touches)) {
                continue;
            }
            taken.push(touches);
            out.push(t);
        }
        out
    }
}

/// What a planner's proposal is judged against besides the board: the moment, the
/// tasks that hold a slot, the live attempts and the free slots.
pub(super) struct Claims<'a> {
    pub(super) now: Timestamp,
    pub(super) busy: &'a BTreeSet<TaskId>,
    pub(super) live: &'a BTreeSet<AttemptId>,
    pub(super) free_slots: u32,
}

impl Scheduler {
    /// The policy check on a planner proposal: a task it names must exist and be
    /// claimable now (not failed, not backing off, not live, its dependencies done,
    /// a slot free, no live task touching its paths); a deferral names a task waiting
    /// to be claimed.
    pub(super) fn judge(&self, p: &Proposal, c: &Claims) -> Verdict {
        let reject = |reason: String| Verdict::Rejected { reason };
        let task = match p {
            Proposal::StopClaiming { .. } => return Verdict::Accepted,
            Proposal::Claim { task, .. } | Proposal::Defer { task, .. } => *task,
        };
        let Some(spec) = self.tasks.get(&task) else {
            return reject(format!("unknown task {task}"));
        };
        let retrying = self.retries.get(&task);
        if let Proposal::Defer { .. } = p {
            return if spec.status == TaskStatus::Backlog || retrying.is_some() {
                Verdict::Accepted
            } else {
                reject(format!(
                    "task {task} is {}, not waiting to be claimed",
                    spec.status
                ))
            };
        }
        match (spec.status, retrying) {
            (TaskStatus::Failed, _) => {
                return reject(format!("task {task} failed: its retry budget is spent"));
            }
            (TaskStatus::InProgress, Some(r)) if r.due > c.now => {
                return reject(format!("task {task} is backing off before its retry"));
            }
            (TaskStatus::InProgress, Some(_)) | (TaskStatus::Backlog, _) => {}
            (TaskStatus::Review, _) if waits_for_claim(spec) => {}
            (st, _) => return reject(format!("task {task} is {st}, which is not claimable")),
        }
        if c.busy.contains(&task) {
            return reject(format!("task {task} already has a live attempt"));
        }
        let unfinished: Vec<String> = spec
            .depends_on
            .iter()
            .filter(|d| self.status(**d) != Some(TaskStatus::Done))
            .map(|d| format!("#{d}"))
            .collect();
        if !unfinished.is_empty() {
            return reject(format!(
                "task {task} waits on unfinished {}",
                unfinished.join(", ")
            ));
        }
        if c.free_slots == 0 {
            return reject("no free slot".into());
        }
        if let Some(other) = c.live.iter().find(|a| {
            self.tasks
                .get(&a.task)
                .is_some_and(|s| touches_overlap(&s.touches, &spec.touches))
        }) {
            return reject(format!(
                "task {task} touches the same paths as live {other}"
            ));
        }
        Verdict::Accepted
    }
}
