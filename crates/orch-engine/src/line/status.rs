//! `orch status` and `orch land` outside a run: the integration line, how far it is
//! ahead of the base and of the target, which tasks it holds (read back from the
//! `Orch-Task` trailers of its commits), whether its head is work orch put there,
//! and landing it (or putting it back) by hand.

use std::collections::HashSet;

use orch_core::landing::{self, LineTrust};
use orch_core::run::{CommitId, RunId};

use crate::line::land::{LandOptions, LandOutcome};
use crate::line::layout;
use crate::{Engine, EngineError, RunHandle};

/// How far down the line's first-parent history a validated commit is looked for.
const TRUST_WALK: usize = 200;

/// A line whose head nothing validated: what `orch status` reports and `orch land`
/// and `orch run` refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The line's branch.
    pub branch: String,
    /// Its head.
    pub head: CommitId,
    /// The newest validated commit below it, if one was found.
    pub last_validated: Option<CommitId>,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is at {}, which no orch run validated (an agent or a person moved it there); nothing lands from it and no run builds on it",
            self.branch,
            self.head.short()
        )?;
        match &self.last_validated {
            Some(v) => write!(
                f,
                "; its last validated commit is {}: `orch land --reset-line` puts the line back there (keeping {} as {})",
                v.short(),
                self.head.short(),
                undone_ref(&self.head)
            ),
            None => write!(
                f,
                "; none of its last {TRUST_WALK} commits was validated: move it yourself (`git branch -f {} <commit>`)",
                self.branch
            ),
        }
    }
}

/// Where a commit taken off the line is kept.
fn undone_ref(head: &CommitId) -> String {
    format!("refs/orch/undone/line-{}", head.0)
}

/// One branch compared with the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// The branch (or revision).
    pub name: String,
    /// Its head.
    pub head: CommitId,
    /// Commits the line has that it lacks.
    pub ahead: u64,
    /// Tasks (keys) the line holds that it lacks, newest first.
    pub tasks: Vec<String>,
}

/// The integration line, as `orch status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineStatus {
    /// The line's branch.
    pub branch: String,
    /// Its head; `None` before the first run.
    pub head: Option<CommitId>,
    /// Compared with `run.base`.
    pub base: Option<Behind>,
    /// Compared with the target branch, when one can be named.
    pub target: Option<Behind>,
    /// Set when the head is not work orch put there.
    pub untrusted: Option<Untrusted>,
}

impl Engine {
    /// The newest run, whose journal a landing by hand is recorded in.
    async fn newest_run(&self) -> Result<Option<RunId>, EngineError> {
        Ok(self.store.runs().await?.into_iter().next().map(|r| r.id))
    }

    /// Where the line stands against the base and the target.
    pub async fn status(&self) -> Result<LineStatus, EngineError> {
        let cfg = &self.cfg.config.run;
        let run = self.newest_run().await?.unwrap_or(RunId(String::new()));
        let branch = layout::integration_branch(cfg, &run);
        let head =
            match run.0.is_empty() && cfg.integration_branch.trim() == orch_core::config::PER_RUN {
                true => None,
                false => self.git.ref_target(&layout::integration_ref(cfg, &run))?,
            };
        let compare =
            |name: String, other: Option<CommitId>| -> Result<Option<Behind>, EngineError> {
                let (Some(h), Some(o)) = (&head, other) else {
                    return Ok(None);
                };
                Ok(Some(Behind {
                    ahead: self.git.count_ahead(&o, h)?,
                    tasks: self.git.tasks_between(&o, h)?,
                    name,
                    head: o,
                }))
            };
        let base = compare(cfg.base.clone(), self.git.rev_parse(&cfg.base).ok())?;
        let target = match self.target_name() {
            Some(t) => compare(t.clone(), self.git.ref_target(&format!("refs/heads/{t}"))?)?,
            None => None,
        };
        let untrusted = self.untrusted_line(&run).await?;
        Ok(LineStatus {
            branch,
            head,
            base,
            target,
            untrusted,
        })
    }

    /// The line `run` builds on, if its head is not work orch put there: a commit a
    /// run started from, advanced or landed to, or validated, or one the base holds.
    pub(crate) async fn untrusted_line(
        &self,
        run: &RunId,
    ) -> Result<Option<Untrusted>, EngineError> {
        let cfg = &self.cfg.config.run;
        let Some(head) = self.git.ref_target(&layout::integration_ref(cfg, run))? else {
            return Ok(None);
        };
        let base = self.git.rev_parse(&cfg.base).ok();
        let beyond: HashSet<CommitId> = match &base {
            Some(b) => self
                .git
                .first_parents(&head, TRUST_WALK, Some(b))?
                .into_iter()
                .collect(),
            None => HashSet::new(),
        };
        let trusted = |c: &CommitId| base.is_some() && !beyond.contains(c);
        if trusted(&head) || self.store.line_commit_known(&head).await? {
            return Ok(None);
        }
        let mut history = Vec::new();
        for c in self.git.first_parents(&head, TRUST_WALK, None)? {
            let t = trusted(&c) || self.store.line_commit_known(&c).await?;
            history.push((c, t));
            if t {
                break;
            }
        }
        Ok(match landing::trust_line(&history) {
            LineTrust::Trusted => None,
            LineTrust::Untrusted {
                head,
                last_validated,
            } => Some(Untrusted {
                branch: layout::integration_branch(cfg, run),
                head,
                last_validated,
            }),
        })
    }

    /// `orch land --reset-line`: puts a line nothing validated back on its last
    /// validated commit (compare-and-swap), keeping its head under
    /// `refs/orch/undone/`; journaled as `line.reset` by `who`. Returns what it did.
    pub async fn reset_line(&self, who: &str) -> Result<String, EngineError> {
        let run = self.newest_run().await?.unwrap_or(RunId(String::new()));
        let Some(u) = self.untrusted_line(&run).await? else {
            let branch = layout::integration_branch(&self.cfg.config.run, &run);
            return Ok(format!(
                "{branch} is on validated work; nothing to put back"
            ));
        };
        let Some(to) = u.last_validated.clone() else {
            return Err(EngineError::Landing(u.to_string()));
        };
        let kept = undone_ref(&u.head);
        self.git.pin(&kept, &u.head)?;
        let reference = layout::integration_ref(&self.cfg.config.run, &run);
        self.git.advance_ref(&reference, &u.head, &to)?;
        self.store
            .journal_line_reset(who, &u.branch, &u.head, &to, &kept)
            .await?;
        Ok(format!(
            "{} put back from {} to {}, its last validated commit; {} is kept as {kept}",
            u.branch,
            u.head.short(),
            to.short(),
            u.head.short()
        ))
    }

    pub(crate) fn target_name(&self) -> Option<String> {
        let cfg = &self.cfg.config.run;
        match cfg.target.is_empty() {
            false => Some(cfg.target.clone()),
            true => self.git.branch_of(&cfg.base),
        }
    }

    /// `orch land`: lands the line as `opts` ask, recorded in the newest run's journal.
    pub async fn land_now(&self, opts: LandOptions) -> Result<LandOutcome, EngineError> {
        let run = self.newest_run().await?.ok_or_else(|| {
            EngineError::Config(
                "nothing to land: no run has built an integration line yet; `orch run` does".into(),
            )
        })?;
        let handle = RunHandle::new();
        let notes = self.land(&run, opts, &handle).await.map(|(n, _)| n);
        let iwt = layout::integration_worktree(&self.cfg.worktree_root, &run);
        if iwt.exists() {
            let git = self.git.clone();
            let _ = tokio::task::spawn_blocking(move || git.remove_worktree(&iwt, true)).await;
        }
        notes
    }
}
