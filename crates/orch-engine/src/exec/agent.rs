//! `SpawnAgent`: the prompt, the agent process, its leftovers committed, and the exit
//! marker written before the core hears of it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orch_core::run::{
    AgentExit, AgentReport, AttemptId, Changes, CommitId, FailureKind, FinishedAgent, Input,
};
use orch_validate::{CommandSpec, Outcome, Program};

use super::live_output;
use super::{Ctx, Stop, blocking};
use crate::agents::prompt;
use crate::ports::CommitError;
use crate::{EXIT_MARKER, crash_point};

/// What the core asked for: an attempt's agent, on its base, with a planner's note,
/// the previous failure, and the session to resume.
pub(crate) struct Ask {
    pub(crate) attempt: AttemptId,
    pub(crate) base: CommitId,
    pub(crate) note: Option<String>,
    pub(crate) previous_failure: Option<FailureKind>,
    pub(crate) resume_session: Option<String>,
    /// A reviewer's requested changes, for a new round.
    pub(crate) review: Option<String>,
    /// The previous attempt's base: what landed since is told to the retry.
    pub(crate) previous_base: Option<CommitId>,
    /// The prompt as rendered elsewhere (a coordinator's, for a worker); `None`: from
    /// the task.
    pub(crate) prompt: Option<String>,
}

impl Ask {
    /// What a `SpawnAgent` asks for, on the attempt's `base` (`None` for any other
    /// command).
    pub(crate) fn of(cmd: orch_core::run::Command, base: Option<CommitId>) -> Option<Ask> {
        let orch_core::run::Command::SpawnAgent {
            attempt,
            note,
            previous_failure,
            resume_session,
            previous_base,
            review,
        } = cmd
        else {
            return None;
        };
        Some(Ask {
            attempt,
            base: base.unwrap_or(CommitId(String::new())),
            note,
            previous_failure,
            resume_session,
            previous_base,
            review,
            prompt: None,
        })
    }
}

/// Runs the agent of `attempt` and reports how it ended, what it left and what it
/// said about itself.
pub(crate) async fn spawn(ctx: Arc<Ctx>, ask: Ask, stop: Stop) -> Input {
    let attempt = ask.attempt;
    let failed = |why: String| not_started(attempt, why);
    let dir = match ctx.artifacts.attempt_dir(&ctx.run, attempt) {
        Ok(d) => d,
        Err(e) => return failed(e.to_string()),
    };
    let _permit = ctx
        .agents
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let prompt_path = dir.join("prompt.md");
    let text = match ask.prompt.clone() {
        Some(p) => p,
        None => render(&ctx, &ask).await,
    };
    if let Err(e) = orch_validate::files::write(&prompt_path, text.as_bytes()) {
        return failed(format!("writing the prompt: {e}"));
    }
    let wt = ctx.attempt_worktree(attempt);
    let preset = ctx.preset();
    let spec = agent_spec(&ctx, &ask, &wt, &dir, &stop);
    // What the agent could plant in the shared .git (hooks, config, info/), to undo.
    let git = ctx.git.clone();
    let run_cfg = &ctx.cfg.config.run;
    let users = vec![run_cfg.base.clone(), run_cfg.target.clone()];
    let shared = blocking(move || git.shared_state(&users))
        .await
        .ok()
        .and_then(Result::ok);
    let exit = run_streamed(&ctx, attempt, &spec, &stop).await;
    let scratch = preset.map_or(vec![], |p| {
        p.scratch.iter().map(|s| (*s).to_owned()).collect()
    });
    let left = Left {
        attempt,
        wt,
        base: ask.base.clone(),
        scratch,
        shared,
    };
    let (report, changes) = after_the_agent(&ctx, &spec, &exit, left).await;
    // On disk before the core hears of it: a resume after a crash in between goes on
    // from this work instead of running the agent again.
    let f = FinishedAgent {
        exit,
        changes,
        report,
    };
    let _ = write_exit_marker(&dir, &f);
    crash_point("agent-exit-recorded");
    Input::AgentExited {
        attempt,
        exit: f.exit,
        changes: f.changes,
        report: f.report,
    }
}

/// How the agent of `ask` runs: its command line in its worktree, its environment,
/// its log beside its prompt, and SIGKILL when the core says.
fn agent_spec(ctx: &Ctx, ask: &Ask, wt: &Path, dir: &Path, stop: &Stop) -> CommandSpec {
    let (attempt, prompt_path) = (ask.attempt, dir.join("prompt.md"));
    let values = prompt::CommandValues {
        prompt_file: prompt_path.display().to_string(),
        worktree: wt.display().to_string(),
        artifacts: dir.display().to_string(),
        task_id: attempt.task.0,
        attempt: attempt.number,
        session_id: ask.resume_session.clone(),
        gates: ctx.cfg.config.validate.worker.clone(),
    };
    let line = command_line(ctx, values);
    CommandSpec {
        program: program(ctx, line, wt, dir),
        cwd: wt.to_path_buf(),
        env: ctx.env(attempt, wt, &prompt_path, &ask.base),
        // The core's deadline decides; this is only a backstop.
        timeout: ctx.cfg.config.agent.timeout.0 + Duration::from_secs(60),
        kill_grace: ctx.policy.kill_grace,
        log_path: dir.join("agent.log"),
        log_cap: ctx.cfg.config.artifacts.log_cap.0,
        stdin: None,
        capture_stdout: None,
        hard_kill: Some(stop.kill.clone()),
        log_frame: false,
    }
}

/// An agent that could not start: a full disk (no space for its prompt or log) is no
/// one's fault, and nothing is gained by trying before there is space, so it goes to
/// the quota breaker (which waits; no attempt is spent).
fn not_started(attempt: AttemptId, why: String) -> Input {
    if !super::disk_full(&why) {
        return no_work(attempt, AgentExit::FailedToStart(why));
    }
    Input::AgentExited {
        attempt,
        report: AgentReport {
            quota: Some(super::no_space(&why)),
            ..AgentReport::default()
        },
        exit: AgentExit::FailedToStart(why),
        changes: None,
    }
}

/// What an agent left behind, to commit.
struct Left {
    attempt: AttemptId,
    wt: std::path::PathBuf,
    base: CommitId,
    scratch: Vec<String>,
    shared: Option<orch_core::ports::SharedGitState>,
}

/// Once the agent exited: its report, and its work committed (or why not: the
/// failure's words; a full disk waits for space in the breaker instead of failing).
async fn after_the_agent(
    ctx: &Ctx,
    spec: &CommandSpec,
    exit: &AgentExit,
    left: Left,
) -> (AgentReport, Option<Changes>) {
    let mut report = live_output::final_report(ctx, spec, exit);
    if let AgentExit::FailedToStart(why) = exit
        && super::disk_full(why)
    {
        report.quota = Some(super::no_space(why));
    }
    let Left {
        attempt,
        wt,
        base,
        scratch,
        shared,
    } = left;
    match commit(ctx, attempt, wt, base, scratch, shared).await {
        Ok(c) => (report, Some(c)),
        Err(e) => {
            if super::disk_full(&e) {
                report.quota = Some(super::no_space(&e));
            }
            report.hint.get_or_insert(e);
            (report, None)
        }
    }
}

/// An agent that ended (or never started) with nothing committed and nothing reported.
pub(crate) fn no_work(attempt: AttemptId, exit: AgentExit) -> Input {
    Input::AgentExited {
        attempt,
        exit,
        changes: None,
        report: AgentReport::default(),
    }
}

/// How the agent's command line runs: with `sh -c`, or inside the sandbox.
fn program(ctx: &Ctx, line: String, wt: &Path, dir: &Path) -> Program {
    match ctx.cfg.config.agent.sandbox {
        orch_core::config::Sandbox::None => Program::Shell(line),
        orch_core::config::Sandbox::Bwrap => {
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            let dirs = ctx.preset().map_or(&[][..], |p| p.sandbox_dirs);
            let sb = crate::agents::sandbox::Sandbox::for_attempt(
                wt,
                dir,
                &ctx.git.common_dir(),
                &ctx.run.0,
                home.as_deref(),
                dirs,
            );
            Program::Argv(sb.argv(&line))
        }
    }
}

/// The agent's command line: the template filled in (a session to resume only where
/// the preset can).
fn command_line(ctx: &Ctx, mut values: prompt::CommandValues) -> String {
    let preset = ctx.preset();
    if preset.is_some_and(|p| p.resume.is_none()) {
        values.session_id = None;
    }
    prompt::render_command(&ctx.cfg.agent_command, preset, &values)
}

/// Commits what the agent left, except its CLI's scratch files, and puts back what
/// it changed in the shared git files since `shared` was taken (naming it).
async fn commit(
    ctx: &Ctx,
    attempt: AttemptId,
    wt: std::path::PathBuf,
    base: CommitId,
    scratch: Vec<String>,
    shared: Option<orch_core::ports::SharedGitState>,
) -> Result<Changes, String> {
    let mut changes = commit_leftovers(ctx, attempt, wt, base, scratch).await;
    if let (Some(before), Ok(c)) = (shared, changes.as_mut()) {
        let git = ctx.git.clone();
        let head = c.head.clone();
        match blocking(move || git.restore_shared_state(&before, Some(&head))).await {
            Ok(Ok(r)) => {
                c.tampered = r.undone;
                c.users_refs = r.users;
            }
            Ok(Err(e)) => c.tampered = vec![e.to_string()],
            Err(e) => c.tampered = vec![e],
        }
    }
    changes
}

async fn commit_leftovers(
    ctx: &Ctx,
    attempt: AttemptId,
    wt: std::path::PathBuf,
    base: CommitId,
    scratch: Vec<String>,
) -> Result<Changes, String> {
    let branch = attempt.branch(&ctx.run);
    let git = ctx.git.clone();
    let message = ctx.commit_message(attempt, None);
    let at = base.clone();
    match blocking(move || git.commit_leftovers(&wt, &branch, &at, &message, &scratch)).await {
        Ok(Ok(l)) => Ok(Changes {
            branch_moved: l.branch_moved,
            rewrote_history: l.rewrote_history,
            symlinks: l.symlinks,
            ..Changes::new(l.head, l.empty)
        }),
        // The agent deleted its worktree or pointed its `.git` elsewhere: nothing of
        // it is committed, and it is the agent's doing (the pool replaces the worktree).
        Ok(Err(CommitError::WorktreeBroken(why))) => Ok(Changes {
            worktree_broken: Some(why.to_string()),
            ..Changes::new(base, true)
        }),
        Ok(Err(CommitError::Failed(e))) => {
            tracing::warn!(error = %e, "the agent's work could not be committed");
            Err(e.to_string())
        }
        Err(e) => {
            tracing::warn!(error = %e, "the agent's work could not be committed");
            Err(e)
        }
    }
}

/// The attempt's prompt: its task, its gates, and on a retry what failed, what landed
/// since, and where it works.
pub(crate) async fn render(ctx: &Ctx, ask: &Ask) -> String {
    let Some(t) = ctx.task(ask.attempt.task) else {
        return String::new();
    };
    let retry = retry_context(ctx, ask).await;
    let p = prompt::Prompt {
        task: &t,
        worker: &ctx.cfg.config.validate.worker,
        integration: &ctx.cfg.config.validate.integration,
        note: ask.note.as_deref(),
        review: ask.review.as_deref(),
        previous: ask.previous_failure.as_ref(),
        retry: &retry,
    };
    match &ctx.template {
        Some(tpl) => p.render_template(tpl),
        None => p.render(),
    }
}

/// What a retry is told besides its failure: the tasks that landed since its last
/// attempt's base (titles from the board, where they are still on it) with the files
/// they changed, and, when it resumes a session, the directory it works in now.
async fn retry_context(ctx: &Ctx, ask: &Ask) -> prompt::RetryContext {
    let mut retry = prompt::RetryContext::default();
    if let Some(from) = ask.previous_base.clone().filter(|b| *b != ask.base) {
        let (git, to) = (ctx.git.clone(), ask.base.clone());
        let landed = blocking(move || git.landed_since(&from, &to))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let tasks = ctx.tasks_by_key();
        retry.landed = landed
            .into_iter()
            .map(|l| orch_core::ports::Landing {
                tasks: l
                    .tasks
                    .iter()
                    .map(|k| match tasks.get(k) {
                        Some((id, title)) => format!("#{id} {title}"),
                        None => k.clone(),
                    })
                    .collect(),
                files: l.files,
            })
            .collect();
    }
    if ask.resume_session.is_some() {
        retry.workdir = Some(ctx.attempt_worktree(ask.attempt).display().to_string());
    }
    retry
}

/// Runs the agent, streaming its lines into the run's event stream, and its usage so
/// far to the core.
pub(crate) async fn run_streamed(
    ctx: &Ctx,
    attempt: AttemptId,
    spec: &CommandSpec,
    stop: &Stop,
) -> AgentExit {
    let (tx, forward) = live_output::forward_parsed(ctx, attempt);
    let (report, ()) = tokio::join!(ctx.procs.run(spec, &stop.term, Some(tx)), forward);
    match report {
        Ok(r) => match r.outcome {
            Outcome::Exited(c) => AgentExit::Code(c),
            Outcome::Signaled(s) => AgentExit::Signal(s),
            Outcome::TimedOut | Outcome::Canceled => AgentExit::Signal(15),
            Outcome::FailedToStart(m) => AgentExit::FailedToStart(m),
        },
        Err(e) => AgentExit::FailedToStart(e.to_string()),
    }
}

/// Writes the exit marker whole (a new file, then a rename; no link followed).
pub(crate) fn write_exit_marker(dir: &Path, f: &FinishedAgent) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(f).expect("exit markers always serialise");
    orch_validate::files::write(&dir.join(EXIT_MARKER), &bytes)
}
