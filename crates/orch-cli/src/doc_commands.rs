//! The docs hold no command the CLI would refuse: every `orch ...` line of a shell
//! block, and every inline `orch ...` command without a synopsis's brackets, in
//! README.md and docs/*.md parses with the current [`Cli`], its placeholders (`ID`,
//! `RUN`, `KEY`) filled with sample values.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cli::Cli;

/// Sample values for the placeholders the docs use.
const SAMPLES: &[(&str, &str)] = &[
    ("ID", "1"),
    ("N", "2"),
    ("RUN", "r-1"),
    ("KEY", "run.concurrency"),
    ("VALUE", "8"),
    ("TITLE", "Title"),
    ("FILE", "board.toml"),
    ("DIR", "demo"),
    ("CMD", "true"),
    ("PRESET", "claude"),
    ("REF", "main"),
    ("TEXT", "why"),
    ("STATUS", "backlog"),
    ("S", "backlog"),
    ("L", "ui"),
    ("GLOB", "src/**"),
    ("IP", "127.0.0.1"),
    ("PATH", "/tmp"),
    ("DURATION", "1h"),
    ("KIND", "task."),
    ("NAME", "n"),
];

/// Every doc file the check reads.
fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a docs entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// `(line number, command)` for each command line of a markdown text.
fn commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_shell = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(lang) = t.strip_prefix("```") {
            in_shell = !in_shell && matches!(lang, "sh" | "bash" | "console" | "shell");
            continue;
        }
        if in_shell {
            let cmd = t.trim_start_matches("$ ");
            if cmd.starts_with("orch ") {
                // A trailing `# comment`, outside quotes.
                let cmd = match cmd.find("  #") {
                    Some(at) => &cmd[..at],
                    None => cmd,
                };
                out.push((i + 1, cmd.trim().to_owned()));
            }
            continue;
        }
        for span in line.split('`').skip(1).step_by(2) {
            let synopsis = span.contains(['[', ']', '|', '<', '>']) || span.contains("...");
            if span.starts_with("orch ") && !synopsis {
                out.push((i + 1, span.to_owned()));
            }
        }
    }
    out
}

/// The command with its placeholders filled, as arguments.
fn filled(cmd: &str) -> Option<Vec<String>> {
    let words = shlex::split(cmd)?;
    Some(
        words
            .into_iter()
            .map(|w| {
                SAMPLES
                    .iter()
                    .find(|(p, _)| *p == w)
                    .map_or(w, |(_, v)| (*v).to_owned())
            })
            .collect(),
    )
}

/// Prose that names a command (`orch logs`, `orch run cancel`) without the arguments
/// it needs: a reference, not a command line.
fn names_a_command(args: &[String], e: &clap::Error) -> bool {
    e.kind() == clap::error::ErrorKind::MissingRequiredArgument
        && args
            .iter()
            .all(|a| a.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !a.starts_with('-'))
}

#[test]
fn every_orch_command_in_the_docs_parses() {
    let mut checked = 0;
    let mut bad = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("a doc file reads");
        let name = file.file_name().expect("a file name").to_string_lossy();
        for (line, cmd) in commands(&text) {
            checked += 1;
            let Some(args) = filled(&cmd) else {
                bad.push(format!("{name}:{line}: `{cmd}`: unbalanced quotes"));
                continue;
            };
            if let Err(e) = Cli::try_parse_from(&args) {
                if names_a_command(&args, &e) {
                    continue;
                }
                let why = e.to_string();
                let first = why.lines().next().unwrap_or("").to_owned();
                bad.push(format!("{name}:{line}: `{cmd}`: {first}"));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} commands found: is the extraction broken?"
    );
    assert!(
        bad.is_empty(),
        "{} of {checked}:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn a_command_the_cli_refuses_is_caught() {
    let found = commands(
        "Run `orch task frobnicate 1`, `orch logs` or:\n```sh\norch run --nope  # no\n```\n",
    );
    assert_eq!(found.len(), 3);
    let (_, name) = &found[1];
    let args = filled(name).expect("quotes balance");
    let e = Cli::try_parse_from(&args).expect_err("orch logs needs a task");
    assert!(
        names_a_command(&args, &e),
        "a mention of `orch logs` is a name"
    );
    let found = [found[0].clone(), found[2].clone()];
    for (_, cmd) in found {
        let args = filled(&cmd).expect("quotes balance");
        assert!(Cli::try_parse_from(&args).is_err(), "{cmd}");
    }
}
