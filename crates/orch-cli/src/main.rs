//! The `orch` binary: a thin frontend that parses arguments, calls the store (and later
//! the engine), and formats output.
//!
//! Conventions: results on stdout, diagnostics on stderr; exit 0 on success, 2 on bad
//! input or a refused move, 1 on other failures; `--json` for machine output.

mod cli;
mod commands;
mod config;
mod demo;
mod error;
mod output;
mod repo;
mod run;
mod template;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.json;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime can always be built on a supported platform");
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = error::exit_code(&err);
            if json {
                let v = serde_json::json!({ "error": { "message": format!("{err:#}"), "exit_code": code } });
                eprintln!("{v}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
