//! `Orchestrator::handle` plus draining its commands, on a board of 10,000 tasks (and
//! of 100,000: the time per input should hardly grow with the board) with 16 live
//! attempts. Each iteration takes one attempt through its whole life (7 inputs:
//! agent exit, worker gate, merge, integration gate, ref update, cleanup, and the next
//! claim's worktree), so the time per input is the iteration time divided by 7.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orch_core::config::{Cleanup, EmptyDiff, OnConflict, RunMode};
use orch_core::run::{
    AgentExit, AttemptId, Backoff, Changes, Command, CommitId, Input, MergeResult, Orchestrator,
    Policy, RefResult, RetryPolicy, RunId, Stage, TaskSpec,
};
use orch_core::{TaskId, TaskStatus, Timestamp};

const LIVE: u32 = 16;
const INPUTS_PER_ITERATION: u64 = 7;

fn board(tasks: i64) -> Vec<TaskSpec> {
    (1..=tasks)
        .map(|i| TaskSpec {
            id: TaskId(i),
            status: TaskStatus::Backlog,
            priority: (i % 5) as i32,
            // A third of the tasks wait on an earlier one.
            depends_on: if i % 3 == 0 && i > 50 {
                vec![TaskId(i - 50)]
            } else {
                vec![]
            },
            touches: vec![format!("src/m{}/**", i % 97)],
            reverts: vec![],
            labels: vec![],
            review: None,
        })
        .collect()
}

fn policy() -> Policy {
    Policy {
        mode: RunMode::Parallel,
        concurrency: LIVE,
        retry: RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::Fixed(Duration::from_secs(1)),
            retry_on: vec![],
            stale_retries: 0,
        },
        on_conflict: OnConflict::Retry,
        empty_diff: EmptyDiff::Fail,
        symlinks_inside: true,
        cleanup: Cleanup::OnSuccess,
        agent_timeout: Duration::from_secs(1800),
        gate_timeout: Duration::from_secs(1200),
        gate_slots: 0,
        gate_slots_ceiling: 0,
        empty_gates: Vec::new(),
        kill_grace: Duration::from_secs(10),
        planner: false,
        planner_timeout: Duration::from_secs(60),
        ..Policy::default()
    }
}

struct Driver {
    o: Orchestrator,
    now: i64,
    running: VecDeque<AttemptId>,
    provisioning: Vec<AttemptId>,
    commit: u64,
}

impl Driver {
    fn new(tasks: i64) -> Driver {
        let mut d = Driver {
            o: Orchestrator::new(RunId("bench".into()), policy(), board(tasks)),
            now: 0,
            running: VecDeque::new(),
            provisioning: Vec::new(),
            commit: 0,
        };
        d.feed(Input::Start {
            head: CommitId("c0".into()),
        });
        d.settle_provisioning();
        assert_eq!(d.running.len(), LIVE as usize);
        d
    }

    fn feed(&mut self, input: Input) {
        self.now += 10;
        assert!(!self.o.handle(Timestamp(self.now), input).is_refused());
        let mut claims = Vec::new();
        while let Some(c) = self.o.poll_command() {
            match &c {
                Command::Provision { attempt, .. } => self.provisioning.push(*attempt),
                Command::Claim { task, .. } => claims.push(*task),
                _ => {}
            }
            std::hint::black_box(&c);
        }
        for task in claims {
            self.feed(Input::Claimed { task });
        }
    }

    fn settle_provisioning(&mut self) {
        for a in std::mem::take(&mut self.provisioning) {
            self.feed(Input::WorktreeReady { attempt: a });
            self.running.push_back(a);
        }
    }

    fn c(&mut self) -> CommitId {
        self.commit += 1;
        CommitId(format!("{:040x}", self.commit))
    }

    /// One attempt's whole life; false when the board is used up.
    fn cycle(&mut self) -> bool {
        let Some(a) = self.running.pop_front() else {
            return false;
        };
        let head = self.c();
        let merge = self.c();
        self.feed(Input::AgentExited {
            attempt: a,
            exit: AgentExit::Code(0),
            changes: Some(Changes::new(head, false)),
            report: Default::default(),
        });
        self.feed(Input::GateFinished {
            attempt: a,
            stage: Stage::Worker,
            passed: true,
            summary: String::new(),
            reused: None,
        });
        self.feed(Input::MergeFinished {
            attempt: a,
            result: MergeResult::Clean {
                commit: merge,
                undoes: Vec::new(),
            },
        });
        self.feed(Input::GateFinished {
            attempt: a,
            stage: Stage::Integration,
            passed: true,
            summary: String::new(),
            reused: None,
        });
        self.feed(Input::RefUpdated {
            attempt: a,
            result: RefResult::Advanced,
        });
        self.feed(Input::CleanedUp {
            attempt: a,
            error: None,
        });
        self.settle_provisioning();
        true
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("orchestrator");
    g.throughput(Throughput::Elements(INPUTS_PER_ITERATION));
    for (tasks, name) in [(10_000, "10k"), (100_000, "100k")] {
        let id = format!("handle+drain, {name} tasks, 16 live (per 7 inputs)");
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut d = Driver::new(tasks);
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let more = d.cycle();
                    total += t.elapsed();
                    if !more || d.running.len() < LIVE as usize {
                        d = Driver::new(tasks);
                    }
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
