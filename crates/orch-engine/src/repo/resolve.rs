//! Conflicts a person resolves (`policy.on_conflict = "ask"`), through the front
//! door: a worktree at the integration head with the attempt's work merged in and the
//! markers in place; the resolution committed as the person and left on the task as
//! approved work the next claim lands through the integration gate; the worktree put
//! back as it was; or the conflict handed to the task's agent. Each step is journaled
//! with who took it, and `--continue` goes on after a crash from where it stopped.

use std::path::PathBuf;

use orch_core::event::kind;
use orch_core::review::{self, ResolveRefused, ReviewWork};
use orch_core::run::{CommitId, FailureKind, RunId};
use orch_core::{Task, TaskId, TaskStatus};
use orch_git::Git;
use orch_store::{AttemptRow, StoreError};
use serde::Serialize;
use serde_json::json;

use super::Repo;
use crate::EngineError;

/// A resolution under way.
#[derive(Debug, Clone, Serialize)]
pub struct Resolving {
    /// The task.
    pub task: TaskId,
    /// The worktree to resolve it in.
    pub path: PathBuf,
    /// The paths git could not merge (their markers in place).
    pub paths: Vec<String>,
    /// It was under way already (prepared before, and not finished).
    pub resumed: bool,
}

/// A conflict resolved by hand and committed.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    /// The task, back in the backlog with its resolution approved.
    pub task: Task,
    /// The resolution's merge commit.
    pub commit: CommitId,
}

/// The conflict a blocked task's last attempt ended in.
struct Conflicted {
    task: Task,
    run: RunId,
    attempt: AttemptRow,
    head: CommitId,
    paths: Vec<String>,
}

fn refused(e: ResolveRefused) -> EngineError {
    EngineError::Store(StoreError::Resolve(e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, orch_git::GitError> + Send + 'static,
) -> Result<T, EngineError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .expect("git work does not panic")?)
}

impl Repo {
    /// Where task `id`'s resolution is worked on, and its branch.
    fn resolution(&self, id: TaskId) -> Result<(PathBuf, String), EngineError> {
        let root = self
            .engine(Vec::new(), true)?
            .config()
            .worktree_root
            .clone();
        Ok((
            root.join("resolve").join(format!("task-{id}")),
            format!("orch/resolve/task-{id}"),
        ))
    }

    /// Task `id`, blocked with its last attempt's conflict.
    async fn conflicted(&self, id: TaskId) -> Result<Conflicted, EngineError> {
        let task = self.store.task(id).await?;
        review::check_blocked(id, task.status).map_err(refused)?;
        let attempts = self.store.task_attempts(id).await?;
        let Some((run, attempt)) = attempts.into_iter().next_back() else {
            return Err(refused(ResolveRefused::NoConflict(id)));
        };
        let failure = attempt
            .failure
            .clone()
            .and_then(|f| serde_json::from_value::<FailureKind>(f).ok());
        match (failure, attempt.head.clone()) {
            (Some(FailureKind::Conflict { paths }), Some(head)) => Ok(Conflicted {
                task,
                run,
                attempt,
                head: CommitId(head),
                paths,
            }),
            _ => Err(refused(ResolveRefused::NoConflict(id))),
        }
    }

    /// The integration line's head now.
    fn line_head(&self, git: &Git) -> Result<CommitId, EngineError> {
        let branch = self.config().run.line_branch("");
        git.ref_target(&format!("refs/heads/{branch}"))?
            .ok_or_else(|| {
                EngineError::Config(format!("the integration line {branch} does not exist"))
            })
    }

    /// Prepares task `id`'s resolution: a worktree at the integration head with its
    /// conflicting work merged in and git's markers in place (or the one already under
    /// way), journaled as `actor`'s.
    pub async fn resolve_start(&self, actor: &str, id: TaskId) -> Result<Resolving, EngineError> {
        let c = self.conflicted(id).await?;
        let (path, branch) = self.resolution(id)?;
        let git = Git::open(self.root())?;
        if path.exists() {
            let p = path.clone();
            let paths = blocking(move || git.unmerged(&p)).await?;
            return Ok(Resolving {
                task: id,
                path,
                paths,
                resumed: true,
            });
        }
        let onto = self.line_head(&git)?;
        let (p, head, o) = (path.clone(), c.head.clone(), onto.clone());
        let paths = blocking(move || git.prepare_resolution(&branch, &o, &head, &p)).await?;
        let reason = format!(
            "resolving the conflict of task-{id}-{} by hand in {}",
            c.attempt.attempt.number,
            path.display()
        );
        let payload = json!({"paths": paths, "onto": onto, "head": c.head, "worktree": path});
        self.store
            .note_task(id, (kind::RESOLVE_STARTED, reason, payload), actor)
            .await?;
        Ok(Resolving {
            task: id,
            path,
            paths,
            resumed: false,
        })
    }

    /// Finishes task `id`'s resolution: refused while markers are left; else the
    /// merge is committed as the person, and the task goes back to the backlog with
    /// it approved (the next claim lands it through the integration gate). After a
    /// crash it goes on from where it stopped.
    pub async fn resolve_continue(&self, actor: &str, id: TaskId) -> Result<Resolved, EngineError> {
        let (path, branch) = self.resolution(id)?;
        let task = self.store.task(id).await?;
        // Continued already (a crash came after): the task holds the resolution.
        if let Some(r) = task
            .review
            .as_ref()
            .filter(|r| r.work.branch == branch && r.approved())
        {
            let commit = r.work.head.clone();
            self.remove_resolution(&path, None).await;
            return Ok(Resolved { task, commit });
        }
        let c = self.conflicted(id).await?;
        if !path.exists() {
            return Err(refused(ResolveRefused::NotUnderWay(id)));
        }
        let (onto, commit) = self.commit_resolution(&c, &path, actor).await?;
        crate::crash_point("resolve-committed");
        let work = ReviewWork {
            run: c.run.clone(),
            attempt: c.attempt.attempt.number,
            branch,
            base: onto,
            head: commit.clone(),
            session: None,
        };
        let reason = format!(
            "the conflict in {} resolved by hand as {}; the next claim lands it through the integration gate",
            c.paths.join(", "),
            commit.short()
        );
        let payload = json!({"commit": commit, "paths": c.paths});
        let task = self
            .store
            .settle_conflict(
                id,
                TaskStatus::Backlog,
                &review::resolved(work, actor),
                (kind::RESOLVE_DONE, reason, payload),
                actor,
            )
            .await?;
        self.remove_resolution(&path, None).await;
        Ok(Resolved { task, commit })
    }

    /// Commits the resolution in `path` (unless a crash came after it was): the
    /// integration head it was made on, and the commit.
    async fn commit_resolution(
        &self,
        c: &Conflicted,
        path: &std::path::Path,
        actor: &str,
    ) -> Result<(CommitId, CommitId), EngineError> {
        let git = Git::open(self.root())?;
        let (p, head) = (path.to_owned(), c.head.clone());
        let at = blocking(move || Git::worktree_head(&p)).await?;
        // Committed before a crash: its parents are the line's head and the work.
        let p = path.to_owned();
        let parents = blocking(move || Git::parents(&p)).await?;
        if parents.len() == 2 && parents[1] == head {
            return Ok((parents[0].clone(), at));
        }
        let p = path.to_owned();
        let changed = blocking(move || Git::changed(&p)).await?;
        let left = Git::markers_left(path, &changed);
        if !left.is_empty() {
            return Err(refused(ResolveRefused::MarkersLeft {
                task: c.task.id,
                at: left,
            }));
        }
        let who = actor.strip_prefix("human:").unwrap_or(actor);
        let message = format!(
            "Resolve the conflict of {}: {}\n\nOrch-Task: {}\nResolved-By: {who}\n",
            c.task.key, c.task.title, c.task.key
        );
        let p = path.to_owned();
        let commit = blocking(move || git.commit_resolution(&p, &message)).await?;
        Ok((at, commit))
    }

    /// Removes task `id`'s resolution worktree, and its branch when `branch` names it.
    async fn remove_resolution(&self, path: &std::path::Path, branch: Option<String>) {
        let Ok(git) = Git::open(self.root()) else {
            return;
        };
        let p = path.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            if p.exists() {
                let _ = git.remove_worktree(&p, true);
            }
            if let Some(b) = branch {
                let _ = git.delete_branch(&b, true);
            }
        })
        .await;
    }

    /// Puts task `id`'s resolution back as it was: its worktree and branch go, and the
    /// task stays blocked.
    pub async fn resolve_abort(&self, actor: &str, id: TaskId) -> Result<(), EngineError> {
        let (path, branch) = self.resolution(id)?;
        if !path.exists() {
            return Err(refused(ResolveRefused::NotUnderWay(id)));
        }
        self.remove_resolution(&path, Some(branch)).await;
        let reason = "the resolution was put back as it was; the task stays blocked".to_owned();
        self.store
            .note_task(id, (kind::RESOLVE_ABORTED, reason, json!({})), actor)
            .await?;
        Ok(())
    }

    /// Hands task `id`'s conflict to its agent: back to the backlog, its next attempt
    /// a round that resumes the conflicting session, told the conflict with both sides.
    pub async fn resolve_by_agent(&self, actor: &str, id: TaskId) -> Result<Task, EngineError> {
        let c = self.conflicted(id).await?;
        let (path, branch) = self.resolution(id)?;
        self.remove_resolution(&path, Some(branch)).await;
        let git = Git::open(self.root())?;
        let onto = self.line_head(&git)?;
        let (head, paths) = (c.head.clone(), c.paths.clone());
        let texts = blocking(move || {
            paths
                .iter()
                .map(|p| Ok((p.clone(), git.conflict_text(&onto, &head, p)?)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let work = ReviewWork {
            run: c.run.clone(),
            attempt: c.attempt.attempt.number,
            branch: c.attempt.branch.clone(),
            base: CommitId(c.attempt.base.clone()),
            head: c.head.clone(),
            session: c.attempt.usage.as_ref().and_then(|u| u.session_id.clone()),
        };
        let reason = format!(
            "the conflict in {} handed to the task's agent: its next attempt resumes its session with both sides",
            c.paths.join(", ")
        );
        let payload = json!({"paths": c.paths});
        Ok(self
            .store
            .settle_conflict(
                id,
                TaskStatus::Backlog,
                &review::handed_to_agent(work, &texts),
                (kind::RESOLVE_AGENT, reason, payload),
                actor,
            )
            .await?)
    }
}
