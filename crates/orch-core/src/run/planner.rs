//! The planner: requests, epochs and verdicts. The planner proposes; the core judges
//! every proposal against policy, journals the verdict, and falls back to its own
//! scheduler when the planner is slow, wrong or silent.

/// At most this many candidates are offered to the planner in one request.
pub(super) const PLANNER_CANDIDATES: usize = 50;

/// The planner's side of the run.
#[derive(Debug, Clone)]
pub(super) struct PlannerState {
    /// The request waiting for an answer.
    pub(super) waiting: Option<u64>,
    next_request: u64,
    /// Bumped whenever something could change what to claim; the planner is asked at
    /// most once per epoch.
    epoch: u64,
    asked_epoch: Option<u64>,
}

impl Default for PlannerState {
    fn default() -> Self {
        PlannerState {
            waiting: None,
            next_request: 1,
            epoch: 0,
            asked_epoch: None,
        }
    }
}

impl PlannerState {
    pub(super) fn bump_epoch(&mut self) {
        self.epoch += 1;
    }

    /// The current epoch: it changes whenever what to claim may have.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// True when the planner may be asked: nothing waits, and this epoch was not asked.
    pub(super) fn may_ask(&self) -> bool {
        self.waiting.is_none() && self.asked_epoch != Some(self.epoch)
    }

    /// A new request, now the one waiting.
    pub(super) fn ask(&mut self) -> u64 {
        let request = self.next_request;
        self.next_request += 1;
        self.waiting = Some(request);
        request
    }

    /// The request is answered (or given up on): the planner is not asked again until
    /// something changes.
    pub(super) fn settle(&mut self) {
        self.waiting = None;
        self.asked_epoch = Some(self.epoch);
    }
}
