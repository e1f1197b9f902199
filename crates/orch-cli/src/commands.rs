//! Command handlers: resolve the repo and config, call the store, format the result.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use orch_core::TaskStatus;
use orch_core::board::BoardFile;
use orch_core::task::{NewTask, TaskEdit};
use orch_core::transition::Actor;
use orch_store::{EventFilter, Location, MoveRequest, Store, StoreError};
use serde_json::json;

use crate::cli::{
    BoardArgs, BoardCommand, BodyArgs, Cli, Command, ConfigCommand, ExportFormat, TaskCommand,
};
use crate::config;
use crate::error::BadInput;
use crate::output::{self, EventJson, TaskJson};
use crate::repo::{self, Repo};

/// Global options every command sees.
pub struct Ctx {
    /// `--repo`
    pub repo: Option<PathBuf>,
    /// `-c KEY=VALUE`
    pub set: Vec<String>,
    /// `--json`
    pub json: bool,
}

/// Runs a parsed command line and returns the exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    let ctx = Ctx {
        repo: cli.repo,
        set: cli.set,
        json: cli.json,
    };
    match cli.command {
        Command::Init => init(&ctx).await.map(|_| 0),
        Command::Demo(args) => crate::demo::run(&ctx, args).await,
        Command::Task(cmd) => task(&ctx, cmd).await.map(|_| 0),
        Command::Board(args) => board(&ctx, args).await.map(|_| 0),
        Command::Config(ConfigCommand::Show) => config_show(&ctx).map(|_| 0),
        Command::Run(args) => {
            let (repo, store) = open(&ctx).await?;
            let code = match &args.command {
                Some(crate::cli::RunCommand::Resume { run }) => {
                    let target = crate::run::Target::Resume(run.clone());
                    crate::run::start(&ctx, &args, &repo, store.clone(), target)
                        .await
                        .map(|(code, _)| code)
                }
                Some(cmd) => crate::run::inspect(&ctx, cmd, &store).await.map(|_| 0),
                None => {
                    let target = if args.resume {
                        crate::run::Target::Resume(None)
                    } else {
                        crate::run::Target::New
                    };
                    crate::run::start(&ctx, &args, &repo, store.clone(), target)
                        .await
                        .map(|(code, _)| code)
                }
            };
            store.close().await?;
            code
        }
        Command::Cleanup(args) => {
            let (repo, store) = open(&ctx).await?;
            crate::run::cleanup(&ctx, &args, &repo, &store)
                .await
                .map(|_| 0)
        }
        Command::Events(args) => {
            let (_, store) = open(&ctx).await?;
            crate::run::events(&ctx, &args, &store).await.map(|_| 0)
        }
        Command::Logs(args) => {
            let (repo, store) = open(&ctx).await?;
            crate::run::logs(&repo, &args, &store).await.map(|_| 0)
        }
        Command::ScriptedAgent => crate::run::scripted_agent(),
    }
}

/// The name recorded as the actor of a person's changes.
fn actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    format!("human:{user}")
}

/// Opens the store for the repository, creating `.orch/` for the default SQLite file.
/// Every command that needs the store comes through here.
pub async fn open(ctx: &Ctx) -> Result<(Repo, Store)> {
    let repo = Repo::discover(ctx.repo.as_deref())?;
    let cfg = config::load(&repo.root, &ctx.set)?;
    let loc = Location::from_setting(&cfg.config.database_url, &repo.root)?;
    if matches!(&loc, Location::Sqlite(p) if *p == repo.orch_dir().join("orch.db")) {
        repo.ensure_orch_dir()?;
    }
    let store = Store::open(&loc).await?;
    Ok((repo, store))
}

/// `orch init`, also used by the demo.
pub async fn init_repo(repo: &Repo, set: &[String]) -> Result<(Vec<String>, Location)> {
    let mut changed = repo.ensure_orch_dir()?;
    let toml_path = repo.root.join("orch.toml");
    if !toml_path.exists() {
        repo::write_atomic(&toml_path, crate::template::ORCH_TOML.as_bytes())?;
        changed.push("created orch.toml".to_owned());
    }
    let cfg = config::load(&repo.root, set)?;
    let loc = Location::from_setting(&cfg.config.database_url, &repo.root)?;
    let existed = matches!(&loc, Location::Sqlite(p) if p.exists());
    Store::open(&loc).await?.close().await?;
    if !existed && matches!(loc, Location::Sqlite(_)) {
        changed.push("created .orch/orch.db".to_owned());
    }
    Ok((changed, loc))
}

async fn init(ctx: &Ctx) -> Result<()> {
    let repo = Repo::discover(ctx.repo.as_deref())?;
    let (changed, loc) = init_repo(&repo, &ctx.set).await?;
    if ctx.json {
        return output::print_json(&json!({
            "repo": repo.root,
            "database": loc.to_string(),
            "created": changed,
        }));
    }
    if changed.is_empty() {
        println!("orch is already set up in {}", repo.root.display());
    } else {
        println!("Set up orch in {}:", repo.root.display());
        for c in &changed {
            println!("  {c}");
        }
    }
    println!("Board database: {loc}");
    println!("Next: orch task add \"Your first task\"   (or: orch board import FILE)");
    Ok(())
}

fn read_body(b: &BodyArgs) -> Result<Option<String>> {
    if let Some(text) = &b.body {
        return Ok(Some(text.clone()));
    }
    let Some(path) = &b.body_file else {
        return Ok(None);
    };
    read_input(path).map(Some)
}

/// Reads a file argument, `-` meaning stdin. A missing file is bad input.
fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", path.display())).into())
}

async fn task(ctx: &Ctx, cmd: TaskCommand) -> Result<()> {
    let (_repo, store) = open(ctx).await?;
    let who = actor();

    match cmd {
        TaskCommand::Add(a) => {
            let new = NewTask {
                key: a.key,
                title: a.title,
                body: read_body(&a.body)?.unwrap_or_default(),
                priority: a.priority,
                depends_on: a.after,
                labels: a.label,
                touches: a.touches,
            };
            let t = store.add_task(new, &who).await?;
            if ctx.json {
                output::print_json(&TaskJson::from(&t))?;
            } else {
                println!("{}", t.id);
            }
        }
        TaskCommand::List(l) => {
            let tasks = store.tasks(&l.status).await?;
            if ctx.json {
                output::print_json(&tasks.iter().map(TaskJson::from).collect::<Vec<_>>())?;
            } else {
                // Waiting marks need the whole board, not just the filtered statuses.
                let all = if l.status.is_empty() {
                    tasks.clone()
                } else {
                    store.tasks(&[]).await?
                };
                print!(
                    "{}",
                    output::render_task_table(&tasks, &output::waiting_on(&all))
                );
            }
        }
        TaskCommand::Show { id } => {
            let t = store.task(id).await?;
            let events = store
                .events(&EventFilter {
                    task: Some(id),
                    ..EventFilter::default()
                })
                .await?;
            let board = store.tasks(&[]).await?;
            if ctx.json {
                let mut v = serde_json::to_value(TaskJson::from(&t))?;
                v["waiting_on"] = json!(
                    output::waiting_on(&board)
                        .get(&id)
                        .map(|w| w.iter().map(|d| d.0).collect::<Vec<_>>())
                        .unwrap_or_default()
                );
                v["events"] = json!(events.iter().map(EventJson::from).collect::<Vec<_>>());
                output::print_json(&v)?;
            } else {
                print!("{}", output::render_task(&t, &board, &events));
            }
        }
        TaskCommand::Edit(e) => {
            let edit = TaskEdit {
                title: e.title,
                body: read_body(&e.body)?,
                priority: e.priority,
                add_deps: e.after,
                remove_deps: e.rm_after,
                add_labels: e.label,
                remove_labels: e.rm_label,
                add_touches: e.touches,
                remove_touches: e.rm_touches,
            };
            if edit.is_empty() {
                return Err(BadInput(
                    "nothing to change: pass --title, --body, --priority, --after, --rm-after, \
                     --label, --rm-label, --touches or --rm-touches"
                        .into(),
                )
                .into());
            }
            let t = store.edit_task(e.id, &edit, &who).await?;
            if ctx.json {
                output::print_json(&TaskJson::from(&t))?;
            } else {
                println!("updated #{} {}", t.id, t.title);
            }
        }
        TaskCommand::Move(m) => {
            let before = store.task(m.id).await?;
            let req = MoveRequest {
                to: m.status,
                actor: Actor::Human,
                force: m.force,
                reason: m.reason,
            };
            let t = store.move_task(m.id, &req, &who).await?;
            if ctx.json {
                output::print_json(&TaskJson::from(&t))?;
            } else {
                let forced = if m.force
                    && orch_core::transition::check_move(
                        before.status,
                        m.status,
                        Actor::Human,
                        false,
                    )
                    .is_err()
                {
                    " (manual override, recorded)"
                } else {
                    ""
                };
                println!(
                    "moved #{} {}: {} -> {}{forced}",
                    t.id, t.title, before.status, t.status
                );
            }
        }
        TaskCommand::Retry { id, reason } => {
            reopen(ctx, &store, id, TaskStatus::Failed, "retried", reason, &who).await?
        }
        TaskCommand::Unblock { id, reason } => {
            reopen(
                ctx,
                &store,
                id,
                TaskStatus::Blocked,
                "unblocked",
                reason,
                &who,
            )
            .await?
        }
        TaskCommand::Cancel { id, reason } => {
            let t = store.task(id).await?;
            if t.status == TaskStatus::InProgress {
                let live: Vec<orch_store::RunInfo> = store
                    .runs()
                    .await?
                    .into_iter()
                    .filter(|r| {
                        matches!(
                            r.state,
                            orch_core::run::RunState::Running | orch_core::run::RunState::Draining
                        )
                    })
                    .collect();
                if live.is_empty() {
                    return Err(BadInput(format!(
                        "task {id} is in_progress but no run is live to stop it; move it with `orch task move {id} canceled --force`"
                    ))
                    .into());
                }
                for r in &live {
                    store
                        .post_control(&r.id, orch_store::ControlKind::CancelTask(id))
                        .await?;
                }
                let runs: Vec<String> = live.iter().map(|r| r.id.0.clone()).collect();
                if ctx.json {
                    output::print_json(
                        &json!({ "task": id.0, "cancel": "requested", "runs": runs }),
                    )?;
                } else {
                    println!(
                        "cancel requested: run {} stops task #{id} and goes on with the rest",
                        runs.join(", ")
                    );
                    for r in crate::run::interrupted_runs(&store).await? {
                        if runs.contains(&r.id.0) {
                            println!(
                                "note: run {} is interrupted (no orch drives it); the cancel takes effect when `orch run resume {}` resumes it",
                                r.id, r.id
                            );
                        }
                    }
                }
            } else {
                let req = MoveRequest {
                    to: TaskStatus::Canceled,
                    actor: Actor::Human,
                    force: false,
                    reason: Some(reason.unwrap_or_else(|| "canceled".into())),
                };
                let t = store.move_task(id, &req, &who).await?;
                if ctx.json {
                    output::print_json(&TaskJson::from(&t))?;
                } else {
                    println!("canceled #{} {}", t.id, t.title);
                }
            }
        }
        TaskCommand::Rm { id, force } => {
            let t = store.remove_task(id, force, &who).await?;
            if ctx.json {
                output::print_json(&json!({ "removed": TaskJson::from(&t) }))?;
            } else {
                println!("removed #{} {}", t.id, t.title);
            }
        }
    }
    store.close().await?;
    Ok(())
}

/// Moves a `from` task back to the backlog (retry, unblock), refusing any other status.
async fn reopen(
    ctx: &Ctx,
    store: &Store,
    id: orch_core::TaskId,
    from: TaskStatus,
    verb: &str,
    reason: Option<String>,
    who: &str,
) -> Result<()> {
    let t = store.task(id).await?;
    if t.status != from {
        let hint = if t.status == TaskStatus::Canceled {
            " (a canceled one: orch task move ID backlog)"
        } else {
            ""
        };
        return Err(BadInput(format!(
            "task {id} is {}; only a {from} task can be {verb}{hint}",
            t.status
        ))
        .into());
    }
    let req = MoveRequest {
        to: TaskStatus::Backlog,
        actor: Actor::Human,
        force: false,
        reason: Some(format!(
            "{verb}{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        )),
    };
    let t = store.move_task(id, &req, who).await?;
    if ctx.json {
        output::print_json(&TaskJson::from(&t))
    } else {
        println!("{verb} #{} {}: back in the backlog", t.id, t.title);
        Ok(())
    }
}

fn terminal_width() -> usize {
    if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
        return w as usize;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}

async fn board(ctx: &Ctx, args: BoardArgs) -> Result<()> {
    let (_repo, store) = open(ctx).await?;
    match args.command {
        None => {
            let tasks = store.tasks(&[]).await?;
            if ctx.json {
                let waiting = output::waiting_on(&tasks);
                let ordered = output::board_order(&tasks);
                let columns: Vec<_> = orch_core::TaskStatus::ALL
                    .iter()
                    .map(|s| {
                        json!({
                            "status": s,
                            "tasks": ordered.iter().filter(|t| t.status == *s).map(|t| json!({
                                "id": t.id.0,
                                "key": t.key,
                                "title": t.title,
                                "priority": t.priority,
                                "waiting_on": waiting.get(&t.id).map(|w| w.iter().map(|d| d.0).collect::<Vec<_>>()).unwrap_or_default(),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                output::print_json(&json!({ "columns": columns }))?;
            } else {
                let width = args.width.unwrap_or_else(terminal_width);
                print!("{}", output::render_board(&tasks, width));
            }
        }
        Some(BoardCommand::Import { file }) => {
            let text = read_input(&file)?;
            let label = file.display().to_string();
            let parsed = parse_board(&label, &text)?;
            let report = match store.import_board(&parsed, "import").await {
                Ok(r) => r,
                Err(StoreError::Board(e)) => {
                    let line = task_header_line(&text, e.index);
                    return Err(
                        BadInput(format!("{label}:{line}: {e}; nothing was imported")).into(),
                    );
                }
                Err(e) => return Err(e.into()),
            };
            if ctx.json {
                let list = |v: &[(String, orch_core::TaskId)]| {
                    v.iter()
                        .map(|(k, id)| json!({ "key": k, "id": id.0 }))
                        .collect::<Vec<_>>()
                };
                output::print_json(&json!({
                    "created": list(&report.created),
                    "updated": list(&report.updated),
                    "unchanged": list(&report.unchanged),
                }))?;
            } else {
                println!(
                    "imported {label}: {} created, {} updated, {} unchanged",
                    report.created.len(),
                    report.updated.len(),
                    report.unchanged.len()
                );
                for (k, id) in &report.created {
                    println!("  created #{id} {k}");
                }
                for (k, id) in &report.updated {
                    println!("  updated #{id} {k}");
                }
            }
        }
        Some(BoardCommand::Export {
            format,
            output: out,
        }) => {
            let board = store.export_board().await?;
            let text = match format {
                ExportFormat::Toml => toml::to_string_pretty(&board).context("writing TOML")?,
                ExportFormat::Json => serde_json::to_string_pretty(&board)? + "\n",
            };
            match out {
                Some(path) => {
                    repo::write_atomic(&path, text.as_bytes())?;
                    eprintln!("exported {} tasks to {}", board.tasks.len(), path.display());
                }
                None => print!("{text}"),
            }
        }
    }
    store.close().await?;
    Ok(())
}

/// Parses a board file, reporting the line and column of a syntax error.
pub fn parse_board(label: &str, text: &str) -> Result<BoardFile> {
    toml::from_str::<BoardFile>(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        BadInput(format!(
            "{label}:{line}:{col}: {}; nothing was imported",
            e.message().trim_end()
        ))
        .into()
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// The line of the `index`-th `[[task]]` header.
fn task_header_line(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[task]]"))
        .nth(index)
        .map(|(i, _)| i + 1)
        .unwrap_or(1)
}

fn config_show(ctx: &Ctx) -> Result<()> {
    let repo = Repo::discover(ctx.repo.as_deref())?;
    let loaded = config::load(&repo.root, &ctx.set)?;
    let entries = loaded.entries()?;
    if ctx.json {
        return output::print_json(&json!({
            "config": loaded.config,
            "sources": entries.iter().map(|e| (e.key.clone(), json!(e.source))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    let user = config::user_file()
        .map(|p| describe_file(&p))
        .unwrap_or_else(|| "(no HOME)".into());
    println!(
        "# layers, lowest first: defaults < {user} < {} < ORCH_* environment < -c flags",
        describe_file(&repo.root.join("orch.toml"))
    );
    let rendered: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                format!("{} = {}", e.key, toml_value(&e.value)),
                e.source.clone(),
            )
        })
        .collect();
    // Align the source comments, except after the odd very long value.
    let w = rendered
        .iter()
        .map(|(l, _)| l.chars().count())
        .filter(|n| *n <= 48)
        .max()
        .unwrap_or(0);
    for (line, source) in rendered {
        println!("{}  # {source}", output::pad(&line, w));
    }
    Ok(())
}

fn describe_file(p: &Path) -> String {
    if p.exists() {
        p.display().to_string()
    } else {
        format!("{} (absent)", p.display())
    }
}

/// A JSON leaf written as a TOML value.
fn toml_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
            )
        }
        other => other.to_string(),
    }
}
