//! The repository's shared git files that an agent could use against orch or the
//! user: `config` (an fsmonitor, an alias, a `core.hooksPath`), `hooks/` and `info/`
//! (excludes, attributes) under the common git directory. Snapshot them before an
//! agent runs; afterwards, every difference is undone and named.

use std::collections::BTreeMap;
use std::path::Path;

use orch_core::ports::SharedGitState;

use crate::{Git, GitError};

/// Files bigger than this are not snapshotted (no hook or config is).
const MAX_FILE: u64 = 1 << 20;

impl Git {
    /// The shared git files as they are now.
    pub fn shared_state(&self) -> Result<SharedGitState, GitError> {
        let common = self.repo().common_dir().to_path_buf();
        let mut files = BTreeMap::new();
        read_into(&common, "config", &mut files);
        for dir in ["hooks", "info"] {
            walk(&common, dir, &mut files);
        }
        Ok(SharedGitState(files))
    }

    /// Puts back every shared git file that differs from `before` (removing the new
    /// ones) and says what was changed; empty when nothing was.
    pub fn restore_shared_state(&self, before: &SharedGitState) -> Result<Vec<String>, GitError> {
        let now = self.shared_state()?;
        let common = self.repo().common_dir().to_path_buf();
        let io = |e: std::io::Error| GitError::SharedFiles(e.to_string());
        let mut changed = Vec::new();
        for (rel, bytes) in &before.0 {
            match now.0.get(rel) {
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
        for rel in now.0.keys().filter(|r| !before.0.contains_key(*r)) {
            std::fs::remove_file(common.join(rel)).map_err(io)?;
            changed.push(format!("{rel} added"));
        }
        Ok(changed)
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
