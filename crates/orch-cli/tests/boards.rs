//! Boards people already keep, through the real binary and the boards' own CLIs:
//! Backlog.md's `backlog` and Taskmaster's `task-master` make the tasks, `orch run`
//! does them, and the CLIs show what orch wrote back; a person's edit in the source
//! during the run is obeyed and never overwritten; a bad source is refused with exit
//! 2 and left as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use orch_testkit::clis::{backlog_or_skip, taskmaster_or_skip};
use std::time::Duration;

use orch_testkit::{Sandbox, wait_for};

/// The binary under test.
const ORCH: &str = env!("CARGO_BIN_EXE_orch");

/// An agent that logs its task's title, fails on `Break`, waits for `release` on
/// `Slow`, and otherwise writes a file.
fn agent(s: &Sandbox) -> (String, PathBuf, PathBuf) {
    let (order, release) = (s.dir().join("order"), s.dir().join("release"));
    let a = format!(
        "echo \"$ORCH_TASK_TITLE\" >> {o}; case \"$ORCH_TASK_TITLE\" in Break) exit 1;; Slow) while [ ! -e {r} ]; do sleep 0.1; done;; esac; echo $ORCH_TASK_ID > t$ORCH_TASK_ID.txt",
        o = order.display(),
        r = release.display()
    );
    (a, order, release)
}

fn spawn_run(s: &Sandbox, agent: &str) -> Child {
    s.cmd(&["run", "--agent-cmd", agent, "--concurrency", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn file_of(dir: &Path, id: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{id} - "))
        })
        .unwrap_or_else(|| {
            let names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            panic!("no file for {id} in {}: {names:?}", dir.display())
        })
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn settle(s: &Sandbox, source: &str) {
    s.ok(&["config", "set", "board.source", source]);
    s.ok(&["config", "set", "policy.max_attempts", "1"]);
    s.ok(&["config", "set", "policy.stale_retries", "0"]);
}

#[test]
fn a_backlog_md_board_is_done_and_written_back_and_a_persons_edit_wins() {
    let Some(backlog) = backlog_or_skip() else {
        return;
    };
    let s = Sandbox::new(ORCH);
    s.tool(
        &backlog,
        &[
            "init",
            "demo",
            "--defaults",
            "--integration-mode",
            "none",
            "--check-branches",
            "false",
            "--auto-open-browser",
            "false",
        ],
    );
    for args in [
        &[
            "task",
            "create",
            "Add greeting",
            "-d",
            "Write hello.txt",
            "-l",
            "core,docs",
            "--priority",
            "high",
            "--ac",
            "hello.txt exists",
        ][..],
        &[
            "task",
            "create",
            "Add farewell",
            "-d",
            "Write bye.txt",
            "--dep",
            "task-1",
            "-l",
            "core",
        ],
        &["task", "create", "Break", "-d", "This one fails"],
        &["task", "create", "Slow", "-d", "Takes its time"],
        &[
            "task",
            "create",
            "Later",
            "-d",
            "After the slow one",
            "--dep",
            "task-4",
        ],
        &["task", "create", "Dropped", "--dep", "task-4"],
        &["task", "create", "Renamed", "--dep", "task-4"],
    ] {
        s.tool(&backlog, args);
    }
    settle(&s, "backlog.md");
    let tasks = s.repo().join("backlog/tasks");
    let (agent, order, release) = agent(&s);
    let run = spawn_run(&s, &agent);
    // orch's claim reaches the source: the CLI shows the slow task in progress.
    wait_for("Slow in progress in Backlog.md", 60, || {
        let list = text(&s.tool(&backlog, &["task", "list", "--plain"]));
        list.split("In Progress:")
            .nth(1)
            .is_some_and(|l| l.contains("TASK-4"))
    });
    // A person marks a task done by hand while the run goes on, removes one and
    // retitles another.
    s.tool(&backlog, &["task", "edit", "5", "-s", "Done"]);
    std::fs::remove_file(file_of(&tasks, "task-6")).unwrap();
    s.tool(&backlog, &["task", "edit", "7", "-t", "Retitled"]);
    let later = file_of(&tasks, "task-5");
    let by_hand = std::fs::read_to_string(&later).unwrap();
    wait_for("the person's edits on the board", 30, || {
        let board = s.json(&["board"]).to_string();
        s.json(&["task", "show", "5"])["status"] == "done"
            && !board.contains("TASK-6")
            && board.contains("Retitled")
    });
    std::fs::write(&release, "").unwrap();
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a task failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = text(&s.tool(&backlog, &["task", "list", "--plain"]));
    let (todo, done) = list.split_once("Done:").unwrap();
    for id in ["TASK-1", "TASK-2", "TASK-4", "TASK-5", "TASK-7"] {
        assert!(done.contains(id), "{id} not done:\n{list}");
    }
    assert!(
        todo.contains("TASK-3") && !list.contains("In Progress:"),
        "{list}"
    );
    let ran = std::fs::read_to_string(&order).unwrap();
    assert!(
        !ran.contains("Later"),
        "the person's Done was not obeyed: {ran}"
    );
    assert!(
        !ran.contains("Dropped") && ran.contains("Retitled"),
        "{ran}"
    );
    // The person's file is as they left it: orch wrote nothing over it.
    assert_eq!(std::fs::read_to_string(&later).unwrap(), by_hand);
    let greeting = std::fs::read_to_string(file_of(&tasks, "task-1")).unwrap();
    assert!(
        greeting.contains("status: Done\n")
            && greeting.contains("<!-- SECTION:NOTES:BEGIN -->\norch: done in run r"),
        "{greeting}"
    );
    assert!(greeting.contains("integration commit "), "{greeting}");
    let broken = std::fs::read_to_string(file_of(&tasks, "task-3")).unwrap();
    assert!(
        broken.contains("status: To Do\n")
            && broken.contains("orch: failed in run ")
            && broken.contains("`orch task retry 3`"),
        "{broken}"
    );
    // The board and the dashboard say where it came from, and each task's id there; a
    // second sync changes nothing.
    let board = text(&s.ok(&["board", "--width", "80"]));
    assert!(board.starts_with("From backlog.md (backlog)"), "{board}");
    assert!(board.contains("Add greeting  TASK-1 · p30"), "{board}");
    let (server, url) = s.serve(0);
    let page = Sandbox::page(&url, "/");
    drop(server);
    assert!(
        page.contains("From <b>backlog.md</b> (<code>backlog</code>)"),
        "{page}"
    );
    assert!(page.contains("<span class=\"key\">TASK-1</span>"), "{page}");
    // Done tasks moved to completed/ (as `backlog cleanup` does) stay on the board.
    let completed = s.repo().join("backlog/completed");
    std::fs::create_dir_all(&completed).unwrap();
    let done_file = file_of(&tasks, "task-1");
    std::fs::rename(&done_file, completed.join(done_file.file_name().unwrap())).unwrap();
    let again = s.json(&["board", "sync"]);
    assert_eq!(again["removed"], serde_json::json!([]), "{again}");
    assert_eq!(again["written"], serde_json::json!([]), "{again}");
    assert_eq!(again["moved"], serde_json::json!([]), "{again}");
}

const TASKS_JSON: &str = r#"{
  "master": {
    "tasks": [
      {"id": 1, "title": "Greeting", "description": "Write hello.txt", "details": "", "status": "pending", "dependencies": [], "priority": "high",
       "subtasks": [
         {"id": 1, "title": "Draft text", "description": "the words", "details": "", "status": "pending", "dependencies": []},
         {"id": 2, "title": "Write file", "description": "the file", "details": "", "status": "pending", "dependencies": [1]}
       ]},
      {"id": 2, "title": "Farewell", "description": "Write bye.txt", "details": "", "status": "pending", "dependencies": [1], "priority": "medium", "subtasks": []},
      {"id": 3, "title": "Slow", "description": "Takes its time", "details": "", "status": "pending", "dependencies": [], "priority": "low", "subtasks": []},
      {"id": 4, "title": "Later", "description": "After the slow one", "details": "", "status": "pending", "dependencies": [3], "priority": "low", "subtasks": []}
    ],
    "metadata": {"created": "2026-12-06T00:00:00.000Z", "description": "Tasks for master context"}
  }
}
"#;

fn statuses(s: &Sandbox, tm: &Path) -> serde_json::Value {
    let out = text(&s.tool(tm, &["list", "--format", "json", "--with-subtasks"]));
    let json = &out[..out.rfind('}').unwrap() + 1];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut m = serde_json::Map::new();
    for t in v["tasks"].as_array().unwrap() {
        m.insert(
            t["id"].to_string().trim_matches('"').to_owned(),
            t["status"].clone(),
        );
        for sub in t["subtasks"].as_array().into_iter().flatten() {
            let id = format!(
                "{}.{}",
                t["id"].to_string().trim_matches('"'),
                sub["id"].to_string().trim_matches('"')
            );
            m.insert(id, sub["status"].clone());
        }
    }
    serde_json::Value::Object(m)
}

#[test]
fn a_taskmaster_board_with_subtasks_is_done_and_a_persons_set_status_wins() {
    let Some(tm) = taskmaster_or_skip() else {
        return;
    };
    let s = Sandbox::new(ORCH);
    let file = s.repo().join(".taskmaster/tasks/tasks.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, TASKS_JSON).unwrap();
    let before = statuses(&s, &tm);
    assert!(
        before.as_object().unwrap().values().all(|v| v == "pending"),
        "{before}"
    );
    settle(&s, "taskmaster");
    let (agent, order, release) = agent(&s);
    let run = spawn_run(&s, &agent);
    wait_for("Slow in progress in Taskmaster", 60, || {
        statuses(&s, &tm)["3"] == "in-progress"
    });
    s.tool(&tm, &["set-status", "--id=4", "--status=done"]);
    wait_for("the person's set-status on the board", 30, || {
        s.json(&["board"]).to_string().contains("\"key\":\"4\"") && board_status(&s, "4") == "done"
    });
    std::fs::write(&release, "").unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = statuses(&s, &tm);
    for id in ["1", "1.1", "1.2", "2", "3", "4"] {
        assert_eq!(after[id], "done", "{id}: {after}");
    }
    let ran = std::fs::read_to_string(&order).unwrap();
    assert!(
        !ran.contains("Later"),
        "the person's done was not obeyed: {ran}"
    );
    assert!(
        ran.lines().position(|l| l == "Write file") > ran.lines().position(|l| l == "Draft text"),
        "{ran}"
    );
    let json = std::fs::read_to_string(&file).unwrap();
    assert!(json.contains("orch: done in run r"), "{json}");
}

fn board_status(s: &Sandbox, key: &str) -> String {
    let board = s.json(&["board"]);
    for col in board["columns"].as_array().unwrap() {
        for t in col["tasks"].as_array().unwrap() {
            if t["key"] == key {
                return col["status"].as_str().unwrap().to_owned();
            }
        }
    }
    String::new()
}

/// Backlog.md task files written by hand under `backlog/tasks`: (name, text).
fn backlog_files(s: &Sandbox, files: &[(&str, &str)]) {
    let tasks = s.repo().join("backlog/tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    for (name, text) in files {
        std::fs::write(tasks.join(name), text).unwrap();
    }
}

#[test]
fn a_bad_source_is_refused_with_exit_2_and_left_untouched() {
    let s = Sandbox::new(ORCH);
    // A Backlog.md task file whose front matter does not parse.
    backlog_files(
        &s,
        &[
            (
                "task-1 - One.md",
                "---\nid: TASK-1\ntitle: One\nstatus: To Do\n---\n",
            ),
            (
                "task-2 - Two.md",
                "---\nid: TASK-2\ntitle: a: b\nstatus: To Do\n---\n",
            ),
        ],
    );
    s.ok(&["config", "set", "board.source", "backlog.md"]);
    let before = snapshot(&s.repo().join("backlog"));
    for args in [&["board", "sync"][..], &["run", "--agent-cmd", "true"]] {
        let out = s.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("backlog/tasks/task-2 - Two.md:3:"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(snapshot(&s.repo().join("backlog")), before);
    assert!(s.json(&["board"]).to_string().contains("\"tasks\":[]"));

    // A Taskmaster file whose tasks wait for each other.
    let file = s.repo().join(".taskmaster/tasks/tasks.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let cycle = TASKS_JSON.replace(
        r#""dependencies": [], "priority": "low""#,
        r#""dependencies": [4], "priority": "low""#,
    );
    std::fs::write(&file, &cycle).unwrap();
    s.ok(&["config", "set", "board.source", "taskmaster"]);
    let out = s.run(&["board", "sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(".taskmaster/tasks/tasks.json:") && err.contains("cycle"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), cycle);
}

#[test]
fn a_source_broken_during_a_run_is_reported_and_the_run_goes_on() {
    let s = Sandbox::new(ORCH);
    let tasks = s.repo().join("backlog/tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    let slow = "---\nid: TASK-1\ntitle: Slow\nstatus: To Do\n---\n";
    let next = "---\nid: TASK-2\ntitle: Next\nstatus: To Do\ndependencies: [TASK-1]\n---\n";
    std::fs::write(tasks.join("task-1 - Slow.md"), slow).unwrap();
    std::fs::write(tasks.join("task-2 - Next.md"), next).unwrap();
    settle(&s, "backlog.md");
    let (agent, order, release) = agent(&s);
    let run = spawn_run(&s, &agent);
    wait_for("Slow's agent", 30, || order.exists());
    // A person saves a half-written file, then finishes it.
    std::fs::write(
        tasks.join("task-2 - Next.md"),
        "---\nid: TASK-2\ntitle: a: b\n---\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(
        tasks.join("task-2 - Next.md"),
        next.replace("title: Next", "title: Next one"),
    )
    .unwrap();
    wait_for("the finished edit on the board", 30, || {
        s.json(&["task", "show", "2"])["title"] == "Next one"
    });
    std::fs::write(&release, "").unwrap();
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("backlog/tasks/task-2 - Next.md:3:"), "{err}");
    let next_now = std::fs::read_to_string(tasks.join("task-2 - Next.md")).unwrap();
    assert!(next_now.contains("status: Done\n"), "{next_now}");
}

#[test]
fn a_task_added_in_orch_to_a_board_from_a_source_says_it_lives_only_in_orch() {
    let s = Sandbox::new(ORCH);
    backlog_files(
        &s,
        &[(
            "task-1 - One.md",
            "---\nid: TASK-1\ntitle: One\nstatus: To Do\n---\n",
        )],
    );
    s.ok(&["config", "set", "board.source", "backlog.md"]);
    s.ok(&["board", "sync"]);
    let before = snapshot(&s.repo().join("backlog"));
    let out = s.run(&["task", "add", "Two"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this board comes from backlog.md (backlog)")
            && err.contains("lives only on orch's board"),
        "{err}"
    );
    // A sync keeps it, and writes nothing of it to the source.
    s.ok(&["board", "sync"]);
    let titles: Vec<String> = s
        .json(&["task", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["One", "Two"]);
    assert_eq!(snapshot(&s.repo().join("backlog")), before);
    // The dashboard's task pages say which is where.
    let (server, url) = s.serve(0);
    let (one, two) = (
        Sandbox::page(&url, "/tasks/1"),
        Sandbox::page(&url, "/tasks/2"),
    );
    drop(server);
    assert!(
        one.contains(
            "From <b>backlog.md</b> (<code>backlog</code>), where its id is <code>TASK-1</code>"
        ),
        "{one}"
    );
    assert!(
        two.contains("Only on orch's board: the board comes from <b>backlog.md</b>"),
        "{two}"
    );
    // orch's own board says nothing.
    s.ok(&["config", "set", "board.source", "orch"]);
    let out = s.run(&["task", "add", "Three"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "{}",
        text(&out)
    );
}
