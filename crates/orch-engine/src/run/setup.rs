//! Getting a run ready, for every frontend alike: which agent command a configuration
//! means (its own, or its preset's), that there is one, where worktrees go, which run
//! to start or resume (never a new one beside an interrupted run unless asked), and a
//! fresh run id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_core::TaskId;
use orch_core::TaskStatus;
use orch_core::config::{Config, Preset};
use orch_core::run::{CommitId, RunId, RunSnapshot};
use orch_git::Git;
use orch_store::Store;

use crate::agents::presets;
use crate::line::layout;
use crate::{Engine, EngineConfig, EngineError, interrupted_runs, now};

/// The agent command a configuration runs: `agent.command`, else its preset's.
pub fn agent_command(config: &Config) -> Option<String> {
    let own = config.agent.command.trim();
    if !own.is_empty() {
        return Some(own.to_owned());
    }
    presets::template(config.agent.preset).map(str::to_owned)
}

/// The preset `agent_command` is, if it is one (not a custom command).
pub fn preset_of(config: &Config, agent_command: &str) -> Option<&'static presets::PresetSpec> {
    presets::spec(config.agent.preset).filter(|p| p.command == agent_command.trim())
}

/// The variables an agent may see: `agent.env_allow`, `agent.env_extra`, and what
/// its preset's CLI reads.
pub fn agent_env_allow(config: &Config, agent_command: &str) -> Vec<String> {
    match preset_of(config, agent_command) {
        Some(p) => preset_env_allow(config, p),
        None => {
            let a = &config.agent;
            a.env_allow.iter().chain(&a.env_extra).cloned().collect()
        }
    }
}

/// The variables `spec`'s CLI may see under `config`, whichever agent `config` runs:
/// `agent.env_allow`, `agent.env_extra`, and what the CLI reads.
pub fn preset_env_allow(config: &Config, spec: &presets::PresetSpec) -> Vec<String> {
    let a = &config.agent;
    let own = spec.env.iter().map(|s| (*s).to_owned());
    a.env_allow
        .iter()
        .chain(&a.env_extra)
        .cloned()
        .chain(own)
        .collect()
}

/// The preflight of a run's agent, when it is a preset: `None` for a custom command.
/// A preset that passes is warmed up (`PresetSpec::warm_up`).
pub fn agent_preflight(cfg: &EngineConfig) -> Option<crate::agents::AgentCheck> {
    let spec = preset_of(&cfg.config, &cfg.agent_command)?;
    let mut check = check_preset(&cfg.config, spec);
    if check.ok() {
        let env = orch_validate::Environment::inherit(&preset_env_allow(&cfg.config, spec), vec![]);
        if let Err(e) = crate::agents::warm_up(spec, &env) {
            check.problems.push(e);
        }
    }
    Some(check)
}

/// Checks a custom agent command as `config` would run it (its program can be found).
pub fn check_command(config: &Config, command: &str) -> crate::agents::AgentCheck {
    let env = orch_validate::Environment::inherit(&agent_env_allow(config, command), vec![]);
    crate::agents::check_command(command, &env)
}

/// Checks `spec` as `config` would run it: with the environment its agent would see.
pub(crate) fn check_preset(
    config: &Config,
    spec: &presets::PresetSpec,
) -> crate::agents::AgentCheck {
    let env = orch_validate::Environment::inherit(&preset_env_allow(config, spec), vec![]);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    crate::agents::check(spec, &env, home.as_deref())
}

/// The preflight of `orch agents check`: `command` when given, else `preset`, else
/// the configured preset, else every preset; each as `config` would run it.
pub fn check_agents(
    config: &Config,
    preset: Option<Preset>,
    command: Option<&str>,
) -> Vec<crate::agents::AgentCheck> {
    let configured = (config.agent.preset != Preset::None).then_some(config.agent.preset);
    match (command, preset.or(configured)) {
        (Some(cmd), _) => vec![check_command(config, cmd)],
        (None, Some(p)) => presets::spec(p)
            .into_iter()
            .map(|s| check_preset(config, s))
            .collect(),
        (None, None) => presets::ALL
            .iter()
            .map(|s| check_preset(config, s))
            .collect(),
    }
}

/// The engine settings of a run on `repo_root`. A new run needs an agent; a resumed
/// one runs the command it was started with.
pub fn engine_config(
    repo_root: &Path,
    artifacts_root: PathBuf,
    mut config: Config,
    only_tasks: Vec<TaskId>,
    resuming: bool,
) -> Result<EngineConfig, EngineError> {
    let agent = agent_command(&config);
    if agent.is_none() && !resuming {
        return Err(EngineError::Config(
            "no agent to run: set agent.preset (claude, codex, gemini, aider or opencode) or \
             agent.command in orch.toml, or pass --agent-cmd CMD (a command run with sh -c that \
             may use {prompt_file}, {worktree}, {task_id} and {attempt})"
                .into(),
        ));
    }
    let agent_command = agent.unwrap_or_default();
    config.agent.command = agent_command.clone();
    let worktree_root = match config.worktrees.root.trim() {
        "" => orch_git::default_worktree_root(repo_root).ok_or_else(|| {
            EngineError::Config(
                "cannot find a data directory for worktrees: set HOME or XDG_DATA_HOME, or worktrees.root".into(),
            )
        })?,
        r => repo_root.join(r),
    };
    if inside(&worktree_root, repo_root) {
        return Err(EngineError::Config(format!(
            "worktrees.root {} is inside the repository {}: worktrees there would show up in your checkout and confuse tools that search parent directories; choose a directory outside it, or leave worktrees.root empty for the default",
            worktree_root.display(),
            repo_root.display()
        )));
    }
    Ok(EngineConfig {
        config,
        worktree_root,
        artifacts_root,
        agent_command,
        only_tasks,
        fetch_timeout: Duration::from_secs(30),
    })
}

/// True when `path` is `dir` or below it, comparing their real locations (symlinks
/// resolved, as far as `path` exists).
fn inside(path: &Path, dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name().map(|n| n.to_owned()) else {
            break;
        };
        rest.push(name);
        if !existing.pop() {
            break;
        }
    }
    let mut real = existing.canonicalize().unwrap_or(existing);
    for n in rest.into_iter().rev() {
        real.push(n);
    }
    real.starts_with(&dir)
}

/// What a frontend asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new run; `beside_interrupted` starts it even if another run was interrupted.
    New {
        /// `--new`.
        beside_interrupted: bool,
    },
    /// Resume this run, or the newest interrupted one.
    Resume(Option<RunId>),
}

/// Which run to drive, and whether it is a resume.
pub async fn choose_run(store: &Store, target: &Target) -> Result<(RunId, bool), EngineError> {
    match target {
        Target::New { beside_interrupted } => {
            let runs = store.runs().await?;
            let stuck = interrupted_runs(store, &runs).await?;
            if let Some(r) = runs
                .iter()
                .find(|r| stuck.contains(&r.id))
                .filter(|_| !beside_interrupted)
            {
                let held = RunSnapshot::from_events(&store.run_events(&r.id).await?)
                    .tasks
                    .values()
                    .filter(|s| **s == TaskStatus::InProgress)
                    .count();
                return Err(EngineError::Config(format!(
                    "run {} was interrupted (its orch stopped while it was {}; it holds {held} task(s)); \
                     resume it with `orch run --resume` (or `orch run resume {}`), \
                     or start another run beside it with `orch run --new`",
                    r.id,
                    format!("{:?}", r.state).to_lowercase(),
                    r.id
                )));
            }
            Ok((new_run_id(store).await?, false))
        }
        Target::Resume(Some(id)) => Ok((store.run(id).await?.id, true)),
        Target::Resume(None) => {
            let runs = store.runs().await?;
            let stuck = interrupted_runs(store, &runs).await?;
            let first = runs.into_iter().find(|r| stuck.contains(&r.id)).ok_or_else(|| {
                EngineError::Config(
                    "no interrupted run to resume: every run has finished or is being driven; `orch run list` shows them".into(),
                )
            })?;
            Ok((first.id, true))
        }
    }
}

/// A run id from the clock and a random tag, e.g. `r20261124-125320-3fa9`: two runs
/// started in the same second, on one machine or several, do not collide; it is also
/// made unique against the store.
pub async fn new_run_id(store: &Store) -> Result<RunId, EngineError> {
    use std::hash::{BuildHasher, Hasher};
    // 2026-11-24T12:53:20.123Z -> 20261124-125320
    let digits: String = now()
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    // A randomly seeded hasher, fed the pid and the clock: random enough for a tag.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_i64(now().0);
    let tag = h.finish() & 0xffff;
    let base = format!("r{}-{}-{tag:04x}", &digits[..8], &digits[8..14]);
    let taken: Vec<String> = store.runs().await?.into_iter().map(|r| r.id.0).collect();
    let mut id = base.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    Ok(RunId(id))
}

/// A run's integration branch as git has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineHead {
    /// The branch.
    pub branch: String,
    /// Where it points; `None` if it is gone.
    pub head: Option<CommitId>,
    /// It holds the run's validated head: at it while the run is live, at it or past
    /// it (later runs built on it) once the run has finished.
    pub holds_validated: bool,
}

/// Where `info`'s integration branch really points, read from git, and whether it
/// still holds `validated`, the head the run's journal says it left.
pub fn integration_head(
    repo_root: &Path,
    info: &orch_store::RunInfo,
    validated: Option<&CommitId>,
) -> Result<LineHead, EngineError> {
    let stored = crate::StoredRun::from_json(&info.id.0, &info.config)?;
    let cfg = &stored.config.run;
    let git = Git::open(repo_root)?;
    let head = git.ref_target(&layout::integration_ref(cfg, &info.id))?;
    let holds_validated = match (&head, validated) {
        (_, None) | (None, _) => true,
        (Some(h), Some(v)) if h == v => true,
        (Some(h), Some(v)) => info.state.is_terminal() && git.is_ancestor(v, h),
    };
    Ok(LineHead {
        branch: layout::integration_branch(cfg, &info.id),
        head,
        holds_validated,
    })
}

impl Engine {
    /// An engine on the repository at `repo_root`.
    pub fn open(store: Store, repo_root: &Path, cfg: EngineConfig) -> Result<Engine, EngineError> {
        Ok(Engine::new(store, Git::open(repo_root)?, cfg))
    }
}
