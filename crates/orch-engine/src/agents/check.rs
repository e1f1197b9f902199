//! The agent preflight (`orch agents check`, and before a run claims anything): is
//! the preset's CLI on `PATH`, at which version, does that version accept every flag
//! the preset uses (read from its own `--help`), and is a credential there (by name,
//! or a login file; never a value). A failed check says what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orch_validate::{Environment, name_matches};
use serde::Serialize;

use crate::agents::presets::PresetSpec;

/// How long `--version` or `--help` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the preflight found for one preset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentCheck {
    /// The preset, as named in config.
    pub preset: String,
    /// Its program.
    pub binary: String,
    /// Where `PATH` finds it.
    pub path: Option<PathBuf>,
    /// What `--version` says, if it ran.
    pub version: Option<String>,
    /// The versions the preset was checked at.
    pub checked: String,
    /// Flags the preset uses that this version's help does not list.
    pub missing_flags: Vec<String>,
    /// The credential variables (by name) or login file found, if any.
    pub credential: Option<String>,
    /// What is wrong, each with its fix; empty when the agent can run.
    pub problems: Vec<String>,
}

impl AgentCheck {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `spec` as an agent with environment `env` (what the agent would see) and
/// home directory `home` would run it.
pub fn check(spec: &PresetSpec, env: &Environment, home: Option<&Path>) -> AgentCheck {
    let vars = env.resolve();
    let found = on_path(spec.binary, &vars);
    let mut c = AgentCheck {
        preset: spec.preset.to_string(),
        binary: spec.binary.to_owned(),
        path: found.clone(),
        version: None,
        checked: spec.checked.to_owned(),
        missing_flags: Vec::new(),
        credential: None,
        problems: Vec::new(),
    };
    match &found {
        None => c.problems.push(format!(
            "`{}` is not on the PATH orch passes to agents: install it ({}), or put its directory on PATH",
            spec.binary, spec.install
        )),
        Some(bin) => probe(spec, bin, &vars, &mut c),
    }
    c.credential = credential(spec, &vars, home);
    if c.credential.is_none() && !spec.credentials.is_empty() {
        let login = spec
            .login_files
            .first()
            .map(|f| format!(", or log in so that ~/{f} exists"))
            .unwrap_or_default();
        c.problems.push(format!(
            "no credential for {}: set {} in orch's environment{login} (orch passes {} through; add other variables with agent.env_extra)",
            spec.binary,
            spec.credentials.join(" or "),
            spec.env.join(", ")
        ));
    }
    c
}

fn probe(spec: &PresetSpec, bin: &Path, vars: &[(String, String)], c: &mut AgentCheck) {
    match run(bin, &["--version"], vars) {
        Ok(out) => c.version = version_in(&out),
        Err(e) => c
            .problems
            .push(format!("`{} --version` failed: {e}", spec.binary)),
    }
    for (args, flags) in spec.help {
        match run(bin, args, vars) {
            Ok(help) => {
                for f in *flags {
                    if !help.contains(f) {
                        c.missing_flags.push((*f).to_owned());
                    }
                }
            }
            Err(e) => c
                .problems
                .push(format!("`{} {}` failed: {e}", spec.binary, args.join(" "))),
        }
    }
    if !c.missing_flags.is_empty() {
        c.problems.push(format!(
            "{} {} does not accept {} (the preset was checked at {}): upgrade it ({}), or set agent.command",
            spec.binary,
            c.version.as_deref().unwrap_or("(unknown version)"),
            c.missing_flags.join(", "),
            spec.checked,
            spec.install
        ));
    }
}

/// Runs the preset's warm-up once (its CLI's first-use setup), with the agent's
/// environment, so agents started together do not race it.
pub fn warm_up(spec: &PresetSpec, env: &Environment) -> Result<(), String> {
    if spec.warm_up.is_empty() {
        return Ok(());
    }
    let vars = env.resolve();
    let bin =
        on_path(spec.binary, &vars).ok_or_else(|| format!("`{}` is not on PATH", spec.binary))?;
    run(&bin, spec.warm_up, &vars).map(|_| ()).map_err(|e| {
        format!(
            "`{} {}` (its first-use setup) failed: {e}",
            spec.binary,
            spec.warm_up.join(" ")
        )
    })
}

/// Checks a custom agent command (`agent.command`, `--agent-cmd`) as `sh -c` would run
/// it with environment `env`: its program (the first word after any `VAR=value`) is a
/// shell builtin, an executable path, or on `PATH`. Nothing else about it can be known.
pub fn check_command(command: &str, env: &Environment) -> AgentCheck {
    let vars = env.resolve();
    let program = command
        .split_whitespace()
        .find(|w| !w.contains('=') || w.starts_with('='))
        .unwrap_or("")
        .to_owned();
    let mut c = AgentCheck {
        preset: "custom".into(),
        binary: program.clone(),
        path: None,
        version: None,
        checked: String::new(),
        missing_flags: Vec::new(),
        credential: None,
        problems: Vec::new(),
    };
    if program.is_empty() {
        c.problems
            .push("the agent command is empty: give a command run with sh -c".into());
        return c;
    }
    const BUILTINS: &[&str] = &[
        ".", ":", "cd", "echo", "eval", "exec", "exit", "export", "printf", "set", "test", "true",
        "false", "[", "if", "for", "while", "case", "{", "(",
    ];
    if BUILTINS.contains(&program.as_str()) {
        return c;
    }
    c.path = if program.contains('/') {
        Some(PathBuf::from(&program)).filter(|p| p.is_file())
    } else {
        on_path(&program, &vars)
    };
    if c.path.is_none() {
        c.problems.push(format!(
            "`{program}` is not a file, nor on the PATH orch passes to agents: install it, give its full path, or put its directory on PATH"
        ));
    }
    c
}

/// Where the `PATH` among `vars` finds `binary`, as the agent's spawn will.
fn on_path(binary: &str, vars: &[(String, String)]) -> Option<PathBuf> {
    orch_validate::runner::on_path(binary, vars, Path::new(""))
}

/// The first `N.N.N` in `text`.
fn version_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.split('.').filter(|p| !p.is_empty()).count() >= 3)
        .map(str::to_owned)
}

fn credential(spec: &PresetSpec, vars: &[(String, String)], home: Option<&Path>) -> Option<String> {
    let set: Vec<&str> = spec
        .credentials
        .iter()
        .copied()
        .filter(|c| {
            vars.iter()
                .any(|(k, v)| name_matches(c, k) && !v.is_empty())
        })
        .collect();
    if !set.is_empty() {
        return Some(set.join(", "));
    }
    let home = home?;
    spec.login_files
        .iter()
        .find(|f| home.join(f).is_file())
        .map(|f| format!("~/{f}"))
}

/// Runs `bin args` with only `vars`, for its output (stdout and stderr), bounded.
fn run(bin: &Path, args: &[&str], vars: &[(String, String)]) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            return if status.success() || !text.is_empty() {
                Ok(text)
            } else {
                Err(format!("it exited with {status}"))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no answer in {}s", PROBE_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_what_clis_print() {
        assert_eq!(
            version_in("2.1.332 (Claude Code)").as_deref(),
            Some("2.1.332")
        );
        assert_eq!(
            version_in("codex-cli 0.171.0\n").as_deref(),
            Some("0.171.0")
        );
        assert_eq!(version_in("no version"), None);
    }
}
