//! Backlog.md and Taskmaster files read, edited and synced with the board: the files
//! as their CLIs write them, edits that change nothing but the status and the note,
//! and the sync's rule of who changed what.

use std::collections::BTreeMap;

use orch_core::TaskStatus;
use orch_core::source::{Note, Synced, backlog, plan_sync, taskmaster};
use orch_core::task::TaskId;

/// A task file as `backlog task create` wrote it (1.52).
const TASK2: &str = "---\nid: TASK-2\ntitle: Add farewell\nstatus: To Do\nassignee: []\ncreated_date: '2026-12-06 13:02'\nlabels:\n  - core\ndependencies:\n  - TASK-1\nmilestone: m-1\nordinal: 2000\n---\n\n## Description\n\n<!-- SECTION:DESCRIPTION:BEGIN -->\nWrite bye.txt\n<!-- SECTION:DESCRIPTION:END -->\n";

const TASKS_JSON: &str = r#"{
  "master": {
    "tasks": [
      {"id": 1, "title": "Add greeting", "description": "Write hello.txt", "details": "It says hi", "status": "pending", "dependencies": [], "priority": "high", "complexity": 3,
       "subtasks": [
         {"id": 1, "title": "Draft text", "description": "the words", "status": "pending", "dependencies": []},
         {"id": 2, "title": "Write file", "description": "the file", "details": "", "status": "pending", "dependencies": [1]}
       ]},
      {"id": "2", "title": "Add farewell", "description": "Write bye.txt", "status": "pending", "dependencies": ["1"], "priority": "medium", "subtasks": []}
    ]
  }
}"#;

#[test]
fn a_backlog_task_file_maps_its_fields_and_shows_the_rest() {
    let t = backlog::parse("backlog/tasks/task-2.md", TASK2).unwrap();
    assert_eq!(t.key, "TASK-2");
    assert_eq!(t.title, "Add farewell");
    assert_eq!(t.status, "To Do");
    assert_eq!(t.after, vec!["TASK-1"]);
    assert_eq!(t.labels, vec!["core"]);
    assert!(
        t.body.starts_with("## Description\n\nWrite bye.txt"),
        "{}",
        t.body
    );
    assert!(t.body.contains("- milestone: m-1"), "{}", t.body);
    assert!(!t.body.contains("ordinal"), "{}", t.body);
}

#[test]
fn a_backlog_edit_changes_the_status_line_and_the_notes_only() {
    let once = backlog::edit("t.md", TASK2, "In Progress", Some("claimed")).unwrap();
    let twice = backlog::edit("t.md", &once, "Done", Some("landed")).unwrap();
    let expected = TASK2.replace("status: To Do", "status: Done")
        + "\n## Implementation Notes\n\n<!-- SECTION:NOTES:BEGIN -->\nclaimed\n\nlanded\n<!-- SECTION:NOTES:END -->\n";
    assert_eq!(twice, expected);
    assert_eq!(backlog::status_in("t.md", &twice).unwrap(), "Done");
    assert_eq!(
        backlog::edit("t.md", TASK2, "Needs: a look", None)
            .unwrap()
            .lines()
            .nth(3),
        Some("status: 'Needs: a look'")
    );
}

#[test]
fn bad_backlog_files_name_the_file_and_line() {
    let e = backlog::parse("b/t.md", "id: TASK-1\n").unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("b/t.md", 1));
    let e = backlog::parse("b/t.md", "---\nid: TASK-1\ntitle: a: b\n---\n").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.to_string()
            .starts_with("b/t.md:3: the front matter is not valid YAML"),
        "{e}"
    );
    let e =
        backlog::parse("b/t.md", "---\nid: TASK-1\ntitle: x\npriority: huge\n---\n").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
}

#[test]
fn taskmaster_subtasks_are_run_and_their_parent_waits_for_them() {
    let tasks = taskmaster::parse("tasks.json", TASKS_JSON, "master").unwrap();
    let keys: Vec<(&str, bool, Vec<String>)> = tasks
        .iter()
        .map(|t| (t.key.as_str(), t.runnable(), t.after.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("1.1", true, vec![]),
            ("1.2", true, vec!["1.1".to_owned()]),
            ("1", false, vec![]),
            ("2", true, vec!["1.1".to_owned(), "1.2".to_owned()]),
        ]
    );
    let parent = &tasks[2];
    assert_eq!(parent.priority, 30);
    assert!(
        parent.body.contains("## Details\n\nIt says hi") && parent.body.contains("- complexity: 3"),
        "{}",
        parent.body
    );
    assert_eq!(tasks[3].line, 9);
}

#[test]
fn a_taskmaster_edit_replaces_one_string() {
    let out = taskmaster::edit(
        "tasks.json",
        TASKS_JSON,
        "master",
        "1.2",
        "done",
        Some(("orch: done.", "2026-12-06T00:00:00Z")),
    )
    .unwrap();
    let expected = TASKS_JSON
        .replace(
            r#""details": "", "status": "pending", "dependencies": [1]"#,
            r#""details": "<info added on 2026-12-06T00:00:00Z>\norch: done.\n</info added on 2026-12-06T00:00:00Z>", "status": "done", "dependencies": [1]"#,
        );
    assert_eq!(out, expected);
    assert_eq!(
        taskmaster::status_in("tasks.json", &out, "master", "1.2")
            .unwrap()
            .as_deref(),
        Some("done")
    );
    let out =
        taskmaster::edit("tasks.json", TASKS_JSON, "master", "2", "in-progress", None).unwrap();
    assert_eq!(
        out,
        TASKS_JSON.replace(
            r#""status": "pending", "dependencies": ["1"]"#,
            r#""status": "in-progress", "dependencies": ["1"]"#
        )
    );
}

#[test]
fn bad_taskmaster_files_name_the_line() {
    let e = taskmaster::parse(
        "t.json",
        "{\n  \"master\": {\n    \"tasks\": [\n      {\"id\": 1,, }\n",
        "master",
    )
    .unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    let e = taskmaster::parse("t.json", r#"{"other": {"tasks": []}}"#, "master").unwrap_err();
    assert!(
        e.message.contains("no tag \"master\"") && e.message.contains("other"),
        "{e}"
    );
}

fn board(cols: &[(&str, TaskStatus)]) -> BTreeMap<String, (TaskId, TaskStatus)> {
    cols.iter()
        .enumerate()
        .map(|(i, (k, s))| (k.to_string(), (TaskId(i as i64 + 1), *s)))
        .collect()
}

#[test]
fn the_sync_obeys_a_person_writes_orch_back_and_leaves_a_double_change_to_the_person() {
    let st = taskmaster::statuses();
    let mut tasks = taskmaster::parse("tasks.json", TASKS_JSON, "master").unwrap();
    // First sight: everything imported, nothing moved, nothing written.
    let first = plan_sync(&tasks, &st, &BTreeMap::new(), &BTreeMap::new()).unwrap();
    assert_eq!(
        first
            .import
            .tasks
            .iter()
            .map(|t| t.key.as_str())
            .collect::<Vec<_>>(),
        vec!["1.1", "1.2", "2"]
    );
    assert!(first.moves.is_empty() && first.writes.is_empty());
    let memory = first.memory;
    // orch claims 1.1 and lands 1.2: both written, the landing with a note; the parent
    // follows its subtasks.
    let b = board(&[
        ("1.1", TaskStatus::InProgress),
        ("1.2", TaskStatus::Done),
        ("2", TaskStatus::Backlog),
    ]);
    let plan = plan_sync(&tasks, &st, &b, &memory).unwrap();
    let writes: Vec<(&str, &str, Option<Note>)> = plan
        .writes
        .iter()
        .map(|w| (w.key.as_str(), w.status.as_str(), w.note))
        .collect();
    assert_eq!(
        writes,
        vec![
            ("1.1", "in-progress", None),
            ("1.2", "done", Some(Note::Done)),
            ("1", "in-progress", None)
        ]
    );
    // A person sets 2 to done while orch moved it too: the person wins, no write.
    tasks[3].status = "done".into();
    let b = board(&[
        ("1.1", TaskStatus::Backlog),
        ("1.2", TaskStatus::Backlog),
        ("2", TaskStatus::InProgress),
    ]);
    let plan = plan_sync(&tasks, &st, &b, &memory).unwrap();
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(
        (plan.moves[0].key.as_str(), plan.moves[0].to),
        ("2", TaskStatus::Done)
    );
    assert_eq!(
        plan.memory["2"],
        Synced {
            source: "done".into(),
            orch: TaskStatus::Done
        }
    );
    // A task gone from the source leaves the board.
    let plan = plan_sync(&tasks[..3], &st, &b, &memory).unwrap();
    assert_eq!(plan.removals, vec!["2"]);
}

#[test]
fn a_source_that_does_not_hold_together_is_refused_naming_the_file_and_line() {
    let st = backlog::statuses(None).unwrap();
    let one = backlog::parse("b/task-1.md", &TASK2.replace("TASK-2", "TASK-1")).unwrap();
    let two = backlog::parse("b/task-2.md", TASK2).unwrap();
    let e = plan_sync(
        std::slice::from_ref(&two),
        &st,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "b/task-2.md:1: TASK-2 depends on TASK-1, which is not in the source"
    );
    let cycle = backlog::parse(
        "b/task-1.md",
        &TASK2
            .replace("id: TASK-2", "id: TASK-1")
            .replace("  - TASK-1", "  - TASK-2"),
    )
    .unwrap();
    let e = plan_sync(
        &[cycle, two.clone()],
        &st,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(e.message.contains("cycle"), "{e}");
    let e = plan_sync(&[one.clone(), one], &st, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
    assert!(e.message.contains("used twice"), "{e}");
}

#[test]
fn notes_say_what_landed_and_how_to_try_again() {
    use orch_core::source::Ending;
    let e = Ending {
        id: Some(TaskId(4)),
        run: Some("r-1".into()),
        commit: Some("abc1234".into()),
        cost: Some("$0.12".into()),
        why: Some("worker validation failed".into()),
    };
    assert_eq!(
        Note::Done.text(&e),
        "orch: done in run r-1, integration commit abc1234, cost $0.12."
    );
    assert_eq!(
        Note::Stopped(TaskStatus::Failed).text(&e),
        "orch: failed in run r-1: worker validation failed. To try again: `orch task retry 4`."
    );
}
