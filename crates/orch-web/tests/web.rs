//! The dashboard over real HTTP on loopback, against a real SQLite file (and a real
//! PostgreSQL database when `ORCH_TEST_DATABASE_URL` names a server): the token, the
//! CSRF and origin checks, escaping, controls and their refusals, and the live event
//! stream resumed from `Last-Event-ID` with no gap and no duplicate.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::net::SocketAddr;
use std::time::Duration;

use orch_engine::core::ports::Undo;
use orch_engine::core::run::{AttemptId, Journaled, RunEvent, RunId};
use orch_engine::core::task::{NewTask, TaskEdit};
use orch_engine::core::transition::Actor;
use orch_engine::core::{TaskId, TaskStatus};
use orch_engine::{OpenOptions, Repo};
use orch_store::{ControlKind, EventFilter, MoveRequest, Store};
use orch_web::{Options, Served};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

struct Reply {
    status: u16,
    head: String,
    body: String,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Reply {
        status: head[9..12].parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn cookie(addr: SocketAddr) -> String {
    format!("Cookie: orch_token_{}={TOKEN}", addr.port())
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[&cookie(addr)], "").await
}

/// A form POST with the token's cookie, from `origin`.
async fn post(addr: SocketAddr, path: &str, origin: &str, form: &str) -> Reply {
    request(addr, "POST", path, &[&cookie(addr), origin], form).await
}

/// The CSRF token the page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[at..at + 32].to_owned()
}

async fn start(repo: Repo) -> Served {
    orch_web::start(
        repo,
        Options {
            bind: "127.0.0.1:0".parse().unwrap(),
            token: Some(TOKEN.into()),
            actor: "human:tester".into(),
            start: None,
        },
    )
    .await
    .unwrap()
}

/// A git repository in `dir` set up by `Repo::init`, on `database_url` when given
/// (else its own SQLite file).
async fn repo_in(dir: &std::path::Path, database_url: Option<&str>) -> Repo {
    orch_testkit::git(dir, &["init", "-q"]);
    let mut opts = OpenOptions::default();
    if let Some(url) = database_url {
        opts = opts.set(format!("database_url={url}"));
    }
    Repo::init(dir, &opts).await.unwrap().0
}

async fn task(store: &Store, title: &str) -> TaskId {
    let t = NewTask {
        title: title.into(),
        ..NewTask::default()
    };
    store.add_task(t, "human:tester").await.unwrap().id
}

async fn the_dashboard(repo: Repo) {
    let store = repo.store().clone();
    let served = start(repo).await;
    let addr = served.addr;
    // The token: nothing without it, a cookie from the URL, then the pages.
    assert_eq!(request(addr, "GET", "/orch/", &[], "").await.status, 401);
    assert_eq!(
        request(
            addr,
            "GET",
            "/orch/runs",
            &[&format!("Cookie: orch_token_{}=wrong", addr.port())],
            ""
        )
        .await
        .status,
        401
    );
    let r = request(addr, "GET", &format!("/orch/?token={TOKEN}"), &[], "").await;
    assert_eq!(r.status, 303);
    // The cookie is this server's (named after its port) and the dashboard's path's
    // only: a second dashboard, or a dev server on another port, gets none of it.
    let set = format!(
        "orch_token_{}={TOKEN}; HttpOnly; SameSite=Strict; Path=/orch",
        addr.port()
    );
    assert!(r.head.contains(&set), "{}", r.head);
    // A token on any path sends the browser to a page of the dashboard, never away.
    for away in [
        "//evil.example/",
        "/\\evil.example/",
        "/orch//evil.example/x",
        "/x",
    ] {
        let r = request(addr, "GET", &format!("{away}?token={TOKEN}"), &[], "").await;
        assert_eq!(r.status, 303, "{away}");
        assert!(
            r.head.contains("\r\nlocation: /orch/\r\n"),
            "{away}: {}",
            r.head
        );
    }
    // An old bookmark of `/` finds the dashboard; the cookie of another port is not it.
    let r = request(addr, "GET", "/", &[], "").await;
    assert!(
        r.status == 303 && r.head.contains("location: /orch/"),
        "{}",
        r.head
    );
    let other = format!("Cookie: orch_token_1={TOKEN}");
    assert_eq!(
        request(addr, "GET", "/orch/", &[&other], "").await.status,
        401
    );
    // Task text is text.
    let evil = task(&store, "<script>alert(1)</script> & \"quotes\"").await;
    let failed = task(&store, "fails").await;
    let force = |to| MoveRequest {
        to,
        actor: Actor::Human,
        force: true,
        reason: Some("set up by the test".into()),
    };
    store
        .move_task(failed, &force(TaskStatus::Failed), "human:tester")
        .await
        .unwrap();
    let page = get(addr, "/orch/").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "unescaped title");
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;")
    );
    assert!(!page.body.contains(TOKEN), "the token is in the page");
    let csrf = csrf_of(&page.body);
    let origin = format!("Origin: http://{addr}");
    // A POST without the page's CSRF token, or from elsewhere, changes nothing.
    let path = format!("/orch/tasks/{failed}");
    let r = post(addr, &path, &origin, "action=retry&csrf=nope").await;
    assert_eq!(r.status, 403);
    let elsewhere = "Origin: http://evil.example";
    let r = post(addr, &path, elsewhere, &format!("action=retry&csrf={csrf}")).await;
    assert_eq!(r.status, 403);
    assert_eq!(store.task(failed).await.unwrap().status, TaskStatus::Failed);
    // With both, the retry happens, journaled as the person, from the dashboard.
    let r = post(addr, &path, &origin, &format!("action=retry&csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        store.task(failed).await.unwrap().status,
        TaskStatus::Backlog
    );
    let events = store
        .events(&EventFilter {
            task: Some(failed),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().actor, "human:tester (dashboard)");
    // A control the policy refuses says why.
    let r = post(addr, &path, &origin, &format!("action=retry&csrf={csrf}")).await;
    assert_eq!(r.status, 409);
    assert!(
        r.body.contains("only a failed task can be retried"),
        "{}",
        r.body
    );
    let prio = format!("/orch/tasks/{evil}");
    let r = post(
        addr,
        &prio,
        &origin,
        &format!("action=priority&csrf={csrf}&priority=7"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(store.task(evil).await.unwrap().priority, 7);
    let r = post(
        addr,
        &prio,
        &origin,
        &format!("action=priority&csrf={csrf}&priority=high"),
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(
        r.body.contains("a priority is a whole number"),
        "{}",
        r.body
    );
    // A run's controls are posted for whichever process drives it, journaled as the
    // person who asked.
    let run = RunId("r-web".into());
    store
        .create_run(&run, &serde_json::json!({}), "orchestrator")
        .await
        .unwrap();
    let r = post(
        addr,
        "/orch/runs/r-web/pause",
        &origin,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let pending = store.pending_controls(&run).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].kind, ControlKind::PauseClaims);
    let asked = store
        .events(&EventFilter {
            run: Some("r-web".into()),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let asked = asked.last().unwrap();
    assert_eq!(
        (asked.kind.as_str(), asked.actor.as_str()),
        ("control.requested", "human:tester (dashboard)")
    );
    let r = post(
        addr,
        "/orch/runs/r-web/explode",
        &origin,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 409);
    assert!(r.body.contains("allowed are cancel, pause and resume"));
    // An undo of landed work that landed anyway is flagged on the run's page.
    let page = get(addr, "/orch/runs/r-web").await.body;
    assert!(!page.contains("<h2>Flags</h2>"), "nothing to flag yet");
    let undo = RunEvent::Reverts {
        attempt: AttemptId {
            task: failed,
            number: 1,
        },
        undone: vec![Undo {
            task: "add-<cache>".into(),
            file: "src/cache.rs".into(),
            lines: (3, 4),
            restores: false,
        }],
        why: "its task says it reverts that work".into(),
    };
    let at = orch_engine::core::Timestamp(1_764_000_000_000);
    store
        .append_run_events(&run, &[Journaled { at, event: undo }], "orchestrator")
        .await
        .unwrap();
    let page = get(addr, "/orch/runs/r-web").await.body;
    assert!(
        page.contains("task-2-1 undoes add-&lt;cache&gt;&#39;s change to src/cache.rs lines 3-4 (removes what it added) (its task says it reverts that work)"),
        "{page}"
    );
    // Filters.
    let only = get(addr, "/orch/?status=backlog").await.body;
    assert!(only.contains("data-status=\"backlog\"") && !only.contains("data-status=\"done\""));
    for p in [
        "/orch/runs",
        "/orch/events",
        &format!("/orch/events?task={evil}"),
    ] {
        assert_eq!(get(addr, p).await.status, 200, "{p}");
    }
    served.stop();
}

/// Reads SSE messages' ids until `n` arrived.
async fn ids(lines: &mut (impl AsyncBufReadExt + Unpin), n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), lines.read_line(&mut line)).await;
        let line = match read {
            Ok(Ok(0)) | Err(_) => panic!("the stream ended or stalled after {out:?}"),
            Ok(r) => {
                r.unwrap();
                line
            }
        };
        if let Some(id) = line.trim().strip_prefix("id:") {
            out.push(id.trim().parse().unwrap());
        }
    }
    out
}

async fn live(addr: SocketAddr, last: Option<i64>) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let resume = last
        .map(|l| format!("Last-Event-ID: {l}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /orch/live HTTP/1.1\r\nHost: {addr}\r\n{}\r\n{resume}\r\n",
        cookie(addr)
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).await.unwrap();
    assert!(status.contains("200"), "{status}");
    r
}

async fn the_live_stream(repo: Repo) {
    let store = repo.store().clone();
    let served = start(repo).await;
    let addr = served.addr;
    let first = store.last_event_seq().await.unwrap();
    let mut stream = live(addr, Some(first)).await;
    for i in 0..3 {
        task(&store, &format!("t{i}")).await;
    }
    let got = ids(&mut stream, 3).await;
    drop(stream);
    // Written while no one listened, then a reconnect from the last id seen.
    for i in 3..6 {
        task(&store, &format!("t{i}")).await;
    }
    let mut stream = live(addr, Some(*got.last().unwrap())).await;
    let more = ids(&mut stream, 3).await;
    let all: Vec<i64> = got.into_iter().chain(more).collect();
    let want: Vec<i64> = store
        .events(&EventFilter {
            after_seq: Some(first),
            ..EventFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all, want, "a gap or a duplicate");
    served.stop();
}

/// The board part of a page, without the server's CSRF token.
async fn board_of(addr: SocketAddr) -> String {
    let r = request(
        addr,
        "GET",
        "/orch/",
        &[&cookie(addr), "X-Orch-Partial: 1"],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let csrf = csrf_of(&r.body);
    r.body.replace(&csrf, "CSRF")
}

/// A board kept up to date change by change shows what one read whole shows.
async fn the_board_patched(repo: Repo) {
    let store = repo.store().clone();
    let served = start(repo.clone()).await;
    let (a, b) = (task(&store, "a").await, task(&store, "b").await);
    board_of(served.addr).await;
    let c = task(&store, "c").await;
    let edit = TaskEdit {
        priority: Some(9),
        add_deps: vec![a],
        add_labels: vec!["ui".into()],
        ..TaskEdit::default()
    };
    store.edit_task(c, &edit, "human:tester").await.unwrap();
    let done = MoveRequest {
        to: TaskStatus::Done,
        actor: Actor::Human,
        force: true,
        reason: Some("by hand".into()),
    };
    store.move_task(a, &done, "human:tester").await.unwrap();
    let patched = board_of(served.addr).await;
    assert!(
        patched.contains("<span class=\"label\">ui</span>"),
        "{patched}"
    );
    let fresh = start(repo.clone()).await;
    assert_eq!(patched, board_of(fresh.addr).await);
    fresh.stop();
    // A removal, which can change other tasks too, reads the board whole.
    store.remove_task(b, true, "human:tester").await.unwrap();
    let patched = board_of(served.addr).await;
    assert!(!patched.contains("id=\"task-2\""));
    let fresh = start(repo).await;
    assert_eq!(patched, board_of(fresh.addr).await);
    fresh.stop();
    served.stop();
}

async fn each_backend<F, Fut>(body: F)
where
    F: Fn(Repo) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    body(repo_in(dir.path(), None).await).await;
    if let Some(admin) = orch_testkit::postgres::server() {
        let db = orch_testkit::postgres::FreshDb::new(&admin, "web");
        let dir = tempfile::tempdir().unwrap();
        let repo = repo_in(dir.path(), Some(&db.url)).await;
        body(repo.clone()).await;
        repo.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_csrf_escaping_and_controls() {
    each_backend(the_dashboard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_patched_by_events_matches_one_read_whole() {
    each_backend(the_board_patched).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_resumes_without_gaps_or_duplicates() {
    each_backend(the_live_stream).await;
}

/// An agent can write in its attempt's artifacts directory: a log it links to another
/// file is refused, on the attempt page and as a stream, and the file is not served.
/// A log stream sends what is new from its offset and ends (an `end` event) once the
/// attempt is over, instead of rereading the file for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_regular_files_and_their_streams_end() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_in(dir.path(), None).await;
    let artifacts = repo.artifacts();
    let attempt = artifacts.join("r-logs/1/1");
    std::fs::create_dir_all(&attempt).unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the-secret-line\n").unwrap();
    std::os::unix::fs::symlink(&secret, attempt.join("x.log")).unwrap();
    std::fs::write(attempt.join("agent.log"), "one\ntwo\nthree\n").unwrap();
    let served = start(repo).await;
    let addr = served.addr;
    let page = get(addr, "/orch/runs/r-logs/attempts/1/1").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("the-secret-line"), "{}", page.body);
    assert!(page.body.contains("not shown"), "{}", page.body);
    assert!(page.body.contains("symbolic link"), "{}", page.body);
    let r = get(addr, "/orch/runs/r-logs/attempts/1/1/log/x.log").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(!r.body.contains("the-secret-line"));
    // From byte 4 on: "two" and "three", then the end (the store knows no such
    // attempt, so it is over); the request returns instead of streaming for ever.
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        get(addr, "/orch/runs/r-logs/attempts/1/1/log/agent.log?from=4"),
    )
    .await
    .expect("the stream of a finished attempt's log ends");
    assert!(
        stream.body.contains("data: two\ndata: three"),
        "{}",
        stream.body
    );
    assert!(!stream.body.contains("data: one"), "{}", stream.body);
    assert!(stream.body.contains("event: end"), "{}", stream.body);
    served.stop();
}
