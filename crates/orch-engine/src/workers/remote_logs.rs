//! Logs of attempts that ran on workers elsewhere, brought to this machine: what the
//! store holds of them is written where `orch logs` and the dashboard read a local
//! attempt's logs (`.orch/artifacts/<run>/<task>/<attempt>/`), unless already there.

use std::path::Path;

use orch_core::TaskId;
use orch_store::Store;

use crate::EngineError;

/// Writes the stored logs of `task` (in `run`, or every run) under `artifacts_root`
/// where no file is; returns how many it wrote.
pub async fn materialize(
    store: &Store,
    artifacts_root: &Path,
    run: Option<&str>,
    task: TaskId,
) -> Result<usize, EngineError> {
    let mut wrote = 0;
    for l in store.stored_logs(run, task).await? {
        let safe = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && !s.starts_with('.');
        if !safe(&l.name) || !safe(&l.run) {
            continue;
        }
        let dir = artifacts_root
            .join(&l.run)
            .join(task.0.to_string())
            .join(l.attempt.to_string());
        let path = dir.join(&l.name);
        if path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let (task, attempt) = (task.0.to_string(), l.attempt.to_string());
        orch_validate::files::real_dirs(artifacts_root, &[&l.run, &task, &attempt]).map_err(
            |e| EngineError::Config(format!("cannot write logs to {}: {e}", dir.display())),
        )?;
        // Whatever stands there that is not a file (a link planted to send this write
        // elsewhere) is replaced, never written through.
        orch_validate::files::write(&path, l.text.as_bytes())
            .map_err(|e| EngineError::Config(format!("cannot write {}: {e}", path.display())))?;
        wrote += 1;
    }
    Ok(wrote)
}
