//! Submodules in orch's worktrees: gix checks out a gitlink as an empty directory, so
//! a gate that needs the submodule's files would fail. Each submodule of the commit is
//! cloned into the worktree at its recorded commit: from the user's own initialised
//! copy under `.git/modules/<name>` when there is one (no network, objects shared),
//! else from its URL in `.gitmodules`. The user's config is never written.

use std::path::Path;

use orch_core::run::CommitId;

use crate::{Git, GitError, git_cli};

impl Git {
    /// Checks out every submodule `worktree`'s `HEAD` records, at its recorded commit:
    /// cloned if missing, switched if there. Nothing when there is no `.gitmodules`.
    /// Nested submodules are not followed.
    pub fn init_submodules(&self, worktree: &Path) -> Result<(), GitError> {
        if !worktree.join(".gitmodules").is_file() {
            return Ok(());
        }
        let listed = git_cli(
            worktree,
            &[
                "config",
                "--file",
                ".gitmodules",
                "--get-regexp",
                r"^submodule\..*\.path$",
            ],
        )
        .unwrap_or_default();
        let common = self.repo().common_dir().to_path_buf();
        for line in listed.lines() {
            let Some((key, path)) = line.split_once(' ') else {
                continue;
            };
            let name = key
                .trim_start_matches("submodule.")
                .trim_end_matches(".path");
            let Ok(sha) = git_cli(worktree, &["rev-parse", &format!("HEAD:{path}")]) else {
                continue;
            };
            let sha = CommitId(sha.trim().to_owned());
            let local = common.join("modules").join(name);
            let source = if local.is_dir() {
                local.display().to_string()
            } else {
                let url = git_cli(
                    worktree,
                    &[
                        "config",
                        "--file",
                        ".gitmodules",
                        &format!("submodule.{name}.url"),
                    ],
                )?;
                resolve_url(self.workdir(), url.trim())
            };
            checkout_submodule(&worktree.join(path), &source, local.is_dir(), &sha).map_err(
                |e| GitError::Cli {
                    command: format!("checking out submodule {name} at {path}"),
                    message: e.to_string(),
                },
            )?;
        }
        Ok(())
    }
}

/// A `./` or `../` URL is relative to the superproject's own directory.
fn resolve_url(workdir: &Path, url: &str) -> String {
    if url.starts_with("./") || url.starts_with("../") {
        workdir.join(url).display().to_string()
    } else {
        url.to_owned()
    }
}

fn checkout_submodule(
    dest: &Path,
    source: &str,
    shared: bool,
    sha: &CommitId,
) -> Result<(), GitError> {
    let file = ["-c", "protocol.file.allow=always"];
    if !dest.join(".git").exists() {
        let parent = dest.parent().unwrap_or(dest);
        std::fs::create_dir_all(dest)
            .map_err(|e| GitError::gix("creating a submodule directory", e))?;
        let mut args: Vec<&str> = file.to_vec();
        args.extend(["clone", "--quiet", "--no-checkout"]);
        if shared {
            args.push("--shared");
        }
        let d = dest.display().to_string();
        args.extend([source, d.as_str()]);
        git_cli(parent, &args)?;
    } else if git_cli(dest, &["cat-file", "-e", &format!("{}^{{commit}}", sha.0)]).is_err() {
        let mut args: Vec<&str> = file.to_vec();
        args.extend(["fetch", "--quiet", source]);
        git_cli(dest, &args)?;
    }
    git_cli(
        dest,
        &["checkout", "--quiet", "--force", "--detach", &sha.0],
    )?;
    git_cli(dest, &["clean", "--quiet", "-d", "--force"])?;
    Ok(())
}
