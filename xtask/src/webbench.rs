//! `cargo xtask bench web`: the dashboard, with the release build.
//!
//! - The board page with 10,000 tasks: the time from request to the last byte over
//!   loopback, median and fastest of 30 (goal: under 50 ms), and right after a change
//!   (when the board is read from the store again).
//! - 100 Server-Sent Events clients on `/live` during a run of 16 agents at once (64
//!   tasks, each agent sleeps 0.5 s): the CPU `orch serve` used, as a share of one
//!   core over the run, and how long each event took from its journal time to each
//!   client (goal: under 5% and 250 ms).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};

use crate::e2e::{Sandbox, build_orch};

/// `orch serve`, stopped when dropped.
struct Serving {
    child: Child,
    addr: String,
    /// The token's cookie, as the server names it (after its port).
    cookie: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(s: &Sandbox) -> Result<Serving> {
    let mut child = s
        .cmd(&["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut url = String::new();
    BufReader::new(child.stdout.take().context("serve's stdout")?).read_line(&mut url)?;
    let (base, token) = url.trim().split_once("/?token=").context("serve's URL")?;
    let addr = base.trim_start_matches("http://").trim_end_matches("/orch");
    let port = addr.rsplit(':').next().context("serve's port")?;
    Ok(Serving {
        cookie: format!("orch_token_{port}={token}"),
        addr: addr.to_owned(),
        child,
    })
}

fn get(srv: &Serving, path: &str) -> Result<(Duration, usize)> {
    let started = Instant::now();
    let mut c = TcpStream::connect(&srv.addr)?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {}\r\n\r\n",
        srv.addr, srv.cookie
    )?;
    let mut out = Vec::new();
    c.read_to_end(&mut out)?;
    ensure!(out.starts_with(b"HTTP/1.1 200"), "GET {path} failed");
    Ok((started.elapsed(), out.len()))
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit(')').next().context("a stat line")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One SSE client: every event's delay from its journal time, sent on `tx`.
fn listen(srv: &Serving, tx: mpsc::Sender<i64>) -> Result<()> {
    let mut c = TcpStream::connect(&srv.addr)?;
    write!(
        c,
        "GET /orch/live HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\r\n",
        srv.addr, srv.cookie
    )?;
    c.set_read_timeout(Some(Duration::from_secs(120)))?;
    std::thread::spawn(move || {
        for line in BufReader::new(c).lines().map_while(Result::ok) {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                continue;
            };
            if let Some(at) = v["at"].as_i64()
                && tx.send(now_ms() - at).is_err()
            {
                break;
            }
        }
    });
    Ok(())
}

/// Runs the web benchmark and prints its figures.
pub fn run() -> Result<()> {
    let orch = build_orch(true)?;
    let s = Sandbox::new(&orch)?;
    let board: String = (1..=10_000)
        .map(|i| {
            let dep = if i % 10 == 0 {
                format!("after = [\"t{}\"]\n", i - 1)
            } else {
                String::new()
            };
            format!(
                "[[task]]\nkey = \"t{i}\"\ntitle = \"Task {i} <b>\"\nlabels = [\"l{}\"]\n{dep}\n",
                i % 7
            )
        })
        .collect();
    let file = s.dir().join("board.toml");
    std::fs::write(&file, board)?;
    s.ok(&["board", "import", &file.display().to_string()])?;
    let srv = serve(&s)?;
    get(&srv, "/orch/")?;
    let mut times: Vec<Duration> = (0..30)
        .map(|_| get(&srv, "/orch/").map(|t| t.0))
        .collect::<Result<_>>()?;
    times.sort();
    let bytes = get(&srv, "/orch/")?.1;
    // Right after a change, the board is read from the store again.
    let mut changed = Vec::new();
    for i in 0..9 {
        s.ok(&["task", "edit", "1", "--priority", &i.to_string()])?;
        changed.push(get(&srv, "/orch/")?.0);
    }
    changed.sort();
    println!(
        "board with 10,000 tasks ({} KiB): median {:.1} ms, fastest {:.1} ms; right after a change median {:.1} ms (goal: under 50 ms)",
        bytes / 1024,
        times[15].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        changed[4].as_secs_f64() * 1000.0
    );
    drop(srv);
    sse(&orch)
}

fn sse(orch: &std::path::Path) -> Result<()> {
    let s = Sandbox::new(orch)?;
    for i in 1..=64 {
        s.add(&format!("task {i}"), &[])?;
    }
    let srv = serve(&s)?;
    let (tx, rx) = mpsc::channel();
    for _ in 0..100 {
        listen(&srv, tx.clone())?;
    }
    drop(tx);
    std::thread::sleep(Duration::from_millis(500));
    let (before, started) = (cpu_ticks(srv.child.id())?, Instant::now());
    let agent = "sleep 0.5; echo x > task-$ORCH_TASK_ID.txt";
    s.ok(&["run", "--agent-cmd", agent, "--concurrency", "16"])?;
    std::thread::sleep(Duration::from_millis(500));
    let wall = started.elapsed().as_secs_f64();
    let ticks = (cpu_ticks(srv.child.id())? - before) as f64;
    let hz = 100.0; // USER_HZ on Linux
    let mut delays: Vec<i64> = rx.try_iter().collect();
    ensure!(!delays.is_empty(), "no event reached a client");
    delays.sort();
    let p = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    println!(
        "100 SSE clients during a 16-agent run of {wall:.1} s: orch serve used {:.1}% of one core; {} deliveries, delay from the journal median {} ms, p99 {} ms, max {} ms (goal: under 5% and 250 ms)",
        ticks / hz / wall * 100.0,
        delays.len(),
        p(0.5),
        p(0.99),
        delays[delays.len() - 1]
    );
    Ok(())
}
