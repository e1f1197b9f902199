//! The tidy checks. Each returns a list of problems; empty means clean.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Crates that must never appear in `orch-core`'s normal dependency tree.
const CORE_FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "sea-orm",
    "sqlx",
    "gix",
    "nix",
    "figment",
    "async-std",
    "mio",
    "libc",
    "rustix",
];

/// Source patterns that mean I/O, a clock or processes in `orch-core`.
const CORE_FORBIDDEN_SOURCE: &[&str] = &[
    "std::fs",
    "std::process",
    "std::net",
    "std::env",
    "std::thread",
    "SystemTime",
    "Instant::now",
    "tokio",
];

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Every check.
pub fn all() -> Result<Vec<String>> {
    let mut problems = core_dependencies()?;
    problems.extend(core_sources()?);
    problems.extend(file_docs()?);
    problems.extend(library_attributes()?);
    problems.extend(crate::layers::crate_layers()?);
    problems.extend(crate::cycles::import_cycles()?);
    problems.extend(crate::layers::sizes()?);
    problems.extend(crate::docpaths::architecture_paths()?);
    Ok(problems)
}

/// `cargo tree -p orch-core -e normal` names no I/O crate.
pub fn core_dependencies() -> Result<Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "orch-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .context("running cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("cargo tree printed non-UTF-8")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| CORE_FORBIDDEN_CRATES.contains(name))
        .map(|name| {
            format!("orch-core depends on {name}, an I/O crate; the core must stay sans-IO")
        })
        .collect())
}

/// Every `.rs` file under `dir` (snapshots and build outputs aside).
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "snapshots")
            {
                continue;
            }
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `orch-core`'s sources use no file system, processes, network, environment or clock.
pub fn core_sources() -> Result<Vec<String>> {
    let mut files = Vec::new();
    rust_files(&root().join("crates/orch-core/src"), &mut files)?;
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        for (line, pat) in forbidden_in(&text) {
            problems.push(format!(
                "{}:{line}: orch-core uses `{pat}`; the core must stay sans-IO (pass values in)",
                f.strip_prefix(root()).unwrap_or(&f).display(),
            ));
        }
    }
    Ok(problems)
}

/// (line number, pattern) for each forbidden pattern in code, comments excluded.
fn forbidden_in(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for pat in CORE_FORBIDDEN_SOURCE {
            if code.contains(pat) {
                found.push((n + 1, *pat));
            }
        }
    }
    found
}

/// Every Rust file in `crates/`, `xtask/` and `examples/` opens with a `//!` doc.
pub fn file_docs() -> Result<Vec<String>> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "examples"] {
        let d = root().join(dir);
        if d.exists() {
            rust_files(&d, &mut files)?;
        }
    }
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a `//!` doc saying what the file is for",
                f.strip_prefix(root()).unwrap_or(&f).display()
            ));
        }
    }
    Ok(problems)
}

/// Library crates warn on missing docs and forbid unsafe code.
pub fn library_attributes() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root().join("crates"))? {
        let lib = entry?.path().join("src/lib.rs");
        if !lib.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&lib)?;
        for attr in ["#![warn(missing_docs)]", "#![forbid(unsafe_code)]"] {
            if !text.contains(attr) {
                problems.push(format!(
                    "{}: missing {attr}",
                    lib.strip_prefix(root()).unwrap_or(&lib).display()
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
    fn core_has_no_io_dependencies() {
        assert_eq!(core_dependencies().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn core_sources_do_no_io() {
        assert_eq!(core_sources().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn every_file_has_a_doc_and_libraries_have_lint_attributes() {
        assert_eq!(file_docs().unwrap(), Vec::<String>::new());
        assert_eq!(library_attributes().unwrap(), Vec::<String>::new());
    }

    /// The scan must be able to fail: calls are found, comments are not.
    #[test]
    fn source_scan_catches_forbidden_calls() {
        let text = "//! No std::fs here.\nfn f() {\n    let t = std::time::SystemTime::now(); // clock\n    let _ = std::fs::read(\"x\");\n}\n";
        assert_eq!(forbidden_in(text), vec![(3, "SystemTime"), (4, "std::fs")]);
    }
}
