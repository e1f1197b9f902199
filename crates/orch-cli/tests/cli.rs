//! The `orch` binary end to end: real git repositories in temp dirs, real SQLite files,
//! real processes. Output is snapshotted (insta), with times and paths redacted.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use orch_testkit::{Run, Sandbox, git_cmd, tagged_with};
use serde_json::Value;

/// The binary under test.
const ORCH: &str = env!("CARGO_BIN_EXE_orch");

/// Replaces `s`'s sandbox paths and all timestamps.
fn redact(s: &Sandbox, text: &str) -> String {
    let root = s.dir().canonicalize().unwrap();
    let text = text
        .replace(&root.display().to_string(), "[SANDBOX]")
        .replace(&s.dir().display().to_string(), "[SANDBOX]");
    let mut out = String::new();
    // 2026-11-24T11:52:17.696Z -> [TIME]
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if i + 24 <= bytes.len() {
            let cand: String = bytes[i..i + 24].iter().collect();
            if is_time(&cand) {
                out.push_str("[TIME]");
                i += 24;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23) || c.is_ascii_digit())
}

/// Snapshot of a command's exit code, stdout and stderr.
fn transcript(s: &Sandbox, args: &[&str]) -> String {
    let r = s.run_text(args);
    redact(
        s,
        &format!(
            "$ orch {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            r.code,
            r.stdout,
            r.stderr
        ),
    )
}

#[test]
fn init_outside_a_repository_is_a_clear_error() {
    let s = Sandbox::empty(ORCH);
    insta::assert_snapshot!(transcript(&s, &["init"]));
    insta::assert_snapshot!(transcript(
        &s,
        &["--repo", "/nonexistent/dir", "task", "list"]
    ));
}

#[test]
fn init_is_idempotent_and_excludes_orch_dir() {
    let s = Sandbox::repo_only(ORCH);
    insta::assert_snapshot!(transcript(&s, &["init"]));
    insta::assert_snapshot!(transcript(&s, &["init"]));
    let exclude = std::fs::read_to_string(s.repo().join(".git/info/exclude")).unwrap();
    assert_eq!(exclude.matches("/.orch/").count(), 1);
    // Only orch.toml shows up for git: the database is excluded.
    let st = git_cmd()
        .arg("-C")
        .arg(s.repo())
        .args(["status", "--porcelain"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(st.stdout).unwrap(), "?? orch.toml\n");
    assert!(s.repo().join(".orch/orch.db").exists());
    // Init from a subdirectory finds the top level.
    std::fs::create_dir(s.repo().join("sub")).unwrap();
    let r = Run::from(
        s.cmd(&["--json", "init"])
            .current_dir(s.repo().join("sub"))
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0);
    assert_eq!(r.json()["created"], serde_json::json!([]));
    assert_eq!(r.json()["uncommitted"], "orch.toml");
    // --commit commits orch.toml alone, with the repository's identity, and says why
    // when git cannot.
    std::fs::write(s.repo().join("notes.txt"), "mine\n").unwrap();
    let r = s.run_text(&["init", "--commit"]);
    assert!(
        r.code == 2 && r.stderr.contains("Author identity unknown"),
        "{}",
        r.stderr
    );
    s.git(&["config", "user.name", "Ada Lovelace"]);
    s.git(&["config", "user.email", "ada@example.com"]);
    let r = s.ok_text(&["--json", "init", "--commit"]);
    assert_eq!(
        r.json()["created"],
        serde_json::json!(["committed orch.toml"])
    );
    assert_eq!(r.json()["uncommitted"], Value::Null);
    let st = git_cmd()
        .arg("-C")
        .arg(s.repo())
        .args(["status", "--porcelain"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(st.stdout).unwrap(), "?? notes.txt\n");
}

#[test]
fn task_lifecycle_and_json_shapes() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    assert_eq!(
        s.ok_text(&["task", "add", "Lexer", "--priority", "2", "--label", "core"])
            .stdout,
        "1\n"
    );
    std::fs::write(
        s.repo().join("body.md"),
        "Parse tokens into an AST.\nKeep it small.\n",
    )
    .unwrap();
    assert_eq!(
        s.ok_text(&[
            "task",
            "add",
            "Parser",
            "--after",
            "1",
            "--body-file",
            "body.md",
            "--touches",
            "src/parse/**",
            "--key",
            "parser"
        ])
        .stdout,
        "2\n"
    );
    s.ok_text(&[
        "task",
        "add",
        "Negative priority",
        "-p",
        "-1",
        "--after",
        "#2",
    ]);
    insta::assert_snapshot!(
        "list_json",
        redact(&s, &s.ok_text(&["task", "list", "--json"]).stdout)
    );
    insta::assert_snapshot!(
        "list_table",
        redact(&s, &s.ok_text(&["task", "list"]).stdout)
    );
    s.ok_text(&[
        "task",
        "edit",
        "2",
        "--title",
        "Parser v2",
        "--priority",
        "5",
        "--rm-touches",
        "src/parse/**",
        "--label",
        "p",
    ]);
    s.ok_text(&[
        "task",
        "move",
        "1",
        "blocked",
        "--reason",
        "waiting for a decision",
    ]);
    insta::assert_snapshot!(
        "move_done_refused",
        transcript(&s, &["task", "move", "1", "done"])
    );
    insta::assert_snapshot!(
        "move_done_forced",
        transcript(
            &s,
            &[
                "task",
                "move",
                "1",
                "done",
                "--force",
                "--reason",
                "finished by hand"
            ]
        )
    );
    insta::assert_snapshot!(
        "show_json",
        redact(&s, &s.ok_text(&["task", "show", "2", "--json"]).stdout)
    );
    insta::assert_snapshot!(
        "show_text",
        redact(&s, &s.ok_text(&["task", "show", "1"]).stdout)
    );
    // Status filter, comma-separated and repeated.
    let done = s
        .ok_text(&["task", "list", "--status", "done,blocked", "--json"])
        .json();
    assert_eq!(done.as_array().unwrap().len(), 1);
    // Remove: refused while depended on, forced detaches.
    insta::assert_snapshot!("rm_refused", transcript(&s, &["task", "rm", "2"]));
    s.ok_text(&["task", "rm", "2", "--force"]);
    let three = s.ok_text(&["task", "show", "3", "--json"]).json();
    assert_eq!(three["depends_on"], serde_json::json!([]));
    assert_eq!(s.run_text(&["task", "show", "2"]).code, 2);
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "A"]);
    s.ok_text(&["task", "add", "B", "--after", "1"]);
    let cases: &[&[&str]] = &[
        &["task", "show", "abc"],
        &["task", "show", "99"],
        &["task", "list", "--status", "doing"],
        &["task", "add", "   "],
        &["task", "add", "C", "--after", "42"],
        &["task", "add", "C", "--touches", "../outside/**"],
        &["task", "add", "C", "--label", "two words"],
        &["task", "add", "C", "--key", "task-1"],
        &["task", "add", "C", "--body", "x", "--body-file", "y"],
        &["task", "add", "C", "--body-file", "missing.md"],
        &["task", "edit", "1", "--after", "2"],
        &["task", "edit", "1", "--after", "1"],
        &["task", "edit", "1"],
        &["task", "move", "1", "in_progress"],
        &["task", "move", "1", "backlog"],
        &["-c", "run.concurrency", "config", "show"],
        &["-c", "run.concurrency=0", "config", "show"],
        &["-c", "run.mode=serial", "task", "list"],
        &["--json", "task", "show", "99"],
    ];
    let mut all = String::new();
    for args in cases {
        all.push_str(&transcript(&s, args));
        all.push('\n');
    }
    insta::assert_snapshot!(all);
    // Nothing above changed the board.
    assert_eq!(
        s.ok_text(&["task", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

const BOARD: &str = "examples/demo/board.toml";

fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn board_renders_at_80_and_200_columns() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["board", "import", workspace_file(BOARD).to_str().unwrap()]);
    s.ok_text(&["task", "move", "4", "blocked", "--reason", "needs a spec"]);
    s.ok_text(&["task", "move", "1", "done", "--force"]);
    s.ok_text(&["task", "move", "6", "canceled"]);
    let narrow = s.ok_text(&["board", "--width", "80"]).stdout;
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    insta::assert_snapshot!("board_80", narrow);
    let wide = s.ok_text(&["board", "--width", "200"]).stdout;
    assert!(wide.lines().all(|l| l.chars().count() <= 200), "{wide}");
    insta::assert_snapshot!("board_200", wide);
    insta::assert_snapshot!("board_json", s.ok_text(&["board", "--json"]).stdout);
    let empty = Sandbox::repo_only(ORCH);
    // Only `orch init` makes a database: before it, a command says so.
    let before = empty.run_text(&["board"]);
    assert_eq!(before.code, 2);
    assert!(
        before.stderr.contains("run `orch init`"),
        "{}",
        before.stderr
    );
    assert!(!empty.repo().join(".orch/orch.db").exists());
    empty.ok_text(&["init"]);
    insta::assert_snapshot!("board_empty", empty.ok_text(&["board"]).stdout);
}

#[test]
fn board_import_is_idempotent_and_atomic() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    let board = workspace_file(BOARD);
    let first = s
        .ok_text(&["--json", "board", "import", board.to_str().unwrap()])
        .json();
    assert_eq!(first["created"].as_array().unwrap().len(), 6);
    let again = s
        .ok_text(&["--json", "board", "import", board.to_str().unwrap()])
        .json();
    assert_eq!(again["created"].as_array().unwrap().len(), 0);
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 6);
    assert_eq!(
        s.ok_text(&["task", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        6
    );

    let exported = s.ok_text(&["board", "export"]).stdout;
    insta::assert_snapshot!("export_toml", exported);
    // Export and re-import round-trips without changes.
    std::fs::write(s.repo().join("out.toml"), &exported).unwrap();
    let rt = s.ok_text(&["--json", "board", "import", "out.toml"]).json();
    assert_eq!(rt["unchanged"].as_array().unwrap().len(), 6);
    // An edited file updates in place.
    std::fs::write(
        s.repo().join("out.toml"),
        exported.replace(
            "Add an `add` function",
            "Add an `add` function, with overflow checks",
        ),
    )
    .unwrap();
    let up = s.ok_text(&["--json", "board", "import", "out.toml"]).json();
    assert_eq!(
        up["updated"],
        serde_json::json!([{ "key": "add", "id": 1 }])
    );

    // Malformed files: rejected whole, with the line, and nothing changes.
    let before = s.ok_text(&["task", "list", "--json"]).stdout;
    let bad_files = [
        ("syntax.toml", "[[task]]\nkey = \"x\"\ntitle = unquoted\n"),
        (
            "unknown-field.toml",
            "[[task]]\nkey = \"x\"\ntitle = \"X\"\nprio = 1\n",
        ),
        ("missing-title.toml", "[[task]]\nkey = \"x\"\n"),
        (
            "dangling.toml",
            "[[task]]\nkey = \"new\"\ntitle = \"New\"\n\n[[task]]\nkey = \"y\"\ntitle = \"Y\"\nafter = [\"nope\"]\n",
        ),
        (
            "cycle.toml",
            "[[task]]\nkey = \"add\"\ntitle = \"Add\"\nafter = [\"sub\"]\n",
        ),
        (
            "dup.toml",
            "[[task]]\nkey = \"a\"\ntitle = \"A\"\n[[task]]\nkey = \"a\"\ntitle = \"A again\"\n",
        ),
        (
            "glob.toml",
            "[[task]]\nkey = \"g\"\ntitle = \"G\"\ntouches = [\"/etc/**\"]\n",
        ),
    ];
    let mut all = String::new();
    for (name, text) in bad_files {
        std::fs::write(s.repo().join(name), text).unwrap();
        all.push_str(&transcript(&s, &["board", "import", name]));
        all.push('\n');
    }
    all.push_str(&transcript(&s, &["board", "import", "no-such-file.toml"]));
    insta::assert_snapshot!("import_errors", all);
    assert_eq!(s.ok_text(&["task", "list", "--json"]).stdout, before);
}

#[test]
fn config_show_names_every_source() {
    let s = Sandbox::repo_only(ORCH);
    std::fs::create_dir_all(s.dir().join("home/.config/orch")).unwrap();
    std::fs::write(
        s.dir().join("home/.config/orch/config.toml"),
        "[agent]\npreset = \"claude\"\n",
    )
    .unwrap();
    std::fs::write(
        s.repo().join("orch.toml"),
        "[run]\nconcurrency = 8\nmode = \"incremental\"\n",
    )
    .unwrap();
    let r = Run::from(
        s.cmd(&["-c", "policy.on_conflict=block", "config", "show"])
            .env("ORCH_VALIDATE__WORKER", "[\"cargo test\"]")
            .env("ORCH_RUN__MODE", "parallel")
            .env("ORCH_TEST_DATABASE_URL", "postgres://ignored")
            // Not this machine's cores, which the snapshot cannot know.
            .env("ORCH_VALIDATE__INTEGRATION_SLOTS", "3")
            .env("ORCH_VALIDATE__SLOTS", "4")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("config_show", redact(&s, &r.stdout));
    let j = s.ok_text(&["--json", "config", "show"]).json();
    assert_eq!(j["config"]["run"]["concurrency"], 8);
    assert_eq!(
        j["sources"]["run.concurrency"],
        s.repo().join("orch.toml").display().to_string()
    );
    assert_eq!(
        j["sources"]["agent.preset"],
        s.dir()
            .join("home/.config/orch/config.toml")
            .display()
            .to_string()
    );
    // Errors name the file, the key and what is allowed.
    std::fs::write(
        s.repo().join("orch.toml"),
        "[run]\nconcurency = 8\n[policy]\non_conflict = \"ignore\"\n",
    )
    .unwrap();
    insta::assert_snapshot!("config_errors", transcript(&s, &["config", "show"]));
    let r = Run::from(
        s.cmd(&["config", "show"])
            .env("ORCH_AGENT__TIMEOUT", "soon")
            .env("ORCH_RUN__CONCURRENCY", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2);
    std::fs::remove_file(s.repo().join("orch.toml")).unwrap();
    let r = Run::from(
        s.cmd(&["config", "show"])
            .env("ORCH_AGENT__TIMEOUT", "soon")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2);
    insta::assert_snapshot!("config_env_error", redact(&s, &r.stderr));
}

#[test]
fn two_processes_writing_at_once_both_succeed() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    let per_writer = 20;
    let spawn = |w: usize| {
        let cmds: Vec<Command> = (0..per_writer)
            .map(|i| s.cmd(&["task", "add", &format!("writer {w} task {i}")]))
            .collect();
        std::thread::spawn(move || {
            let mut busy = 0;
            for mut c in cmds {
                let o = c.output().unwrap();
                if !o.status.success() {
                    let err = String::from_utf8_lossy(&o.stderr).to_string();
                    assert!(
                        err.contains("the database is busy"),
                        "unexpected failure: {err}"
                    );
                    busy += 1;
                }
            }
            busy
        })
    };
    let (a, b) = (spawn(0), spawn(1));
    let busy = a.join().unwrap() + b.join().unwrap();
    let listed = s.ok_text(&["task", "list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 2 * per_writer - busy);
    assert_eq!(busy, 0, "with a 10 s busy timeout no writer should give up");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = orch_store::Store::open(&orch_store::Location::Sqlite(
            s.repo().join(".orch/orch.db"),
        ))
        .await
        .unwrap();
        store.check_integrity().await.unwrap();
        let events = store
            .events(&orch_store::EventFilter::default())
            .await
            .unwrap();
        assert_eq!(events.len(), 2 * per_writer);
    });
}

#[test]
fn demo_runs_the_whole_lifecycle_on_embedded_defaults() {
    let s = Sandbox::empty(ORCH);
    let dir = s.dir().join("demo");
    let r = s.run_text(&["demo", "--dir", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Every task done, through a failed validation and a conflict on the way.
    assert!(
        r.stdout.contains("tasks: 6 done   0 failed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("attempts: 8, of which 2 failed"),
        "{}",
        r.stdout
    );
    // A failure names its gate command and the end of its output; a retry, its
    // attempt of how many, and the head it runs on.
    assert!(
        r.stderr.contains(
            "Failed #4.1 Add an integer `div` function: worker validation failed: `sh tests.sh` exited with code 1\n"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("| FAIL: div 9 3 gave 27, expected 3"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("Retrying #4 Add an integer `div` function (attempt 2 of 2) on "),
        "{}",
        r.stderr
    );
    // #5 or #6, whichever merged second.
    assert!(
        r.stderr.lines().any(|l| l.contains(" Failed #")
            && l.contains(".1 ")
            && l.ends_with(" README title: conflict (README.md)")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("task-"), "{}", r.stderr);
    let tasks = s
        .ok_text(&["--repo", dir.to_str().unwrap(), "task", "list", "--json"])
        .json();
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "done")
    );
    // The integration branch holds the validated work, and its tests pass there.
    let runs = s
        .ok_text(&["--repo", dir.to_str().unwrap(), "--json", "run", "list"])
        .json();
    let run = runs[0]["id"].as_str().unwrap().to_owned();
    let branch = "orch/integration";
    let calc = git_cmd()
        .arg("-C")
        .arg(&dir)
        .args(["show", &format!("{branch}:calc.sh")])
        .output()
        .unwrap();
    let calc = String::from_utf8(calc.stdout).unwrap();
    assert!(calc.contains("add()") && calc.contains("sub()"), "{calc}");
    let div = git_cmd()
        .arg("-C")
        .arg(&dir)
        .args(["show", &format!("{branch}:div.sh")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(div.stdout).unwrap().contains("$1 / $2"),
        "the retry fixed div"
    );
    // The user's branch of the demo repository is where it was: orch never touched it.
    let main_log = git_cmd()
        .arg("-C")
        .arg(&dir)
        .args(["log", "--format=%s", "main"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(main_log.stdout).unwrap(),
        "Configure orch\nA calculator with tests and no functions yet\n"
    );
    let head = git_cmd()
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", branch])
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap().trim().to_owned();
    let exe = env!("CARGO_BIN_EXE_orch");
    let shown = r
        .stdout
        .replace(&run, "[RUN]")
        .replace(&head[..12], "[HEAD]")
        .replace(exe, "[ORCH]");
    insta::assert_snapshot!(redact(&s, &shown));
    // `orch run show` lists every attempt with why it failed.
    let show = s
        .ok_text(&["--repo", dir.to_str().unwrap(), "run", "show", &run])
        .stdout;
    assert!(
        show.contains("task-4-1       failed: worker-validation"),
        "{show}"
    );
    // Each task's title heads its attempts, and a failed gate shows its last lines.
    assert!(
        show.contains("\n  #4 Add an integer `div` function\n"),
        "{show}"
    );
    assert!(
        show.contains("| FAIL: div 9 3 gave 27, expected 3"),
        "{show}"
    );
    // With no id, or `latest`, it is the newest run.
    for newest in [&["run", "show"][..], &["run", "show", "latest"]] {
        let args: Vec<&str> = ["--repo", dir.to_str().unwrap()]
            .iter()
            .chain(newest)
            .copied()
            .collect();
        assert_eq!(s.ok_text(&args).stdout, show);
    }
    // The logs say why div's first attempt failed; the events tell the whole story.
    let logs = s
        .ok_text(&[
            "--repo",
            dir.to_str().unwrap(),
            "logs",
            "--task",
            "4",
            "--attempt",
            "1",
            "--stage",
            "worker",
        ])
        .stdout;
    assert!(logs.contains("FAIL: div 9 3 gave 27, expected 3"), "{logs}");
    // The task as a plain argument, as in `orch logs 4`.
    let plain = s
        .ok_text(&[
            "--repo",
            dir.to_str().unwrap(),
            "logs",
            "4",
            "--attempt",
            "1",
            "--stage",
            "worker",
        ])
        .stdout;
    assert_eq!(plain, logs);
    let events = s
        .ok_text(&[
            "--repo",
            dir.to_str().unwrap(),
            "--json",
            "events",
            "--run",
            &run,
        ])
        .stdout;
    let kinds: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "run.head_advanced").count(),
        6
    );
    assert_eq!(
        s.run_text(&["--repo", dir.to_str().unwrap(), "logs", "--task", "99"])
            .code,
        2
    );
    // Following the logs of a finished run prints them all and ends.
    let followed = s
        .ok_text(&[
            "--repo",
            dir.to_str().unwrap(),
            "logs",
            "--task",
            "4",
            "--attempt",
            "1",
            "--follow",
        ])
        .stdout;
    assert!(
        followed.contains("agent.log <==") && followed.contains("FAIL: div 9 3"),
        "{followed}"
    );
    // A non-empty directory is refused.
    let again = s.run_text(&["demo", "--dir", dir.to_str().unwrap()]);
    assert_eq!(again.code, 2);
}

#[test]
fn run_without_an_agent_is_a_clear_error() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "A"]);
    insta::assert_snapshot!(transcript(&s, &["run"]));
    insta::assert_snapshot!(transcript(&s, &["run", "show", "r-nope"]));
    let list = s.ok_text(&["run", "list"]);
    assert_eq!(list.stdout, "No runs yet. Start one with `orch run`.\n");
}

#[test]
fn a_run_can_be_canceled_from_another_terminal() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "Slow"]);
    let pid_file = s.dir().join("agent.pid");
    let agent = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
    let mut run = s
        .cmd(&["run", "--agent-cmd", &agent])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut run_id = None;
    for _ in 0..200 {
        let runs = s.ok_text(&["--json", "run", "list"]).json();
        if let Some(id) = runs[0]["id"].as_str()
            && pid_file.exists()
        {
            run_id = Some(id.to_owned());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run_id = run_id.expect("the run started its agent");
    let r = s.run_text(&["run", "cancel", &run_id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !orch_validate::runner::is_alive(pid),
        "the agent's child {pid} survived"
    );
    let tasks = s.ok_text(&["task", "list", "--json"]).json();
    assert_eq!(tasks[0]["status"], "backlog", "released, not lost");
    let show = s.ok_text(&["run", "show", &run_id]).stdout;
    assert!(show.contains("(canceled)"), "{show}");
    // The journal says who asked.
    let events = s.ok_text(&["--json", "events", "--run", &run_id]).stdout;
    let asked = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["kind"] == "control.requested")
        .expect("the cancel request journaled");
    assert_eq!(asked["actor"], "human:tester");
    assert_eq!(asked["reason"], "cancel-run requested");
    // Canceling an ended run is refused.
    let again = s.run_text(&["run", "cancel", &run_id]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("has already ended"),
        "{}",
        again.stderr
    );
}

#[test]
fn workers_need_postgresql() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "one"]);
    let r = s.run_text(&["-c", "run.executors=workers", "run", "--agent-cmd", "true"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("needs a PostgreSQL database"),
        "{}",
        r.stderr
    );
    let r = s.run_text(&["worker", "--drain"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("needs a PostgreSQL database"),
        "{}",
        r.stderr
    );
    assert_eq!(s.statuses(), vec!["backlog"], "nothing claimed");
}

#[test]
fn a_preset_runs_its_agent_cli_with_the_prompt() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&[
        "task",
        "add",
        "Greet the world",
        "--body",
        "Write hello.txt.",
    ]);
    // A stand-in `claude` that checks the preset's arguments, reads the prompt on
    // stdin, does the work and reports its usage as the real one does.
    let bin = s.dir().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("claude");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncase \"$1\" in --version) echo '2.1.332 (Claude Code)'; exit 0;; --help) echo '--print --output-format --verbose --permission-mode --resume --allowedTools'; exit 0;; esac\n[ \"$1\" = -p ] && [ \"$2\" = --output-format ] && [ \"$3\" = stream-json ] && [ \"$6\" = acceptEdits ] || exit 9\nhead -1 > hello.txt\necho '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":3,\"session_id\":\"s-1\",\"total_cost_usd\":0.0125,\"usage\":{\"input_tokens\":1000,\"output_tokens\":200}}'\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    // Without a credential, the preflight stops the run before any claim.
    let r = Run::from(
        s.cmd(&["run", "--agent", "claude"])
            .env("PATH", &path)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no credential for claude: set ANTHROPIC_API_KEY"),
        "{}",
        r.stderr
    );
    assert_eq!(
        s.ok_text(&["--json", "task", "show", "1"]).json()["status"],
        "backlog"
    );
    let r = Run::from(
        s.cmd(&["run", "--agent", "claude"])
            .env("PATH", &path)
            .env("ANTHROPIC_API_KEY", "sk-test")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let run = s.ok_text(&["--json", "run", "list"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hello = git_cmd()
        .arg("-C")
        .arg(s.repo())
        .args(["show", "orch/integration:hello.txt"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(hello.stdout).unwrap(),
        "# Task #1: Greet the world\n"
    );
    // The merge candidate's pin against git gc went with its attempt's cleanup.
    let pins = git_cmd()
        .arg("-C")
        .arg(s.repo())
        .args(["for-each-ref", "refs/orch/"])
        .output()
        .unwrap();
    assert!(pins.status.success() && pins.stdout.is_empty(), "{pins:?}");

    // What the CLI reported is kept: per attempt and per run, and per task.
    let show = s.ok_text(&["--json", "run", "show", &run]).json();
    assert_eq!(show["attempts"][0]["usage"]["session_id"], "s-1");
    assert_eq!(show["usage"]["input_tokens"], 1000);
    assert_eq!(show["usage"]["cost"], 0.0125);
    let text = s.ok_text(&["run", "show", &run]).stdout;
    assert!(
        text.contains("1,200 tokens (1,000 in, 200 out, 0 cached), $0.0125, 3 turns"),
        "{text}"
    );
    let task = s.ok_text(&["--json", "task", "show", "1"]).json();
    assert_eq!(task["usage"]["output_tokens"], 200);
    let board = s.ok_text(&["--json", "board"]).json();
    let done = board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "done")
        .unwrap();
    assert_eq!(done["tasks"][0]["usage"]["cost"], 0.0125);
    assert!(
        s.ok_text(&["board", "--width", "80"])
            .stdout
            .contains("$0.0125")
    );
    assert!(s.ok_text(&["task", "show", "1"]).stdout.contains("used:"));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    for i in 0..200 {
        s.ok_text(&["task", "add", &format!("task {i}")]);
    }
    // Like `orch task list | head -1`: the reader goes away after one line.
    let mut child = s
        .cmd(&["events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        matches!(o.status.code(), Some(0) | Some(141)),
        "{:?}",
        o.status
    );
}

#[test]
fn task_retry_unblock_and_cancel() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "fails"]);
    s.ok_text(&["task", "add", "blocked"]);
    s.ok_text(&["task", "add", "dropped"]);
    s.ok_text(&["task", "move", "2", "blocked"]);
    // Refusals name the status and what is allowed.
    let r = s.run_text(&["task", "retry", "2"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("task 2 is blocked; only a failed task can be retried"),
        "{}",
        r.stderr
    );
    assert_eq!(s.run_text(&["task", "unblock", "1"]).code, 2);
    s.ok_text(&["task", "unblock", "2", "--reason", "decided"]);
    s.ok_text(&["task", "cancel", "3"]);
    // A run in which task 1 fails; then it is retried.
    let r = s.run_text(&[
        "run",
        "--agent-cmd",
        "exit 3",
        "--max-attempts",
        "1",
        "--task",
        "1",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    s.ok_text(&["task", "retry", "1", "--reason", "new model"]);
    let st = s.statuses();
    assert_eq!(st, vec!["backlog", "backlog", "canceled"]);
    let history = s.ok_text(&["task", "show", "1"]).stdout;
    assert!(
        history.contains("failed -> backlog: retried: new model"),
        "{history}"
    );
}

#[test]
fn canceling_a_running_task_leaves_the_rest_of_its_run_going() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "slow"]);
    s.ok_text(&["task", "add", "quick"]);
    let pid_file = s.dir().join("slow.pid");
    let agent = format!(
        "if [ \"$ORCH_TASK_TITLE\" = slow ]; then sleep 300 & echo $! > {}; wait; else sleep 1; echo ok > quick.txt; fi",
        pid_file.display()
    );
    let mut run = s
        .cmd(&["run", "--agent-cmd", &agent, "--concurrency", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if pid_file.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(pid_file.exists(), "the slow agent started");
    let r = s.run_text(&["task", "cancel", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("stops task #1 and goes on with the rest"),
        "{}",
        r.stdout
    );
    let status = run.wait().unwrap();
    // A person's cancel is not a failure of the run: the other task is done.
    assert_eq!(status.code(), Some(0));
    let st = s.statuses();
    assert_eq!(st, vec!["canceled", "done"]);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !orch_validate::runner::is_alive(pid),
        "the canceled agent's child {pid} survived"
    );
}

#[test]
fn cleanup_removes_what_no_live_attempt_uses() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "good"]);
    s.ok_text(&["task", "add", "bad"]);
    // The bad task's attempts fail and keep their worktrees (cleanup = on-success).
    let agent = "echo \"$ORCH_TASK_TITLE\" > out.txt; [ \"$ORCH_TASK_TITLE\" = good ]";
    let r = s.run_text(&["run", "--agent-cmd", agent, "--max-attempts", "1"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let run = s.ok_text(&["--json", "run", "list"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Within worktrees.keep_failed (7 days by default) the failed attempt stays.
    let dry = s.ok_text(&["cleanup", "--dry-run"]).stdout;
    assert!(
        dry.contains(&format!(
            "would keep orch/{run}/task-2-1: a failed attempt, kept for worktrees.keep_failed (7d)"
        )),
        "{dry}"
    );
    assert!(
        !dry.contains("integration\n") && !dry.contains("orch/integration"),
        "{dry}"
    );
    let out = s.ok_text(&["cleanup"]).stdout;
    assert!(
        out.contains(&format!("kept orch/{run}/task-2-1: a failed attempt")),
        "{out}"
    );
    // Past it, its branch goes, unmerged work and all (its worktree went back to the
    // pool when the attempt ended).
    let dry = s
        .ok_text(&["-c", "worktrees.keep_failed=1ms", "cleanup", "--dry-run"])
        .stdout;
    assert!(
        dry.contains(&format!(
            "would delete branch orch/{run}/task-2-1 (work in no integration branch"
        )),
        "{dry}"
    );
    let out = s
        .ok_text(&["-c", "worktrees.keep_failed=1ms", "cleanup"])
        .stdout;
    assert!(
        out.contains(&format!("deleted branch orch/{run}/task-2-1")),
        "{out}"
    );
    assert_eq!(s.ok_text(&["cleanup"]).stdout, "Nothing to clean up.\n");
    // The pool stays until asked; then nothing of it is left. (Two attempt worktrees:
    // the good task's merge had the tree its worker gate passed, with the same, empty,
    // commands, so no integration checkout was made.)
    let out = s.ok_text(&["cleanup", "--pool"]).stdout;
    assert!(out.contains("pool: 2 worktrees removed"), "{out}");
    let list = git_cmd()
        .arg("-C")
        .arg(s.repo())
        .args(["worktree", "list", "--porcelain"])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
    // The integration branch, with the validated work, stays.
    let branches = git_cmd()
        .arg("-C")
        .arg(s.repo())
        .args(["branch", "--list", "orch/*"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(branches.stdout).unwrap().trim(),
        "orch/integration"
    );
}

/// Starts `orch run --agent-cmd AGENT` in the background.
fn background_run(s: &Sandbox, agent: &str) -> std::process::Child {
    s.cmd(&["run", "--agent-cmd", agent])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (up to 30 s) until the newest run exists and `ready` holds for it; its id.
fn wait_for_run(s: &Sandbox, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never got going"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        if let Some(run) = s.ok_text(&["--json", "run", "list"]).json()[0]["id"].as_str()
            && ready(run)
        {
            return run.to_owned();
        }
    }
}

#[test]
fn a_killed_run_is_flagged_its_leftovers_cleaned_and_it_resumes() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "slow"]);
    s.ok_text(&["task", "add", "quick"]);
    // "slow" waits for a file that only exists after the crash; "quick" is done at once.
    let flag = s.dir().join("go");
    let agent = format!(
        "if [ \"$ORCH_TASK_TITLE\" = slow ]; then while [ ! -e {} ]; do sleep 0.05; done; fi; echo \"$ORCH_TASK_TITLE\" > \"$ORCH_TASK_TITLE.txt\"",
        flag.display()
    );
    let mut child = background_run(&s, &agent);
    // Wait until "quick" is done and "slow"'s agent runs, then SIGKILL orch.
    let run = wait_for_run(&s, |run| {
        s.statuses() == ["in_progress", "done"] && !tagged_with(run).is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!tagged_with(&run).is_empty(), "the agent outlives its orch");

    // A new run refuses, naming the interrupted one and the ways on.
    let r = s.run_text(&["run", "--agent-cmd", "true"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("run {run} was interrupted"))
            && r.stderr.contains("orch run --resume")
            && r.stderr.contains("holds 1 task(s)"),
        "{}",
        r.stderr
    );
    let list = s.ok_text(&["--json", "run", "list"]).json();
    assert_eq!(list[0]["interrupted"], true, "{list}");
    let show = s.ok_text(&["run", "show", &run]).stdout;
    assert!(
        show.contains(&format!(
            "interrupted: no orch drives it; `orch run resume {run}`"
        )),
        "{show}"
    );
    let show = s.ok_text(&["--json", "run", "show", &run]).json();
    assert_eq!(show["interrupted"], true, "{show}");
    assert_eq!(show["driven_by"], Value::Null, "{show}");

    // Cleanup lists the leftover agent, keeps the run's attempts, and stops it.
    let dry = s.ok_text(&["--json", "cleanup", "--dry-run"]).json();
    let procs = dry["processes"].as_array().unwrap();
    assert!(
        !procs.is_empty() && procs.iter().all(|p| p["run"] == run.as_str()),
        "{dry}"
    );
    let out = s.ok_text(&["cleanup"]).stdout;
    assert!(out.contains("stopped process group"), "{out}");
    assert!(
        out.contains(&format!("kept run {run}: interrupted")),
        "{out}"
    );
    assert!(
        tagged_with(&run).is_empty(),
        "cleanup stopped the leftovers"
    );

    // A kill in the middle of an advance leaves the line's ref lock behind; every
    // later advance would fail on it.
    let line_lock = s.repo().join(".git/refs/heads/orch/integration.lock");
    std::fs::write(&line_lock, "").unwrap();

    // Resume: the slow task is run again (uncounted) and everything ends done.
    std::fs::write(&flag, "").unwrap();
    let r = s.run_text(&["--json", "run", "--resume"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary = r.json();
    assert_eq!(summary["run"], run.as_str());
    let noted = |what: &str| {
        summary["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(what))
    };
    assert!(noted("took the run over"), "{summary}");
    assert!(noted("removed the stale lock"), "{summary}");
    assert!(!line_lock.exists());
    assert_eq!(s.statuses(), ["done", "done"]);
    let events = s.ok_text(&["--json", "events", "--run", &run]).stdout;
    assert!(events.contains("\"kind\":\"run.resumed\""), "{events}");
    assert!(events.contains("\"kind\":\"lease.taken_over\""), "{events}");
    // Nothing left to resume; resuming it again is harmless.
    let r = s.run_text(&["run", "--resume"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no interrupted run"), "{}", r.stderr);
    s.ok_text(&["run", "resume", &run]);
    assert_eq!(s.statuses(), ["done", "done"]);
}

#[test]
fn a_live_run_cannot_be_driven_twice() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "slow"]);
    let flag = s.dir().join("go");
    let agent = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo x > x.txt",
        flag.display()
    );
    let mut child = background_run(&s, &agent);
    let run = wait_for_run(&s, |_| s.statuses() == ["in_progress"]);
    let show = s.ok_text(&["--json", "run", "show", &run]).json();
    assert_eq!(show["interrupted"], false, "{show}");
    assert!(
        show["driven_by"].as_str().unwrap().starts_with("orch@"),
        "{show}"
    );
    // A second process is refused, and says who drives the run.
    let r = s.run_text(&["run", "resume", &run]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("run {run} is driven by orch@")),
        "{}",
        r.stderr
    );
    let r = s.run_text(&["run", "--resume"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no interrupted run"), "{}", r.stderr);
    // A new run beside it does not take its task.
    std::fs::write(&flag, "").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(s.statuses(), ["done"]);
}

#[test]
fn an_agent_without_its_credential_is_told_which_setting_passes_it() {
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "Anything"]);
    let r = s.run_text(&[
        "run",
        "--agent-cmd",
        "echo 'Not logged in · Please run /login'; exit 1",
        "--max-attempts",
        "1",
    ]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("agent.env_extra"), "{}", r.stdout);
    // A list key takes a comma list on the command line.
    let shown = s
        .ok_text(&[
            "--json",
            "config",
            "show",
            "-c",
            "agent.env_extra=MY_KEY,MY_*",
        ])
        .json();
    assert_eq!(
        shown["config"]["agent"]["env_extra"],
        serde_json::json!(["MY_KEY", "MY_*"])
    );
    // A retry at once is a natural setting.
    let shown = s
        .ok_text(&["--json", "config", "show", "-c", "policy.backoff=0s"])
        .json();
    assert_eq!(shown["config"]["policy"]["backoff"], "0s");
    // An agent that printed nothing: its log says so, and a gate's log says what ran.
    s.ok_text(&["task", "add", "Quiet"]);
    let r = s.run_text(&[
        "run",
        "--agent-cmd",
        "touch quiet.txt",
        "--validate",
        "test -f quiet.txt",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let agent = s
        .ok_text(&["logs", "--task", "2", "--stage", "agent"])
        .stdout;
    assert!(agent.contains("(empty: nothing was printed)"), "{agent}");
    let gate = s
        .ok_text(&["logs", "--task", "2", "--stage", "worker"])
        .stdout;
    assert!(
        gate.contains("$ test -f quiet.txt") && gate.contains("[orch: exited with code 0 after"),
        "{gate}"
    );
}

#[test]
fn serve_prints_a_url_with_its_token_and_refuses_requests_without_it() {
    use std::io::{BufRead, Read, Write};
    use std::os::unix::process::CommandExt;
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "shown on the board"]);
    let mut child = s
        .cmd(&["serve", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    let (base, token) = url.split_once("/?token=").expect("a URL with its token");
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches("/orch")
        .to_owned();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let get = |cookie: &str| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "GET /orch/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}\r\n"
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    let without = get("");
    let with = get(&format!("Cookie: orch_token_{port}={token}\r\n"));
    // Starting a run from the dashboard: with no agent configured, `orch run` refuses,
    // and the page says why.
    let at = with.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &with[at..at + 32];
    let body = format!("csrf={csrf}");
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "POST /orch/runs/start HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: orch_token_{port}={token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut started = String::new();
    c.read_to_string(&mut started).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    assert!(with.contains("shown on the board"), "{with}");
    assert!(started.starts_with("HTTP/1.1 409"), "{started}");
    assert!(started.contains("the run did not start"), "{started}");
    assert!(started.contains("agent"), "{started}");
}

#[test]
fn a_run_tells_notify_command_and_webhook_about_failures_and_its_end() {
    use std::io::{Read, Write};
    let s = Sandbox::repo_only(ORCH);
    s.ok_text(&["init"]);
    s.ok_text(&["task", "add", "good"]);
    s.ok_text(&["task", "add", "bad"]);
    // A webhook receiver on loopback that answers 200 and keeps every body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        listener.set_nonblocking(false).unwrap();
        for conn in listener.incoming().take(3) {
            let mut c = conn.unwrap();
            let mut buf = vec![0; 65536];
            let mut got = 0;
            // Read until the body's announced length has arrived.
            loop {
                let n = c.read(&mut buf[got..]).unwrap();
                if n == 0 {
                    break;
                }
                got += n;
                let text = String::from_utf8_lossy(&buf[..got]).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if body.len() >= len {
                        bodies.push(body.to_owned());
                        break;
                    }
                }
            }
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        }
        bodies
    });
    let told = s.dir().join("told.jsonl");
    let command = format!("notify.command=cat >> {}", told.display());
    let webhook = format!("notify.webhook={hook}");
    let agent = "echo x > out.txt; [ \"$ORCH_TASK_TITLE\" = good ]";
    let r = s.run_text(&[
        "-c",
        &command,
        "-c",
        &webhook,
        "run",
        "--agent-cmd",
        agent,
        "--max-attempts",
        "1",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let lines = std::fs::read_to_string(&told).unwrap();
    let kinds: Vec<(String, String)> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{lines}");
    assert!(
        kinds[0].0 == "task.moved" && kinds[0].1.contains("failed"),
        "{kinds:?}"
    );
    assert!(
        kinds[1].0 == "run.moved" && kinds[1].1.contains("completed"),
        "{kinds:?}"
    );
    // The webhook got the same two (a third never came: the receiver is done).
    let _ =
        std::net::TcpStream::connect(hook.trim_start_matches("http://").trim_end_matches("/hook"));
    let bodies = received.join().unwrap();
    assert!(
        bodies[0].contains("\"task.moved\"") && bodies[1].contains("\"run.moved\""),
        "{bodies:?}"
    );
    // A webhook orch cannot speak to is refused up front, naming the key.
    s.ok_text(&["task", "add", "third"]);
    let r = s.run_text(&[
        "-c",
        "notify.webhook=https://example.com/x",
        "run",
        "--agent-cmd",
        "true",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("notify.webhook"), "{}", r.stderr);
}

/// `orch agents check` exits 1 whenever something it checked cannot run, named or
/// not, and checks a custom agent command's program with `--command`.
#[test]
fn agents_check_fails_when_anything_checked_cannot_run() {
    let s = Sandbox::empty(ORCH).with_path("/usr/bin:/bin");
    // No agent CLI on this PATH: every preset fails, and so does the check.
    let all = s.run_text(&["agents", "check"]);
    assert_eq!(all.code, 1, "{}", all.stdout);
    let missing = s.run_text(&[
        "agents",
        "check",
        "--command",
        "no-such-agent --yes {prompt_file}",
    ]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stdout.contains("custom: cannot run") && missing.stdout.contains("no-such-agent"),
        "{}",
        missing.stdout
    );
    for ok in [
        "sh -c 'cat {prompt_file}'",
        "FOO=1 echo hello",
        "/bin/sh -c true",
    ] {
        let r = s.run_text(&["--json", "agents", "check", "--command", ok]);
        assert_eq!(r.code, 0, "{ok}: {}", r.stdout);
        assert_eq!(r.json()[0]["problems"], serde_json::json!([]));
    }
}

/// A person's changes are journaled under their git `user.name`, and under `$USER`
/// only when git knows no name.
#[test]
fn a_persons_changes_are_journaled_under_their_git_name() {
    let s = Sandbox::new(ORCH);
    s.ok_text(&["task", "add", "anonymous"]);
    s.git(&["config", "user.name", "Grace Hopper"]);
    s.ok_text(&["task", "add", "named"]);
    let events = s.ok_text(&["--json", "events"]).stdout;
    let actors: Vec<String> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "task.created")
        .map(|e| e["actor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actors, ["human:tester", "human:Grace Hopper"]);
}

/// A failed agent's last lines are in its failure's words, and so in its retry's
/// prompt: the retry knows what went wrong.
#[test]
fn an_agent_failure_tells_its_retry_how_its_output_ended() {
    let s = Sandbox::new(ORCH);
    s.ok_text(&["task", "add", "flaky"]);
    let agent = "if [ \"$ORCH_ATTEMPT\" = 1 ]; then echo 'step one'; echo 'boom: libfoo is missing' >&2; exit 4; fi; echo ok > ok.txt";
    let r = s.run_text(&[
        "run",
        "--agent-cmd",
        agent,
        "--max-attempts",
        "2",
        "-c",
        "policy.backoff=10ms",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run = s.json(&["run", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let prompt = s
        .repo()
        .join(format!(".orch/artifacts/{run}/1/2/prompt.md"));
    let prompt = std::fs::read_to_string(&prompt).unwrap();
    assert!(
        prompt.contains("exit code 4") && prompt.contains("boom: libfoo is missing"),
        "{prompt}"
    );
    // stdout and stderr are two pipes: their lines may come in either order.
    let show = s.ok_text(&["run", "show"]).stdout;
    assert!(
        show.contains("its output ended: ")
            && show.contains("step one")
            && show.contains("boom: libfoo is missing"),
        "{show}"
    );
}

#[test]
fn gates_wait_for_a_slot_worker_and_integration_together() {
    let s = Sandbox::new(ORCH);
    for t in ["a", "b", "c", "d"] {
        s.add(t, &[]);
    }
    let dir = s.dir().join("gates");
    std::fs::create_dir_all(dir.join("running")).unwrap();
    // Each gate notes how many gates run beside it (itself included).
    let gate = format!(
        "touch {d}/running/$$ && ls {d}/running | wc -l >> {d}/seen && sleep 0.3 && rm {d}/running/$$",
        d = dir.display()
    );
    let gates = format!("[{gate:?}]");
    s.ok(&[
        "-c",
        "validate.slots=1",
        "-c",
        &format!("validate.worker={gates}"),
        "-c",
        &format!("validate.integration={gates}"),
        "run",
        "--agent-cmd",
        "echo $ORCH_TASK_ID > f$ORCH_TASK_ID.txt",
        "--concurrency",
        "4",
    ]);
    let seen = std::fs::read_to_string(dir.join("seen")).unwrap();
    let counts: Vec<&str> = seen.lines().map(str::trim).collect();
    assert!(
        counts.len() >= 5,
        "4 worker gates and at least one integration gate: {seen}"
    );
    assert!(
        counts.iter().all(|c| *c == "1"),
        "gates ran side by side: {seen}"
    );
    assert_eq!(s.statuses(), vec!["done"; 4]);
}
