//! Where logs live, and how long they stay.
//!
//! Layout: `<root>/<run>/<task>/<attempt>/{agent.log, worker-1.log, integration-1.log,
//! .outcome}`, where `<root>` is `<repo>/.orch/artifacts`. Every path component is
//! built from ids, never from task titles, and checked, so nothing escapes the root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use orch_core::TaskId;
use orch_core::cleanup::{ArtifactFacts, ArtifactRetention, plan_artifacts};
use orch_core::run::{AttemptId, RunId};

/// The marker file an attempt's outcome is written to.
pub const OUTCOME_FILE: &str = ".outcome";

/// An attempt's outcome as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Succeeded: removed first.
    Succeeded,
    /// Failed, canceled, interrupted or unknown: kept longer.
    Failed,
}

/// Artifact errors.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A run id that cannot be a directory name.
    #[error(
        "run id {0:?} cannot name an artifact directory: use letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    BadRunId(String),
    /// File-system trouble.
    #[error("{doing} {path}: {source}")]
    Io {
        /// What.
        doing: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + use<> {
    let path = path.to_path_buf();
    move |source| ArtifactError::Io {
        doing,
        path,
        source,
    }
}

/// The artifact tree of one repository.
#[derive(Debug, Clone)]
pub struct Artifacts {
    root: PathBuf,
}

/// How much to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest runs kept whole.
    pub keep_runs: u32,
    /// Failed attempts are kept for this many times as many runs.
    pub failed_factor: u32,
    /// The byte budget for everything; the oldest go first, successful before failed.
    pub max_bytes: u64,
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Attempt directories removed, with their bytes.
    pub removed: Vec<(PathBuf, u64)>,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Bytes left.
    pub kept_bytes: u64,
    /// The runs whose artifacts stay, newest first, with their bytes.
    pub kept_runs: Vec<(String, u64)>,
}

#[derive(Debug)]
struct AttemptDir {
    path: PathBuf,
    run_index: usize,
    kept: Kept,
    bytes: u64,
    live: bool,
}

fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The newest modification time of any file under `p`: a run's age. (A directory's own
/// time changes whenever an entry is added or removed, gc's removals included.)
fn newest_file(p: &Path) -> Option<SystemTime> {
    let rd = std::fs::read_dir(p).ok()?;
    rd.flatten()
        .filter_map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => newest_file(&e.path()),
            Ok(m) => m.modified().ok(),
            Err(_) => None,
        })
        .max()
}

fn subdirs(p: &Path) -> Result<Vec<PathBuf>, ArtifactError> {
    let mut v = Vec::new();
    match std::fs::read_dir(p) {
        Ok(rd) => {
            for e in rd.flatten() {
                // symlink_metadata: never follow a link out of the tree.
                if e.path().symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    v.push(e.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("reading", p)(e)),
    }
    v.sort();
    Ok(v)
}

impl Artifacts {
    /// The tree at `root` (usually `<repo>/.orch/artifacts`).
    pub fn new(root: impl Into<PathBuf>) -> Artifacts {
        Artifacts { root: root.into() }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The attempt's directory, created if missing.
    pub fn attempt_dir(&self, run: &RunId, attempt: AttemptId) -> Result<PathBuf, ArtifactError> {
        if !valid_run_id(&run.0) {
            return Err(ArtifactError::BadRunId(run.0.clone()));
        }
        let (task, number) = (attempt.task.0.to_string(), attempt.number.to_string());
        let parts = [run.0.as_str(), task.as_str(), number.as_str()];
        crate::files::real_dirs(&self.root, &parts)
            .map_err(io("creating", &self.root.join(parts.join("/"))))
    }

    /// Records an attempt's outcome for retention.
    pub fn set_outcome(
        &self,
        run: &RunId,
        attempt: AttemptId,
        kept: Kept,
    ) -> Result<(), ArtifactError> {
        let p = self.attempt_dir(run, attempt)?.join(OUTCOME_FILE);
        let text = match kept {
            Kept::Succeeded => "succeeded\n",
            Kept::Failed => "failed\n",
        };
        crate::files::write(&p, text.as_bytes()).map_err(io("writing", &p))
    }

    /// Applies `retention`, as the core's [`plan_artifacts`] decides. Runs in `live` are
    /// never touched. Runs are ordered newest first by their newest file.
    pub fn gc(
        &self,
        retention: Retention,
        live: &BTreeSet<RunId>,
    ) -> Result<GcReport, ArtifactError> {
        let runs = self.runs_newest_first(live)?;
        let attempts = attempt_dirs(&runs)?;
        let facts: Vec<ArtifactFacts> = attempts
            .iter()
            .map(|a| ArtifactFacts {
                run_index: a.run_index,
                failed: a.kept == Kept::Failed,
                bytes: a.bytes,
                live: a.live,
            })
            .collect();
        let (gone, kept_bytes) = plan_artifacts(
            &facts,
            ArtifactRetention {
                keep_runs: retention.keep_runs,
                failed_factor: retention.failed_factor,
                max_bytes: retention.max_bytes,
            },
        );
        let mut report = GcReport {
            kept_bytes,
            ..GcReport::default()
        };
        for i in &gone {
            remove(&attempts[*i], &mut report)?;
        }
        let root_len = self.root.components().count();
        for (_, run, _) in &runs {
            let bytes: u64 = attempts
                .iter()
                .enumerate()
                .filter(|(i, a)| a.path.starts_with(run) && !gone.contains(i))
                .map(|(_, a)| a.bytes)
                .sum();
            if bytes > 0 {
                let name = run.components().skip(root_len).collect::<PathBuf>();
                report.kept_runs.push((name.display().to_string(), bytes));
            }
        }
        // Remove directories the removals emptied.
        for (_, run, _) in &runs {
            for task in subdirs(run)? {
                let _ = std::fs::remove_dir(&task);
            }
            let _ = std::fs::remove_dir(run);
        }
        Ok(report)
    }

    /// Every run directory, newest first by its newest file, and whether it is live.
    fn runs_newest_first(
        &self,
        live: &BTreeSet<RunId>,
    ) -> Result<Vec<(SystemTime, PathBuf, bool)>, ArtifactError> {
        let mut runs: Vec<(SystemTime, PathBuf, bool)> = subdirs(&self.root)?
            .into_iter()
            .map(|p| {
                let t = newest_file(&p)
                    .or_else(|| p.metadata().and_then(|m| m.modified()).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (t, p, live.contains(&RunId(name)))
            })
            .collect();
        runs.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        Ok(runs)
    }
}

/// Every attempt directory of `runs`, with its size and retention class.
fn attempt_dirs(runs: &[(SystemTime, PathBuf, bool)]) -> Result<Vec<AttemptDir>, ArtifactError> {
    let mut attempts = Vec::new();
    for (i, (_, run, is_live)) in runs.iter().enumerate() {
        for task in subdirs(run)? {
            let is_task = task
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<i64>().ok())
                .map(TaskId)
                .is_some();
            if !is_task {
                continue;
            }
            for a in subdirs(&task)? {
                let kept = match std::fs::read_to_string(a.join(OUTCOME_FILE)) {
                    Ok(s) if s.trim() == "succeeded" => Kept::Succeeded,
                    _ => Kept::Failed,
                };
                attempts.push(AttemptDir {
                    bytes: dir_bytes(&a),
                    path: a,
                    run_index: i,
                    kept,
                    live: *is_live,
                });
            }
        }
    }
    Ok(attempts)
}

fn remove(a: &AttemptDir, report: &mut GcReport) -> Result<(), ArtifactError> {
    std::fs::remove_dir_all(&a.path).map_err(io("removing", &a.path))?;
    report.freed_bytes += a.bytes;
    report.removed.push((a.path.clone(), a.bytes));
    Ok(())
}
