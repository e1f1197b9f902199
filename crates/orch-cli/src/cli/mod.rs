//! Command-line arguments (clap derive). Parsing only: no behaviour lives here.
//! The doc comments are the terminal's help text, not HTML: `<branch>` is a placeholder.
#![allow(rustdoc::invalid_html_tags)]

mod review;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use orch_engine::core::{TaskId, TaskStatus};
pub use review::{ResolveArgs, ReviewArgs, ReviewCommand};

/// orch: turn a Kanban board of coding tasks into merged, validated work.
#[derive(Debug, Parser)]
#[command(name = "orch", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// The repository to work on (default: the git top level of the current directory).
    #[arg(long, global = true, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// Set a config value for this command only, e.g. `-c run.concurrency=8` (repeatable).
    #[arg(short = 'c', long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print machine-readable JSON on stdout (and errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// orch's own diagnostics on stderr, apart from the progress: -v for info, -vv for
    /// debug (`RUST_LOG` takes a full filter and wins).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How diagnostics are written: `text` for people, `json` for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--agent`: a real preset (the empty "no preset" of the config is not one to ask for).
fn preset(s: &str) -> Result<orch_engine::core::config::Preset, String> {
    use orch_engine::core::config::Preset;
    let names: Vec<&str> = Preset::ALL
        .iter()
        .filter(|p| **p != Preset::None)
        .map(|p| p.as_str())
        .collect();
    Preset::ALL
        .iter()
        .copied()
        .find(|p| *p != Preset::None && p.as_str() == s)
        .ok_or_else(|| format!("invalid preset {s:?}: expected one of {}", names.join(", ")))
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object a line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up orch in a git repository: `.orch/`, `orch.toml`, and `.git/info/exclude`.
    Init {
        /// Commit the new `orch.toml` (alone) on the current branch.
        #[arg(long)]
        commit: bool,
    },
    /// Show orch at work in a throwaway repository.
    Demo(DemoArgs),
    /// Add, list, show, edit, move and remove tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Show the Kanban board, or import and export it as a file.
    Board(BoardArgs),
    /// Inspect the merged configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run agents on the board: claim, work, validate, merge, until nothing is left.
    Run(RunArgs),
    /// Remove the worktrees and branches that no live attempt uses, and report what was
    /// kept and why. Integration branches are kept for review.
    Cleanup(CleanupArgs),
    /// The worktree pool: each pooled worktree with its state (free, leased,
    /// retired), who holds it, its size on disk and the last attempt that used it.
    Pool,
    /// The dashboard: the board, the runs and the audit log in a browser, live, with
    /// controls. Prints the URL to open (it carries a random token, or
    /// `ORCH_SERVE_TOKEN` for a URL that survives restarts); Ctrl-C stops it.
    Serve(ServeArgs),
    /// Runs the attempts of runs with `run.executors = "workers"`, on this machine:
    /// claims jobs from the shared PostgreSQL store, fetches and pushes branches through
    /// `run.remote`, and posts results. Ctrl-C finishes the jobs it holds, then exits.
    Worker(WorkerArgs),
    /// The integration line: where it is, how far ahead of the base and the target,
    /// which tasks it holds, and what waits to land.
    Status,
    /// Land the integration line's validated work: fast-forward the target branch (by
    /// compare-and-swap; a target that moved on is merged in and validated first),
    /// and with --push, push the line and the target to run.remote.
    Land(LandArgs),
    /// The audit log: every change to the board and every decision of every run.
    Events(EventsArgs),
    /// Review work before it lands (`[review]` in orch.toml): list what waits, show
    /// one, approve it, ask for changes, or reject it.
    Review(ReviewArgs),
    /// An attempt's logs: the agent's output and the gates'.
    Logs(LogsArgs),
    /// Check the agent CLIs: on PATH, at which version, every flag a preset uses
    /// accepted, a credential there (by name; no value is printed).
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Print a shell completion script: `orch completions bash >
    /// ~/.local/share/bash-completion/completions/orch`, `orch completions zsh >
    /// ~/.zfunc/_orch`, `orch completions fish > ~/.config/fish/completions/orch.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The scripted agent used by `orch demo` and the tests: runs the ```sh block of
    /// the task body found in the prompt file.
    #[command(name = "scripted-agent", hide = true)]
    ScriptedAgent,
}

/// `orch agents`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Check one preset (default: the configured one, else every preset), or a custom
    /// agent command. Exits 1 when anything it checked cannot run.
    Check {
        /// claude, codex, gemini, aider or opencode.
        #[arg(value_parser = preset, conflicts_with = "command")]
        preset: Option<orch_engine::core::config::Preset>,
        /// A custom agent command (run with sh -c): is its program there?
        #[arg(long, value_name = "CMD")]
        command: Option<String>,
    },
}

/// `orch land`
#[derive(Debug, Args)]
pub struct LandArgs {
    /// Also push the line (and the landed target) to run.remote; never forced.
    #[arg(long)]
    pub push: bool,
    /// Only push; leave the target branch alone.
    #[arg(long, requires = "push")]
    pub no_fast_forward: bool,
    /// When the target is checked out, leave its files alone and print the command
    /// to run instead. Without it, a clean checkout is updated as `git merge
    /// --ff-only` would, and one with uncommitted changes is left alone.
    #[arg(long)]
    pub no_update_checkout: bool,
    /// What `orch land` does by default now: kept so scripts that pass it still run.
    #[arg(long, hide = true, conflicts_with = "no_update_checkout")]
    pub update_checkout: bool,
    /// Put an integration line that no run validated (an agent or a person moved it)
    /// back on its last validated commit, by compare-and-swap; what it was on is kept
    /// under refs/orch/undone/. Lands nothing.
    #[arg(long, conflicts_with_all = ["push", "update_checkout", "no_update_checkout", "no_fast_forward"])]
    pub reset_line: bool,
}

/// `orch serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on. Anything but a loopback address exposes the board
    /// (and its controls) to whoever can reach it and has the token.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// The port (0: any free one).
    #[arg(long, default_value_t = 7321)]
    pub port: u16,
}

/// `orch worker`
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Only jobs of tasks carrying one of these labels (comma-separated), such as
    /// `gpu` or `macos`.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// How many jobs it holds at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Exit once no job is left to claim and its own are done.
    #[arg(long)]
    pub drain: bool,
    /// Its name in the journal and `orch` output (default: host:pid).
    #[arg(long)]
    pub name: Option<String>,
}

/// `orch cleanup`
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove dirty worktrees and branches whose work is in no integration branch.
    #[arg(long)]
    pub force: bool,
    /// Only apply artifact retention (`artifacts.keep_runs`, `artifacts.max_bytes`;
    /// failed attempts' logs stay twice as long), and list what went and what stayed,
    /// with sizes.
    #[arg(long, conflicts_with_all = ["dry_run", "force"])]
    pub artifacts: bool,
    /// Also remove the worktree pool (every pooled worktree no unfinished run holds),
    /// and report the bytes freed. Without it the pool stays, caches and all.
    #[arg(long, conflicts_with = "artifacts")]
    pub pool: bool,
}

/// `orch events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this run's events.
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Only this task's events.
    #[arg(long, value_name = "ID")]
    pub task: Option<TaskId>,
    /// Only events of this kind, or of kinds that start with it (`attempt.` for every
    /// attempt event).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only events of the last DURATION (`90s`, `10m`, `2h`, `3d`).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<orch_engine::core::units::Duration>,
    /// Only the newest N of the events that match.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Keep printing new events as they are written (Ctrl-C to stop).
    #[arg(long, short)]
    pub follow: bool,
}

/// Which log of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogStage {
    /// The agent's output.
    Agent,
    /// The worker validation.
    Worker,
    /// The integration validation.
    Integration,
}

/// `orch logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task: `orch logs 3` (or `--task 3`).
    #[arg(
        value_name = "TASK",
        required_unless_present = "task_flag",
        conflicts_with = "task_flag"
    )]
    pub task_arg: Option<TaskId>,
    /// The task, as a flag.
    #[arg(long = "task", value_name = "ID", id = "task_flag")]
    pub task_flag: Option<TaskId>,
    /// The attempt (default: the latest).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Which log (default: all of them, in order).
    #[arg(long, value_enum)]
    pub stage: Option<LogStage>,
    /// The run (default: the latest run that worked on the task).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// Keep printing as the logs grow, until the run ends.
    #[arg(long, short)]
    pub follow: bool,
    /// The agent's output as it printed it (its JSON stream), not as a transcript.
    #[arg(long)]
    pub raw: bool,
}

impl LogsArgs {
    /// The task, given either way.
    pub fn task(&self) -> TaskId {
        self.task_arg
            .or(self.task_flag)
            .expect("clap requires the task one way or the other")
    }
}

/// `orch run`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunArgs {
    /// List or inspect runs instead of starting one.
    #[command(subcommand)]
    pub command: Option<RunCommand>,
    /// Most agents at once.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<std::num::NonZeroU32>,
    /// `parallel` or `incremental` (one task at a time, each on the last result).
    #[arg(long)]
    pub mode: Option<orch_engine::core::config::RunMode>,
    /// An agent preset: claude, codex, gemini, aider or opencode.
    #[arg(long, value_name = "PRESET", conflicts_with = "agent_cmd", value_parser = preset)]
    pub agent: Option<orch_engine::core::config::Preset>,
    /// The agent command template, run with `sh -c`; may use {prompt_file},
    /// {worktree}, {task_id} and {attempt}. Overrides the preset.
    #[arg(long, value_name = "CMD")]
    pub agent_cmd: Option<String>,
    /// Start from this branch, tag, commit, or origin/<branch>.
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// A worker validation command (repeatable; replaces the configured ones).
    #[arg(long = "validate", value_name = "CMD")]
    pub validate: Vec<String>,
    /// An integration validation command (repeatable; replaces the configured ones).
    #[arg(long = "integrate-validate", value_name = "CMD")]
    pub integrate_validate: Vec<String>,
    /// Attempts per task.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<std::num::NonZeroU32>,
    /// `retry`, `block`, `ask` (a person resolves it) or `halt`.
    #[arg(long)]
    pub on_conflict: Option<orch_engine::core::config::OnConflict>,
    /// Only these tasks (repeatable).
    #[arg(long = "task", value_name = "ID")]
    pub tasks: Vec<TaskId>,
    /// A planner command: gets the claimable tasks as JSON on stdin, prints proposals
    /// as JSON on stdout; the core checks every proposal.
    #[arg(long, value_name = "CMD")]
    pub planner: Option<String>,
    /// Resume the newest interrupted run (as `orch run resume`) instead of starting one.
    #[arg(long, conflicts_with = "new")]
    pub resume: bool,
    /// Stream the run's events on stdout as JSON lines (journal events, output lines,
    /// heartbeats, then the summary), for machines.
    #[arg(long)]
    pub json_events: bool,
    /// Start a new run even though an interrupted one holds tasks (they stay with it).
    #[arg(long)]
    pub new: bool,
    /// When nothing is left, wait for more (tasks added, review work approved, a task
    /// unblocked) until Ctrl-C or `orch run cancel`, instead of ending.
    #[arg(long)]
    pub watch: bool,
}

/// `orch run list|show`
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// List runs, newest first.
    List,
    /// Show a run: its state and its attempts.
    Show {
        /// The run id; the newest run when left out (or `latest`).
        run: Option<String>,
    },
    /// Cancel a run from anywhere (another terminal): it stops claiming, stops its
    /// agents, and releases its tasks to the backlog.
    Cancel {
        /// The run id.
        run: String,
    },
    /// Resume an interrupted run (its orch crashed or was killed) from its journal:
    /// leftover processes are stopped, finished work is kept, the rest is retried.
    Resume {
        /// The run id; the newest interrupted run if omitted.
        run: Option<String>,
    },
}

/// `orch demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo repository here instead of a fresh temporary directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `orch task ...`
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Add a task to the backlog and print its id.
    Add(TaskAdd),
    /// List tasks.
    List(TaskList),
    /// Show one task with its history.
    Show {
        /// The task id, e.g. 12 or #12.
        id: TaskId,
    },
    /// Change a task's fields or dependencies.
    Edit(TaskEditArgs),
    /// Move a task to another column.
    Move(TaskMove),
    /// Put a failed task back in the backlog, for a fresh attempt budget in the next run.
    Retry {
        /// The task id.
        id: TaskId,
        /// Why, for the event log.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Put a blocked task back in the backlog.
    Unblock {
        /// The task id.
        id: TaskId,
        /// Why, for the event log.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Resolve a conflict by hand (`policy.on_conflict = "ask"`): a worktree at the
    /// integration head with the task's work merged in and git's markers in place.
    Resolve(ResolveArgs),
    /// Cancel a task. If a run is working on it, only that task's attempt is stopped;
    /// the rest of the run goes on.
    Cancel {
        /// The task id.
        id: TaskId,
        /// Why, for the event log.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Remove a task from the board (its history stays in the event log).
    Rm {
        /// The task id.
        id: TaskId,
        /// Remove it even if other tasks depend on it (they are detached) or a run owns it.
        #[arg(long)]
        force: bool,
    },
}

/// A task body, given inline or from a file.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct BodyArgs {
    /// The task description handed to the agent.
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,
    /// Read the description from a file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
}

/// `orch task add`
#[derive(Debug, Args)]
pub struct TaskAdd {
    /// One-line title.
    pub title: String,
    #[command(flatten)]
    pub body: BodyArgs,
    /// Higher runs first.
    #[arg(long, short, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// A task that must be done first (repeatable).
    #[arg(long, value_name = "ID")]
    pub after: Vec<TaskId>,
    /// A label (repeatable).
    #[arg(long, value_name = "LABEL")]
    pub label: Vec<String>,
    /// A glob of paths the task expects to change, e.g. `src/parser/**` (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub touches: Vec<String>,
    /// A stable key for board files (default: task-<id>).
    #[arg(long)]
    pub key: Option<String>,
    /// A task whose landed work this one may undo (repeatable): the revert guard lets
    /// it. Written into the body as a `Reverts:` line.
    #[arg(long, value_name = "ID")]
    pub reverts: Vec<TaskId>,
}

/// `orch task list`
#[derive(Debug, Args)]
pub struct TaskList {
    /// Only tasks with this status (repeatable, or comma-separated).
    #[arg(long, short, value_delimiter = ',', value_name = "STATUS")]
    pub status: Vec<TaskStatus>,
    /// Only tasks carrying this label (repeatable, or comma-separated: all of them).
    #[arg(long, short, value_delimiter = ',', value_name = "LABEL")]
    pub label: Vec<String>,
}

/// `orch task edit`
#[derive(Debug, Args)]
pub struct TaskEditArgs {
    /// The task id.
    pub id: TaskId,
    /// New title.
    #[arg(long)]
    pub title: Option<String>,
    #[command(flatten)]
    pub body: BodyArgs,
    /// New priority.
    #[arg(long, short, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Add a dependency (repeatable).
    #[arg(long, visible_alias = "add-after", value_name = "ID")]
    pub after: Vec<TaskId>,
    /// Remove a dependency (repeatable).
    #[arg(long, value_name = "ID")]
    pub rm_after: Vec<TaskId>,
    /// Add a label (repeatable).
    #[arg(long, visible_alias = "add-label", value_name = "LABEL")]
    pub label: Vec<String>,
    /// Remove a label (repeatable).
    #[arg(long, value_name = "LABEL")]
    pub rm_label: Vec<String>,
    /// Add a touches glob (repeatable).
    #[arg(long, visible_alias = "add-touches", value_name = "GLOB")]
    pub touches: Vec<String>,
    /// Remove a touches glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub rm_touches: Vec<String>,
}

/// `orch task move`
#[derive(Debug, Args)]
pub struct TaskMove {
    /// The task id.
    pub id: TaskId,
    /// The target status: backlog, in_progress, done, failed, blocked or canceled.
    pub status: TaskStatus,
    /// Make a move outside the transition table; recorded as a manual override.
    #[arg(long)]
    pub force: bool,
    /// Why, for the event log.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `orch board`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BoardArgs {
    /// Import or export instead of showing.
    #[command(subcommand)]
    pub command: Option<BoardCommand>,
    /// Render for this many columns (default: the terminal's width, or 80).
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,
    /// Only tasks carrying this label (repeatable, or comma-separated: all of them).
    #[arg(long, short, value_delimiter = ',', value_name = "LABEL")]
    pub label: Vec<String>,
}

/// `orch board import|export|sync`
#[derive(Debug, Subcommand)]
pub enum BoardCommand {
    /// Read the board's source (`board.source`: Backlog.md or Taskmaster) into the
    /// board, and write orch's statuses back to it.
    Sync,
    /// Create or update tasks from a board file, matched by key; all or nothing.
    Import {
        /// The board file (`-` for stdin).
        file: PathBuf,
    },
    /// Print the board as a board file.
    Export {
        /// The file format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Toml)]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Board file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `[[task]]` TOML, the format `orch board import` reads.
    Toml,
    /// The same structure as JSON.
    Json,
}

/// `orch config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged configuration and where each value came from.
    Show,
    /// Print one key's merged value (every key under it, for a section), and where it
    /// came from.
    Get {
        /// A dotted key, such as run.concurrency, or a section, such as run.
        key: String,
    },
    /// Set a key in the repository's orch.toml, keeping its comments; the whole
    /// configuration is checked with the new value before anything is written.
    Set {
        /// A dotted key, such as run.concurrency.
        key: String,
        /// The value, as TOML (8, true, "2m", ["a", "b"]) or plain text; a list key
        /// also takes a,b,c.
        value: String,
    },
}
