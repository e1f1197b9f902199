//! A repository's configuration: figment layers with provenance.
//!
//! Layers, lowest first: built-in defaults, the user file
//! (`$XDG_CONFIG_HOME/orch/config.toml`, else `~/.config/orch/config.toml`), the repo
//! file `<repo>/orch.toml`, `ORCH_*` environment variables (`ORCH_AGENT__TIMEOUT=5s`
//! sets `agent.timeout`), and `-c KEY=VALUE` flags.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;
use figment::{Figment, Metadata, Profile};
use orch_core::config::Config;

/// A configuration orch cannot use, naming the file, variable or flag that set it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A `KEY=VALUE` override that is not one.
    #[error("-c {0:?}: expected KEY=VALUE, such as -c run.concurrency=8")]
    NotKeyValue(String),
    /// An override of a key outside the schema.
    #[error("-c {key}: unknown key; the top-level keys are {}", TOP_LEVEL.join(", "))]
    UnknownKey {
        /// The key as given.
        key: String,
    },
    /// A layer that does not parse or fit the schema.
    #[error("invalid configuration: {rendered}")]
    Invalid {
        /// Each problem, as `WHERE: KEY: WHAT`.
        rendered: String,
        /// What figment found, every problem; `rendered` says all of it, so it is not
        /// chained as a source (the CLI would print it twice).
        figment: Box<figment::Error>,
    },
    /// A value that parses but is out of range.
    #[error("invalid configuration: {source_of}: {problem}")]
    OutOfRange {
        /// The file, variable or flag that set it.
        source_of: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

/// The top-level keys of the schema; environment variables outside them (such as
/// `ORCH_TEST_DATABASE_URL` or an agent's `ORCH_RUN_ID`) are not config.
const TOP_LEVEL: &[&str] = &[
    "database_url",
    "run",
    "agent",
    "validate",
    "policy",
    "worktrees",
    "artifacts",
    "budget",
    "notify",
    "worker",
];

/// The merged configuration and the layers it came from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The typed result.
    pub config: Config,
    figment: Figment,
}

/// The user-level config file.
pub fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("orch").join("config.toml"))
}

/// Loads and checks the configuration for `repo`.
pub fn load(repo: &Path, overrides: &[String]) -> Result<Settings, ConfigError> {
    load_with(repo, None, overrides)
}

/// [`load`], with `repo_text` standing in for `orch.toml`'s contents when given (a
/// change checked before it is written); errors still name `orch.toml`.
pub(super) fn load_with(
    repo: &Path,
    repo_text: Option<&str>,
    overrides: &[String],
) -> Result<Settings, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(user) = user_file() {
        figment = figment.merge(Toml::file_exact(&user).nested_if_exists(&user));
    }
    let repo_file = repo.join("orch.toml");
    figment = match repo_text {
        Some(text) => figment.merge(Toml::string(text)),
        None => figment.merge(Toml::file_exact(&repo_file).nested_if_exists(&repo_file)),
    };
    figment = figment.merge(
        Env::prefixed("ORCH_")
            .split("__")
            // The filter sees the split key before it is lowercased: `AGENT.TIMEOUT`.
            .filter(|k| {
                let first = k.as_str().split('.').next().unwrap_or("");
                TOP_LEVEL.iter().any(|t| t.eq_ignore_ascii_case(first))
            }),
    );
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .ok_or_else(|| ConfigError::NotKeyValue(o.clone()))?;
        let key = key.trim();
        if !TOP_LEVEL.contains(&key.split('.').next().unwrap_or("")) {
            return Err(ConfigError::UnknownKey { key: key.into() });
        }
        figment = figment.merge(CliOverride {
            key: key.to_owned(),
            value: parse_value(raw, is_list(key)),
        });
    }
    let mut config: Config = figment.extract().map_err(|e| ConfigError::Invalid {
        rendered: render_errors(e.clone())
            .replace("TOML source string", &repo_file.display().to_string()),
        figment: Box::new(e),
    })?;
    if config.validate.slots == 0 {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        config.validate.slots = cores;
        config.validate.slots_ceiling = cores.saturating_mul(SLOTS_PER_CORE);
    }
    if config.validate.integration_slots == 0 {
        config.validate.integration_slots = config
            .validate
            .slots
            .max(config.validate.slots_ceiling)
            .min(orch_core::config::MAX_INTEGRATION_DEPTH);
    }
    let loaded = Settings { config, figment };
    loaded.check()?;
    Ok(loaded)
}

/// How many gate slots per core there may be while the CPU idles, when
/// `validate.slots` is left to the machine.
const SLOTS_PER_CORE: u32 = 4;

/// One `-c KEY=VALUE` flag as a figment layer, so provenance names the command line.
struct CliOverride {
    key: String,
    value: Value,
}

impl figment::Provider for CliOverride {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("command line (-c {})", self.key))
    }

    fn data(&self) -> Result<figment::value::Map<Profile, figment::value::Dict>, figment::Error> {
        Serialized::default(&self.key, &self.value).data()
    }
}

/// Whether the schema's `key` takes a list.
pub(super) fn is_list(key: &str) -> bool {
    Figment::from(Serialized::defaults(Config::default()))
        .find_value(key)
        .is_ok_and(|v| matches!(v, Value::Array(..)))
}

/// Reads a `-c` value as TOML (`8`, `true`, `["a"]`), falling back to a plain string;
/// for a list key, a plain `a,b,c` is the list of its parts.
fn parse_value(raw: &str, list: bool) -> Value {
    if list && !raw.trim_start().starts_with('[') {
        let items: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        return Value::serialize(items).expect("a list of strings serialises");
    }
    let wrapped = format!("v = {raw}");
    toml::from_str::<toml::Table>(&wrapped)
        .ok()
        .and_then(|t| t.get("v").cloned())
        .and_then(|v| Value::serialize(v).ok())
        .unwrap_or_else(|| Value::from(raw.to_owned()))
}

fn render_errors(e: figment::Error) -> String {
    let all: Vec<String> = e.into_iter().map(|e| render_error(&e)).collect();
    all.join("; ")
}

/// `WHERE: KEY: WHAT`, where WHERE is the file or environment variable that set the key.
fn render_error(e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = e.path.join(".");
    let place = match e.metadata.as_ref().map(|md| (md, &md.source)) {
        Some((_, Some(figment::Source::File(p)))) => p.display().to_string(),
        Some((_, Some(figment::Source::Code(_)))) => "built-in defaults".to_owned(),
        Some((md, _)) if md.name.contains("environment") => {
            format!(
                "environment variable ORCH_{}",
                e.path.join("__").to_uppercase()
            )
        }
        Some((md, _)) => md.name.to_string(),
        None => "configuration".to_owned(),
    };
    let what = match &e.kind {
        Kind::UnknownVariant(found, allowed) => format!(
            "{found:?} is not allowed; expected one of: {}",
            allowed
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::UnknownField(found, allowed) => format!(
            "unknown key {found:?}; the keys allowed here are: {}",
            allowed.join(", ")
        ),
        Kind::InvalidValue(actual, expected) | Kind::InvalidType(actual, expected) => {
            let expected = expected.replace("a nonzero u32", "a whole number of at least 1");
            format!("invalid value {actual}: expected {expected}")
        }
        other => other.to_string(),
    };
    if key.is_empty() {
        format!("{place}: {what}")
    } else {
        format!("{place}: {key}: {what}")
    }
}

/// `Toml::file_exact` errors on a missing file; only use it when the file exists.
trait NestedIfExists {
    fn nested_if_exists(self, path: &Path) -> Figment;
}

impl NestedIfExists for figment::providers::Data<Toml> {
    fn nested_if_exists(self, path: &Path) -> Figment {
        if path.exists() {
            Figment::from(self)
        } else {
            Figment::new()
        }
    }
}

/// One leaf value with where it came from.
#[derive(Debug, serde::Serialize)]
pub struct Entry {
    /// Dotted key, e.g. `run.concurrency`.
    pub key: String,
    /// The merged value.
    pub value: serde_json::Value,
    /// `default`, a file path, an environment variable, or the command line.
    pub source: String,
}

impl Settings {
    /// Every leaf of the merged configuration, in schema order, with its source.
    pub fn entries(&self) -> Vec<Entry> {
        let value =
            serde_json::to_value(&self.config).expect("the configuration serialises to JSON");
        let mut out = Vec::new();
        flatten("", &value, &mut out);
        out.into_iter()
            .map(|(key, value)| {
                let source = self.source_of(&key);
                Entry { key, value, source }
            })
            .collect()
    }

    /// The values that parse but are out of range (durations, ports), named with the
    /// file or variable they came from.
    fn check(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if let Err(bad) = c.check_durations().and_then(|()| c.check_ports()) {
            return Err(ConfigError::OutOfRange {
                source_of: self.source_of(&bad.key),
                problem: bad.message,
            });
        }
        Ok(())
    }

    fn source_of(&self, key: &str) -> String {
        let resolved = matches!(key, "validate.integration_slots" | "validate.slots")
            && self.figment.find_value(key).ok().and_then(|v| v.to_u128()) == Some(0);
        match (resolved, key) {
            (true, "validate.slots") if self.config.validate.slots_ceiling > 0 => {
                return format!(
                    "default: this machine's cores, up to {} while its CPU idles",
                    self.config.validate.slots_ceiling
                );
            }
            (true, "validate.slots") => return "default: this machine's cores".into(),
            (true, _) => return "default: as many as the gate slots may be (up to 16)".into(),
            _ => {}
        }
        let Some(md) = self.figment.find_metadata(key) else {
            return "default".into();
        };
        match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            Some(figment::Source::Code(_)) => "default".into(),
            Some(other) => other.to_string(),
            None if md.name.contains("environment") => {
                format!("env ORCH_{}", key.replace('.', "__").to_uppercase())
            }
            None => md.name.to_string(),
        }
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}
