//! Executing the core's commands, one command family per module. Each returns the
//! [`Input`] its command produces; the driver spawns them in the run's `JoinSet` and
//! feeds what they return back to the core. They decide nothing: they run, and report
//! what happened in the core's terms.

pub(crate) mod agent;
pub(crate) mod ask_planner;
pub(crate) mod gate;
pub(crate) mod live_output;
pub(crate) mod merge;
pub(crate) mod pooled;
pub(crate) mod remote;
pub(crate) mod teardown;
pub(crate) mod warm;
pub(crate) mod worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use orch_core::run::{AttemptId, Command, CommitId, Input, Policy, RunId, Stage};
use orch_core::{Task, TaskId};
use orch_validate::{Artifacts, CancellationToken, Environment, Line};
use tokio::sync::{Semaphore, mpsc};

use crate::line::layout;
use crate::ports::{GitPort, JournalPort, ProcessPort};
use crate::{EngineConfig, RunHandle, RunUpdate};

/// What every command of one run needs, shared by its spawned work.
pub(crate) struct Ctx {
    pub(crate) run: RunId,
    pub(crate) journal: Arc<dyn JournalPort>,
    pub(crate) git: Arc<dyn GitPort>,
    pub(crate) procs: Arc<dyn ProcessPort>,
    pub(crate) cfg: EngineConfig,
    pub(crate) policy: Policy,
    pub(crate) artifacts: Artifacts,
    /// The board as last read, for prompts and environments.
    pub(crate) tasks: RwLock<Arc<HashMap<TaskId, Task>>>,
    /// The user's prompt template, if any.
    pub(crate) template: Option<Arc<String>>,
    /// The second guard on concurrency: one permit per live agent.
    pub(crate) agents: Arc<Semaphore>,
    /// Worktrees being readied at once ([`provisions`]): a burst of claims readies a
    /// few at a time, so the first agents start at once instead of all late.
    pub(crate) provisions: Semaphore,
    /// The run's event stream, for live output lines.
    pub(crate) handle: RunHandle,
    /// Inputs that work reports while it runs (an agent's usage so far).
    pub(crate) live: mpsc::UnboundedSender<Input>,
    /// Which integration slots' checkouts a gate is using (without the pool).
    pub(crate) integration_slots: std::sync::Mutex<Vec<bool>>,
    /// The pooled worktrees the run's attempts hold, by attempt (`task-3-1`).
    pub(crate) slots: std::sync::Mutex<HashMap<String, pooled::Pooled>>,
    /// Worktrees being given back to the pool: a provision waits for them, so the
    /// next agent gets the warm worktree its predecessor just gave back.
    pub(crate) releasing: pooled::Releasing,
    /// Where the pool's caches are warm, and the lock cold gates wait on while the
    /// pool's first cold build runs.
    pub(crate) cold: warm::ColdStarts,
    /// The tag its processes carry instead of the run's (`<run>@worker:<name>` on a
    /// worker), so that only their own orch stops them after a crash.
    pub(crate) process_tag: Option<String>,
    /// Announced job changes, listened for once per run (with workers).
    pub(crate) job_changes: tokio::sync::OnceCell<Option<tokio::sync::watch::Receiver<u64>>>,
}

/// How many worktrees are readied at once: two per core. Readying one is mostly git
/// and file work on the CPU; 64 at once on 2 cores started the first agent 0.4 s later
/// than 4 at once did, and the last no sooner.
pub(crate) fn provisions() -> Semaphore {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Semaphore::new(2 * cores)
}

impl Ctx {
    /// A turn to ready a worktree (its git work), among [`provisions`] at once.
    pub(crate) async fn provision_turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.provisions
            .acquire()
            .await
            .expect("the run never closes its provisions' semaphore")
    }
}

/// An integration slot's checkout, held for one gate run.
pub(crate) struct IntegrationLease {
    ctx: Arc<Ctx>,
    slot: usize,
    pub(crate) path: PathBuf,
}

impl Drop for IntegrationLease {
    fn drop(&mut self) {
        let mut used = self.ctx.integration_slots.lock().expect("never poisoned");
        used[self.slot] = false;
    }
}

/// The two signals the core can send an attempt's process group: SIGTERM (`term`)
/// and, after the core's own grace, SIGKILL (`kill`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    pub(crate) term: CancellationToken,
    pub(crate) kill: CancellationToken,
}

impl Ctx {
    pub(crate) fn task(&self, id: TaskId) -> Option<Task> {
        self.tasks
            .read()
            .expect("the task map is never poisoned")
            .get(&id)
            .cloned()
    }

    /// The board's tasks by key: their ids and titles.
    pub(crate) fn tasks_by_key(&self) -> HashMap<String, (TaskId, String)> {
        let tasks = self.tasks.read().expect("the task map is never poisoned");
        tasks
            .values()
            .map(|t| (t.key.clone(), (t.id, t.title.clone())))
            .collect()
    }

    pub(crate) fn set_tasks(&self, tasks: HashMap<TaskId, Task>) {
        *self.tasks.write().expect("the task map is never poisoned") = Arc::new(tasks);
    }

    /// The attempt's worktree: the pooled one it holds, or its own.
    pub(crate) fn attempt_worktree(&self, a: AttemptId) -> PathBuf {
        match self.held(a) {
            Some(p) => p.path,
            None => layout::attempt_worktree(&self.cfg.worktree_root, &self.run, a),
        }
    }

    /// Takes a free integration slot's checkout for one gate run; it is given back
    /// when the lease drops. With `run.integration_depth` candidates validated at once,
    /// each has its own checkout, reused (only differing files are written).
    pub(crate) fn lease_integration(self: &Arc<Self>) -> IntegrationLease {
        let mut used = self.integration_slots.lock().expect("never poisoned");
        let slot = match used.iter().position(|u| !*u) {
            Some(i) => i,
            None => {
                used.push(false);
                used.len() - 1
            }
        };
        used[slot] = true;
        IntegrationLease {
            ctx: self.clone(),
            slot,
            path: layout::integration_slot(&self.cfg.worktree_root, &self.run, slot),
        }
    }

    /// The attempt's log directory, falling back to the artifacts root.
    pub(crate) fn log_dir(&self, a: AttemptId) -> PathBuf {
        self.artifacts
            .attempt_dir(&self.run, a)
            .unwrap_or_else(|_| self.cfg.artifacts_root.clone())
    }

    /// The preset the run's agent command is, if it is one (not a custom command).
    pub(crate) fn preset(&self) -> Option<&'static crate::agents::presets::PresetSpec> {
        crate::run::setup::preset_of(&self.cfg.config, &self.cfg.agent_command)
    }

    /// The message of `a`'s task commit (`None`), or of its merge in `style`.
    pub(crate) fn commit_message(
        &self,
        a: AttemptId,
        style: Option<orch_core::config::MergeStyle>,
    ) -> String {
        let task = self.task(a.task);
        let s = crate::line::history::Subject {
            run: &self.run,
            attempt: a,
            task: task.as_ref(),
            co_author: self.preset().map(|p| p.co_author),
        };
        match style {
            None => crate::line::history::task_commit(&self.cfg.config.run, &s),
            Some(style) => crate::line::history::merge_commit(style, &s),
        }
    }

    /// The variables an agent may see.
    pub(crate) fn env_allow(&self) -> Vec<String> {
        crate::run::setup::agent_env_allow(&self.cfg.config, &self.cfg.agent_command)
    }

    /// The environment of an attempt's processes: the allowlist plus orch's variables,
    /// with the slot of the pooled worktree it holds.
    pub(crate) fn env(
        &self,
        a: AttemptId,
        worktree: &Path,
        prompt: &Path,
        base: &CommitId,
    ) -> Environment {
        let slot = self.held(a).map(|p| p.slot);
        self.env_in(a, worktree, prompt, base, slot)
    }

    /// As [`Ctx::env`], in pooled slot `slot` (`ORCH_SLOT`, `ORCH_PORT`).
    pub(crate) fn env_in(
        &self,
        a: AttemptId,
        worktree: &Path,
        prompt: &Path,
        base: &CommitId,
        slot: Option<u32>,
    ) -> Environment {
        let title = self.task(a.task).map(|t| t.title).unwrap_or_default();
        let mut set = vec![
            ("ORCH_RUN_ID".into(), self.run.0.clone()),
            ("ORCH_TASK_ID".into(), a.task.0.to_string()),
            ("ORCH_ATTEMPT".into(), a.number.to_string()),
            ("ORCH_WORKTREE".into(), worktree.display().to_string()),
            ("ORCH_PROMPT_FILE".into(), prompt.display().to_string()),
            ("ORCH_TASK_TITLE".into(), title),
            ("ORCH_BASE_COMMIT".into(), base.0.clone()),
        ];
        if let Some(slot) = slot {
            set.extend(orch_core::pool::slot_env(&self.cfg.config.worktrees, slot));
        }
        if let Some(tag) = &self.process_tag {
            set.push((orch_validate::procs::PROCESS_TAG.into(), tag.clone()));
        }
        Environment::inherit(&self.env_allow(), set)
    }
}

/// A line feed for an attempt's process, and the future that forwards it into the
/// run's event stream until the sender is dropped.
pub(crate) fn forward(
    ctx: &Ctx,
    attempt: AttemptId,
    stage: Option<Stage>,
) -> (
    mpsc::Sender<Line>,
    impl std::future::Future<Output = ()> + use<>,
) {
    let (tx, mut rx) = mpsc::channel::<Line>(256);
    let handle = ctx.handle.clone();
    let forward = async move {
        while let Some(l) = rx.recv().await {
            handle.publish(RunUpdate::Output {
                attempt,
                stage,
                line: l.text,
            });
        }
    };
    (tx, forward)
}

/// Whether an error's words say the disk is full: ENOSPC ("No space left on device"),
/// SQLite's "database or disk is full", or git's "Out of diskspace" (a failed write of
/// an object or an index lock).
pub(crate) fn disk_full(why: &str) -> bool {
    why.contains("No space left on device")
        || why.contains("disk is full")
        || why.contains("Out of diskspace")
}

/// A full disk, as the quota breaker's signature: it waits for space, and the
/// attempt it stopped spends nothing.
pub(crate) fn no_space(why: &str) -> String {
    format!("no space left on device (ENOSPC): {why}")
}

/// Runs blocking git work off the loop; a panic there is reported, not propagated.
/// The blocking thread is not the run's to abort, but the future that awaits it lives
/// in the run's `JoinSet`, so a result for a dropped run goes nowhere.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the git call panicked: {e}"))
}

/// What a spawned piece of work returns: an input for the core, if any.
pub(crate) type Work = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Input>> + Send>>;

/// The work of one command; `stop` signals its process, `base` is an agent's base.
pub(crate) fn work(ctx: Arc<Ctx>, cmd: Command, stop: Stop, base: Option<CommitId>) -> Work {
    let cmd = match remote::work(ctx.clone(), cmd, &stop, base.clone()) {
        Ok(w) => return w,
        Err(cmd) => *cmd,
    };
    match cmd {
        Command::Provision {
            attempt,
            branch,
            base,
        } => {
            // Taken now, in command order: the worktrees given back before this one.
            let after = ctx.releasing.ticket();
            Box::pin(
                async move { Some(worktree::provision(ctx, attempt, branch, base, after).await) },
            )
        }
        cmd @ Command::SpawnAgent { .. } => {
            let ask = agent::Ask::of(cmd, base).expect("just matched");
            Box::pin(async move { Some(agent::spawn(ctx, ask, stop).await) })
        }
        cmd @ Command::RunGate { .. } => {
            let ask = gate::GateAsk::of(cmd).expect("just matched");
            Box::pin(async move { Some(gate::run(ctx, ask, stop).await) })
        }
        cmd @ Command::Merge { .. } => {
            let ask = merge::MergeAsk::of(cmd).expect("just matched");
            Box::pin(async move { Some(merge::merge(ctx, ask).await) })
        }
        Command::AdvanceRef {
            attempt,
            expected,
            new,
        } => Box::pin(async move { Some(merge::advance(ctx, attempt, expected, new).await) }),
        Command::ReleaseWorktree { attempt } => {
            // Counted now, in command order, before a later provision can lease.
            let releasing = pooled::Release::start(&ctx);
            Box::pin(async move {
                for e in pooled::release(&ctx, attempt, false).await {
                    tracing::warn!(%attempt, error = %e, "giving a worktree back to the pool");
                }
                drop(releasing);
                None
            })
        }
        Command::Cleanup {
            attempt,
            remove_worktree,
            delete_branch,
            retention,
        } => Box::pin(async move {
            let r = teardown::cleanup(ctx, attempt, remove_worktree, delete_branch, retention);
            Some(r.await)
        }),
        Command::AskPlanner {
            request,
            claimable,
            free_slots,
            failures,
        } => {
            let ask = ask_planner::Ask {
                request,
                claimable,
                free_slots,
                failures,
            };
            Box::pin(async move { Some(ask_planner::ask(ctx, ask, stop).await) })
        }
        Command::Persist(_)
        | Command::Claim { .. }
        | Command::RefreshBoard
        | Command::Abort { .. }
        | Command::Finish { .. } => unreachable!("the driver's loop and lane handle these"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each way a full disk is worded where orch meets it: the kernel's, SQLite's, and
    /// git's when it cannot write an object or an index lock.
    #[test]
    fn a_full_disk_is_known_by_each_of_its_wordings() {
        assert!(disk_full(
            "write agent.log: No space left on device (os error 28)"
        ));
        assert!(disk_full("database or disk is full"));
        assert!(disk_full(
            "`git add --all -- .` failed: fatal: sha1 file '.git/worktrees/a/index.lock' write error. Out of diskspace"
        ));
        assert!(!disk_full("permission denied"));
    }
}
