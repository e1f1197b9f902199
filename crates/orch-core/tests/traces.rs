//! Readable traces of the main paths through a run, as insta snapshots: each input the
//! orchestrator got and the commands it emitted, on a virtual clock with fixed delays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use common::{AgentPlan, GatePlan, MergePlan, Oracle, World, task};
use orch_core::TaskId;
use orch_core::config::{Cleanup, EmptyDiff, FailureClass, OnConflict, RunMode};
use orch_core::review::Decision;
use orch_core::run::{
    AttemptId, Backoff, CancelScope, CommitId, Input, Policy, Proposal, RetryPolicy, RunState,
    Shape, Stage,
};

/// Outcomes by attempt; everything not listed succeeds.
#[derive(Default)]
struct Script {
    agents: BTreeMap<(i64, u32), AgentPlan>,
    gates: BTreeMap<(i64, u32, Stage), GatePlan>,
    /// Gate outcomes run by run, before `gates` is asked.
    gate_runs: BTreeMap<(i64, u32, Stage), VecDeque<GatePlan>>,
    merges: BTreeMap<(i64, u32), MergePlan>,
    ignore_sigterm: bool,
    finished_before_crash: bool,
    planner: VecDeque<Option<Result<Vec<Proposal>, String>>>,
    /// A person's decisions on work in review, in order.
    reviews: VecDeque<Decision>,
}

fn key(a: AttemptId) -> (i64, u32) {
    (a.task.0, a.number)
}

impl Oracle for Script {
    fn provision_ok(&mut self, _: AttemptId) -> bool {
        true
    }
    fn agent(&mut self, a: AttemptId) -> AgentPlan {
        self.agents
            .get(&key(a))
            .copied()
            .unwrap_or(AgentPlan::Succeed { empty: false })
    }
    fn gate(&mut self, a: AttemptId, stage: Stage) -> GatePlan {
        if let Some(p) = self
            .gate_runs
            .get_mut(&(a.task.0, a.number, stage))
            .and_then(VecDeque::pop_front)
        {
            return p;
        }
        self.gates
            .get(&(a.task.0, a.number, stage))
            .copied()
            .unwrap_or(GatePlan::Pass)
    }
    fn merge(&mut self, a: AttemptId) -> MergePlan {
        self.merges
            .get(&key(a))
            .cloned()
            .unwrap_or(MergePlan::Clean)
    }
    fn obeys_sigterm(&mut self, _: AttemptId) -> bool {
        !self.ignore_sigterm
    }
    fn delay(&mut self, what: &str) -> Duration {
        Duration::from_millis(match what {
            "agent" => 10_000,
            "gate" | "worker gate" => 5_000,
            "sigterm" => 100,
            "sigkill" => 10,
            "planner" => 200,
            "provision" => 100,
            "review" => 10,
            _ => 20,
        })
    }
    fn planner(&mut self, _: &[TaskId], _: u32) -> Option<Result<Vec<Proposal>, String>> {
        self.planner.pop_front().flatten()
    }
    fn finished_before_crash(&mut self, _: AttemptId) -> bool {
        self.finished_before_crash
    }
    fn review(&mut self, _: TaskId, _: u32) -> Option<Decision> {
        self.reviews.pop_front()
    }
}

fn policy() -> Policy {
    Policy {
        mode: RunMode::Parallel,
        concurrency: 2,
        retry: RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::Fixed(Duration::from_secs(5)),
            retry_on: vec![
                FailureClass::AgentError,
                FailureClass::Timeout,
                FailureClass::WorkerValidation,
                FailureClass::IntegrationValidation,
                FailureClass::Conflict,
                FailureClass::Infrastructure,
            ],
            stale_retries: 0,
        },
        on_conflict: OnConflict::Retry,
        empty_diff: EmptyDiff::Fail,
        symlinks_inside: true,
        // Each trace shows every gate run; `a_tree_is_gated_once` shows reuse.
        reuse_verdicts: false,
        cleanup: Cleanup::OnSuccess,
        agent_timeout: Duration::from_secs(60),
        gate_timeout: Duration::from_secs(60),
        gate_slots: 0,
        gate_slots_ceiling: 0,
        empty_gates: Vec::new(),
        kill_grace: Duration::from_secs(5),
        planner: false,
        planner_timeout: Duration::from_secs(10),
        integration: Shape::ONE,
        ..Policy::default()
    }
}

/// Runs to the end. `disturb(world)` is called before every step.
fn trace(
    mut w: World<Script>,
    mut disturb: impl FnMut(&mut World<Script>),
) -> (String, World<Script>) {
    w.feed(Input::Start {
        head: CommitId("c0".into()),
    })
    .unwrap();
    loop {
        disturb(&mut w);
        if !w.step().unwrap() {
            break;
        }
        assert!(w.steps < 1000, "no end");
    }
    w.check_end().unwrap();
    (w.trace.clone().unwrap(), w)
}

fn two_tasks() -> Vec<orch_core::run::TaskSpec> {
    vec![
        task(1, 1, &[], &["src/a.rs"]),
        task(2, 0, &[], &["src/b.rs"]),
    ]
}

#[test]
fn happy_path() {
    let w = World::new(
        Script::default(),
        policy(),
        vec![task(1, 1, &[], &[]), task(2, 0, &[1], &[])],
        true,
    );
    let (t, w) = trace(w, |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    insta::assert_snapshot!(t);
}

/// A full review round: the work waits for a person, who asks for changes; the next
/// round resumes the agent's session with them, and is approved; the approved work is
/// integrated as it is (no agent, no second worker gate) and lands.
#[test]
fn a_review_round_of_changes_then_approval_lands_the_work() {
    let s = Script {
        reviews: VecDeque::from([
            Decision::Changes {
                text: "rename it".into(),
                comments: vec![],
            },
            Decision::Approve {
                text: String::new(),
            },
        ]),
        ..Script::default()
    };
    let p = Policy {
        review: orch_core::config::ReviewConfig {
            required: orch_core::config::ReviewRequired::All,
            ..Default::default()
        },
        ..policy()
    };
    let (t, w) = trace(World::new(s, p, vec![task(1, 0, &[], &[])], true), |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Done);
    assert!(
        t.contains("spawn agent task-1-2 resuming session-task-1-1 review=\"fix #1\""),
        "{t}"
    );
    insta::assert_snapshot!(t);
}

fn conflict(on_conflict: OnConflict) -> (String, World<Script>) {
    let mut s = Script::default();
    s.merges
        .insert((2, 1), MergePlan::Conflict(vec!["src/shared.rs".into()]));
    let p = Policy {
        on_conflict,
        ..policy()
    };
    trace(World::new(s, p, two_tasks(), true), |_| {})
}

#[test]
fn conflict_retry() {
    let (t, w) = conflict(OnConflict::Retry);
    assert_eq!(w.statuses()[&TaskId(2)], orch_core::TaskStatus::Done);
    insta::assert_snapshot!(t);
}

#[test]
fn conflict_block() {
    let (t, w) = conflict(OnConflict::Block);
    assert_eq!(w.statuses()[&TaskId(2)], orch_core::TaskStatus::Blocked);
    insta::assert_snapshot!(t);
}

#[test]
fn conflict_halt() {
    let (t, w) = conflict(OnConflict::Halt);
    assert_eq!(w.finished, Some(RunState::Halted));
    assert_eq!(w.statuses()[&TaskId(2)], orch_core::TaskStatus::Backlog);
    insta::assert_snapshot!(t);
}

#[test]
fn retry_after_worker_validation_failure() {
    let mut s = Script::default();
    s.gates.insert((1, 1, Stage::Worker), GatePlan::Fail);
    let (t, w) = trace(
        World::new(s, policy(), vec![task(1, 0, &[], &[])], true),
        |_| {},
    );
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Done);
    insta::assert_snapshot!(t);
}

#[test]
fn agent_timeout_with_sigterm_ignored_then_out_of_attempts() {
    let mut s = Script::default();
    s.agents.insert((1, 1), AgentPlan::Hang);
    s.agents.insert((1, 2), AgentPlan::Fail(3));
    s.ignore_sigterm = true;
    let (t, w) = trace(
        World::new(s, policy(), vec![task(1, 0, &[], &[])], true),
        |_| {},
    );
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Failed);
    insta::assert_snapshot!(t);
}

#[test]
fn cancel_run_releases_tasks() {
    let mut fired = false;
    let (t, w) = trace(
        World::new(Script::default(), policy(), two_tasks(), true),
        |w| {
            if !fired && w.now.0 >= 5_000 {
                fired = true;
                w.feed(Input::Cancel {
                    scope: CancelScope::Run,
                })
                .unwrap();
            }
        },
    );
    assert_eq!(w.finished, Some(RunState::Canceled));
    assert!(
        w.statuses()
            .values()
            .all(|s| *s == orch_core::TaskStatus::Backlog)
    );
    insta::assert_snapshot!(t);
}

fn crash_around_the_ref_update(commands_before_crash: usize) -> (String, World<Script>) {
    let mut armed = true;
    let (t, w) = trace(
        World::new(
            Script::default(),
            policy(),
            vec![task(1, 0, &[], &[])],
            true,
        ),
        |w| {
            if armed
                && w.journal
                    .iter()
                    .any(|e| e.kind() == "attempt.integration_passed")
            {
                armed = false;
                w.schedule_crash(commands_before_crash);
            }
        },
    );
    assert_eq!(w.crashes, 1);
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Done);
    let advances = w
        .journal
        .iter()
        .filter(|e| e.kind() == "run.head_advanced")
        .count();
    assert_eq!(advances, 1, "the ref advance is recorded exactly once");
    (t, w)
}

/// The ref moved in git, but the crash came before orch recorded it: resume finds the
/// validated merge commit at the ref and records the advance.
#[test]
fn resume_after_a_crash_before_the_ref_update_was_recorded() {
    let (t, _) = crash_around_the_ref_update(0);
    assert!(
        t.contains("had advanced the integration ref before the crash"),
        "{t}"
    );
    insta::assert_snapshot!(t);
}

/// The advance was recorded, but not its consequences (attempt and task states).
#[test]
fn resume_after_a_crash_between_the_advance_and_its_consequences() {
    let (t, _) = crash_around_the_ref_update(1);
    assert!(t.contains("was integrated just before the crash"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn planner_proposals_are_judged() {
    let mut s = Script::default();
    s.planner.push_back(Some(Ok(vec![
        Proposal::Claim {
            task: TaskId(9),
            note: None,
        },
        Proposal::Claim {
            task: TaskId(2),
            note: None,
        },
        Proposal::Claim {
            task: TaskId(3),
            note: Some("start with the parser".into()),
        },
        Proposal::Defer {
            task: TaskId(1),
            reason: "needs a spec".into(),
        },
    ])));
    s.planner.push_back(None);
    let p = Policy {
        planner: true,
        ..policy()
    };
    let board = vec![
        task(1, 2, &[], &[]),
        task(2, 0, &[1], &[]),
        task(3, 0, &[], &[]),
    ];
    let (t, _) = trace(World::new(s, p, board, true), |_| {});
    insta::assert_snapshot!(t);
}

#[test]
fn incremental_mode_and_touches_serialize_work() {
    let board = vec![
        task(1, 0, &[], &["src/**"]),
        task(2, 0, &[], &["src/x.rs"]),
        task(3, 0, &[], &["docs/a.md"]),
    ];
    let (t, _) = trace(
        World::new(Script::default(), policy(), board.clone(), true),
        |_| {},
    );
    // Task 2 overlaps task 1, so 1 and 3 run together and 2 starts from 1's merge.
    assert!(t.contains("provision task-2-1 at m"), "{t}");
    let p = Policy {
        mode: RunMode::Incremental,
        ..policy()
    };
    let (t2, _) = trace(World::new(Script::default(), p, board, true), |_| {});
    insta::assert_snapshot!("incremental", t2);
}

/// A crash while the agent runs. Had it finished (its work committed, the core not yet
/// told), the resumed run goes on from its work; otherwise the attempt is interrupted
/// and retried without spending the budget.
fn crash_while_the_agent_runs(finished: bool) -> (String, World<Script>) {
    let script = Script {
        finished_before_crash: finished,
        ..Script::default()
    };
    let mut armed = true;
    let (t, w) = trace(
        World::new(script, policy(), vec![task(1, 0, &[], &[])], true),
        |w| {
            if armed
                && w.journal
                    .iter()
                    .any(|e| e.reason().contains("worktree ready"))
            {
                armed = false;
                w.crash().unwrap();
            }
        },
    );
    assert_eq!(w.crashes, 1);
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Done);
    (t, w)
}

#[test]
fn resume_goes_on_from_an_agent_that_had_finished() {
    let (t, w) = crash_while_the_agent_runs(true);
    assert!(t.contains("agent had finished before the crash"), "{t}");
    let attempts = w
        .journal
        .iter()
        .filter(|e| e.kind() == "attempt.created")
        .count();
    assert_eq!(attempts, 1, "the agent is not run again");
    insta::assert_snapshot!(t);
}

#[test]
fn resume_interrupts_an_agent_that_had_not_finished() {
    let (t, w) = crash_while_the_agent_runs(false);
    assert!(t.contains("task-1-1 Running -> Interrupted"), "{t}");
    let attempts = w
        .journal
        .iter()
        .filter(|e| e.kind() == "attempt.created")
        .count();
    assert_eq!(attempts, 2, "interrupted, then run again");
    insta::assert_snapshot!(t);
}

fn stacked(depth: usize, retries: u32) -> Policy {
    Policy {
        concurrency: 3,
        integration: Shape {
            depth,
            ..Shape::ONE
        },
        integration_retries: retries,
        ..policy()
    }
}

/// A batch of four is validated once, on its top; it fails (task 3 is bad), so it is
/// bisected: task 2's candidate passes (tasks 1 and 2 land), task 3's fails with only
/// validated work below it (the culprit), and task 4 is stacked again and lands.
#[test]
fn a_failing_batch_is_bisected_to_its_culprit() {
    let mut s = Script::default();
    s.gates.insert((3, 1, Stage::Integration), GatePlan::Fail);
    s.gate_runs.insert(
        (4, 1, Stage::Integration),
        VecDeque::from([GatePlan::Fail, GatePlan::Pass]),
    );
    let p = Policy {
        concurrency: 4,
        integration: Shape {
            batch: 4,
            ..Shape::ONE
        },
        ..policy()
    };
    let w = World::new(s, p, (1..=4).map(|t| task(t, 0, &[], &[])).collect(), true);
    let (t, w) = trace(w, |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    assert!(t.contains("attempt.integration_implied"), "{t}");
    assert!(t.contains("task-3-1 Integrating -> Failed"), "{t}");
    assert!(
        w.statuses()
            .values()
            .all(|s| *s == orch_core::TaskStatus::Done)
    );
    insta::assert_snapshot!(t);
}

fn three_tasks() -> Vec<orch_core::run::TaskSpec> {
    (1..=3).map(|t| task(t, 0, &[], &[])).collect()
}

/// Depth 3: the three candidates are validated at once; the middle one fails, so the
/// one above it is stacked again on the first, and the first lands without waiting.
#[test]
fn a_stack_with_a_failure_in_the_middle() {
    let mut s = Script::default();
    s.gates.insert((2, 1, Stage::Integration), GatePlan::Fail);
    let w = World::new(s, stacked(3, 0), three_tasks(), true);
    let (t, w) = trace(w, |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    assert!(t.contains("Integrating -> Merging"), "{t}");
    assert!(
        w.statuses()
            .values()
            .all(|s| *s == orch_core::TaskStatus::Done)
    );
    insta::assert_snapshot!(t);
}

/// A conflict inside the stack: the conflicting candidate follows the conflict
/// policy (a retry on the new head); the others land.
#[test]
fn a_conflict_in_the_stack() {
    let mut s = Script::default();
    s.merges
        .insert((2, 1), MergePlan::Conflict(vec!["src/shared.rs".into()]));
    let w = World::new(s, stacked(3, 0), three_tasks(), true);
    let (t, w) = trace(w, |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    assert!(
        w.statuses()
            .values()
            .all(|s| *s == orch_core::TaskStatus::Done)
    );
    insta::assert_snapshot!(t);
}

/// A failing integration gate is run again (`validate.integration_retries`); its pass
/// is journaled as flaky, and the task lands on its first attempt.
#[test]
fn a_flaky_integration_gate_is_run_again() {
    let mut s = Script::default();
    s.gate_runs.insert(
        (1, 1, Stage::Integration),
        VecDeque::from([GatePlan::Fail, GatePlan::Pass]),
    );
    let w = World::new(s, stacked(1, 1), vec![task(1, 0, &[], &[])], true);
    let (t, w) = trace(w, |_| {});
    assert!(t.contains("attempt.flaky"), "{t}");
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Done);
    insta::assert_snapshot!(t);
}

fn stale_policy(stale_retries: u32) -> Policy {
    let mut p = policy();
    p.retry.max_attempts = 1;
    p.retry.stale_retries = stale_retries;
    p
}

/// Task 2 cannot be done until task 1 lands (its agent gives up): it fails while task
/// 1 is in flight, its retry waits (`run.retry_waits`), and once task 1 lands it runs
/// at once on the new head. The failure was the stale head's: with one attempt
/// allowed, task 2 is still done.
#[test]
fn a_retry_waits_for_work_in_flight_and_spends_no_attempt() {
    let mut s = Script::default();
    s.agents.insert((2, 1), AgentPlan::Fail(1));
    let (t, w) = trace(World::new(s, stale_policy(3), two_tasks(), true), |_| {});
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Done);
    assert_eq!(w.statuses()[&TaskId(2)], orch_core::TaskStatus::Done);
    assert!(t.contains("run.retry_waits task-2-1"), "{t}");
    insta::assert_snapshot!(t);
}

/// The stale budget is bounded: with one stale retry allowed, task 2's first failure
/// (while task 1 was in flight) spends it; its retry on the new head fails too, with
/// nothing left in flight, and that failure counts: task 2 is out of attempts.
#[test]
fn the_stale_budget_is_bounded_then_failures_count() {
    let mut s = Script::default();
    s.agents.insert((2, 1), AgentPlan::Fail(1));
    s.agents.insert((2, 2), AgentPlan::Fail(1));
    let (t, w) = trace(World::new(s, stale_policy(1), two_tasks(), true), |_| {});
    assert_eq!(w.statuses()[&TaskId(1)], orch_core::TaskStatus::Done);
    assert_eq!(w.statuses()[&TaskId(2)], orch_core::TaskStatus::Failed);
    insta::assert_snapshot!(t);
}

/// With `validate.reuse` (both gates run the same commands here): task 1's merge onto
/// its own base has the tree its worker gate passed, so its integration gate does not
/// run (`attempt.gate_reused`); task 2, merged after task 1 landed, has a new tree and
/// is gated.
#[test]
fn a_tree_is_gated_once() {
    let p = Policy {
        reuse_verdicts: true,
        ..policy()
    };
    let (t, w) = trace(World::new(Script::default(), p, two_tasks(), true), |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    assert!(t.contains("attempt.gate_reused task-1-1"), "{t}");
    insta::assert_snapshot!(t);
}

/// The revert guard: task 2's first attempt undoes task 1's landed work, so it fails as
/// `reverts-landed-work` (nothing merged lands), and its retry, whose change keeps that
/// work, lands.
#[test]
fn an_attempt_that_undoes_landed_work_is_retried() {
    let mut s = Script::default();
    s.merges.insert((2, 1), MergePlan::Undoes);
    let (t, w) = trace(World::new(s, policy(), two_tasks(), true), |_| {});
    assert_eq!(w.statuses()[&TaskId(2)], orch_core::TaskStatus::Done);
    assert!(t.contains("reverts-landed-work"), "{t}");
    insta::assert_snapshot!(t);
}

/// With `validate.integration_stands_in` (both gates run the same commands here): no
/// worker gate runs; each attempt goes from its agent to the integration queue, and
/// the integration gate on its merge commit is its only gate.
#[test]
fn the_integration_gate_stands_in_for_the_same_worker_gate() {
    let p = Policy {
        worker_stands_in: true,
        ..policy()
    };
    let (t, w) = trace(World::new(Script::default(), p, two_tasks(), true), |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    assert!(!t.contains("run worker gate"), "{t}");
    assert_eq!(t.matches("run integration gate").count(), 2, "{t}");
    insta::assert_snapshot!(t);
}

/// Two batches of two, both tops failing (task 2 is bad, and task 4's first run
/// fails with it below): only the lower batch is bisected, since every merge above a
/// failure holds its culprit. It is set aside, and bisected beside the stack: the
/// upper batch is stacked again without it at once, passes on its top alone (task 3
/// is never gated on its own) and lands first. Task 1 passes beside the stack, task 2
/// is the culprit, and task 1 is gated again on the stack, and lands.
#[test]
fn only_the_lowest_failing_batch_is_bisected() {
    let mut s = Script::default();
    s.gates.insert((2, 1, Stage::Integration), GatePlan::Fail);
    s.gate_runs.insert(
        (4, 1, Stage::Integration),
        VecDeque::from([GatePlan::Fail, GatePlan::Pass]),
    );
    let p = Policy {
        concurrency: 4,
        integration: Shape {
            depth: 2,
            batch: 2,
            adaptive: false,
        },
        ..policy()
    };
    let w = World::new(s, p, (1..=4).map(|t| task(t, 0, &[], &[])).collect(), true);
    let (t, w) = trace(w, |_| {});
    assert_eq!(w.finished, Some(RunState::Completed));
    assert!(t.contains("task-2-1 Integrating -> Failed"), "{t}");
    assert!(
        t.contains("run.batch_set_aside task-2-1's gate failed"),
        "{t}"
    );
    let landed = |a: &str| t.find(&format!("run.head_advanced {a}")).expect("landed");
    assert!(landed("task-4-1") < landed("task-1-1"), "{t}");
    let gated = |a: &str| t.matches(&format!("run integration gate {a} ")).count();
    assert_eq!(
        (gated("task-1-1"), gated("task-3-1"), gated("task-4-1")),
        (2, 0, 2),
        "{t}"
    );
    insta::assert_snapshot!(t);
}
