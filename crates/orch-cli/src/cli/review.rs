//! `orch review`'s arguments (what waits for a person, and a person's decision) and
//! `orch task resolve`'s (a conflict a person resolves).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use orch_engine::core::TaskId;

/// `orch review`
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// What to do; without one, list the work waiting for review, oldest first.
    #[command(subcommand)]
    pub command: Option<ReviewCommand>,
}

/// `orch review` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// One task's review: its change (the diff), its worker gate, its cost and the
    /// earlier rounds with their comments.
    Show {
        /// The task id.
        id: TaskId,
    },
    /// Approve the work: the next run (or the one going on) integrates it as it is,
    /// through the integration gate, and lands it.
    Approve {
        /// The task id.
        id: TaskId,
        /// A remark, for the audit log.
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
    /// Ask for changes: a new round resumes the agent's session with your words, each
    /// line comment quoted with the line it points at. It does not spend
    /// policy.max_attempts; review.max_rounds caps the rounds.
    Changes {
        /// The task id.
        id: TaskId,
        /// What to change.
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
        /// What to change, read from a file (`-` for stdin).
        #[arg(long, value_name = "FILE", conflicts_with = "message")]
        file: Option<PathBuf>,
        /// A comment on one line of the reviewed work: `--at src/lib.rs:12 "rename
        /// this"` (repeatable).
        #[arg(long = "at", num_args = 2, value_names = ["PATH:LINE", "TEXT"], action = clap::ArgAction::Append)]
        at: Vec<String>,
    },
    /// Reject the work: the task goes to failed with your reason, or back to the
    /// backlog for a fresh start with --again.
    Reject {
        /// The task id.
        id: TaskId,
        /// Why.
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: String,
        /// Back to the backlog, to be done again from scratch.
        #[arg(long)]
        again: bool,
    },
}

/// `orch task resolve`
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The task id (a blocked task whose last attempt conflicted).
    pub id: TaskId,
    /// Commit the resolution as yours (refused while conflict markers are left), then
    /// land it: a run of this task merges it, runs the integration gate and lands it.
    #[arg(long = "continue", conflicts_with_all = ["abort", "agent"])]
    pub go_on: bool,
    /// Put things back as they were: the worktree goes, the task stays blocked.
    #[arg(long, conflicts_with = "agent")]
    pub abort: bool,
    /// Hand the conflict to the task's agent instead: its next attempt resumes its
    /// session with the conflict and both sides in its prompt.
    #[arg(long)]
    pub agent: bool,
}
