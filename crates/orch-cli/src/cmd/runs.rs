//! `orch run list`, `orch run show`, `orch run cancel`.

use anyhow::Result;
use orch_engine::Repo;
use orch_engine::core::ports::Undo;
use orch_engine::core::run::{RunEvent, RunId, RunSnapshot};
use orch_store::Store;

use crate::cli::RunCommand;
use crate::ctx::Ctx;
use crate::output::{self, run::RunStory};

/// Runs one of the run subcommands (not `resume`, which drives a run).
pub(super) async fn runs(ctx: &Ctx, cmd: &RunCommand) -> Result<()> {
    let repo = ctx.open().await?;
    match cmd {
        RunCommand::List => list(repo.store(), ctx.json).await?,
        RunCommand::Show { run } => {
            let id = match run.as_deref() {
                None | Some("latest") => newest(repo.store()).await?,
                Some(r) => RunId(r.to_owned()),
            };
            show(&repo, &id, ctx.json).await?
        }
        RunCommand::Cancel { run } => {
            let who = repo.actor();
            cancel(&repo, &RunId(run.clone()), &who, ctx.json).await?
        }
        RunCommand::Resume { .. } => unreachable!("resume drives a run"),
    }
    repo.close().await?;
    Ok(())
}

/// The newest run, for `orch run show` with no id.
async fn newest(store: &Store) -> Result<RunId> {
    let runs = store.runs().await?;
    let first = runs
        .into_iter()
        .next()
        .ok_or_else(|| crate::error::BadInput("no runs yet: `orch run` starts one".into()))?;
    Ok(first.id)
}

async fn list(store: &Store, json: bool) -> Result<()> {
    let runs = store.runs().await?;
    let stuck = orch_engine::interrupted_runs(store, &runs).await?;
    if json {
        let list: Vec<_> = runs
            .iter()
            .map(|r| output::run::RunListJson::new(r, stuck.contains(&r.id)))
            .collect();
        return output::print_json(&list);
    }
    if runs.is_empty() {
        println!("No runs yet. Start one with `orch run`.");
    }
    for r in &runs {
        let mut state = format!("{:?}", r.state).to_lowercase();
        if stuck.contains(&r.id) {
            state.push_str(" (interrupted: `orch run resume` resumes it)");
        }
        println!("{}  {:<10} {}", r.id, r.created_at, state);
    }
    Ok(())
}

async fn cancel(repo: &Repo, id: &RunId, who: &str, json: bool) -> Result<()> {
    repo.cancel_run(id, who).await?;
    let store = repo.store();
    let info = store.run(id).await?;
    if json {
        return output::print_json(&output::task::CancelRequested::run(&id.0));
    }
    let interrupted = orch_engine::interrupted_runs(store, std::slice::from_ref(&info)).await?;
    if interrupted.contains(id) {
        println!(
            "cancel requested, but run {id} is interrupted (no orch drives it): it takes effect when you resume it with `orch run resume {id}`"
        );
    } else {
        println!(
            "cancel requested: run {id} stops claiming, stops its agents and releases its tasks"
        );
    }
    Ok(())
}

async fn show(repo: &Repo, id: &RunId, json: bool) -> Result<()> {
    let store = repo.store();
    let info = store.run(id).await?;
    let interrupted = orch_engine::interrupted_runs(store, std::slice::from_ref(&info))
        .await?
        .contains(id);
    let driven_by = store
        .lease(id)
        .await?
        .filter(|_| !interrupted && !info.state.is_terminal())
        .map(|l| l.owner);
    let journal = store.run_events(id).await?;
    let snap = RunSnapshot::from_events(&journal);
    let flaky: Vec<(String, u32, String)> = journal
        .iter()
        .filter_map(|e| match e {
            RunEvent::Flaky {
                attempt,
                failures,
                summary,
            } => Some((attempt.to_string(), *failures, summary.clone())),
            _ => None,
        })
        .collect();
    let reverts: Vec<(String, Vec<Undo>, String)> = journal
        .iter()
        .filter_map(|e| match e {
            RunEvent::Reverts {
                attempt,
                undone,
                why,
            } => Some((attempt.to_string(), undone.clone(), why.clone())),
            _ => None,
        })
        .collect();
    let (attempts, validations) = (store.attempts(id).await?, store.validations(id).await?);
    let (merges, proposals) = (store.merges(id).await?, store.proposals(id).await?);
    let real_head = repo.run_line(&info, snap.head.as_ref())?;
    let titles = store
        .tasks(&[])
        .await?
        .into_iter()
        .map(|t| (t.id, t.title))
        .collect();
    let story = RunStory {
        titles: &titles,
        info: &info,
        interrupted,
        driven_by,
        snap: &snap,
        real_head,
        attempts: &attempts,
        validations: &validations,
        merges: &merges,
        proposals: &proposals,
        flaky: &flaky,
        reverts: &reverts,
    };
    story.print(json)
}
