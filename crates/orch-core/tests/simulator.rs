//! Thousands of seeded random runs through the simulator, each checking every
//! invariant after every step. A failure prints its seed:
//! `ORCH_SIM_SEED=<seed> cargo test -p orch-core --test simulator` replays it, with a
//! trace. `ORCH_SIM_SCENARIOS=<n>` runs more (default 10,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use common::{RandomOracle, Rng, World, task};
use orch_core::TaskId;
use orch_core::config::{
    BudgetConfig, Cleanup, EmptyDiff, FailureClass, OnConflict, OnRevert, ReviewConfig,
    ReviewRequired, RunMode,
};
use orch_core::run::{
    Backoff, CancelScope, CommitId, FailureKind, Input, Policy, RetryPolicy, RunEvent, RunState,
    Shape,
};

const TOUCHES: &[&str] = &[
    "src/a.rs",
    "src/b/**",
    "docs/*.md",
    "src/**",
    "tests/t.rs",
    "README.md",
];

fn scenario(seed: u64, trace: bool) -> World<RandomOracle> {
    let mut rng = Rng::new(seed);
    // Review draws from its own stream, so the scenarios without it stay as they were.
    let mut review_rng = Rng::new(seed ^ 0x5EED_0F4E_F1E3);
    let review = ReviewConfig {
        required: match review_rng.range(0, 9) {
            0..=5 => ReviewRequired::None,
            6..=7 => ReviewRequired::All,
            _ => ReviewRequired::Labels,
        },
        labels: vec!["security".into()],
        max_rounds: review_rng.range(1, 3) as u32,
    };
    let n = rng.range(1, 12) as i64;
    let mut board: Vec<_> = (1..=n)
        .map(|id| {
            let deps: Vec<i64> = (1..id).filter(|_| rng.pct(15)).collect();
            let touches: Vec<&str> = (0..rng.range(0, 2))
                .map(|_| *rng.pick(TOUCHES).unwrap())
                .collect();
            task(id, rng.range(0, 3) as i32, &deps, &touches)
        })
        .collect();
    for t in &mut board {
        if review_rng.pct(50) {
            t.labels = vec!["security".into()];
        }
    }
    let all_classes = [
        FailureClass::AgentError,
        FailureClass::Timeout,
        FailureClass::NoChanges,
        FailureClass::WorkerValidation,
        FailureClass::Conflict,
        FailureClass::IntegrationValidation,
        FailureClass::Infrastructure,
    ];
    let policy = Policy {
        mode: if rng.pct(20) {
            RunMode::Incremental
        } else {
            RunMode::Parallel
        },
        concurrency: rng.range(1, 6) as u32,
        retry: RetryPolicy {
            max_attempts: rng.range(1, 3) as u32,
            backoff: if rng.pct(50) {
                Backoff::Fixed(Duration::from_millis(rng.range(0, 10_000)))
            } else {
                Backoff::Exponential {
                    base: Duration::from_secs(1),
                    max: Duration::from_secs(20),
                }
            },
            retry_on: all_classes
                .iter()
                .copied()
                .filter(|_| rng.pct(75))
                .collect(),
            stale_retries: rng.range(0, 3) as u32,
        },
        reuse_verdicts: rng.pct(50),
        worker_stands_in: rng.pct(30),
        on_revert: *rng
            .pick(&[OnRevert::Retry, OnRevert::Block, OnRevert::Allow])
            .unwrap(),
        on_conflict: *rng
            .pick(&[
                OnConflict::Retry,
                OnConflict::Block,
                OnConflict::Ask,
                OnConflict::Halt,
            ])
            .unwrap(),
        empty_diff: if rng.pct(50) {
            EmptyDiff::Fail
        } else {
            EmptyDiff::DoneIfValid
        },
        symlinks_inside: true,
        cleanup: *rng
            .pick(&[Cleanup::OnSuccess, Cleanup::Always, Cleanup::Never])
            .unwrap(),
        agent_timeout: Duration::from_secs(rng.range(30, 120)),
        gate_timeout: Duration::from_secs(60),
        gate_slots: if rng.pct(50) {
            rng.range(1, 4) as usize
        } else {
            0
        },
        gate_slots_ceiling: if rng.pct(50) {
            rng.range(1, 6) as usize
        } else {
            0
        },
        empty_gates: if rng.pct(20) {
            vec![orch_core::run::Stage::Worker]
        } else {
            Vec::new()
        },
        kill_grace: Duration::from_secs(5),
        planner: rng.pct(20),
        planner_timeout: Duration::from_secs(10),
        budget: BudgetConfig {
            task_tokens: if rng.pct(15) {
                rng.range(1_000, 5_000)
            } else {
                0
            },
            run_tokens: if rng.pct(10) {
                rng.range(2_000, 20_000)
            } else {
                0
            },
            ..BudgetConfig::default()
        },
        quota_backoff: Duration::from_secs(rng.range(1, 30)),
        quota_max_wait: Duration::from_secs(rng.range(10, 300)),
        resume_session: rng.pct(50),
        integration: shape(&mut rng),
        integration_retries: if rng.pct(25) {
            rng.range(1, 2) as u32
        } else {
            0
        },
        review,
        // A watching run never ends by itself; the scenarios end theirs.
        watch: false,
    };
    let oracle = RandomOracle {
        rng: Rng::new(seed.wrapping_mul(31).wrapping_add(7)),
        planner_tasks: (1..=n).map(TaskId).collect(),
        bursts: seed.is_multiple_of(3),
        quick_gates: seed % 3 == 1,
    };
    World::new(oracle, policy, board, trace)
}

/// The integration queue's shape: one at a time, a stack, batches, a stack of batches,
/// or batches sized by the run's verdicts (`auto`).
fn shape(rng: &mut Rng) -> Shape {
    // Shallow, so that candidates pile up behind the gates and batches fill.
    let (depth, batch) = (rng.range(1, 2) as usize, rng.range(2, 8) as usize);
    match rng.range(0, 5) {
        0 => Shape::ONE,
        1 | 4 => Shape {
            depth: rng.range(2, 8) as usize,
            ..Shape::ONE
        },
        2 => Shape {
            depth,
            batch,
            adaptive: false,
        },
        _ => Shape {
            depth,
            batch,
            adaptive: true,
        },
    }
}

/// Runs one scenario to the end; Err names the broken invariant.
fn run(seed: u64, trace: bool) -> (Result<(), String>, World<RandomOracle>) {
    let mut w = scenario(seed, trace);
    let mut rng = Rng::new(seed ^ 0xDEAD_BEEF);
    let max_crashes = rng.range(0, 3);
    let result = (|| {
        w.feed(Input::Start {
            head: CommitId("c0".into()),
        })?;
        while w.step()? {
            if w.steps > 20_000 {
                return Err("livelock: 20,000 steps without finishing".into());
            }
            if w.crashes < max_crashes as u32 && rng.pct(2) {
                w.schedule_crash(rng.range(0, 6) as usize);
            }
            if rng.pct(1) {
                // A person adds a task mid-run; the board the engine sends is the
                // store's, with the run's own moves in it.
                let id = w.initial_board.len() as i64 + 1;
                let deps: Vec<i64> = (1..id)
                    .filter(|d| w.board.contains_key(&TaskId(*d)) && rng.pct(10))
                    .collect();
                let t = task(id, rng.range(0, 3) as i32, &deps, &[]);
                w.initial_board.push(t.clone());
                w.board.insert(t.id, t);
                w.board_changed()?;
            }
            if rng.pct(1) {
                // A person cancels, blocks, forces, removes or edits a task.
                w.person(&mut rng)?;
            }
            if rng.pct(1) {
                let scope = if rng.pct(30) {
                    CancelScope::Run
                } else {
                    CancelScope::Task(TaskId(rng.range(1, 12) as i64))
                };
                w.feed(Input::Cancel { scope })?;
            }
        }
        w.check_end()
    })();
    (result, w)
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics inside scenarios are caught and reported with their seed, so the default
/// hook's message is noise there, and only there.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info);
            }
        }));
    });
}

fn run_caught(seed: u64) -> Result<(), String> {
    install_quiet_hook();
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| run(seed, false).0));
    QUIET.with(|q| q.set(false));
    match r {
        Ok(r) => r,
        Err(p) => Err(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

#[test]
fn random_scenarios_keep_every_invariant() {
    if let Ok(seed) = std::env::var("ORCH_SIM_SEED") {
        let seed: u64 = seed.parse().expect("ORCH_SIM_SEED is a number");
        let (r, w) = run(seed, true);
        println!("{}", w.trace.unwrap_or_default());
        r.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        return;
    }
    let n: u64 = std::env::var("ORCH_SIM_SCENARIOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let threads = 2;
    let failures: Vec<(u64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (0..n)
                        .filter(|seed| seed % threads == t)
                        .filter_map(|seed| run_caught(seed).err().map(|e| (seed, e)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    if !failures.is_empty() {
        let shown: Vec<String> = failures
            .iter()
            .take(5)
            .map(|(s, e)| format!("seed {s}: {e}"))
            .collect();
        panic!(
            "{} of {n} scenarios broke an invariant; replay with ORCH_SIM_SEED=<seed>:\n{}",
            failures.len(),
            shown.join("\n")
        );
    }
}

/// The scenarios must actually exercise what they claim to: crashes, cancels,
/// conflicts, retries (waiting ones among them), the planner, the quota breaker,
/// budgets, reused gate verdicts, and every way a run ends.
#[test]
fn scenarios_cover_the_lifecycle() {
    let mut ends = std::collections::BTreeSet::new();
    let (mut crashes, mut done, mut failed, mut blocked, mut proposals) = (0, 0, 0, 0, 0);
    let (mut breaker_opened, mut breaker_closed, mut task_budget, mut run_budget) = (0, 0, 0, 0);
    let (mut stacked, mut restacked, mut reruns, mut flaky, mut implied) = (0, 0, 0, 0, 0);
    let (mut waits, mut reused, mut undid, mut undo_landed) = (0, 0, 0, 0);
    let (mut reviews, mut rounds, mut adopted, mut in_review, mut capped) = (0, 0, 0, 0, 0);
    for seed in 0..600 {
        let (r, w) = run(seed, false);
        r.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        ends.insert(format!("{:?}", w.finished.unwrap()));
        crashes += w.crashes;
        capped += w.review_capped;
        for s in w.statuses().values() {
            match s {
                orch_core::TaskStatus::Done => done += 1,
                orch_core::TaskStatus::Failed => failed += 1,
                orch_core::TaskStatus::Blocked => blocked += 1,
                orch_core::TaskStatus::Review => in_review += 1,
                _ => {}
            }
        }
        // A merge made on another candidate's merge: a stack deeper than one.
        let merges: std::collections::BTreeSet<&orch_core::run::CommitId> = w
            .journal
            .iter()
            .filter_map(|e| match e {
                RunEvent::MergeWritten { commit, .. } => Some(commit),
                _ => None,
            })
            .collect();
        stacked += w
            .journal
            .iter()
            .filter(|e| matches!(e, RunEvent::MergeWritten { onto, .. } if merges.contains(onto)))
            .count();
        proposals += w
            .journal
            .iter()
            .filter(|e| e.kind() == "planner.proposal")
            .count();
        for e in &w.journal {
            match e {
                RunEvent::QuotaBreaker { until: Some(_), .. } => breaker_opened += 1,
                RunEvent::QuotaBreaker { until: None, .. } => breaker_closed += 1,
                RunEvent::BudgetSpent {
                    attempt: Some(_), ..
                } => task_budget += 1,
                RunEvent::BudgetSpent { attempt: None, .. } => run_budget += 1,
                RunEvent::GateRerun { .. } => reruns += 1,
                RunEvent::Flaky { .. } => flaky += 1,
                RunEvent::IntegrationImplied { .. } => implied += 1,
                RunEvent::RetryWaits { .. } => waits += 1,
                RunEvent::GateReused { .. } => reused += 1,
                RunEvent::Reverts { .. } => undo_landed += 1,
                RunEvent::ReviewRequested { review, .. } => {
                    reviews += 1;
                    rounds += usize::from(review.round > 1);
                }
                RunEvent::AttemptMoved { reason, .. } if reason.contains("approved in review") => {
                    adopted += 1
                }
                RunEvent::AttemptMoved {
                    to: orch_core::run::AttemptState::Failed(FailureKind::RevertsLandedWork { .. }),
                    ..
                } => undid += 1,
                RunEvent::AttemptMoved { reason, .. }
                    if reason.contains("re-stacked") || reason.contains("left the stack") =>
                {
                    restacked += 1
                }
                _ => {}
            }
        }
    }
    assert!(
        breaker_opened > 20 && breaker_closed > 20 && task_budget > 5 && run_budget > 5,
        "quota breaker opened {breaker_opened}, closed {breaker_closed}; budgets spent: task {task_budget}, run {run_budget}"
    );
    for s in [RunState::Completed, RunState::Canceled, RunState::Halted] {
        assert!(
            ends.contains(&format!("{s:?}")),
            "no run ended {s:?}: {ends:?}"
        );
    }
    assert!(crashes > 50, "only {crashes} crashes");
    assert!(
        done > 500 && failed > 50 && blocked > 5,
        "done {done}, failed {failed}, blocked {blocked}"
    );
    assert!(proposals > 50, "only {proposals} planner proposals");
    assert!(
        stacked > 100 && restacked > 5 && reruns > 20 && flaky > 5 && implied >= 10,
        "stacked merges {stacked}, re-stacked candidates {restacked}, gate reruns {reruns}, flaky passes {flaky}, batch passes implied {implied} (tests/batches.rs stresses bisection)"
    );
    assert!(
        reviews > 100 && rounds > 20 && adopted > 50 && in_review > 5 && capped > 5,
        "reviews requested {reviews}, of them later rounds {rounds}; approved work integrated {adopted}; tasks left in review {in_review}; changes past the round cap {capped}"
    );
    assert!(
        waits > 20 && reused > 20 && undid > 10 && undo_landed > 10,
        "retries that waited {waits}, gate verdicts reused {reused}, attempts failed for undoing landed work {undid}, undos landed {undo_landed}"
    );
}
