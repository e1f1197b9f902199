//! The `orch` binary: a thin frontend that parses arguments, calls the engine or the
//! store, and formats output. It depends on `orch-engine` and `orch-store` only.
//!
//! Conventions: results on stdout, diagnostics on stderr; exit 0 on success, 2 on bad
//! input or a refused move, 1 on other failures; `--json` for machine output.

/// `eprintln!` that never panics: a diagnostic that cannot be written (stderr on a
/// full disk, a closed pipe) is dropped, never the process with it. Defined before
/// the modules, it stands for std's in the whole crate.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics: output that cannot be written is dropped, except a
/// closed pipe (`orch events | head`), which ends the process quietly as SIGPIPE
/// would (141).
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::written(writeln!(std::io::stdout(), $($arg)*));
    }};
}

/// `print!`, as [`println!`].
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::written(write!(std::io::stdout(), $($arg)*));
    }};
}

/// What a write to stdout came to: a closed pipe ends the process (141, as SIGPIPE
/// would); anything else (a full disk) drops the output, not the process.
fn written(r: std::io::Result<()>) {
    if let Err(e) = r
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(141);
    }
}

mod cli;
mod cmd;
mod ctx;
#[cfg(test)]
mod doc_commands;
mod error;
mod output;
mod reporter;

use std::process::ExitCode;

use clap::Parser;

/// `orch events | head` closes stdout early; `println!` then panics with EPIPE. Rust
/// ignores SIGPIPE, and restoring its default needs `unsafe`, which this workspace
/// forbids, so a closed stdout ends the process quietly with the exit code of a
/// process killed by SIGPIPE (141), as other command-line tools do.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// orch's own diagnostics (`tracing`), on stderr: warnings by default, `-v` info,
/// `-vv` debug; `RUST_LOG` takes a full filter and wins.
fn diagnostics(verbose: u8, format: cli::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,orch={level},orch_engine={level},orch_store={level}"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        cli::LogFormat::Text => builder.try_init(),
        cli::LogFormat::Json => builder.json().try_init(),
    };
}

/// Threads for git and file work: four per core, 16 to 64.
fn blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (4 * cores).clamp(16, 64)
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            // With --json anywhere on the line, a refused command line is JSON too.
            if code == 2 && std::env::args().any(|a| a == "--json") {
                let message = e.render().to_string();
                let v = serde_json::json!({ "error": { "message": message.trim(), "exit_code": code } });
                eprintln!("{v}");
            } else {
                let _ = e.print();
            }
            return ExitCode::from(code);
        }
    };
    let json = cli.json;
    diagnostics(cli.verbose, cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Git and file work, bounded by the cores: 64 agents starting at once queue
        // their worktrees here instead of each holding a thread (and its memory).
        .max_blocking_threads(blocking_threads())
        .enable_all()
        .build()
        .expect("a tokio runtime can always be built on a supported platform");
    match rt.block_on(cmd::dispatch(cli)) {
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
