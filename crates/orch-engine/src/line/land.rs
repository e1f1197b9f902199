//! The integration line and landing. A run opens the line it builds on (created at the
//! base, or its head; a base that moved on is merged in and validated first), and its
//! finish lands the validated head: a compare-and-swap fast-forward of the target
//! branch that never touches a user's checkout unless asked, and pushes that never
//! overwrite. The core decides each step (`orch_core::landing`); this carries it out
//! and journals what moved (`run.landed`).

use orch_core::TaskStatus;
use orch_core::config::MergeStyle;
use orch_core::landing::{self, Checkout, Land, LineFacts, LineOpen, TargetFacts};
use orch_core::ports::MergeOutcome;
use orch_core::run::{CommitId, Journaled, RunEvent, RunId, Stage};
use orch_validate::{CancellationToken, Environment, GateSpec};

use crate::line::layout;
use crate::{Engine, EngineError, Idle, RunHandle, RunUpdate, now};

/// What landing did: what moved (or already held the work), and what did not, with
/// the reason and the command a person can run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LandOutcome {
    /// What landed: a target that holds the line now, a push.
    pub landed: Vec<String>,
    /// What did not, and why.
    pub not_landed: Vec<String>,
}

impl LandOutcome {
    /// Every note, landed first.
    pub fn notes(&self) -> impl Iterator<Item = &String> {
        self.landed.iter().chain(&self.not_landed)
    }
}

/// What `orch land` (or a run's finish) is asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LandOptions {
    /// Fast-forward the target branch.
    pub fast_forward: bool,
    /// Push the line (and a landed target) to `run.remote`.
    pub push: bool,
    /// Update a clean checkout of the target, too.
    pub update_checkout: bool,
}

impl Engine {
    /// The reason a new run would have nothing to do, if it would not.
    pub async fn idle(&self) -> Result<Option<Idle>, EngineError> {
        self.check_only_tasks().await?;
        let board = self.store.tasks(&[]).await?;
        let only = &self.cfg.only_tasks;
        let specs = board
            .iter()
            .filter(|t| only.is_empty() || only.contains(&t.id) || t.status == TaskStatus::Done)
            .map(orch_core::run::TaskSpec::from)
            .collect();
        if orch_core::run::has_claimable(specs) {
            return Ok(None);
        }
        let keys = |s: TaskStatus| {
            board
                .iter()
                .filter(|t| t.status == s && (only.is_empty() || only.contains(&t.id)))
                .map(|t| t.key.clone())
                .collect()
        };
        Ok(Some(Idle {
            failed: keys(TaskStatus::Failed),
            blocked: keys(TaskStatus::Blocked),
            waiting: keys(TaskStatus::Backlog),
            in_review: keys(TaskStatus::Review),
        }))
    }

    /// Opens `run`'s integration line on `base`; returns the head the run builds on.
    pub(crate) async fn open_line(
        &self,
        run: &RunId,
        base: &CommitId,
        handle: &RunHandle,
    ) -> Result<CommitId, EngineError> {
        self.open_line_once(run, base, handle, false).await
    }

    async fn open_line_once(
        &self,
        run: &RunId,
        base: &CommitId,
        handle: &RunHandle,
        retried: bool,
    ) -> Result<CommitId, EngineError> {
        let cfg = &self.cfg.config.run;
        let (branch, reference) = (
            layout::integration_branch(cfg, run),
            layout::integration_ref(cfg, run),
        );
        let line = self.git.ref_target(&reference)?;
        // No run builds on work nothing validated.
        if line.is_some()
            && let Some(u) = self.untrusted_line(run).await?
        {
            return Err(EngineError::Landing(u.to_string()));
        }
        let facts = LineFacts {
            base_in_line: line.as_ref().is_some_and(|l| self.git.is_ancestor(base, l)),
            line_in_base: line.as_ref().is_some_and(|l| self.git.is_ancestor(l, base)),
            line,
            base: base.clone(),
        };
        match landing::open_line(&facts) {
            LineOpen::Continue(head) => Ok(head),
            LineOpen::Create => {
                match self.git.create_branch(&branch, base) {
                    // Another run created it a moment ago: build on it as it is now.
                    Err(orch_git::GitError::BranchExists(_)) if !retried => {
                        return Box::pin(self.open_line_once(run, base, handle, true)).await;
                    }
                    r => r?,
                }
                let how = format!("created at the base ({})", cfg.base);
                self.journal_landed(run, handle, &branch, None, base, how)
                    .await?;
                Ok(base.clone())
            }
            LineOpen::FastForward { from } => {
                self.git.advance_ref(&reference, &from, base)?;
                let how = format!("moved to the base ({}), which holds all its work", cfg.base);
                self.journal_landed(run, handle, &branch, Some(&from), base, how)
                    .await?;
                Ok(base.clone())
            }
            LineOpen::MergeBase { onto } => {
                let what = format!("the base ({})", cfg.base);
                self.bring_in(run, handle, &onto, base, &what).await
            }
        }
    }

    /// Merges `other` into the line at `onto` in memory, validates the merge with the
    /// integration gate, and advances the line to it by compare-and-swap.
    async fn bring_in(
        &self,
        run: &RunId,
        handle: &RunHandle,
        onto: &CommitId,
        other: &CommitId,
        what: &str,
    ) -> Result<CommitId, EngineError> {
        let cfg = &self.cfg.config.run;
        let (branch, reference) = (
            layout::integration_branch(cfg, run),
            layout::integration_ref(cfg, run),
        );
        let message = format!("Merge {what} into {branch}\n\nOrch-Run: {run}\n");
        let (git, o, t) = (self.git.clone(), onto.clone(), other.clone());
        let pin = layout::line_candidate_ref(run);
        let merged = tokio::task::spawn_blocking(move || {
            let r = git.merge(&o, &t, MergeStyle::Merge, &message)?;
            if let MergeOutcome::Clean { commit } = &r {
                git.pin(&pin, commit)?;
            }
            Ok::<_, orch_git::GitError>(r)
        })
        .await
        .expect("merging does not panic")?;
        let commit = match merged {
            MergeOutcome::Clean { commit } => commit,
            MergeOutcome::Conflicted { conflicts } => {
                let paths: Vec<String> = conflicts.into_iter().map(|c| c.path).collect();
                return Err(EngineError::Landing(format!(
                    "{what} has moved on beside {branch}, and merging it in conflicts in {}; nothing was changed. Merge it by hand (`git switch {branch} && git merge {}`), resolve and commit, then run again",
                    paths.join(", "),
                    other.short()
                )));
            }
        };
        let validated = self.validate_line(run, &commit).await;
        // The pin stays until the landing is journaled: until then it is how another
        // run on the line tells this merge from a ref moved outside orch.
        let unpin = || self.git.unpin(&layout::line_candidate_ref(run));
        if let Err(why) = validated {
            let _ = unpin();
            return Err(EngineError::Landing(format!(
                "{what} has moved on beside {branch}; their merge {} fails the integration gate ({why}), so nothing was changed. Fix it on {branch} by hand, then run again",
                commit.short()
            )));
        }
        let advanced = self.git.advance_ref(&reference, onto, &commit);
        if let Err(e) = advanced {
            let _ = unpin();
            return Err(e.into());
        }
        let how = format!("merged {what} at {} and validated it", other.short());
        let journaled = self
            .journal_landed(run, handle, &branch, Some(onto), &commit, how)
            .await;
        let _ = unpin();
        journaled.map(|()| commit)
    }

    /// Runs the integration gate on `commit` in the run's integration worktree.
    async fn validate_line(&self, run: &RunId, commit: &CommitId) -> Result<(), String> {
        let commands = self.cfg.config.validate.integration.clone();
        if commands.is_empty() {
            return Ok(());
        }
        let cwd = layout::integration_worktree(&self.cfg.worktree_root, run);
        let (git, c, p) = (self.git.clone(), commit.clone(), cwd.clone());
        let submodules = self.cfg.config.worktrees.submodules;
        tokio::task::spawn_blocking(move || {
            crate::ports::GitWorktrees::checkout_for_gate(&*git, &p, &c, submodules)
        })
        .await
        .expect("a checkout does not panic")
        .map_err(|e| format!("could not check out {commit}: {e}"))?;
        let log_dir = self.cfg.artifacts_root.join(&run.0).join("line");
        let env = Environment::inherit(
            &self.cfg.config.agent.env_allow,
            vec![
                ("ORCH_RUN_ID".into(), run.0.clone()),
                ("ORCH_BASE_COMMIT".into(), commit.0.clone()),
            ],
        );
        let spec = GateSpec {
            stage: Stage::Integration,
            commands,
            cwd,
            env,
            timeout: self.cfg.config.validate.timeout.0,
            kill_grace: self.policy().kill_grace,
            log_dir: log_dir.clone(),
            log_cap: self.cfg.config.artifacts.log_cap.0,
            keep_going: false,
            hard_kill: None,
            lines: None,
        };
        let r = orch_validate::run_gate(&spec, &CancellationToken::new())
            .await
            .map_err(|e| e.to_string())?;
        if r.passed {
            Ok(())
        } else {
            Err(format!("{}; logs in {}", r.summary(), log_dir.display()))
        }
    }

    /// Whether the line at `real` still holds `validated`, this run's last head: at it,
    /// or past it by other runs' validated work (a shared line).
    pub(crate) async fn line_holds(
        &self,
        validated: Option<&CommitId>,
        real: Option<&CommitId>,
    ) -> bool {
        match (validated, real) {
            (v, r) if v == r => true,
            (Some(v), Some(r)) => {
                let m = crate::ports::moved_line(self.git.clone(), &self.store, v, r).await;
                orch_core::landing::moved_by_orch(m)
            }
            _ => false,
        }
    }

    /// Journals that `branch` moved, and shows it on the run's event stream.
    async fn journal_landed(
        &self,
        run: &RunId,
        handle: &RunHandle,
        branch: &str,
        from: Option<&CommitId>,
        to: &CommitId,
        how: String,
    ) -> Result<(), EngineError> {
        let j = Journaled {
            at: now(),
            event: RunEvent::Landed {
                branch: branch.to_owned(),
                from: from.cloned(),
                to: to.clone(),
                how,
            },
        };
        self.store
            .append_run_events(run, std::slice::from_ref(&j), "orchestrator")
            .await?;
        handle.publish(RunUpdate::Journal(j));
        Ok(())
    }

    /// The branch a finish fast-forwards: `run.target`, else the branch `run.base`
    /// names.
    fn target_branch(&self) -> Result<String, EngineError> {
        let cfg = &self.cfg.config.run;
        self.target_name().ok_or_else(|| {
            EngineError::Config(format!(
                "run.base {:?} names no branch to land on (a detached HEAD, a tag or a commit); set run.target to the branch work lands on",
                cfg.base
            ))
        })
    }

    /// Lands the line's validated head as `opts` ask, journaled under `run`. Returns
    /// what it did, for people (a step it may not take is a note saying what to run
    /// instead), and the line's head after it (a target merged in moves it on).
    pub async fn land(
        &self,
        run: &RunId,
        opts: LandOptions,
        handle: &RunHandle,
    ) -> Result<(LandOutcome, CommitId), EngineError> {
        let cfg = &self.cfg.config.run;
        let branch = layout::integration_branch(cfg, run);
        // A line nothing validated (an agent or a person moved it) never lands.
        if let Some(u) = self.untrusted_line(run).await? {
            return Err(EngineError::Landing(u.to_string()));
        }
        let mut line = self
            .git
            .ref_target(&layout::integration_ref(cfg, run))?
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "nothing to land: {branch} does not exist; `orch run` creates it"
                ))
            })?;
        let mut notes = LandOutcome::default();
        let mut landed_target = None;
        if opts.fast_forward {
            let target = self.target_branch()?;
            for _ in 0..3 {
                match self.land_step(run, handle, &target, &line, opts).await? {
                    Step::Again(head) => line = head,
                    Step::Done(note, holds) => {
                        match holds {
                            true => notes.landed.push(note),
                            false => notes.not_landed.push(note),
                        }
                        landed_target = holds.then(|| target.clone());
                        break;
                    }
                }
            }
        }
        if opts.push {
            let branches: Vec<String> = std::iter::once(branch.clone())
                .chain(landed_target)
                .collect();
            let remote = cfg.remote.clone();
            let (git, r, b, at) = (
                self.git.clone(),
                remote.clone(),
                branches.clone(),
                line.clone(),
            );
            tokio::task::spawn_blocking(move || git.push(&r, &b, &at))
                .await
                .expect("a push does not panic")?;
            for b in branches {
                let name = format!("{remote}/{b}");
                self.journal_landed(run, handle, &name, None, &line, "pushed".into())
                    .await?;
                notes
                    .landed
                    .push(format!("pushed {b} to {remote} at {}", line.short()));
            }
        }
        Ok((notes, line))
    }

    async fn land_step(
        &self,
        run: &RunId,
        handle: &RunHandle,
        target: &str,
        line: &CommitId,
        opts: LandOptions,
    ) -> Result<Step, EngineError> {
        let reference = format!("refs/heads/{target}");
        let head = self
            .git
            .ref_target(&reference)?
            .ok_or_else(|| EngineError::Config(format!("run.target {target}: no such branch")))?;
        let checkout = match self.git.checked_out(target)? {
            Some(c) => Some(Checkout {
                path: c.path.display().to_string(),
                clean: c.allows_fast_forward(&self.git, &head, line)?,
            }),
            None => None,
        };
        let facts = TargetFacts {
            target: target.to_owned(),
            landed: self.git.is_ancestor(line, &head),
            fast_forward: self.git.is_ancestor(&head, line),
            head: head.clone(),
            line: line.clone(),
            checkout,
            update_checkout: opts.update_checkout,
        };
        let how = format!(
            "fast-forwarded to the validated {}",
            layout::integration_branch(&self.cfg.config.run, run)
        );
        Ok(match landing::land(&facts) {
            Land::UpToDate => {
                Step::Done(format!("{target} already holds the integration line"), true)
            }
            Land::MergeTargetFirst => {
                let what = format!("the target {target}");
                Step::Again(self.bring_in(run, handle, line, &head, &what).await?)
            }
            Land::MoveRef => {
                self.git.advance_ref(&reference, &head, line)?;
                self.journal_landed(run, handle, target, Some(&head), line, how)
                    .await?;
                Step::Done(format!("{target} fast-forwarded to {}", line.short()), true)
            }
            Land::MoveRefAndCheckout => {
                let path = self
                    .git
                    .checked_out(target)?
                    .map(|c| c.path)
                    .unwrap_or_default();
                self.git.fast_forward_checkout(&path, target, &head, line)?;
                self.journal_landed(
                    run,
                    handle,
                    target,
                    Some(&head),
                    line,
                    format!("{how}, with its checkout"),
                )
                .await?;
                Step::Done(
                    format!(
                        "{target} and its checkout {} fast-forwarded to {}",
                        path.display(),
                        line.short()
                    ),
                    true,
                )
            }
            Land::Instruct { command, why } => Step::Done(format!("{why}: {command}"), false),
        })
    }
}

enum Step {
    /// The line moved (the target was merged in): decide again.
    Again(CommitId),
    /// Finished, with a note; `true` when the target holds the line.
    Done(String, bool),
}
