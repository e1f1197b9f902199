//! The engine end to end: a real repository, a real SQLite store, real agent and gate
//! processes (shell scripts), real worktrees and merges.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use orch_testkit::git;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_core::config::{Config, Duration as CfgDuration};
use orch_core::run::{RunEvent, RunId, RunSnapshot, RunState};
use orch_core::task::NewTask;
use orch_core::{TaskId, TaskStatus};
use orch_engine::{Engine, EngineConfig};
use orch_git::Git;
use orch_store::{Location, Store};
use orch_validate::CancellationToken;

/// The worktree that has `branch` checked out (a pooled one).
fn worktree_of(repo: &Path, branch: &str) -> PathBuf {
    let list = git(repo, &["worktree", "list", "--porcelain"]);
    let mut path = None;
    for line in list.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            path = Some(PathBuf::from(p));
        }
        if line == format!("branch refs/heads/{branch}") {
            return path.unwrap();
        }
    }
    panic!("no worktree has {branch}: {list}")
}

struct Fx {
    tmp: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "calc\n").unwrap();
        std::fs::write(repo.join(".gitignore"), ".orch/\n").unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "init"]);
        // The user's own work in progress.
        std::fs::write(repo.join("README.md"), "calc, being edited\n").unwrap();
        Fx { tmp }
    }
    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }
    async fn store(&self) -> Store {
        Store::open(&Location::Sqlite(self.repo().join(".orch/orch.db")))
            .await
            .unwrap()
    }
    fn engine(&self, store: Store, config: Config, agent: &str) -> Engine {
        Engine::new(
            store,
            Git::open(&self.repo()).unwrap(),
            EngineConfig {
                config,
                worktree_root: self.tmp.path().join("worktrees"),
                artifacts_root: self.repo().join(".orch/artifacts"),
                agent_command: agent.into(),
                only_tasks: vec![],
                fetch_timeout: Duration::from_secs(5),
            },
        )
    }
}

fn user_checkout(repo: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "README.md".into(),
        std::fs::read_to_string(repo.join("README.md")).unwrap(),
    );
    m.insert(
        "status".into(),
        git(repo, &["status", "--porcelain", "--untracked-files=no"]),
    );
    m.insert("HEAD".into(), git(repo, &["rev-parse", "HEAD"]));
    m.insert("branch".into(), git(repo, &["symbolic-ref", "HEAD"]));
    m
}

fn config() -> Config {
    let mut c = Config::default();
    c.run.concurrency = std::num::NonZeroU32::new(2).unwrap();
    c.policy.backoff = orch_core::config::Delay(Duration::from_millis(100));
    c.validate.worker = vec!["test -s \"task-$ORCH_TASK_ID.txt\"".into()];
    c.validate.integration = vec!["test -f README.md".into(), "ls task-*.txt".into()];
    // One candidate at a time: every integrated task's own gate runs are counted.
    c.run.integration = orch_core::config::IntegrationMode::Fixed;
    c
}

/// Writes `task-<id>.txt` with the title; the task titled "broken" exits 3.
const AGENT: &str = r#"grep -q "Task #$ORCH_TASK_ID" {prompt_file} || exit 9; if [ "$ORCH_TASK_TITLE" = broken ]; then echo "cannot do it" >&2; exit 3; fi; printf '%s\n' "$ORCH_TASK_TITLE" > "task-$ORCH_TASK_ID.txt""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_merges_validated_work_and_fails_what_does_not_pass() {
    let fx = Fx::new();
    let store = fx.store().await;
    let add = |title: &str, deps: Vec<TaskId>, priority: i32| NewTask {
        title: title.into(),
        depends_on: deps,
        priority,
        ..NewTask::default()
    };
    let a = store.add_task(add("add", vec![], 2), "t").await.unwrap();
    let b = store
        .add_task(add("sub", vec![a.id], 1), "t")
        .await
        .unwrap();
    let c = store.add_task(add("mul", vec![], 1), "t").await.unwrap();
    let d = store.add_task(add("broken", vec![], 0), "t").await.unwrap();
    let before = user_checkout(&fx.repo());

    let engine = fx.engine(store.clone(), config(), AGENT);
    let run = RunId("r1".into());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        engine.run(run.clone(), CancellationToken::new(), Some(tx)),
    )
    .await
    .expect("the run finishes")
    .unwrap();
    assert_eq!(summary.state, RunState::Completed);
    assert_eq!(
        user_checkout(&fx.repo()),
        before,
        "the user's checkout changed"
    );

    // The board: three done, the broken one failed after two attempts.
    for (t, want) in [
        (a.id, TaskStatus::Done),
        (b.id, TaskStatus::Done),
        (c.id, TaskStatus::Done),
        (d.id, TaskStatus::Failed),
    ] {
        assert_eq!(store.task(t).await.unwrap().status, want, "task {t}");
    }
    // The integration branch holds exactly the validated work.
    let head = summary.head.clone().unwrap();
    assert_eq!(
        git(&fx.repo(), &["rev-parse", "refs/heads/orch/integration"]),
        head.0
    );
    let files = git(&fx.repo(), &["ls-tree", "--name-only", &head.0]);
    assert_eq!(
        files,
        ".gitignore\nREADME.md\ntask-1.txt\ntask-2.txt\ntask-3.txt"
    );
    assert_eq!(
        git(&fx.repo(), &["show", &format!("{}:task-2.txt", head.0)]),
        "sub"
    );

    // The journal rebuilds the run, and the progress stream saw every event.
    let journal = store.run_events(&run).await.unwrap();
    let snap = RunSnapshot::from_events(&journal);
    assert_eq!(snap.state, RunState::Completed);
    assert_eq!(snap.head, Some(head));
    let mut streamed = Vec::new();
    while let Ok(e) = rx.try_recv() {
        streamed.push(e);
    }
    assert_eq!(streamed, journal);
    // The dependent task started from the head that contained its dependency.
    let b_base = journal
        .iter()
        .find_map(|e| match e {
            RunEvent::AttemptCreated { attempt, base, .. } if attempt.task == b.id => {
                Some(base.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(git(&fx.repo(), &["ls-tree", "--name-only", &b_base.0]).contains("task-1.txt"));
    // The broken task's attempts failed as agent errors; their logs are kept. Two
    // counted (max_attempts); failures while other work was in flight that a landing
    // then made stale spent the stale budget (up to 3) instead.
    let failures = journal
        .iter()
        .filter(|e| matches!(e, RunEvent::AttemptMoved { attempt, to, .. } if attempt.task == d.id && to.phase() == orch_core::run::AttemptPhase::Failed))
        .count();
    assert!((2..=5).contains(&failures), "{failures} failed attempts");
    assert!(
        journal.iter().any(|e| matches!(e, RunEvent::TaskMoved { task, reason, .. } if *task == d.id && reason.contains("out of attempts"))),
        "the broken task ran out of attempts"
    );
    let log = std::fs::read_to_string(
        fx.repo()
            .join(format!(".orch/artifacts/r1/{}/1/agent.log", d.id)),
    )
    .unwrap();
    assert!(log.contains("cannot do it"), "{log}");
    let prompt = std::fs::read_to_string(
        fx.repo()
            .join(format!(".orch/artifacts/r1/{}/2/prompt.md", d.id)),
    )
    .unwrap();
    assert!(
        prompt.contains("The previous attempt failed") && prompt.contains("exit code 3"),
        "{prompt}"
    );
    // Every gate command is recorded: a worker and two integration commands for each
    // integrated task, and nothing for the broken task, whose agent failed.
    let validations = store.validations(&run).await.unwrap();
    for t in [a.id, b.id, c.id] {
        let mine: Vec<_> = validations.iter().filter(|v| v.attempt.task == t).collect();
        assert_eq!(
            mine.iter().filter(|v| v.stage == "worker").count(),
            1,
            "task {t}"
        );
        assert!(
            mine.iter().filter(|v| v.stage == "integration").count() >= 2,
            "task {t}"
        );
        assert!(
            mine.iter()
                .all(|v| v.record.exit_code == Some(0) && v.record.log_path.ends_with(".log"))
        );
    }
    assert!(!validations.iter().any(|v| v.attempt.task == d.id));
    assert_eq!(
        store
            .merges(&run)
            .await
            .unwrap()
            .iter()
            .filter(|m| m.commit.is_some())
            .count(),
        3
    );
    // Every attempt's files are recorded with their sizes.
    let artifacts = store.artifacts(&run).await.unwrap();
    let names = |t: TaskId, n: u32| -> Vec<String> {
        artifacts
            .iter()
            .filter(|x| x.attempt.task == t && x.attempt.number == n)
            .map(|x| x.name.clone())
            .collect()
    };
    assert_eq!(
        names(a.id, 1),
        vec![
            "agent.exit",
            "agent.log",
            "integration-1.log",
            "integration-2.log",
            "prompt.md",
            "worker-1.log"
        ]
    );
    assert_eq!(
        names(d.id, 1),
        vec!["agent.exit", "agent.log", "prompt.md"],
        "the broken agent never reached a gate"
    );
    assert!(artifacts.iter().all(|x| x.path.ends_with(&x.name)));
    assert!(
        artifacts
            .iter()
            .any(|x| x.name == "prompt.md" && x.bytes > 0)
    );
    // Every cleanup ran without leaving anything behind.
    let cleanup_errors: Vec<String> = journal
        .iter()
        .filter_map(|e| match e {
            RunEvent::CleanupDone {
                error: Some(err),
                attempt,
            } => Some(format!("{attempt}: {err}")),
            _ => None,
        })
        .collect();
    assert!(cleanup_errors.is_empty(), "{cleanup_errors:?}");
    // Succeeded attempts' branches are gone; failed ones are kept. Every worktree is
    // back in the pool, detached, its branch free.
    let inv = Git::open(&fx.repo()).unwrap().inventory().unwrap();
    assert!(
        inv.worktrees.iter().all(|w| w.branch.is_none()),
        "{:?}",
        inv.worktrees
    );
    let kept: Vec<String> = inv
        .branches
        .iter()
        .map(|b| b.name.clone())
        .filter(|b| b.starts_with("orch/r1/task-"))
        .collect();
    let failures: Vec<String> = journal
        .iter()
        .filter_map(|e| match e {
            RunEvent::AttemptMoved {
                attempt,
                to: orch_core::run::AttemptState::Failed(k),
                ..
            } => Some(format!("{attempt}: {k}")),
            _ => None,
        })
        .collect();
    let broken: Vec<String> = (1..=failures.len())
        .map(|n| format!("orch/r1/task-{}-{n}", d.id))
        .collect();
    assert_eq!(
        kept, broken,
        "only the broken task's attempts should have failed; failures: {failures:?}"
    );
    let branches: Vec<&str> = inv.branches.iter().map(|b| b.name.as_str()).collect();
    assert!(branches.contains(&"orch/integration"));
    assert!(
        !branches
            .iter()
            .any(|b| b.starts_with(&format!("orch/r1/task-{}-", a.id)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_run_stops_its_agents_and_releases_its_tasks() {
    let fx = Fx::new();
    let store = fx.store().await;
    let t = store
        .add_task(
            NewTask {
                title: "slow".into(),
                ..NewTask::default()
            },
            "t",
        )
        .await
        .unwrap();
    let pids = fx.tmp.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let agent = format!(
        "sleep 300 & echo $! > {}/$ORCH_TASK_ID; wait",
        pids.display()
    );
    let engine = fx.engine(store.clone(), config(), &agent);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let pid_file = pids.join(t.id.to_string());
    let pf = pid_file.clone();
    tokio::spawn(async move {
        for _ in 0..200 {
            if pf.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c2.cancel();
    });
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        engine.run(RunId("r2".into()), cancel, None),
    )
    .await
    .expect("a canceled run ends")
    .unwrap();
    assert_eq!(summary.state, RunState::Canceled);
    assert_eq!(
        store.task(t.id).await.unwrap().status,
        TaskStatus::Backlog,
        "released, not lost"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !orch_validate::runner::is_alive(pid),
        "the agent's child {pid} survived the cancel"
    );
}

#[test]
fn planner_output_is_parsed_or_refused_clearly() {
    use orch_core::run::Proposal;
    let p = orch_engine::parse_proposals(br#"[{"action":"claim","task":2,"note":"first"},{"action":"defer","task":1,"reason":"later"}]"#).unwrap();
    assert_eq!(
        p[0],
        Proposal::Claim {
            task: TaskId(2),
            note: Some("first".into())
        }
    );
    let wrapped = orch_engine::parse_proposals(
        br#"{"proposals":[{"action":"stop_claiming","reason":"done"}]}"#,
    )
    .unwrap();
    assert_eq!(wrapped.len(), 1);
    assert!(
        orch_engine::parse_proposals(b"not json")
            .unwrap_err()
            .contains("invalid JSON")
    );
    assert!(
        orch_engine::parse_proposals(br#"[{"action":"dance"}]"#)
            .unwrap_err()
            .contains("not understood")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planner_proposes_and_the_core_decides() {
    let fx = Fx::new();
    let store = fx.store().await;
    for title in ["first by priority", "planner's pick"] {
        let p = if title.starts_with("first") { 5 } else { 0 };
        store
            .add_task(
                NewTask {
                    title: title.into(),
                    priority: p,
                    ..NewTask::default()
                },
                "t",
            )
            .await
            .unwrap();
    }
    let seen = fx.tmp.path().join("planner-inputs");
    std::fs::create_dir(&seen).unwrap();
    let mut cfg = config();
    cfg.run.concurrency = std::num::NonZeroU32::new(1).unwrap();
    cfg.run.planner = format!(
        "cat > {}/in-$$.json; printf '%s' '[{{\"action\":\"claim\",\"task\":2,\"note\":\"start here\"}},{{\"action\":\"claim\",\"task\":99}}]'",
        seen.display()
    );
    let engine = fx.engine(store.clone(), cfg, AGENT);
    let run = RunId("p1".into());
    let summary = engine
        .run(run.clone(), CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Completed);
    // The planner saw the claimable tasks on stdin: both at first, then the one left.
    let mut sizes: Vec<usize> = std::fs::read_dir(&seen)
        .unwrap()
        .flatten()
        .map(|f| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
            v["claimable"].as_array().unwrap().len()
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2]);
    // Its valid claim went first, against the scheduler's priority order; the unknown
    // task was refused with a reason; every verdict is journaled.
    let journal = store.run_events(&run).await.unwrap();
    let first = journal.iter().find_map(|e| match e {
        RunEvent::AttemptCreated { attempt, .. } => Some(attempt.task),
        _ => None,
    });
    assert_eq!(first, Some(TaskId(2)));
    let verdicts: Vec<String> = journal
        .iter()
        .filter(|e| e.kind() == "planner.proposal")
        .map(|e| e.reason())
        .collect();
    assert!(
        verdicts
            .iter()
            .any(|v| v.contains("task: TaskId(99)") && v.contains("unknown task 99")),
        "{verdicts:?}"
    );
    let prompt =
        std::fs::read_to_string(fx.repo().join(".orch/artifacts/p1/2/1/prompt.md")).unwrap();
    assert!(prompt.contains("start here"), "{prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_planner_falls_back_to_the_scheduler() {
    let fx = Fx::new();
    let store = fx.store().await;
    store
        .add_task(
            NewTask {
                title: "only".into(),
                ..NewTask::default()
            },
            "t",
        )
        .await
        .unwrap();
    let mut cfg = config();
    cfg.run.planner = "echo this is not json".into();
    let engine = fx.engine(store.clone(), cfg, AGENT);
    let run = RunId("p2".into());
    let summary = engine
        .run(run.clone(), CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Completed);
    assert_eq!(summary.tasks, vec![(TaskId(1), TaskStatus::Done)]);
    let journal = store.run_events(&run).await.unwrap();
    assert!(
        journal.iter().any(
            |e| matches!(e, RunEvent::PlannerFallback { reason } if reason.contains("invalid JSON"))
        ),
        "the fallback and its reason are journaled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_template_replaces_the_built_in_prompt() {
    let fx = Fx::new();
    let store = fx.store().await;
    store
        .add_task(
            NewTask {
                title: "templated".into(),
                body: "do it".into(),
                ..NewTask::default()
            },
            "t",
        )
        .await
        .unwrap();
    std::fs::write(
        fx.repo().join("prompt.tpl"),
        "Task #{task_id} {title}\n{body}\nChecks:\n{worker_validation}\n",
    )
    .unwrap();
    let mut cfg = config();
    cfg.agent.prompt_template = "prompt.tpl".into();
    let agent = r#"grep -q "Task #$ORCH_TASK_ID $ORCH_TASK_TITLE" {prompt_file} || exit 9; printf '%s\n' "$ORCH_TASK_TITLE" > "task-$ORCH_TASK_ID.txt""#;
    let summary = fx
        .engine(store.clone(), cfg.clone(), agent)
        .run(RunId("t1".into()), CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(summary.tasks, vec![(TaskId(1), TaskStatus::Done)]);
    let prompt =
        std::fs::read_to_string(fx.repo().join(".orch/artifacts/t1/1/1/prompt.md")).unwrap();
    assert_eq!(
        prompt,
        "Task #1 templated\ndo it\nChecks:\ntest -s \"task-$ORCH_TASK_ID.txt\"\n"
    );
    // A missing template is a clear configuration error, before anything runs.
    cfg.agent.prompt_template = "missing.tpl".into();
    let err = fx
        .engine(store.clone(), cfg, agent)
        .run(RunId("t2".into()), CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("agent.prompt_template")
            && err.to_string().contains("missing.tpl"),
        "{err}"
    );
}

/// True while a process tagged with `run` is alive (zombies are dead).
fn tagged_alive(run: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            let tagged = std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|kv| kv == format!("ORCH_RUN_ID={run}").as_bytes())
            });
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            tagged && !zombie
        })
}

/// Waits until the run's journal shows `attempt` running.
async fn until_running(store: &Store, run: &RunId) {
    for _ in 0..400 {
        let events = store.run_events(run).await.unwrap_or_default();
        if events.iter().any(|e| {
            matches!(e, RunEvent::AttemptMoved { to, .. } if *to == orch_core::run::AttemptState::Running)
        }) {
            // Give the agent a moment to start.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the attempt never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_resumes_after_its_lease_expires_and_keeps_finished_work() {
    let fx = Fx::new();
    let store = fx.store().await;
    let t = store
        .add_task(
            NewTask {
                title: "one".into(),
                ..NewTask::default()
            },
            "t",
        )
        .await
        .unwrap();
    let mut cfg = config();
    cfg.run.lease_ttl = CfgDuration(Duration::from_secs(1));
    // Were the agent run again, the test fails in seconds rather than hanging.
    cfg.agent.timeout = CfgDuration(Duration::from_secs(10));
    // An agent that never finishes on its own: the resumed run must not run it again.
    let engine = fx.engine(store.clone(), cfg, "sleep 300");
    // Unique on the machine: the test looks for processes tagged with it.
    let run = RunId(format!("r-crash-{}", std::process::id()));
    let handle = {
        let (engine, run) = (engine.clone(), run.clone());
        tokio::spawn(async move { engine.run(run, CancellationToken::new(), None).await })
    };
    until_running(&store, &run).await;
    // The "crash": the engine stops mid-run without a word (dropping it aborts what it
    // spawned, and their process-group guards kill the agent), and its lease stays
    // behind, owned by a live process.
    handle.abort();
    let _ = handle.await;
    for _ in 0..100 {
        if !tagged_alive(&run.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!tagged_alive(&run.0), "dropping the run stops its agent");

    // Meanwhile the agent had finished and orch had committed its work and written
    // the exit marker, just before the crash (as the engine does after every agent).
    let a = orch_core::run::AttemptId {
        task: t.id,
        number: 1,
    };
    let wt = worktree_of(&fx.repo(), &a.branch(&run));
    std::fs::write(
        wt.join(format!("task-{}.txt", t.id)),
        "from before the crash\n",
    )
    .unwrap();
    git(&wt, &["add", "-A"]);
    git(&wt, &["commit", "-q", "-m", "the agent's work"]);
    let head = git(&wt, &["rev-parse", "HEAD"]);
    let marker = fx
        .repo()
        .join(".orch/artifacts")
        .join(&run.0)
        .join(t.id.0.to_string())
        .join("1")
        .join(orch_engine::EXIT_MARKER);
    assert!(marker.parent().unwrap().is_dir(), "{}", marker.display());
    std::fs::write(
        &marker,
        serde_json::json!({ "exit": { "code": 0 }, "changes": { "head": head, "empty": false } })
            .to_string(),
    )
    .unwrap();

    // The lease is live: a resume now is refused.
    let err = engine
        .resume(run.clone(), CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is driven by orch@"), "{err}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let summary = engine
        .resume(run.clone(), CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(summary.state, RunState::Completed, "{summary:?}");
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("its lease expired")),
        "{:?}",
        summary.notes
    );
    assert_eq!(store.task(t.id).await.unwrap().status, TaskStatus::Done);
    let events = store.run_events(&run).await.unwrap();
    assert!(events.iter().any(|e| matches!(e, RunEvent::Resumed { reason, .. } if reason.contains("agent had finished before the crash"))));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, RunEvent::AttemptCreated { .. }))
            .count(),
        1,
        "the agent was not run again"
    );
    let content = git(
        &fx.repo(),
        &["show", &format!("orch/integration:task-{}.txt", t.id)],
    );
    assert_eq!(content, "from before the crash");
    // Resuming a finished run is idempotent.
    let again = engine
        .resume(run.clone(), CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(again.head, summary.head);
    assert_eq!(store.run_events(&run).await.unwrap().len(), events.len());
}
