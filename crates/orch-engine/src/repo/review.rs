//! Review through the front door: what waits for a person (oldest first, with its
//! cost and worker gate), one task's review in full (its diff, earlier rounds), and a
//! person's decision, applied as the core decides and journaled with who made it.

use orch_core::event::{Event, kind};
use orch_core::review::{self, Decision, Review};
use orch_core::run::{CommitId, Stage, ValidationRecord};
use orch_core::usage::Usage;
use orch_core::{Task, TaskId, TaskStatus, Timestamp};
use orch_store::EventFilter;
use serde::Serialize;

use super::Repo;
use crate::EngineError;

/// The largest diff `review_of` shows, in bytes.
pub const REVIEW_DIFF_CAP: usize = 512 * 1024;

/// Work waiting for a person.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    /// The task, in `review` (its `review` says which work, and the verdict so far).
    pub task: Task,
    /// Its review (in JSON, the task's `review`).
    #[serde(skip)]
    pub review: Review,
    /// When the work was submitted for review.
    pub since: Timestamp,
    /// What the task's agents spent, over every attempt and round.
    pub usage: Usage,
    /// The reviewed work's worker gate, command by command.
    pub gates: Vec<ValidationRecord>,
}

impl Waiting {
    /// The worker gate in a few words.
    pub fn gate_words(&self) -> String {
        let failed = self.gates.iter().filter(|g| g.exit_code != Some(0)).count();
        match (self.gates.len(), failed) {
            (0, _) => "none run (reused, or none configured)".into(),
            (n, 0) => format!("passed ({n} command{})", if n == 1 { "" } else { "s" }),
            (n, f) => format!("{f} of {n} failed"),
        }
    }

    /// Where the review stands, in a few words.
    pub fn verdict_words(&self) -> &'static str {
        match (&self.review.verdict, &self.review.note) {
            (review::Verdict::Approved, _) => "approved: lands in the next run",
            (_, Some(_)) => "waiting (rounds spent)",
            _ => "waiting",
        }
    }
}

/// One task's review in full.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewDetail {
    /// What waits.
    pub waiting: Waiting,
    /// The work's change: its base to its head (a stat, then the patch).
    pub diff: String,
    /// The review's history, oldest first: each request and decision, with who.
    pub history: Vec<Event>,
}

/// What a decision did.
#[derive(Debug, Clone, Serialize)]
pub struct Reviewed {
    /// The task after it.
    pub task: Task,
    /// In words.
    pub reason: String,
}

impl Repo {
    /// The tasks whose work waits for a person, oldest first. What it reads grows with
    /// the queue, not with the history: each task's newest request and its attempts.
    pub async fn reviews(&self) -> Result<Vec<Waiting>, EngineError> {
        let tasks = self.store.tasks(&[TaskStatus::Review]).await?;
        let mut out = Vec::new();
        for t in tasks {
            let Some(review) = t.review.as_deref().cloned() else {
                continue;
            };
            let gates = self.worker_gate(t.id, &review).await?;
            let since = self.requested_at(t.id).await?.unwrap_or(t.updated_at);
            out.push(Waiting {
                since,
                usage: self.usage_of(t.id).await?,
                task: t,
                review,
                gates,
            });
        }
        out.sort_by_key(|w| (w.since, w.task.id));
        Ok(out)
    }

    /// Task `id`'s review: what waits, its change, and its history.
    pub async fn review_of(&self, id: TaskId) -> Result<ReviewDetail, EngineError> {
        let task = self.store.task(id).await?;
        let review = match (&task.review, task.status) {
            (Some(r), TaskStatus::Review) => (**r).clone(),
            _ => {
                return Err(EngineError::Store(orch_store::StoreError::Review(
                    review::ReviewRefused::NotInReview {
                        task: id,
                        status: task.status,
                    },
                )));
            }
        };
        let history = self.history(id).await?;
        let since = history
            .iter()
            .rev()
            .find(|e| e.kind == kind::REVIEW_REQUESTED)
            .map_or(task.updated_at, |e| e.at);
        let usage = self.usage_of(id).await?;
        let gates = self.worker_gate(id, &review).await?;
        let (base, head) = (review.work.base.clone(), review.work.head.clone());
        let root = self.root().to_owned();
        let diff = tokio::task::spawn_blocking(move || {
            orch_git::Git::open(&root)?.diff(&base, &head, REVIEW_DIFF_CAP)
        })
        .await
        .expect("reading a diff does not panic")?;
        Ok(ReviewDetail {
            waiting: Waiting {
                usage,
                task,
                review,
                since,
                gates,
            },
            diff,
            history,
        })
    }

    /// A person's decision on task `id`'s work in review, journaled as `actor`'s. A
    /// request for changes quotes each comment's line, as the reviewed head has it,
    /// in the next round's prompt.
    pub async fn review(
        &self,
        actor: &str,
        id: TaskId,
        decision: Decision,
    ) -> Result<Reviewed, EngineError> {
        let task = self.store.task(id).await?;
        let feedback = match (&decision, &task.review) {
            (Decision::Changes { text, comments }, Some(r)) => {
                let (root, head, cs) = (
                    self.root().to_owned(),
                    r.work.head.clone(),
                    comments.clone(),
                );
                let lines = tokio::task::spawn_blocking(move || quoted(&root, &head, &cs))
                    .await
                    .expect("reading lines does not panic");
                review::feedback(r.round, text, comments, &lines)
            }
            _ => String::new(),
        };
        let max_rounds = self.config().review.max_rounds;
        let superseded = task.review.as_ref().map(|r| r.work.branch.clone());
        let (task, decided) = self
            .store
            .review_task(id, &decision, feedback, max_rounds, actor)
            .await?;
        // A new round starts from the line as it is: the reviewed branch is done with.
        if let (Some(branch), Some(r)) = (superseded, task.review.as_ref())
            && r.feedback().is_some()
        {
            let root = self.root().to_owned();
            let _ = tokio::task::spawn_blocking(move || {
                orch_git::Git::open(&root).map(|g| g.delete_branch(&branch, true))
            })
            .await;
        }
        Ok(Reviewed {
            task,
            reason: decided.reason,
        })
    }

    /// The `review.*` events of task `id`, oldest first.
    pub async fn history(&self, id: TaskId) -> Result<Vec<Event>, EngineError> {
        let filter = EventFilter {
            task: Some(id),
            kind: Some("review.".into()),
            ..EventFilter::default()
        };
        Ok(self.store.events(&filter).await?)
    }

    /// When task `id`'s work was last submitted for review.
    async fn requested_at(&self, id: TaskId) -> Result<Option<Timestamp>, EngineError> {
        let filter = EventFilter {
            task: Some(id),
            kind: Some(kind::REVIEW_REQUESTED.into()),
            last: Some(1),
            ..EventFilter::default()
        };
        let events = self.store.events(&filter).await?;
        Ok(events.last().map(|e| e.at))
    }

    /// What task `id`'s agents spent, over every attempt and round.
    async fn usage_of(&self, id: TaskId) -> Result<Usage, EngineError> {
        let mut total = Usage::default();
        for (_, a) in self.store.task_attempts(id).await? {
            if let Some(u) = &a.usage {
                total.add(u);
            }
        }
        total.session_id = None;
        Ok(total)
    }

    /// The worker gate the reviewed work passed, command by command.
    async fn worker_gate(
        &self,
        task: TaskId,
        r: &Review,
    ) -> Result<Vec<ValidationRecord>, EngineError> {
        let rows = self.store.validations(&r.work.run).await?;
        let attempt = orch_core::run::AttemptId {
            task,
            number: r.work.attempt,
        };
        Ok(rows
            .into_iter()
            .filter(|v| v.attempt == attempt && v.stage == Stage::Worker.as_str())
            .map(|v| v.record)
            .collect())
    }
}

/// Each comment's line at `head`, as the next round's prompt quotes it.
fn quoted(
    root: &std::path::Path,
    head: &CommitId,
    comments: &[review::Comment],
) -> Vec<Option<String>> {
    let git = orch_git::Git::open(root).ok();
    comments
        .iter()
        .map(|c| git.as_ref()?.line_at(head, &c.path, c.line))
        .collect()
}
