//! What a newcomer meets in their first hour, through the `orch` binary: the audit log
//! naming its tasks and filtered, labels filtering the board, `orch config get` and
//! `set` (comments kept, a bad value refused and nothing written), shell completions,
//! and a second `orch serve` on a taken port told what to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orch_testkit::Sandbox;

const ORCH: &str = env!("CARGO_BIN_EXE_orch");

/// JSON lines as a list: one line reads as a single document.
fn lines(v: &serde_json::Value) -> Vec<serde_json::Value> {
    match v {
        serde_json::Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    }
}

#[test]
fn events_name_their_task_and_filter_by_kind_time_and_count() {
    let s = Sandbox::new(ORCH);
    s.add("Add parser", &[]);
    s.add("Write docs", &[]);
    s.ok(&["task", "move", "2", "blocked"]);
    let all = s.ok_text(&["events"]).stdout;
    assert!(all.contains("task.created       #1 Add parser: "), "{all}");
    assert!(all.contains("#2 Write docs: "), "{all}");
    let kinds = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["events"];
        a.extend_from_slice(args);
        lines(&s.json(&a))
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kinds(&["--kind", "task.moved"]), ["task.moved"]);
    assert_eq!(
        kinds(&["--kind", "task."]),
        ["task.created", "task.created", "task.moved"]
    );
    // The newest two, still oldest first.
    assert_eq!(kinds(&["--limit", "2"]), ["task.created", "task.moved"]);
    assert_eq!(kinds(&["--task", "1"]), ["task.created"]);
    assert_eq!(kinds(&["--since", "1d"]).len(), 3);
    // Everything was written before this command started.
    assert!(kinds(&["--since", "1ms"]).is_empty());
    let json = lines(&s.json(&["events", "--task", "2"]));
    assert_eq!(json[0]["task_title"], "Write docs");
    let bad = s.run_text(&["events", "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("invalid duration"), "{}", bad.stderr);
}

#[test]
fn labels_filter_the_task_list_and_the_board() {
    let s = Sandbox::new(ORCH);
    s.add("Parser", &["--label", "core"]);
    s.add("Docs", &["--label", "docs"]);
    s.add(
        "Parser docs",
        &["--label", "core", "--label", "docs", "--after", "1"],
    );
    let ids = |args: &[&str]| -> Vec<i64> {
        s.json(args)
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&["task", "list", "--label", "core"]), [1, 3]);
    assert_eq!(ids(&["task", "list", "--label", "core,docs"]), [3]);
    assert_eq!(ids(&["task", "list", "-l", "docs", "-l", "core"]), [3]);
    let board = s.json(&["board", "--label", "docs"]);
    let shown: Vec<i64> = board["columns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["tasks"].as_array().unwrap().clone())
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(shown, [2, 3]);
    // A task shown waits on one that is not: the mark still says so.
    let text = s
        .ok_text(&["board", "--label", "docs", "--width", "60"])
        .stdout;
    assert!(text.contains("waiting on #1"), "{text}");
    assert!(!text.contains("Parser\n"), "{text}");
    let none = s.ok_text(&["board", "--label", "gpu"]).stdout;
    assert!(none.contains("No task carries the label gpu"), "{none}");
}

#[test]
fn config_get_and_set_keep_the_file_and_refuse_bad_values() {
    let s = Sandbox::new(ORCH);
    let file = s.repo().join("orch.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        s.ok_text(&["config", "get", "run.concurrency"]).stdout,
        "4\n"
    );
    let out = s.ok_text(&["config", "set", "run.concurrency", "8"]).stdout;
    assert!(out.contains("run.concurrency = 8"), "{out}");
    assert_eq!(
        s.ok_text(&["config", "get", "run.concurrency"]).stdout,
        "8\n"
    );
    let after = std::fs::read_to_string(&file).unwrap();
    // Every comment of the template is still there.
    for line in before.lines().filter(|l| l.trim_start().starts_with('#')) {
        assert!(after.contains(line), "lost {line:?}:\n{after}");
    }
    let got = s.json(&["config", "get", "run.concurrency"]);
    assert_eq!(got["value"], 8);
    assert!(
        got["source"].as_str().unwrap().ends_with("orch.toml"),
        "{got}"
    );
    s.ok(&["config", "set", "validate.worker", "make test, make lint"]);
    let list = s.json(&["config", "get", "validate.worker"]);
    assert_eq!(list["value"], serde_json::json!(["make test", "make lint"]));
    let section = s.ok_text(&["config", "get", "budget"]).stdout;
    assert!(section.contains("budget.run_usd = "), "{section}");
    let kept = std::fs::read_to_string(&file).unwrap();
    for (key, value, says) in [
        ("run.concurrency", "0", "run.concurrency"),
        ("run.mode", "sideways", "expected one of"),
        ("run.nonsense", "1", "unknown key \"nonsense\""),
    ] {
        let r = s.run_text(&["config", "set", key, value]);
        assert_eq!(r.code, 2, "{key}={value}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{key}={value}: {}", r.stderr);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), kept, "{key}");
    }
    let r = s.run_text(&["config", "get", "run.nonsense"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown key"), "{}", r.stderr);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let s = Sandbox::empty(ORCH);
    for (shell, marks) in [
        ("bash", "complete -F _orch"),
        ("zsh", "#compdef orch"),
        ("fish", "complete -c orch"),
    ] {
        let out = s.ok_text(&["completions", shell]).stdout;
        assert!(
            out.contains(marks),
            "{shell}: {}",
            &out[..out.len().min(300)]
        );
        assert!(out.contains("cleanup"), "{shell} completes subcommands");
    }
    let r = s.run_text(&["completions", "tcsh"]);
    assert_eq!(r.code, 2);
}

#[test]
fn a_second_dashboard_on_a_taken_port_says_what_to_do() {
    let s = Sandbox::new(ORCH);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let r = s.run_text(&["serve", "--port", &port]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("the port is taken"), "{}", r.stderr);
    assert!(r.stderr.contains("--port 0"), "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("Address already in use").count(),
        0,
        "{}",
        r.stderr
    );
}

/// `orch demo` on a terminal (through `script`, which gives it one), with colour and
/// with `NO_COLOR`: coloured verbs, failures with their output, and one status line
/// redrawn in place.
#[test]
fn a_run_on_a_terminal_has_colour_and_one_live_status_line() {
    for no_colour in [false, true] {
        let s = Sandbox::empty(ORCH);
        let dir = s.dir().join("demo");
        let orch = s.cmd(&["demo", "--dir", dir.to_str().unwrap()]);
        let line = std::iter::once(orch.get_program())
            .chain(orch.get_args())
            .map(|a| shlex::try_quote(a.to_str().unwrap()).unwrap().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]);
        for (k, v) in orch.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if no_colour {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().expect("script (util-linux) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("in flight: #"), "{text}");
        assert!(
            text.contains("\r\x1b[2K"),
            "the status line is redrawn: {text}"
        );
        assert!(
            text.contains(" FAIL: div 9 3 gave 27, expected 3\r\n"),
            "{text}"
        );
        let coloured = text.contains("\x1b[1;31m      Failed\x1b[0m #4.1");
        assert_eq!(coloured, !no_colour, "{text}");
        assert_eq!(text.contains("\x1b[1;"), !no_colour, "{text}");
    }
}
