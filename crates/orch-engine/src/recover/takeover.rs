//! Resuming a coordinator of workers (`run.executors = "workers"`), possibly from
//! another clone on another machine: the remote is where the run's refs really are.
//! The integration line is fetched from it first, the jobs still on workers are waited
//! for (they keep running while no coordinator lives, and their results count), and
//! the finished ones stand in for the exit markers a local run leaves on disk.

use std::collections::BTreeMap;
use std::time::Duration;

use orch_core::jobs::JobState;
use orch_core::run::{AttemptId, AttemptState, FinishedAgent, RunId, RunSnapshot};

use crate::line::layout;
use crate::{Engine, EngineError};

impl Engine {
    fn on_workers(&self) -> bool {
        self.cfg.config.run.executors == orch_core::config::Executors::Workers
    }

    /// Brings the local integration line to where the remote has it (or, if the remote
    /// has none yet, to the journal's head when this clone lacks it).
    pub(crate) async fn sync_line(
        &self,
        run: &RunId,
        snapshot: &RunSnapshot,
    ) -> Result<(), EngineError> {
        if !self.on_workers() {
            return Ok(());
        }
        let cfg = &self.cfg.config.run;
        let reference = layout::integration_ref(cfg, run);
        let (git, remote) = (self.git.clone(), cfg.remote.clone());
        let head = snapshot.head.clone();
        let branch = layout::integration_branch(cfg, run);
        tokio::task::spawn_blocking(move || match git.remote_ref(&remote, &reference)? {
            Some(_) => git.fetch_refs(&remote, &[format!("+{reference}:{reference}")]),
            None => match (git.ref_target(&reference)?, head) {
                (None, Some(h)) => git.create_branch(&branch, &h),
                _ => Ok(()),
            },
        })
        .await
        .expect("syncing the line does not panic")
        .map_err(|e| {
            EngineError::Unresumable(format!("reading the integration line from run.remote: {e}"))
        })
    }

    /// Waits for the run's jobs still queued or on workers, up to the agent's and the
    /// gate's deadlines and a lease; says how many it waited for.
    pub(crate) async fn await_jobs(&self, run: &RunId, notes: &mut Vec<String>) {
        if !self.on_workers() {
            return;
        }
        let c = &self.cfg.config;
        let most = c.agent.timeout.0 + c.validate.timeout.0 + c.worker.lease_ttl.0;
        let started = std::time::Instant::now();
        let mut first = None;
        loop {
            let live = self
                .store
                .jobs(Some(&run.0))
                .await
                .map(|j| j.iter().filter(|j| j.state != JobState::Done).count())
                .unwrap_or(0);
            first.get_or_insert(live);
            if live == 0 || started.elapsed() > most {
                break;
            }
            tokio::time::sleep(c.worker.poll.0.max(Duration::from_millis(100))).await;
        }
        if let Some(n) = first.filter(|n| *n > 0) {
            notes.push(format!(
                "waited {:.0}s for {n} job(s) still on workers; their results are taken",
                started.elapsed().as_secs_f64()
            ));
        }
    }

    /// Fetches the branches and candidate pins of the run's attempts in flight from
    /// the remote: their commits may exist only there.
    pub(crate) async fn fetch_in_flight(&self, run: &RunId, snapshot: &RunSnapshot) {
        if !self.on_workers() {
            return;
        }
        let mut specs = vec![format!("+refs/orch/{0}/*:refs/orch/{0}/*", run.0)];
        for (id, rec) in &snapshot.attempts {
            if !rec.state.is_terminal() {
                let b = format!("refs/heads/{}", id.branch(run));
                specs.push(format!("+{b}:{b}"));
            }
        }
        let (git, remote) = (self.git.clone(), self.cfg.config.run.remote.clone());
        // A branch gone from the remote fails the whole fetch: one at a time then.
        let _ = tokio::task::spawn_blocking(move || {
            if git.fetch_refs(&remote, &specs).is_err() {
                for s in &specs {
                    let _ = git.fetch_refs(&remote, std::slice::from_ref(s));
                }
            }
        })
        .await;
    }

    /// The agents of running attempts whose jobs are done: their results as exit
    /// markers, with their branches' tips (fetched by [`Engine::fetch_in_flight`]),
    /// for the core to judge.
    pub(crate) async fn finished_jobs(
        &self,
        run: &RunId,
        snapshot: &RunSnapshot,
    ) -> Result<BTreeMap<AttemptId, FinishedAgent>, EngineError> {
        let mut markers = BTreeMap::new();
        let mut heads = BTreeMap::new();
        for (id, rec) in &snapshot.attempts {
            if rec.state != AttemptState::Running {
                continue;
            }
            let job = self.store.job(&run.0, id.task, id.number).await?;
            let Some(r) = job.and_then(|j| j.result) else {
                continue;
            };
            let head = self
                .git
                .ref_target(&format!("refs/heads/{}", id.branch(run)))?;
            heads.insert(*id, head);
            markers.insert(*id, r.finished());
        }
        Ok(orch_core::run::trusted_finished(snapshot, markers, &heads))
    }
}
