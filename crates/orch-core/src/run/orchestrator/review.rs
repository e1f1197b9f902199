//! Review as the orchestrator routes it: work that needs a person stops after its
//! worker gate (journaled with what to review, its task moved to `review`), and an
//! approved task's claim integrates that very work, with no agent and no gate of its
//! own before the merge. What a person decides is the store's and the front door's
//! (`crate::review::decide`).

use super::Orchestrator;
use crate::review::{Review, ReviewWork};
use crate::run::event::RunEvent;
use crate::run::types::{AttemptId, AttemptState};

impl Orchestrator {
    /// Whether `attempt`'s work waits for a person (`[review]`, by its task's labels).
    pub(super) fn review_needed(&self, attempt: AttemptId) -> bool {
        let labels = self
            .sched
            .tasks
            .get(&attempt.task)
            .map_or(&[][..], |s| s.labels.as_slice());
        self.policy.review.needs(labels)
    }

    /// Ends `attempt` awaiting review: its work (branch, head, the agent's session) is
    /// journaled for its task, and the task moves to `review` when the attempt ends.
    pub(super) fn submit_for_review(&mut self, attempt: AttemptId) {
        let rec = self.attempts.rec(attempt);
        let work = ReviewWork {
            run: self.run.clone(),
            attempt: attempt.number,
            branch: attempt.branch(&self.run),
            base: rec.base.clone(),
            head: rec
                .head
                .clone()
                .expect("an attempt past its worker gate has a head"),
            session: rec.usage.as_ref().and_then(|u| u.session_id.clone()),
        };
        let round = Review::next_round(self.sched.review_of(attempt.task));
        let review = Review::pending(round, work);
        self.persist(RunEvent::ReviewRequested {
            attempt,
            review: review.clone(),
        });
        self.sched.set_review(attempt.task, review);
        self.move_attempt(
            attempt,
            AttemptState::AwaitingReview,
            "worker validation passed; the work waits for a person's review",
        );
        self.end_attempt(attempt);
    }

    /// The approved work `review` holds, adopted by `attempt` (just created on its
    /// base): its head is the reviewed one, and it goes straight to the integration
    /// queue (I1 and I2 hold as for any attempt: merged in memory, then gated).
    pub(super) fn adopt(&mut self, attempt: AttemptId, review: &Review) {
        let head = review.work.head.clone();
        self.persist(RunEvent::AttemptHead {
            attempt,
            head: head.clone(),
            empty: false,
        });
        self.attempts.at(attempt).rec.head = Some(head);
        let why = format!(
            "round {} of the work, approved in review ({} of run {}), is integrated as it is",
            review.round, review.work.branch, review.work.run
        );
        self.move_attempt(attempt, AttemptState::Merging, &why);
        self.integrator.enqueue(attempt);
        self.try_integrate();
    }
}
