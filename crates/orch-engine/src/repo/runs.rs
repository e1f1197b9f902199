//! Runs through the front door: steering a live run wherever it is driven, where its
//! integration line stands, its logs and an attempt's diff.

use orch_core::TaskId;
use orch_core::run::{CommitId, RunId};
use orch_store::RunInfo;

use super::Repo;
use crate::EngineError;
use crate::run::setup::{self, LineHead};
use crate::run::steer;

impl Repo {
    /// Asks a live run to cancel, whichever process drives it; journaled as `who`'s.
    pub async fn cancel_run(&self, run: &RunId, who: &str) -> Result<(), EngineError> {
        steer::cancel_run(&self.store, run, who).await
    }

    /// Pauses a live run's claiming (or resumes it), whichever process drives it; its
    /// live attempts go on.
    pub async fn pause_run(&self, run: &RunId, paused: bool, who: &str) -> Result<(), EngineError> {
        steer::pause_claims(&self.store, run, !paused, who).await
    }

    /// Where `run`'s integration branch points in git now, and whether it still holds
    /// `validated` (the head the run's journal says it left).
    pub fn run_line(
        &self,
        run: &RunInfo,
        validated: Option<&CommitId>,
    ) -> Result<LineHead, EngineError> {
        setup::integration_head(self.root(), run, validated)
    }

    /// Writes the logs that workers stored for `task` (in `run`, or every run) under
    /// the artifacts directory, where no file is; returns how many it wrote.
    pub async fn fetch_logs(&self, run: Option<&str>, task: TaskId) -> Result<usize, EngineError> {
        crate::workers::remote_logs::materialize(&self.store, &self.artifacts(), run, task).await
    }

    /// What an attempt changed: `head` against `base`, as a stat and a patch cut at
    /// `cap` bytes.
    pub fn attempt_diff(&self, base: &str, head: &str, cap: usize) -> Result<String, EngineError> {
        steer::attempt_diff(self.root(), base, head, cap)
    }
}
