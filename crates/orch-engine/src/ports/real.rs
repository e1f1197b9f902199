//! The real adapters behind the ports: git over [`orch_git::Git`], the journal over
//! [`orch_store::Store`], processes over [`orch_validate`]'s runner. Each maps its
//! adapter's errors onto the port's words.

use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_core::Task;
use orch_core::config::MergeStyle;
use orch_core::jobs::{Job, JobSpec, JobState};
use orch_core::pool::{CacheRules, Holder, PoolKind, PoolLimits, PoolSlot};
use orch_core::ports::{Leftovers, MergeOutcome, PortError, PortErrorKind, SharedGitState};
use orch_core::run::{AttemptId, CommitId, Journaled, RunId, Stage, ValidationRecord};
use orch_git::{Expect, Git, GitError};
use orch_store::{Control, PoolLease, Store, StoreError};
use orch_validate::{CancellationToken, CommandSpec, GateResult, GateSpec, Line, Report, RunError};
use tokio::sync::mpsc;

use super::{
    CommitError, GitHistory, GitRefs, GitRemote, GitWorktrees, JournalPort, ProcessPort, RefError,
};

/// git's error in the port's terms: its kind, and the error itself as the source.
fn port(e: GitError) -> PortError {
    let kind = match &e {
        GitError::BadRevision { .. } | GitError::MissingCommit(_) | GitError::NotAWorktree(_) => {
            PortErrorKind::NotFound
        }
        GitError::BranchExists(_)
        | GitError::BranchCheckedOut { .. }
        | GitError::PathTaken(_)
        | GitError::Dirty(_)
        | GitError::Unmerged(_) => PortErrorKind::Conflict,
        GitError::LostRace { .. } => PortErrorKind::Moved,
        _ => PortErrorKind::Other,
    };
    PortError::new(kind, e)
}

impl GitWorktrees for Git {
    fn add_worktree(&self, branch: &str, base: &CommitId, path: &Path) -> Result<(), PortError> {
        Git::add_worktree(self, branch, base, path).map_err(port)
    }
    fn commit_leftovers(
        &self,
        worktree: &Path,
        branch: &str,
        base: &CommitId,
        message: &str,
        scratch: &[String],
    ) -> Result<Leftovers, CommitError> {
        Git::commit_leftovers(self, worktree, branch, base, message, scratch).map_err(|e| match e {
            e @ GitError::WorktreeBroken { .. } => CommitError::WorktreeBroken(port(e)),
            e => CommitError::Failed(port(e)),
        })
    }
    fn checkout_detached(&self, path: &Path, commit: &CommitId) -> Result<(), PortError> {
        Git::checkout_detached(self, path, commit).map_err(port)
    }
    fn init_submodules(&self, path: &Path) -> Result<(), PortError> {
        Git::init_submodules(self, path).map_err(port)
    }
    fn shared_state(&self, users: &[String]) -> Result<SharedGitState, PortError> {
        Git::shared_state(self, users).map_err(port)
    }
    fn restore_shared_state(
        &self,
        before: &SharedGitState,
        agent_head: Option<&CommitId>,
    ) -> Result<orch_core::ports::Restored, PortError> {
        Git::restore_shared_state(self, before, agent_head).map_err(port)
    }
    fn switch_worktree(
        &self,
        path: &Path,
        branch: &str,
        base: &CommitId,
        rules: &CacheRules,
    ) -> Result<(), PortError> {
        Git::switch_worktree(self, path, branch, base, rules).map_err(port)
    }
    fn scrub(&self, path: &Path, rules: &CacheRules) -> Result<(), PortError> {
        Git::scrub(self, path, rules).map_err(port)
    }
    fn detach_worktree(&self, path: &Path) -> Result<(), PortError> {
        Git::detach_worktree(self, path).map_err(port)
    }
    fn ignored_files(&self, pathspecs: &[String]) -> Result<Vec<PathBuf>, PortError> {
        Git::ignored_files(self, pathspecs).map_err(port)
    }
    fn remove_worktree(&self, path: &Path, force: bool) -> Result<(), PortError> {
        Git::remove_worktree(self, path, force).map_err(port)
    }
    fn workdir(&self) -> PathBuf {
        Git::workdir(self).to_path_buf()
    }
    fn common_dir(&self) -> PathBuf {
        Git::common_dir(self)
    }
}

impl GitRefs for Git {
    fn pin(&self, reference: &str, commit: &CommitId) -> Result<(), PortError> {
        Git::pin(self, reference, commit).map_err(port)
    }
    fn unpin(&self, reference: &str) -> Result<(), PortError> {
        Git::unpin(self, reference).map_err(port)
    }
    fn advance_ref(
        &self,
        reference: &str,
        expected: &CommitId,
        new: &CommitId,
    ) -> Result<(), RefError> {
        Git::advance_ref(self, reference, expected, new).map_err(|e| match e {
            GitError::LostRace {
                actual: Some(actual),
                ..
            } => RefError::LostRace { actual },
            e @ GitError::BranchCheckedOut { .. } => RefError::Refused(port(e)),
            e => RefError::Failed(port(e)),
        })
    }
    fn delete_branch(&self, branch: &str, force: bool) -> Result<(), PortError> {
        Git::delete_branch(self, branch, force).map_err(port)
    }
    fn ref_target(&self, reference: &str) -> Result<Option<CommitId>, PortError> {
        Git::ref_target(self, reference).map_err(port)
    }
    fn is_ancestor(&self, a: &CommitId, b: &CommitId) -> bool {
        Git::is_ancestor(self, a, b)
    }
}

impl GitHistory for Git {
    fn merge(
        &self,
        onto: &CommitId,
        head: &CommitId,
        base: &CommitId,
        style: MergeStyle,
        message: &str,
    ) -> Result<MergeOutcome, PortError> {
        Git::merge_from(self, base, onto, head, style, message).map_err(port)
    }
    fn tree_of(&self, commit: &CommitId) -> Result<String, PortError> {
        Git::tree_of(self, commit).map_err(port)
    }
    fn undoes(
        &self,
        base: &CommitId,
        head: &CommitId,
        own: &str,
    ) -> Result<Vec<orch_core::ports::Undo>, PortError> {
        Git::undoes(self, base, head, own).map_err(port)
    }
    fn landed_since(
        &self,
        from: &CommitId,
        to: &CommitId,
    ) -> Result<Vec<orch_core::ports::Landing>, PortError> {
        Git::landed_since(self, from, to).map_err(port)
    }
}

impl GitRemote for Git {
    fn push_ref(
        &self,
        remote: &str,
        commit: &CommitId,
        reference: &str,
        expect: &Expect,
    ) -> Result<(), RefError> {
        match Git::push_ref(self, remote, commit, reference, expect) {
            Ok(()) => Ok(()),
            Err(GitError::PushRefused { .. }) => match Git::remote_ref(self, remote, reference) {
                Ok(at) => Err(RefError::LostRace {
                    actual: at.unwrap_or(CommitId(String::new())),
                }),
                Err(e) => Err(RefError::Failed(port(e))),
            },
            Err(e) => Err(RefError::Failed(port(e))),
        }
    }
    fn fetch_refs(&self, remote: &str, refspecs: &[String]) -> Result<(), PortError> {
        Git::fetch_refs(self, remote, refspecs).map_err(port)
    }
    fn remote_ref(&self, remote: &str, reference: &str) -> Result<Option<CommitId>, PortError> {
        Git::remote_ref(self, remote, reference).map_err(port)
    }
    fn delete_remote_ref(&self, remote: &str, reference: &str) -> Result<(), PortError> {
        Git::delete_remote_ref(self, remote, reference).map_err(port)
    }
}

#[async_trait::async_trait]
impl JournalPort for Store {
    async fn append(&self, run: &RunId, events: &[Journaled]) -> Result<(), StoreError> {
        self.check_file()?;
        self.append_run_events(run, events, "orchestrator").await
    }
    async fn claim(
        &self,
        run: &RunId,
        claims: &[(Journaled, i64)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.check_file()?;
        self.claim_tasks(run, claims, "orchestrator").await
    }
    async fn board_version(&self, run: &RunId) -> Result<i64, StoreError> {
        self.check_file()?;
        Store::board_version(self, run).await
    }
    async fn tasks(&self) -> Result<Vec<Task>, StoreError> {
        Store::tasks(self, &[]).await
    }
    async fn pending_controls(&self, run: &RunId) -> Result<Vec<Control>, StoreError> {
        Store::pending_controls(self, run).await
    }
    async fn mark_control_handled(&self, id: i64) -> Result<(), StoreError> {
        Store::mark_control_handled(self, id).await
    }
    async fn renew_lease(&self, run: &RunId, owner: &str, ttl: Duration) -> Result<(), StoreError> {
        Store::renew_lease(self, run, owner, ttl).await
    }
    async fn record_validations(
        &self,
        run: &RunId,
        attempt: AttemptId,
        stage: Stage,
        records: &[ValidationRecord],
    ) -> Result<(), StoreError> {
        Store::record_validations(self, run, attempt, stage, records).await
    }
    async fn gate_verdict(&self, tree: &str, recipe: &str) -> Result<Option<String>, StoreError> {
        Store::gate_verdict(self, tree, recipe).await
    }
    async fn record_gate_pass(&self, tree: &str, recipe: &str, by: &str) -> Result<(), StoreError> {
        Store::record_gate_pass(self, tree, recipe, by).await
    }
    async fn record_artifacts(
        &self,
        run: &RunId,
        attempt: AttemptId,
        files: &[(String, String, u64)],
    ) -> Result<(), StoreError> {
        Store::record_artifacts(self, run, attempt, files).await
    }
    async fn validated_by_a_run(&self, commit: &CommitId) -> Result<bool, StoreError> {
        Store::validated_by_a_run(self, commit).await
    }
    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        Store::pool_slots(self).await
    }
    async fn lease_pool(
        &self,
        kind: PoolKind,
        holder: &Holder,
        limits: &PoolLimits,
        root: &Path,
    ) -> Result<PoolLease, StoreError> {
        self.check_file()?;
        Store::lease_pool_slot(self, kind, holder, limits, root).await
    }
    async fn pool_set_up(&self, slot: u32) -> Result<(), StoreError> {
        Store::pool_set_up(self, slot).await
    }
    async fn release_pool(
        &self,
        slot: u32,
        holder: &Holder,
        bytes: Option<u64>,
    ) -> Result<bool, StoreError> {
        Store::release_pool_slot(self, slot, holder, bytes).await
    }
    async fn post_job(&self, spec: &JobSpec) -> Result<Job, StoreError> {
        Store::post_job(self, spec).await
    }
    async fn job(&self, run: &RunId, a: AttemptId) -> Result<Option<Job>, StoreError> {
        Store::job(self, &run.0, a.task, a.number).await
    }
    async fn cancel_job(&self, run: &RunId, a: AttemptId) -> Result<Option<JobState>, StoreError> {
        Store::cancel_job(self, &run.0, a.task, a.number).await
    }
    async fn forget_job(&self, run: &RunId, a: AttemptId) -> Result<(), StoreError> {
        Store::forget_job(self, &run.0, a.task, a.number).await
    }
    async fn db_clock(&self) -> Result<i64, StoreError> {
        Store::db_clock(self).await
    }
    async fn job_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Store::job_changes(self).await
    }
    async fn retire_pool(
        &self,
        limits: &PoolLimits,
        also: Option<(u32, &Holder)>,
        root: &Path,
    ) -> Result<Vec<PoolSlot>, StoreError> {
        Store::retire_pool_slots(self, limits, also, root).await
    }
    async fn forget_pool(&self, slot: u32) -> Result<(), StoreError> {
        Store::forget_pool_slot(self, slot).await
    }
}

/// [`orch_validate`]'s runner.
#[derive(Debug, Clone, Copy)]
pub struct RealProcesses;

#[async_trait::async_trait]
impl ProcessPort for RealProcesses {
    async fn run(
        &self,
        spec: &CommandSpec,
        term: &CancellationToken,
        lines: Option<mpsc::Sender<Line>>,
    ) -> Result<Report, RunError> {
        orch_validate::run(spec, term, lines).await
    }
    async fn run_gate(
        &self,
        spec: &GateSpec,
        term: &CancellationToken,
    ) -> Result<GateResult, RunError> {
        orch_validate::run_gate(spec, term).await
    }
    fn cpu_times(&self) -> Option<(u64, u64)> {
        proc_stat_times(&std::fs::read_to_string("/proc/stat").ok()?)
    }
}

/// From `/proc/stat`'s first line (`cpu user nice system idle iowait irq softirq
/// steal ...`): the jiffies spent busy (all but idle) and in all. Waiting on I/O
/// counts as busy: a gate that waits on the disk is not one more may join.
fn proc_stat_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user, nice, system, idle, iowait, irq, softirq, steal; guest time is already
    // counted in user and nice.
    let counted = fields.get(..8).or(fields.get(..4))?;
    let total: u64 = counted.iter().sum();
    Some((total - counted[3], total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_all_but_idle() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(proc_stat_times(stat), Some((200, 1000)));
        assert_eq!(proc_stat_times("cpu  1 2 3 4\n"), Some((6, 10)));
        assert_eq!(proc_stat_times("intr 1 2\n"), None);
        assert_eq!(proc_stat_times("cpu  1 x 3 4\n"), None);
        if std::path::Path::new("/proc/stat").exists() {
            assert!(RealProcesses.cpu_times().is_some());
        }
    }
}
