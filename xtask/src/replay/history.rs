//! The histories the replay lands, unpacked into a temporary directory: a clone of
//! the project at its base and one commit per task, each commit's patch, and the
//! scripted agents that make a commit's change.
//!
//! - more-itertools (Python): 24 first-parent commits, vendored as a bundle in
//!   `xtask/replay/` (see its README); its unittest suite is the gate.
//! - semver (Rust): the 16 releases 1.0.11 to 1.0.26 of the `semver` crate, each a
//!   commit on 1.0.10, downloaded from crates.io as published (so the bench needs the
//!   registry); `cargo test` is the gate. The version stamps (the package's version,
//!   the docs' `html_root_url`) are kept at the base's, so each task is its release's
//!   change, and not also a bump that every other task conflicts with. The gate logs whether each run found `target/`
//!   in its worktree (warm) or built cold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::e2e::sh;
use crate::tidy::root;

/// The vendored more-itertools history, relative to the workspace.
const BUNDLE: &str = "xtask/replay/more-itertools.bundle";
/// Its branch: the base, then one commit per task.
const BRANCH: &str = "replay";
/// The semver releases replayed: the base, then one task per release.
const SEMVER: std::ops::RangeInclusive<u32> = 10..=26;

/// The project whose history is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Project {
    /// more-itertools, Python: `python3 -m unittest`.
    MoreItertools,
    /// semver, Rust: `cargo test`, with `target/` kept by the worktree pool.
    Semver,
}

impl Project {
    pub(super) fn name(self) -> &'static str {
        match self {
            Project::MoreItertools => "more-itertools",
            Project::Semver => "semver",
        }
    }

    /// What orch's config adds for this project.
    pub(super) fn config(self) -> &'static str {
        match self {
            Project::MoreItertools => "",
            Project::Semver => "[worktrees]\nkeep = [\"target/\"]\n",
        }
    }
}

/// How the scripted agent makes its change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `git apply --3way` of the commit's patch; exit 1 when it does not apply.
    Patch,
    /// Each changed file written whole as the commit left it; the patch when told to
    /// keep other work.
    WholeFile,
}

/// The history unpacked: a clone of the project, its commits (the base first), the
/// patches and the agents' scripts.
pub(super) struct History {
    pub(super) project: Project,
    pub(super) dir: tempfile::TempDir,
    pub(super) commits: Vec<String>,
    pub(super) titles: Vec<String>,
}

impl History {
    pub(super) fn load(project: Project) -> Result<History> {
        let dir = tempfile::Builder::new().prefix("orch-replay-").tempdir()?;
        match project {
            Project::MoreItertools => {
                let bundle = root().join(BUNDLE);
                ensure!(bundle.is_file(), "no history at {}", bundle.display());
                sh(
                    dir.path(),
                    &format!("git clone -q -b {BRANCH} '{}' src", bundle.display()),
                )?;
            }
            Project::Semver => semver_releases(dir.path())?,
        }
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
            project,
            dir,
            commits,
            titles,
        };
        h.write_scripts()?;
        Ok(h)
    }

    pub(super) fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    pub(super) fn patch(&self, n: usize) -> PathBuf {
        self.dir.path().join("patches").join(n.to_string())
    }

    /// The project's suite: both gates, and the by-hand run's check.
    pub(super) fn gate(&self) -> String {
        match self.project {
            Project::MoreItertools => {
                "PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -q".to_owned()
            }
            Project::Semver => format!("sh '{}'", self.dir.path().join("gate.sh").display()),
        }
    }

    /// Where the Rust gate logs its runs: `START END cold|warm WORKTREE` a line.
    pub(super) fn gate_log(&self) -> PathBuf {
        self.dir.path().join("gates.log")
    }

    pub(super) fn agent(&self, mode: Mode) -> String {
        let name = match mode {
            Mode::Patch => "patch.sh",
            Mode::WholeFile => "whole-file.sh",
        };
        format!("sh '{}'", self.dir.path().join(name).display())
    }

    /// The agents (task `n` makes commit `n`'s change: tasks are added in order), and
    /// the Rust gate.
    fn write_scripts(&self) -> Result<()> {
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
        // orch's sandbox has its own HOME: the toolchain is found where the bench's is.
        let home = std::env::var("HOME").unwrap_or_default();
        let var = |name: &str, dflt: &str| {
            std::env::var(name).unwrap_or_else(|_| format!("{home}/{dflt}"))
        };
        let gate = format!(
            "export RUSTUP_HOME='{}' CARGO_HOME='{}'\nif [ -d target/debug ]; then w=warm; else w=cold; fi\nstart=$(date +%s.%N)\ncargo test -q --offline\nrc=$?\necho \"$start $(date +%s.%N) $w $PWD\" >> '{}'\nexit $rc\n",
            var("RUSTUP_HOME", ".rustup"),
            var("CARGO_HOME", ".cargo"),
            self.gate_log().display()
        );
        std::fs::write(self.dir.path().join("patch.sh"), patch)?;
        std::fs::write(self.dir.path().join("whole-file.sh"), whole)?;
        std::fs::write(self.dir.path().join("gate.sh"), gate)?;
        Ok(())
    }

    /// The lines commit `n` added that the project still has at its last commit,
    /// by file: what must stay once task `n` landed.
    pub(super) fn kept_lines(&self, n: usize) -> Result<BTreeMap<String, Vec<String>>> {
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

/// Builds `dir/src`: one commit per semver release in [`SEMVER`], each the package
/// as published on crates.io, its version line kept at the first's.
fn semver_releases(dir: &Path) -> Result<()> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    sh(&src, "git init -q -b replay")?;
    let first = format!("1.0.{}", SEMVER.start());
    for n in SEMVER {
        let v = format!("1.0.{n}");
        let url = format!("https://static.crates.io/crates/semver/semver-{v}.crate");
        sh(
            dir,
            &format!("curl -sSfL -o semver.crate '{url}' && tar xzf semver.crate"),
        )
        .with_context(|| format!("downloading semver {v} from crates.io"))?;
        let unpacked = dir.join(format!("semver-{v}"));
        sh(
            &src,
            &format!(
                "git rm -rq --ignore-unmatch . && cp -R '{0}'/. . && rm -f .cargo_vcs_info.json Cargo.toml.orig && rm -rf '{0}'",
                unpacked.display()
            ),
        )?;
        for (file, stamp) in [
            ("Cargo.toml", "version = \""),
            ("src/lib.rs", "html_root_url = \"https://docs.rs/semver/"),
        ] {
            let path = src.join(file);
            let text = std::fs::read_to_string(&path)?;
            let pinned = text.replacen(&format!("{stamp}{v}\""), &format!("{stamp}{first}\""), 1);
            std::fs::write(&path, pinned)?;
        }
        std::fs::write(src.join(".gitignore"), "/target\n/Cargo.lock\n")?;
        let title = if n == *SEMVER.start() {
            format!("semver {v}, the base")
        } else {
            format!("semver {v}: the changes since 1.0.{}", n - 1)
        };
        sh(
            &src,
            &format!(
                "git add -A && git -c user.name=replay -c user.email=replay@replay.invalid commit -qm '{title}'"
            ),
        )?;
    }
    Ok(())
}
