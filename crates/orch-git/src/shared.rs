//! What of the shared repository an agent could use against orch or the user: the
//! files `config` (an fsmonitor, an alias, a `core.hooksPath`), `hooks/` and `info/`
//! (excludes, attributes) under the common git directory, and the refs outside orch's
//! namespaces (the user's `main`, tags). Snapshot them before an agent runs; afterwards
//! every difference is named, the files are put back, and a moved ref is put back
//! unless a checkout has it (then the user's files would change under them: orch says
//! how to undo it instead). What the agent made a ref point at stays reachable under
//! `refs/orch/undone/`.

use std::collections::BTreeMap;
use std::path::Path;

use orch_core::ports::{Restored, SharedGitState};

use orch_core::run::CommitId;

use crate::{Git, GitError};

/// Files bigger than this are not snapshotted (no hook or config is).
const MAX_FILE: u64 = 1 << 20;

impl Git {
    /// The shared git files and refs as they are now; `users` names the run's base
    /// and target (as configured: `HEAD`, `main`, `origin/main`), whose branches are
    /// the user's.
    pub fn shared_state(&self, users: &[String]) -> Result<SharedGitState, GitError> {
        let common = self.repo().common_dir().to_path_buf();
        let mut files = BTreeMap::new();
        read_into(&common, "config", &mut files);
        for dir in ["hooks", "info"] {
            walk(&common, dir, &mut files);
        }
        Ok(SharedGitState {
            files,
            refs: self.user_refs()?,
            users: users
                .iter()
                .filter_map(|u| self.branch_of(u))
                .map(|b| crate::full_branch(&b))
                .collect(),
        })
    }

    /// Every ref outside `refs/heads/orch/` and `refs/orch/`, with its commit.
    fn user_refs(&self) -> Result<BTreeMap<String, CommitId>, GitError> {
        let repo = self.repo();
        let refs = repo
            .references()
            .map_err(|e| GitError::gix("listing refs", e))?;
        let mut out = BTreeMap::new();
        for r in refs.all().map_err(|e| GitError::gix("listing refs", e))? {
            let Ok(mut r) = r else { continue };
            let name = r.name().as_bstr().to_string();
            // Remote-tracking refs move by fetches (a run's base), not by agents' doing
            // anything to the user.
            let orchs = name.starts_with("refs/heads/orch/") || name.starts_with("refs/orch/");
            if orchs || name.starts_with("refs/remotes/") || !name.starts_with("refs/") {
                continue;
            }
            if let Ok(id) = r.peel_to_id() {
                out.insert(name, CommitId(id.to_string()));
            }
        }
        Ok(out)
    }

    /// Puts back every shared git file that differs from `before` (removing the new
    /// ones) and says what was changed; empty when nothing was.
    ///
    /// A ref counts as the agent's doing when it was deleted, when it was made or moved
    /// onto the agent's own work (reachable from `agent_head`), or when an existing
    /// branch was moved in a way that is no fast-forward. A branch fast-forwarded onto
    /// an integration line is a landing; a person's commit on their branch meanwhile is
    /// neither, and is left alone. The user's branches of the snapshot (the run's base
    /// and target) are theirs unless moved onto the agent's work: whatever else
    /// happened to them is reported and left as it is (a deleted one's commit kept
    /// under `refs/orch/undone/`).
    pub fn restore_shared_state(
        &self,
        before: &SharedGitState,
        agent_head: Option<&CommitId>,
    ) -> Result<Restored, GitError> {
        let now = self.shared_state(&[])?;
        let common = self.repo().common_dir().to_path_buf();
        let io = |e: std::io::Error| GitError::SharedFiles(e.to_string());
        let mut changed = Vec::new();
        for (rel, bytes) in &before.files {
            match now.files.get(rel) {
                Some(b) if b == bytes => {}
                other => {
                    std::fs::write(common.join(rel), bytes).map_err(io)?;
                    let what = if other.is_some() {
                        "changed"
                    } else {
                        "removed"
                    };
                    changed.push(format!("{rel} {what}"));
                }
            }
        }
        for rel in now.files.keys().filter(|r| !before.files.contains_key(*r)) {
            std::fs::remove_file(common.join(rel)).map_err(io)?;
            changed.push(format!("{rel} added"));
        }
        let names: std::collections::BTreeSet<&String> =
            before.refs.keys().chain(now.refs.keys()).collect();
        // Read only when a ref moved (the usual agent moves none).
        let mut lines: Option<Vec<CommitId>> = None;
        let mut theirs = Vec::new();
        for name in names {
            let (was, is) = (before.refs.get(name), now.refs.get(name));
            let agents = |c: &CommitId| agent_head.is_some_and(|h| self.is_ancestor(c, h));
            // The user's own branch, deleted or moved onto anything but the agent's
            // work: no agent's process would, so it is the user's doing.
            if was != is && before.users.contains(name) && !is.is_some_and(agents) {
                theirs.push(self.users_ref(name, was, is)?);
                continue;
            }
            let tampered = match (was, is) {
                (Some(w), Some(c)) if w != c => {
                    if lines.is_none() {
                        lines = Some(self.integration_lines()?);
                    }
                    let tips = lines.as_deref().unwrap_or_default();
                    let landed = tips.iter().any(|l| self.is_ancestor(c, l));
                    let forward = self.is_ancestor(w, c);
                    !forward || (agents(c) && !landed)
                }
                (None, Some(c)) => agents(c),
                (Some(_), None) => true,
                _ => false,
            };
            if tampered {
                changed.push(self.put_back_ref(name, was, is)?);
            }
        }
        Ok(Restored {
            undone: changed,
            users: theirs,
        })
    }

    /// A branch of the user's (the run's base or target) that moved or went while an
    /// agent ran: left as it is; a deleted one's commit is kept under
    /// `refs/orch/undone/`, so nothing becomes unreachable.
    fn users_ref(
        &self,
        name: &str,
        was: Option<&CommitId>,
        is: Option<&CommitId>,
    ) -> Result<String, GitError> {
        let short = |c: Option<&CommitId>| c.map_or("(none)".to_owned(), |c| c.short().to_owned());
        let mut what = format!(
            "{name} moved from {} to {} while the agent ran; it is the run's base or target, so that was the user's doing, and orch left it",
            short(was),
            short(is)
        );
        if let (Some(w), None) = (was, is) {
            let kept = format!("refs/orch/undone/{}", name.trim_start_matches("refs/"));
            self.pin(&kept, w)?;
            what.push_str(&format!(" (its commit is kept as {kept})"));
        }
        Ok(what)
    }

    /// Puts a ref an agent moved, made or deleted back as it was, keeping what it
    /// pointed at under `refs/orch/undone/`; a branch some checkout has is left alone
    /// (moving it would change the files under the user), with how to undo it.
    fn put_back_ref(
        &self,
        name: &str,
        was: Option<&CommitId>,
        is: Option<&CommitId>,
    ) -> Result<String, GitError> {
        let short = |c: Option<&CommitId>| c.map_or("(none)".to_owned(), |c| c.short().to_owned());
        let what = format!("{name} moved from {} to {}", short(was), short(is));
        // A checkout whose index still matches where the branch was did not move with
        // it: putting the ref back makes it consistent again. Otherwise the files
        // followed the ref, and orch leaves both.
        let moved_under = |path: &std::path::Path| {
            was.is_some_and(|w| crate::git_ok(path, &["diff", "--cached", "--quiet", &w.0, "--"]))
        };
        if let Some(branch) = name.strip_prefix("refs/heads/")
            && let Some(c) = self.checked_out(branch)?
            && !moved_under(&c.path)
        {
            let undo = match (was, is) {
                (Some(w), Some(i)) => format!("git update-ref {name} {w} {i}"),
                (Some(w), None) => format!("git update-ref {name} {w}"),
                (None, _) => format!("git update-ref -d {name}"),
            };
            return Ok(format!(
                "{what}; it is checked out in {}, so orch left it: `{undo}` undoes it",
                c.path.display()
            ));
        }
        if let Some(i) = is {
            self.pin(
                &format!("refs/orch/undone/{}", name.trim_start_matches("refs/")),
                i,
            )?;
        }
        match was {
            Some(w) => self.pin(name, w)?,
            None => self.delete_ref(name)?,
        }
        Ok(format!("{what}; put back"))
    }
}

fn read_into(common: &Path, rel: &str, files: &mut BTreeMap<String, Vec<u8>>) {
    let p = common.join(rel);
    if let Ok(m) = std::fs::symlink_metadata(&p)
        && m.is_file()
        && m.len() <= MAX_FILE
        && let Ok(bytes) = std::fs::read(&p)
    {
        files.insert(rel.to_owned(), bytes);
    }
}

fn walk(common: &Path, rel: &str, files: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(common.join(rel)) else {
        return;
    };
    for e in entries.flatten() {
        let name = format!("{rel}/{}", e.file_name().to_string_lossy());
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(common, &name, files),
            Ok(_) => read_into(common, &name, files),
            Err(_) => {}
        }
    }
}
