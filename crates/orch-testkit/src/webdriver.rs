//! A WebDriver client for the dashboard's browser tests, spoken in plain HTTP and
//! JSON to Debian's chromedriver, with headless Chromium: no client crate, no
//! downloaded browser. The driver and every browser process of its profile are
//! killed when it drops.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// chromedriver in its own process group, stopped (group and all) when dropped, with
/// every browser process of this test's profile (Chromium starts its own groups).
pub struct Driver {
    child: Child,
    addr: SocketAddr,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.wait();
        let mark = self.profile.path().to_string_lossy().into_owned();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmd).contains(&mark) {
                let pid = e.file_name().to_string_lossy().into_owned();
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver, started; `None` (and a note) where Chromium is not installed,
/// which fails under CI.
pub fn driver() -> Option<Driver> {
    let found = |p: &str| std::path::Path::new(p).exists();
    if !found("/usr/bin/chromedriver") || !found("/usr/bin/chromium") {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but chromium and chromium-driver are missing: .ci/run must install them"
        );
        eprintln!("chromium or chromedriver is not installed: the browser test did not run");
        return None;
    }
    let port = free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    Some(Driver {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        profile: tempfile::tempdir().unwrap(),
    })
}

/// One WebDriver call: `method path` with a JSON body; its `value`.
async fn wd(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read the head, then exactly Content-Length bytes: chromedriver may keep the
    // connection open.
    let mut r = tokio::io::BufReader::new(s);
    let mut length = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut json = vec![0; length];
    r.read_exact(&mut json).await.unwrap();
    let v: Value = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
    v["value"].clone()
}

/// One browser session of a [`Driver`].
pub struct Browser {
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Opens a headless Chromium session.
    pub async fn open(d: &Driver) -> Browser {
        let profile = d.profile.path();
        // chromedriver takes a moment to listen.
        let started = Instant::now();
        while TcpStream::connect(d.addr).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let v = wd(d.addr, "POST", "/session", Some(caps)).await;
        let session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_owned();
        Browser {
            addr: d.addr,
            session,
        }
    }

    /// Navigates to `url`.
    pub async fn go(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        wd(self.addr, "POST", &path, Some(json!({ "url": url }))).await;
    }

    /// Runs `script` in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        let body = json!({"script": format!("return ({script});"), "args": []});
        wd(self.addr, "POST", &path, Some(body)).await
    }

    /// Waits up to 10 s for `script` to return true.
    /// Waits until `script` is true (panicking, naming `what`, after a while); how long it took.
    pub async fn until(&self, what: &str, script: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.js(script).await == json!(true) {
                return started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(10) {
                let seen = self.js("document.documentElement.outerHTML").await;
                panic!("never: {what}; the page: {seen}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Saves a screenshot as `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        use std::io::Write as _;
        let path = format!("/session/{}/screenshot", self.session);
        let b64 = wd(self.addr, "GET", &path, None).await;
        let png = decode_base64(b64.as_str().unwrap());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(dir.join(name))
            .unwrap()
            .write_all(&png)
            .unwrap();
    }

    /// Ends the session.
    pub async fn close(self) {
        wd(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (val(*c) as u32) << (18 - 6 * i));
        out.extend(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
