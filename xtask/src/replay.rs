//! `cargo xtask bench replay [--whole-file]`: a real project's history replayed as a
//! backlog. The history is 24 consecutive first-parent commits of more-itertools (MIT),
//! vendored as a bundle in `xtask/replay/` (see its README): one task per commit, a
//! scripted agent that applies that commit's patch with `git apply --3way` and gives up
//! (exit 1) when it does not apply, and the project's own test suite as both gates.
//!
//! It times the same work by hand (apply, test, commit, one after another) and orch at
//! concurrency 1, (4, depth 1), (4, depth 4), and (4, depth 4) with the integration
//! gate standing in for the worker gate, and prints for each: the wall time and
//! its ratio to by hand, tasks done and failed, attempts by failure kind, gate runs,
//! whether the final tree is the project's, whether every first-parent commit of the
//! line passes the suite, and any landed line a later commit of the line took out.
//!
//! `--whole-file` has the agent write each file its commit changed whole, as it is
//! after the commit (what a model that rewrites files does from its own view): the
//! revert guard's case. Told to keep other tasks' work, its retry applies the patch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::e2e::{Sandbox, build_orch, sh};
use crate::tidy::root;

/// The vendored history, relative to the workspace.
const BUNDLE: &str = "xtask/replay/more-itertools.bundle";
/// Its branch: the base, then one commit per task.
const BRANCH: &str = "replay";
/// The project's own suite, both gates.
const GATE: &str = "PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -q";
/// The orch runs: name, concurrency, integration depth, whether the integration gate
/// stands in for the worker gate.
const SETTINGS: [(&str, u32, u32, bool); 4] = [
    ("orch, concurrency 1", 1, 1, false),
    ("orch, concurrency 4", 4, 1, false),
    ("orch, concurrency 4, depth 4", 4, 4, false),
    (
        "orch, concurrency 4, depth 4, integration stands in",
        4,
        4,
        true,
    ),
];

/// How the scripted agent makes its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `git apply --3way` of the commit's patch; exit 1 when it does not apply.
    Patch,
    /// Each changed file written whole as the commit left it; the patch when told to
    /// keep other work.
    WholeFile,
}

/// The history unpacked: a clone of the bundle, its commits (the base first), the
/// patches and the agents' scripts.
struct History {
    dir: tempfile::TempDir,
    commits: Vec<String>,
    titles: Vec<String>,
}

impl History {
    fn load() -> Result<History> {
        let dir = tempfile::Builder::new().prefix("orch-replay-").tempdir()?;
        let bundle = root().join(BUNDLE);
        ensure!(bundle.is_file(), "no history at {}", bundle.display());
        sh(
            dir.path(),
            &format!("git clone -q -b {BRANCH} '{}' src", bundle.display()),
        )?;
        let src = dir.path().join("src");
        let commits: Vec<String> = sh(&src, "git rev-list --reverse HEAD")?
            .lines()
            .map(str::to_owned)
            .collect();
        let patches = dir.path().join("patches");
        std::fs::create_dir_all(&patches)?;
        let mut titles = Vec::new();
        for (n, c) in commits.iter().enumerate().skip(1) {
            titles.push(sh(&src, &format!("git log -1 --format=%s {c}"))?);
            let p = patches.join(n.to_string());
            sh(
                &src,
                &format!(
                    "git diff --full-index --binary {c}^ {c} > '{0}.patch' && git diff --name-only {c}^ {c} > '{0}.files' && echo {c} > '{0}.commit'",
                    p.display()
                ),
            )?;
        }
        let h = History {
            dir,
            commits,
            titles,
        };
        h.write_agents()?;
        Ok(h)
    }

    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn patch(&self, n: usize) -> PathBuf {
        self.dir.path().join("patches").join(n.to_string())
    }

    fn agent(&self, mode: Mode) -> String {
        let name = match mode {
            Mode::Patch => "patch.sh",
            Mode::WholeFile => "whole-file.sh",
        };
        format!("sh '{}'", self.dir.path().join(name).display())
    }

    /// The agents: task `n` makes commit `n`'s change (tasks are added in order).
    fn write_agents(&self) -> Result<()> {
        let patches = self.dir.path().join("patches");
        let patch = format!(
            "P='{}'/$ORCH_TASK_ID\ngit apply --3way --whitespace=nowarn \"$P.patch\" >/dev/null 2>&1 || {{\n  git reset -q --hard; git clean -fdq\n  echo 'the change does not apply to this tree' >&2; exit 1\n}}\n",
            patches.display()
        );
        let whole = format!(
            "P='{}'/$ORCH_TASK_ID\nif grep -q 'Keep that work' \"$ORCH_PROMPT_FILE\"; then exec {}; fi\nC=$(cat \"$P.commit\")\nwhile read -r f; do\n  if git cat-file -e \"$C:$f\" 2>/dev/null; then\n    mkdir -p \"$(dirname \"$f\")\"; git show \"$C:$f\" > \"$f\"\n  else rm -f \"$f\"; fi\ndone < \"$P.files\"\n",
            patches.display(),
            self.agent(Mode::Patch)
        );
        std::fs::write(self.dir.path().join("patch.sh"), patch)?;
        std::fs::write(self.dir.path().join("whole-file.sh"), whole)?;
        Ok(())
    }

    /// The lines commit `n` added that the project still has at its last commit,
    /// by file: what must stay once task `n` landed.
    fn kept_lines(&self, n: usize) -> Result<BTreeMap<String, Vec<String>>> {
        let src = self.src();
        let patch = std::fs::read_to_string(self.patch(n).with_extension("patch"))?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut file = None;
        for line in patch.lines() {
            if let Some(p) = line.strip_prefix("+++ ") {
                file = p.strip_prefix("b/").map(str::to_owned);
            } else if let (Some(l), Some(f)) = (line.strip_prefix('+'), &file)
                && l.trim().len() >= 3
            {
                out.entry(f.clone()).or_default().push(l.to_owned());
            }
        }
        for (f, lines) in &mut out {
            let last = sh(&src, &format!("git show HEAD:'{f}'")).unwrap_or_default();
            let have: BTreeSet<&str> = last.lines().collect();
            lines.retain(|l| have.contains(l.as_str()));
        }
        Ok(out)
    }
}

/// One measured way of landing the backlog.
struct Outcome {
    name: String,
    secs: f64,
    done: usize,
    failed: usize,
    /// Attempts, and the failed ones by kind.
    attempts: usize,
    failures: BTreeMap<String, usize>,
    /// Gate commands run, and gates a pass on the same tree stood for.
    gate_runs: usize,
    reused: usize,
    same_tree: bool,
    /// First-parent commits of the line that pass the suite, of how many.
    green: (usize, usize),
    /// Landed lines a later commit of the line took out.
    undone: Vec<String>,
    /// Undos that landed anyway (journaled `attempt.reverts`).
    reverts_landed: usize,
    /// Each task not done, with why its attempts failed.
    lost: Vec<String>,
}

/// The same work by hand: apply, test, commit, one commit after another.
fn by_hand(h: &History) -> Result<f64> {
    let dir = h.dir.path().join("by-hand");
    sh(
        h.dir.path(),
        &format!(
            "git clone -q src by-hand && cd by-hand && git checkout -q --detach {}",
            h.commits[0]
        ),
    )?;
    let started = Instant::now();
    for n in 1..h.commits.len() {
        sh(
            &dir,
            &format!(
                "git apply --index '{}.patch' && {GATE} && git -c user.name=u -c user.email=u@u.invalid commit -q -m 'task {n}'",
                h.patch(n).display()
            ),
        )
        .with_context(|| format!("commit {n} by hand"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The backlog through orch at `concurrency` and `depth`.
fn through_orch(
    orch: &Path,
    h: &History,
    mode: Mode,
    (name, concurrency, depth, stands_in): (&str, u32, u32, bool),
) -> Result<Outcome> {
    let base = &h.commits[0];
    let s = Sandbox::with_repo(
        orch,
        &format!(
            "git clone -q '{}' . && git checkout -q -B main {base} && git remote remove origin",
            h.src().display()
        ),
    )?;
    let gate = serde_json::to_string(GATE)?;
    let empty = match mode {
        Mode::Patch => "",
        // A rewritten file can bring in an earlier task's change before that task runs.
        Mode::WholeFile => "[policy]\nempty_diff = \"done-if-valid\"\n",
    };
    s.config(&format!(
        "[run]\nconcurrency = {concurrency}\nintegration_depth = {depth}\n[validate]\nworker = [{gate}]\nintegration = [{gate}]\nintegration_stands_in = {stands_in}\n{empty}"
    ))?;
    for (title, c) in h.titles.iter().zip(&h.commits[1..]) {
        s.add(
            title,
            &["--body", &format!("Make more-itertools commit {c}.")],
        )?;
    }
    let started = Instant::now();
    let o = s.orch(&["run", "--agent-cmd", &h.agent(mode)])?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        matches!(o.status.code(), Some(0 | 3)),
        "{name}: orch run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let statuses = s.statuses()?;
    let count = |want: &[&str]| {
        statuses
            .iter()
            .filter(|(_, st)| want.contains(&st.as_str()))
            .count()
    };
    let run = s.last_run()?;
    let show: Value = serde_json::from_str(&s.ok(&["--json", "run", "show", &run])?)?;
    let events = s.ok(&["--json", "events", "--run", &run])?;
    let repo = s.repo();
    let tree = |dir: &Path, rev: &str| sh(dir, &format!("git rev-parse '{rev}^{{tree}}'"));
    let (green, undone) = check_line(&repo, h)?;
    if std::env::var_os("ORCH_REPLAY_KEEP").is_some() {
        println!("{name}: kept {}", s.dir().display());
        std::mem::forget(s);
    }
    Ok(Outcome {
        name: name.to_owned(),
        secs,
        done: count(&["done"]),
        failed: count(&["failed", "blocked"]),
        attempts: show["attempts"].as_array().map_or(0, Vec::len),
        failures: failures(&show),
        gate_runs: show["validations"].as_array().map_or(0, Vec::len),
        reused: events.matches("attempt.gate_reused").count(),
        same_tree: tree(&repo, "orch/integration")? == tree(&h.src(), "HEAD")?,
        green,
        undone,
        reverts_landed: events.matches("\"attempt.reverts\"").count(),
        lost: lost(&statuses, &events, &show)?,
    })
}

/// Each task not done, by title, with the reasons of its attempts' failures.
fn lost(statuses: &[(String, String)], events: &str, show: &Value) -> Result<Vec<String>> {
    let events: Vec<Value> = events
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (n, (title, status)) in statuses.iter().enumerate() {
        if status == "done" {
            continue;
        }
        let id = n as i64 + 1;
        let why: Vec<&str> = events
            .iter()
            .filter(|e| e["task_id"] == id && e["kind"] == "attempt.moved")
            .filter_map(|e| e["reason"].as_str())
            .filter(|r| r.contains("-> failed"))
            .collect();
        let last = show["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .rfind(|a| {
                a["attempt"]
                    .as_str()
                    .is_some_and(|x| x.starts_with(&format!("task-{id}-")))
            })
            .map(|a| a["failure"].to_string())
            .unwrap_or_default();
        out.push(format!(
            "#{id} {title} ({status}): {}; last: {last}",
            why.join(" | ")
        ));
    }
    Ok(out)
}

/// Failed attempts by kind, from `run show --json`.
fn failures(show: &Value) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in show["attempts"].as_array().into_iter().flatten() {
        let kind = match &a["failure"] {
            Value::Null => continue,
            Value::String(k) => k.clone(),
            Value::Object(o) => o
                .get("kind")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| o.keys().next().cloned())
                .unwrap_or_default(),
            other => other.to_string(),
        };
        *out.entry(kind).or_insert(0) += 1;
    }
    out
}

/// Runs the suite on every first-parent commit of the line, and checks that no line a
/// task landed (and the project kept) is gone from a later commit of the line.
fn check_line(repo: &Path, h: &History) -> Result<((usize, usize), Vec<String>)> {
    let log = sh(
        repo,
        &format!(
            "git log --reverse --first-parent --format='%H %(trailers:key=Orch-Task,valueonly,separator=%x2C)' {}..orch/integration",
            h.commits[0]
        ),
    )?;
    let line: Vec<(String, Vec<String>)> = log
        .lines()
        .filter_map(|l| l.split_once(' ').or(Some((l, ""))))
        .map(|(c, keys)| {
            let keys = keys.split(',').map(str::trim).filter(|k| !k.is_empty());
            (c.to_owned(), keys.map(str::to_owned).collect())
        })
        .collect();
    let mut passed = 0;
    for (c, _) in &line {
        let wt = h.dir.path().join("check");
        sh(
            repo,
            &format!("git worktree add -q --detach '{}' {c}", wt.display()),
        )?;
        passed += usize::from(sh(&wt, GATE).is_ok());
        sh(
            repo,
            &format!("git worktree remove --force '{}'", wt.display()),
        )?;
    }
    let mut undone = Vec::new();
    let mut files: BTreeMap<(String, String), String> = BTreeMap::new();
    for n in 1..h.commits.len() {
        let key = format!("task-{n}");
        let Some(landed) = line.iter().position(|(_, keys)| keys.contains(&key)) else {
            continue;
        };
        for (file, kept) in h.kept_lines(n)? {
            for (c, _) in &line[landed..] {
                let text = files.entry((c.clone(), file.clone())).or_insert_with(|| {
                    sh(repo, &format!("git show {c}:'{file}'")).unwrap_or_default()
                });
                let have: BTreeSet<&str> = text.lines().collect();
                if let Some(gone) = kept.iter().find(|l| !have.contains(l.as_str())) {
                    undone.push(format!(
                        "{key}'s {gone:?} in {file} is gone at {}",
                        &c[..10]
                    ));
                    break;
                }
            }
        }
    }
    Ok(((passed, line.len()), undone))
}

fn print(hand: f64, rows: &[Outcome]) {
    println!(
        "| run | wall | vs by hand | done | failed | attempts (failed by kind) | gate runs (reused) | final tree is the project's | first-parent commits green | landed lines undone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!("| by hand | {hand:.1} s | 1.00x | 24 | 0 | 24 | 24 | yes | 24/24 | 0 |");
    for o in rows {
        let kinds: Vec<String> = o.failures.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let flagged = match o.reverts_landed {
            0 => String::new(),
            n => format!(" ({n} flagged)"),
        };
        println!(
            "| {} | {:.1} s | {:.2}x | {} | {} | {} ({}) | {} ({}) | {} | {}/{} | {}{flagged} |",
            o.name,
            o.secs,
            o.secs / hand,
            o.done,
            o.failed,
            o.attempts,
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            },
            o.gate_runs,
            o.reused,
            if o.same_tree { "yes" } else { "no" },
            o.green.0,
            o.green.1,
            o.undone.len(),
        );
    }
    for o in rows {
        for u in o.undone.iter().chain(&o.lost) {
            println!("{}: {u}", o.name);
        }
    }
}

/// Runs the replay and prints its table.
pub fn run(args: &[String]) -> Result<()> {
    let mode = match args.first().map(String::as_str) {
        None => Mode::Patch,
        Some("--whole-file") => Mode::WholeFile,
        Some(other) => anyhow::bail!("unknown option {other:?}; allowed: --whole-file"),
    };
    let orch = build_orch(true)?;
    let h = History::load()?;
    println!(
        "replaying {} commits of more-itertools ({mode:?} mode); gate: {GATE}",
        h.titles.len()
    );
    let hand = by_hand(&h)?;
    println!("by hand: {hand:.1} s");
    let mut rows = Vec::new();
    for setting in SETTINGS {
        let o = through_orch(&orch, &h, mode, setting)?;
        println!("{}: {:.1} s, {} done", o.name, o.secs, o.done);
        rows.push(o);
    }
    print(hand, &rows);
    Ok(())
}
