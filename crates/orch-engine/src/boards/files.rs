//! The source's files: read whole, fingerprinted by size and time, and one task's
//! status written back by compare-and-swap (read, check the status is still the one
//! planned from, write a temporary file beside it, check the file did not change
//! meanwhile, rename over it; up to three tries).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use orch_core::config::BoardSource;
use orch_core::source::{SourceTask, Write, backlog, taskmaster};

use super::{Read, Source, SyncError};

/// Sizes and modification times of a source's files, in name order.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// Reads the whole source.
pub(super) fn read(s: &Source) -> Result<Read, SyncError> {
    let bad = |error| SyncError::Source {
        source_kind: s.kind,
        error,
    };
    match s.kind {
        BoardSource::BacklogMd => {
            let dir = s.root.join(&s.place);
            let tasks_dir = dir.join("tasks");
            if !tasks_dir.is_dir() {
                return Err(SyncError::Missing {
                    source_kind: s.kind,
                    path: format!("{}/tasks", s.place),
                    hint: "run `backlog init` in the repository, or set board.path to the folder that holds Backlog.md's tasks/",
                });
            }
            let config = dir.join("config.yml");
            let config_text = std::fs::read_to_string(&config).ok();
            let config_name = format!("{}/config.yml", s.place);
            let statuses =
                backlog::statuses(config_text.as_deref().map(|t| (config_name.as_str(), t)))
                    .map_err(bad)?;
            let mut tasks: Vec<SourceTask> = Vec::new();
            for path in backlog_files(&dir)? {
                let text =
                    std::fs::read_to_string(&path).map_err(|error| io("reading", &path, error))?;
                let name = relative(&s.root, &path);
                tasks.push(backlog::parse(&name, &text).map_err(bad)?);
            }
            Ok(Read { statuses, tasks })
        }
        BoardSource::Taskmaster => {
            let path = s.root.join(&s.place);
            if !path.is_file() {
                return Err(SyncError::Missing {
                    source_kind: s.kind,
                    path: s.place.clone(),
                    hint: "run `task-master init` or `task-master parse-prd` in the repository, or set board.path to Taskmaster's tasks.json",
                });
            }
            let text =
                std::fs::read_to_string(&path).map_err(|error| io("reading", &path, error))?;
            let tasks = taskmaster::parse(&s.place, &text, &s.tag).map_err(bad)?;
            Ok(Read {
                statuses: taskmaster::statuses(),
                tasks,
            })
        }
        BoardSource::Orch => Ok(Read {
            statuses: taskmaster::statuses(),
            tasks: Vec::new(),
        }),
    }
}

/// Backlog.md's task files: `tasks/`, and `completed/`, where `backlog cleanup` moves
/// done tasks (they stay done on the board, and what depends on them stays satisfied).
fn backlog_files(dir: &Path) -> Result<Vec<PathBuf>, SyncError> {
    let mut out = task_files(&dir.join("tasks"))?;
    let completed = dir.join("completed");
    if completed.is_dir() {
        out.extend(task_files(&completed)?);
    }
    Ok(out)
}

/// The `*.md` files of a folder, by name.
fn task_files(dir: &Path) -> Result<Vec<PathBuf>, SyncError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|error| io("reading", dir, error))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// The files' sizes and times.
pub(super) fn fingerprint(s: &Source) -> Fingerprint {
    let stat = |p: PathBuf| {
        let m = std::fs::metadata(&p).ok();
        let (len, at) = m.map(|m| (m.len(), m.modified().ok())).unwrap_or((0, None));
        (p, len, at)
    };
    match s.kind {
        BoardSource::BacklogMd => {
            let dir = s.root.join(&s.place);
            let mut out = vec![stat(dir.join("config.yml"))];
            out.extend(
                task_files(&dir.join("tasks"))
                    .unwrap_or_default()
                    .into_iter()
                    .map(stat),
            );
            out
        }
        _ => vec![stat(s.root.join(&s.place))],
    }
}

/// Writes `w` (and `note`) to its file by compare-and-swap. `false`: a person changed
/// the task's status there first (or removed it, or left the file unreadable), and
/// the file is left alone.
pub(super) fn write_back(s: &Source, w: &Write, note: Option<&str>) -> Result<bool, SyncError> {
    let path = s.root.join(&w.file);
    let stamp = crate::now().to_string();
    for _ in 0..3 {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(io("reading", &path, error)),
        };
        let (now, edited) = match s.kind {
            BoardSource::BacklogMd => (
                backlog::status_in(&w.file, &text).ok(),
                backlog::edit(&w.file, &text, &w.status, note),
            ),
            _ => (
                taskmaster::status_in(&w.file, &text, &s.tag, &w.key)
                    .ok()
                    .flatten(),
                taskmaster::edit(
                    &w.file,
                    &text,
                    &s.tag,
                    &w.key,
                    &w.status,
                    note.map(|n| (n, stamp.as_str())),
                ),
            ),
        };
        let (Some(now), Ok(edited)) = (now, edited) else {
            return Ok(false);
        };
        if !now.eq_ignore_ascii_case(&w.expect) {
            return Ok(false);
        }
        let name = path
            .file_name()
            .expect("a file has a name")
            .to_string_lossy();
        let tmp = path.with_file_name(format!(".{name}.orch-tmp"));
        std::fs::write(&tmp, edited.as_bytes()).map_err(|error| io("writing", &tmp, error))?;
        let again = std::fs::read_to_string(&path).unwrap_or_default();
        if again != text {
            let _ = std::fs::remove_file(&tmp);
            continue;
        }
        std::fs::rename(&tmp, &path).map_err(|error| io("writing", &path, error))?;
        return Ok(true);
    }
    Ok(false)
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn io(what: &'static str, path: &Path, error: std::io::Error) -> SyncError {
    SyncError::Io {
        what,
        path: path.to_owned(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use orch_core::TaskStatus;
    use orch_core::config::Config;

    use super::*;

    const TASK: &str = "---\nid: TASK-1\ntitle: One\nstatus: To Do\n---\n\nBody\n";

    fn source(root: &Path) -> Source {
        let mut c = Config::default();
        c.board.source = BoardSource::BacklogMd;
        std::fs::create_dir_all(root.join("backlog/tasks")).unwrap();
        Source::of(&c, root, &root.join(".orch")).unwrap()
    }

    fn write(expect: &str) -> Write {
        Write {
            key: "TASK-1".into(),
            file: "backlog/tasks/task-1.md".into(),
            expect: expect.into(),
            status: "In Progress".into(),
            orch: TaskStatus::InProgress,
            note: None,
        }
    }

    #[test]
    fn a_write_lands_only_on_the_status_it_was_planned_from() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path());
        let file = dir.path().join("backlog/tasks/task-1.md");
        // A person set the task Done after the plan read To Do: left alone.
        let theirs = TASK.replace("To Do", "Done");
        std::fs::write(&file, &theirs).unwrap();
        assert!(!write_back(&s, &write("To Do"), Some("a note")).unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), theirs);
        // A file a person left unreadable is left alone too.
        std::fs::write(&file, "half").unwrap();
        assert!(!write_back(&s, &write("To Do"), None).unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "half");
        // Still as planned: written, nothing left beside it.
        std::fs::write(&file, TASK).unwrap();
        assert!(write_back(&s, &write("to do"), None).unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            TASK.replace("To Do", "In Progress")
        );
        let left: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
