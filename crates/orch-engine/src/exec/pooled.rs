//! The run's side of the worktree pool (`worktrees.reuse`): an attempt's worktree
//! leased from the store (written ahead), then switched onto the attempt's branch and
//! scrubbed, or made when new; `worktrees.include` copied in; `worktrees.setup` run
//! once per worktree; and given back when the attempt is cleaned up. A worktree that
//! cannot be made clean is retired and a new one made. Which worktree, and which to
//! retire, is the core's `orch_core::pool` policy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orch_core::pool::{CacheRules, Holder, PoolKind, PoolLimits};
use orch_core::run::{AttemptId, CommitId};
use orch_store::PoolLease;
use orch_validate::{CommandSpec, Program};

use super::{Ctx, blocking};
use crate::crash_point;
use crate::ports::GitPort;

/// A pooled worktree a run holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pooled {
    /// Its slot (`ORCH_SLOT`).
    pub(crate) slot: u32,
    /// Its directory.
    pub(crate) path: PathBuf,
    /// Made for this lease: it starts with a copy of the pool's caches.
    pub(crate) fresh: bool,
}

impl Ctx {
    /// Whether this run's worktrees come from the pool.
    /// Whether worktrees come from the pool (the one under this run's worktree root:
    /// each machine, clone and worker has its own).
    pub(crate) fn pooled(&self) -> bool {
        self.cfg.config.worktrees.reuse
    }

    pub(crate) fn pool_limits(&self) -> PoolLimits {
        PoolLimits::from_config(&self.cfg.config)
    }

    fn holder(&self, name: String) -> Holder {
        Holder {
            run: self.run.0.clone(),
            holder: name,
        }
    }

    /// The pooled worktree `attempt` holds, if any.
    pub(crate) fn held(&self, attempt: AttemptId) -> Option<Pooled> {
        self.slots
            .lock()
            .expect("never poisoned")
            .get(&attempt.to_string())
            .cloned()
    }

    fn hold(&self, name: String, lease: &PoolLease) {
        self.slots.lock().expect("never poisoned").insert(
            name,
            Pooled {
                slot: lease.slot,
                path: lease.path.clone(),
                fresh: lease.fresh,
            },
        );
    }

    /// The pooled worktrees this run holds in this machine's pool, as the store says,
    /// with their holders (a worker elsewhere holds the run's attempts' in its own).
    async fn leases(&self) -> Vec<(orch_core::pool::PoolSlot, Holder)> {
        let slots = self.journal.pool_slots().await.unwrap_or_default();
        let root = &self.cfg.worktree_root;
        slots
            .into_iter()
            .filter(|s| orch_core::pool::is_under(s, root))
            .filter_map(|s| match &s.state {
                orch_core::pool::SlotState::Leased(h) if h.run == self.run.0 => {
                    let h = h.clone();
                    Some((s, h))
                }
                _ => None,
            })
            .collect()
    }

    /// Takes up the worktrees this run held when it stopped (a resume): its
    /// attempts' are theirs again, its integration checkouts go back (no gate is out).
    pub(crate) async fn adopt_pool(&self) {
        if !self.pooled() {
            return;
        }
        for (s, h) in self.leases().await {
            match s.kind {
                PoolKind::Attempt => {
                    let p = Pooled {
                        slot: s.slot,
                        path: s.path,
                        fresh: false,
                    };
                    self.slots
                        .lock()
                        .expect("never poisoned")
                        .insert(h.holder, p);
                }
                PoolKind::Integration => {
                    let _ = self.journal.release_pool(s.slot, &h, None).await;
                }
            }
        }
    }

    /// Gives back every pooled worktree the run still holds (its end).
    pub(crate) async fn release_pool(&self) {
        if !self.pooled() {
            return;
        }
        self.slots.lock().expect("never poisoned").clear();
        for (s, h) in self.leases().await {
            let _ = self.journal.release_pool(s.slot, &h, None).await;
        }
    }
}

/// Worktrees on their way back to the pool, each numbered by the command that gives
/// it back, in command order.
#[derive(Debug, Default)]
pub(crate) struct Releasing {
    /// The next number, and those still on their way.
    state: std::sync::Mutex<(u64, BTreeSet<u64>)>,
    done: tokio::sync::Notify,
}

/// One worktree on its way back; dropped when it is back.
pub(crate) struct Release {
    ctx: Arc<Ctx>,
    number: u64,
}

impl Release {
    /// Numbers one more on its way back.
    pub(crate) fn start(ctx: &Arc<Ctx>) -> Release {
        let mut state = ctx.releasing.state.lock().expect("never poisoned");
        let number = state.0;
        state.0 += 1;
        state.1.insert(number);
        Release {
            ctx: ctx.clone(),
            number,
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let r = &self.ctx.releasing;
        r.state
            .lock()
            .expect("never poisoned")
            .1
            .remove(&self.number);
        r.done.notify_waiters();
    }
}

impl Releasing {
    /// Everything given back so far: a provision ordered now waits for these.
    pub(crate) fn ticket(&self) -> u64 {
        self.state.lock().expect("never poisoned").0
    }

    /// Waits until every worktree given back before `ticket` is back (later ones do
    /// not hold it up).
    async fn settled(&self, ticket: u64) {
        loop {
            let done = self.done.notified();
            let first = self
                .state
                .lock()
                .expect("never poisoned")
                .1
                .first()
                .copied();
            if first.is_none_or(|n| n >= ticket) {
                return;
            }
            done.await;
        }
    }
}

/// Leases a pooled worktree for `attempt` and readies it on `branch` at `base`.
pub(crate) async fn provision(
    ctx: &Arc<Ctx>,
    attempt: AttemptId,
    branch: &str,
    base: &CommitId,
    after: u64,
) -> Result<PathBuf, String> {
    let holder = ctx.holder(attempt.to_string());
    ctx.releasing.settled(after).await;
    // The git work takes a turn; the caches, includes and setup come after it.
    let turn = ctx.provision_turn().await;
    let mut lease = lease(ctx, PoolKind::Attempt, &holder).await?;
    ctx.hold(attempt.to_string(), &lease);
    crash_point("pool-leased");
    let ready = |lease: PoolLease| {
        let (git, branch, base) = (ctx.git.clone(), branch.to_owned(), base.clone());
        let rules = CacheRules::from_config(&ctx.cfg.config.worktrees);
        let submodules = ctx.cfg.config.worktrees.submodules;
        blocking(move || {
            ready_attempt(&*git, &lease, &branch, &base, &rules)?;
            if submodules {
                git.init_submodules(&lease.path)?;
            }
            Ok::<(), String>(())
        })
    };
    if let Err(e) = flatten(ready(lease.clone()).await) {
        // It could not be made clean (a locked file, a broken index): it goes, and a
        // new one is made in its place.
        tracing::warn!(slot = lease.slot, error = %e, "retiring a pooled worktree");
        retire(ctx, Some((lease.slot, &holder)), Some(branch)).await;
        lease = self::lease(ctx, PoolKind::Attempt, &holder).await?;
        ctx.hold(attempt.to_string(), &lease);
        flatten(ready(lease.clone()).await)?;
    }
    drop(turn);
    if lease.fresh {
        super::warm::warm(ctx, lease.slot, &lease.path).await;
    }
    include(ctx, &lease.path).await?;
    if !lease.set_up {
        setup(ctx, attempt, &lease).await?;
    }
    Ok(lease.path)
}

async fn lease(ctx: &Ctx, kind: PoolKind, holder: &Holder) -> Result<PoolLease, String> {
    let limits = ctx.pool_limits();
    ctx.journal
        .lease_pool(kind, holder, &limits, &ctx.cfg.worktree_root)
        .await
        .map_err(|e| e.to_string())
}

fn flatten(r: Result<Result<(), String>, String>) -> Result<(), String> {
    r.and_then(|r| r)
}

/// A new worktree is made (anything half-made at its path removed first); a reused
/// one is switched and scrubbed.
fn ready_attempt(
    git: &dyn GitPort,
    lease: &PoolLease,
    branch: &str,
    base: &CommitId,
    rules: &CacheRules,
) -> Result<(), String> {
    if lease.fresh || !lease.path.join(".git").is_file() {
        remove_dir(git, &lease.path);
        Ok(git.add_worktree(branch, base, &lease.path)?)
    } else {
        Ok(git.switch_worktree(&lease.path, branch, base, rules)?)
    }
}

fn remove_dir(git: &dyn GitPort, path: &Path) {
    if path.exists() {
        let _ = git.remove_worktree(path, true);
        let _ = std::fs::remove_dir_all(path);
    }
}

/// `worktrees.include`: the ignored files they match in the user's checkout, copied
/// (never linked: an agent's edit must not reach the user's file).
async fn include(ctx: &Ctx, dest: &Path) -> Result<(), String> {
    let globs = ctx.cfg.config.worktrees.include.clone();
    if globs.is_empty() {
        return Ok(());
    }
    let (git, dest) = (ctx.git.clone(), dest.to_path_buf());
    flatten(
        blocking(move || {
            let from = git.workdir();
            for rel in git.ignored_files(&globs)? {
                let to = dest.join(&rel);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("worktrees.include: {}: {e}", parent.display()))?;
                }
                std::fs::copy(from.join(&rel), &to)
                    .map_err(|e| format!("worktrees.include: copying {}: {e}", rel.display()))?;
            }
            Ok(())
        })
        .await,
    )
}

/// `worktrees.setup`, once per worktree: each command in order in the worktree, with
/// the attempt's environment, its log `setup-<n>.log` among the attempt's artifacts.
/// A failure is orch's (infrastructure), and the next taker runs setup again.
async fn setup(ctx: &Arc<Ctx>, attempt: AttemptId, lease: &PoolLease) -> Result<(), String> {
    let commands = ctx.cfg.config.worktrees.setup.clone();
    let dir = ctx.log_dir(attempt);
    for (i, line) in commands.iter().enumerate() {
        let spec = CommandSpec {
            program: Program::Shell(line.clone()),
            cwd: lease.path.clone(),
            env: ctx.env(
                attempt,
                &lease.path,
                &dir.join("prompt.md"),
                &CommitId(String::new()),
            ),
            timeout: ctx.cfg.config.validate.timeout.0,
            kill_grace: Duration::from_secs(5),
            log_path: dir.join(format!("setup-{}.log", i + 1)),
            log_cap: ctx.cfg.config.artifacts.log_cap.0,
            stdin: None,
            capture_stdout: None,
            hard_kill: None,
            log_frame: true,
        };
        let term = orch_validate::CancellationToken::new();
        let report = ctx
            .procs
            .run(&spec, &term, None)
            .await
            .map_err(|e| format!("worktrees.setup `{line}` could not run: {e}"))?;
        if !report.outcome.success() {
            return Err(format!(
                "worktrees.setup `{line}` failed ({}); its log: {}",
                report.outcome,
                report.log_path.display()
            ));
        }
    }
    ctx.journal
        .pool_set_up(lease.slot)
        .await
        .map_err(|e| e.to_string())
}

/// Gives `attempt`'s worktree back: detached (its branch then free to delete, which
/// happens when `delete_branch`), measured when `worktrees.max_bytes` is set, and
/// released; then idle worktrees past the pool's limits are retired.
pub(crate) async fn release(
    ctx: &Arc<Ctx>,
    attempt: AttemptId,
    delete_branch: bool,
) -> Vec<String> {
    let name = attempt.to_string();
    let Some(p) = ctx.slots.lock().expect("never poisoned").remove(&name) else {
        return Vec::new();
    };
    let holder = ctx.holder(name);
    let measure = ctx.pool_limits().max_bytes > 0;
    let (git, path, branch) = (ctx.git.clone(), p.path.clone(), attempt.branch(&ctx.run));
    let (detached, mut errors, bytes) = blocking(move || {
        let detached = git.detach_worktree(&path);
        let mut errors = Vec::new();
        if delete_branch
            && detached.is_ok()
            && let Err(e) = git.delete_branch(&branch, true)
        {
            errors.push(String::from(e));
        }
        let bytes = measure.then(|| dir_bytes(&path));
        (detached.is_ok(), errors, bytes)
    })
    .await
    .unwrap_or_else(|e| (false, vec![e], None));
    if !detached {
        // Not a usable worktree any more: it goes instead of waiting in the pool.
        let branch = delete_branch.then(|| attempt.branch(&ctx.run));
        retire(ctx, Some((p.slot, &holder)), branch.as_deref()).await;
        return errors;
    }
    if let Err(e) = ctx.journal.release_pool(p.slot, &holder, bytes).await {
        errors.push(e.to_string());
    }
    retire(ctx, None, None).await;
    errors
}

/// An integration gate's checkout, leased from the pool for one gate run.
pub(crate) async fn lease_integration(
    ctx: &Arc<Ctx>,
    attempt: AttemptId,
) -> Result<Pooled, String> {
    let name = format!("integration:{attempt}");
    let lease = lease(ctx, PoolKind::Integration, &ctx.holder(name.clone())).await?;
    if lease.fresh {
        remove_dir(&*ctx.git, &lease.path);
    }
    Ok(Pooled {
        slot: lease.slot,
        path: lease.path,
        fresh: lease.fresh,
    })
}

/// Gives an integration checkout back; a `broken` one (its checkout failed) is retired.
pub(crate) async fn release_integration(
    ctx: &Arc<Ctx>,
    attempt: AttemptId,
    p: &Pooled,
    broken: bool,
) {
    let holder = ctx.holder(format!("integration:{attempt}"));
    if broken {
        retire(ctx, Some((p.slot, &holder)), None).await;
        return;
    }
    let measure = ctx.pool_limits().max_bytes > 0;
    let path = p.path.clone();
    let bytes = match measure {
        true => blocking(move || dir_bytes(&path)).await.ok(),
        false => None,
    };
    let _ = ctx.journal.release_pool(p.slot, &holder, bytes).await;
    retire(ctx, None, None).await;
}

/// Retires what the pool's policy says (and `also`), removes each from disk, with
/// `branch` deleted after the worktree, and forgets it.
async fn retire(ctx: &Ctx, also: Option<(u32, &Holder)>, branch: Option<&str>) {
    let limits = ctx.pool_limits();
    let gone = match ctx
        .journal
        .retire_pool(&limits, also, &ctx.cfg.worktree_root)
        .await
    {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "the pool could not be trimmed");
            return;
        }
    };
    for s in gone {
        let (git, path, b) = (ctx.git.clone(), s.path.clone(), branch.map(str::to_owned));
        let removed = blocking(move || {
            remove_dir(&*git, &path);
            if let Some(b) = b {
                let _ = git.delete_branch(&b, true);
            }
            !path.exists()
        })
        .await;
        // One that will not go (an immutable file) stays retired, never handed out,
        // for `orch cleanup` to try again.
        if removed == Ok(true) {
            let _ = ctx.journal.forget_pool(s.slot).await;
        }
    }
}

/// Bytes on disk under `path` (files and links, not followed).
pub fn dir_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}
