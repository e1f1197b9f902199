//! `orch worker`: runs the jobs coordinators post (`run.executors = "workers"`), on
//! this machine, from this clone. For each job it claims, under a lease renewed every
//! third of `worker.lease_ttl`: it fetches the attempt's branch (at its base) from
//! `run.remote`, makes a worktree, runs the agent and the worker gate the way a local
//! run does (the run's agent and gates, this machine's environment rules), pushes the
//! branch, and posts the result with its logs' tails. A job whose lease it lost is
//! dropped without a result (fenced); a cancel stops the agent. A store it cannot reach
//! stops it claiming, and its results are posted with backoff.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use orch_core::config::Config;
use orch_core::jobs::{Beat, GateVerdict, Job, JobResult};
use orch_core::run::{AgentExit, AttemptId, CommitId, FinishedAgent, Input, Policy, RunId, Stage};
use orch_git::Git;
use orch_store::{Store, StoreError};
use orch_validate::Artifacts;
pub use orch_validate::CancellationToken;
use tokio::sync::{Semaphore, mpsc};

use crate::exec::{self, Ctx, Stop};
use crate::ports::{GitPort, RealProcesses};
use crate::{EngineConfig, EngineError, RunHandle, StoredRun};

mod chores;
pub mod remote_logs;
use chores::{clear_leftovers, push_over, tails};

/// How a worker works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Its name, in job rows and the journal (`host:pid` by default).
    pub name: String,
    /// Only jobs of tasks carrying one of these labels (none: any).
    pub labels: Vec<String>,
    /// Jobs held at once.
    pub concurrency: usize,
    /// Exit once no job is left to claim and its own are done.
    pub drain: bool,
    /// This machine's configuration: `[worker]`, and the agent environment rules
    /// (`agent.env_allow`, `agent.env_extra`) its agents run with.
    pub config: Config,
    /// Where its worktrees go.
    pub worktree_root: PathBuf,
    /// Where its logs go (`.orch/artifacts`).
    pub artifacts_root: PathBuf,
}

/// What a worker reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// It claimed a job (`took_over`: from a worker whose lease ran out).
    Claimed {
        /// The job.
        job: i64,
        /// Its run.
        run: String,
        /// Its attempt (`task-3-1`).
        attempt: String,
        /// The worker it was taken from.
        took_over: Option<String>,
    },
    /// It posted a job's result.
    Posted {
        /// The job.
        job: i64,
        /// How the agent ended, and the gate's verdict.
        outcome: String,
    },
    /// It lost a job's lease and dropped the job.
    Fenced {
        /// The job.
        job: i64,
    },
    /// The store could not be reached; it claims nothing until it can.
    StoreDown {
        /// Why.
        error: String,
    },
}

/// What a worker did, when it exits.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerSummary {
    /// Results posted.
    pub posted: u64,
    /// Jobs dropped because their lease was lost.
    pub fenced: u64,
}

/// Runs a worker until `stop` (it finishes the jobs it holds first) or, with `drain`,
/// until the queue is empty.
pub async fn run_worker(
    store: Store,
    repo_root: &Path,
    opts: WorkerOptions,
    stop: CancellationToken,
    events: mpsc::UnboundedSender<WorkerEvent>,
) -> Result<WorkerSummary, EngineError> {
    store.check_serves_workers()?;
    opts.config
        .worker
        .check()
        .map_err(|e| EngineError::Config(e.to_string()))?;
    orch_core::jobs::check_labels(&opts.labels).map_err(|e| EngineError::Config(e.to_string()))?;
    let git = Arc::new(Git::open(repo_root)?);
    clear_leftovers(&git, &store, &opts.worktree_root, &opts.name).await;
    let cancels = store.job_cancels().await;
    let w = Arc::new(Shared {
        cancels: cancels.unwrap_or_else(|| tokio::sync::watch::channel(0).1),
        store,
        git,
        opts,
        events,
    });
    let slots = Arc::new(Semaphore::new(w.opts.concurrency.max(1)));
    let mut jobs = tokio::task::JoinSet::new();
    let mut summary = WorkerSummary::default();
    // An idle worker looks when a job is announced, and every `worker.poll` anyway.
    let poll = w.opts.config.worker.poll.0;
    let mut changes = w
        .store
        .job_changes()
        .await
        .unwrap_or_else(|| tokio::sync::watch::channel(0).1);
    loop {
        changes.borrow_and_update();
        let mut idle = !stop.is_cancelled();
        while !stop.is_cancelled() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                idle = false;
                break;
            };
            match w.claim().await {
                Some(job) => {
                    idle = false;
                    let w = w.clone();
                    jobs.spawn(async move {
                        let posted = w.work(job).await;
                        drop(permit);
                        posted
                    });
                }
                None => break,
            }
        }
        if (w.opts.drain && idle && jobs.is_empty()) || (stop.is_cancelled() && jobs.is_empty()) {
            return Ok(summary);
        }
        tokio::select! {
            Some(done) = jobs.join_next() => match done {
                Ok(true) => summary.posted += 1,
                Ok(false) => summary.fenced += 1,
                Err(e) => tracing::error!(error = %e, "a job's task failed"),
            },
            _ = tokio::time::sleep(poll) => {}
            Ok(()) = changes.changed() => {}
            _ = stop.cancelled(), if !stop.is_cancelled() => {}
        }
    }
}

struct Shared {
    store: Store,
    /// Announced cancels, one listener for all the worker's heartbeats.
    cancels: tokio::sync::watch::Receiver<u64>,
    git: Arc<Git>,
    opts: WorkerOptions,
    events: mpsc::UnboundedSender<WorkerEvent>,
}

impl Shared {
    fn ttl_ms(&self) -> i64 {
        self.opts.config.worker.lease_ttl.0.as_millis() as i64
    }

    fn say(&self, e: WorkerEvent) {
        let _ = self.events.send(e);
    }

    async fn claim(&self) -> Option<Job> {
        match self
            .store
            .claim_job(&self.opts.name, &self.opts.labels, self.ttl_ms())
            .await
        {
            Ok(Some(c)) => {
                let a = attempt_of(&c.job);
                self.say(WorkerEvent::Claimed {
                    job: c.job.id,
                    run: c.job.spec.run.clone(),
                    attempt: a.to_string(),
                    took_over: c.took_over,
                });
                Some(c.job)
            }
            Ok(None) => None,
            Err(e) => {
                self.say(WorkerEvent::StoreDown {
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// Does one job; true when its result was posted.
    async fn work(self: Arc<Self>, job: Job) -> bool {
        let stop = Stop::default();
        let fenced = CancellationToken::new();
        let beat = tokio::spawn(heartbeat(
            self.clone(),
            job.clone(),
            stop.clone(),
            fenced.clone(),
        ));
        let result = self.run_job(&job, &stop, &fenced).await;
        let posted = match result {
            Some(r) if !fenced.is_cancelled() => self.post(&job, &r).await,
            _ => false,
        };
        beat.abort();
        if !posted {
            self.say(WorkerEvent::Fenced { job: job.id });
        }
        posted
    }

    /// Fetch, provision, agent, gate, push: the result to post (`None`: fenced).
    async fn run_job(
        &self,
        job: &Job,
        stop: &Stop,
        fenced: &CancellationToken,
    ) -> Option<JobResult> {
        let s = &job.spec;
        let a = attempt_of(job);
        if let Ok(now) = self.store.db_clock().await
            && s.expired(now)
        {
            let why = "its deadline passed before a worker took it (no worker was free for agent.timeout)";
            return Some(self.failed(why.into()));
        }
        let ctx = match self.context(job).await {
            Ok(c) => c,
            Err(e) => return Some(self.failed(e.to_string())),
        };
        let remote = ctx.cfg.config.run.remote.clone();
        let (git, branch, path) = (ctx.git.clone(), s.branch.clone(), ctx.attempt_worktree(a));
        // The objects only: no ref is left behind for the job.
        let fetch = format!("refs/heads/{branch}");
        let prepared = exec::blocking(move || {
            git.fetch_refs(&remote, &[fetch])?;
            // A worktree or branch this machine left for the job under an older epoch.
            if path.exists() {
                git.remove_worktree(&path, true)?;
            }
            let _ = git.delete_branch(&branch, true);
            Ok::<(), String>(())
        })
        .await
        .and_then(|r| r);
        if let Err(e) = prepared {
            return Some(self.failed(format!("fetching the attempt's base: {e}")));
        }
        let ctx = Arc::new(ctx);
        // A worker's job has its own context: nothing of it is on its way back.
        let after = ctx.releasing.ticket();
        let ready =
            exec::worktree::provision(ctx.clone(), a, s.branch.clone(), s.base.clone(), after)
                .await;
        if let Input::WorktreeFailed { error, .. } = ready {
            return Some(self.failed(error));
        }
        let result = self.agent_and_gate(&ctx, job, stop).await;
        if fenced.is_cancelled() {
            self.tidy(&ctx, a).await;
            return None;
        }
        let pushed = match result.agent.changes.as_ref().filter(|c| !c.empty) {
            Some(c) => self.push(&ctx, job, &c.head).await,
            None => Ok(()),
        };
        self.tidy(&ctx, a).await;
        match pushed {
            Ok(()) => Some(result),
            Err(e) => Some(self.failed(format!("pushing {}: {e}", s.branch))),
        }
    }

    async fn agent_and_gate(&self, ctx: &Arc<Ctx>, job: &Job, stop: &Stop) -> JobResult {
        let a = attempt_of(job);
        let ask = exec::agent::Ask {
            attempt: a,
            base: job.spec.base.clone(),
            note: None,
            previous_failure: None,
            resume_session: job.spec.resume_session.clone(),
            // The coordinator rendered the prompt, with what landed since.
            previous_base: None,
            review: None,
            prompt: Some(job.spec.prompt.clone()),
        };
        let Input::AgentExited {
            exit,
            changes,
            report,
            ..
        } = exec::agent::spawn(ctx.clone(), ask, stop.clone()).await
        else {
            unreachable!("an agent's spawn answers AgentExited");
        };
        let head = changes
            .as_ref()
            .filter(|c| !c.empty)
            .map(|c| c.head.clone());
        let gate = match (&exit, head) {
            (AgentExit::Code(0), Some(head)) if !stop.term.is_cancelled() => {
                // A worker gates what it is given: verdicts are its coordinator's.
                let ask = exec::gate::GateAsk {
                    attempt: a,
                    stage: Stage::Worker,
                    commit: head,
                    reuse: false,
                };
                let g = exec::gate::run(ctx.clone(), ask, stop.clone()).await;
                Some(match g {
                    Input::GateFinished {
                        passed, summary, ..
                    } => GateVerdict {
                        passed,
                        summary,
                        broken: false,
                    },
                    Input::GateBroken { message, .. } => GateVerdict {
                        passed: false,
                        summary: message,
                        broken: true,
                    },
                    _ => unreachable!("a gate answers GateFinished or GateBroken"),
                })
            }
            _ => None,
        };
        JobResult {
            worker: self.opts.name.clone(),
            agent: FinishedAgent {
                exit,
                changes,
                report,
            },
            gate,
            logs: tails(&ctx.log_dir(a)),
            provision_error: None,
        }
    }

    /// The branch to the remote: expected at its base, or over what a fenced worker of
    /// this job pushed before it knew.
    async fn push(&self, ctx: &Ctx, job: &Job, head: &CommitId) -> Result<(), String> {
        let (git, remote) = (ctx.git.clone(), ctx.cfg.config.run.remote.clone());
        let (head, base) = (head.clone(), job.spec.base.clone());
        let reference = format!("refs/heads/{}", job.spec.branch);
        exec::blocking(move || push_over(&*git, &remote, &head, &reference, base))
            .await
            .and_then(|r| r)
    }

    /// Gives the job's worktree back to the pool (warm for the next job), or removes
    /// it, and deletes the local branch: the work is on the remote.
    async fn tidy(&self, ctx: &Arc<Ctx>, a: AttemptId) {
        let (git, branch) = (ctx.git.clone(), a.branch(&ctx.run));
        // The remote-tracking ref the job's push left.
        let tracking = format!("refs/remotes/{}/{branch}", ctx.cfg.config.run.remote);
        let pooled = ctx.held(a).is_some();
        if pooled {
            for e in exec::pooled::release(ctx, a, true).await {
                tracing::warn!(attempt = %a, error = %e, "giving a worktree back to the pool");
            }
        }
        let path = ctx.attempt_worktree(a);
        let _ = exec::blocking(move || {
            if !pooled {
                if path.exists() {
                    let _ = git.remove_worktree(&path, true);
                }
                let _ = git.delete_branch(&branch, true);
            }
            let _ = git.unpin(&tracking);
        })
        .await;
    }

    /// Posts the result, retrying while the store cannot be reached; false when the
    /// lease was lost meanwhile.
    async fn post(&self, job: &Job, r: &JobResult) -> bool {
        // Its logs first, for `orch logs` and the dashboard on any machine.
        let s = &job.spec;
        let saved = self
            .store
            .save_logs(&s.run, s.task, s.attempt, &self.opts.name, &r.logs)
            .await;
        if let Err(e) = saved {
            tracing::warn!(job = job.id, error = %e, "saving a job's logs");
        }
        let mut wait = Duration::from_millis(200);
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            match self.store.finish_job(job.id, job.epoch, r).await {
                Ok(()) => {
                    let gate = r
                        .gate
                        .as_ref()
                        .map_or("no gate".into(), |g| match g.passed {
                            true => "gate passed".to_owned(),
                            false => "gate failed".to_owned(),
                        });
                    self.say(WorkerEvent::Posted {
                        job: job.id,
                        outcome: format!("agent {:?}, {gate}", r.agent.exit),
                    });
                    return true;
                }
                Err(StoreError::JobFenced { .. }) => return false,
                Err(e) if std::time::Instant::now() < deadline => {
                    self.say(WorkerEvent::StoreDown {
                        error: e.to_string(),
                    });
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(_) => return false,
            }
        }
    }

    fn failed(&self, why: String) -> JobResult {
        JobResult {
            worker: self.opts.name.clone(),
            agent: FinishedAgent {
                exit: AgentExit::FailedToStart(why.clone()),
                changes: None,
                report: Default::default(),
            },
            gate: None,
            logs: Vec::new(),
            provision_error: Some(why),
        }
    }

    /// The run's settings, as a local run of it has them, with this machine's
    /// worktrees, logs and agent environment rules (and a worktree per job).
    async fn context(&self, job: &Job) -> Result<Ctx, EngineError> {
        let run = RunId(job.spec.run.clone());
        let info = self.store.run(&run).await?;
        let stored = StoredRun::from_json(&run.0, &info.config)?;
        let mut config = stored.config.clone();
        config.agent.env_allow = self.opts.config.agent.env_allow.clone();
        config.agent.env_extra = self.opts.config.agent.env_extra.clone();
        // This machine's worktrees: its own pool (`worktrees.reuse`), caches and setup.
        config.worktrees = self.opts.config.worktrees.clone();
        let task = self.store.task(job.spec.task).await?;
        let policy = Policy::from_config(&config);
        let (live, _) = mpsc::unbounded_channel();
        let git: Arc<dyn GitPort> = self.git.clone();
        Ok(Ctx {
            run,
            journal: Arc::new(self.store.clone()),
            git,
            procs: Arc::new(RealProcesses),
            policy,
            artifacts: Artifacts::new(&self.opts.artifacts_root),
            tasks: RwLock::new(Arc::new(HashMap::from([(task.id, task)]))),
            template: None,
            agents: Arc::new(Semaphore::new(1)),
            provisions: crate::exec::provisions(),
            handle: RunHandle::new(),
            live,
            integration_slots: Default::default(),
            slots: Default::default(),
            releasing: Default::default(),
            cold: Default::default(),
            process_tag: Some(format!("{}@worker:{}", job.spec.run, self.opts.name)),
            job_changes: Default::default(),
            cfg: EngineConfig {
                agent_command: stored.engine.agent_command.clone(),
                config,
                worktree_root: self.opts.worktree_root.clone(),
                artifacts_root: self.opts.artifacts_root.clone(),
                only_tasks: Vec::new(),
                fetch_timeout: Duration::from_secs(120),
            },
        })
    }
}

fn attempt_of(job: &Job) -> AttemptId {
    AttemptId {
        task: job.spec.task,
        number: job.spec.attempt,
    }
}

/// Renews the job's lease every third of its TTL, and at once when a cancel is
/// announced: a cancel stops the agent, a lost lease kills it at once. A store it
/// cannot reach is tried again at the next beat.
async fn heartbeat(w: Arc<Shared>, job: Job, stop: Stop, fenced: CancellationToken) {
    let every = w.opts.config.worker.heartbeat();
    let mut cancels = w.cancels.clone();
    loop {
        cancels.borrow_and_update();
        // A cancel announced for any job makes the beat come at once.
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            Ok(()) = cancels.changed() => {}
        }
        match w.store.heartbeat_job(job.id, job.epoch, w.ttl_ms()).await {
            Ok(Beat::Live) => {}
            Ok(Beat::Cancel) => stop.term.cancel(),
            Ok(Beat::Fenced) => {
                fenced.cancel();
                stop.term.cancel();
                stop.kill.cancel();
                return;
            }
            Err(e) => w.say(WorkerEvent::StoreDown {
                error: e.to_string(),
            }),
        }
    }
}

/// Where the worker named `name` keeps its worktrees under `root`: a directory of its
/// own, cleared when a worker of that name starts.
pub fn worktree_root(root: &Path, name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join("workers").join(safe)
}

/// A worker's default name: `host:pid`.
pub fn default_name() -> String {
    format!(
        "{}:{}",
        crate::recover::lease::hostname(),
        std::process::id()
    )
}
