//! The layering rules, checked: which workspace crate may depend on which, that only
//! the store knows sea-orm, that no two files of a crate import each other in a circle,
//! and that no source file or function grows past its limit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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

/// `(file, module path)` for every Rust file of a crate's `src`.
fn modules(src: &Path) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let mut files = Vec::new();
    crate::tidy::rust_files(src, &mut files)?;
    Ok(files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(src).expect("under src").with_extension("");
            let mut path: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if matches!(
                path.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                path.pop();
            }
            (f, path)
        })
        .collect())
}

/// The module paths a file's code names through `crate::` and `super::`.
fn references(text: &str, me: &[String], is_dir_module: bool) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (prefix, base) in [
            ("crate::", Vec::new()),
            ("super::", parent(me, is_dir_module)),
        ] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let mut path = base.clone();
                let segs = rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
                let seg = segs.take(1).collect::<String>();
                path.extend(seg.split("::").filter(|s| !s.is_empty()).map(str::to_owned));
                // `use super::{a, b}` or `crate::{x, y}`: each name in the braces.
                if rest.starts_with('{') || seg.ends_with("::") {
                    let inner = rest[rest.find('{').map_or(0, |i| i + 1)..]
                        .split('}')
                        .next()
                        .unwrap_or("");
                    for name in inner.split(',') {
                        let mut p = path.clone();
                        p.extend(
                            name.trim()
                                .split("::")
                                .filter(|s| !s.is_empty() && *s != "self")
                                .map(str::to_owned),
                        );
                        out.insert(p);
                    }
                }
                out.insert(path);
            }
        }
    }
    out
}

/// The module `super` names from module `me`.
fn parent(me: &[String], _is_dir_module: bool) -> Vec<String> {
    me[..me.len().saturating_sub(1)].to_vec()
}

/// No two files of a crate import each other in a circle. A file may use what its
/// ancestors (its parent module, the crate root) define: those edges are how a module
/// tree works, and are not counted.
pub fn import_cycles() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root().join("crates"))? {
        let src = entry?.path().join("src");
        if src.is_dir() {
            problems.extend(cycles_in(&src)?);
        }
    }
    Ok(problems)
}

fn cycles_in(src: &Path) -> Result<Vec<String>> {
    let mods = modules(src)?;
    let known: BTreeMap<&Vec<String>, &PathBuf> = mods.iter().map(|(f, m)| (m, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (f, me) in &mods {
        let text = std::fs::read_to_string(f)?;
        let dir_module = f.file_stem().is_some_and(|s| s == "mod");
        for r in references(&text, me, dir_module) {
            // The longest prefix of the path that is a module file.
            let Some(target) = (1..=r.len())
                .rev()
                .map(|n| r[..n].to_vec())
                .find(|p| known.contains_key(p))
            else {
                continue;
            };
            if target == *me || me.starts_with(&target) || target.starts_with(me) {
                continue;
            }
            edges.entry(me.clone()).or_default().insert(target);
        }
    }
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for start in edges.keys() {
        if let Some(cycle) = find_cycle(&edges, start) {
            let mut key = cycle.clone();
            key.sort();
            if reported.insert(key) {
                let names: Vec<String> = cycle
                    .iter()
                    .map(|m| {
                        known[m]
                            .strip_prefix(root())
                            .unwrap_or(known[m])
                            .display()
                            .to_string()
                    })
                    .collect();
                problems.push(format!(
                    "files import each other in a circle: {}",
                    names.join(" -> ")
                ));
            }
        }
    }
    Ok(problems)
}

/// A cycle through `start`, if there is one.
fn find_cycle(
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    start: &Vec<String>,
) -> Option<Vec<Vec<String>>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if next == start {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
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
    fn no_files_import_each_other_in_a_circle() {
        assert_eq!(import_cycles().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn no_file_or_function_is_too_long() {
        assert_eq!(sizes().unwrap(), Vec::<String>::new());
    }

    /// The checks can fail.
    #[test]
    fn a_cli_reaching_an_adapter_and_a_cycle_are_caught() {
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
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lib.rs"), "//! r\nmod a;\nmod b;\n").unwrap();
        std::fs::write(dir.path().join("a.rs"), "//! a\nuse crate::b::B;\n").unwrap();
        std::fs::write(dir.path().join("b.rs"), "//! b\nuse super::a::A;\n").unwrap();
        let c = cycles_in(dir.path()).unwrap();
        assert_eq!(c.len(), 1, "{c:?}");
    }
}
