//! The presets against the agent CLIs as installed from their registries (`.ci/run`
//! installs pinned versions): `orch agents check` runs each one's `--version` and
//! `--help` (and subcommand help) and finds every flag its preset uses. Outside CI, a
//! CLI that is not installed is skipped with a note.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

#[test]
fn every_installed_preset_cli_accepts_the_flags_its_preset_uses() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (preset, bin) in [
        ("claude", "claude"),
        ("codex", "codex"),
        ("gemini", "gemini"),
        ("opencode", "opencode"),
        ("aider", "aider"),
    ] {
        if !on_path(bin) {
            // aider is a Python package; CI installs only the npm CLIs.
            assert!(
                std::env::var_os("CI").is_none() || bin == "aider",
                "CI must install {bin} (see .ci/run)"
            );
            eprintln!("skipped: {bin} is not installed");
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_orch"))
            .args(["--json", "agents", "check", preset])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .output()
            .unwrap();
        let checks: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let c = &checks[0];
        assert_eq!(c["preset"], preset);
        assert_eq!(c["missing_flags"], serde_json::json!([]), "{c}");
        assert!(c["version"].as_str().is_some(), "{c}");
        // No credential in this environment: the check says so, and how to fix it.
        if c["credential"].is_null() {
            assert_eq!(out.status.code(), Some(1), "{c}");
            assert!(
                c["problems"][0]
                    .as_str()
                    .unwrap()
                    .contains("agent.env_extra"),
                "{c}"
            );
        }
        checked += 1;
    }
    eprintln!("{checked} agent CLIs checked");
}
