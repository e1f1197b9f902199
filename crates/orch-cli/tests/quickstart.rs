//! The Quickstart, exactly as README.md prints it, on a fresh Rust repository with
//! Claude Code as shipped (against the loopback stand-in for its API): every `orch`
//! and `git` line of the block runs in order, and `orch land` ends it by moving the
//! checked-out, clean `main` to the validated work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use orch_testkit::Sandbox;
use orch_testkit::anthropic::StandIn;
use orch_testkit::clis::claude_or_skip;

/// The lines of README.md's Quickstart block.
fn quickstart() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = readme.split("## Quickstart").nth(1).expect("a Quickstart");
    let block = section.split("```sh\n").nth(1).expect("its shell block");
    let block = block.split("\n```").next().unwrap();
    block
        .lines()
        .map(|l| match l.find("  #") {
            Some(at) => l[..at].trim().to_owned(),
            None => l.trim().to_owned(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_quickstart_as_printed_lands_on_main() {
    let Some(claude) = claude_or_skip() else {
        return;
    };
    let api = StandIn::start();
    // cargo straight from its toolchain, so no rustup home is needed.
    let toolchain = Path::new(env!("CARGO"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let bin = claude.parent().unwrap().display().to_string();
    let s = Sandbox::empty(env!("CARGO_BIN_EXE_orch"))
        .with_path(format!("{bin}:{toolchain}:/usr/local/bin:/usr/bin:/bin"))
        .with_env("ANTHROPIC_BASE_URL", api.url.clone())
        .with_env("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key");
    let repo = s.repo();
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"calc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("src/lib.rs"),
        "pub fn one() -> i32 { 1 }\n\n#[test]\nfn it_is_one() { assert_eq!(one(), 1); }\n",
    )
    .unwrap();
    std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
    s.git(&["init", "-q", "-b", "main"]);
    // A person's repository: git knows who they are.
    s.git(&["config", "user.name", "Quinn Start"]);
    s.git(&["config", "user.email", "quinn@example.invalid"]);
    s.git(&["add", "."]);
    s.git(&["commit", "-q", "-m", "A calculator"]);
    // What the two tasks ask, as files the user wrote beside the repository's own.
    std::fs::write(
        repo.join("lexer.md"),
        "Split the input into tokens.\nstand-in: write src/lex/tokens.rs // the tokens\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("parser.md"),
        "Parse the tokens.\nstand-in: write src/parse.rs // the parser\n",
    )
    .unwrap();
    let mut ran = 0;
    for line in quickstart() {
        let words = shlex::split(&line).expect("a shell line");
        match words[0].as_str() {
            // The binary under test stands in for the installed one, in the repository.
            "cargo" | "cd" => continue,
            "git" => {
                let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
                let log = s.git(&args);
                assert!(log.contains("Lexer") && log.contains("Parser"), "{log}");
            }
            "orch" => {
                let run = || {
                    s.json(&["run", "list"])[0]["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                };
                let args: Vec<String> = words[1..]
                    .iter()
                    .map(|w| if w == "<run>" { run() } else { w.clone() })
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let r = s.run_text(&args);
                assert_eq!(r.code, 0, "{line}: {}{}", r.stdout, r.stderr);
            }
            other => panic!("the Quickstart runs {other}: teach this test it"),
        }
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} lines ran");
    // main moved to the validated line, checked out and clean, the work in it.
    assert_eq!(
        s.git(&["rev-parse", "main"]),
        s.git(&["rev-parse", "orch/integration"])
    );
    assert!(repo.join("src/parse.rs").is_file());
    assert!(repo.join("src/lex/tokens.rs").is_file());
    assert_eq!(
        s.git(&["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
}
