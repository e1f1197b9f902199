//! Embedding orch, with `orch-engine` the one orch dependency: a repository with an
//! `orch.toml` (the agent is a shell command; the gate checks what it wrote), two
//! tasks, a run whose typed events name each task, and its summary.
//! `cargo run -p orch-engine --example embed`
use orch_engine::core::task::NewTask;
use orch_engine::{OpenOptions, Repo, RunOptions, RunUpdate};

const ORCH_TOML: &str = r#"
agent.command = 'echo "$ORCH_TASK_TITLE, from an embedded run" > "$ORCH_TASK_TITLE.txt"'
validate.worker = ['test -s "$ORCH_TASK_TITLE.txt"']
worktrees.root = "../worktrees"
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("repo");
    std::fs::create_dir(&root)?;
    std::fs::write(root.join("orch.toml"), ORCH_TOML)?;
    let id = ["-c", "user.name=embed", "-c", "user.email=embed@x.invalid"];
    for cmd in ["init -qb main", "add -A", "commit -qm init"] {
        let args: Vec<&str> = id.iter().copied().chain(cmd.split(' ')).collect();
        let out = orch_engine::repo::git(&root, &args)?;
        assert!(out.status.success(), "git {cmd}");
    }
    let (repo, _created) = Repo::init(&root, &OpenOptions::default()).await?;
    let board = repo.board("human:embed");
    for title in ["hello", "goodbye"] {
        board.add(NewTask::titled(title)).await?;
    }
    let run = repo.start(RunOptions::default()).await?;
    let mut events = run.subscribe();
    let printer = tokio::spawn(async move {
        while let Some(update) = events.next().await {
            if let RunUpdate::Journal(j) = update
                && let (Some(task), Some(n)) = (j.event.task(), j.event.attempt())
            {
                println!("#{task}.{n}: {}", j.event.reason());
            }
        }
    });
    let summary = run.drive().await?;
    printer.await?;
    println!("run {} ended {:?}", summary.run, summary.state);
    for (task, status) in &summary.tasks {
        println!("  task #{task}: {status}");
    }
    repo.close().await?;
    Ok(())
}
