//! `orch serve` in a real headless Chromium, beside an `orch run` in another process:
//! the board needs the token, a `<script>` title shows as text, the run's cards move
//! across the columns live while a scripted agent works, its output streams into the
//! attempt page as it prints, the cancel button stops a running attempt, and pausing
//! claiming holds a ready task back, and a board left open across a restart of the
//! server resumes its stream with no event missed or doubled. On SQLite, and on
//! PostgreSQL when `ORCH_TEST_DATABASE_URL` names a server. Screenshots of the board,
//! the run and an attempt go to `target/screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use orch_testkit::postgres::{self, FreshDb};
use orch_testkit::webdriver::{Browser, Driver, driver};
use orch_testkit::{Group, Sandbox};
use serde_json::json;

/// The token the server is started with, so a restarted one takes the same URL.
const TOKEN: &str = "dashboard-test-token-0123456789";

fn serve(s: &Sandbox, port: u16) -> (Group, String) {
    s.serve(port)
}

/// The agent: `slow` prints a line every 0.3 s, `long` waits to be canceled.
const AGENT: &str = r#"case "$ORCH_TASK_TITLE" in
  slow) for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; sleep 0.3; done; echo x > slow.txt ;;
  long) echo started; sleep 60 ;;
  fail) echo "cannot parse <input>"; exit 3 ;;
  *) echo y > "$ORCH_TASK_ID.txt" ;;
esac"#;

fn column_of(title: &str) -> String {
    format!(
        "(function(){{var c=[].find.call(document.querySelectorAll('.card'),function(c){{return c.querySelector('.title').textContent==={title:?}}});return c?c.closest('section').dataset.status:null}})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_beside_a_run_in_a_real_browser() {
    let Some(d) = driver() else { return };
    scenario(&d, None).await;
    match postgres::server() {
        Some(admin) => {
            let db = FreshDb::new(&admin, "dashboard");
            scenario(&d, Some(db.url.clone())).await;
        }
        None => eprintln!("ORCH_TEST_DATABASE_URL is not set: PostgreSQL not covered"),
    }
}

async fn scenario(d: &Driver, database: Option<String>) {
    let s = Sandbox::repo_only(env!("CARGO_BIN_EXE_orch")).with_env("ORCH_SERVE_TOKEN", TOKEN);
    if let Some(url) = &database {
        std::fs::create_dir_all(s.home().join(".config/orch")).unwrap();
        let toml = format!("database_url = {url:?}\n");
        std::fs::write(s.home().join(".config/orch/config.toml"), toml).unwrap();
    }
    s.ok(&["init"]);
    for t in ["slow", "long", "<script>document.title='owned'</script>"] {
        s.ok(&["task", "add", t]);
    }
    s.ok(&["task", "add", "after slow", "--after", "1"]);
    let (server, url) = serve(&s, 0);
    let base = url.split("/?").next().unwrap().to_owned();
    let b = Browser::open(d).await;
    // No token, no board; the URL with it: the board, a title's markup as text.
    b.go(&format!("{base}/")).await;
    b.until(
        "a 401 without the token",
        "document.body.innerText.indexOf('401')>=0",
    )
    .await;
    b.go(&url).await;
    b.until(
        "the live board",
        "document.getElementById('live').className==='on'",
    )
    .await;
    let title = b
        .js("document.querySelector('#task-3 .title').textContent")
        .await;
    assert_eq!(title, json!("<script>document.title='owned'</script>"));
    b.js("window.notReloaded=true").await;
    // A run from the CLI, in another process.
    let run = Group(
        s.cmd(&["run", "--agent-cmd", AGENT, "--concurrency", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    b.until(
        "slow in progress",
        &format!("{}==='in_progress'", column_of("slow")),
    )
    .await;
    b.until(
        "long in progress",
        &format!("{}==='in_progress'", column_of("long")),
    )
    .await;
    assert_eq!(b.js("window.notReloaded===true").await, json!(true));
    b.screenshot("board.png").await;
    // Claiming paused from the runs page, through the store's controls.
    b.go(&format!("{base}/runs")).await;
    b.until(
        "the run listed",
        "document.querySelectorAll('tr[data-run]').length===1",
    )
    .await;
    b.js("document.querySelector('form[action$=\"/pause\"] button').click()")
        .await;
    b.until("back on the runs page", "document.title==='Runs · orch'")
        .await;
    // The attempt page: the agent's lines arrive as it prints them.
    b.go(&format!("{base}/")).await;
    b.until(
        "slow's holder",
        "!!document.querySelector('#task-1 .holder a')",
    )
    .await;
    let attempt = b
        .js("document.querySelector('#task-1 .holder a').href")
        .await;
    b.go(attempt.as_str().unwrap()).await;
    b.until("the agent's log", "!!document.querySelector('pre.log')")
        .await;
    b.js("window.notReloaded=true").await;
    let log = "document.querySelector('pre.log').textContent";
    b.until("line 3", &format!("{log}.indexOf('line 3')>=0"))
        .await;
    b.until("line 9, later", &format!("{log}.indexOf('line 9')>=0"))
        .await;
    assert_eq!(b.js("window.notReloaded===true").await, json!(true));
    b.screenshot("attempt.png").await;
    // Back on the board: slow lands; long is canceled by its button.
    b.go(&format!("{base}/")).await;
    b.until("slow done", &format!("{}==='done'", column_of("slow")))
        .await;
    // Its dependent is ready, but a paused run claims nothing.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(b.js(&column_of("after slow")).await, json!("backlog"));
    b.go(&format!("{base}/runs")).await;
    b.until(
        "the run listed",
        "document.querySelectorAll('tr[data-run]').length===1",
    )
    .await;
    // Paused, the run offers resume, not pause.
    b.until(
        "the resume button",
        "!!document.querySelector('form[action$=\"/resume\"]')&&!document.querySelector('form[action$=\"/pause\"]')",
    )
    .await;
    b.js("document.querySelector('form[action$=\"/resume\"] button').click()")
        .await;
    b.go(&format!("{base}/")).await;
    let after = format!("{}==='done'", column_of("after slow"));
    b.until("after slow done once resumed", &after).await;
    // The finished attempt's page shows what it changed: a file, folded open, with
    // its counts and its added line coloured.
    b.go(attempt.as_str().unwrap()).await;
    b.until(
        "the attempt's diff",
        "(document.querySelector('.diff details.file summary')||{textContent:''}).textContent.indexOf('slow.txt +1')>=0",
    )
    .await;
    assert_eq!(
        b.js("document.querySelector('.diff pre span.add').textContent")
            .await,
        json!("+x")
    );
    assert_ne!(
        b.js("getComputedStyle(document.querySelector('.diff pre span.add')).backgroundColor")
            .await,
        b.js("getComputedStyle(document.querySelector('.diff pre span.hunk')).backgroundColor")
            .await,
        "added lines are coloured"
    );
    b.screenshot("diff.png").await;
    // The task page: its attempt, succeeded, linked to its logs and diff.
    b.go(&format!("{base}/tasks/1")).await;
    b.until("the task page", "document.title==='#1 slow · orch'")
        .await;
    assert_eq!(
        b.js("document.querySelector('tr.attempt .chip').textContent")
            .await,
        json!("succeeded")
    );
    assert_eq!(
        b.js("!!document.querySelector('tr.attempt a[href$=\"#change\"]')")
            .await,
        json!(true)
    );
    b.go(&format!("{base}/")).await;
    b.until("the board again", "!!document.querySelector('#task-2')")
        .await;
    b.js("document.querySelector('#task-2 button[value=\"cancel\"]').click()")
        .await;
    b.until(
        "long canceled",
        &format!("{}==='canceled'", column_of("long")),
    )
    .await;
    let runs = "document.querySelectorAll('tr[data-run]').length===1";
    b.go(&format!("{base}/runs")).await;
    b.until("the run listed", runs).await;
    b.until(
        "the run's integration head",
        "/ at [0-9a-f]{10}$/.test(document.querySelectorAll('tr[data-run] td')[6].textContent)",
    )
    .await;
    b.js("document.querySelector('tr[data-run] a').click()")
        .await;
    b.until("the run page", "document.title.indexOf('Run ')===0")
        .await;
    b.screenshot("run.png").await;
    b.until(
        "the run completed",
        "document.querySelector('p.state').textContent.indexOf('completed')===0",
    )
    .await;
    // One lane per attempt in its timeline.
    let lanes = b
        .js("[document.querySelectorAll('svg.timeline g.lane').length,document.querySelectorAll('tr[data-attempt]').length]")
        .await;
    assert_eq!(lanes[0], lanes[1], "{lanes}");
    assert!(lanes[0].as_u64().unwrap() >= 3, "{lanes}");
    b.screenshot("run.png").await;
    drop(run);
    let server = restart(&s, &b, &base, server).await;
    // A run started from the dashboard, with the configured defaults.
    let toml = format!(
        "[agent]\ncommand = {:?}\n\n[policy]\nmax_attempts = 1\n",
        AGENT
    );
    std::fs::write(s.repo().join("orch.toml"), toml).unwrap();
    s.ok(&["task", "add", "from the dashboard"]);
    s.ok(&["task", "add", "fail"]);
    b.go(&format!("{base}/runs")).await;
    b.until(
        "the start button",
        "!!document.querySelector('form[action=\"/orch/runs/start\"]')",
    )
    .await;
    b.js("document.querySelector('form[action=\"/orch/runs/start\"] button').click()")
        .await;
    b.go(&format!("{base}/")).await;
    let started = format!("{}==='done'", column_of("from the dashboard"));
    b.until("the dashboard's run done", &started).await;
    failed_and_described(&s, &b, &base).await;
    added_found_and_dragged(&s, &b, &base).await;
    b.close().await;
    drop(server);
}

/// A failed card says why and links to its attempt; a task page renders its body as
/// markdown that cannot run, takes an edit, and shows a refused move with its reason.
async fn failed_and_described(s: &Sandbox, b: &Browser, base: &str) {
    b.until("fail failed", &format!("{}==='failed'", column_of("fail")))
        .await;
    let card = "[].find.call(document.querySelectorAll('.card'),function(c){return c.querySelector('.title').textContent==='fail'})";
    b.until("its reason", &format!("!!{card}.querySelector('.failure')"))
        .await;
    let why = b
        .js(&format!("{card}.querySelector('.failure').textContent"))
        .await;
    assert!(
        why.as_str()
            .unwrap()
            .contains("the agent failed (exit code 3)"),
        "{why}"
    );
    assert_eq!(
        b.js(&format!(
            "!!{card}.querySelector('.failure a[href*=\"/attempts/\"]')"
        ))
        .await,
        json!(true)
    );
    assert_eq!(
        b.js(&format!(
            "{card}.querySelector('.meta').textContent.indexOf('ready')"
        ))
        .await,
        json!(-1),
        "a failed card is not ready"
    );
    b.screenshot("board-failed.png").await;
    // A canceled card can be reopened, once no run would claim it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s
        .json(&["run", "list"])
        .as_array()
        .unwrap()
        .iter()
        .any(|r| {
            matches!(
                r["state"].as_str(),
                Some("created" | "running" | "draining")
            )
        })
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard's run never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let long = "[].find.call(document.querySelectorAll('.card'),function(c){return c.querySelector('.title').textContent==='long'})";
    b.js(&format!(
        "{long}.querySelector('button[value=reopen]').click()"
    ))
    .await;
    b.until("long back", &format!("{}==='backlog'", column_of("long")))
        .await;
    let body = "# Plan\n\nParse **every** line.\n\n<script>window.pwned=1</script>\n\n[docs](javascript:window.pwned=2)\n";
    s.ok(&["task", "add", "described", "--body", body]);
    let id = s.json(&["task", "list"]).as_array().unwrap().len();
    b.go(&format!("{base}/tasks/{id}")).await;
    b.until("its body", "!!document.querySelector('article.body h1')")
        .await;
    assert_eq!(
        b.js("document.querySelector('article.body strong').textContent")
            .await,
        json!("every")
    );
    assert_eq!(b.js("window.pwned===undefined").await, json!(true));
    assert_eq!(
        b.js("document.querySelector('article.body script')===null")
            .await,
        json!(true)
    );
    assert_eq!(
        b.js("document.querySelector('article.body a').getAttribute('href')")
            .await,
        json!("#")
    );
    b.js("document.querySelector('form.edit input[name=title]').value='described well'")
        .await;
    b.js("document.querySelector('form.edit button[value=edit]').click()")
        .await;
    b.until(
        "the new title",
        "document.title.indexOf('described well')>=0",
    )
    .await;
    b.screenshot("task.png").await;
    // Straight to done is not a move a person makes without forcing it.
    b.js("document.querySelector('form.actions select[name=to]').value='done'")
        .await;
    b.js("document.querySelector('form.actions button[value=move]').click()")
        .await;
    b.until(
        "the refusal",
        "(document.querySelector('.notice')||{textContent:''}).textContent.indexOf('cannot move task')>=0",
    )
    .await;
    assert_eq!(
        s.json(&["task", "show", &id.to_string()])["status"],
        json!("backlog")
    );
}

/// The server stops while the board is open and changes are made; one started again
/// on the same address brings the page every change, each once, without a reload.
async fn restart(s: &Sandbox, b: &Browser, base: &str, server: Group) -> Group {
    b.go(&format!("{base}/")).await;
    let on = "document.getElementById('live').className==='on'";
    b.until("the live board", on).await;
    b.js("window.notReloaded=true").await;
    let count = "(Number(document.getElementById('live').dataset.count)||0)";
    s.ok(&["task", "add", "before the restart"]);
    b.until("one event", &format!("{count}===1")).await;
    let last = b.js("document.getElementById('live').dataset.last").await;
    let last: i64 = last.as_str().unwrap().parse().unwrap();
    drop(server);
    b.until("the stream down", &format!("!({on})")).await;
    s.ok(&["task", "add", "while down"]);
    s.ok(&["task", "add", "while down, too"]);
    s.ok(&["task", "cancel", "5"]);
    let port = base
        .trim_end_matches("/orch")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (server, _) = serve(s, port);
    let o = s.cmd(&["--json", "events"]).output().unwrap();
    let since = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .filter(|&seq| seq > last)
        .count();
    assert_eq!(since, 3, "the changes made while the server was down");
    b.until("every missed event", &format!("{count}===4")).await;
    b.until(
        "the board caught up",
        &format!("{}==='canceled'", column_of("before the restart")),
    )
    .await;
    assert_eq!(b.js(&column_of("while down, too")).await, json!("backlog"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(b.js(count).await, json!(4), "an event came twice");
    assert_eq!(b.js("window.notReloaded===true").await, json!(true));
    server
}

/// A task added from the board's form; found as you type; dragged to blocked (a move a
/// person may make) and to done (one the transition table refuses, with its reason).
async fn added_found_and_dragged(s: &Sandbox, b: &Browser, base: &str) {
    b.go(&format!("{base}/")).await;
    b.until("the board", "!!document.querySelector('form.new')")
        .await;
    b.js("document.querySelector('form.new input[name=title]').value='made in the browser'")
        .await;
    b.js("document.querySelector('form.new input[name=labels]').value='ui, web'")
        .await;
    b.js("document.querySelector('form.new button').click()")
        .await;
    b.until(
        "the new card",
        &format!("{}==='backlog'", column_of("made in the browser")),
    )
    .await;
    let id = s.json(&["task", "list"]).as_array().unwrap().len();
    let shown = s.json(&["task", "show", &id.to_string()]);
    assert_eq!(shown["title"], json!("made in the browser"));
    assert_eq!(shown["labels"], json!(["ui", "web"]));
    // Find as you type: only the cards that match stay.
    let find = |text: &str| {
        format!(
            "(function(){{var f=document.getElementById('find');f.value='{text}';f.dispatchEvent(new Event('input',{{bubbles:true}}))}})()"
        )
    };
    b.js(&find("in the browser")).await;
    let visible = "[].filter.call(document.querySelectorAll('.card'),function(c){return c.style.display!=='none'}).length";
    assert_eq!(b.js(visible).await, json!(1));
    b.js(&find("")).await;
    let drag = |to: &str| {
        format!(
            "(function(){{var c=document.getElementById('task-{id}'),col=document.querySelector('.col[data-status=\"{to}\"]'),dt=new DataTransfer();\
             c.dispatchEvent(new DragEvent('dragstart',{{dataTransfer:dt,bubbles:true}}));\
             col.dispatchEvent(new DragEvent('dragover',{{dataTransfer:dt,bubbles:true,cancelable:true}}));\
             col.dispatchEvent(new DragEvent('drop',{{dataTransfer:dt,bubbles:true,cancelable:true}}));}})()"
        )
    };
    b.js(&drag("blocked")).await;
    b.until(
        "dragged to blocked",
        &format!("{}==='blocked'", column_of("made in the browser")),
    )
    .await;
    b.js(&drag("done")).await;
    b.until(
        "the refusal, kept through live updates",
        "(document.querySelector('#flash .notice')||{textContent:''}).textContent.indexOf('cannot move task')>=0",
    )
    .await;
    assert_eq!(
        s.json(&["task", "show", &id.to_string()])["status"],
        json!("blocked")
    );
    b.screenshot("board.png").await;
    events_paged(s, b, base).await;
    settings(s, b, base).await;
}

/// The settings page: every key with its source; a key set into `orch.toml` through
/// the same path as `orch config set`, and a bad value refused on the page, the file
/// unchanged.
async fn settings(s: &Sandbox, b: &Browser, base: &str) {
    b.go(&format!("{base}/settings")).await;
    b.until(
        "the settings",
        "!!document.querySelector('tr[data-key=\"run.concurrency\"]')",
    )
    .await;
    let set = |key: &str, value: &str| {
        format!(
            "(function(){{var f=document.querySelector('form.set');f.key.value='{key}';f.value.value='{value}';f.querySelector('button').click()}})()"
        )
    };
    b.js(&set("run.concurrency", "6")).await;
    let row = "document.querySelector('tr[data-key=\"run.concurrency\"]').textContent";
    b.until(
        "the new value",
        &format!("{row}.indexOf('6')>=0&&{row}.indexOf('orch.toml')>=0"),
    )
    .await;
    let file = s.repo().join("orch.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("concurrency = 6"), "{text}");
    assert!(
        text.contains("[policy]\nmax_attempts = 1"),
        "the rest kept: {text}"
    );
    b.js(&set("run.concurrency", "0")).await;
    b.until(
        "the refusal",
        "(document.querySelector('.notice.refused')||{textContent:''}).textContent.indexOf('run.concurrency')>=0",
    )
    .await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    b.screenshot("settings.png").await;
}

/// The audit log, a hundred to a page, newest first; the next page goes on from the
/// oldest shown, the filters kept in its URL.
async fn events_paged(s: &Sandbox, b: &Browser, base: &str) {
    let total = s.json(&["events"]).as_array().unwrap().len();
    assert!(total > 100, "{total} events: too few to page");
    b.go(&format!("{base}/events")).await;
    let seqs = "[].map.call(document.querySelectorAll('tr[data-seq]'),function(r){return Number(r.dataset.seq)})";
    b.until(
        "the events",
        "document.querySelectorAll('tr[data-seq]').length===100",
    )
    .await;
    let first: Vec<i64> = serde_json::from_value(b.js(seqs).await).unwrap();
    assert!(first.windows(2).all(|w| w[0] > w[1]), "newest first");
    b.js("document.querySelector('.pages a.older').click()")
        .await;
    b.until("the older page", "location.search.indexOf('before=')>=0")
        .await;
    b.until(
        "its events",
        "document.querySelectorAll('tr[data-seq]').length>0",
    )
    .await;
    let second: Vec<i64> = serde_json::from_value(b.js(seqs).await).unwrap();
    assert_eq!(second[0], first[99] - 1, "it goes on from the oldest shown");
    assert_eq!(first.len() + second.len(), total.min(200));
    // A kind filter stays in the URL of the next page.
    b.go(&format!("{base}/events?kind=task.")).await;
    b.until(
        "filtered",
        "document.querySelectorAll('tr[data-seq]').length>0",
    )
    .await;
    let kinds = b
        .js("[].every.call(document.querySelectorAll('tr[data-seq] td:nth-child(5)'),function(t){return t.textContent.indexOf('task.')===0})")
        .await;
    assert_eq!(kinds, json!(true));
}
