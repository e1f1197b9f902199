//! The shape of `orch.toml`: every section's keys, their defaults and their value
//! types.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{BoardConfig, NotifyConfig, ReviewConfig, WorkerConfig};
pub use crate::units::{ByteSize, Delay, Duration};

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Empty: `<repo>/.orch/orch.db` (SQLite). Otherwise a `postgres://` URL.
    pub database_url: String,
    /// How runs are driven.
    pub run: RunConfig,
    /// Which agent to run and how.
    pub agent: AgentConfig,
    /// The validation gates.
    pub validate: ValidateConfig,
    /// Retry, conflict and empty-diff policy.
    pub policy: PolicyConfig,
    /// Where worktrees live and when they go.
    pub worktrees: WorktreesConfig,
    /// Log and artifact retention.
    pub artifacts: ArtifactsConfig,
    /// Spending caps.
    pub budget: BudgetConfig,
    /// Who is told when a run ends or a task fails.
    pub notify: NotifyConfig,
    /// How `orch worker` holds its jobs.
    pub worker: WorkerConfig,
    /// Which tasks a person reviews before they land.
    pub review: ReviewConfig,
    /// Where the board's tasks come from.
    pub board: BoardConfig,
}

/// `[budget]`: caps on what agents spend, as they report it. 0 means no cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Dollars a run may spend; when spent, it stops claiming.
    pub run_usd: crate::usage::Usd,
    /// Dollars one task may spend over its attempts; an attempt past it is stopped.
    pub task_usd: crate::usage::Usd,
    /// Tokens a run may use.
    pub run_tokens: u64,
    /// Tokens one task may use.
    pub task_tokens: u64,
}

/// `[run]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Most agents alive at once (at least 1).
    pub concurrency: NonZeroU32,
    /// `parallel` or `incremental`.
    pub mode: RunMode,
    /// A branch, tag, commit, or `origin/<branch>`.
    pub base: String,
    /// What to do when fetching a remote base fails.
    pub offline: Offline,
    /// `merge` or `squash`.
    pub merge_style: MergeStyle,
    /// What a run does with its validated work at the end: `leave` it on the
    /// integration line, `fast-forward` the target branch to it, `push` the line to
    /// `run.remote`, or `fast-forward+push` both.
    pub finish: Finish,
    /// `auto` (the default) chooses the integration depth and batch size that are not
    /// set; `fixed` takes 1 for each that is not.
    pub integration: IntegrationMode,
    /// How many candidates (each a batch) are validated at once, stacked on the
    /// integration head (0 or 1..=16); 0: `auto` takes `validate.integration_slots`,
    /// `fixed` 1.
    pub integration_depth: u32,
    /// Attempts merged into one candidate and validated together (0 or 1..=16); a
    /// failing batch is bisected to find the culprit. 0: `auto` sizes batches from the
    /// run's recent gate failures, `fixed` takes 1.
    pub integration_batch: u32,
    /// The integration line: a long-lived branch every run builds on and advances by
    /// compare-and-swap, or `per-run` for a fresh `orch/<run>/integration` each run.
    pub integration_branch: String,
    /// The branch `finish` fast-forwards; empty: the branch `run.base` names.
    pub target: String,
    /// The remote `finish = "push"` pushes to, and workers share branches through.
    pub remote: String,
    /// Who runs attempts: `local` (this process) or `workers` (`orch worker`s on any
    /// machine, through a PostgreSQL store and `run.remote`).
    pub executors: Executors,
    /// A fast-forward finish may also update a clean checkout of the target (as
    /// `git merge --ff-only` would); off, orch prints the command instead.
    pub update_checkout: bool,
    /// The first lines of a task's commit message (`{title}`, `{body}`, `{key}`,
    /// `{task_id}`, `{run}`, `{attempt}`); empty: the task's title. orch's trailers
    /// (`Orch-Task`, `Orch-Run`, `Orch-Attempt`, `Co-authored-by`) always follow.
    pub commit_template: String,
    /// Empty: the built-in scheduler; else a planner command.
    pub planner: String,
    /// How long a run's lease outlives its owner's last heartbeat. Another process
    /// takes a run over only after this (at once if the owner, on this host, is dead).
    pub lease_ttl: Duration,
    /// How long a busy or unreachable store is waited out (with backoff) before the
    /// run stops cleanly, resumable; agents keep running meanwhile.
    pub store_patience: Duration,
    /// When nothing is left, the run waits for more (tasks added, approved review
    /// work, a task unblocked) until it is canceled, instead of ending.
    pub watch: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            concurrency: NonZeroU32::new(4).expect("4 is not zero"),
            mode: RunMode::Parallel,
            base: "HEAD".into(),
            offline: Offline::UseCached,
            merge_style: MergeStyle::Merge,
            finish: Finish::Leave,
            integration: IntegrationMode::Auto,
            integration_depth: 0,
            integration_batch: 0,
            integration_branch: DEFAULT_INTEGRATION_BRANCH.into(),
            target: String::new(),
            remote: "origin".into(),
            executors: Executors::Local,
            update_checkout: false,
            commit_template: String::new(),
            planner: String::new(),
            lease_ttl: Duration::from_secs(30),
            store_patience: Duration::from_secs(120),
            watch: false,
        }
    }
}

/// The deepest speculative stack (`run.integration_depth`), and the largest batch.
pub const MAX_INTEGRATION_DEPTH: u32 = 16;

/// The default integration line.
pub const DEFAULT_INTEGRATION_BRANCH: &str = "orch/integration";
/// The `run.integration_branch` value for a fresh integration branch per run.
pub const PER_RUN: &str = "per-run";

impl Finish {
    /// Whether it moves the target branch.
    pub fn fast_forwards(self) -> bool {
        matches!(self, Finish::FastForward | Finish::FastForwardPush)
    }

    /// Whether it pushes.
    pub fn pushes(self) -> bool {
        matches!(self, Finish::Push | Finish::FastForwardPush)
    }
}

impl RunConfig {
    /// The integration branch of `run`: the configured line, or
    /// `orch/<run>/integration` when it is `per-run`.
    pub fn line_branch(&self, run: &str) -> String {
        match self.integration_branch.trim() {
            PER_RUN => format!("orch/{run}/integration"),
            b => b.to_owned(),
        }
    }
}

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// A named preset, or none.
    pub preset: Preset,
    /// A command template; overrides the preset.
    pub command: String,
    /// How long an agent may run.
    pub timeout: Duration,
    /// Environment variables passed through to agents: names or globs (`ANTHROPIC_*`).
    /// A preset adds the variables its CLI reads.
    pub env_allow: Vec<String>,
    /// More names or globs, added to `env_allow` without restating it.
    pub env_extra: Vec<String>,
    /// How to read the agent's output: empty for the preset's format.
    pub output: AgentOutput,
    /// A retry resumes the previous attempt's session, where the agent can.
    pub resume_session: bool,
    /// `none`, or `bwrap`: the agent runs in a bubblewrap sandbox that sees the file
    /// system read-only but for its worktree, a private /tmp and its CLI's own dirs.
    pub sandbox: Sandbox,
    /// A prompt template file; empty: the built-in template.
    pub prompt_template: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            preset: Preset::None,
            command: String::new(),
            timeout: Duration::from_secs(30 * 60),
            env_allow: ["PATH", "HOME", "LANG", "TERM", "USER"]
                .map(String::from)
                .to_vec(),
            env_extra: Vec::new(),
            output: AgentOutput::Auto,
            resume_session: true,
            sandbox: Sandbox::None,
            prompt_template: String::new(),
        }
    }
}

/// `[validate]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateConfig {
    /// Commands run in the task worktree.
    pub worker: Vec<String>,
    /// Commands run on the merge commit.
    pub integration: Vec<String>,
    /// Per-command timeout.
    pub timeout: Duration,
    /// How many times a failing integration gate is run again before its candidate
    /// counts as failed; a pass after a failure is journaled as flaky.
    pub integration_retries: u32,
    /// A tree that passed a gate (the same commands, the same named environment) is
    /// not gated again; `false` for gates that depend on more than the tree.
    pub reuse: bool,
    /// When `worker` and `integration` are the same commands, an attempt goes to the
    /// integration queue without its worker gate: the integration gate on its merge
    /// commit runs those commands on a tree holding its change, and stands in for it.
    /// Not with `run.executors = "workers"` (a worker gates on its own machine). Off by
    /// default: a change that fails alone can pass once merged (see workflow.md).
    pub integration_stands_in: bool,
    /// Integration gates this machine runs at once: `run.integration = "auto"` stacks
    /// that many candidates. 0: the machine's cores (the loaded configuration holds
    /// the number).
    pub integration_slots: u32,
    /// Gates, worker and integration together, this machine runs at once; one asked
    /// for past it waits for a slot. 0: the machine's cores (the loaded configuration
    /// holds the number).
    pub slots: u32,
    /// How far `slots` may grow while the machine's CPU idles (gates that wait on a
    /// network, a device or a timer). Not a setting: the loader sets it when `slots`
    /// is left to the machine (four times its cores); 0: `slots` stays as it is.
    #[serde(skip)]
    pub slots_ceiling: u32,
}

impl Default for ValidateConfig {
    fn default() -> Self {
        ValidateConfig {
            worker: Vec::new(),
            integration: Vec::new(),
            timeout: Duration::from_secs(20 * 60),
            integration_retries: 0,
            reuse: true,
            integration_stands_in: false,
            integration_slots: 0,
            slots: 0,
            slots_ceiling: 0,
        }
    }
}

/// `[policy]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Attempts per task (at least 1).
    pub max_attempts: NonZeroU32,
    /// Failure kinds that are retried.
    pub retry_on: Vec<FailureClass>,
    /// Delay before a retry (`0s`: at once).
    pub backoff: Delay,
    /// Retries after failures on a stale head (the integration line moved on since the
    /// attempt's base, or work in flight when it failed landed before its retry): these
    /// spend no attempt, up to this many per task.
    pub stale_retries: u32,
    /// `retry`, `block` or `halt`.
    pub on_conflict: OnConflict,
    /// `retry`, `block` or `allow`: what an attempt that undoes another task's
    /// landed work leads to.
    pub on_revert: OnRevert,
    /// `fail` or `done-if-valid`.
    pub empty_diff: EmptyDiff,
    /// After a rate limit or exhausted quota, the wait before a probe; it doubles
    /// with each failed probe, up to 16 times.
    pub quota_backoff: Delay,
    /// How long the quota breaker may stay open before the run halts.
    pub quota_max_wait: Duration,
    /// Text in a failed agent's output that means a rate limit or exhausted quota
    /// (case-insensitive), besides what the CLI's structured output says.
    pub quota_patterns: Vec<String>,
    /// `inside`: an attempt that commits a symlink whose target leaves the repository
    /// fails (agent-error, naming it); `allow`: such links land. With
    /// `agent.sandbox = "bwrap"` it is always `inside`.
    pub symlinks: Symlinks,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_attempts: NonZeroU32::new(2).expect("2 is not zero"),
            retry_on: vec![
                FailureClass::AgentError,
                FailureClass::Timeout,
                FailureClass::WorkerValidation,
                FailureClass::IntegrationValidation,
                FailureClass::Conflict,
                FailureClass::Infrastructure,
            ],
            backoff: Delay::from_secs(5),
            stale_retries: 3,
            on_conflict: OnConflict::Retry,
            on_revert: OnRevert::Retry,
            empty_diff: EmptyDiff::Fail,
            quota_backoff: Delay::from_secs(60),
            quota_max_wait: Duration::from_secs(3600),
            quota_patterns: [
                "rate_limit_error",
                "overloaded_error",
                "insufficient_quota",
                "RESOURCE_EXHAUSTED",
                "usage limit",
            ]
            .map(String::from)
            .to_vec(),
            symlinks: Symlinks::Inside,
        }
    }
}

/// `[worktrees]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorktreesConfig {
    /// Empty: `$XDG_DATA_HOME/orch/worktrees/<repo-key>`.
    pub root: String,
    /// `on-success`, `always` or `never`.
    pub cleanup: Cleanup,
    /// How long `orch cleanup` keeps the worktree and branch of a failed or canceled
    /// attempt (for a look at what went wrong) before removing them.
    pub keep_failed: Duration,
    /// Check out submodules in orch's worktrees (from the local `.git/modules` copy
    /// when there is one).
    pub submodules: bool,
    /// Reuse pooled worktrees across attempts and runs (switched, scrubbed, caches
    /// kept); off: a fresh worktree per attempt, removed after it.
    pub reuse: bool,
    /// Idle attempt worktrees the pool keeps; 0: `run.concurrency` plus
    /// `run.integration_depth`. Integration checkouts keep `run.integration_depth`.
    pub pool: u32,
    /// Most pooled worktrees alive at once, of both kinds (0: no cap).
    pub pool_max: u32,
    /// Past this size on disk the largest idle worktrees are retired (0: no cap).
    pub max_bytes: ByteSize,
    /// Ignored paths kept across attempts as caches (`.gitignore` patterns); empty:
    /// everything git ignores but `scrub`.
    pub keep: Vec<String>,
    /// Ignored paths removed before every reuse all the same (`.gitignore` patterns).
    pub scrub: Vec<String>,
    /// Ignored files copied from the user's checkout into every worktree (globs
    /// relative to the repository, like `.env` or `config/*.local`).
    pub include: Vec<String>,
    /// Commands run in a worktree when it is made (`npm ci`); their logs are the
    /// attempt's artifacts, and a failure is orch's, not the agent's.
    pub setup: Vec<String>,
    /// `ORCH_PORT` of slot 0; slot `n` gets `port_base + n * ports_per_slot`.
    pub port_base: u32,
    /// Ports each slot owns, from its `ORCH_PORT` on (at least 1).
    pub ports_per_slot: u32,
}

impl Default for WorktreesConfig {
    fn default() -> Self {
        WorktreesConfig {
            root: String::new(),
            cleanup: Cleanup::OnSuccess,
            keep_failed: Duration::from_secs(7 * 24 * 3600),
            submodules: true,
            reuse: true,
            pool: 0,
            pool_max: 0,
            max_bytes: ByteSize(0),
            keep: Vec::new(),
            scrub: Vec::new(),
            include: Vec::new(),
            setup: Vec::new(),
            port_base: 41000,
            ports_per_slot: 10,
        }
    }
}

/// `[artifacts]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    /// Runs whose artifacts are kept.
    pub keep_runs: u32,
    /// Total artifact budget.
    pub max_bytes: ByteSize,
    /// Largest single log; past it, head and tail are kept.
    pub log_cap: ByteSize,
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        ArtifactsConfig {
            keep_runs: 20,
            max_bytes: ByteSize(2 << 30),
            log_cap: ByteSize(16 << 20),
        }
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }
        impl $name {
            /// Every value, in the order of the docs.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The value as written in config files.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    format!("invalid value {s:?}: expected one of {}",
                        $name::ALL.iter().map(|v| format!("{:?}", v.as_str())).collect::<Vec<_>>().join(", "))
                })
            }
        }
    };
}

string_enum!(
    /// How a run schedules tasks.
    RunMode { /// Up to `concurrency` at once.
    Parallel = "parallel", /// One at a time, each on the last integration head.
    Incremental = "incremental" }
);
string_enum!(
    /// What to do when the remote base cannot be fetched.
    Offline { /// Use the last fetched ref, with a warning.
    UseCached = "use-cached", /// Stop with an error.
    Fail = "fail" }
);
string_enum!(
    /// How attempts are merged into the integration branch.
    MergeStyle { /// A merge commit.
    Merge = "merge", /// One squashed commit.
    Squash = "squash" }
);
string_enum!(
    /// Who shapes the integration queue.
    IntegrationMode { /// orch: depth from the gate slots, batches sized by recent failures.
    Auto = "auto", /// The configuration: depth and batch as set, 1 where not set.
    Fixed = "fixed" }
);
string_enum!(
    /// What happens to the integration branch when a run finishes.
    Finish { /// Leave it for review.
    Leave = "leave", /// Fast-forward the target branch to it, by compare-and-swap.
    FastForward = "fast-forward", /// Push the integration line to `run.remote`.
    Push = "push", /// Both: fast-forward the target, then push the line and the target.
    FastForwardPush = "fast-forward+push" }
);
string_enum!(
    /// Who runs a run's attempts.
    Executors { /// The run's own process.
    Local = "local", /// `orch worker`s, through the store's job queue.
    Workers = "workers" }
);
string_enum!(
    /// Agent presets.
    Preset { /// No preset: `agent.command` must be set to run.
    None = "", /// Claude Code.
    Claude = "claude", /// OpenAI Codex CLI.
    Codex = "codex", /// Gemini CLI.
    Gemini = "gemini", /// Aider.
    Aider = "aider", /// opencode.
    Opencode = "opencode" }
);
string_enum!(
    /// Where an agent runs.
    Sandbox { /// As orch's child, with the user's permissions.
    None = "none", /// In a bubblewrap sandbox (`bwrap` on PATH).
    Bwrap = "bwrap" }
);
string_enum!(
    /// How orch reads an agent's output.
    AgentOutput { /// The preset's format (text for a custom command).
    Auto = "", /// Plain text: nothing is parsed.
    Text = "text", /// Claude Code's `--output-format stream-json --verbose`.
    ClaudeStreamJson = "claude-stream-json", /// Codex's `exec --json`.
    CodexJson = "codex-json", /// Gemini CLI's `--output-format stream-json`.
    GeminiStreamJson = "gemini-stream-json", /// opencode's `run --format json`.
    OpencodeJson = "opencode-json" }
);
string_enum!(
    /// What a merge conflict leads to.
    OnConflict { /// A new attempt on the current integration head.
    Retry = "retry", /// The task becomes blocked.
    Block = "block", /// The task becomes blocked, its work kept for a person to resolve
    /// (`orch task resolve`).
    Ask = "ask", /// The run stops claiming and drains.
    Halt = "halt" }
);
string_enum!(
    /// What an attempt that undoes another task's landed work leads to.
    OnRevert { /// It fails, and is retried on the current head told what to keep; a
    /// retry that undoes the same work again is taken as meant, merged and flagged.
    Retry = "retry", /// The task is blocked for a person.
    Block = "block", /// It is merged, journaled and flagged (`attempt.reverts`).
    Allow = "allow" }
);
string_enum!(
    /// What an agent that changed nothing leads to.
    EmptyDiff { /// The attempt fails with `no-changes`.
    Fail = "fail", /// Done, if the gates pass on the unchanged tree.
    DoneIfValid = "done-if-valid" }
);
string_enum!(
    /// Which symlinks an attempt may commit.
    Symlinks { /// Only links whose target stays inside the repository.
    Inside = "inside", /// Any link.
    Allow = "allow" }
);
string_enum!(
    /// When worktrees are removed.
    Cleanup { /// After the attempt succeeded.
    OnSuccess = "on-success", /// After every attempt.
    Always = "always", /// Never (keep for inspection).
    Never = "never" }
);
string_enum!(
    /// Failure kinds as named in `policy.retry_on`.
    FailureClass {
    /// The agent exited non-zero.
    AgentError = "agent-error", /// The agent ran past its timeout.
    Timeout = "timeout", /// The agent changed nothing.
    NoChanges = "no-changes", /// The worker gate failed.
    WorkerValidation = "worker-validation", /// The merge conflicted.
    Conflict = "conflict", /// The integration gate failed.
    IntegrationValidation = "integration-validation", /// orch itself could not proceed.
    Infrastructure = "infrastructure", /// The task's budget was spent.
    Budget = "budget", /// A rate limit or exhausted quota.
    Quota = "quota", /// The change undoes another task's landed work.
    RevertsLandedWork = "reverts-landed-work" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, Config::default());
        assert!(text.contains("timeout = \"30m\""), "{text}");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let e = toml::from_str::<Config>("[run]\nconcurency = 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `concurency`"), "{e}");
        let e = toml::from_str::<Config>("[run]\nmode = \"serial\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected `parallel` or `incremental`"),
            "{e}"
        );
        let e = toml::from_str::<Config>("[run]\nconcurrency = 0\n").unwrap_err();
        assert!(e.to_string().contains("nonzero"), "{e}");
        let e = toml::from_str::<Config>("[agent]\ntimeout = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("units: ms, s, m, h, d"), "{e}");
        let c: Config = toml::from_str("[policy]\nretry_on = [\"timeout\"]\n").unwrap();
        assert_eq!(c.policy.retry_on, vec![FailureClass::Timeout]);
    }
}
