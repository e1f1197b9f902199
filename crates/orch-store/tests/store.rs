//! The store's contract, run on SQLite always and on PostgreSQL when
//! `ORCH_TEST_DATABASE_URL` names a server (each test gets a fresh database there).
#![allow(clippy::unwrap_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::future::Future;

use orch_core::board::{BoardFile, BoardTask};
use orch_core::deps::DepError;
use orch_core::event::kind;
use orch_core::task::{NewTask, TaskEdit};
use orch_core::transition::Actor;
use orch_core::{TaskId, TaskStatus};
use orch_store::{EventFilter, Location, MoveRequest, Store, StoreError};

use orch_testkit::postgres::FreshDb;

/// Runs `body` against every configured backend.
async fn each_backend<F, Fut>(body: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Location::Sqlite(dir.path().join("orch.db")))
        .await
        .unwrap();
    body(store).await;
    if let Ok(url) = std::env::var("ORCH_TEST_DATABASE_URL") {
        let db = FreshDb::new(&url, "store");
        let loc = Location::Postgres(db.url.clone());
        let store = Store::open(&loc).await.unwrap();
        body(store.clone()).await;
        store.close().await.unwrap();
        drop(db);
    }
}

fn new(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        ..NewTask::default()
    }
}

fn human(to: TaskStatus, force: bool) -> MoveRequest {
    MoveRequest {
        to,
        actor: Actor::Human,
        force,
        reason: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_list_and_events() {
    each_backend(|s| async move {
        let a = s.add_task(new("Lexer"), "human:test").await.unwrap();
        let b = s
            .add_task(
                NewTask {
                    title: " Parser ".into(),
                    priority: 3,
                    depends_on: vec![a.id, a.id],
                    labels: vec!["core".into(), "core".into()],
                    touches: vec!["src/parse/**".into()],
                    ..NewTask::default()
                },
                "human:test",
            )
            .await
            .unwrap();
        assert_eq!(a.key, format!("task-{}", a.id));
        assert_eq!(b.title, "Parser");
        assert_eq!(b.depends_on, vec![a.id]);
        assert_eq!(b.labels, vec!["core"]);
        assert_eq!(b.status, TaskStatus::Backlog);
        let all = s.tasks(&[]).await.unwrap();
        assert_eq!(
            all.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![a.id, b.id]
        );
        assert_eq!(s.task(b.id).await.unwrap(), b);
        let ev = s
            .events(&EventFilter {
                task: Some(b.id),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, kind::TASK_CREATED);
        assert_eq!(ev[0].actor, "human:test");
        assert_eq!(ev[0].payload["title"], "Parser");
        // Unknown dependency: refused, nothing written.
        let err = s
            .add_task(
                NewTask {
                    depends_on: vec![TaskId(999)],
                    ..new("X")
                },
                "t",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Dep(DepError::UnknownTask(TaskId(999)))),
            "{err}"
        );
        assert_eq!(s.tasks(&[]).await.unwrap().len(), 2);
        // Duplicate key.
        s.add_task(
            NewTask {
                key: Some("k".into()),
                ..new("K")
            },
            "t",
        )
        .await
        .unwrap();
        let err = s
            .add_task(
                NewTask {
                    key: Some("k".into()),
                    ..new("K2")
                },
                "t",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::KeyTaken { .. }), "{err}");
        // Bad field.
        let err = s.add_task(new("  "), "t").await.unwrap_err();
        assert!(
            err.is_refusal() && err.to_string().contains("title"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reject_cycles_and_record_diffs() {
    each_backend(|s| async move {
        let a = s.add_task(new("A"), "t").await.unwrap();
        let b = s
            .add_task(
                NewTask {
                    depends_on: vec![a.id],
                    ..new("B")
                },
                "t",
            )
            .await
            .unwrap();
        let err = s
            .edit_task(
                a.id,
                &TaskEdit {
                    add_deps: vec![b.id],
                    title: Some("A2".into()),
                    ..TaskEdit::default()
                },
                "t",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Dep(DepError::Cycle { .. })),
            "{err}"
        );
        // Nothing of the refused edit was written, not even the title.
        assert_eq!(s.task(a.id).await.unwrap().title, "A");
        let a2 = s
            .edit_task(
                a.id,
                &TaskEdit {
                    priority: Some(9),
                    add_labels: vec!["x".into()],
                    ..TaskEdit::default()
                },
                "t",
            )
            .await
            .unwrap();
        assert_eq!(a2.priority, 9);
        let ev = s
            .events(&EventFilter {
                task: Some(a.id),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        let last = ev.last().unwrap();
        assert_eq!(last.kind, kind::TASK_UPDATED);
        assert_eq!(last.payload["priority"]["from"], 0);
        assert_eq!(last.payload["priority"]["to"], 9);
        // A no-op edit writes no event.
        s.edit_task(
            a.id,
            &TaskEdit {
                priority: Some(9),
                ..TaskEdit::default()
            },
            "t",
        )
        .await
        .unwrap();
        assert_eq!(
            s.events(&EventFilter {
                task: Some(a.id),
                ..EventFilter::default()
            })
            .await
            .unwrap()
            .len(),
            ev.len()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_follow_the_table_and_overrides_are_recorded() {
    each_backend(|s| async move {
        let a = s.add_task(new("A"), "t").await.unwrap();
        let err = s
            .move_task(a.id, &human(TaskStatus::Done, false), "human:me")
            .await
            .unwrap_err();
        assert!(err.is_refusal());
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(s.task(a.id).await.unwrap().status, TaskStatus::Backlog);
        s.move_task(a.id, &human(TaskStatus::Blocked, false), "human:me")
            .await
            .unwrap();
        let done = s
            .move_task(
                a.id,
                &MoveRequest {
                    reason: Some("shipped by hand".into()),
                    ..human(TaskStatus::Done, true)
                },
                "human:me",
            )
            .await
            .unwrap();
        assert_eq!(done.status, TaskStatus::Done);
        let ev = s
            .events(&EventFilter {
                task: Some(a.id),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        let kinds: Vec<&str> = ev.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [kind::TASK_CREATED, kind::TASK_MOVED, kind::TASK_OVERRIDE]
        );
        assert_eq!(ev[2].reason, "shipped by hand");
        assert_eq!(ev[2].payload["from"], "blocked");
        assert_eq!(ev[2].payload["forced"], true);
        // The orchestrator claims; a human cannot.
        let b = s.add_task(new("B"), "t").await.unwrap();
        assert!(
            s.move_task(b.id, &human(TaskStatus::InProgress, false), "h")
                .await
                .is_err()
        );
        let claimed = s
            .move_task(
                b.id,
                &MoveRequest {
                    to: TaskStatus::InProgress,
                    actor: Actor::Orchestrator,
                    force: false,
                    reason: None,
                },
                "orchestrator",
            )
            .await
            .unwrap();
        assert_eq!(claimed.status, TaskStatus::InProgress);
        assert_eq!(s.tasks(&[TaskStatus::InProgress]).await.unwrap().len(), 1);
        // A run owns an in-progress task.
        assert!(matches!(
            s.remove_task(b.id, false, "h").await,
            Err(StoreError::Owned(_))
        ));
        // Its dependencies cannot change under the run; its title can.
        let dep = TaskEdit {
            add_deps: vec![a.id],
            ..TaskEdit::default()
        };
        let refused = s.edit_task(b.id, &dep, "h").await;
        assert!(
            matches!(refused, Err(StoreError::DepsOfOwned(t)) if t == b.id),
            "{refused:?}"
        );
        assert!(s.task(b.id).await.unwrap().depends_on.is_empty());
        let title = TaskEdit {
            title: Some("renamed".into()),
            ..TaskEdit::default()
        };
        assert_eq!(
            s.edit_task(b.id, &title, "h").await.unwrap().title,
            "renamed"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_refuses_dependents_unless_forced() {
    each_backend(|s| async move {
        let a = s.add_task(new("A"), "t").await.unwrap();
        let b = s.add_task(NewTask { depends_on: vec![a.id], ..new("B") }, "t").await.unwrap();
        let err = s.remove_task(a.id, false, "t").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("task {} is a dependency of {}; remove those dependencies first, or use --force to detach them", a.id, b.id)
        );
        s.remove_task(a.id, true, "t").await.unwrap();
        assert!(matches!(s.task(a.id).await, Err(StoreError::TaskNotFound(_))));
        assert!(s.task(b.id).await.unwrap().depends_on.is_empty());
        let ev = s.events(&EventFilter { task: Some(a.id), ..EventFilter::default() }).await.unwrap();
        assert_eq!(ev.last().unwrap().kind, kind::TASK_REMOVED);
        assert_eq!(ev.last().unwrap().payload["detached_dependents"][0], b.id.0);
    })
    .await;
}

fn bt(key: &str, after: &[&str]) -> BoardTask {
    BoardTask {
        key: key.into(),
        title: format!("Task {key}"),
        after: after.iter().map(|s| s.to_string()).collect(),
        ..BoardTask::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_is_idempotent_and_all_or_nothing() {
    each_backend(|s| async move {
        let file = BoardFile {
            tasks: vec![
                bt("cli", &["parser"]),
                bt("parser", &["lexer"]),
                bt("lexer", &[]),
            ],
        };
        let r1 = s.import_board(&file, "import").await.unwrap();
        assert_eq!(r1.created.len(), 3);
        let r2 = s.import_board(&file, "import").await.unwrap();
        assert_eq!(
            (r2.created.len(), r2.updated.len(), r2.unchanged.len()),
            (0, 0, 3)
        );
        assert_eq!(s.tasks(&[]).await.unwrap().len(), 3);
        // The forward reference resolved.
        let cli = s
            .tasks(&[])
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.key == "cli")
            .unwrap();
        let parser_id = r1.created.iter().find(|(k, _)| k == "parser").unwrap().1;
        assert_eq!(cli.depends_on, vec![parser_id]);
        // An update changes fields and edges, and keeps status.
        s.move_task(cli.id, &human(TaskStatus::Blocked, false), "h")
            .await
            .unwrap();
        let mut changed = file.clone();
        changed.tasks[0].after.clear();
        changed.tasks[0].priority = 5;
        let r3 = s.import_board(&changed, "import").await.unwrap();
        assert_eq!(r3.updated, vec![("cli".to_string(), cli.id)]);
        let cli = s.task(cli.id).await.unwrap();
        assert_eq!(
            (cli.priority, cli.depends_on.len(), cli.status),
            (5, 0, TaskStatus::Blocked)
        );
        // A bad file changes nothing at all.
        let before = s.tasks(&[]).await.unwrap();
        let n_events = s.events(&EventFilter::default()).await.unwrap().len();
        let bad = BoardFile {
            tasks: vec![
                bt("new-one", &[]),
                bt("lexer", &["cli"]),
                bt("cli", &["lexer"]),
            ],
        };
        let err = s.import_board(&bad, "import").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Board(e) if e.index == 2),
            "{err}"
        );
        assert_eq!(s.tasks(&[]).await.unwrap(), before);
        assert_eq!(
            s.events(&EventFilter::default()).await.unwrap().len(),
            n_events
        );
        // Export round-trips.
        let exported = s.export_board().await.unwrap();
        let r4 = s.import_board(&exported, "import").await.unwrap();
        assert_eq!(r4.unchanged.len(), 3);
        assert_eq!(
            exported
                .tasks
                .iter()
                .find(|t| t.key == "parser")
                .unwrap()
                .after,
            vec!["lexer"]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::Sqlite(dir.path().join("nested/dir/orch.db"));
    let s = Store::open(&loc).await.unwrap();
    let a = s.add_task(new("A"), "t").await.unwrap();
    s.close().await.unwrap();
    let s = Store::open(&loc).await.unwrap();
    assert_eq!(s.task(a.id).await.unwrap().title, "A");
    let b = s.add_task(new("B"), "t").await.unwrap();
    assert!(b.id > a.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_sqlite_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::Sqlite(dir.path().join("orch.db"));
    let s1 = Store::open(&loc).await.unwrap();
    let s2 = Store::open(&loc).await.unwrap();
    let mut handles = Vec::new();
    for (n, s) in [s1.clone(), s2.clone()].into_iter().enumerate() {
        handles.push(tokio::spawn(async move {
            for i in 0..40 {
                s.add_task(new(&format!("w{n} t{i}")), "t").await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(s1.tasks(&[]).await.unwrap().len(), 80);
    assert_eq!(s2.events(&EventFilter::default()).await.unwrap().len(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_locations_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = Store::open(&Location::Sqlite(file.join("orch.db")))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "cannot open the database at {}",
            file.join("orch.db").display()
        )),
        "{err}"
    );
    let err = Store::open(&Location::Postgres(
        "postgres://nobody:pw@127.0.0.1:1/none".into(),
    ))
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("postgres://nobody:***@127.0.0.1:1/none"),
        "{err}"
    );
}

/// CI must exercise PostgreSQL: a CI run without a server configured is a failure,
/// not a silent SQLite-only pass.
#[test]
fn ci_runs_the_postgres_leg() {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(
            std::env::var("ORCH_TEST_DATABASE_URL").is_ok(),
            "CI=true but ORCH_TEST_DATABASE_URL is unset: .ci/run must start PostgreSQL"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_journals_round_trip_and_project_onto_the_board() {
    use orch_core::run::{
        AttemptId, AttemptPhase, AttemptState, CommitId, RunEvent, RunId, RunSnapshot, RunState,
    };
    each_backend(|s| async move {
        let t = s.add_task(new("A"), "t").await.unwrap();
        let run = RunId("r1".into());
        let info = s
            .create_run(
                &run,
                &serde_json::json!({ "run": { "concurrency": 2 } }),
                "orchestrator",
            )
            .await
            .unwrap();
        assert_eq!(info.state, RunState::Created);
        assert!(matches!(
            s.create_run(&run, &serde_json::json!({}), "o").await,
            Err(StoreError::RunExists(_))
        ));
        let a = AttemptId {
            task: t.id,
            number: 1,
        };
        let events = vec![
            RunEvent::RunMoved {
                from: RunState::Created,
                to: RunState::Running,
                reason: "started".into(),
            },
            RunEvent::HeadSet {
                head: CommitId("c0".into()),
            },
            RunEvent::TaskMoved {
                task: t.id,
                from: TaskStatus::Backlog,
                to: TaskStatus::InProgress,
                reason: "claimed".into(),
            },
            RunEvent::AttemptCreated {
                attempt: a,
                branch: "orch/r1/task-1-1".into(),
                base: CommitId("c0".into()),
            },
            RunEvent::AttemptMoved {
                attempt: a,
                from: AttemptPhase::Queued,
                to: AttemptState::Provisioning,
                reason: "slot free".into(),
            },
        ];
        s.append_run_events(&run, &j(&events), "orchestrator")
            .await
            .unwrap();
        assert_eq!(s.run_events(&run).await.unwrap(), events);
        assert_eq!(s.run_journal(&run).await.unwrap(), j(&events));
        assert_eq!(
            s.task(t.id).await.unwrap().status,
            TaskStatus::InProgress,
            "the board follows the journal"
        );
        assert_eq!(s.run(&run).await.unwrap().state, RunState::Running);
        let snap = RunSnapshot::from_events(&s.run_events(&run).await.unwrap());
        assert_eq!(snap.attempts[&a].state, AttemptState::Provisioning);
        // The audit log shows them with kinds, reasons and ids.
        let ev = s
            .events(&EventFilter {
                task: Some(t.id),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        let moved = ev
            .iter()
            .find(|e| e.kind == "task.moved" && e.run_id.is_some())
            .unwrap();
        assert_eq!(moved.reason, "backlog -> in_progress: claimed");
        assert_eq!(
            ev.iter()
                .find(|e| e.kind == "attempt.moved")
                .unwrap()
                .attempt,
            Some(1)
        );
        assert!(matches!(
            s.run(&RunId("nope".into())).await,
            Err(StoreError::RunNotFound(_))
        ));
        assert_eq!(s.runs().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_tables_project_the_journal_and_record_validations() {
    use orch_core::run::{
        AttemptId, AttemptPhase, AttemptState, CommitId, FailureKind, Proposal, RunEvent, RunId,
        Stage, ValidationRecord, Verdict,
    };
    each_backend(|s| async move {
        let t = s.add_task(new("A"), "t").await.unwrap();
        let run = RunId("r9".into());
        s.create_run(&run, &serde_json::json!({}), "o")
            .await
            .unwrap();
        let a1 = AttemptId {
            task: t.id,
            number: 1,
        };
        let a2 = AttemptId {
            task: t.id,
            number: 2,
        };
        let c = |x: &str| CommitId(x.into());
        let events = vec![
            RunEvent::AttemptCreated {
                attempt: a1,
                branch: "orch/r9/task-1-1".into(),
                base: c("c0"),
            },
            RunEvent::AttemptHead {
                attempt: a1,
                head: c("h1"),
                empty: false,
            },
            RunEvent::AttemptUsage {
                attempt: a1,
                usage: orch_core::usage::Usage {
                    model: "claude-x".into(),
                    input_tokens: 1200,
                    output_tokens: 34,
                    cost: Some(orch_core::usage::Usd(16_020)),
                    turns: 2,
                    session_id: Some("s-1".into()),
                    ..Default::default()
                },
            },
            RunEvent::MergeWritten {
                attempt: a1,
                commit: c("m1"),
                onto: c("c0"),
            },
            RunEvent::AttemptMoved {
                attempt: a1,
                from: AttemptPhase::Merging,
                to: AttemptState::Integrating,
                reason: "merged".into(),
            },
            RunEvent::AttemptCreated {
                attempt: a2,
                branch: "orch/r9/task-1-2".into(),
                base: c("c0"),
            },
            RunEvent::AttemptMoved {
                attempt: a2,
                from: AttemptPhase::Merging,
                to: AttemptState::Failed(FailureKind::Conflict {
                    paths: vec!["x.rs".into()],
                }),
                reason: "conflict".into(),
            },
            RunEvent::ProposalJudged {
                proposal: Proposal::Claim {
                    task: TaskId(7),
                    note: None,
                },
                verdict: Verdict::Rejected {
                    reason: "unknown task 7".into(),
                },
            },
        ];
        s.append_run_events(&run, &j(&events), "o").await.unwrap();
        let attempts = s.attempts(&run).await.unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(
            (
                attempts[0].state.as_str(),
                attempts[0].head.as_deref(),
                attempts[0].merge.as_deref()
            ),
            ("integrating", Some("h1"), Some("m1"))
        );
        let u = attempts[0].usage.as_ref().expect("usage projected");
        assert_eq!(
            (u.tokens(), u.cost, u.session_id.as_deref()),
            (1234, Some(orch_core::usage::Usd(16_020)), Some("s-1"))
        );
        assert!(attempts[1].usage.is_none());
        assert_eq!(attempts[1].state, "failed");
        assert_eq!(attempts[1].failure.as_ref().unwrap()["kind"], "conflict");
        let merges = s.merges(&run).await.unwrap();
        assert_eq!(merges.len(), 2);
        assert_eq!(merges[0].commit.as_deref(), Some("m1"));
        assert_eq!(merges[1].conflicts, vec!["x.rs"]);
        let proposals = s.proposals(&run).await.unwrap();
        assert_eq!(
            (
                proposals[0].verdict.as_str(),
                proposals[0].reason.as_str(),
                proposals[0].task
            ),
            ("rejected", "unknown task 7", Some(TaskId(7)))
        );
        let records = vec![
            ValidationRecord {
                command: "cargo build".into(),
                outcome: "exited with code 0".into(),
                exit_code: Some(0),
                duration_ms: 1200,
                log_path: "/l/worker-1.log".into(),
                tail: vec![],
            },
            ValidationRecord {
                command: "cargo test".into(),
                outcome: "exited with code 101".into(),
                exit_code: Some(101),
                duration_ms: 900,
                log_path: "/l/worker-2.log".into(),
                tail: vec!["test x ... FAILED".into(), "1 failed".into()],
            },
        ];
        s.record_validations(&run, a1, Stage::Worker, &records)
            .await
            .unwrap();
        let v = s.validations(&run).await.unwrap();
        assert_eq!(v.len(), 2);
        s.record_artifacts(&run, a1, &[("agent.log".into(), "/l/agent.log".into(), 42)])
            .await
            .unwrap();
        let arts = s.artifacts(&run).await.unwrap();
        assert_eq!(
            (
                arts.len(),
                arts[0].name.as_str(),
                arts[0].bytes,
                arts[0].attempt
            ),
            (1, "agent.log", 42, a1)
        );
        assert_eq!(
            (v[1].stage.as_str(), v[1].position, v[1].record.clone()),
            ("worker", 2, records[1].clone())
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_have_one_owner_and_takeovers_are_journaled() {
    use orch_core::run::RunId;
    use orch_store::{Acquired, LEASE_TAKEN_OVER};
    use std::time::Duration;
    each_backend(|s| async move {
        let run = RunId("r-lease".into());
        s.create_run(&run, &serde_json::json!({}), "o")
            .await
            .unwrap();
        let long = Duration::from_secs(60);
        assert_eq!(
            s.acquire_lease(&run, "a", long, None).await.unwrap(),
            Acquired::Fresh
        );
        assert_eq!(
            s.acquire_lease(&run, "a", long, None).await.unwrap(),
            Acquired::Renewed
        );
        // A live lease is not taken, not even by a claim that some *other* owner died.
        let err = s
            .acquire_lease(&run, "b", long, Some("c"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LeaseHeld { ref owner, .. } if owner == "a"));
        assert!(err.to_string().contains("driven by a"), "{err}");
        s.renew_lease(&run, "a", long).await.unwrap();
        assert!(matches!(
            s.renew_lease(&run, "b", long).await,
            Err(StoreError::LeaseLost { ref holder, .. }) if holder == "a"
        ));
        // Proven dead: taken at once.
        match s.acquire_lease(&run, "b", long, Some("a")).await.unwrap() {
            Acquired::TookOver { previous, why } => {
                assert_eq!(previous.owner, "a");
                assert!(why.contains("no longer exists"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // The old owner's heartbeat now fails: it must stop.
        assert!(matches!(
            s.renew_lease(&run, "a", long).await,
            Err(StoreError::LeaseLost { ref holder, .. }) if holder == "b"
        ));
        // Expired: taken once the time has passed, and only then.
        s.renew_lease(&run, "b", Duration::from_millis(150))
            .await
            .unwrap();
        assert!(s.acquire_lease(&run, "c", long, None).await.is_err());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(matches!(
            s.acquire_lease(&run, "c", long, None).await.unwrap(),
            Acquired::TookOver { ref previous, .. } if previous.owner == "b"
        ));
        let ev = s
            .events(&EventFilter {
                run: Some(run.0.clone()),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        let takeovers: Vec<_> = ev.iter().filter(|e| e.kind == LEASE_TAKEN_OVER).collect();
        assert_eq!(takeovers.len(), 2, "{ev:?}");
        assert!(takeovers[1].reason.contains("c took the run over from b"));
        // Lease rows never reach the core's journal.
        assert!(s.run_events(&run).await.unwrap().is_empty());
        s.release_lease(&run, "b").await.unwrap();
        assert_eq!(s.lease(&run).await.unwrap().unwrap().owner, "c");
        s.release_lease(&run, "c").await.unwrap();
        assert_eq!(s.lease(&run).await.unwrap(), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_never_claim_the_same_task() {
    use orch_core::run::{RunEvent, RunId};
    each_backend(|s| async move {
        let t = s.add_task(new("A"), "t").await.unwrap();
        let claim = |reason: &str| RunEvent::TaskMoved {
            task: t.id,
            from: TaskStatus::Backlog,
            to: TaskStatus::InProgress,
            reason: reason.into(),
        };
        let (r1, r2) = (RunId("r1".into()), RunId("r2".into()));
        for r in [&r1, &r2] {
            s.create_run(r, &serde_json::json!({}), "o").await.unwrap();
        }
        s.append_run_events(&r1, &j(&[claim("r1 claims")]), "o")
            .await
            .unwrap();
        let err = s
            .append_run_events(&r2, &j(&[claim("r2 claims")]), "o")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("task 1 was claimed elsewhere: it is in_progress"),
            "{err}"
        );
        // The losing batch left nothing behind.
        assert!(s.run_events(&r2).await.unwrap().is_empty());
    })
    .await;
}

/// Stamps events as the core would, at a fixed time.
fn j(events: &[orch_core::run::RunEvent]) -> Vec<orch_core::run::Journaled> {
    events
        .iter()
        .map(|e| orch_core::run::Journaled {
            at: orch_core::Timestamp(1_764_000_000_000),
            event: e.clone(),
        })
        .collect()
}

/// A person's move wins over a run's later move from where the run had left the task,
/// and a claim of a removed task is refused, not taken as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_move_wins_and_a_removed_task_cannot_be_claimed() {
    use orch_core::run::{RunEvent, RunId};
    each_backend(|s| async move {
        let a = s.add_task(new("A"), "t").await.unwrap();
        let b = s.add_task(new("B"), "t").await.unwrap();
        let run = RunId("r1".into());
        s.create_run(&run, &serde_json::json!({}), "o")
            .await
            .unwrap();
        let mv = |t, from, to| RunEvent::TaskMoved {
            task: t,
            from,
            to,
            reason: "test".into(),
        };
        s.append_run_events(
            &run,
            &j(&[mv(a.id, TaskStatus::Backlog, TaskStatus::InProgress)]),
            "o",
        )
        .await
        .unwrap();
        let version = s.board_version(&run).await.unwrap();
        // A person cancels the task the run holds, then the run, not yet aware, marks it done.
        let req = orch_store::MoveRequest {
            to: TaskStatus::Canceled,
            actor: orch_core::transition::Actor::Human,
            force: false,
            reason: None,
        };
        s.move_task(a.id, &req, "person").await.unwrap();
        assert!(
            s.board_version(&run).await.unwrap() > version,
            "a person's move is a new board version"
        );
        s.append_run_events(
            &run,
            &j(&[mv(a.id, TaskStatus::InProgress, TaskStatus::Done)]),
            "o",
        )
        .await
        .unwrap();
        assert_eq!(s.task(a.id).await.unwrap().status, TaskStatus::Canceled);
        // The run's own events do not change the board version it polls.
        let version = s.board_version(&run).await.unwrap();
        s.append_run_events(
            &run,
            &j(&[mv(b.id, TaskStatus::Backlog, TaskStatus::InProgress)]),
            "o",
        )
        .await
        .unwrap();
        assert_eq!(s.board_version(&run).await.unwrap(), version);
        s.remove_task(b.id, true, "person").await.unwrap();
        let c = s.add_task(new("C"), "t").await.unwrap();
        s.remove_task(c.id, false, "person").await.unwrap();
        let err = s
            .append_run_events(
                &run,
                &j(&[mv(c.id, TaskStatus::Backlog, TaskStatus::InProgress)]),
                "o",
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("removed from the board"), "{err}");
    })
    .await;
}

/// Claims go in one batch, each standing alone: one decided on an older board is
/// refused once its task changed (an edit the run has not seen), one whose task is no
/// longer in the backlog is lost, and neither leaves anything behind; the rest are
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_claims_refuses_each_stale_or_lost_one_alone() {
    use orch_core::run::{RunEvent, RunId};
    each_backend(|s| async move {
        let a = s.add_task(new("A"), "t").await.unwrap();
        let b = s.add_task(new("B"), "t").await.unwrap();
        let c = s.add_task(new("C"), "t").await.unwrap();
        let d = s.add_task(new("D"), "t").await.unwrap();
        let run = RunId("r1".into());
        s.create_run(&run, &serde_json::json!({}), "o")
            .await
            .unwrap();
        let claim = |t| RunEvent::TaskMoved {
            task: t,
            from: TaskStatus::Backlog,
            to: TaskStatus::InProgress,
            reason: "claimed".into(),
        };
        let seen = s.board_version(&run).await.unwrap();
        let edit = orch_core::task::TaskEdit {
            add_deps: vec![b.id],
            ..Default::default()
        };
        s.edit_task(a.id, &edit, "person").await.unwrap();
        s.remove_task(c.id, false, "person").await.unwrap();
        let now_seen = s.board_version(&run).await.unwrap();
        let batch = [
            (j(&[claim(a.id)]).remove(0), seen),
            (j(&[claim(b.id)]).remove(0), now_seen),
            (j(&[claim(c.id)]).remove(0), now_seen),
            (j(&[claim(d.id)]).remove(0), now_seen),
        ];
        let answers = s.claim_tasks(&run, &batch, "o").await.unwrap();
        assert!(
            matches!(answers[0], Err(StoreError::TaskChanged { .. })),
            "{answers:?}"
        );
        assert!(answers[1].is_ok() && answers[3].is_ok(), "{answers:?}");
        assert!(
            matches!(answers[2], Err(StoreError::ClaimLost { .. })),
            "{answers:?}"
        );
        assert_eq!(s.task(a.id).await.unwrap().status, TaskStatus::Backlog);
        assert_eq!(s.task(b.id).await.unwrap().status, TaskStatus::InProgress);
        assert_eq!(s.task(d.id).await.unwrap().status, TaskStatus::InProgress);
        let claimed: Vec<_> = s
            .run_events(&run)
            .await
            .unwrap()
            .iter()
            .filter_map(|e| e.task())
            .collect();
        assert_eq!(
            claimed,
            [b.id, d.id],
            "nothing of a refused claim is written"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_worktrees_are_leased_once_given_back_and_retired() {
    use orch_core::pool::{Holder, PoolKind, PoolLimits, SlotState};
    each_backend(|s| async move {
        let limits = PoolLimits {
            keep_attempt: 2,
            keep_integration: 1,
            max: 3,
            max_bytes: 0,
        };
        let h = |n: &str| Holder {
            run: "r1".into(),
            holder: n.into(),
        };
        // Five holders race for a pool capped at three: each slot goes to one of them,
        // and the others are told the pool is full.
        let mut racers = tokio::task::JoinSet::new();
        for i in 0..5 {
            let (s, holder) = (s.clone(), h(&format!("task-{i}-1")));
            racers.spawn(async move {
                let root = std::path::Path::new("/wt");
                s.lease_pool_slot(PoolKind::Attempt, &holder, &limits, root)
                    .await
            });
        }
        let (mut slots, mut full) = (Vec::new(), 0);
        while let Some(r) = racers.join_next().await {
            match r.unwrap() {
                Ok(l) => {
                    assert!(l.fresh && !l.set_up);
                    slots.push(l.slot);
                }
                Err(StoreError::PoolFull { held: 3, max: 3 }) => full += 1,
                Err(e) => panic!("{e}"),
            }
        }
        slots.sort();
        assert_eq!((slots, full), (vec![0, 1, 2], 2));
        let holder_of = |slot: u32, pool: &[orch_core::pool::PoolSlot]| match &pool
            .iter()
            .find(|p| p.slot == slot)
            .unwrap()
            .state
        {
            SlotState::Leased(h) => h.holder.clone(),
            s => panic!("{s:?}"),
        };
        let pool = s.pool_slots().await.unwrap();
        let first = holder_of(0, &pool);
        // A holder that asks again gets the slot it holds (a resumed attempt).
        let again = s
            .lease_pool_slot(PoolKind::Attempt, &h(&first), &limits, "/wt".as_ref())
            .await
            .unwrap();
        assert_eq!((again.slot, again.fresh), (0, false));
        // Only its holder gives a slot back.
        assert!(
            !s.release_pool_slot(0, &h("someone-else"), None)
                .await
                .unwrap()
        );
        s.pool_set_up(0).await.unwrap();
        assert!(
            s.release_pool_slot(0, &h(&first), Some(4096))
                .await
                .unwrap()
        );
        // The next taker reuses it, set up and warm.
        let next = s
            .lease_pool_slot(PoolKind::Attempt, &h("task-9-1"), &limits, "/wt".as_ref())
            .await
            .unwrap();
        assert_eq!((next.slot, next.fresh, next.set_up), (0, false, true));
        // Three free attempt worktrees where the pool keeps two: the least recently
        // used goes.
        for slot in [1, 2, 0] {
            let pool = s.pool_slots().await.unwrap();
            let holder = holder_of(slot, &pool);
            assert!(s.release_pool_slot(slot, &h(&holder), None).await.unwrap());
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let gone = s
            .retire_pool_slots(&limits, None, "/wt".as_ref())
            .await
            .unwrap();
        assert_eq!(gone.iter().map(|g| g.slot).collect::<Vec<_>>(), vec![1]);
        s.forget_pool_slot(gone[0].slot).await.unwrap();
        assert_eq!(s.pool_slots().await.unwrap().len(), 2);
        // cleanup --pool: a live run's lease stays, the rest goes.
        let live = s
            .lease_pool_slot(
                PoolKind::Integration,
                &h("integration:x"),
                &limits,
                "/wt".as_ref(),
            )
            .await
            .unwrap();
        let (gone, kept) = s
            .retire_whole_pool(|run| run == "r1", "/wt".as_ref())
            .await
            .unwrap();
        assert_eq!(
            kept.iter().map(|k| k.slot).collect::<Vec<_>>(),
            vec![live.slot]
        );
        assert_eq!(gone.len(), 2);
    })
    .await;
}

/// Gate verdicts by tree: only a pass is kept, the first one stays, and another recipe
/// on the same tree finds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_passes_are_kept_by_tree_and_recipe() {
    each_backend(|store| async move {
        assert_eq!(store.gate_verdict("t1", "r1").await.unwrap(), None);
        store
            .record_gate_pass("t1", "r1", "task-1-1")
            .await
            .unwrap();
        store
            .record_gate_pass("t1", "r1", "task-2-1")
            .await
            .unwrap();
        assert_eq!(
            store.gate_verdict("t1", "r1").await.unwrap().as_deref(),
            Some("task-1-1")
        );
        assert_eq!(store.gate_verdict("t1", "r2").await.unwrap(), None);
        assert_eq!(store.gate_verdict("t2", "r1").await.unwrap(), None);
    })
    .await;
}

/// A projected row this version cannot read is an error naming the row, never a row
/// dropped or emptied: `orch run show` and the board's costs would quietly lie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_projected_row_is_an_error_not_a_missing_row() {
    use orch_core::run::{AttemptId, CommitId, RunEvent, RunId};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orch.db");
    let s = Store::open(&Location::Sqlite(db.clone())).await.unwrap();
    let t = s.add_task(new("A"), "t").await.unwrap();
    let run = RunId("r1".into());
    s.create_run(&run, &serde_json::json!({}), "o")
        .await
        .unwrap();
    let a = AttemptId {
        task: t.id,
        number: 1,
    };
    let usage = orch_core::usage::Usage {
        input_tokens: 5,
        ..Default::default()
    };
    let events = vec![
        RunEvent::AttemptCreated {
            attempt: a,
            branch: "orch/r1/task-1-1".into(),
            base: CommitId("c0".into()),
        },
        RunEvent::AttemptUsage { attempt: a, usage },
    ];
    s.append_run_events(&run, &j(&events), "o").await.unwrap();
    assert_eq!(s.attempts(&run).await.unwrap().len(), 1);
    assert_eq!(s.task_usage().await.unwrap()[&t.id].input_tokens, 5);
    // Another version (or a bad disk) left a usage this one cannot read.
    let sql = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE attempts SET usage = '{\"input_tokens\": \"many\"}'")
        .status()
        .expect("sqlite3, SQLite's shell, is installed");
    assert!(sql.success());
    let errors = [
        s.attempts(&run).await.unwrap_err(),
        s.attempt(&run, a).await.unwrap_err(),
        s.task_usage().await.unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("attempt task-1-1") && text.contains("usage"),
            "{text}"
        );
    }
}
