//! Attempts run on other machines (`run.executors = "workers"`): what a job carries to
//! a worker, what comes back, and the rules that keep each job with one owner at a
//! time. A worker holds a job under a lease on the database's clock, renewed by its
//! heartbeat. A lease that expires puts the job back for another worker (the task's
//! attempt is not spent), and bumps the job's epoch: a worker that comes back after
//! losing its lease holds an old epoch, so its heartbeat and its result are refused.
//! The store carries these rules out in SQL; this module states them.

use serde::{Deserialize, Serialize};

use crate::TaskId;
use crate::config::BadSetting;
pub use crate::config::WorkerConfig;
use crate::run::{CommitId, FinishedAgent};

/// What a coordinator posts for one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The run.
    pub run: String,
    /// The task.
    pub task: TaskId,
    /// The attempt's number.
    pub attempt: u32,
    /// The prompt, rendered by the coordinator.
    pub prompt: String,
    /// The commit to start from; the remote's `branch` points at it when posted.
    pub base: CommitId,
    /// The branch to produce, pushed to the remote.
    pub branch: String,
    /// The worker gate's commands.
    pub gates: Vec<String>,
    /// The task's labels, for `orch worker --labels`.
    pub labels: Vec<String>,
    /// A previous agent session to resume, where the agent can.
    pub resume_session: Option<String>,
    /// After this (ms, on the database's clock) the job is not worth starting: its
    /// attempt's agent deadline has passed.
    #[serde(default)]
    pub deadline: Option<i64>,
}

impl JobSpec {
    /// Whether a worker claiming the job at `now` (the database's clock) finds its
    /// deadline passed, and must post it failed instead of running it.
    pub fn expired(&self, now: i64) -> bool {
        self.deadline.is_some_and(|d| d < now)
    }
}

/// A gate's verdict, as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// Whether every command passed.
    pub passed: bool,
    /// The failing command and its tail.
    pub summary: String,
    /// The gate could not run at all (orch's fault, not the agent's).
    pub broken: bool,
}

/// What a worker posts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// The worker.
    pub worker: String,
    /// The agent's end, its committed work and its report.
    pub agent: FinishedAgent,
    /// The worker gate, if it ran (only on work the agent committed).
    pub gate: Option<GateVerdict>,
    /// The logs' tails, by file name (`agent.log`, the gate's logs).
    pub logs: Vec<(String, String)>,
    /// The worktree could not be made: nothing ran.
    pub provision_error: Option<String>,
}

impl JobResult {
    /// The agent's end as the coordinator takes it: a worktree that could not be made
    /// is an agent that failed to start, with nothing committed.
    pub fn finished(self) -> FinishedAgent {
        let mut f = self.agent;
        if let Some(e) = self.provision_error {
            f.exit =
                crate::run::AgentExit::FailedToStart(format!("on worker {}: {e}", self.worker));
            f.changes = None;
        }
        f
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds it.
    Claimed,
    /// Its coordinator asked it stopped; its worker stops the agent and posts.
    Canceling,
    /// Its result is in.
    Done,
}

impl JobState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Claimed => "claimed",
            JobState::Canceling => "canceling",
            JobState::Done => "done",
        }
    }

    /// From its stored form.
    pub fn parse(s: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Claimed,
            JobState::Canceling,
            JobState::Done,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
    }
}

/// A job as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its row.
    pub id: i64,
    /// What to do.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// Bumped by every claim: a worker's heartbeat and result name the epoch it
    /// claimed, and are refused under any other.
    pub epoch: i64,
    /// Who holds it (or held it last).
    pub worker: Option<String>,
    /// Until when its lease runs, on the database's clock (ms).
    pub lease_until: Option<i64>,
    /// The result, once done.
    pub result: Option<JobResult>,
}

/// What a worker's heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The job is still its own: go on.
    Live,
    /// Its own, but the coordinator asks it stopped.
    Cancel,
    /// No longer its own (the lease expired and another worker took it, or it was
    /// taken back): stop, post nothing.
    Fenced,
}

/// Whether a worker may claim a job in `state` whose lease runs `until` at `now`
/// (the database's clock): a queued job, or one whose worker's lease expired.
pub fn claimable(state: JobState, until: Option<i64>, now: i64) -> bool {
    match state {
        JobState::Queued => true,
        JobState::Claimed => until.is_some_and(|u| u < now),
        JobState::Canceling | JobState::Done => false,
    }
}

/// Whether a heartbeat or result from the worker that claimed `epoch` is the owner's:
/// the job's epoch is still that, it is held, and its lease has not run out.
pub fn owns(job: &Job, epoch: i64, now: i64) -> bool {
    job.epoch == epoch
        && matches!(job.state, JobState::Claimed | JobState::Canceling)
        && job.lease_until.is_some_and(|u| u >= now)
}

/// Whether a worker that takes `worker_labels` (none: any) takes a task labelled
/// `job_labels`: it carries one of them.
pub fn takes(worker_labels: &[String], job_labels: &[String]) -> bool {
    worker_labels.is_empty() || worker_labels.iter().any(|l| job_labels.contains(l))
}

/// Labels as stored, for matching in SQL: `,a,b,`.
pub fn encode_labels(labels: &[String]) -> String {
    format!(",{},", labels.join(","))
}

/// The SQL `LIKE` patterns of which a job's encoded labels must match one for a
/// worker taking `worker_labels` (none: no filter).
pub fn label_patterns(worker_labels: &[String]) -> Vec<String> {
    worker_labels
        .iter()
        .map(|l| format!("%,{},%", l.replace(['%', '_', '\\'], "")))
        .collect()
}

/// Checks `orch worker --labels` values: non-empty, without commas.
pub fn check_labels(labels: &[String]) -> Result<(), BadSetting> {
    match labels
        .iter()
        .find(|l| l.is_empty() || l.contains([',', '%', '_']))
    {
        Some(l) => Err(BadSetting::new(
            "labels",
            format!(
                "label {l:?} cannot be matched: labels must be non-empty, without ',', '%' or '_'"
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Duration;

    fn job(state: JobState, epoch: i64, until: Option<i64>) -> Job {
        Job {
            id: 1,
            spec: JobSpec {
                run: "r".into(),
                task: TaskId(1),
                attempt: 1,
                prompt: String::new(),
                base: CommitId("b".into()),
                branch: "x".into(),
                gates: vec![],
                labels: vec![],
                resume_session: None,
                deadline: Some(10),
            },
            state,
            epoch,
            worker: Some("w".into()),
            lease_until: until,
            result: None,
        }
    }

    #[test]
    fn only_the_current_epoch_with_a_live_lease_owns_a_job() {
        let j = job(JobState::Claimed, 2, Some(100));
        assert!(owns(&j, 2, 100));
        assert!(!owns(&j, 1, 50), "a fenced epoch");
        assert!(!owns(&j, 2, 101), "a lease run out");
        assert!(owns(&job(JobState::Canceling, 2, Some(100)), 2, 10));
        assert!(!owns(&job(JobState::Done, 2, Some(100)), 2, 10));
        assert!(!j.spec.expired(10) && j.spec.expired(11));
    }

    #[test]
    fn expired_leases_and_queued_jobs_are_claimable() {
        assert!(claimable(JobState::Queued, None, 5));
        assert!(claimable(JobState::Claimed, Some(4), 5));
        assert!(!claimable(JobState::Claimed, Some(5), 5));
        assert!(!claimable(JobState::Canceling, Some(1), 5));
        assert!(!claimable(JobState::Done, None, 5));
    }

    #[test]
    fn labels_filter_and_encode() {
        let gpu = vec!["gpu".to_owned()];
        assert!(takes(&[], &gpu));
        assert!(takes(&gpu, &["x".into(), "gpu".into()]));
        assert!(!takes(&gpu, &[]));
        assert_eq!(encode_labels(&gpu), ",gpu,");
        assert_eq!(label_patterns(&gpu), vec!["%,gpu,%".to_owned()]);
        assert!(check_labels(&["a,b".into()]).is_err());
        assert!(WorkerConfig::default().check().is_ok());
    }

    #[test]
    fn worker_settings_are_checked() {
        let ms = |n| Duration(std::time::Duration::from_millis(n));
        let short = WorkerConfig {
            lease_ttl: ms(1000),
            ..WorkerConfig::default()
        };
        assert!(short.check().unwrap_err().message.contains("at least 3s"));
        let slow = WorkerConfig {
            lease_ttl: ms(3000),
            poll: ms(3000),
        };
        assert!(
            slow.check()
                .unwrap_err()
                .message
                .contains("shorter than worker.lease_ttl")
        );
        assert_eq!(
            WorkerConfig::default().heartbeat(),
            std::time::Duration::from_secs(10)
        );
    }
}
