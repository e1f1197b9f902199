//! [`Sandbox`]: the `orch` binary driven as a user would, against a throwaway
//! repository, with a home, config and data directory of its own and a hostile
//! environment (`GIT_*` variables pointing elsewhere) that must change nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::git::git;

/// What a command printed and how it exited, as text.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (-1 for a signal).
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Run {
    /// Its stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8(o.stdout).expect("orch prints UTF-8"),
            stderr: String::from_utf8(o.stderr).expect("orch prints UTF-8"),
        }
    }
}

/// A throwaway directory holding `home/`, `data/` and, once made, `repo/`.
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
    orch: PathBuf,
    path: String,
    env: Vec<(String, String)>,
}

impl Sandbox {
    /// A sandbox with a home and no repository yet; `orch` is the binary under test
    /// (`env!("CARGO_BIN_EXE_orch")`).
    pub fn empty(orch: impl AsRef<Path>) -> Sandbox {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("home")).expect("making home/");
        Sandbox {
            dir,
            orch: orch.as_ref().to_path_buf(),
            path: std::env::var("PATH").unwrap_or_default(),
            env: Vec::new(),
        }
    }

    /// A repository on `main` with one commit (`README.md`), orch not set up.
    pub fn repo_only(orch: impl AsRef<Path>) -> Sandbox {
        let s = Sandbox::empty(orch);
        std::fs::create_dir(s.repo()).expect("making repo/");
        s.git(&["init", "-q", "-b", "main"]);
        std::fs::write(s.repo().join("README.md"), "hello\n").expect("writing README.md");
        s.git(&["add", "."]);
        s.git(&["commit", "-q", "-m", "init"]);
        s
    }

    /// A repository with one commit and orch set up in it (`orch init`).
    pub fn new(orch: impl AsRef<Path>) -> Sandbox {
        let s = Sandbox::repo_only(orch);
        s.ok(&["init"]);
        s
    }

    /// Sets `key=value` in orch's environment.
    pub fn with_env(mut self, key: &str, value: impl Into<String>) -> Sandbox {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Runs orch with `path` as its `PATH`.
    pub fn with_path(mut self, path: impl Into<String>) -> Sandbox {
        self.path = path.into();
        self
    }

    /// The `orch` binary it runs.
    pub fn binary(&self) -> &Path {
        &self.orch
    }

    /// The sandbox's own directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The repository.
    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// orch's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `orch ARGS`, in the repository (or the sandbox before there is one), with an
    /// environment of the sandbox's alone.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.orch);
        c.args(args)
            .current_dir(if self.repo().exists() {
                self.repo()
            } else {
                self.dir().to_path_buf()
            })
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("XDG_DATA_HOME", self.dir().join("data"))
            .env("USER", "tester")
            // None of this may change what orch reads or writes, or where.
            .env("GIT_DIR", "/nonexistent")
            .env("GIT_INDEX_FILE", "/nonexistent/index")
            .env("GIT_WORK_TREE", "/nonexistent")
            .env("GIT_AUTHOR_NAME", "Mallory")
            .env("GIT_COMMITTER_EMAIL", "mallory@evil.example");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Another program (a board's own CLI) in the repository, as a person runs it
    /// there: the sandbox's home and `PATH`, nothing on stdin, output captured.
    pub fn tool(&self, bin: &Path, args: &[&str]) -> Output {
        let out = Command::new(bin)
            .args(args)
            .current_dir(self.repo())
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .env("CI", "1")
            .stdin(Stdio::null())
            .output()
            .expect("starting a board CLI");
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}{}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `orch ARGS` with nothing on stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("orch runs")
    }

    /// Runs `orch ARGS`, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "orch {args:?} ({:?}): {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Runs `orch ARGS`; its outcome as text.
    pub fn run_text(&self, args: &[&str]) -> Run {
        self.run(args).into()
    }

    /// Runs `orch ARGS`, which must exit 0; its outcome as text.
    pub fn ok_text(&self, args: &[&str]) -> Run {
        let r = self.run_text(args);
        assert_eq!(r.code, 0, "orch {args:?} failed: {}{}", r.stdout, r.stderr);
        r
    }

    /// `orch --json ARGS`: one document, or JSON lines (as `orch events` prints) as a
    /// list.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a).stdout;
        serde_json::from_slice(&out).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&out);
            Value::Array(
                text.lines()
                    .map(|l| {
                        serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
                    })
                    .collect(),
            )
        })
    }

    /// `orch serve` on `port` (0: any), in a process group of its own; with the URL
    /// it printed (the dashboard's, with its token).
    pub fn serve(&self, port: u16) -> (crate::Group, String) {
        use std::io::BufRead as _;
        use std::os::unix::process::CommandExt as _;
        let mut serve = crate::Group(
            self.cmd(&["serve", "--port", &port.to_string()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .process_group(0)
                .spawn()
                .expect("starting orch serve"),
        );
        let mut url = String::new();
        std::io::BufReader::new(serve.0.stdout.take().expect("piped"))
            .read_line(&mut url)
            .expect("reading the URL orch serve prints");
        (serve, url.trim().to_owned())
    }

    /// A dashboard page of a server [`Sandbox::serve`] started: `url` is the URL it
    /// printed (its token in it), `path` the page under `/orch`; the page's HTML.
    pub fn page(url: &str, path: &str) -> String {
        use std::io::{Read as _, Write as _};
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (addr, query) = rest
            .split_once("/orch/?token=")
            .expect("a dashboard URL with its token");
        let port = addr.rsplit(':').next().expect("a port");
        let mut s = std::net::TcpStream::connect(addr).expect("connecting to the dashboard");
        write!(
            s,
            "GET /orch{path} HTTP/1.1\r\nHost: {addr}\r\nCookie: orch_token_{port}={query}\r\nConnection: close\r\n\r\n"
        )
        .expect("sending a request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("reading the page");
        out.split_once("\r\n\r\n")
            .map_or(out.clone(), |(_, b)| b.to_owned())
    }

    /// `orch task add TITLE EXTRA...`.
    pub fn add(&self, title: &str, extra: &[&str]) {
        let mut a = vec!["task", "add", title];
        a.extend_from_slice(extra);
        self.ok(&a);
    }

    /// Every task's status, by id.
    pub fn statuses(&self) -> Vec<String> {
        self.json(&["task", "list"])
            .as_array()
            .expect("a list of tasks")
            .iter()
            .map(|t| t["status"].as_str().expect("a status").to_owned())
            .collect()
    }

    /// Task `id`'s status, if it exists.
    pub fn status(&self, id: i64) -> Option<String> {
        self.json(&["task", "list"])
            .as_array()
            .expect("a list of tasks")
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| t["status"].as_str().expect("a status").to_owned())
    }

    /// `git ARGS` in the repository; its stdout, trimmed.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.repo(), args)
    }
}
