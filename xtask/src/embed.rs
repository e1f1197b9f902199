//! The embedding example (`crates/orch-engine/examples/embed.rs`) run as an embedder
//! runs it: built with cargo, on a fresh home, its output checked.

use std::process::Command;

use anyhow::{Result, ensure};

use crate::e2e::Sandbox;

/// Runs the example and checks that its events name the tasks and both land.
pub(crate) fn scenario(s: &Sandbox) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "--locked",
            "-p",
            "orch-engine",
            "--example",
            "embed",
        ])
        .current_dir(&root)
        .env("HOME", s.repo().join("../home"))
        .env("XDG_CONFIG_HOME", s.repo().join("../home/.config"))
        .env("XDG_DATA_HOME", s.repo().join("../data"))
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the example failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "#1.1: ",
        "#2.1: ",
        "ended Completed",
        "task #1: done",
        "task #2: done",
    ] {
        ensure!(
            text.contains(want),
            "no {want:?} in the example's output:\n{text}"
        );
    }
    Ok(())
}
