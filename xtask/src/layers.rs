//! The layering rules, checked: which workspace crate may depend on which, that only
//! the store knows sea-orm, and that no source file or function grows past its limit.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::tidy::root;

/// Workspace crates each crate may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("orch-core", &[]),
    ("orch-git", &["orch-core"]),
    ("orch-store", &["orch-core"]),
    ("orch-validate", &["orch-core"]),
    (
        "orch-engine",
        &["orch-core", "orch-git", "orch-store", "orch-validate"],
    ),
    // The CLI starts the dashboard (`orch serve`); the dashboard never uses the CLI.
    ("orch-cli", &["orch-engine", "orch-store", "orch-web"]),
    ("orch-web", &["orch-engine", "orch-store"]),
    // The test harness stands apart: it drives the binary, git and psql.
    ("orch-testkit", &[]),
];

/// Crates only the store may use.
const STORE_ONLY: &[&str] = &["sea-orm", "sea-orm-migration", "sqlx"];

/// The most lines a source file under `crates/*/src` may have.
pub const MAX_FILE_LINES: usize = 600;

/// Every workspace package's normal dependencies, from `cargo metadata`.
fn dependencies() -> Result<BTreeMap<String, Vec<String>>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    let mut deps = BTreeMap::new();
    for p in v["packages"].as_array().into_iter().flatten() {
        let names = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        deps.insert(p["name"].as_str().unwrap_or_default().to_owned(), names);
    }
    Ok(deps)
}

/// Each crate depends only on the layers below it, and only the store on sea-orm.
pub fn crate_layers() -> Result<Vec<String>> {
    Ok(check_layers(&dependencies()?))
}

fn check_layers(deps: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for (name, ds) in deps {
        for d in ds {
            if d.starts_with("orch-") {
                match allowed.get(name.as_str()) {
                    Some(ok) if ok.contains(&d.as_str()) => {}
                    Some(ok) => problems.push(format!(
                        "{name} depends on {d}; it may depend only on {}",
                        if ok.is_empty() { "no orch crate".to_owned() } else { ok.join(", ") }
                    )),
                    None if name == "xtask" => {}
                    None => problems.push(format!(
                        "{name} is not in the layer table of xtask/src/layers.rs; add it with what it may depend on"
                    )),
                }
            }
            if STORE_ONLY.contains(&d.as_str()) && name != "orch-store" {
                problems.push(format!(
                    "{name} depends on {d}; only orch-store knows the database"
                ));
            }
        }
    }
    problems
}

/// No file under `crates/*/src` over [`MAX_FILE_LINES`]. (A long function is
/// clippy's `too_many_lines`, at the threshold in `clippy.toml`.)
pub fn sizes() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root().join("crates"))? {
        let src = entry?.path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        crate::tidy::rust_files(&src, &mut files)?;
        for f in files {
            let text = std::fs::read_to_string(&f)?;
            let name = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
            let n = text.lines().count();
            if n > MAX_FILE_LINES {
                problems.push(format!(
                    "{name}: {n} lines; split it (at most {MAX_FILE_LINES})"
                ));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_keeps_its_layers() {
        assert_eq!(crate_layers().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn no_file_or_function_is_too_long() {
        assert_eq!(sizes().unwrap(), Vec::<String>::new());
    }

    /// The checks can fail.
    #[test]
    fn a_cli_reaching_an_adapter_is_caught() {
        let deps = BTreeMap::from([
            (
                "orch-cli".to_owned(),
                vec!["orch-git".to_owned(), "sea-orm".to_owned()],
            ),
            ("orch-store".to_owned(), vec!["orch-validate".to_owned()]),
        ]);
        let p = check_layers(&deps);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("orch-cli depends on orch-git"), "{p:?}");
    }
}
