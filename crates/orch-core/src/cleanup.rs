//! The cleanup plan: what `orch cleanup` may remove, what it keeps and why, decided
//! from facts about the runs (in the style of [`crate::board::plan_import`]). The
//! engine gathers the facts and carries the plan out; nothing here touches git.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::Duration;
use crate::run::{AttemptId, AttemptPhase, RunId, RunState};
use crate::time::Timestamp;

/// One attempt, as cleanup sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFacts {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its branch.
    pub branch: String,
    /// Its phase.
    pub phase: AttemptPhase,
    /// When its state last changed (for a finished attempt: when it ended).
    pub changed_at: Timestamp,
}

/// One run, as cleanup sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    /// The run.
    pub id: RunId,
    /// Its state.
    pub state: RunState,
    /// Not finished, and no live orch drives it (its orch crashed).
    pub interrupted: bool,
    /// Its integration branch (the long-lived line, or its own per-run branch).
    pub line: String,
    /// Its attempts.
    pub attempts: Vec<AttemptFacts>,
}

/// What the plan is made from.
#[derive(Debug, Clone)]
pub struct CleanupFacts<'a> {
    /// Every run of the repository.
    pub runs: &'a [RunFacts],
    /// Now.
    pub now: Timestamp,
    /// `worktrees.keep_failed`.
    pub keep_failed: Duration,
    /// `--force`: the keep window does not hold.
    pub force: bool,
    /// Where worktrees live, if known.
    pub worktree_root: Option<&'a Path>,
    /// The branches holding work that waits for review (the board's reviews name
    /// them): kept, forced or not, until a person decides.
    pub in_review: &'a BTreeSet<String>,
}

/// Something kept, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// What: a branch, or `run <id>`.
    pub what: String,
    /// Why, with how to remove it where one can.
    pub why: String,
}

/// What cleanup may remove and what it must keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupPlan {
    /// Branches that stay: live attempts', failed ones within their keep window, and
    /// every integration branch (they hold validated work, for review).
    pub live_branches: BTreeSet<String>,
    /// Worktrees that stay.
    pub live_worktrees: BTreeSet<PathBuf>,
    /// Failed or canceled attempts kept for a look, with why.
    pub kept: Vec<Kept>,
    /// Runs not finished, whose worktrees, branches and processes stay, with why.
    pub kept_runs: Vec<Kept>,
    /// Runs no orch drives (finished or interrupted): their leftover processes go.
    pub stop_processes_of: BTreeSet<RunId>,
    /// Branches of failed or canceled attempts past their keep window: removed even
    /// with unmerged work or changes, since their retention ran out.
    pub expired: BTreeSet<String>,
}

/// The name of integration slot `slot`'s worktree under a run's directory:
/// `integration`, then `integration-2`, ... up to the deepest stack.
pub fn integration_slot_name(slot: usize) -> String {
    match slot {
        0 => "integration".into(),
        n => format!("integration-{}", n + 1),
    }
}

/// Plans a cleanup.
pub fn plan(f: &CleanupFacts<'_>) -> CleanupPlan {
    let mut p = CleanupPlan::default();
    let wt = |run: &RunId, name: String| f.worktree_root.map(|r| r.join(&run.0).join(name));
    let keep_ms = f.keep_failed.0.as_millis().min(i64::MAX as u128) as i64;
    for b in f.in_review {
        p.live_branches.insert(b.clone());
        p.kept.push(Kept {
            what: b.clone(),
            why: "its work waits for review: `orch review show` it, then approve, ask for changes or reject it".into(),
        });
    }
    for r in f.runs {
        p.live_branches.insert(r.line.clone());
        for a in &r.attempts {
            if !matches!(a.phase, AttemptPhase::Failed | AttemptPhase::Canceled) {
                continue;
            }
            if f.now.0 - a.changed_at.0 < keep_ms && !f.force {
                p.live_branches.insert(a.branch.clone());
                p.live_worktrees.extend(wt(&r.id, a.attempt.to_string()));
                let phase = format!("{:?}", a.phase).to_lowercase();
                p.kept.push(Kept {
                    what: a.branch.clone(),
                    why: format!(
                        "a {phase} attempt, kept for worktrees.keep_failed ({}) after it ended; --force or a shorter keep_failed removes it",
                        f.keep_failed
                    ),
                });
            } else {
                p.expired.insert(a.branch.clone());
            }
        }
        if r.state.is_terminal() {
            p.stop_processes_of.insert(r.id.clone());
            continue;
        }
        for slot in 0..crate::config::MAX_INTEGRATION_DEPTH as usize {
            p.live_worktrees
                .extend(wt(&r.id, integration_slot_name(slot)));
        }
        for a in r.attempts.iter().filter(|a| !a.phase_is_terminal()) {
            p.live_branches.insert(a.branch.clone());
            p.live_worktrees.extend(wt(&r.id, a.attempt.to_string()));
        }
        let why = if r.interrupted {
            p.stop_processes_of.insert(r.id.clone());
            format!(
                "interrupted: `orch run resume {}` goes on with its attempts, so their worktrees and branches stay",
                r.id
            )
        } else {
            "a live orch drives it: its worktrees, branches and processes stay".to_owned()
        };
        p.kept_runs.push(Kept {
            what: format!("run {}", r.id),
            why,
        });
    }
    p
}

/// One attempt's artifact directory, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFacts {
    /// Its run's place among the runs, newest first (0: the newest).
    pub run_index: usize,
    /// Its attempt failed (or was canceled, interrupted, or never said).
    pub failed: bool,
    /// Its size.
    pub bytes: u64,
    /// Its run is not finished: never removed.
    pub live: bool,
}

/// How much of the artifacts to keep (`[artifacts]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactRetention {
    /// The newest runs whose successful attempts stay.
    pub keep_runs: u32,
    /// Failed attempts stay for this many times as many runs.
    pub failed_factor: u32,
    /// The byte budget for all of them.
    pub max_bytes: u64,
}

/// Which artifact directories go (indexes into the facts, in the order they go) and
/// the bytes left. Past their run's retention they go; then, while over the budget,
/// the oldest go first, successful before failed; a live run's never.
pub fn plan_artifacts(dirs: &[ArtifactFacts], r: ArtifactRetention) -> (Vec<usize>, u64) {
    let keep_runs = r.keep_runs as usize;
    let keep_failed = keep_runs.saturating_mul(r.failed_factor.max(1) as usize);
    let (mut gone, mut left): (Vec<usize>, Vec<usize>) = (0..dirs.len()).partition(|i| {
        let d = &dirs[*i];
        let limit = if d.failed { keep_failed } else { keep_runs };
        !d.live && d.run_index >= limit
    });
    let mut total: u64 = left.iter().map(|i| dirs[*i].bytes).sum();
    left.retain(|i| !dirs[*i].live);
    left.sort_by_key(|i| (dirs[*i].failed, std::cmp::Reverse(dirs[*i].run_index), *i));
    for i in left {
        if total <= r.max_bytes {
            break;
        }
        total -= dirs[i].bytes;
        gone.push(i);
    }
    (gone, total)
}

impl AttemptFacts {
    fn phase_is_terminal(&self) -> bool {
        matches!(
            self.phase,
            AttemptPhase::Succeeded
                | AttemptPhase::Failed
                | AttemptPhase::Canceled
                | AttemptPhase::Interrupted
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn artifacts_go_by_age_then_budget_successful_first_live_never() {
        use super::{ArtifactFacts, ArtifactRetention, plan_artifacts};
        let d = |run_index, failed, live| ArtifactFacts {
            run_index,
            failed,
            bytes: 10,
            live,
        };
        let dirs = [
            d(0, false, true),
            d(1, false, false),
            d(1, true, false),
            d(2, false, false),
            d(3, true, false),
            d(4, true, false),
        ];
        let r = ArtifactRetention {
            keep_runs: 2,
            failed_factor: 2,
            max_bytes: 1000,
        };
        // Run 2's success is past keep_runs; failures stay for 4 runs.
        assert_eq!(plan_artifacts(&dirs, r), (vec![3, 5], 40));
        let tight = ArtifactRetention { max_bytes: 15, ..r };
        // Then the oldest successful, then the oldest failed; the live run stays.
        assert_eq!(plan_artifacts(&dirs, tight), (vec![3, 5, 1, 4, 2], 10));
    }

    use super::*;
    use crate::TaskId;

    fn attempt(task: i64, phase: AttemptPhase, changed_at: i64) -> AttemptFacts {
        let attempt = AttemptId {
            task: TaskId(task),
            number: 1,
        };
        AttemptFacts {
            branch: attempt.branch(&RunId("r".into())),
            attempt,
            phase,
            changed_at: Timestamp(changed_at),
        }
    }

    #[test]
    fn live_work_stays_failures_wait_out_their_window_and_dead_runs_lose_their_processes() {
        let runs = vec![
            RunFacts {
                id: RunId("r".into()),
                state: RunState::Running,
                interrupted: true,
                line: "orch/r/integration".into(),
                attempts: vec![
                    attempt(1, AttemptPhase::Running, 0),
                    attempt(2, AttemptPhase::Failed, 9_000),
                    attempt(3, AttemptPhase::Failed, 0),
                    attempt(4, AttemptPhase::Succeeded, 0),
                ],
            },
            RunFacts {
                id: RunId("done".into()),
                state: RunState::Completed,
                interrupted: false,
                line: "orch/done/integration".into(),
                attempts: vec![],
            },
        ];
        let root = Path::new("/wt");
        let in_review = BTreeSet::from(["orch/old/task-9-1".to_owned()]);
        let facts = CleanupFacts {
            runs: &runs,
            now: Timestamp(10_000),
            keep_failed: Duration(std::time::Duration::from_secs(5)),
            force: false,
            worktree_root: Some(root),
            in_review: &in_review,
        };
        let p = plan(&facts);
        let branches: Vec<&str> = p.live_branches.iter().map(String::as_str).collect();
        assert_eq!(
            branches,
            [
                "orch/done/integration",
                "orch/old/task-9-1",
                "orch/r/integration",
                "orch/r/task-1-1",
                "orch/r/task-2-1"
            ]
        );
        assert!(p.live_worktrees.contains(&root.join("r/integration")));
        assert!(
            !p.live_worktrees.contains(&root.join("r/task-3-1")),
            "past its window"
        );
        assert_eq!(p.expired, BTreeSet::from(["orch/r/task-3-1".to_owned()]));
        assert_eq!(p.kept.len(), 2);
        assert!(p.kept_runs[0].why.starts_with("interrupted"));
        assert_eq!(
            p.stop_processes_of,
            BTreeSet::from([RunId("done".into()), RunId("r".into())])
        );
        let forced = plan(&CleanupFacts {
            force: true,
            ..facts
        });
        assert!(!forced.live_branches.contains("orch/r/task-2-1"));
        assert!(
            forced.live_branches.contains("orch/r/task-1-1"),
            "live work stays, forced or not"
        );
        assert!(
            forced.live_branches.contains("orch/old/task-9-1"),
            "work in review stays, forced or not"
        );
    }
}
