//! The revert guard's finding: which hunks of an attempt's change undo another task's
//! landed work. A landing is a first-parent commit of the line with an `Orch-Task`
//! trailer; what it did is its diff against its first parent. A hunk of the attempt's
//! change (its base to its head) undoes a landing when it removes lines that landing
//! added, still there in the attempt's base, and puts back a line the landing
//! replaced, or nothing in their place. Changing another task's line into something new is
//! ordinary work (a version bump after another bump), not an undo. Nothing is checked
//! out: only diffs of commits.

use std::collections::BTreeMap;

use orch_core::ports::Undo;
use orch_core::run::CommitId;

use crate::{Git, GitError, git_cli};

/// How many landings that touched the attempt's files are looked at, newest first.
const LANDINGS: usize = 200;

/// One hunk of a unified diff with no context.
#[derive(Debug, Clone, Default)]
struct Hunk {
    /// The first old line (1-based) and how many.
    old: (u32, u32),
    removed: Vec<String>,
    added: Vec<String>,
}

/// A line worth matching: a blank line or a lone brace says nothing about whose work
/// it is.
fn telling(line: &str) -> bool {
    line.trim().len() >= 3
}

/// Whether `new` is `old` edited rather than replaced: they share at least half of
/// `old` from its start (`version = "26.1.0"` after `version = "26.0.1"`), or a start
/// that names what the line sets (`BASE=` or `key:` or `call(`, then a new value).
fn edited_into(old: &str, new: &str) -> bool {
    let (old, new) = (old.trim(), new.trim());
    let common: String = old
        .chars()
        .zip(new.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let n = common.chars().count();
    n * 2 >= old.chars().count() || (n >= 4 && common.contains(['=', ':', '(']))
}

/// What a landing did to a file, line by line.
#[derive(Debug, Default)]
struct Landed<'a> {
    /// Lines it added where there were none (a hunk that removed nothing).
    inserted: Vec<&'a String>,
    /// Lines it put in place of others.
    changed: Vec<&'a String>,
    /// The lines it replaced.
    replaced: Vec<&'a String>,
}

impl<'a> Landed<'a> {
    fn of(hunks: &'a [Hunk]) -> Landed<'a> {
        let mut l = Landed::default();
        for h in hunks {
            match h.removed.is_empty() {
                true => l.inserted.extend(&h.added),
                false => l.changed.extend(&h.added),
            }
            l.replaced.extend(&h.removed);
        }
        l
    }
}

impl Hunk {
    /// Whether this hunk undoes `landed`: it removes a telling line the landing
    /// inserted and leaves nothing that edits it (the line is gone, whatever else the
    /// hunk adds), or it takes a line the landing changed back to what it replaced.
    /// Changing a landed line into something new is ordinary work. `Some(restores)`
    /// when it undoes.
    fn undoes(&self, landed: &Landed<'_>) -> Option<bool> {
        let restores = self
            .added
            .iter()
            .any(|l| telling(l) && landed.replaced.contains(&l));
        let takes_changed = self
            .removed
            .iter()
            .any(|l| telling(l) && landed.changed.contains(&l));
        let gone = self
            .removed
            .iter()
            .filter(|l| telling(l) && landed.inserted.contains(l))
            .any(|t| !self.added.iter().any(|a| edited_into(t, a)));
        let takes_inserted = self
            .removed
            .iter()
            .any(|l| telling(l) && landed.inserted.contains(&l));
        let undo = gone || ((takes_changed || takes_inserted) && restores);
        undo.then_some(restores)
    }
}

impl Git {
    /// The hunks of `head`'s change since `base` that undo the landed work of a task
    /// other than `own` (its key), newest landing first where two could claim a line.
    pub fn undoes(
        &self,
        base: &CommitId,
        head: &CommitId,
        own: &str,
    ) -> Result<Vec<Undo>, GitError> {
        // Only a modified or deleted file can take lines away: a change that only adds
        // files undoes nothing, and git is not asked.
        let changed: Vec<String> = self
            .tree_changes(base, head)?
            .into_iter()
            .filter_map(|c| {
                use gix::object::tree::diff::ChangeDetached;
                match c {
                    ChangeDetached::Modification {
                        location,
                        entry_mode,
                        ..
                    }
                    | ChangeDetached::Deletion {
                        location,
                        entry_mode,
                        ..
                    } if !entry_mode.is_tree() => Some(location.to_string()),
                    _ => None,
                }
            })
            .collect();
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        // Named literally, unless so many that the command line could not hold them.
        let named: Vec<String> = match changed.len() {
            0..=512 => changed.iter().map(|p| format!(":(literal){p}")).collect(),
            _ => Vec::new(),
        };
        let named: Vec<&str> = named.iter().map(String::as_str).collect();
        let change = self.hunks(&format!("{}..{}", base.0, head.0), &named)?;
        let touched: Vec<&str> = change
            .iter()
            .filter(|(_, h)| h.iter().any(|x| !x.removed.is_empty()))
            .map(|(f, _)| f.as_str())
            .collect();
        if touched.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for (commit, tasks) in self.landings(base, &touched)? {
            let Some(task) = tasks.into_iter().find(|t| t != own) else {
                continue;
            };
            let landed = self.hunks(&format!("{commit}^1..{commit}"), &touched)?;
            for (file, hunks) in &change {
                let Some(theirs) = landed.get(file) else {
                    continue;
                };
                let theirs = Landed::of(theirs);
                for h in hunks {
                    let Some(restores) = h.undoes(&theirs) else {
                        continue;
                    };
                    let claimed = found
                        .iter()
                        .any(|u: &Undo| u.file == *file && u.lines.0 == h.old.0);
                    if !claimed {
                        found.push(Undo {
                            task: task.clone(),
                            file: file.clone(),
                            lines: (h.old.0, h.old.0 + h.old.1.max(1) - 1),
                            restores,
                        });
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The landings on the first-parent line up to `base` that touched `files`,
    /// newest first: each commit with its `Orch-Task` keys.
    fn landings(
        &self,
        base: &CommitId,
        files: &[&str],
    ) -> Result<Vec<(String, Vec<String>)>, GitError> {
        let n = LANDINGS.to_string();
        let mut args = vec![
            "log",
            "--first-parent",
            "-n",
            &n,
            "--format=%H%x00%(trailers:key=Orch-Task,valueonly,separator=%x2C)",
            &base.0,
            "--",
        ];
        args.extend_from_slice(files);
        let out = git_cli(&self.workdir, &args)?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\0'))
            .map(|(c, keys)| {
                let keys = keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                (c.to_owned(), keys)
            })
            .filter(|(_, keys)| !keys.is_empty())
            .collect())
    }

    /// The hunks of `range`'s diff (no context, no renames), by file, for `files`
    /// (every file when empty).
    fn hunks(&self, range: &str, files: &[&str]) -> Result<BTreeMap<String, Vec<Hunk>>, GitError> {
        let mut args = vec![
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "-U0",
            range,
            "--",
        ];
        args.extend_from_slice(files);
        let out = git_cli(&self.workdir, &args)?;
        Ok(parse(&out))
    }
}

/// A `-U0` unified diff, by file (the new path, or the old one of a deleted file),
/// into hunks.
fn parse(diff: &str) -> BTreeMap<String, Vec<Hunk>> {
    let mut out: BTreeMap<String, Vec<Hunk>> = BTreeMap::new();
    let mut old_path: Option<String> = None;
    let mut file: Option<String> = None;
    for line in diff.lines() {
        if let Some(p) = line.strip_prefix("--- ") {
            old_path = p.strip_prefix("a/").map(str::to_owned);
            continue;
        }
        if let Some(p) = line.strip_prefix("+++ ") {
            file = p.strip_prefix("b/").map(str::to_owned).or(old_path.take());
            continue;
        }
        if line.starts_with("diff --git") {
            file = None;
            continue;
        }
        let Some(f) = &file else { continue };
        if let Some(h) = line.strip_prefix("@@ ") {
            let old = h.split_whitespace().next().unwrap_or("-0");
            let mut nums = old.trim_start_matches('-').split(',');
            let start = nums.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let count = nums.next().map_or(1, |n| n.parse().unwrap_or(1));
            out.entry(f.clone()).or_default().push(Hunk {
                old: (start, count),
                ..Hunk::default()
            });
            continue;
        }
        let Some(h) = out.get_mut(f).and_then(|v| v.last_mut()) else {
            continue;
        };
        if let Some(l) = line.strip_prefix('-') {
            h.removed.push(l.to_owned());
        } else if let Some(l) = line.strip_prefix('+') {
            h.added.push(l.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zero_context_hunks() {
        let d = "diff --git a/v.py b/v.py\n--- a/v.py\n+++ b/v.py\n@@ -3 +3 @@\n-v = 1\n+v = 2\n@@ -9,2 +8,0 @@\n-x\n-y\n";
        let h = &parse(d)["v.py"];
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[0].old, h[0].removed.clone(), h[0].added.clone()),
            ((3, 1), vec!["v = 1".to_owned()], vec!["v = 2".to_owned()])
        );
        assert_eq!((h[1].old, h[1].added.len()), ((9, 2), 0));
    }

    fn hunk(removed: &[&str], added: &[&str]) -> Hunk {
        Hunk {
            old: (1, removed.len() as u32),
            removed: removed.iter().map(|l| l.to_string()).collect(),
            added: added.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn an_undo_restores_or_removes_without_editing() {
        let v1 = "version = \"26.0.1dev\"".to_owned();
        let v0 = "version = \"26.0.0\"".to_owned();
        let bumped = [hunk(&[&v0], &[&v1])];
        let bump = Landed::of(&bumped);
        // A bump that follows another bump changes the line into something new.
        let next = hunk(&[&v1], &["version = \"26.1.0dev\""]);
        assert_eq!(next.undoes(&bump), None);
        // A bump back restores what the landing replaced.
        assert_eq!(hunk(&[&v1], &[&v0]).undoes(&bump), Some(true));
        // A title another task changed, changed again into a new one: ordinary work.
        let retitled = [hunk(&["# calc"], &["# calc: a tiny calculator"])];
        let title = hunk(
            &["# calc: a tiny calculator"],
            &["# calc (POSIX sh edition)"],
        );
        assert_eq!(title.undoes(&Landed::of(&retitled)), None);
        // Lines a landing inserted, removed beside the attempt's own new lines: gone.
        let guard = "    if n > 20:".to_owned();
        let ret = "        return 1".to_owned();
        let inserted = [hunk(&[], &[&guard, &ret])];
        let mixed = hunk(&[&guard, &ret], &["def other(x):", "    return x"]);
        assert_eq!(mixed.undoes(&Landed::of(&inserted)), Some(false));
        // An inserted setting given a new value is edited, however long the value.
        let base = "ORCH_BASE_COMMIT=cd62671477be25f1f85febdb3639470eb62ae6ef".to_owned();
        let set = [hunk(&[], &[&base])];
        let moved = hunk(
            &[&base],
            &["ORCH_BASE_COMMIT=daa69de81f8bb868429e3f862fe7b9d7dfd3883a"],
        );
        assert_eq!(moved.undoes(&Landed::of(&set)), None);
        // Lines no landing added are no one's.
        assert_eq!(mixed.undoes(&Landed::of(&[])), None);
    }

    #[test]
    fn a_deleted_file_is_named_by_its_old_path() {
        let d = "diff --git a/f.txt b/f.txt\ndeleted file mode 100644\n--- a/f.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-flag = on\n";
        let h = &parse(d)["f.txt"];
        assert_eq!(h[0].removed, ["flag = on"]);
    }
}
