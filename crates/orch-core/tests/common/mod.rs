//! The simulator: a fake world that answers the orchestrator's commands after
//! virtual delays, with outcomes chosen by an [`Oracle`] (seeded-random or scripted),
//! crashes and resumes, and the invariants checked after every step.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use orch_core::review::{Decision, Verdict, decide};
use orch_core::run::{
    AgentExit, AgentReport, AttemptId, CancelScope, Changes, Command, CommitId, FinishedAgent,
    Input, MergeResult, Orchestrator, Policy, Proposal, RefResult, RunEvent, RunId, RunSnapshot,
    RunState, Stage, TaskSpec,
};
use orch_core::usage::Usage;
use orch_core::{TaskId, TaskStatus, Timestamp};

/// splitmix64: small, fast, good enough for choosing outcomes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `p` percent.
    pub fn pct(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[(self.next() % v.len() as u64) as usize])
        }
    }
}

/// What an agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentPlan {
    Succeed {
        empty: bool,
    },
    Fail(i32),
    /// Exits non-zero after hitting a rate limit.
    Quota,
    NoStart,
    Hang,
}

/// What a gate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatePlan {
    Pass,
    Fail,
    Hang,
}

/// What a merge does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergePlan {
    Clean,
    Conflict(Vec<String>),
    Fail,
    /// The engine's merge work panics: no result, only `WorkFailed`.
    Panic,
    /// Clean, but the attempt's change undoes another task's landed work.
    Undoes,
}

/// Chooses the world's outcomes.
pub trait Oracle {
    fn provision_ok(&mut self, a: AttemptId) -> bool;
    fn agent(&mut self, a: AttemptId) -> AgentPlan;
    fn gate(&mut self, a: AttemptId, stage: Stage) -> GatePlan;
    /// Whether the task's work breaks the integration gate: every gate on a merge
    /// holding it fails, whatever [`Oracle::gate`] says.
    fn breaks_integration(&self, _task: TaskId) -> bool {
        false
    }
    fn merge(&mut self, a: AttemptId) -> MergePlan;
    /// Whether the process exits on SIGTERM.
    fn obeys_sigterm(&mut self, a: AttemptId) -> bool;
    /// How long an operation takes.
    fn delay(&mut self, what: &str) -> Duration;
    /// The planner's answer: `None` for silence, `Err` for a failure.
    fn planner(&mut self, claimable: &[TaskId], free: u32)
    -> Option<Result<Vec<Proposal>, String>>;
    /// Whether a running agent had finished, and the engine had committed its work,
    /// just before a crash (the core never heard of it).
    fn finished_before_crash(&mut self, _: AttemptId) -> bool {
        false
    }
    /// The tokens a running agent reports halfway, if it reports any.
    fn progress_tokens(&mut self, _: AttemptId) -> Option<u64> {
        None
    }
    /// What a person decides on round `round` of `task`'s work in review, soon after
    /// it is submitted; `None` leaves it waiting.
    fn review(&mut self, _task: TaskId, _round: u32) -> Option<Decision> {
        None
    }
    /// The machine's CPU load (permille) sampled now, if one is sampled.
    fn cpu_load(&mut self) -> Option<u32> {
        None
    }
}

/// Seeded-random outcomes.
pub struct RandomOracle {
    pub rng: Rng,
    pub planner_tasks: Vec<TaskId>,
    /// Agents finish within seconds of each other while gates take long: work piles
    /// up behind the gates, as batches are for.
    pub bursts: bool,
    /// Worker gates mostly end within a second (`true`, a lint of one file).
    pub quick_gates: bool,
}

impl Oracle for RandomOracle {
    fn cpu_load(&mut self) -> Option<u32> {
        self.rng.pct(30).then(|| self.rng.range(0, 1000) as u32)
    }
    fn provision_ok(&mut self, _: AttemptId) -> bool {
        !self.rng.pct(3)
    }
    fn progress_tokens(&mut self, a: AttemptId) -> Option<u64> {
        Some(600 * u64::from(a.task.0 as u32 % 4))
    }
    fn agent(&mut self, _: AttemptId) -> AgentPlan {
        match self.rng.range(0, 99) {
            0..=69 => AgentPlan::Succeed { empty: false },
            70..=76 => AgentPlan::Fail(1),
            77..=81 => AgentPlan::Succeed { empty: true },
            82..=84 => AgentPlan::NoStart,
            85..=87 => AgentPlan::Quota,
            _ => AgentPlan::Hang,
        }
    }
    fn gate(&mut self, _: AttemptId, stage: Stage) -> GatePlan {
        let fail = if stage == Stage::Worker { 20 } else { 12 };
        match self.rng.range(0, 99) {
            n if n < 3 => GatePlan::Hang,
            n if n < 3 + fail => GatePlan::Fail,
            _ => GatePlan::Pass,
        }
    }
    fn merge(&mut self, _: AttemptId) -> MergePlan {
        match self.rng.range(0, 99) {
            0..=11 => MergePlan::Conflict(vec![format!("src/f{}.rs", self.rng.range(0, 3))]),
            12..=14 => MergePlan::Fail,
            15 => MergePlan::Panic,
            16..=19 => MergePlan::Undoes,
            _ => MergePlan::Clean,
        }
    }
    fn obeys_sigterm(&mut self, _: AttemptId) -> bool {
        !self.rng.pct(30)
    }
    fn finished_before_crash(&mut self, _: AttemptId) -> bool {
        self.rng.pct(40)
    }
    fn review(&mut self, _: TaskId, _: u32) -> Option<Decision> {
        let text = "a person's words".to_owned();
        Some(match self.rng.range(0, 99) {
            0..=44 => Decision::Approve { text },
            45..=79 => Decision::Changes {
                text,
                comments: vec![],
            },
            80..=89 => Decision::Reject {
                text,
                again: self.rng.pct(50),
            },
            _ => return None,
        })
    }
    fn delay(&mut self, what: &str) -> Duration {
        let ms = match what {
            "agent" | "worker gate" if self.bursts => self.rng.range(1_000, 5_000),
            // Mostly quick: worker gates take no slot, until a slow one.
            "worker gate" if self.quick_gates => match self.rng.pct(90) {
                true => self.rng.range(5, 1_000),
                false => self.rng.range(1_000, 20_000),
            },
            "worker gate" => self.rng.range(500, 40_000),
            "agent" => self.rng.range(1_000, 90_000),
            "gate" => self.rng.range(500, 40_000),
            "sigterm" => self.rng.range(10, 3_000),
            "sigkill" => self.rng.range(1, 50),
            "planner" => self.rng.range(50, 5_000),
            _ => self.rng.range(5, 500),
        };
        Duration::from_millis(ms)
    }
    fn planner(
        &mut self,
        claimable: &[TaskId],
        free: u32,
    ) -> Option<Result<Vec<Proposal>, String>> {
        match self.rng.range(0, 99) {
            0..=9 => return Some(Err("invalid JSON".into())),
            10..=19 => return None,
            _ => {}
        }
        let mut out = Vec::new();
        for _ in 0..self.rng.range(0, free as u64 + 2) {
            let p = match self.rng.range(0, 99) {
                0..=59 => match self.rng.pick(claimable) {
                    Some(t) => Proposal::Claim {
                        task: *t,
                        note: Some("planner says so".into()),
                    },
                    None => continue,
                },
                60..=74 => {
                    // Any task, claimable or not, or an unknown one.
                    let t = self
                        .rng
                        .pick(&self.planner_tasks)
                        .copied()
                        .unwrap_or(TaskId(999));
                    Proposal::Claim {
                        task: if self.rng.pct(20) { TaskId(999) } else { t },
                        note: None,
                    }
                }
                75..=96 => match self.rng.pick(claimable) {
                    Some(t) => Proposal::Defer {
                        task: *t,
                        reason: "later".into(),
                    },
                    None => continue,
                },
                _ => Proposal::StopClaiming {
                    reason: "enough".into(),
                },
            };
            out.push(p);
        }
        Some(Ok(out))
    }
}

#[derive(Debug, Clone)]
struct Proc {
    stage: Option<Stage>,
    plan_ok: bool,
    empty: bool,
    code: i32,
    exit_at: Option<Timestamp>,
    kill_requested: Option<Timestamp>,
    killed: bool,
    quota: bool,
    commit: CommitId,
    /// A worker gate started while the run's worker gates were quick: it holds no
    /// gate slot.
    slotless: bool,
}

impl Proc {
    /// What the engine reports when this agent process ends.
    fn exited(&self, a: AttemptId) -> Input {
        Input::AgentExited {
            attempt: a,
            exit: if self.killed {
                AgentExit::Signal(15)
            } else {
                AgentExit::Code(self.code)
            },
            changes: Some(Changes::new(
                if self.empty {
                    CommitId(format!("base-of-{a}"))
                } else {
                    self.commit.clone()
                },
                self.empty,
            )),
            report: AgentReport {
                usage: Some(Usage {
                    input_tokens: 1000,
                    output_tokens: 100 + u64::from(a.number),
                    session_id: Some(format!("session-{a}")),
                    ..Usage::default()
                }),
                quota: (self.quota && !self.killed).then(|| "rate_limit_error".to_owned()),
                hint: None,
                malformed: None,
                rate_limited: None,
                output_tail: None,
            },
        }
    }
}

/// Facts the world delivered about an attempt, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    WorkerPassed,
    MergeClean(CommitId),
    IntegrationPassed(CommitId),
    RefAdvanced(CommitId),
}

/// What the world does at a moment: a scripted crash or cancel.
#[derive(Debug, Clone)]
pub enum Disturbance {
    /// Crash after executing this many more commands.
    CrashAfter(usize),
    Cancel(CancelScope),
}

/// A run in the fake world.
pub struct World<O: Oracle> {
    pub oracle: O,
    pub policy: Policy,
    pub run: RunId,
    pub now: Timestamp,
    pub orch: Orchestrator,
    pub initial_board: Vec<TaskSpec>,
    /// The store's board: the run's moves (compare-and-swap, as the store applies
    /// them) and people's.
    pub board: BTreeMap<TaskId, TaskSpec>,
    /// Tasks a person took from the run (their attempts may still land).
    taken: BTreeSet<TaskId>,
    /// Claims written (or refused) whose answer the core has not heard yet.
    claims_in_flight: BTreeSet<TaskId>,
    /// When the board read the core asked for is answered.
    refresh_due: Option<Timestamp>,
    /// Tasks in review, and when the person decides.
    review_due: BTreeMap<TaskId, Timestamp>,
    /// Heads of work submitted for review after their worker gate passed: an
    /// approval integrates one of them with no gate of its own.
    reviewed_heads: BTreeSet<CommitId>,
    /// Requests for changes past `review.max_rounds`: sent back to review with a note.
    pub review_capped: u32,
    pub head: CommitId,
    base: CommitId,
    next_commit: u64,
    seq: u64,
    pending: BTreeMap<(Timestamp, u64), Input>,
    agents: BTreeMap<AttemptId, Proc>,
    gates: BTreeMap<AttemptId, Proc>,
    passed_integration: BTreeSet<CommitId>,
    /// Each commit's tree, where it is not its own: an empty change has its base's, a
    /// merge onto its attempt's own base its head's.
    trees: BTreeMap<CommitId, CommitId>,
    /// Trees a gate passed on (both gates run the same commands here).
    passed_trees: BTreeSet<CommitId>,
    /// Each attempt's base and agent head, as provisioned and reported.
    bases: BTreeMap<AttemptId, CommitId>,
    heads: BTreeMap<AttemptId, CommitId>,
    /// Every commit the integration ref has pointed at.
    ref_history: BTreeSet<CommitId>,
    /// Each merge commit's first parent (what it was made on) and its attempt.
    merges: BTreeMap<CommitId, (CommitId, AttemptId)>,
    facts: BTreeMap<AttemptId, Vec<Fact>>,
    pub journal: Vec<RunEvent>,
    folded: RunSnapshot,
    provisioned: BTreeSet<AttemptId>,
    cleaned: BTreeSet<AttemptId>,
    done_count: BTreeMap<TaskId, u32>,
    /// Attempts whose advance is journaled and whose task is not yet done (a landed
    /// prefix of the stack journals every advance, then every task).
    advanced: BTreeSet<AttemptId>,
    pub finished: Option<RunState>,
    pub crashes: u32,
    pub steps: u64,
    crash_in: Option<usize>,
    pub trace: Option<String>,
}

fn secs(t: Timestamp) -> String {
    format!("{:>8.3}s", t.0 as f64 / 1000.0)
}

impl<O: Oracle> World<O> {
    pub fn new(oracle: O, policy: Policy, board: Vec<TaskSpec>, trace: bool) -> World<O> {
        let run = RunId("r1".into());
        let base = CommitId("c0".into());
        World {
            oracle,
            orch: Orchestrator::new(run.clone(), policy.clone(), board.clone()),
            policy,
            run,
            now: Timestamp(0),
            board: board.iter().map(|t| (t.id, t.clone())).collect(),
            taken: BTreeSet::new(),
            claims_in_flight: BTreeSet::new(),
            refresh_due: None,
            review_due: BTreeMap::new(),
            reviewed_heads: BTreeSet::new(),
            review_capped: 0,
            initial_board: board,
            head: base.clone(),
            base,
            next_commit: 1,
            seq: 0,
            pending: BTreeMap::new(),
            agents: BTreeMap::new(),
            gates: BTreeMap::new(),
            passed_integration: BTreeSet::new(),
            trees: BTreeMap::new(),
            passed_trees: BTreeSet::new(),
            bases: BTreeMap::new(),
            heads: BTreeMap::new(),
            ref_history: BTreeSet::from([CommitId("c0".into())]),
            merges: BTreeMap::new(),
            facts: BTreeMap::new(),
            journal: Vec::new(),
            folded: RunSnapshot::default(),
            provisioned: BTreeSet::new(),
            cleaned: BTreeSet::new(),
            done_count: BTreeMap::new(),
            advanced: BTreeSet::new(),
            finished: None,
            crashes: 0,
            steps: 0,
            crash_in: None,
            trace: trace.then(String::new),
        }
    }

    /// The candidates from `c` down to the ref's head (each merge with its attempt,
    /// top first), if `c` is the head or stacked on it; `None` otherwise.
    fn stack_below(&self, c: &CommitId) -> Option<Vec<(CommitId, AttemptId)>> {
        let (mut at, mut out) = (c.clone(), Vec::new());
        while at != self.head {
            let (onto, a) = self.merges.get(&at)?;
            out.push((at.clone(), *a));
            at = onto.clone();
        }
        Some(out)
    }

    fn commit(&mut self, prefix: &str) -> CommitId {
        let c = CommitId(format!("{prefix}{}", self.next_commit));
        self.next_commit += 1;
        c
    }

    /// The tree `c` records.
    fn tree(&self, c: &CommitId) -> CommitId {
        self.trees.get(c).cloned().unwrap_or_else(|| c.clone())
    }

    fn deliver_at(&mut self, after: Duration, input: Input) {
        let t = Timestamp(self.now.0 + after.as_millis() as i64);
        self.seq += 1;
        self.pending.insert((t, self.seq), input);
    }

    fn log(&mut self, line: String) {
        if let Some(t) = &mut self.trace {
            t.push_str(&line);
            t.push('\n');
        }
    }

    /// Feeds an input and executes what it produces, checking invariants.
    pub fn feed(&mut self, input: Input) -> Result<(), String> {
        self.log(format!("{} > {}", secs(self.now), fmt_input(&input)));
        let _ = self.orch.handle(self.now, input);
        self.drain()?;
        self.check()
    }

    /// Executes commands until none are left (or a scheduled crash strikes).
    fn drain(&mut self) -> Result<(), String> {
        while let Some(cmd) = self.orch.poll_command() {
            if let Some(n) = self.crash_in {
                if n == 0 {
                    self.crash_in = None;
                    return self.crash();
                }
                self.crash_in = Some(n - 1);
            }
            self.log(format!("           < {}", fmt_command(&cmd)));
            self.execute(cmd)?;
        }
        Ok(())
    }

    /// Crash: the orchestrator and everything in flight vanish; git and the journal stay.
    pub fn crash(&mut self) -> Result<(), String> {
        self.crashes += 1;
        self.log(format!(
            "{} ! crash; resuming from {} journal events, ref at {}",
            secs(self.now),
            self.journal.len(),
            self.head
        ));
        self.pending.clear();
        self.claims_in_flight.clear();
        self.refresh_due = None;
        // Agents that finished (and whose work the engine committed) just before the
        // crash: the resumed core hears of them from the engine's inspection.
        let mut finished = BTreeMap::new();
        let agents = std::mem::take(&mut self.agents);
        for (a, p) in agents {
            let Some(exit_at) = p.exit_at.filter(|_| !p.killed) else {
                continue;
            };
            if !self.oracle.finished_before_crash(a) {
                continue;
            }
            self.now = self.now.max(exit_at);
            let input = p.exited(a);
            self.record_fact(&input);
            self.log(format!(
                "           agent {a} had finished before the crash"
            ));
            if let Input::AgentExited {
                exit,
                changes,
                report,
                ..
            } = input
            {
                finished.insert(
                    a,
                    FinishedAgent {
                        exit,
                        changes,
                        report,
                    },
                );
            }
        }
        self.gates.clear();
        while self.orch.poll_command().is_some() {}
        let snapshot = RunSnapshot::from_events(&self.journal);
        let board: Vec<TaskSpec> = self.board.values().cloned().collect();
        self.orch = Orchestrator::resume(
            self.run.clone(),
            self.policy.clone(),
            board,
            &snapshot,
            self.head.clone(),
            None,
            finished,
            self.now,
        );
        self.drain()?;
        self.check()?;
        // The engine reads the board as soon as it drives the run again.
        self.board_changed()
    }

    /// The engine's board poll: every task on the store's board.
    pub fn board_changed(&mut self) -> Result<(), String> {
        let tasks = self.board.values().cloned().collect();
        self.feed(Input::BoardChanged { tasks })
    }

    /// A person changes the board (as another terminal would), then the run hears.
    pub fn person(&mut self, rng: &mut Rng) -> Result<(), String> {
        let ids: Vec<TaskId> = self.board.keys().copied().collect();
        let Some(&t) = rng.pick(&ids) else {
            return Ok(());
        };
        // The engine reads the board and claims through one store lane, in turn: it
        // never hears of a board between a claim's write and its answer, so a
        // person's change in that window reaches the run only after the answer.
        if self.claims_in_flight.contains(&t) {
            return Ok(());
        }
        let status = self.board[&t].status;
        let what = rng.range(0, 5);
        self.log(format!(
            "{} ! a person changes #{t} ({status}): {what}",
            secs(self.now)
        ));
        match what {
            0 if status != TaskStatus::Done => self.set_by_person(t, Some(TaskStatus::Canceled)),
            1 if status == TaskStatus::Backlog => self.set_by_person(t, Some(TaskStatus::Blocked)),
            2 if status != TaskStatus::Done => self.set_by_person(t, Some(TaskStatus::Done)),
            3 if status != TaskStatus::Backlog => self.set_by_person(t, Some(TaskStatus::Backlog)),
            4 => self.set_by_person(t, None),
            _ => {
                let spec = self.board.get_mut(&t).expect("picked from the board");
                spec.priority = rng.range(0, 3) as i32;
            }
        }
        self.board_changed()
    }

    fn set_by_person(&mut self, t: TaskId, to: Option<TaskStatus>) {
        match self.board.get(&t).map(|s| s.status) {
            Some(TaskStatus::InProgress) => {
                self.taken.insert(t);
            }
            // Reopened by force: doing it again is what the person asked for.
            Some(TaskStatus::Done) => {
                self.done_count.remove(&t);
            }
            _ => {}
        }
        match to {
            // A person's move ends a review under way (the store's rule).
            Some(s) => {
                let spec = self.board.get_mut(&t).expect("on the board");
                spec.status = s;
                spec.review = None;
            }
            None => {
                self.board.remove(&t);
                for spec in self.board.values_mut() {
                    spec.depends_on.retain(|d| *d != t);
                }
            }
        }
    }

    /// A person decides on `t`'s work in review (as `orch review` would: the store
    /// applies the core's decision), then the run hears.
    fn review_decided(&mut self, t: TaskId) -> Result<(), String> {
        let Some(spec) = self.board.get(&t).cloned() else {
            return Ok(());
        };
        let Some(r) = spec.review.clone() else {
            return Ok(());
        };
        let Some(d) = self.oracle.review(t, r.round) else {
            return Ok(());
        };
        let max = self.policy.review.max_rounds;
        let decided = decide(t, spec.status, Some(&*r), &d, format!("fix #{t}"), max);
        let Ok(decided) = decided else {
            return Ok(());
        };
        self.log(format!(
            "{} ! a person reviews #{t}: {}",
            secs(self.now),
            decided.reason
        ));
        if decided.review.as_ref().map(|r| &r.verdict) == Some(&Verdict::Pending) {
            self.review_capped += 1;
            // Still waiting (the rounds ran out): the person looks again.
            let d = self.oracle.delay("review");
            self.review_due
                .insert(t, Timestamp(self.now.0 + d.as_millis() as i64));
        }
        let spec = self.board.get_mut(&t).expect("just read");
        spec.status = decided.status;
        spec.review = decided.review.map(Box::new);
        self.board_changed()
    }

    pub fn schedule_crash(&mut self, after_commands: usize) {
        self.crash_in = Some(after_commands);
    }

    fn execute(&mut self, cmd: Command) -> Result<(), String> {
        match cmd {
            Command::Persist(e) => self.persist(e.event)?,
            Command::Claim { task, event } => {
                let RunEvent::TaskMoved { from, .. } = &event.event else {
                    return Err(format!("the claim of #{task} is not a task move"));
                };
                let d = self.oracle.delay("claim");
                self.claims_in_flight.insert(task);
                if self.board.get(&task).map(|s| s.status) == Some(*from) {
                    self.persist(event.event)?;
                    self.deliver_at(d, Input::Claimed { task });
                } else {
                    let why = format!("task {task} is no longer {from}");
                    self.deliver_at(d, Input::ClaimRefused { task, why });
                }
            }
            Command::Provision { attempt, base, .. } => {
                if !self.journal.iter().any(
                    |e| matches!(e, RunEvent::AttemptCreated { attempt: a, .. } if *a == attempt),
                ) {
                    return Err(format!("I4: {attempt} provisioned before it was journaled"));
                }
                if !self.ref_history.contains(&base) {
                    return Err(format!(
                        "{attempt} based on {base}, which the integration ref never held"
                    ));
                }
                self.provisioned.insert(attempt);
                self.bases.insert(attempt, base.clone());
                let ok = self.oracle.provision_ok(attempt);
                let d = self.oracle.delay("provision");
                let input = if ok {
                    Input::WorktreeReady { attempt }
                } else if attempt.task.0 % 2 == 0 {
                    // The engine's provisioning task panicked.
                    let why = "provisioning panicked".into();
                    Input::WorkFailed { attempt, why }
                } else {
                    Input::WorktreeFailed {
                        attempt,
                        error: "disk full".into(),
                    }
                };
                self.deliver_at(d, input);
            }
            Command::SpawnAgent { attempt, .. } => {
                if !self.provisioned.contains(&attempt) {
                    return Err(format!("{attempt} spawned without a worktree"));
                }
                let plan = self.oracle.agent(attempt);
                let commit = self.commit("a");
                let d = self.oracle.delay("agent");
                let mut p = Proc {
                    stage: None,
                    plan_ok: true,
                    empty: false,
                    code: 0,
                    exit_at: Some(Timestamp(self.now.0 + d.as_millis() as i64)),
                    kill_requested: None,
                    killed: false,
                    quota: false,
                    commit,
                    slotless: false,
                };
                match plan {
                    AgentPlan::Succeed { empty } => p.empty = empty,
                    AgentPlan::Fail(code) => p.code = code,
                    AgentPlan::Quota => {
                        p.code = 1;
                        p.quota = true;
                    }
                    AgentPlan::Hang => p.exit_at = None,
                    AgentPlan::NoStart => {
                        let d = self.oracle.delay("spawn");
                        self.deliver_at(
                            d,
                            Input::AgentExited {
                                attempt,
                                exit: AgentExit::FailedToStart("no such program".into()),
                                changes: None,
                                report: AgentReport::default(),
                            },
                        );
                        return Ok(());
                    }
                }
                // Halfway (or soon, for one that hangs) it reports what it used so far,
                // which may pass a budget; a late report (after it ended) is ignored.
                if let Some(tokens) = self.oracle.progress_tokens(attempt) {
                    let usage = Usage {
                        input_tokens: tokens,
                        ..Usage::default()
                    };
                    let report = AgentReport {
                        usage: Some(usage),
                        quota: None,
                        hint: None,
                        malformed: None,
                        rate_limited: None,
                        output_tail: None,
                    };
                    self.deliver_at(d / 2, Input::AgentProgress { attempt, report });
                }
                self.agents.insert(attempt, p);
                if self.agents.len() as u32 > self.policy.slots() {
                    return Err(format!(
                        "I3: {} live agents with concurrency {}",
                        self.agents.len(),
                        self.policy.slots()
                    ));
                }
            }
            Command::RunGate {
                attempt,
                stage,
                commit,
                reuse,
            } => {
                if stage == Stage::Worker && !self.provisioned.contains(&attempt) {
                    return Err(format!("{attempt}'s worker gate ran without its worktree"));
                }
                let labels = self.board.get(&attempt.task).map_or(&[][..], |s| &s.labels);
                if stage == Stage::Worker
                    && self.policy.worker_stands_in
                    && !self.policy.review.needs(labels)
                {
                    return Err(format!(
                        "{attempt}'s worker gate ran, though the integration gate stands in"
                    ));
                }
                let tree = self.tree(&commit);
                if reuse && self.policy.reuse_verdicts && self.passed_trees.contains(&tree) {
                    // A pass on the same tree stands for this gate: it does not run.
                    if stage == Stage::Integration {
                        self.passed_integration.insert(commit.clone());
                    }
                    let d = self.oracle.delay("verdict");
                    let input = Input::GateFinished {
                        attempt,
                        stage,
                        passed: true,
                        summary: String::new(),
                        reused: Some(format!("tree {tree}")),
                    };
                    self.deliver_at(d, input);
                    return Ok(());
                }
                let broken = stage == Stage::Integration
                    && self
                        .stack_below(&commit)
                        .unwrap_or_default()
                        .iter()
                        .any(|(_, a)| self.oracle.breaks_integration(a.task));
                let plan = match broken {
                    true => GatePlan::Fail,
                    false => self.oracle.gate(attempt, stage),
                };
                let d = self.oracle.delay(match stage {
                    Stage::Worker => "worker gate",
                    Stage::Integration => "gate",
                });
                let p = Proc {
                    stage: Some(stage),
                    plan_ok: plan == GatePlan::Pass,
                    empty: false,
                    code: 0,
                    exit_at: (plan != GatePlan::Hang)
                        .then(|| Timestamp(self.now.0 + d.as_millis() as i64)),
                    kill_requested: None,
                    killed: false,
                    quota: false,
                    commit,
                    slotless: stage == Stage::Worker && self.orch.quick_worker_gates(),
                };
                self.gates.insert(attempt, p);
                // Slots that follow the load: as many as the core has now, within
                // the ceiling.
                let slots = self.orch.gate_slots();
                let ceiling = self.policy.gate_slots.max(self.policy.gate_slots_ceiling);
                if slots > ceiling || (slots > 0) != (self.policy.gate_slots > 0) {
                    return Err(format!(
                        "{slots} gate slots, set {}",
                        self.policy.gate_slots
                    ));
                }
                let counted = self
                    .gates
                    .values()
                    .filter(|g| {
                        !g.slotless
                            && g.stage
                                .is_some_and(|st| !self.policy.empty_gates.contains(&st))
                    })
                    .count();
                if slots > 0 && counted > slots {
                    return Err(format!(
                        "{counted} gates run at once with validate.slots {slots}"
                    ));
                }
            }
            Command::Merge { attempt, onto, .. } => {
                if self.stack_below(&onto).is_none() {
                    return Err(format!(
                        "{attempt} merged onto {onto}, which is neither the ref ({}) nor a candidate stacked on it",
                        self.head
                    ));
                }
                let plan = self.oracle.merge(attempt);
                let result = match plan {
                    MergePlan::Clean => {
                        let c = self.commit("m");
                        // Onto its own base, the merge has the head's tree.
                        if self.bases.get(&attempt) == Some(&onto)
                            && let Some(h) = self.heads.get(&attempt).cloned()
                        {
                            let t = self.tree(&h);
                            self.trees.insert(c.clone(), t);
                        }
                        self.merges.insert(c.clone(), (onto.clone(), attempt));
                        self.facts
                            .entry(attempt)
                            .or_default()
                            .push(Fact::MergeClean(c.clone()));
                        MergeResult::Clean {
                            commit: c,
                            undoes: Vec::new(),
                        }
                    }
                    MergePlan::Undoes => {
                        let c = self.commit("m");
                        self.merges.insert(c.clone(), (onto.clone(), attempt));
                        self.facts
                            .entry(attempt)
                            .or_default()
                            .push(Fact::MergeClean(c.clone()));
                        let undo = orch_core::ports::Undo {
                            task: "task-landed".into(),
                            file: "src/shared.rs".into(),
                            lines: (3, 4),
                            restores: true,
                        };
                        MergeResult::Clean {
                            commit: c,
                            undoes: vec![undo],
                        }
                    }
                    MergePlan::Conflict(paths) => MergeResult::Conflict { paths },
                    MergePlan::Fail => MergeResult::Failed {
                        message: "object missing".into(),
                    },
                    MergePlan::Panic => {
                        let d = self.oracle.delay("merge");
                        let why = "the merge's task panicked".into();
                        self.deliver_at(d, Input::WorkFailed { attempt, why });
                        return Ok(());
                    }
                };
                let d = self.oracle.delay("merge");
                self.deliver_at(d, Input::MergeFinished { attempt, result });
            }
            Command::AdvanceRef {
                attempt,
                expected,
                new,
            } => {
                if !self.passed_integration.contains(&new) {
                    return Err(format!(
                        "I2: the ref would move to {new}, whose integration validation did not pass"
                    ));
                }
                if new == expected {
                    return Err(format!(
                        "{attempt} asked to move the ref from {expected} to itself"
                    ));
                }
                let result = if self.head == expected {
                    let landed = self.stack_below(&new).ok_or_else(|| {
                        format!("the ref would move to {new}, which is not stacked on {expected}")
                    })?;
                    for (m, a) in landed {
                        if !self.passed_integration.contains(&m) {
                            return Err(format!(
                                "I2: the ref would move past {m} ({a}), whose integration validation did not pass"
                            ));
                        }
                        self.facts.entry(a).or_default().push(Fact::RefAdvanced(m));
                    }
                    self.head = new.clone();
                    self.ref_history.insert(new);
                    RefResult::Advanced
                } else {
                    RefResult::LostRace {
                        actual: self.head.clone(),
                    }
                };
                let d = self.oracle.delay("ref");
                self.deliver_at(d, Input::RefUpdated { attempt, result });
            }
            Command::Abort { attempt, hard } => {
                let now = self.now;
                let obey = self.oracle.obeys_sigterm(attempt);
                let d = if hard {
                    self.oracle.delay("sigkill")
                } else {
                    self.oracle.delay("sigterm")
                };
                let proc = match self.agents.get_mut(&attempt) {
                    Some(p) => Some(p),
                    None => self.gates.get_mut(&attempt),
                };
                if let Some(p) = proc {
                    p.kill_requested.get_or_insert(now);
                    if hard || obey {
                        let t = Timestamp(now.0 + d.as_millis() as i64);
                        p.exit_at = Some(p.exit_at.map_or(t, |e| e.min(t)));
                        p.killed = true;
                    }
                }
            }
            Command::ReleaseWorktree { attempt } => {
                // Its worktree is another attempt's from now on: it must not be used.
                if !self.provisioned.remove(&attempt) {
                    return Err(format!("{attempt} released a worktree it did not hold"));
                }
            }
            Command::Cleanup { attempt, .. } => {
                self.cleaned.insert(attempt);
                let d = self.oracle.delay("cleanup");
                self.deliver_at(
                    d,
                    Input::CleanedUp {
                        attempt,
                        error: None,
                    },
                );
            }
            Command::AskPlanner {
                request,
                claimable,
                free_slots,
                ..
            } => match self.oracle.planner(&claimable, free_slots) {
                None => {}
                Some(Err(reason)) => {
                    let d = self.oracle.delay("planner");
                    self.deliver_at(d, Input::PlannerFailed { request, reason });
                }
                Some(Ok(proposals)) => {
                    let d = self.oracle.delay("planner");
                    self.deliver_at(d, Input::PlannerProposed { request, proposals });
                }
            },
            // The engine reads the board in order with its writes, and answers at once:
            // the read happens when it is delivered, never older than a claim before it.
            Command::RefreshBoard => {
                let d = self.oracle.delay("board");
                self.refresh_due = Some(Timestamp(self.now.0 + d.as_millis() as i64));
            }
            Command::Finish { state } => self.finished = Some(state),
        }
        Ok(())
    }

    fn persist(&mut self, e: RunEvent) -> Result<(), String> {
        match &e {
            RunEvent::HeadAdvanced { attempt, to, .. } => {
                let f = self.facts.get(attempt).cloned().unwrap_or_default();
                let w = f.iter().position(|x| *x == Fact::WorkerPassed);
                let m = f.iter().position(|x| *x == Fact::MergeClean(to.clone()));
                let i = f
                    .iter()
                    .position(|x| *x == Fact::IntegrationPassed(to.clone()));
                let r = f.iter().position(|x| *x == Fact::RefAdvanced(to.clone()));
                // The integration gate stands in for a worker gate of the same commands;
                // approved work passed its worker gate as the attempt that submitted it.
                let reviewed = self
                    .heads
                    .get(attempt)
                    .is_some_and(|h| self.reviewed_heads.contains(h));
                let w = w
                    .or(self.policy.worker_stands_in.then_some(0))
                    .or(reviewed.then_some(0));
                match (w, m, i, r) {
                    (Some(w), Some(m), Some(i), Some(r)) if w <= m && m < i && i < r => {}
                    _ => {
                        return Err(format!(
                            "I1: {attempt} recorded as integrated at {to} with facts {f:?}"
                        ));
                    }
                }
                self.advanced.insert(*attempt);
            }
            RunEvent::TaskMoved { task, from, to, .. } if *to != TaskStatus::Done => {
                if let Some(spec) = self.board.get_mut(task)
                    && spec.status == *from
                {
                    spec.status = *to;
                    if *to == TaskStatus::Review {
                        let d = self.oracle.delay("review");
                        self.review_due
                            .insert(*task, Timestamp(self.now.0 + d.as_millis() as i64));
                    }
                }
            }
            RunEvent::ReviewRequested { attempt, review } => {
                let passed = self
                    .facts
                    .get(attempt)
                    .is_some_and(|f| f.contains(&Fact::WorkerPassed));
                if !passed || self.heads.get(attempt) != Some(&review.work.head) {
                    return Err(format!(
                        "{attempt}'s work went to review without passing its worker gate on {}",
                        review.work.head
                    ));
                }
                self.reviewed_heads.insert(review.work.head.clone());
                if let Some(spec) = self.board.get_mut(&attempt.task) {
                    spec.review = Some(Box::new(review.clone()));
                }
            }
            RunEvent::AttemptHead { attempt, head, .. } => {
                self.heads.entry(*attempt).or_insert_with(|| head.clone());
            }
            RunEvent::AttemptCreated { attempt, base, .. } => {
                self.bases.entry(*attempt).or_insert_with(|| base.clone());
            }
            RunEvent::TaskMoved {
                task,
                from,
                to: TaskStatus::Done,
                ..
            } => {
                if let Some(spec) = self.board.get_mut(task)
                    && spec.status == *from
                {
                    spec.status = TaskStatus::Done;
                }
                let Some(a) = self.advanced.iter().find(|a| a.task == *task).copied() else {
                    return Err(format!(
                        "I1: task {task} done without its attempt advancing the ref before"
                    ));
                };
                self.advanced.remove(&a);
                let n = self.done_count.entry(*task).or_default();
                *n += 1;
                if *n > 1 {
                    return Err(format!("task {task} done twice"));
                }
            }
            _ => {}
        }
        self.folded.apply(&e);
        self.journal.push(e);
        Ok(())
    }

    /// Invariants that hold after every step.
    fn check(&mut self) -> Result<(), String> {
        let (mut live, mut folded) = (self.orch.snapshot(), self.folded.clone());
        for t in &self.claims_in_flight {
            live.tasks.remove(t);
            folded.tasks.remove(t);
            live.claimed_after.remove(t);
            folded.claimed_after.remove(t);
        }
        if live != folded {
            return Err(format!(
                "I5: the journal does not rebuild the state\n journal: {:?}\n live:    {:?}",
                self.folded,
                self.orch.snapshot()
            ));
        }
        let limit = self.policy.kill_grace.as_millis() as i64 + 200;
        for (a, p) in self.agents.iter().chain(self.gates.iter()) {
            if let Some(t) = p.kill_requested
                && self.now.0 > t.0 + limit
            {
                return Err(format!(
                    "I6: {a} still alive {} ms after its abort",
                    self.now.0 - t.0
                ));
            }
        }
        // A slot is an agent: attempts waiting to integrate hold none.
        if self.orch.slot_holders() as u32 > self.policy.slots() {
            return Err(format!(
                "I3: {} attempts hold a slot",
                self.orch.slot_holders()
            ));
        }
        Ok(())
    }

    /// Checks that hold when the run has finished.
    pub fn check_end(&self) -> Result<(), String> {
        if !self.agents.is_empty() || !self.gates.is_empty() {
            return Err(format!(
                "processes left alive: {:?} {:?}",
                self.agents.keys(),
                self.gates.keys()
            ));
        }
        let missing: Vec<_> = self.provisioned.difference(&self.cleaned).collect();
        if !missing.is_empty() {
            return Err(format!("I4: worktrees never cleaned up: {missing:?}"));
        }
        let statuses = self.statuses();
        let stuck: Vec<_> = statuses
            .iter()
            .filter(|(_, s)| **s == TaskStatus::InProgress)
            .collect();
        if !stuck.is_empty() {
            return Err(format!("I8: tasks left in progress: {stuck:?}"));
        }
        if self.head != self.base && !self.passed_integration.contains(&self.head) {
            return Err(format!("I2: the ref ended at unvalidated {}", self.head));
        }
        // Every advance is a task the run marked done, or one a person took first.
        let done = self
            .journal
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    RunEvent::TaskMoved {
                        to: TaskStatus::Done,
                        ..
                    }
                )
            })
            .count() as u32;
        let advanced_untaken = self
            .journal
            .iter()
            .filter(|e| {
                matches!(e, RunEvent::HeadAdvanced { attempt, .. } if !self.taken.contains(&attempt.task))
            })
            .count() as u32;
        let advanced = self
            .journal
            .iter()
            .filter(|e| matches!(e, RunEvent::HeadAdvanced { .. }))
            .count() as u32;
        if done < advanced_untaken || done > advanced {
            return Err(format!(
                "{done} tasks done but the ref advanced {advanced} times ({advanced_untaken} for tasks no person took)"
            ));
        }
        Ok(())
    }

    /// The next moment something happens, and what.
    fn next_event(&self) -> Option<Timestamp> {
        let pending = self.pending.keys().next().map(|(t, _)| *t);
        let procs = self
            .agents
            .values()
            .chain(self.gates.values())
            .filter_map(|p| p.exit_at)
            .min();
        let timer = self.orch.poll_timeout();
        let review = self.review_due.values().min().copied();
        [pending, procs, timer, self.refresh_due, review]
            .into_iter()
            .flatten()
            .min()
    }

    /// Advances to the next event and handles it. Returns false when nothing is left.
    pub fn step(&mut self) -> Result<bool, String> {
        if self.finished.is_some() {
            return Ok(false);
        }
        self.steps += 1;
        let Some(t) = self.next_event() else {
            return Err("livelock: the run is not finished, but nothing will ever happen".into());
        };
        self.now = self.now.max(t);
        if self.refresh_due.is_some_and(|r| r <= self.now) {
            self.refresh_due = None;
            return self.board_changed().map(|_| true);
        }
        if let Some((&t, _)) = self.review_due.iter().find(|(_, d)| **d <= self.now) {
            self.review_due.remove(&t);
            return self.review_decided(t).map(|_| true);
        }
        if let Some((&key, _)) = self.pending.iter().next()
            && key.0 <= self.now
        {
            let input = self.pending.remove(&key).expect("just seen");
            self.record_fact(&input);
            return self.feed(input).map(|_| true);
        }
        let exited = self
            .agents
            .iter()
            .map(|(a, p)| (*a, p, false))
            .chain(self.gates.iter().map(|(a, p)| (*a, p, true)))
            .filter(|(_, p, _)| p.exit_at.is_some_and(|e| e <= self.now))
            .map(|(a, _, gate)| (a, gate))
            .next();
        if let Some((a, gate)) = exited {
            let p = if gate {
                self.gates.remove(&a)
            } else {
                self.agents.remove(&a)
            }
            .expect("just seen");
            let input = match p.stage {
                None => p.exited(a),
                Some(stage) => Input::GateFinished {
                    attempt: a,
                    stage,
                    passed: p.plan_ok && !p.killed,
                    summary: if p.plan_ok && !p.killed {
                        String::new()
                    } else {
                        "test failed: 1 of 10".into()
                    },
                    reused: None,
                },
            };
            if let Input::GateFinished {
                stage,
                passed: true,
                ..
            } = &input
            {
                if *stage == Stage::Integration {
                    self.passed_integration.insert(p.commit.clone());
                }
                let t = self.tree(&p.commit);
                self.passed_trees.insert(t);
            }
            if let Input::AgentExited {
                changes: Some(c), ..
            } = &input
            {
                self.heads.insert(a, c.head.clone());
                if c.empty
                    && let Some(b) = self.bases.get(&a).cloned()
                {
                    let t = self.tree(&b);
                    self.trees.insert(c.head.clone(), t);
                }
            }
            self.record_fact(&input);
            return self.feed(input).map(|_| true);
        }
        // Gate slots that follow the machine's load get a sample now and then.
        if self.policy.gate_slots_ceiling > self.policy.gate_slots
            && let Some(busy) = self.oracle.cpu_load()
        {
            return self.feed(Input::CpuLoad { busy }).map(|_| true);
        }
        self.feed(Input::Tick).map(|_| true)
    }

    fn record_fact(&mut self, input: &Input) {
        if let Input::Claimed { task } | Input::ClaimRefused { task, .. } = input {
            self.claims_in_flight.remove(task);
        }
        if let Input::GateFinished {
            attempt,
            stage,
            passed: true,
            ..
        } = input
        {
            let fact = match stage {
                Stage::Worker => Fact::WorkerPassed,
                Stage::Integration => {
                    let Some(Fact::MergeClean(c)) = self
                        .facts
                        .get(attempt)
                        .and_then(|f| f.iter().rev().find(|x| matches!(x, Fact::MergeClean(_))))
                        .cloned()
                    else {
                        return;
                    };
                    // A pass validates every candidate below it, whose work its
                    // merge holds (a batch's, or one gated above the lower ones).
                    for (m, a) in self.stack_below(&c).unwrap_or_default().into_iter().skip(1) {
                        self.passed_integration.insert(m.clone());
                        self.facts
                            .entry(a)
                            .or_default()
                            .push(Fact::IntegrationPassed(m));
                    }
                    Fact::IntegrationPassed(c)
                }
            };
            self.facts.entry(*attempt).or_default().push(fact);
        }
    }

    /// Task statuses after the run (board plus the run's moves).
    pub fn statuses(&self) -> BTreeMap<TaskId, TaskStatus> {
        self.board.iter().map(|(t, s)| (*t, s.status)).collect()
    }

    pub fn live_attempt_of(&self, task: TaskId) -> bool {
        self.agents
            .keys()
            .chain(self.gates.keys())
            .any(|a| a.task == task)
    }
}

pub fn fmt_input(i: &Input) -> String {
    match i {
        Input::Start { head } => format!("start at {head}"),
        Input::BoardChanged { tasks } => format!("board changed ({} tasks)", tasks.len()),
        Input::Claimed { task } => format!("claimed #{task}"),
        Input::ClaimRefused { task, why } => format!("claim of #{task} refused: {why}"),
        Input::PauseClaims => "pause claims".into(),
        Input::ResumeClaims => "resume claims".into(),
        Input::GateBroken {
            attempt,
            stage,
            message,
        } => format!("{} gate broken {attempt}: {message}", stage.as_str()),
        Input::PlannerProposed { request, proposals } => {
            format!("planner #{request} proposes {proposals:?}")
        }
        Input::PlannerFailed { request, reason } => format!("planner #{request} failed: {reason}"),
        Input::WorktreeReady { attempt } => format!("worktree ready {attempt}"),
        Input::WorktreeFailed { attempt, error } => format!("worktree failed {attempt}: {error}"),
        Input::WorkFailed { attempt, why } => format!("work failed {attempt}: {why}"),
        Input::AgentExited {
            attempt,
            exit,
            changes,
            report,
        } => format!(
            "agent exited {attempt}: {exit:?}{}{}",
            changes
                .as_ref()
                .map(|c| format!(", head {}{}", c.head, if c.empty { " (empty)" } else { "" }))
                .unwrap_or_default(),
            report
                .quota
                .as_ref()
                .map(|q| format!(", quota {q:?}"))
                .unwrap_or_default()
        ),
        Input::AgentProgress { attempt, report } => format!("agent progress {attempt}: {report:?}"),
        Input::PlannerUsage { request, usage } => {
            format!("planner #{request} used {}", usage.summary())
        }
        Input::GateFinished {
            attempt,
            stage,
            passed,
            ..
        } => {
            format!(
                "{} gate {} {attempt}",
                stage.as_str(),
                if *passed { "passed" } else { "failed" }
            )
        }
        Input::MergeFinished { attempt, result } => match result {
            MergeResult::Clean { commit, undoes } if undoes.is_empty() => {
                format!("merge {attempt}: Clean {{ commit: {commit:?} }}")
            }
            MergeResult::Clean { commit, undoes } => {
                let u: Vec<String> = undoes.iter().map(|u| u.to_string()).collect();
                format!(
                    "merge {attempt}: Clean {{ commit: {commit:?} }}, undoing {}",
                    u.join("; ")
                )
            }
            other => format!("merge {attempt}: {other:?}"),
        },
        Input::RefUpdated { attempt, result } => format!("ref update {attempt}: {result:?}"),
        Input::CleanedUp { attempt, .. } => format!("cleaned up {attempt}"),
        Input::Cancel { scope } => format!("cancel {scope:?}"),
        Input::Tick => "tick".into(),
        Input::CpuLoad { busy } => format!("cpu {busy}‰ busy"),
    }
}

pub fn fmt_command(c: &Command) -> String {
    match c {
        Command::Claim { task, .. } => format!("claim #{task}"),
        Command::Persist(e) => {
            let e = &e.event;
            let mut s = format!("persist {}", e.kind());
            match e {
                RunEvent::RunMoved { from, to, reason } => {
                    write!(s, " {from:?} -> {to:?}: {reason}")
                }
                RunEvent::HeadSet { head } => write!(s, " {head}"),
                RunEvent::AttemptUsage { .. }
                | RunEvent::PlannerUsage { .. }
                | RunEvent::BudgetSpent { .. }
                | RunEvent::ReportRefused { .. }
                | RunEvent::UserRefsMoved { .. }
                | RunEvent::RetryWaits { .. }
                | RunEvent::GateReused { .. }
                | RunEvent::Reverts { .. }
                | RunEvent::Landed { .. }
                | RunEvent::LineMovedOn { .. }
                | RunEvent::GateRerun { .. }
                | RunEvent::IntegrationImplied { .. }
                | RunEvent::Shaped { .. }
                | RunEvent::SetAside { .. }
                | RunEvent::Flaky { .. }
                | RunEvent::ReviewRequested { .. }
                | RunEvent::QuotaBreaker { .. } => write!(s, " {}", e.reason()),
                RunEvent::HeadAdvanced { attempt, from, to } => {
                    write!(s, " {attempt}: {from} -> {to}")
                }
                RunEvent::TaskMoved {
                    task,
                    from,
                    to,
                    reason,
                } => write!(s, " #{task} {from} -> {to}: {reason}"),
                RunEvent::AttemptCreated { attempt, base, .. } => {
                    write!(s, " {attempt} from {base}")
                }
                RunEvent::AttemptMoved {
                    attempt, from, to, ..
                } => write!(s, " {attempt} {from:?} -> {to:?}"),
                RunEvent::AttemptHead {
                    attempt,
                    head,
                    empty,
                } => write!(
                    s,
                    " {attempt} {head}{}",
                    if *empty { " (empty)" } else { "" }
                ),
                RunEvent::MergeWritten {
                    attempt,
                    commit,
                    onto,
                } => write!(s, " {attempt} {commit} onto {onto}"),
                RunEvent::IntegrationPassed { attempt, commit } => write!(s, " {attempt} {commit}"),
                RunEvent::CleanupRequested { attempt } | RunEvent::CleanupDone { attempt, .. } => {
                    write!(s, " {attempt}")
                }
                RunEvent::ProposalJudged { proposal, verdict } => {
                    write!(s, " {proposal:?}: {verdict:?}")
                }
                RunEvent::PlannerFallback { reason } => write!(s, ": {reason}"),
                RunEvent::InputRefused {
                    input,
                    about,
                    reason,
                } => write!(s, " {input} {about:?}: {reason}"),
                RunEvent::ClaimSkipped { task, why } => write!(s, " #{task}: {why}"),
                RunEvent::TaskTaken { task, status } => write!(s, " #{task} now {status:?}"),
                RunEvent::ClaimsPaused { paused } => write!(s, " {paused}"),
                RunEvent::Resumed {
                    interrupted,
                    reason,
                } => write!(s, " interrupted {interrupted:?}: {reason}"),
            }
            .unwrap();
            s
        }
        Command::Provision {
            attempt,
            branch,
            base,
        } => format!("provision {attempt} at {base} on {branch}"),
        Command::SpawnAgent {
            attempt,
            note,
            previous_failure,
            resume_session,
            review,
            ..
        } => format!(
            "spawn agent {attempt}{}{}{}{}",
            resume_session
                .as_ref()
                .map(|s| format!(" resuming {s}"))
                .unwrap_or_default(),
            review
                .as_ref()
                .map(|r| format!(" review={r:?}"))
                .unwrap_or_default(),
            note.as_ref()
                .map(|n| format!(" note={n:?}"))
                .unwrap_or_default(),
            previous_failure
                .as_ref()
                .map(|f| format!(" after {f}"))
                .unwrap_or_default()
        ),
        Command::RunGate {
            attempt,
            stage,
            commit,
            ..
        } => format!("run {} gate {attempt} on {commit}", stage.as_str()),
        Command::Merge {
            attempt,
            onto,
            head,
            ..
        } => format!("merge {attempt} {head} onto {onto}"),
        Command::AdvanceRef {
            attempt,
            expected,
            new,
        } => format!("advance ref {attempt} {expected} -> {new}"),
        Command::Abort { attempt, hard } => {
            format!("abort {attempt}{}", if *hard { " (hard)" } else { "" })
        }
        Command::ReleaseWorktree { attempt } => format!("release the worktree of {attempt}"),
        Command::Cleanup {
            attempt,
            remove_worktree,
            ..
        } => format!(
            "cleanup {attempt}{}",
            if *remove_worktree {
                ""
            } else {
                " (keep worktree)"
            }
        ),
        Command::AskPlanner {
            request,
            claimable,
            free_slots,
            ..
        } => format!("ask planner #{request}: {claimable:?}, {free_slots} free"),
        Command::RefreshBoard => "refresh board".into(),
        Command::Finish { state } => format!("finish {state:?}"),
    }
}

/// A task for tests.
pub fn task(id: i64, priority: i32, deps: &[i64], touches: &[&str]) -> TaskSpec {
    TaskSpec {
        id: TaskId(id),
        status: TaskStatus::Backlog,
        priority,
        depends_on: deps.iter().map(|d| TaskId(*d)).collect(),
        touches: touches.iter().map(|s| s.to_string()).collect(),
        reverts: Vec::new(),
        labels: Vec::new(),
        review: None,
    }
}
