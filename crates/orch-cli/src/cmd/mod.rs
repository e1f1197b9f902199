//! One handler per command. Each parses nothing (clap did), opens what it needs through
//! [`crate::ctx`], calls the engine or the store, and hands the result to `output`.

mod agent;
mod agents;
mod board;
mod cleanup;
mod config;
pub(crate) mod demo;
mod events;
mod init;
mod land;
mod logs;
mod resolve;
mod review;
pub(crate) mod run;
mod runs;
mod serve;
mod task;
mod worker;

use anyhow::Result;

use crate::cli::{AgentsCommand, Cli, Command, ConfigCommand, RunCommand, TaskCommand};
use crate::ctx::Ctx;

/// Runs a parsed command line and returns the exit code.
pub async fn dispatch(cli: Cli) -> Result<u8> {
    let ctx = Ctx {
        repo: cli.repo,
        set: cli.set,
        json: cli.json,
    };
    match cli.command {
        Command::Init { commit } => init::init(&ctx, commit).await.map(|_| 0),
        Command::Demo(args) => demo::demo(&ctx, args).await,
        Command::Task(TaskCommand::Resolve(a)) => resolve::resolve(&ctx, a).await,
        Command::Task(cmd) => task::task(&ctx, cmd).await.map(|_| 0),
        Command::Board(args) => board::board(&ctx, args).await.map(|_| 0),
        Command::Config(ConfigCommand::Show) => config::show(&ctx).map(|_| 0),
        Command::Config(ConfigCommand::Get { key }) => config::get(&ctx, &key).map(|_| 0),
        Command::Config(ConfigCommand::Set { key, value }) => {
            config::set(&ctx, &key, &value).map(|_| 0)
        }
        Command::Run(args) => match &args.command {
            None | Some(RunCommand::Resume { .. }) => run::run(&ctx, &args).await,
            Some(cmd) => runs::runs(&ctx, cmd).await.map(|_| 0),
        },
        Command::Cleanup(args) => cleanup::cleanup(&ctx, &args).await.map(|_| 0),
        Command::Pool => cleanup::pool(&ctx).await.map(|_| 0),
        Command::Serve(args) => serve::serve(&ctx, &args).await.map(|_| 0),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "orch", &mut script);
            // Through print!, so a closed stdout ends quietly as everywhere else.
            print!("{}", String::from_utf8_lossy(&script));
            Ok(0)
        }
        Command::Worker(args) => worker::worker(&ctx, &args).await.map(|_| 0),
        Command::Status => land::status(&ctx).await.map(|_| 0),
        Command::Land(args) => land::land(&ctx, &args).await,
        Command::Events(args) => events::events(&ctx, &args).await.map(|_| 0),
        Command::Review(args) => review::review(&ctx, args).await.map(|_| 0),
        Command::Logs(args) => logs::logs(&ctx, &args).await.map(|_| 0),
        Command::Agents(AgentsCommand::Check { preset, command }) => {
            agents::check(&ctx, preset, command.as_deref())
        }
        Command::ScriptedAgent => agent::scripted_agent(),
    }
}
