//! Embedding the engine in another program: a throwaway repository with two tasks, an
//! agent that is a shell command, and the run's events streamed to this program as
//! they are journaled.
//!
//! `cargo run -p orch-engine --example embed`
#![allow(clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use orch_core::config::Config;
use orch_core::run::{RunEvent, RunId};
use orch_core::task::NewTask;
use orch_engine::{Engine, EngineConfig};
use orch_git::Git;
use orch_store::{Location, Store};
use orch_validate::CancellationToken;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).expect("creating the repository directory");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args([
                "-c",
                "user.name=embed",
                "-c",
                "user.email=embed@example.invalid",
            ])
            .args(args)
            .status()
            .expect("git runs");
        assert!(ok.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "embedded\n").expect("writing README.md");
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "init"]);

    // The board lives in the store; any frontend can fill it.
    let store = Store::open(&Location::Sqlite(repo.join(".orch/orch.db")))
        .await
        .expect("the store opens");
    for title in ["greet", "farewell"] {
        let task = NewTask {
            title: title.into(),
            ..NewTask::default()
        };
        store
            .add_task(task, "example")
            .await
            .expect("adding a task");
    }

    let mut config = Config::default();
    config.validate.worker = vec!["test -s \"$ORCH_TASK_TITLE.txt\"".into()];
    let engine = Engine::new(
        store.clone(),
        Git::open(&repo).expect("the repository opens"),
        EngineConfig {
            config,
            worktree_root: dir.path().join("worktrees"),
            artifacts_root: repo.join(".orch/artifacts"),
            agent_command:
                "echo \"$ORCH_TASK_TITLE from an embedded run\" > \"$ORCH_TASK_TITLE.txt\"".into(),
            only_tasks: vec![],
            fetch_timeout: Duration::from_secs(10),
        },
    );

    // Events arrive as they are journaled; the embedding program decides what to show.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RunEvent>();
    let printer = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if matches!(
                e,
                RunEvent::TaskMoved { .. } | RunEvent::HeadAdvanced { .. }
            ) {
                println!("event: {}", e.reason());
            }
        }
    });
    let summary = engine
        .run(
            RunId("embedded-1".into()),
            CancellationToken::new(),
            Some(tx),
        )
        .await
        .expect("the run completes");
    printer.await.expect("the printer ends with the run");
    println!(
        "run {} ended {:?}; integration branch {} at {:?}",
        summary.run, summary.state, summary.integration_branch, summary.head
    );
    for (task, status) in summary.tasks {
        println!("  task {task}: {status}");
    }
}
