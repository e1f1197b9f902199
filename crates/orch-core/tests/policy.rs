//! The policies that moved into the core, each driven by hand through `handle` and
//! checked on the commands and journal entries it emits: the agent's branch tampering
//! is its failure, orch's own failures spend no attempts, retention and SIGKILL are
//! the core's calls, refused claims and stale inputs are journaled, claiming pauses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use orch_core::config::Cleanup;
use orch_core::run::{
    AgentExit, AttemptId, Changes, Command, CommitId, FailureKind, Handled, INFRA_STREAK_HALT,
    Input, Orchestrator, Policy, Retention, RunEvent, RunId, RunState, Stage, TaskSpec,
};
use orch_core::{TaskId, TaskStatus, Timestamp};

struct H {
    o: Orchestrator,
    now: i64,
    out: Vec<Command>,
}

fn spec(id: i64) -> TaskSpec {
    TaskSpec {
        id: TaskId(id),
        status: TaskStatus::Backlog,
        priority: 0,
        depends_on: vec![],
        touches: vec![],
        reverts: vec![],
        labels: vec![],
        review: None,
    }
}

fn a(task: i64, number: u32) -> AttemptId {
    AttemptId {
        task: TaskId(task),
        number,
    }
}

impl H {
    fn new(policy: Policy, tasks: &[i64]) -> H {
        let board = tasks.iter().map(|t| spec(*t)).collect();
        let mut h = H {
            o: Orchestrator::new(RunId("r".into()), policy, board),
            now: 1_000,
            out: Vec::new(),
        };
        let _ = h.feed(Input::Start {
            head: CommitId("c0".into()),
        });
        h
    }

    fn feed(&mut self, input: Input) -> Handled {
        self.now += 10;
        let h = self.o.handle(Timestamp(self.now), input);
        while let Some(c) = self.o.poll_command() {
            self.out.push(c);
        }
        h
    }

    fn at(&mut self, ms: i64, input: Input) -> Handled {
        self.now = ms - 10;
        self.feed(input)
    }

    fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.out)
    }

    fn events(&self) -> Vec<&RunEvent> {
        self.out
            .iter()
            .filter_map(|c| match c {
                Command::Persist(j) => Some(&j.event),
                _ => None,
            })
            .collect()
    }

    /// Answers every claim and provisioning, so attempts reach their agents; every
    /// command stays in `out`.
    fn settle_claims(&mut self) {
        let mut seen = Vec::new();
        loop {
            let cmds = self.take();
            let answers: Vec<Input> = cmds
                .iter()
                .filter_map(|c| match c {
                    Command::Claim { task, .. } => Some(Input::Claimed { task: *task }),
                    Command::Provision { attempt, .. } => {
                        Some(Input::WorktreeReady { attempt: *attempt })
                    }
                    _ => None,
                })
                .collect();
            seen.extend(cmds);
            if answers.is_empty() {
                break;
            }
            for i in answers {
                let _ = self.feed(i);
            }
        }
        self.out = seen;
    }

    /// `attempt n`'s `stage` gate comes back at `at`.
    fn gate(&mut self, at: i64, n: i64, stage: Stage, passed: bool) {
        let _ = self.at(
            at,
            Input::GateFinished {
                attempt: a(n, 1),
                stage,
                passed,
                summary: String::new(),
                reused: None,
            },
        );
    }

    /// Task `n`'s agent ends at `at`, its worker gate passes and its merge `m<n>` is
    /// written.
    fn ready(&mut self, at: i64, n: i64) {
        use orch_core::run::MergeResult;
        let _ = self.at(
            at,
            Input::AgentExited {
                attempt: a(n, 1),
                exit: AgentExit::Code(0),
                changes: changes(&format!("a{n}")),
                report: Default::default(),
            },
        );
        self.gate(at + 10, n, Stage::Worker, true);
        let _ = self.at(
            at + 20,
            Input::MergeFinished {
                attempt: a(n, 1),
                result: MergeResult::Clean {
                    commit: CommitId(format!("m{n}")),
                    undoes: Vec::new(),
                },
            },
        );
    }

    fn spawned(&self, attempt: AttemptId) -> Option<&Command> {
        self.out
            .iter()
            .find(|c| matches!(c, Command::SpawnAgent { attempt: x, .. } if *x == attempt))
    }
}

fn changes(head: &str) -> Option<Changes> {
    Some(Changes::new(CommitId(head.into()), false))
}

fn policy() -> Policy {
    Policy {
        kill_grace: Duration::from_secs(5),
        integration: orch_core::run::Shape::ONE,
        ..Policy::default()
    }
}

#[test]
fn an_agent_that_moves_its_branch_fails_as_the_agent_and_the_retry_says_why() {
    let mut h = H::new(policy(), &[1]);
    h.settle_claims();
    let mut moved = changes("a1").unwrap();
    moved.branch_moved = Some("main".into());
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(0),
        changes: Some(moved),
        report: Default::default(),
    });
    let failed = h.events().into_iter().any(|e| {
        matches!(e, RunEvent::AttemptMoved { to: orch_core::run::AttemptState::Failed(FailureKind::AgentError { detail }), .. }
            if detail.contains("moved the worktree off its branch (HEAD is now main)"))
    });
    assert!(failed, "{:#?}", h.out);
    // The retry (after the backoff) tells the agent what it did.
    let _ = h.at(h.now + 60_000, Input::Tick);
    h.settle_claims();
    match h.spawned(a(1, 2)) {
        Some(Command::SpawnAgent {
            previous_failure: Some(FailureKind::AgentError { detail }),
            ..
        }) => assert!(
            detail.contains("must commit on the branch it was given"),
            "{detail}"
        ),
        other => panic!("no retry with the reason: {other:?}\n{:#?}", h.out),
    }
}

#[test]
fn an_agent_that_rewrites_history_fails_as_the_agent() {
    let mut h = H::new(policy(), &[1]);
    h.settle_claims();
    let mut rewrote = changes("a1").unwrap();
    rewrote.rewrote_history = true;
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(0),
        changes: Some(rewrote),
        report: Default::default(),
    });
    assert!(
        h.events()
            .iter()
            .any(|e| e.reason().contains("the agent rewrote history"))
    );
}

/// A gate that cannot run (a missing integration worktree, a failed checkout) is
/// orch's fault: with one attempt allowed, the task still gets its retry, and lands.
#[test]
fn a_broken_gate_spends_no_attempt() {
    let mut p = policy();
    p.retry.max_attempts = 1;
    let mut h = H::new(p, &[1]);
    h.settle_claims();
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(0),
        changes: changes("a1"),
        report: Default::default(),
    });
    let _ = h.feed(Input::GateBroken {
        attempt: a(1, 1),
        stage: Stage::Worker,
        message: "the worktree is gone".into(),
    });
    let _ = h.at(h.now + 60_000, Input::Tick);
    h.settle_claims();
    assert!(h.spawned(a(1, 2)).is_some(), "no retry: {:#?}", h.out);
    assert!(
        !h.events().iter().any(|e| matches!(
            e,
            RunEvent::TaskMoved {
                to: TaskStatus::Failed,
                ..
            }
        )),
        "an infrastructure failure spent the only attempt"
    );
}

#[test]
fn infrastructure_failures_in_a_row_halt_the_run() {
    let mut h = H::new(policy(), &[1]);
    let _ = h.feed(Input::Claimed { task: TaskId(1) });
    let mut cleanups = Vec::new();
    for n in 1..=INFRA_STREAK_HALT {
        let _ = h.feed(Input::WorktreeFailed {
            attempt: a(1, n),
            error: "No space left on device".into(),
        });
        // Orch's own failure: retried at once, not after the backoff.
        let _ = h.feed(Input::Tick);
        cleanups.extend(h.take().into_iter().filter_map(|c| match c {
            Command::Cleanup { attempt, .. } => Some(attempt),
            _ => None,
        }));
    }
    assert_eq!(cleanups.len() as u32, INFRA_STREAK_HALT);
    for attempt in cleanups {
        let _ = h.feed(Input::CleanedUp {
            attempt,
            error: None,
        });
    }
    assert_eq!(h.o.state(), RunState::Halted, "{:#?}", h.out);
    assert_eq!(
        h.o.snapshot().tasks[&TaskId(1)],
        TaskStatus::Backlog,
        "the task is released, not failed"
    );
}

#[test]
fn cleanup_carries_the_retention_class_the_core_decided() {
    let mut p = policy();
    p.cleanup = Cleanup::Always;
    p.retry.max_attempts = 1;
    let mut h = H::new(p, &[1]);
    h.settle_claims();
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(3),
        changes: None,
        report: Default::default(),
    });
    let cleanup = h.out.iter().find_map(|c| match c {
        Command::Cleanup {
            remove_worktree,
            retention,
            ..
        } => Some((*remove_worktree, *retention)),
        _ => None,
    });
    // Removed (cleanup = always), but its logs are kept as a failure's.
    assert_eq!(cleanup, Some((true, Retention::Failure)));
}

#[test]
fn sigkill_follows_sigterm_after_the_cores_grace() {
    let mut h = H::new(policy(), &[1]);
    h.settle_claims();
    let _ = h.feed(Input::Cancel {
        scope: orch_core::run::CancelScope::Task(TaskId(1)),
    });
    let aborts = |h: &H| {
        h.out
            .iter()
            .filter_map(|c| match c {
                Command::Abort { hard, .. } => Some(*hard),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(aborts(&h), vec![false]);
    let due = h.o.poll_timeout().expect("the grace timer");
    let _ = h.at(due.0 - 100, Input::Tick);
    assert_eq!(aborts(&h), vec![false], "SIGKILL before the grace ran out");
    let _ = h.at(due.0, Input::Tick);
    assert_eq!(aborts(&h), vec![false, true]);
}

#[test]
fn a_refused_claim_skips_the_task_and_the_run_goes_on() {
    let mut h = H::new(policy(), &[1, 2]);
    let claims: Vec<TaskId> = h
        .take()
        .iter()
        .filter_map(|c| match c {
            Command::Claim { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    assert_eq!(claims, vec![TaskId(1), TaskId(2)]);
    let r = h.feed(Input::ClaimRefused {
        task: TaskId(1),
        why: "task 1 is canceled, not backlog".into(),
    });
    assert_eq!(r, Handled::Applied);
    let _ = h.feed(Input::Claimed { task: TaskId(2) });
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, RunEvent::ClaimSkipped { task, .. } if *task == TaskId(1)))
    );
    assert!(
        h.out
            .iter()
            .any(|c| matches!(c, Command::Provision { attempt, .. } if *attempt == a(2, 1)))
    );
    assert!(
        !h.out
            .iter()
            .any(|c| matches!(c, Command::Claim { task, .. } if *task == TaskId(1))),
        "claimed again"
    );
}

#[test]
fn a_stale_input_is_refused_and_journaled_with_the_time_the_core_decided_at() {
    let mut h = H::new(policy(), &[1]);
    h.take();
    let r = h.at(
        5_000,
        Input::GateFinished {
            attempt: a(9, 1),
            stage: Stage::Worker,
            passed: true,
            summary: String::new(),
            reused: None,
        },
    );
    assert!(
        matches!(&r, Handled::Refused(why) if why.to_string().contains("unknown attempt task-9-1")),
        "{r:?}"
    );
    let refused = h.out.iter().find_map(|c| match c {
        Command::Persist(j) => match &j.event {
            RunEvent::InputRefused { input, about, .. } => {
                Some((j.at, input.clone(), about.clone()))
            }
            _ => None,
        },
        _ => None,
    });
    assert_eq!(
        refused,
        Some((
            Timestamp(5_000),
            "gate_finished".into(),
            Some("task-9-1".into())
        ))
    );
}

#[test]
fn paused_claiming_claims_nothing_and_the_run_waits() {
    let mut h = H::new(policy(), &[]);
    let _ = h.feed(Input::PauseClaims);
    let _ = h.feed(Input::BoardChanged {
        tasks: vec![spec(1)],
    });
    assert!(!h.out.iter().any(|c| matches!(c, Command::Claim { .. })));
    assert_eq!(
        h.o.state(),
        RunState::Running,
        "a paused run with work waits"
    );
    let _ = h.feed(Input::ResumeClaims);
    assert!(
        h.out
            .iter()
            .any(|c| matches!(c, Command::Claim { task, .. } if *task == TaskId(1)))
    );
    assert_eq!(
        h.feed(Input::ResumeClaims),
        Handled::Refused(orch_core::run::Refusal::ClaimingAlready { paused: false })
    );
}

#[test]
fn a_finished_agent_is_trusted_only_while_its_branch_holds_the_work_it_names() {
    use orch_core::run::{FinishedAgent, RunSnapshot, trusted_finished};
    use std::collections::BTreeMap;
    let mut journal = RunSnapshot::default();
    for n in 1..=3 {
        let mut rec = orch_core::run::AttemptRecord::queued(CommitId("c0".into()));
        rec.state = orch_core::run::AttemptState::Running;
        journal.attempts.insert(a(n, 1), rec);
    }
    let marker = |head: &str| FinishedAgent {
        exit: AgentExit::Code(0),
        changes: changes(head),
        report: Default::default(),
    };
    let markers = BTreeMap::from([
        (a(1, 1), marker("h1")),
        (a(2, 1), marker("h2")),
        (a(3, 1), marker("h3")),
    ]);
    let heads = BTreeMap::from([
        (a(1, 1), Some(CommitId("h1".into()))),
        (a(2, 1), Some(CommitId("moved".into()))),
        (a(3, 1), None),
    ]);
    let trusted: Vec<AttemptId> = trusted_finished(&journal, markers, &heads)
        .into_keys()
        .collect();
    assert_eq!(trusted, vec![a(1, 1)]);
}

fn report(tokens: u64, quota: Option<&str>) -> orch_core::run::AgentReport {
    orch_core::run::AgentReport {
        usage: Some(orch_core::usage::Usage {
            input_tokens: tokens,
            session_id: Some("s-1".into()),
            ..Default::default()
        }),
        quota: quota.map(str::to_owned),
        hint: None,
        malformed: None,
        rate_limited: None,
        output_tail: None,
    }
}

#[test]
fn a_task_over_its_token_budget_has_its_agent_stopped_and_fails_as_budget() {
    let mut p = policy();
    p.budget.task_tokens = 1_000;
    let mut h = H::new(p, &[1]);
    h.settle_claims();
    let _ = h.feed(Input::AgentProgress {
        attempt: a(1, 1),
        report: report(400, None),
    });
    assert!(!h.out.iter().any(|c| matches!(c, Command::Abort { .. })));
    let _ = h.feed(Input::AgentProgress {
        attempt: a(1, 1),
        report: report(1_200, None),
    });
    assert!(
        h.out
            .iter()
            .any(|c| matches!(c, Command::Abort { attempt, hard: false } if *attempt == a(1, 1)))
    );
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Signal(15),
        changes: changes("h1"),
        report: report(1_300, None),
    });
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, RunEvent::BudgetSpent { attempt: Some(_), detail } if detail.contains("1,200 of its 1,000 token budget"))), "{ev:#?}");
    assert!(
        ev.iter().any(
            |e| matches!(e, RunEvent::AttemptUsage { usage, .. } if usage.input_tokens == 1_300)
        )
    );
    assert!(ev.iter().any(|e| matches!(e, RunEvent::TaskMoved { to: TaskStatus::Failed, reason, .. } if reason.contains("budget"))), "{ev:#?}");
}

#[test]
fn a_run_over_its_budget_stops_claiming_and_drains() {
    let mut p = policy();
    p.concurrency = 1;
    p.budget.run_tokens = 500;
    let mut h = H::new(p, &[1, 2]);
    h.settle_claims();
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(1),
        changes: changes("h1"),
        report: report(600, None),
    });
    h.settle_claims();
    assert!(
        h.spawned(a(2, 1)).is_none(),
        "task 2 was claimed after the budget was spent"
    );
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, RunEvent::BudgetSpent { attempt: None, .. }))
    );
    assert_ne!(h.o.state(), RunState::Running);
}

#[test]
fn a_quota_hit_pauses_claiming_requeues_for_free_probes_and_closes() {
    let mut p = policy();
    p.concurrency = 1;
    p.retry.max_attempts = 1;
    p.quota_backoff = Duration::from_secs(30);
    let mut h = H::new(p, &[1, 2]);
    h.settle_claims();
    // Live: the CLI says it is being rate limited; the core stops it.
    let _ = h.feed(Input::AgentProgress {
        attempt: a(1, 1),
        report: report(10, Some("rate_limit_error")),
    });
    assert!(h.out.iter().any(|c| matches!(c, Command::Abort { .. })));
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Signal(15),
        changes: changes("h1"),
        report: report(10, None),
    });
    h.settle_claims();
    let ev = h.events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, RunEvent::QuotaBreaker { until: Some(_), .. })),
        "{ev:#?}"
    );
    // One attempt allowed, yet the task is not failed: quota spends none.
    assert!(!ev.iter().any(|e| matches!(
        e,
        RunEvent::TaskMoved {
            to: TaskStatus::Failed,
            ..
        }
    )));
    assert!(h.spawned(a(2, 1)).is_none() && h.spawned(a(1, 2)).is_none());
    // After the wait, exactly one probe runs, resuming the session.
    let _ = h.at(h.now + 30_000, Input::Tick);
    h.settle_claims();
    let probe = h.spawned(a(1, 2)).expect("the probe runs the waiting task");
    assert!(matches!(probe, Command::SpawnAgent { resume_session: Some(s), .. } if s == "s-1"));
    assert!(h.spawned(a(2, 1)).is_none(), "only one probe at a time");
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 2),
        exit: AgentExit::Code(0),
        changes: changes("h2"),
        report: report(10, None),
    });
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, RunEvent::QuotaBreaker { until: None, .. }))
    );
}

#[test]
fn a_breaker_open_past_its_max_wait_halts_the_run() {
    let mut p = policy();
    p.concurrency = 1;
    p.quota_backoff = Duration::from_secs(10);
    p.quota_max_wait = Duration::from_secs(60);
    let mut h = H::new(p, &[1]);
    h.settle_claims();
    for n in 1..=6 {
        let _ = h.feed(Input::AgentExited {
            attempt: a(1, n),
            exit: AgentExit::Code(1),
            changes: changes("h"),
            report: report(1, Some("429 rate_limit_error")),
        });
        if h.o.state() != RunState::Running {
            break;
        }
        let _ = h.at(h.now + 200_000, Input::Tick);
        h.settle_claims();
    }
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, RunEvent::QuotaBreaker { until: None, reason } if reason.contains("quota_max_wait"))), "{ev:#?}");
    assert!(matches!(h.o.state(), RunState::Halted | RunState::Draining));
}

#[test]
fn the_planners_usage_counts_toward_the_run_budget() {
    let mut p = policy();
    p.planner = true;
    p.budget.run_tokens = 1_000;
    let mut h = H::new(p, &[1, 2]);
    let request = h
        .take()
        .iter()
        .find_map(|c| match c {
            Command::AskPlanner { request, .. } => Some(*request),
            _ => None,
        })
        .expect("the planner is asked first");
    let _ = h.feed(Input::PlannerUsage {
        request,
        usage: orch_core::usage::Usage {
            input_tokens: 1_500,
            ..Default::default()
        },
    });
    let ev = h.events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, RunEvent::PlannerUsage { .. }))
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, RunEvent::BudgetSpent { attempt: None, .. })),
        "{ev:#?}"
    );
    assert_eq!(h.o.run_usage().input_tokens, 1_500);
    assert_ne!(h.o.state(), RunState::Running);
}

/// On a shared integration line another run can land first: the candidate is merged
/// again onto the new head and validated again before it lands; nothing is failed.
#[test]
fn a_line_another_run_moved_on_is_merged_onto_again() {
    use orch_core::run::{MergeResult, RefResult};
    let mut h = H::new(policy(), &[1]);
    h.settle_claims();
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(0),
        changes: changes("a1"),
        report: Default::default(),
    });
    let gate = |h: &mut H, stage| {
        h.feed(Input::GateFinished {
            attempt: a(1, 1),
            stage,
            passed: true,
            summary: String::new(),
            reused: None,
        })
    };
    let _ = gate(&mut h, Stage::Worker);
    let merged = |h: &mut H, commit: &str| {
        h.feed(Input::MergeFinished {
            attempt: a(1, 1),
            result: MergeResult::Clean {
                commit: CommitId(commit.into()),
                undoes: Vec::new(),
            },
        })
    };
    let _ = merged(&mut h, "m1");
    let _ = gate(&mut h, Stage::Integration);
    h.take();
    let _ = h.feed(Input::RefUpdated {
        attempt: a(1, 1),
        result: RefResult::Overtaken {
            actual: CommitId("other".into()),
        },
    });
    let again = h.take();
    assert!(
        again
            .iter()
            .any(|c| matches!(c, Command::Merge { onto, head, .. }
            if onto.0 == "other" && head.0 == "a1")),
        "{again:#?}"
    );
    let _ = merged(&mut h, "m2");
    assert!(
        h.out.iter().any(|c| matches!(c, Command::RunGate { stage: Stage::Integration, commit, .. } if commit.0 == "m2")),
        "the new merge is validated: {:#?}",
        h.out
    );
    let _ = gate(&mut h, Stage::Integration);
    assert!(
        h.out
            .iter()
            .any(|c| matches!(c, Command::AdvanceRef { expected, new, .. }
            if expected.0 == "other" && new.0 == "m2")),
        "{:#?}",
        h.out
    );
    let _ = h.feed(Input::RefUpdated {
        attempt: a(1, 1),
        result: RefResult::Advanced,
    });
    assert!(h.events().iter().any(|e| matches!(
        e,
        RunEvent::TaskMoved {
            to: TaskStatus::Done,
            ..
        }
    )));
    assert_eq!(h.o.head().map(|c| c.0.as_str()), Some("m2"));
}

/// An agent CLI retrying a rate limit on its own is a quota signal only from the
/// third retry in a row: the core decides, from the facts the engine read.
#[test]
fn a_clis_own_rate_limit_retries_are_a_quota_signal_from_the_third() {
    use orch_core::run::{AgentReport, RATE_LIMIT_RETRIES, RateLimited};
    let at = |retries| AgentReport {
        rate_limited: Some(RateLimited {
            status: 429,
            retries,
            error: "rate_limit".into(),
        }),
        ..AgentReport::default()
    };
    assert_eq!(at(RATE_LIMIT_RETRIES - 1).quota_signal(), None);
    assert_eq!(
        at(RATE_LIMIT_RETRIES).quota_signal().as_deref(),
        Some("the API answered 429 (rate_limit) 3 times in a row")
    );
    // A signature the output states wins.
    let stated = AgentReport {
        quota: Some("429: API Error".into()),
        ..at(1)
    };
    assert_eq!(stated.quota_signal().as_deref(), Some("429: API Error"));
}

/// A retry waits for the work ahead of it on the board that is still in flight: the
/// line moving on with a later task's work does not wake it (what it lacked is most
/// likely an earlier task's), the earlier task landing does.
#[test]
fn a_retry_waits_for_the_work_ahead_of_it_to_settle() {
    use orch_core::run::RefResult;
    let mut p = policy();
    p.concurrency = 3;
    let mut h = H::new(p, &[1, 2, 3]);
    h.settle_claims();
    // Task 2's agent fails while tasks 1 and 3 are in flight.
    let _ = h.feed(Input::AgentExited {
        attempt: a(2, 1),
        exit: AgentExit::Code(1),
        changes: None,
        report: Default::default(),
    });
    assert!(
        h.events().iter().any(|e| matches!(
            e,
            RunEvent::RetryWaits { task, on, .. } if task.0 == 2 && on.iter().map(|t| t.0).collect::<Vec<_>>() == [1, 3]
        )),
        "{:#?}",
        h.events()
    );
    let land = |h: &mut H, n: i64| {
        let at = h.now + 100;
        h.ready(at, n);
        h.gate(at + 30, n, Stage::Integration, true);
        let _ = h.at(
            at + 40,
            Input::RefUpdated {
                attempt: a(n, 1),
                result: RefResult::Advanced,
            },
        );
    };
    let retried = |h: &H| {
        h.out.iter().find_map(|c| match c {
            Command::Provision { attempt, base, .. } if *attempt == a(2, 2) => Some(base.0.clone()),
            _ => None,
        })
    };
    land(&mut h, 3);
    assert_eq!(h.o.head().map(|c| c.0.as_str()), Some("m3"));
    assert_eq!(retried(&h), None, "task 1, ahead of it, is still in flight");
    land(&mut h, 1);
    assert_eq!(
        retried(&h).as_deref(),
        Some("m1"),
        "on the line with task 1"
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        RunEvent::TaskMoved { task, to: TaskStatus::Done, .. } if task.0 == 1
    )));
}

/// Worker gates that end quickly take no gate slot once three in a row did; one orch
/// stopped reached no verdict, however soon it came back, and gives the slots their
/// say again.
#[test]
fn a_stopped_worker_gate_ends_the_streak_of_quick_ones() {
    use orch_core::run::CancelScope;
    let mut p = policy();
    p.concurrency = 4;
    p.gate_slots = 1;
    p.gate_slots_ceiling = 4;
    p.empty_gates = Vec::new();
    let mut h = H::new(p, &[1, 2, 3, 4]);
    h.settle_claims();
    let exit = |h: &mut H, n: i64| {
        let _ = h.feed(Input::AgentExited {
            attempt: a(n, 1),
            exit: AgentExit::Code(0),
            changes: changes(&format!("h{n}")),
            report: Default::default(),
        });
    };
    for n in 1..=3 {
        exit(&mut h, n);
        let at = h.now + 100;
        h.gate(at, n, Stage::Worker, true);
    }
    assert!(h.o.quick_worker_gates());
    exit(&mut h, 4);
    let _ = h.feed(Input::Cancel {
        scope: CancelScope::Task(TaskId(4)),
    });
    let at = h.now + 100;
    h.gate(at, 4, Stage::Worker, false);
    assert!(!h.o.quick_worker_gates());
}

/// A retry after its attempt undid landed work runs at once, on the same head: its
/// prompt names what to keep, and waiting `policy.backoff` changes nothing. Other
/// failures that count wait it out.
#[test]
fn a_retry_after_undoing_landed_work_does_not_back_off() {
    use orch_core::run::{Backoff, MergeResult, Undo};
    let alone = || {
        let mut p = policy();
        p.concurrency = 1;
        p.retry.backoff = Backoff::Fixed(Duration::from_secs(60));
        let mut h = H::new(p, &[1]);
        h.settle_claims();
        h
    };
    let mut h = alone();
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(0),
        changes: changes("h1"),
        report: Default::default(),
    });
    let at = h.now + 10;
    h.gate(at, 1, Stage::Worker, true);
    let undone = Undo {
        task: "t9".into(),
        file: "src/a.rs".into(),
        lines: (3, 4),
        restores: false,
    };
    let _ = h.feed(Input::MergeFinished {
        attempt: a(1, 1),
        result: MergeResult::Clean {
            commit: CommitId("m1".into()),
            undoes: vec![undone],
        },
    });
    h.settle_claims();
    assert!(h.spawned(a(1, 2)).is_some(), "{:#?}", h.out);
    // The agent's own failure, on the same head: its retry waits the backoff.
    let mut h = alone();
    let _ = h.feed(Input::AgentExited {
        attempt: a(1, 1),
        exit: AgentExit::Code(1),
        changes: None,
        report: Default::default(),
    });
    h.settle_claims();
    assert!(h.spawned(a(1, 2)).is_none(), "{:#?}", h.out);
}
