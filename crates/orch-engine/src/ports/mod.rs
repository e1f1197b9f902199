//! The engine's ports: git, the journal (the store, as a run uses it) and processes.
//! The driver and the command executors see only these, so the engine's own tests
//! drive a whole run over fakes with paused time, and a real run plugs in
//! [`orch_git::Git`], [`orch_store::Store`] and [`orch_validate`]'s runner.
//! Git is blocking (the executors call it off the loop); the journal and processes
//! are async, behind `async-trait` for dynamic dispatch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orch_core::Task;
use orch_core::config::MergeStyle;
use orch_core::jobs::{Job, JobSpec, JobState};
use orch_core::pool::{CacheRules, Holder, PoolKind, PoolLimits, PoolSlot};
use orch_core::ports::{Leftovers, MergeOutcome, PortError, SharedGitState};
use orch_core::run::{AttemptId, CommitId, Journaled, RunId, Stage, ValidationRecord};
use orch_git::{Expect, Git};
use orch_store::{Control, PoolLease, Store, StoreError};
use orch_validate::{CancellationToken, CommandSpec, GateResult, GateSpec, Line, Report, RunError};
use tokio::sync::mpsc;

/// Why a compare-and-swap of a ref did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    /// The ref was not where orch expected it.
    LostRace {
        /// Where it was.
        actual: CommitId,
    },
    /// The ref may not move: a worktree has the branch checked out.
    Refused(PortError),
    /// The update failed.
    Failed(PortError),
}

/// Why an agent's leftovers were not committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// The worktree is gone, unreadable, or no longer linked to the repository both
    /// ways (its `.git` rewritten): what the agent did to it, so its failure.
    WorktreeBroken(PortError),
    /// git failed: orch's failure.
    Failed(PortError),
}

/// Git's worktrees, as a run uses them: attempt and integration checkouts, the pool's
/// switches and scrubs, an agent's leftovers committed, and the shared git files an
/// agent could tamper with. Blocking.
pub trait GitWorktrees: Send + Sync + 'static {
    /// Creates `branch` at `base` with a worktree at `path`.
    fn add_worktree(&self, branch: &str, base: &CommitId, path: &Path) -> Result<(), PortError>;
    /// Commits what an agent left in `worktree` (except the `scratch` pathspecs its
    /// CLI writes for itself), and says what it did to its branch.
    fn commit_leftovers(
        &self,
        worktree: &Path,
        branch: &str,
        base: &CommitId,
        message: &str,
        scratch: &[String],
    ) -> Result<Leftovers, CommitError>;
    /// Checks `commit` out, detached, in `path` (created if missing).
    fn checkout_detached(&self, path: &Path, commit: &CommitId) -> Result<(), PortError>;
    /// Checks out the submodules the worktree at `path` records.
    fn init_submodules(&self, path: &Path) -> Result<(), PortError>;
    /// An integration checkout for a gate: `commit` detached in `path`, with its
    /// submodules when `submodules` (`worktrees.submodules`).
    fn checkout_for_gate(
        &self,
        path: &Path,
        commit: &CommitId,
        submodules: bool,
    ) -> Result<(), PortError> {
        self.checkout_detached(path, commit)?;
        if submodules {
            self.init_submodules(path)?;
        }
        Ok(())
    }
    /// The repository's shared git files (config, hooks, `info/`) and refs, before an
    /// agent runs; `users` names the run's base and target, whose branches are the
    /// user's.
    fn shared_state(&self, users: &[String]) -> Result<SharedGitState, PortError>;
    /// Puts back what differs from `before`, and names it.
    /// `agent_head` is the agent's branch tip: a ref moved onto its work is its doing.
    fn restore_shared_state(
        &self,
        before: &SharedGitState,
        agent_head: Option<&CommitId>,
    ) -> Result<orch_core::ports::Restored, PortError>;
    /// Switches the pooled worktree at `path` onto `branch`, made at `base`, and
    /// scrubs it by `rules`; an error means it could not be made clean.
    fn switch_worktree(
        &self,
        path: &Path,
        branch: &str,
        base: &CommitId,
        rules: &CacheRules,
    ) -> Result<(), PortError>;
    /// Removes what `rules` do not keep from the worktree at `path`.
    fn scrub(&self, path: &Path, rules: &CacheRules) -> Result<(), PortError>;
    /// Detaches the worktree at `path` where it is, freeing its branch.
    fn detach_worktree(&self, path: &Path) -> Result<(), PortError>;
    /// The user's ignored files that `pathspecs` match, relative to the checkout.
    fn ignored_files(&self, pathspecs: &[String]) -> Result<Vec<PathBuf>, PortError>;
    /// Removes a worktree (a dirty one only if `force`).
    fn remove_worktree(&self, path: &Path, force: bool) -> Result<(), PortError>;
    /// The repository's working directory.
    fn workdir(&self) -> PathBuf;
    /// The shared git directory (`.git` of the main worktree).
    fn common_dir(&self) -> PathBuf;
}

/// Git's refs: compare-and-swap moves, pins, branches. Blocking.
pub trait GitRefs: Send + Sync + 'static {
    /// Moves `reference` from `expected` to `new`, only if it is at `expected`.
    fn advance_ref(
        &self,
        reference: &str,
        expected: &CommitId,
        new: &CommitId,
    ) -> Result<(), RefError>;
    /// Keeps `commit` reachable from `reference` (`refs/orch/...`) until unpinned.
    fn pin(&self, reference: &str, commit: &CommitId) -> Result<(), PortError>;
    /// Removes a pin.
    fn unpin(&self, reference: &str) -> Result<(), PortError>;
    /// Deletes a branch (unmerged work only if `force`).
    fn delete_branch(&self, branch: &str, force: bool) -> Result<(), PortError>;
    /// Where `reference` points.
    fn ref_target(&self, reference: &str) -> Result<Option<CommitId>, PortError>;
    /// Whether `a` is `b` or one of its ancestors.
    fn is_ancestor(&self, a: &CommitId, b: &CommitId) -> bool;
}

/// Git's history, read and written in memory: merges, trees, and what landed. Blocking.
pub trait GitHistory: Send + Sync + 'static {
    /// Merges `head` onto `onto` in memory; moves no ref. `base` is where `head`'s
    /// work started: the merge base, when it surely is one.
    fn merge(
        &self,
        onto: &CommitId,
        head: &CommitId,
        base: &CommitId,
        style: MergeStyle,
        message: &str,
    ) -> Result<MergeOutcome, PortError>;
    /// The tree `commit` records.
    fn tree_of(&self, commit: &CommitId) -> Result<String, PortError>;
    /// The hunks of `head`'s change since `base` that undo the landed work of a task
    /// other than `own` (the revert guard's finding).
    fn undoes(
        &self,
        base: &CommitId,
        head: &CommitId,
        own: &str,
    ) -> Result<Vec<orch_core::ports::Undo>, PortError>;
    /// What landed on the line from `from` to `to`, oldest first: each landing's tasks
    /// (keys) and the files it changed.
    fn landed_since(
        &self,
        from: &CommitId,
        to: &CommitId,
    ) -> Result<Vec<orch_core::ports::Landing>, PortError>;
}

/// A shared remote (`run.executors = "workers"`): pushes and fetches. An adapter that
/// reaches no remote keeps the defaults, which say so (`PortErrorKind::Unsupported`).
pub trait GitRemote: Send + Sync + 'static {
    /// Pushes `commit` to `reference` on `remote` if the remote ref is as `expect`
    /// says (`LostRace` with where it is, if not). A git without remotes refuses.
    fn push_ref(
        &self,
        remote: &str,
        commit: &CommitId,
        reference: &str,
        expect: &Expect,
    ) -> Result<(), RefError> {
        let _ = (commit, reference, expect);
        Err(RefError::Failed(PortError::unsupported(format!(
            "this repository cannot reach remote {remote}"
        ))))
    }
    /// Fetches `refspecs` from `remote`.
    fn fetch_refs(&self, remote: &str, refspecs: &[String]) -> Result<(), PortError> {
        let _ = refspecs;
        Err(PortError::unsupported(format!(
            "this repository cannot reach remote {remote}"
        )))
    }
    /// Where `reference` is on `remote`.
    fn remote_ref(&self, remote: &str, reference: &str) -> Result<Option<CommitId>, PortError> {
        let _ = reference;
        Err(PortError::unsupported(format!(
            "this repository cannot reach remote {remote}"
        )))
    }
    /// Deletes `reference` on `remote` (gone already: no error).
    fn delete_remote_ref(&self, remote: &str, reference: &str) -> Result<(), PortError> {
        let _ = reference;
        Err(PortError::unsupported(format!(
            "this repository cannot reach remote {remote}"
        )))
    }
}

/// Git, as a run needs it: all four parts, which every git adapter implements.
pub trait GitPort: GitWorktrees + GitRefs + GitHistory + GitRemote {}

impl<T: GitWorktrees + GitRefs + GitHistory + GitRemote> GitPort for T {}

/// The store, as a live run uses it.
#[async_trait::async_trait]
pub trait JournalPort: Send + Sync + 'static {
    /// Appends journal entries.
    async fn append(&self, run: &RunId, events: &[Journaled]) -> Result<(), StoreError>;
    /// Appends claims at once, each with the board version it was decided on: each a
    /// compare-and-swap on its task's status (`ClaimLost`), refused too if the task
    /// changed after that version (`TaskChanged`). One answer per claim, in order; a
    /// refused claim writes nothing and the others stand.
    async fn claim(
        &self,
        run: &RunId,
        claims: &[(Journaled, i64)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;
    /// The newest event this run did not write.
    async fn board_version(&self, run: &RunId) -> Result<i64, StoreError>;
    /// Every task on the board.
    async fn tasks(&self) -> Result<Vec<Task>, StoreError>;
    /// Controls posted for the run and not yet handled.
    async fn pending_controls(&self, run: &RunId) -> Result<Vec<Control>, StoreError>;
    /// Marks a control handled.
    async fn mark_control_handled(&self, id: i64) -> Result<(), StoreError>;
    /// Renews the run's lease.
    async fn renew_lease(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Records a gate's commands.
    async fn record_validations(
        &self,
        run: &RunId,
        attempt: AttemptId,
        stage: Stage,
        records: &[ValidationRecord],
    ) -> Result<(), StoreError>;
    /// Whether some run validated `commit` for its integration branch.
    async fn validated_by_a_run(&self, commit: &CommitId) -> Result<bool, StoreError>;
    /// Who earned a pass of the gate `recipe` on `tree`, if anyone did.
    async fn gate_verdict(&self, tree: &str, recipe: &str) -> Result<Option<String>, StoreError>;
    /// Records that `by` passed the gate `recipe` on `tree`.
    async fn record_gate_pass(&self, tree: &str, recipe: &str, by: &str) -> Result<(), StoreError>;
    /// Records an attempt's files.
    async fn record_artifacts(
        &self,
        run: &RunId,
        attempt: AttemptId,
        files: &[(String, String, u64)],
    ) -> Result<(), StoreError>;
    /// Every pooled worktree.
    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError>;
    /// Leases a pooled worktree of `kind` to `holder` (written ahead).
    async fn lease_pool(
        &self,
        kind: PoolKind,
        holder: &Holder,
        limits: &PoolLimits,
        root: &Path,
    ) -> Result<PoolLease, StoreError>;
    /// Records that `worktrees.setup` ran to the end in `slot`.
    async fn pool_set_up(&self, slot: u32) -> Result<(), StoreError>;
    /// Gives `slot` back, with its size when measured.
    async fn release_pool(
        &self,
        slot: u32,
        holder: &Holder,
        bytes: Option<u64>,
    ) -> Result<bool, StoreError>;
    /// Retires what the pool's policy says (and `also`), for the caller to remove.
    async fn retire_pool(
        &self,
        limits: &PoolLimits,
        also: Option<(u32, &Holder)>,
        root: &Path,
    ) -> Result<Vec<PoolSlot>, StoreError>;
    /// Forgets a retired worktree that is gone from disk.
    async fn forget_pool(&self, slot: u32) -> Result<(), StoreError>;
    /// Posts an attempt's job for the workers (again: the one there). A journal that
    /// cannot serve workers refuses this and the other job calls.
    async fn post_job(&self, spec: &JobSpec) -> Result<Job, StoreError> {
        Err(StoreError::WorkersNeedPostgres(spec.run.clone()))
    }
    /// An attempt's job, if posted.
    async fn job(&self, run: &RunId, a: AttemptId) -> Result<Option<Job>, StoreError> {
        let _ = a;
        Err(StoreError::WorkersNeedPostgres(run.0.clone()))
    }
    /// Asks an attempt's job stopped; `None`: it was still queued, and is gone.
    async fn cancel_job(&self, run: &RunId, a: AttemptId) -> Result<Option<JobState>, StoreError> {
        let _ = a;
        Err(StoreError::WorkersNeedPostgres(run.0.clone()))
    }
    /// Removes an attempt's job.
    async fn forget_job(&self, run: &RunId, a: AttemptId) -> Result<(), StoreError> {
        let _ = a;
        Err(StoreError::WorkersNeedPostgres(run.0.clone()))
    }
    /// The database's clock (ms), which job leases run on.
    async fn db_clock(&self) -> Result<i64, StoreError> {
        Err(StoreError::WorkersNeedPostgres(String::new()))
    }
    /// A signal bumped whenever a job is posted or done (`None`: poll).
    async fn job_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// The facts the core's `landing::moved_by_orch` judges a line found at `to`
/// (instead of `from`) by: whether `to` builds on `from`, and whether a run's journal
/// vouches for it (a failed read vouches for nothing).
pub(crate) async fn moved_line(
    git: Arc<dyn GitPort>,
    journal: &dyn JournalPort,
    from: &CommitId,
    to: &CommitId,
) -> orch_core::landing::MovedLine {
    let (f, t) = (from.clone(), to.clone());
    let builds_on = tokio::task::spawn_blocking(move || git.is_ancestor(&f, &t))
        .await
        .unwrap_or(false);
    let vouched = match journal.validated_by_a_run(to).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(commit = %to.0, error = %e, "cannot read whether a run validated the line's head");
            false
        }
    };
    orch_core::landing::MovedLine { builds_on, vouched }
}

/// Running other programs.
#[async_trait::async_trait]
pub trait ProcessPort: Send + Sync + 'static {
    /// Runs one command to its end; `term` is SIGTERM, `spec.hard_kill` SIGKILL.
    async fn run(
        &self,
        spec: &CommandSpec,
        term: &CancellationToken,
        lines: Option<mpsc::Sender<Line>>,
    ) -> Result<Report, RunError>;
    /// Runs a gate's commands in order.
    async fn run_gate(
        &self,
        spec: &GateSpec,
        term: &CancellationToken,
    ) -> Result<GateResult, RunError>;
    /// The machine's busy and total CPU time so far, over all its cores (any unit, the
    /// same for both), for gate slots that follow its load; `None` where it cannot be
    /// read (the slots then stay as they start).
    fn cpu_times(&self) -> Option<(u64, u64)>;
}

/// The three ports of a run.
#[derive(Clone)]
pub struct Ports {
    /// Git.
    pub git: Arc<dyn GitPort>,
    /// The journal.
    pub journal: Arc<dyn JournalPort>,
    /// Processes.
    pub procs: Arc<dyn ProcessPort>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ports")
    }
}

impl Ports {
    /// The real adapters.
    pub fn real(git: Arc<Git>, store: Store) -> Ports {
        Ports {
            git,
            journal: Arc::new(store),
            procs: Arc::new(RealProcesses),
        }
    }
}

mod real;
pub use real::RealProcesses;
