//! Stacks of batches under bursts: agents finish within seconds of each other while
//! integration gates take long, so work piles up behind the gates; some tasks break
//! the integration gate for every merge that holds them. Over random shapes (stacks,
//! batches, stacks of batches, `auto`) and crashes, bisection must find every culprit:
//! each breaking task fails, every other task lands, and every invariant the simulator
//! checks holds. `ORCH_BATCH_SEEDS=<n>` runs more seeds (default 300).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{AgentPlan, GatePlan, MergePlan, Oracle, Rng, World, task};
use orch_core::config::FailureClass;
use orch_core::run::{
    AttemptId, CommitId, FailureKind, Input, Policy, Proposal, RetryPolicy, RunEvent, RunState,
    Shape, Stage,
};
use orch_core::{TaskId, TaskStatus};

/// Quick agents and worker gates, slow integration gates; only breaking tasks fail.
struct Bursts {
    rng: Rng,
    breaking: BTreeSet<TaskId>,
}

impl Oracle for Bursts {
    fn provision_ok(&mut self, _: AttemptId) -> bool {
        true
    }
    fn agent(&mut self, _: AttemptId) -> AgentPlan {
        AgentPlan::Succeed { empty: false }
    }
    fn gate(&mut self, _: AttemptId, _: Stage) -> GatePlan {
        GatePlan::Pass
    }
    fn breaks_integration(&self, task: TaskId) -> bool {
        self.breaking.contains(&task)
    }
    fn merge(&mut self, _: AttemptId) -> MergePlan {
        MergePlan::Clean
    }
    fn obeys_sigterm(&mut self, _: AttemptId) -> bool {
        true
    }
    fn delay(&mut self, what: &str) -> Duration {
        Duration::from_millis(match what {
            "agent" => self.rng.range(1_000, 6_000),
            "worker gate" => self.rng.range(200, 1_000),
            "gate" => self.rng.range(8_000, 12_000),
            _ => self.rng.range(5, 200),
        })
    }
    fn planner(&mut self, _: &[TaskId], _: u32) -> Option<Result<Vec<Proposal>, String>> {
        None
    }
}

/// Any shape but one at a time.
fn shape(rng: &mut Rng) -> Shape {
    let (depth, batch) = (rng.range(1, 4) as usize, rng.range(2, 8) as usize);
    match rng.range(0, 2) {
        0 => Shape {
            depth: rng.range(2, 6) as usize,
            ..Shape::ONE
        },
        n => Shape {
            depth,
            batch,
            adaptive: n == 2,
        },
    }
}

struct Outcome {
    implied: usize,
    aside: usize,
    culprits: usize,
    resized: usize,
    crashes: u32,
}

fn run(seed: u64) -> Result<Outcome, String> {
    let mut rng = Rng::new(seed);
    let n = rng.range(8, 30) as i64;
    let breaking: BTreeSet<TaskId> = (1..=n).filter(|_| rng.pct(15)).map(TaskId).collect();
    let policy = Policy {
        concurrency: rng.range(2, 8) as u32,
        integration: shape(&mut rng),
        retry: RetryPolicy {
            max_attempts: 1,
            retry_on: vec![FailureClass::IntegrationValidation],
            ..Policy::default().retry
        },
        // The worker gate passes where the integration gate fails: not the same
        // gate, so no verdict stands for the other.
        reuse_verdicts: false,
        ..Policy::default()
    };
    let oracle = Bursts {
        rng: Rng::new(seed ^ 0xBA7C4),
        breaking: breaking.clone(),
    };
    let board = (1..=n).map(|id| task(id, 0, &[], &[])).collect();
    let mut w = World::new(oracle, policy, board, false);
    let max_crashes = rng.range(0, 2) as u32;
    w.feed(Input::Start {
        head: CommitId("c0".into()),
    })?;
    while w.step()? {
        if w.steps > 50_000 {
            return Err("livelock: 50,000 steps without finishing".into());
        }
        if w.crashes < max_crashes && rng.pct(1) {
            w.schedule_crash(rng.range(0, 6) as usize);
        }
    }
    w.check_end()?;
    if w.finished != Some(RunState::Completed) {
        let why = w.journal.iter().rev().find_map(|e| match e {
            RunEvent::RunMoved { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        return Err(format!("the run ended {:?}: {why:?}", w.finished));
    }
    for (t, s) in w.statuses() {
        let want = match breaking.contains(&t) {
            true => TaskStatus::Failed,
            false => TaskStatus::Done,
        };
        if s != want {
            return Err(format!("task {t} ended {s}, not {want}"));
        }
    }
    let mut o = Outcome {
        implied: 0,
        aside: 0,
        culprits: 0,
        resized: 0,
        crashes: w.crashes,
    };
    for e in &w.journal {
        match e {
            RunEvent::IntegrationImplied { .. } => o.implied += 1,
            RunEvent::SetAside { .. } => o.aside += 1,
            RunEvent::Shaped { why, .. } if why.contains("of the last") => o.resized += 1,
            RunEvent::AttemptMoved {
                to:
                    orch_core::run::AttemptState::Failed(FailureKind::IntegrationValidation { .. }),
                ..
            // Stale attempts are retried on the newer head (`policy.stale_retries`), so
            // a breaking task can be found more than once.
            } => o.culprits += 1,
            _ => {}
        }
    }
    Ok(o)
}

#[test]
fn bisection_finds_every_culprit_in_stacks_of_batches() {
    let (mut implied, mut aside, mut culprits, mut resized, mut crashes) = (0, 0, 0, 0, 0);
    let seeds: u64 =
        std::env::var("ORCH_BATCH_SEEDS").map_or(300, |n| n.parse().expect("a number"));
    for seed in 0..seeds {
        let o = run(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        implied += o.implied;
        aside += o.aside;
        culprits += o.culprits;
        resized += o.resized;
        crashes += o.crashes;
    }
    assert!(
        implied > 500 && aside > 50 && culprits > 300 && resized > 100 && crashes > 50,
        "passes implied below a batch's top {implied}, batches set aside {aside}, culprits found {culprits}, batches sized anew {resized}, crashes {crashes}"
    );
}
