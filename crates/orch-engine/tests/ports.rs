//! The run driver over fake ports, on paused tokio time: each test scripts git, the
//! journal and processes, drives a whole run through `RunDriver`, and checks how the
//! engine maps what its ports report onto the core's inputs (a lost ref race halts, a
//! moved branch is the agent's failure, a busy store is waited out or, past its
//! patience, stops the run, a refused claim skips a task, a broken gate spends no
//! attempt, SIGKILL follows SIGTERM on the core's timer, steering through the handle).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::config::{Config, MergeStyle};
use orch_core::pool::{CacheRules, Choice, Holder, PoolKind, PoolLimits, PoolSlot, SlotState};
use orch_core::ports::{Leftovers, MergeOutcome, PortError, PortErrorKind};
use orch_core::run::{
    AttemptId, CancelScope, CommitId, Input, Journaled, Orchestrator, Policy, RunEvent, RunId,
    RunState, Stage, TaskSpec, ValidationRecord,
};
use orch_core::{Task, TaskId, TaskStatus};
use orch_engine::ports::{
    GitHistory, GitRefs, GitRemote, GitWorktrees, JournalPort, Ports, ProcessPort, RefError,
};
use orch_engine::{DriverSetup, EngineConfig, EngineError, RunDriver, RunHandle, RunUpdate};
use orch_store::{Control, PoolLease, StoreError};
use orch_validate::{
    CancellationToken, CommandSpec, GateResult, GateSpec, Line, Outcome, Report, RunError,
};
use tokio::sync::mpsc;

const INTEGRATION: &str = "refs/heads/orch/integration";

/// What the fake world does; everything not scripted succeeds.
#[derive(Default)]
struct Script {
    /// Tasks whose agent moves its branch.
    moves_branch: Vec<i64>,
    /// After this many advances, someone else moves the integration ref.
    ref_stolen_after: Option<usize>,
    /// Integration checkouts that fail, counted down.
    broken_checkouts: usize,
    /// Tasks whose agent runs until killed, ignoring SIGTERM.
    hangs_ignoring_sigterm: Vec<i64>,
    /// Before this many advances, another run lands on the line first: the ref moves on
    /// to `<expected>+other`, which that run's journal says it validated.
    overtaken_after: Option<usize>,
    /// The journal refuses writes as busy until this virtual instant.
    busy_until: Option<tokio::time::Instant>,
    /// Pooled worktrees that will not come clean when switched, counted down.
    dirty_switches: usize,
    /// Tasks whose first attempt's agent work panics (a bug in orch, injected).
    panics_in_agent: Vec<i64>,
    /// How long each claim takes the store.
    claim_takes: Duration,
}

#[derive(Default)]
struct World {
    script: Script,
    refs: BTreeMap<String, CommitId>,
    journal: Vec<Journaled>,
    board: BTreeMap<TaskId, Task>,
    board_version: i64,
    advances: usize,
    /// Commits another run validated.
    validated_elsewhere: Vec<CommitId>,
    agents_run: Vec<AttemptId>,
    /// (attempt, what) for every signal a fake process saw: `term` or `kill`.
    signals: Vec<(AttemptId, &'static str)>,
    /// The pool's rows, as the store keeps them.
    pool: Vec<PoolSlot>,
    /// Which attempt's branch each worktree has checked out.
    checked_out: HashMap<PathBuf, AttemptId>,
    /// Pooled worktrees retired because their holder could not use them.
    retired_unusable: usize,
    /// Gate passes by (tree, recipe), as the store keeps them.
    verdicts: BTreeMap<(String, String), String>,
    /// Gates the fake ran, by stage.
    gates_run: Vec<Stage>,
    /// Gates running now, and the most that ran at once.
    gates_now: usize,
    gates_most: usize,
    /// The machine's CPU, busy this permille of the time (none: it cannot be read),
    /// and its busy and total times so far.
    cpu_busy: Option<u64>,
    cpu: (u64, u64),
    /// When the first agent started.
    first_agent_at: Option<tokio::time::Instant>,
}

type Shared = Arc<Mutex<World>>;

/// `task-3-1` (a worktree's or a branch's last part) as an attempt.
fn attempt_named(name: &str) -> AttemptId {
    let mut parts = name.trim_start_matches("task-").split('-');
    AttemptId {
        task: TaskId(parts.next().unwrap().parse().unwrap()),
        number: parts.next().unwrap().parse().unwrap(),
    }
}

fn attempt_of(w: &World, path: &Path) -> AttemptId {
    w.checked_out
        .get(path)
        .copied()
        .unwrap_or_else(|| attempt_named(path.file_name().unwrap().to_str().unwrap()))
}

fn check_out(shared: &Shared, path: &Path, branch: &str) {
    let a = attempt_named(branch.rsplit('/').next().unwrap());
    shared
        .lock()
        .unwrap()
        .checked_out
        .insert(path.to_path_buf(), a);
}

struct FakeGit(Shared);
struct FakeJournal(Shared);
struct FakeProcs(Shared);

impl GitWorktrees for FakeGit {
    fn add_worktree(&self, branch: &str, _: &CommitId, path: &Path) -> Result<(), PortError> {
        check_out(&self.0, path, branch);
        std::fs::create_dir_all(path).map_err(|e| PortError::new(PortErrorKind::Other, e))?;
        // A linked worktree's `.git` is a file naming its administrative directory.
        std::fs::write(path.join(".git"), "gitdir: /nonexistent")
            .map_err(|e| PortError::new(PortErrorKind::Other, e))
    }
    fn switch_worktree(
        &self,
        path: &Path,
        branch: &str,
        _: &CommitId,
        _: &CacheRules,
    ) -> Result<(), PortError> {
        {
            let mut w = self.0.lock().unwrap();
            if w.script.dirty_switches > 0 {
                w.script.dirty_switches -= 1;
                return Err(PortError::other("a file in it is locked: not clean"));
            }
        }
        check_out(&self.0, path, branch);
        Ok(())
    }
    fn scrub(&self, _: &Path, _: &CacheRules) -> Result<(), PortError> {
        Ok(())
    }
    fn detach_worktree(&self, path: &Path) -> Result<(), PortError> {
        self.0.lock().unwrap().checked_out.remove(path);
        Ok(())
    }
    fn ignored_files(&self, _: &[String]) -> Result<Vec<PathBuf>, PortError> {
        Ok(Vec::new())
    }
    fn commit_leftovers(
        &self,
        wt: &Path,
        _: &str,
        _: &CommitId,
        _: &str,
        _: &[String],
    ) -> Result<Leftovers, orch_engine::ports::CommitError> {
        let w = self.0.lock().unwrap();
        let a = attempt_of(&w, wt);
        let moved = w.script.moves_branch.contains(&a.task.0);
        Ok(Leftovers {
            head: CommitId(format!("head-{a}")),
            committed: true,
            empty: false,
            branch_moved: moved.then(|| "main".into()),
            rewrote_history: false,
            symlinks: Vec::new(),
        })
    }
    fn shared_state(&self, _: &[String]) -> Result<orch_core::ports::SharedGitState, PortError> {
        Ok(Default::default())
    }
    fn restore_shared_state(
        &self,
        _: &orch_core::ports::SharedGitState,
        _: Option<&CommitId>,
    ) -> Result<orch_core::ports::Restored, PortError> {
        Ok(Default::default())
    }
    fn init_submodules(&self, _: &Path) -> Result<(), PortError> {
        Ok(())
    }
    fn checkout_detached(&self, _: &Path, _: &CommitId) -> Result<(), PortError> {
        let mut w = self.0.lock().unwrap();
        if w.script.broken_checkouts > 0 {
            w.script.broken_checkouts -= 1;
            return Err(PortError::other("No space left on device"));
        }
        Ok(())
    }
    fn remove_worktree(&self, _: &Path, _: bool) -> Result<(), PortError> {
        Ok(())
    }
    fn workdir(&self) -> PathBuf {
        PathBuf::from("/nonexistent")
    }
    fn common_dir(&self) -> PathBuf {
        PathBuf::from("/nonexistent/.git")
    }
}

impl GitRefs for FakeGit {
    fn pin(&self, _: &str, _: &CommitId) -> Result<(), PortError> {
        // The fake keeps every object; pins only matter to a real git gc.
        Ok(())
    }
    fn unpin(&self, _: &str) -> Result<(), PortError> {
        Ok(())
    }
    fn advance_ref(
        &self,
        reference: &str,
        expected: &CommitId,
        new: &CommitId,
    ) -> Result<(), RefError> {
        let mut w = self.0.lock().unwrap();
        if w.script.ref_stolen_after == Some(w.advances) {
            w.refs.insert(reference.into(), CommitId("stolen".into()));
        }
        if w.script.overtaken_after == Some(w.advances) {
            w.script.overtaken_after = None;
            let theirs = CommitId(format!("{expected}+other"));
            w.refs.insert(reference.into(), theirs.clone());
            w.validated_elsewhere.push(theirs);
        }
        let actual = w
            .refs
            .get(reference)
            .cloned()
            .expect("the integration ref exists");
        if &actual != expected {
            return Err(RefError::LostRace { actual });
        }
        w.refs.insert(reference.into(), new.clone());
        w.advances += 1;
        Ok(())
    }
    fn delete_branch(&self, _: &str, _: bool) -> Result<(), PortError> {
        Ok(())
    }
    fn ref_target(&self, reference: &str) -> Result<Option<CommitId>, PortError> {
        Ok(self.0.lock().unwrap().refs.get(reference).cloned())
    }
    fn is_ancestor(&self, a: &CommitId, b: &CommitId) -> bool {
        // Merges are named `<onto>+<head>`: a commit's ancestors are its prefixes.
        b.0.starts_with(&a.0)
    }
}

impl GitHistory for FakeGit {
    fn merge(
        &self,
        onto: &CommitId,
        head: &CommitId,
        _: &CommitId,
        _: MergeStyle,
        _: &str,
    ) -> Result<MergeOutcome, PortError> {
        Ok(MergeOutcome::Clean {
            commit: CommitId(format!("{onto}+{head}")),
        })
    }
    fn landed_since(
        &self,
        _: &CommitId,
        _: &CommitId,
    ) -> Result<Vec<orch_core::ports::Landing>, PortError> {
        Ok(Vec::new())
    }
    fn undoes(
        &self,
        _: &CommitId,
        _: &CommitId,
        _: &str,
    ) -> Result<Vec<orch_core::ports::Undo>, PortError> {
        Ok(Vec::new())
    }
    fn tree_of(&self, commit: &CommitId) -> Result<String, PortError> {
        // A merge onto its own base has its head's tree: `<onto>+<head>` names it.
        Ok(format!(
            "tree-{}",
            commit.0.rsplit('+').next().unwrap_or(&commit.0)
        ))
    }
}

impl GitRemote for FakeGit {}

#[async_trait::async_trait]
impl JournalPort for FakeJournal {
    async fn validated_by_a_run(&self, commit: &CommitId) -> Result<bool, StoreError> {
        let w = self.0.lock().unwrap();
        Ok(w.validated_elsewhere.contains(commit)
            || w.journal.iter().any(|j| matches!(&j.event, RunEvent::IntegrationPassed { commit: c, .. } if c == commit)))
    }
    async fn append(&self, _: &RunId, events: &[Journaled]) -> Result<(), StoreError> {
        let mut w = self.0.lock().unwrap();
        if w.script
            .busy_until
            .is_some_and(|t| tokio::time::Instant::now() < t)
        {
            return Err(StoreError::Busy);
        }
        for j in events {
            if let RunEvent::TaskMoved { task, from, to, .. } = &j.event {
                let status = w.board.get(task).map(|t| t.status);
                if *to == TaskStatus::InProgress && status != Some(*from) {
                    return Err(StoreError::ClaimLost {
                        task: *task,
                        expected: from.as_str().into(),
                        actual: status.map_or("removed".into(), |s| s.as_str().into()),
                    });
                }
                if let Some(t) = w.board.get_mut(task).filter(|t| t.status == *from) {
                    t.status = *to;
                }
            }
        }
        w.journal.extend(events.iter().cloned());
        Ok(())
    }
    async fn claim(
        &self,
        run: &RunId,
        claims: &[(Journaled, i64)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let takes = self.0.lock().unwrap().script.claim_takes;
        tokio::time::sleep(takes).await;
        let mut answers = Vec::new();
        for (event, _) in claims {
            answers.push(match self.append(run, std::slice::from_ref(event)).await {
                Err(StoreError::Busy) => return Err(StoreError::Busy),
                answer => answer,
            });
        }
        Ok(answers)
    }
    async fn board_version(&self, _: &RunId) -> Result<i64, StoreError> {
        Ok(self.0.lock().unwrap().board_version)
    }
    async fn tasks(&self) -> Result<Vec<Task>, StoreError> {
        Ok(self.0.lock().unwrap().board.values().cloned().collect())
    }
    async fn pending_controls(&self, _: &RunId) -> Result<Vec<Control>, StoreError> {
        Ok(Vec::new())
    }
    async fn mark_control_handled(&self, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn renew_lease(&self, _: &RunId, _: &str, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn record_validations(
        &self,
        _: &RunId,
        _: AttemptId,
        _: Stage,
        _: &[ValidationRecord],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn gate_verdict(&self, tree: &str, recipe: &str) -> Result<Option<String>, StoreError> {
        let w = self.0.lock().unwrap();
        Ok(w.verdicts
            .get(&(tree.to_owned(), recipe.to_owned()))
            .cloned())
    }
    async fn record_gate_pass(&self, tree: &str, recipe: &str, by: &str) -> Result<(), StoreError> {
        let mut w = self.0.lock().unwrap();
        w.verdicts
            .entry((tree.to_owned(), recipe.to_owned()))
            .or_insert_with(|| by.to_owned());
        Ok(())
    }
    async fn record_artifacts(
        &self,
        _: &RunId,
        _: AttemptId,
        _: &[(String, String, u64)],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        Ok(self.0.lock().unwrap().pool.clone())
    }
    async fn lease_pool(
        &self,
        kind: PoolKind,
        holder: &Holder,
        limits: &PoolLimits,
        root: &Path,
    ) -> Result<PoolLease, StoreError> {
        let mut w = self.0.lock().unwrap();
        let leased = SlotState::Leased(holder.clone());
        let (slot, fresh) = match orch_core::pool::choose(&w.pool, kind, limits, root) {
            Choice::Full { held } => {
                return Err(StoreError::PoolFull {
                    held,
                    max: limits.max,
                });
            }
            Choice::Reuse(n) => (n, false),
            Choice::Create(n, path) => {
                w.pool.push(PoolSlot {
                    slot: n,
                    kind,
                    path,
                    state: SlotState::Free,
                    set_up: false,
                    last_holder: None,
                    last_used: orch_core::Timestamp(0),
                    bytes: 0,
                });
                (n, true)
            }
        };
        let s = w.pool.iter_mut().find(|s| s.slot == slot).unwrap();
        s.state = leased;
        Ok(PoolLease {
            slot,
            path: s.path.clone(),
            fresh,
            set_up: s.set_up,
        })
    }
    async fn pool_set_up(&self, slot: u32) -> Result<(), StoreError> {
        let mut w = self.0.lock().unwrap();
        w.pool
            .iter_mut()
            .filter(|s| s.slot == slot)
            .for_each(|s| s.set_up = true);
        Ok(())
    }
    async fn release_pool(
        &self,
        slot: u32,
        holder: &Holder,
        _: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut w = self.0.lock().unwrap();
        let held = SlotState::Leased(holder.clone());
        let s = w
            .pool
            .iter_mut()
            .find(|s| s.slot == slot && s.state == held);
        Ok(s.map(|s| s.state = SlotState::Free).is_some())
    }
    async fn retire_pool(
        &self,
        limits: &PoolLimits,
        also: Option<(u32, &Holder)>,
        root: &Path,
    ) -> Result<Vec<PoolSlot>, StoreError> {
        let mut w = self.0.lock().unwrap();
        let mut chosen = orch_core::pool::to_retire(&w.pool, limits, root);
        chosen.extend(also.map(|(n, _)| n));
        w.retired_unusable += usize::from(also.is_some());
        let mut out = Vec::new();
        for s in w.pool.iter_mut().filter(|s| chosen.contains(&s.slot)) {
            s.state = SlotState::Retired;
            out.push(s.clone());
        }
        Ok(out)
    }
    async fn forget_pool(&self, slot: u32) -> Result<(), StoreError> {
        self.0.lock().unwrap().pool.retain(|s| s.slot != slot);
        Ok(())
    }
}

fn report(outcome: Outcome) -> Report {
    Report {
        outcome,
        duration: Duration::ZERO,
        log_path: PathBuf::new(),
        output_bytes: 0,
        log_truncated: false,
        tail: Vec::new(),
        stdout: None,
    }
}

#[async_trait::async_trait]
impl ProcessPort for FakeProcs {
    async fn run(
        &self,
        spec: &CommandSpec,
        term: &CancellationToken,
        lines: Option<mpsc::Sender<Line>>,
    ) -> Result<Report, RunError> {
        let (a, hangs) = {
            let mut w = self.0.lock().unwrap();
            let a = attempt_of(&w, &spec.cwd);
            w.agents_run.push(a);
            w.first_agent_at
                .get_or_insert_with(tokio::time::Instant::now);
            (a, w.script.hangs_ignoring_sigterm.contains(&a.task.0))
        };
        let panics = self
            .0
            .lock()
            .unwrap()
            .script
            .panics_in_agent
            .contains(&a.task.0);
        if panics && a.number == 1 {
            panic!("injected: the agent's output reader overflowed");
        }
        if let Some(l) = lines {
            let _ = l
                .send(Line {
                    stream: orch_validate::Stream::Stdout,
                    text: format!("working on {a}"),
                })
                .await;
        }
        let kill = spec
            .hard_kill
            .clone()
            .expect("the engine leaves SIGKILL to the core");
        if !hangs {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => return Ok(report(Outcome::Exited(0))),
                _ = term.cancelled() => {
                    self.0.lock().unwrap().signals.push((a, "term"));
                    return Ok(report(Outcome::Canceled));
                }
            }
        }
        term.cancelled().await;
        self.0.lock().unwrap().signals.push((a, "term"));
        kill.cancelled().await;
        self.0.lock().unwrap().signals.push((a, "kill"));
        Ok(report(Outcome::Canceled))
    }
    async fn run_gate(
        &self,
        spec: &GateSpec,
        _: &CancellationToken,
    ) -> Result<GateResult, RunError> {
        {
            let mut w = self.0.lock().unwrap();
            w.gates_run.push(spec.stage);
            w.gates_now += 1;
            w.gates_most = w.gates_most.max(w.gates_now);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.0.lock().unwrap().gates_now -= 1;
        Ok(GateResult {
            stage: spec.stage,
            passed: true,
            commands: Vec::new(),
            skipped: Vec::new(),
        })
    }
    fn cpu_times(&self) -> Option<(u64, u64)> {
        let mut w = self.0.lock().unwrap();
        let busy = w.cpu_busy?;
        w.cpu = (w.cpu.0 + busy, w.cpu.1 + 1000);
        Some(w.cpu)
    }
}

struct Fx {
    world: Shared,
    dir: tempfile::TempDir,
    handle: RunHandle,
}

fn task(id: i64) -> Task {
    Task {
        id: TaskId(id),
        key: format!("task-{id}"),
        title: format!("t{id}"),
        body: String::new(),
        status: TaskStatus::Backlog,
        priority: 0,
        depends_on: Vec::new(),
        labels: Vec::new(),
        touches: Vec::new(),
        review: None,
        created_at: orch_core::Timestamp(0),
        updated_at: orch_core::Timestamp(0),
    }
}

impl Fx {
    fn new(tasks: &[i64], script: Script) -> Fx {
        let mut w = World {
            script,
            ..World::default()
        };
        w.refs.insert(INTEGRATION.into(), CommitId("c0".into()));
        for t in tasks {
            w.board.insert(TaskId(*t), task(*t));
        }
        Fx {
            world: Arc::new(Mutex::new(w)),
            dir: tempfile::tempdir().unwrap(),
            handle: RunHandle::new(),
        }
    }

    fn driver(&self, patience: Duration) -> RunDriver {
        self.driver_with(patience, Config::default())
    }

    fn driver_with(&self, patience: Duration, mut config: Config) -> RunDriver {
        config.run.store_patience = orch_core::config::Duration(patience);
        // One candidate at a time: these tests count the driver's merges, gates and
        // advances, one per task.
        config.run.integration = orch_core::config::IntegrationMode::Fixed;
        let board: Vec<Task> = self.world.lock().unwrap().board.values().cloned().collect();
        let specs = board.iter().map(TaskSpec::from).collect();
        let mut orch = Orchestrator::new(RunId("r".into()), Policy::from_config(&config), specs);
        let _ = orch.handle(
            orch_core::Timestamp(0),
            Input::Start {
                head: CommitId("c0".into()),
            },
        );
        let ports = Ports {
            git: Arc::new(FakeGit(self.world.clone())),
            journal: Arc::new(FakeJournal(self.world.clone())),
            procs: Arc::new(FakeProcs(self.world.clone())),
        };
        let setup = DriverSetup {
            run: RunId("r".into()),
            engine: EngineConfig {
                config,
                worktree_root: self.dir.path().join("wt"),
                artifacts_root: self.dir.path().join("artifacts"),
                agent_command: "agent".into(),
                only_tasks: Vec::new(),
                fetch_timeout: Duration::from_secs(1),
            },
            owner: "orch@test:1:1".into(),
            lease_ttl: Duration::from_secs(30),
            board_version: 0,
            tasks: board
                .into_iter()
                .map(|t| (t.id, t))
                .collect::<HashMap<_, _>>(),
            bases: HashMap::new(),
            template: None,
        };
        RunDriver::new(ports, setup, orch, &self.handle)
    }

    fn events(&self) -> Vec<RunEvent> {
        self.world
            .lock()
            .unwrap()
            .journal
            .iter()
            .map(|j| j.event.clone())
            .collect()
    }

    fn status(&self, t: i64) -> Option<TaskStatus> {
        self.world
            .lock()
            .unwrap()
            .board
            .get(&TaskId(t))
            .map(|t| t.status)
    }
}

fn patience() -> Duration {
    Duration::from_secs(120)
}

#[tokio::test(start_paused = true)]
async fn a_run_over_fake_ports_lands_every_task() {
    let fx = Fx::new(&[1, 2], Script::default());
    let mut sub = fx.handle.subscribe();
    let orch = fx.driver(patience()).drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    assert_eq!(
        (fx.status(1), fx.status(2)),
        (Some(TaskStatus::Done), Some(TaskStatus::Done))
    );
    assert_eq!(fx.world.lock().unwrap().advances, 2);
    // The stream carried the journal and the agents' lines.
    let (mut journal, mut lines) = (0, 0);
    while let Some(u) = sub.next().await {
        match u {
            RunUpdate::Journal(_) => journal += 1,
            RunUpdate::Output { .. } => lines += 1,
            _ => {}
        }
    }
    assert_eq!(journal, fx.events().len());
    assert!(lines >= 1, "no output line reached the stream");
}

#[tokio::test(start_paused = true)]
async fn pooled_worktrees_are_reused_and_one_that_will_not_come_clean_is_replaced() {
    let tasks = [1, 2, 3, 4, 5, 6];
    let fx = Fx::new(
        &tasks,
        Script {
            dirty_switches: 1,
            ..Script::default()
        },
    );
    let mut config = Config::default();
    config.run.concurrency = std::num::NonZeroU32::new(2).unwrap();
    let orch = fx.driver_with(patience(), config).drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    assert!(
        tasks
            .iter()
            .all(|t| fx.status(*t) == Some(TaskStatus::Done))
    );
    let w = fx.world.lock().unwrap();
    // Six attempts in at most concurrency + depth attempt worktrees, every one back
    // in the pool; the one that would not come clean was replaced, costing no
    // attempt of its task.
    let attempts = w
        .pool
        .iter()
        .filter(|s| s.kind == PoolKind::Attempt)
        .count();
    assert!((1..=3).contains(&attempts), "{:?}", w.pool);
    assert!(
        w.pool.iter().all(|s| s.state == SlotState::Free),
        "{:?}",
        w.pool
    );
    assert_eq!(w.retired_unusable, 1);
    assert_eq!(w.agents_run.len(), tasks.len());
    assert!(
        w.checked_out.is_empty(),
        "worktrees still on a branch: {:?}",
        w.checked_out
    );
}

#[tokio::test(start_paused = true)]
async fn a_ref_moved_by_someone_else_halts_the_run_naming_both_commits() {
    let fx = Fx::new(
        &[1, 2],
        Script {
            ref_stolen_after: Some(1),
            ..Script::default()
        },
    );
    let orch = fx.driver(patience()).drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Halted);
    let why = fx
        .events()
        .iter()
        .find_map(|e| match e {
            RunEvent::RunMoved {
                to: RunState::Draining,
                reason,
                ..
            } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        why.contains("it is at stolen, where orch left it at c0+head-task-"),
        "{why}"
    );
}

#[tokio::test(start_paused = true)]
async fn another_run_landing_first_on_the_line_is_built_on_not_a_halt() {
    let fx = Fx::new(
        &[1, 2],
        Script {
            overtaken_after: Some(1),
            ..Script::default()
        },
    );
    let orch = fx.driver(patience()).drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    let head = orch.head().unwrap().0.clone();
    assert!(head.contains("+other+head-task-"), "{head}");
    assert!(
        fx.events()
            .iter()
            .any(|e| matches!(e, RunEvent::LineMovedOn { to, .. } if to.0.ends_with("+other"))),
        "{:#?}",
        fx.events()
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_moves_its_branch_fails_as_the_agent() {
    let fx = Fx::new(
        &[1],
        Script {
            moves_branch: vec![1],
            ..Script::default()
        },
    );
    fx.driver(patience()).drive().await.unwrap();
    assert!(fx.events().iter().any(|e| {
        e.reason()
            .contains("agent-error (the agent moved the worktree off its branch")
    }));
    assert_eq!(fx.status(1), Some(TaskStatus::Failed));
}

#[tokio::test(start_paused = true)]
async fn a_busy_store_is_waited_out_and_no_work_is_redone() {
    let fx = Fx::new(&[1, 2], Script::default());
    fx.world.lock().unwrap().script.busy_until =
        Some(tokio::time::Instant::now() + Duration::from_secs(5));
    let orch = fx.driver(patience()).drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    assert_eq!(
        fx.world.lock().unwrap().agents_run.len(),
        2,
        "work was redone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_busy_past_its_patience_stops_the_run_and_its_agents() {
    let fx = Fx::new(
        &[1],
        Script {
            hangs_ignoring_sigterm: vec![1],
            ..Script::default()
        },
    );
    let driver = fx.driver(Duration::from_secs(30));
    let world = fx.world.clone();
    tokio::spawn(async move {
        // Once the agent runs, the store goes away for good.
        tokio::time::sleep(Duration::from_secs(1)).await;
        world.lock().unwrap().script.busy_until =
            Some(tokio::time::Instant::now() + Duration::from_secs(3600));
    });
    let handle = fx.handle.clone();
    tokio::spawn(async move {
        // Its cancel needs a journal write, which the store refuses.
        tokio::time::sleep(Duration::from_secs(2)).await;
        handle.cancel(CancelScope::Task(TaskId(1)));
    });
    let err = driver.drive().await.unwrap_err();
    assert!(matches!(err, EngineError::StoreUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("orch run resume r"), "{err}");
    let signals = fx.world.lock().unwrap().signals.clone();
    assert!(
        signals.iter().any(|(_, s)| *s == "kill"),
        "the agent outlived the driver: {signals:?}"
    );
}

/// A burst of claims is one store call: with slow claims, the first task's agent
/// starts once that call is in, not after one call per claim of the run's first burst.
#[tokio::test(start_paused = true)]
async fn a_burst_of_slow_claims_does_not_hold_back_the_first_agent() {
    let fx = Fx::new(
        &[1, 2, 3, 4],
        Script {
            claim_takes: Duration::from_secs(10),
            ..Script::default()
        },
    );
    let mut config = Config::default();
    config.run.concurrency = std::num::NonZeroU32::new(4).unwrap();
    let started = tokio::time::Instant::now();
    let orch = fx.driver_with(patience(), config).drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    let first = fx.world.lock().unwrap().first_agent_at.unwrap();
    // One slow call for the four claims, not four.
    assert!(
        first - started <= Duration::from_secs(11),
        "the first agent started after {:?}",
        first - started
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_claim_skips_the_task_and_the_run_goes_on() {
    let fx = Fx::new(&[1, 2], Script::default());
    // A person canceled task 1 after the run read the board, before it claimed.
    let driver = fx.driver(patience());
    fx.world
        .lock()
        .unwrap()
        .board
        .get_mut(&TaskId(1))
        .unwrap()
        .status = TaskStatus::Canceled;
    let orch = driver.drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    assert!(
        fx.events()
            .iter()
            .any(|e| matches!(e, RunEvent::ClaimSkipped { task, .. } if *task == TaskId(1)))
    );
    assert_eq!(
        (fx.status(1), fx.status(2)),
        (Some(TaskStatus::Canceled), Some(TaskStatus::Done))
    );
}

/// A panic in the engine's work for an attempt (here its agent's) fails that attempt
/// as orch's own (`infrastructure`, no attempt spent) instead of leaving it running for
/// ever: the retry lands, and the run ends.
#[tokio::test(start_paused = true)]
async fn a_panic_in_an_attempts_work_fails_it_as_infrastructure_and_the_run_goes_on() {
    let fx = Fx::new(
        &[1, 2],
        Script {
            panics_in_agent: vec![1],
            ..Script::default()
        },
    );
    let drive = fx.driver(patience()).drive();
    let orch = tokio::time::timeout(Duration::from_secs(6 * 3600), drive)
        .await
        .expect("the run ends although an attempt's work panicked")
        .unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    assert_eq!(
        (fx.status(1), fx.status(2)),
        (Some(TaskStatus::Done), Some(TaskStatus::Done))
    );
    let failed = fx.events().into_iter().find_map(|e| match e {
        RunEvent::AttemptMoved {
            attempt,
            to,
            reason,
            ..
        } if attempt.number == 1 && attempt.task == TaskId(1) && to.is_terminal() => Some(reason),
        _ => None,
    });
    let failed = failed.expect("the first attempt ended");
    assert!(
        failed.contains("infrastructure")
            && failed.contains("injected: the agent's output reader overflowed"),
        "{failed}"
    );
}

/// The same commands in both gates: an attempt merged onto its own base (one at a
/// time, nothing lands in between) has the tree its worker gate passed, and its
/// integration gate does not run; with `validate.reuse = false` every gate runs.
#[tokio::test(start_paused = true)]
async fn a_tree_that_passed_the_worker_gate_skips_the_same_integration_gate() {
    for (reuse, integration_gates) in [(true, 0), (false, 2)] {
        let fx = Fx::new(&[1, 2], Script::default());
        let mut config = Config::default();
        config.run.concurrency = std::num::NonZeroU32::new(1).unwrap();
        config.validate.reuse = reuse;
        let orch = fx.driver_with(patience(), config).drive().await.unwrap();
        assert_eq!(orch.state(), RunState::Completed);
        let w = fx.world.lock().unwrap();
        let ran = |s: Stage| w.gates_run.iter().filter(|g| **g == s).count();
        assert_eq!(ran(Stage::Worker), 2);
        assert_eq!(ran(Stage::Integration), integration_gates, "reuse {reuse}");
        let reused = w
            .journal
            .iter()
            .filter(|j| matches!(j.event, RunEvent::GateReused { .. }))
            .count();
        assert_eq!(reused, 2 - integration_gates, "reuse {reuse}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_broken_integration_checkout_spends_no_attempt() {
    let fx = Fx::new(
        &[1],
        Script {
            broken_checkouts: 1,
            ..Script::default()
        },
    );
    let mut cfg_attempts = 0;
    // The integration gate must run (and need its checkout): no verdict reuse.
    let mut config = Config::default();
    config.validate.reuse = false;
    let orch = fx.driver_with(patience(), config).drive().await.unwrap();
    for e in fx.events() {
        if let RunEvent::AttemptCreated { .. } = e {
            cfg_attempts += 1;
        }
    }
    assert_eq!(orch.state(), RunState::Completed);
    assert_eq!(
        fx.status(1),
        Some(TaskStatus::Done),
        "max_attempts is 2, and only one counted"
    );
    assert_eq!(cfg_attempts, 2);
    assert!(fx.events().iter().any(|e| {
        e.reason()
            .contains("the integration gate could not run: could not check out")
    }));
}

#[tokio::test(start_paused = true)]
async fn sigkill_follows_sigterm_on_the_cores_timer() {
    let fx = Fx::new(
        &[1],
        Script {
            hangs_ignoring_sigterm: vec![1],
            ..Script::default()
        },
    );
    let driver = fx.driver(patience());
    let handle = fx.handle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        handle.cancel(CancelScope::Run);
    });
    let started = tokio::time::Instant::now();
    let orch = driver.drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Canceled);
    let a = AttemptId {
        task: TaskId(1),
        number: 1,
    };
    assert_eq!(
        fx.world.lock().unwrap().signals,
        vec![(a, "term"), (a, "kill")]
    );
    // The policy's kill_grace (10 s) passed between them, on the virtual clock.
    assert!(
        started.elapsed() >= Duration::from_secs(11),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fx.status(1),
        Some(TaskStatus::Backlog),
        "a canceled run releases its task"
    );
}

#[tokio::test(start_paused = true)]
async fn claiming_pauses_and_resumes_through_the_handle() {
    let fx = Fx::new(&[1], Script::default());
    fx.handle.pause_claims();
    let driver = fx.driver(patience());
    let (handle, world) = (fx.handle.clone(), fx.world.clone());
    let resumed = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let ran = world.lock().unwrap().agents_run.len();
        handle.resume_claims();
        ran
    });
    let orch = driver.drive().await.unwrap();
    assert_eq!(
        resumed.await.unwrap(),
        0,
        "an agent ran while claiming was paused"
    );
    assert_eq!(orch.state(), RunState::Completed);
    assert_eq!(fx.status(1), Some(TaskStatus::Done));
}

#[tokio::test(start_paused = true)]
async fn a_task_removed_mid_run_is_let_go() {
    let fx = Fx::new(
        &[1],
        Script {
            hangs_ignoring_sigterm: vec![1],
            ..Script::default()
        },
    );
    let driver = fx.driver(patience());
    let world = fx.world.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut w = world.lock().unwrap();
        w.board.remove(&TaskId(1));
        w.board_version += 1;
    });
    let orch = driver.drive().await.unwrap();
    assert_eq!(orch.state(), RunState::Completed);
    assert!(
        fx.events()
            .iter()
            .any(|e| matches!(e, RunEvent::TaskTaken { task, status: None } if *task == TaskId(1)))
    );
    assert!(!fx.events().iter().any(|e| matches!(
        e,
        RunEvent::TaskMoved {
            to: TaskStatus::Done,
            ..
        }
    )));
}

/// With `worktrees.cleanup = "always"` a failed attempt's worktree goes, but its logs
/// are still kept as a failure's (the retention class is the core's, not guessed from
/// the cleanup flags).
#[tokio::test(start_paused = true)]
async fn a_failed_attempt_keeps_a_failures_retention_under_cleanup_always() {
    let fx = Fx::new(
        &[1],
        Script {
            moves_branch: vec![1],
            ..Script::default()
        },
    );
    let mut config = Config::default();
    config.worktrees.cleanup = orch_core::config::Cleanup::Always;
    config.policy.max_attempts = std::num::NonZeroU32::new(1).unwrap();
    fx.driver_with(patience(), config).drive().await.unwrap();
    let marker = fx.dir.path().join("artifacts/r/1/1/.outcome");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "failed");
}

#[tokio::test(start_paused = true)]
async fn gate_slots_left_to_the_machine_grow_while_its_cpu_idles() {
    for (busy, most) in [(Some(100), 4), (Some(950), 1), (None, 1)] {
        let fx = Fx::new(&[1, 2, 3, 4, 5, 6, 7, 8], Script::default());
        fx.world.lock().unwrap().cpu_busy = busy;
        let mut config = Config::default();
        config.run.concurrency = std::num::NonZeroU32::new(8).unwrap();
        config.validate.worker = vec!["check".into()];
        config.validate.integration = vec!["check".into()];
        config.validate.reuse = false;
        // One slot to start, as a one-core machine's loader leaves them.
        config.validate.slots = 1;
        config.validate.slots_ceiling = 4;
        let orch = fx.driver_with(patience(), config).drive().await.unwrap();
        assert_eq!(orch.state(), RunState::Completed);
        assert_eq!(fx.world.lock().unwrap().gates_most, most, "busy {busy:?}");
        let grew = fx
            .events()
            .iter()
            .any(|e| matches!(e, RunEvent::Shaped { why, .. } if why.contains("4 gate slots")));
        assert_eq!(grew, most == 4, "busy {busy:?}");
    }
}
