//! Branches moved through a shared remote, for coordinators and workers on several
//! machines: pushes with compare-and-swap semantics (`--force-with-lease` with an
//! explicit expected value), fetches of named refs, and reading a remote ref. All
//! through the git CLI (gix has no push), with the scrubbed environment and no hooks.

use orch_core::run::CommitId;

use crate::{Git, GitError, git_cli, git_command};

/// What a push requires of the remote ref first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: it is overwritten, whatever it is.
    Any,
    /// It must not exist.
    Absent,
    /// It must be at this commit.
    At(CommitId),
}

impl Git {
    /// Pushes `commit` to `reference` (`refs/heads/...`) on `remote`, only if the
    /// remote ref is as `expect` says. A refusal for that reason is
    /// [`GitError::PushRefused`].
    pub fn push_ref(
        &self,
        remote: &str,
        commit: &CommitId,
        reference: &str,
        expect: &Expect,
    ) -> Result<(), GitError> {
        let spec = format!("{}:{reference}", commit.0);
        let (lease, spec_arg) = match expect {
            Expect::Any => (None, format!("+{spec}")),
            Expect::Absent => (
                Some(format!("--force-with-lease={reference}:")),
                spec.clone(),
            ),
            Expect::At(c) => (
                Some(format!("--force-with-lease={reference}:{}", c.0)),
                spec.clone(),
            ),
        };
        let mut cmd = git_command(self.workdir());
        cmd.args(["push", "--porcelain", "--no-verify"])
            .args(lease)
            .arg(remote)
            .arg(&spec_arg);
        run_push(cmd, remote, &spec)
    }

    /// Fetches `refspecs` (`+src:dst`, or `src` for the objects alone) from `remote`.
    /// `FETCH_HEAD` is not written, so fetches run side by side in one clone, and no
    /// remote-tracking ref is updated besides what the refspecs name.
    pub fn fetch_refs(&self, remote: &str, refspecs: &[String]) -> Result<(), GitError> {
        let mut args = vec![
            "fetch",
            "--no-tags",
            "--quiet",
            "--no-write-fetch-head",
            "--refmap=",
            remote,
        ];
        args.extend(refspecs.iter().map(String::as_str));
        git_cli(self.workdir(), &args).map(|_| ())
    }

    /// Where `reference` points on `remote`, asked of the remote itself.
    pub fn remote_ref(&self, remote: &str, reference: &str) -> Result<Option<CommitId>, GitError> {
        let out = git_cli(self.workdir(), &["ls-remote", remote, reference])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(_, r)| *r == reference)
            .map(|(c, _)| CommitId(c.to_owned())))
    }

    /// Deletes `reference` on `remote`; one already gone is no error.
    pub fn delete_remote_ref(&self, remote: &str, reference: &str) -> Result<(), GitError> {
        if self.remote_ref(remote, reference)?.is_none() {
            return Ok(());
        }
        git_cli(
            self.workdir(),
            &[
                "push",
                "--quiet",
                "--no-verify",
                remote,
                &format!(":{reference}"),
            ],
        )
        .map(|_| ())
    }
}

/// Runs a `git push --porcelain`: a ref the remote refused (`!` lines) is
/// [`GitError::PushRefused`], any other failure [`GitError::Cli`].
pub(crate) fn run_push(
    mut cmd: std::process::Command,
    remote: &str,
    what: &str,
) -> Result<(), GitError> {
    let out = cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| GitError::Cli {
            command: "git push".into(),
            message: format!("cannot run git: {e}"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rejected: Vec<&str> = text.lines().filter(|l| l.starts_with('!')).collect();
    // Why the remote refused, when it said (an unpacker's or a hook's error).
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("error:") || l.contains("fatal:"))
        .collect();
    match rejected.is_empty() {
        true => Err(GitError::Cli {
            command: format!("git push {remote} {what}"),
            message: text.trim().to_owned(),
        }),
        false => Err(GitError::PushRefused {
            remote: remote.to_owned(),
            message: rejected
                .iter()
                .chain(&said)
                .copied()
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}
