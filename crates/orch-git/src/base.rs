//! The base-ref policy: which commit a run starts from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use orch_core::config::Offline;
use orch_core::ports::ResolvedBase;

use crate::{Git, GitError};

impl Git {
    /// Resolves `base`. For `<remote>/<branch>` where `<remote>` is a configured remote,
    /// fetches first (within `timeout`); if that fails, `offline` decides: `use-cached`
    /// takes the last fetched ref and reports a warning, `fail` is an error.
    pub fn resolve_base(
        &self,
        base: &str,
        offline: Offline,
        timeout: Duration,
    ) -> Result<ResolvedBase, GitError> {
        let base = base.trim();
        if let Some((remote, branch)) = base.split_once('/')
            && self.repo().find_remote(remote).is_ok()
            && self.ref_target(&format!("refs/heads/{base}"))?.is_none()
        {
            let reference = format!("refs/remotes/{remote}/{branch}");
            let fetched = self.fetch(remote, timeout);
            let warning = match (&fetched, offline) {
                (Ok(()), _) => None,
                (Err(e), Offline::Fail) => {
                    return Err(GitError::Fetch {
                        remote: remote.into(),
                        message: e.clone(),
                    });
                }
                (Err(e), Offline::UseCached) => Some(format!(
                    "fetching {remote} failed ({e}); using the cached {reference}"
                )),
            };
            let commit = match self.ref_target(&reference)? {
                Some(c) => c,
                None => {
                    return Err(match fetched {
                        Err(message) => GitError::NothingCached {
                            remote: remote.into(),
                            reference,
                            message,
                        },
                        Ok(()) => GitError::BadRevision {
                            rev: base.into(),
                            message: format!("{remote} has no branch {branch}"),
                        },
                    });
                }
            };
            return Ok(ResolvedBase {
                commit,
                source: reference,
                fetched: fetched.is_ok(),
                warning,
            });
        }
        let commit = self.rev_parse(base)?;
        Ok(ResolvedBase {
            commit,
            source: base.into(),
            fetched: false,
            warning: None,
        })
    }

    /// Fetches `remote` with its configured refspecs, giving up after `timeout`.
    fn fetch(&self, remote: &str, timeout: Duration) -> Result<(), String> {
        let repo = self.repo.clone();
        let remote = remote.to_owned();
        let interrupt = Arc::new(AtomicBool::new(false));
        let flag = interrupt.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let repo = repo.to_thread_local();
            let result = (|| -> Result<(), String> {
                let remote = repo
                    .find_remote(remote.as_str())
                    .map_err(|e| e.to_string())?;
                let conn = remote
                    .connect(gix::remote::Direction::Fetch)
                    .map_err(|e| e.to_string())?;
                let prepared = conn
                    .prepare_fetch(gix::progress::Discard, Default::default())
                    .map_err(|e| e.to_string())?;
                prepared
                    .receive(gix::progress::Discard, &flag)
                    .map_err(|e| e.to_string())?;
                Ok(())
            })();
            let _ = tx.send(result);
        });
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(_) => {
                interrupt.store(true, Ordering::Relaxed);
                Err(format!("no answer within {}s", timeout.as_secs_f32()))
            }
        }
    }
}
