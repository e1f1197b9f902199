//! The board file: a whole board as `[[task]]` entries, keyed by a stable `key`.
//!
//! Parsing the text is the caller's job (the CLI parses TOML and maps errors to
//! lines); this module checks a parsed file *as a whole* against the current board and
//! plans an import that is idempotent by key: existing keys are updated, new keys
//! created, nothing duplicated. A file with any error is rejected with nothing planned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::deps::DepGraph;
use crate::task::{self, FieldError, TaskId};

/// A parsed board file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardFile {
    /// The tasks, in file order.
    #[serde(default, rename = "task")]
    pub tasks: Vec<BoardTask>,
}

/// One `[[task]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardTask {
    /// Stable key, unique on the board.
    pub key: String,
    /// One-line title.
    pub title: String,
    /// Description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// Keys of the tasks this one waits for: in this file or already on the board.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Touched-path globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touches: Vec<String>,
    /// Keys of landed tasks whose work this one may undo (the revert guard lets it):
    /// in this file or already on the board. The import writes them into the body as
    /// a `Reverts:` line, which is where the run reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<String>,
}

/// A task already on the board, as the import check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingTask {
    /// Its id.
    pub id: TaskId,
    /// Its key.
    pub key: String,
    /// Its dependencies.
    pub depends_on: Vec<TaskId>,
}

/// A rejected board file: which entry, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task #{} in the file{}: {message}", index + 1, key.as_deref().map(|k| format!(" (key {k:?})")).unwrap_or_default())]
pub struct BoardError {
    /// Zero-based index of the offending `[[task]]` entry.
    pub index: usize,
    /// Its key, when it has one.
    pub key: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Where a dependency of a planned task points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepRef {
    /// A task already on the board.
    Existing(TaskId),
    /// The task at this index of the file (which may be new).
    InFile(usize),
}

/// What the import does with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    /// The entry, validated and normalised.
    pub task: BoardTask,
    /// The board task it updates, or `None` to create one.
    pub existing: Option<TaskId>,
    /// Its dependencies after the import.
    pub deps: Vec<DepRef>,
}

/// Validates a whole file against the board and plans the import.
pub fn plan_import(
    file: &BoardFile,
    board: &[ExistingTask],
) -> Result<Vec<PlannedTask>, BoardError> {
    let by_key: BTreeMap<&str, &ExistingTask> = board.iter().map(|t| (t.key.as_str(), t)).collect();
    let mut file_keys: BTreeMap<&str, usize> = BTreeMap::new();
    let mut planned = Vec::with_capacity(file.tasks.len());
    for (index, t) in file.tasks.iter().enumerate() {
        let err = |e: FieldError| BoardError {
            index,
            key: Some(t.key.clone()).filter(|k| !k.is_empty()),
            message: e.to_string(),
        };
        task::validate_key(&t.key).map_err(err)?;
        if let Some(first) = file_keys.insert(&t.key, index) {
            return Err(BoardError {
                index,
                key: Some(t.key.clone()),
                message: format!(
                    "duplicate key; task #{} in the file has it already",
                    first + 1
                ),
            });
        }
        let mut task = t.clone();
        task.title = task::validate_title(&t.title).map_err(err)?;
        task::validate_body(&t.body).map_err(err)?;
        for l in &t.labels {
            task::validate_label(l).map_err(err)?;
        }
        for g in &t.touches {
            task::validate_touches(g).map_err(err)?;
        }
        for list in [&mut task.labels, &mut task.touches, &mut task.after] {
            list.sort();
            list.dedup();
        }
        for k in &t.reverts {
            if !file.tasks.iter().any(|f| f.key == *k) && !by_key.contains_key(k.as_str()) {
                return Err(BoardError {
                    index,
                    key: Some(t.key.clone()),
                    message: format!(
                        "`reverts` names {k:?}, which is neither a key in this file nor on the board"
                    ),
                });
            }
        }
        task.body = task::with_reverts(&t.body, &t.reverts);
        task.reverts.clear();
        planned.push(PlannedTask {
            task,
            existing: by_key.get(t.key.as_str()).map(|e| e.id),
            deps: Vec::new(),
        });
    }
    // Resolve `after` keys: the file wins over the board for keys in both.
    for (index, p) in planned.iter_mut().enumerate() {
        for k in &p.task.after {
            let dep = match (file_keys.get(k.as_str()), by_key.get(k.as_str())) {
                (Some(i), _) => DepRef::InFile(*i),
                (None, Some(e)) => DepRef::Existing(e.id),
                (None, None) => {
                    return Err(BoardError {
                        index,
                        key: Some(p.task.key.clone()),
                        message: format!(
                            "`after` names {k:?}, which is neither a key in this file nor on the board"
                        ),
                    });
                }
            };
            p.deps.push(dep);
        }
    }
    check_cycles(&planned, board)?;
    Ok(planned)
}

/// Builds the board's graph as it would be after the import and checks it for cycles,
/// in time linear in the board's size. New tasks get provisional negative ids that never
/// collide with store ids. A cycle is reported at the task of the file that comes last
/// in it (the one whose `after` closed it), starting from that task.
fn check_cycles(planned: &[PlannedTask], board: &[ExistingTask]) -> Result<(), BoardError> {
    let id_of = |i: usize| planned[i].existing.unwrap_or(TaskId(-(i as i64) - 1));
    let index_of: BTreeMap<TaskId, usize> = (0..planned.len()).map(|i| (id_of(i), i)).collect();
    let mut edges: BTreeMap<TaskId, Vec<TaskId>> =
        board.iter().map(|t| (t.id, t.depends_on.clone())).collect();
    for (index, p) in planned.iter().enumerate() {
        let deps: Vec<TaskId> = p
            .deps
            .iter()
            .map(|d| match d {
                DepRef::Existing(id) => *id,
                DepRef::InFile(i) => id_of(*i),
            })
            .collect();
        let fail = |message: String| BoardError {
            index,
            key: Some(p.task.key.clone()),
            message,
        };
        if deps.contains(&id_of(index)) {
            return Err(fail("`after` names the task itself".to_owned()));
        }
        edges.insert(id_of(index), deps);
    }
    if let Some(unknown) = edges
        .iter()
        .find_map(|(t, ds)| ds.iter().find(|d| !edges.contains_key(d)).map(|d| (*t, *d)))
    {
        let index = index_of.get(&unknown.0).copied().unwrap_or(0);
        return Err(BoardError {
            index,
            key: Some(planned[index].task.key.clone()),
            message: format!("`after` names unknown task {}", unknown.1),
        });
    }
    let Some(cycle) = DepGraph::new(edges).find_cycle() else {
        return Ok(());
    };
    // Start the cycle at its task that comes last in the file.
    let ring = &cycle[..cycle.len() - 1];
    let at = (0..ring.len())
        .max_by_key(|k| index_of.get(&ring[*k]).map_or(-1, |i| *i as i64))
        .unwrap_or(0);
    let mut path: Vec<TaskId> = ring[at..].iter().chain(&ring[..at]).copied().collect();
    path.push(path[0]);
    let index = index_of.get(&path[0]).copied().unwrap_or(0);
    Err(BoardError {
        index,
        key: Some(planned[index].task.key.clone()),
        message: format!(
            "`after` creates a dependency cycle: {}",
            cycle_words(&path, |id| key_of(id, planned, board))
        ),
    })
}

/// `a -> b -> a`; a long cycle shows its first few tasks and its length.
fn cycle_words(path: &[TaskId], name: impl Fn(TaskId) -> String) -> String {
    const SHOWN: usize = 6;
    let n = path.len() - 1;
    if n <= SHOWN {
        return path
            .iter()
            .map(|t| name(*t))
            .collect::<Vec<_>>()
            .join(" -> ");
    }
    let first: Vec<String> = path[..SHOWN].iter().map(|t| name(*t)).collect();
    format!(
        "{} -> ... -> {} (a cycle of {n} tasks)",
        first.join(" -> "),
        name(path[0])
    )
}

fn key_of(id: TaskId, planned: &[PlannedTask], board: &[ExistingTask]) -> String {
    if id.0 < 0 {
        return planned[(-id.0 - 1) as usize].task.key.clone();
    }
    board
        .iter()
        .find(|t| t.id == id)
        .map(|t| t.key.clone())
        .unwrap_or_else(|| format!("#{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(key: &str, after: &[&str]) -> BoardTask {
        BoardTask {
            key: key.into(),
            title: format!("Task {key}"),
            after: after.iter().map(|s| s.to_string()).collect(),
            ..BoardTask::default()
        }
    }

    #[test]
    fn plans_creates_updates_and_deps() {
        let board = vec![ExistingTask {
            id: TaskId(7),
            key: "lexer".into(),
            depends_on: vec![],
        }];
        let file = BoardFile {
            tasks: vec![
                t("parser", &["lexer"]),
                t("lexer", &[]),
                t("cli", &["parser"]),
            ],
        };
        let plan = plan_import(&file, &board).unwrap();
        assert_eq!(plan[0].existing, None);
        assert_eq!(plan[0].deps, vec![DepRef::InFile(1)]);
        assert_eq!(plan[1].existing, Some(TaskId(7)));
        assert_eq!(plan[2].deps, vec![DepRef::InFile(0)]);
    }

    #[test]
    fn rejects_bad_files_naming_the_entry() {
        let cases = [
            (
                vec![t("a", &[]), t("a", &[])],
                "task #2 in the file (key \"a\"): duplicate key; task #1 in the file has it already",
            ),
            (
                vec![t("a", &["zzz"])],
                "task #1 in the file (key \"a\"): `after` names \"zzz\", which is neither a key in this file nor on the board",
            ),
            (
                vec![t("a", &["b"]), t("b", &["a"])],
                "task #2 in the file (key \"b\"): `after` creates a dependency cycle: b -> a -> b",
            ),
            (
                vec![t("a", &["a"])],
                "task #1 in the file (key \"a\"): `after` names the task itself",
            ),
            (
                vec![t("bad key", &[])],
                "task #1 in the file (key \"bad key\"): invalid key \"bad key\": expected 1-64 characters of letters, digits, '-', '_' or '.', starting with a letter or digit",
            ),
        ];
        for (tasks, msg) in cases {
            let err = plan_import(&BoardFile { tasks }, &[]).unwrap_err();
            assert_eq!(err.to_string(), msg);
        }
    }

    #[test]
    fn cycle_through_existing_board_is_found() {
        // On the board: x depends on y. The file makes y depend on x.
        let board = vec![
            ExistingTask {
                id: TaskId(1),
                key: "x".into(),
                depends_on: vec![TaskId(2)],
            },
            ExistingTask {
                id: TaskId(2),
                key: "y".into(),
                depends_on: vec![],
            },
        ];
        let err = plan_import(
            &BoardFile {
                tasks: vec![t("y", &["x"])],
            },
            &board,
        )
        .unwrap_err();
        assert!(err.message.contains("y -> x -> y"), "{err}");
        // Re-importing x without its edge drops the old edge, so no cycle.
        let file = BoardFile {
            tasks: vec![t("y", &["x"]), t("x", &[])],
        };
        assert!(plan_import(&file, &board).is_ok());
    }

    #[test]
    fn parses_toml_and_rejects_unknown_fields() {
        let f: BoardFile = toml::from_str(
            "[[task]]\nkey = \"a\"\ntitle = \"A\"\npriority = 2\ntouches = [\"src/**\"]\n",
        )
        .unwrap();
        assert_eq!(f.tasks[0].priority, 2);
        let err = toml::from_str::<BoardFile>("[[task]]\nkey = \"a\"\ntitle = \"A\"\nprio = 2\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `prio`"), "{err}");
    }

    #[test]
    fn reverts_become_a_body_line_and_must_name_a_known_task() {
        let mut undo = t("undo", &[]);
        undo.body = "Take the cache out.".into();
        undo.reverts = vec!["cache".into()];
        let file = BoardFile {
            tasks: vec![t("cache", &[]), undo.clone()],
        };
        let plan = plan_import(&file, &[]).unwrap();
        assert_eq!(plan[1].task.body, "Take the cache out.\n\nReverts: cache");
        assert!(plan[1].task.reverts.is_empty());
        undo.reverts = vec!["cahce".into()];
        let e = plan_import(&BoardFile { tasks: vec![undo] }, &[]).unwrap_err();
        assert!(e.message.contains("`reverts` names \"cahce\""), "{e}");
    }

    /// A cycle through a long chain is named by its first tasks and its length.
    #[test]
    fn a_long_cycle_is_shown_short() {
        let n = 10_000;
        let key = |i: usize| format!("t{i}");
        let tasks: Vec<BoardTask> = (0..n)
            .map(|i| {
                let dep = key((i + 1) % n);
                t(&key(i), &[dep.as_str()])
            })
            .collect();
        let e = plan_import(&BoardFile { tasks }, &[]).unwrap_err();
        assert!(
            e.message.ends_with("(a cycle of 10000 tasks)"),
            "{}",
            e.message
        );
        assert!(e.message.len() < 200, "{}", e.message);
        assert_eq!(e.key.as_deref(), Some("t9999"));
    }
}
