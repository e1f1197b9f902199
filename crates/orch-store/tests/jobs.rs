//! The job queue: claims, heartbeats, cancels and fenced results on SQLite and
//! PostgreSQL, and a stress test on a real PostgreSQL server (when
//! `ORCH_TEST_DATABASE_URL` names one): 8 claimers on their own connections claim
//! 10,000 jobs, some "dying" with their lease, and the test shows no job claimed twice,
//! none lost, and every late result from a fenced worker refused.
#![allow(clippy::unwrap_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orch_core::TaskId;
use orch_core::jobs::{Beat, JobResult, JobSpec, JobState};
use orch_core::run::{AgentExit, AgentReport, CommitId, FinishedAgent};
use orch_store::{EventFilter, JOB_INTERRUPTED, Location, Store, StoreError};
use orch_testkit::postgres::FreshDb;

fn spec(task: i64, labels: &[&str]) -> JobSpec {
    JobSpec {
        run: "r1".into(),
        task: TaskId(task),
        attempt: 1,
        prompt: "do it".into(),
        base: CommitId("b".repeat(40)),
        branch: format!("orch/r1/task-{task}-1"),
        gates: vec!["true".into()],
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        resume_session: None,
        deadline: None,
    }
}

fn result(worker: &str) -> JobResult {
    JobResult {
        worker: worker.into(),
        agent: FinishedAgent {
            exit: AgentExit::Code(0),
            changes: None,
            report: AgentReport::default(),
        },
        gate: None,
        logs: vec![("agent.log".into(), "done\n".into())],
        provision_error: None,
    }
}

async fn the_queue(store: Store) {
    let a = store.post_job(&spec(1, &[])).await.unwrap();
    assert_eq!(
        store.post_job(&spec(1, &[])).await.unwrap().id,
        a.id,
        "idempotent"
    );
    store.post_job(&spec(2, &["gpu"])).await.unwrap();
    // A worker taking only gpu jobs skips task 1's.
    let gpu = store
        .claim_job("w-gpu", &["gpu".into()], 60_000)
        .await
        .unwrap();
    assert_eq!(gpu.unwrap().job.spec.task, TaskId(2));
    let c = store.claim_job("w1", &[], 60_000).await.unwrap().unwrap();
    assert_eq!(
        (c.job.spec.task, c.job.epoch, c.took_over.clone()),
        (TaskId(1), 1, None)
    );
    assert!(
        store.claim_job("w2", &[], 60_000).await.unwrap().is_none(),
        "nothing left"
    );
    assert_eq!(
        store.heartbeat_job(c.job.id, 1, 60_000).await.unwrap(),
        Beat::Live
    );
    // A cancel reaches the worker at its next heartbeat; its result still lands.
    let s = store.cancel_job("r1", TaskId(1), 1).await.unwrap();
    assert_eq!(s, Some(JobState::Canceling));
    assert_eq!(
        store.heartbeat_job(c.job.id, 1, 60_000).await.unwrap(),
        Beat::Cancel
    );
    store.finish_job(c.job.id, 1, &result("w1")).await.unwrap();
    let done = store.job("r1", TaskId(1), 1).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.result.unwrap().worker, "w1");
    // A lease run out: another worker takes the job, the first is fenced.
    store.post_job(&spec(3, &[])).await.unwrap();
    let old = store.claim_job("w1", &[], 1).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let new = store.claim_job("w2", &[], 60_000).await.unwrap().unwrap();
    assert_eq!(new.job.id, old.job.id);
    assert_eq!((new.job.epoch, new.took_over.as_deref()), (2, Some("w1")));
    assert_eq!(
        store.heartbeat_job(old.job.id, 1, 60_000).await.unwrap(),
        Beat::Fenced
    );
    let late = store.finish_job(old.job.id, 1, &result("w1")).await;
    assert!(
        matches!(late, Err(StoreError::JobFenced { epoch: 1, .. })),
        "{late:?}"
    );
    store
        .finish_job(new.job.id, 2, &result("w2"))
        .await
        .unwrap();
    let events = store.events(&EventFilter::default()).await.unwrap();
    let interrupted = events.iter().find(|e| e.kind == JOB_INTERRUPTED).unwrap();
    assert_eq!(interrupted.task_id, Some(TaskId(3)));
    assert!(
        interrupted.reason.contains("no attempt is spent"),
        "{}",
        interrupted.reason
    );
    // A queued job canceled is gone; forgetting removes a done one.
    store.post_job(&spec(4, &[])).await.unwrap();
    assert_eq!(store.cancel_job("r1", TaskId(4), 1).await.unwrap(), None);
    store.forget_job("r1", TaskId(1), 1).await.unwrap();
    let left: Vec<i64> = store
        .jobs(Some("r1"))
        .await
        .unwrap()
        .iter()
        .map(|j| j.spec.task.0)
        .collect();
    assert_eq!(left, vec![2, 3]);
    assert!(store.db_clock().await.unwrap() > 1_700_000_000_000);
    // Logs saved by a worker replace an earlier owner's, and read back by task.
    let logs = |t: &str| vec![("agent.log".to_owned(), t.to_owned())];
    store
        .save_logs("r1", TaskId(3), 1, "w1", &logs("first"))
        .await
        .unwrap();
    store
        .save_logs("r1", TaskId(3), 1, "w2", &logs("second"))
        .await
        .unwrap();
    let read = store.stored_logs(None, TaskId(3)).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(
        (read[0].worker.as_str(), read[0].text.as_str()),
        ("w2", "second")
    );
    assert!(
        store
            .stored_logs(Some("r2"), TaskId(3))
            .await
            .unwrap()
            .is_empty()
    );
    // On PostgreSQL a posted job is announced to listeners at once.
    if let Some(mut changes) = store.job_changes().await {
        changes.borrow_and_update();
        store.post_job(&spec(5, &[])).await.unwrap();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed());
        woke.await.expect("announced within 5 s").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_claimed_held_canceled_and_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Location::Sqlite(dir.path().join("orch.db")))
        .await
        .unwrap();
    assert!(matches!(
        store.check_serves_workers(),
        Err(StoreError::WorkersNeedPostgres(_))
    ));
    the_queue(store).await;
    if let Ok(url) = std::env::var("ORCH_TEST_DATABASE_URL") {
        let db = FreshDb::new(&url, "store");
        let loc = Location::Postgres(db.url.clone());
        let store = Store::open(&loc).await.unwrap();
        store.check_serves_workers().unwrap();
        the_queue(store).await;
        drop(db);
    }
}

/// A small deterministic generator: the test needs spread, not secrecy.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default)]
struct Tally {
    /// Each job's successful results, by worker.
    finished: HashMap<i64, Vec<String>>,
    /// Late results from fenced epochs: tried, and refused.
    late: (u64, u64),
    claims: u64,
}

const JOBS: i64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_claimers_never_share_or_lose_a_job() {
    let Ok(url) = std::env::var("ORCH_TEST_DATABASE_URL") else {
        eprintln!("ORCH_TEST_DATABASE_URL is not set: the PostgreSQL stress test is skipped");
        return;
    };
    let db = FreshDb::new(&url, "store");
    let loc = Location::Postgres(db.url.clone());
    let store = Store::open(&loc).await.unwrap();
    let mut posts = tokio::task::JoinSet::new();
    for part in 0..8 {
        let s = store.clone();
        posts.spawn(async move {
            for t in (1..=JOBS).filter(|t| t % 8 == part) {
                s.post_job(&spec(t, &[])).await.unwrap();
            }
        });
    }
    posts.join_all().await;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = std::time::Instant::now();
    let mut claimers = tokio::task::JoinSet::new();
    for w in 0..8u64 {
        // Each claimer on connections of its own.
        let s = Store::open(&loc).await.unwrap();
        let tally = tally.clone();
        claimers.spawn(async move { claimer(s, w, tally).await });
    }
    claimers.join_all().await;
    let secs = started.elapsed().as_secs_f64();
    let t = std::mem::take(&mut *tally.lock().unwrap());
    let doubles: Vec<_> = t.finished.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(doubles.is_empty(), "jobs with two results: {doubles:?}");
    let jobs = store.jobs(Some("r1")).await.unwrap();
    let lost: Vec<i64> = jobs
        .iter()
        .filter(|j| j.state != JobState::Done)
        .map(|j| j.id)
        .collect();
    assert_eq!((jobs.len() as i64, lost.len()), (JOBS, 0), "lost: {lost:?}");
    assert_eq!(t.finished.len() as i64, JOBS);
    assert!(t.late.0 > 100, "too few late results tried: {}", t.late.0);
    assert_eq!(
        t.late.0, t.late.1,
        "a fenced worker's late result was accepted"
    );
    let expired = store
        .events(&EventFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == JOB_INTERRUPTED)
        .count();
    println!(
        "{} claims of {JOBS} jobs by 8 claimers in {secs:.2}s: {:.0} claims/s; {expired} leases taken over, {} late results all refused; 0 double claims, 0 lost",
        t.claims,
        t.claims as f64 / secs,
        t.late.0
    );
    drop(db);
}

/// Claims until the queue is empty. One claim in ten "dies": its lease runs out at
/// once, and after another worker has had time to take the job over, it tries to post
/// its result anyway.
async fn claimer(store: Store, w: u64, tally: Arc<Mutex<Tally>>) {
    let me = format!("w{w}");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w + 1));
    let mut zombies: Vec<(i64, i64)> = Vec::new();
    let mut idle = 0;
    loop {
        let dies = rng.below(10) == 0;
        let ttl = if dies { 1 } else { 60_000 };
        let c = store.claim_job(&me, &[], ttl).await.unwrap();
        let Some(c) = c else {
            // Dead workers' leases may still be running out.
            idle += 1;
            if idle > 20 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        };
        idle = 0;
        let (id, epoch) = (c.job.id, c.job.epoch);
        {
            let mut t = tally.lock().unwrap();
            t.claims += 1;
            // A claim that "dies" has a lease of 1 ms: by now another claimer may have
            // taken the job over and finished it. One held for a minute, never.
            assert!(
                dies || !t.finished.contains_key(&id),
                "job {id} claimed after its result"
            );
        }
        if dies {
            zombies.push((id, epoch));
        } else {
            store.finish_job(id, epoch, &result(&me)).await.unwrap();
            tally
                .lock()
                .unwrap()
                .finished
                .entry(id)
                .or_default()
                .push(me.clone());
        }
        // Late results, a while after their leases ran out.
        while zombies.len() > 4 {
            let (id, epoch) = zombies.remove(0);
            let r = store.finish_job(id, epoch, &result(&me)).await;
            let mut t = tally.lock().unwrap();
            t.late.0 += 1;
            match r {
                Err(StoreError::JobFenced { .. }) => t.late.1 += 1,
                Ok(()) => t
                    .finished
                    .entry(id)
                    .or_default()
                    .push(format!("{me} (late)")),
                Err(e) => panic!("{e}"),
            }
        }
    }
    for (id, epoch) in zombies {
        let r = store.finish_job(id, epoch, &result(&me)).await;
        let mut t = tally.lock().unwrap();
        t.late.0 += 1;
        if matches!(r, Err(StoreError::JobFenced { .. })) {
            t.late.1 += 1;
        }
    }
}

/// Two machines' pools in one store: a worker taking over an attempt whose dead owner
/// still holds a worktree elsewhere gets one of its own pool, never the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_over_attempt_gets_a_worktree_of_its_own_pool() {
    use orch_core::pool::{Holder, PoolKind, PoolLimits};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Location::Sqlite(dir.path().join("orch.db")))
        .await
        .unwrap();
    let limits = PoolLimits {
        keep_attempt: 4,
        keep_integration: 1,
        max: 0,
        max_bytes: 0,
    };
    let h = Holder {
        run: "r1".into(),
        holder: "task-1-1".into(),
    };
    let (a, b) = (std::path::Path::new("/m1/w"), std::path::Path::new("/m2/w"));
    let first = store
        .lease_pool_slot(PoolKind::Attempt, &h, &limits, a)
        .await
        .unwrap();
    assert!(first.path.starts_with("/m1/w/pool"));
    let again = store
        .lease_pool_slot(PoolKind::Attempt, &h, &limits, a)
        .await
        .unwrap();
    assert_eq!(
        again.slot, first.slot,
        "its own lease again, in its own pool"
    );
    let other = store
        .lease_pool_slot(PoolKind::Attempt, &h, &limits, b)
        .await
        .unwrap();
    assert!(other.path.starts_with("/m2/w/pool"), "{:?}", other.path);
    assert_ne!(other.slot, first.slot);
}
