//! Tidy: every path `ARCHITECTURE.md` names exists. A path is a backticked token that
//! starts at a top-level folder (`crates/`, `xtask/`, `examples/`, `docs/`), or, under
//! a crate's heading, a folder or file of that crate (`run/`, `cli.rs`, `tests/`).

use std::path::Path;

use anyhow::{Context, Result};

use crate::tidy::root;

/// Top-level folders a path in the docs may start from.
const TOP: &[&str] = &["crates/", "xtask/", "examples/", "docs/"];

/// The paths `ARCHITECTURE.md` names that do not exist.
pub fn architecture_paths() -> Result<Vec<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md"))
        .context("reading ARCHITECTURE.md")?;
    Ok(missing(&text, &root()))
}

/// The backticked paths in `text` missing under `root`, as `ARCHITECTURE.md:LINE: ...`.
fn missing(text: &str, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut krate: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(h) = line.strip_prefix("### `") {
            krate = h.strip_suffix('`').map(str::to_owned);
        } else if line.starts_with("## ") {
            krate = None;
        }
        for token in line.split('`').skip(1).step_by(2) {
            if !looks_like_path(token) {
                continue;
            }
            // A path from a top-level folder is read from the root, wherever it stands.
            let rooted = TOP.iter().any(|t| token.starts_with(t));
            let found = root.join(token).exists()
                || !rooted
                    && krate.as_ref().is_some_and(|k| {
                        let base = root.join(k);
                        base.join(token).exists() || base.join("src").join(token).exists()
                    });
            if !found {
                problems.push(format!(
                    "ARCHITECTURE.md:{}: `{token}` does not exist; name a path that does",
                    n + 1
                ));
            }
        }
    }
    problems
}

/// A relative path to a folder (`run/`), a source file (`cli.rs`) or a file in a
/// folder (`docs/config.md`); not a user's file (`orch.toml`), a git ref namespace
/// (`refs/orch/`), an option, a glob or a placeholder.
fn looks_like_path(token: &str) -> bool {
    let plain = !token.contains([' ', '*', '<', '{', ':', '$', '=', '"'])
        && !token.starts_with(['/', '.', '-'])
        && !token.starts_with("refs/");
    let file = token.ends_with(".rs")
        || (token.contains('/')
            && [".md", ".toml", ".sh", ".bundle"]
                .iter()
                .any(|e| token.ends_with(e)));
    let folder = token.ends_with('/') && token.len() > 1;
    plain && (file || folder || TOP.iter().any(|t| token.starts_with(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_names_only_paths_that_exist() {
        assert_eq!(architecture_paths().unwrap(), Vec::<String>::new());
    }

    /// The check must be able to fail: a gone file is caught, a crate's own folder
    /// is found under its heading, and options and placeholders are not paths.
    #[test]
    fn a_gone_path_is_caught() {
        let text = "### `crates/orch-engine`\n`run/` and `gone.rs`, `crates/orch-cli/tests/claude.rs`\n`-c a=b`, `refs/orch/`, `<repo>/.orch/`, `orch.toml`, `docs/gone.md`, `examples/embed.rs`\n";
        let found = missing(text, &root());
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].contains("`gone.rs`") && found[1].contains("claude.rs"));
        assert!(found[2].contains("docs/gone.md"));
        // From a top-level folder, a path is the root's, not the crate's.
        assert!(found[3].contains("`examples/embed.rs`"));
    }
}
