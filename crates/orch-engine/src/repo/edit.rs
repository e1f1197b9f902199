//! `orch config set`: one key of a repository's `orch.toml` changed in place, its
//! comments and layout kept, and the whole configuration checked with the change
//! before anything is written.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::settings::{self, ConfigError};
use super::write_atomic;

/// Why a setting could not be changed. Nothing was written then.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// The key is not one of the schema's, or names a whole section.
    #[error("{key}: {why}; `orch config show` lists every key")]
    BadKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// `orch.toml` does not parse as it is.
    #[error("{}: {source}", path.display())]
    Unparsable {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: Box<toml_edit::TomlError>,
    },
    /// The value does not fit the key, or the configuration with it is invalid.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// `orch.toml` could not be read or written.
    #[error("{what} {}", path.display())]
    Io {
        /// Reading or writing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

impl SetError {
    /// Whether the caller can fix it (the key, the value, the file's syntax), rather
    /// than a fault of the machine.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, SetError::Io { .. })
    }
}

/// What a change did to `orch.toml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SetOutcome {
    /// The file written.
    pub path: PathBuf,
    /// The key.
    pub key: String,
    /// Its value in the file before, as TOML; `None` when the file did not set it.
    pub before: Option<String>,
    /// Its value now, as TOML.
    pub after: String,
}

/// Sets `key` to `raw` in `<root>/orch.toml` (created when absent). `raw` is read as
/// TOML (`8`, `true`, `"2m"`, `["a", "b"]`), else as a string; a list key also takes
/// `a,b,c`. The file's other content is kept byte for byte.
pub fn set_setting(root: &Path, key: &str, raw: &str) -> Result<SetOutcome, SetError> {
    let path = root.join("orch.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(SetError::Io {
                what: "reading",
                path,
                source,
            });
        }
    };
    let mut doc: DocumentMut = text.parse().map_err(|e| SetError::Unparsable {
        path: path.clone(),
        source: Box::new(e),
    })?;
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let bad = |why: &str| SetError::BadKey {
        key: key.to_owned(),
        why: why.to_owned(),
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("not a key: use dotted names such as run.concurrency"));
    }
    let (leaf, tables) = parts.split_last().expect("split yields at least one part");
    let mut table: &mut Table = doc.as_table_mut();
    for name in tables {
        let item = table.entry(name).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        table = item
            .as_table_mut()
            .ok_or_else(|| bad(&format!("{name} is a value here, not a section")))?;
    }
    if table.get(leaf).is_some_and(Item::is_table) {
        return Err(bad("a whole section; set one of its keys"));
    }
    let before = table.get(leaf).and_then(Item::as_value).map(bare);
    let value = toml_value(raw, settings::is_list(key));
    let after = bare(&value);
    match table.get_mut(leaf).and_then(Item::as_value_mut) {
        // Keep the comment after the old value.
        Some(old) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(leaf, Item::Value(value));
        }
    }
    let new_text = doc.to_string();
    settings::load_with(root, Some(&new_text), &[]).map_err(|e| named(e, &path))?;
    write_atomic(&path, new_text.as_bytes()).map_err(|source| SetError::Io {
        what: "writing",
        path: path.clone(),
        source,
    })?;
    Ok(SetOutcome {
        path,
        key: key.to_owned(),
        before,
        after,
    })
}

/// A checked candidate's errors name `orch.toml`, not the string it was read from.
fn named(e: ConfigError, path: &Path) -> SetError {
    match e {
        ConfigError::OutOfRange { source_of, problem } => ConfigError::OutOfRange {
            source_of: source_of.replace("TOML source string", &path.display().to_string()),
            problem,
        }
        .into(),
        other => other.into(),
    }
}

/// A value as TOML, without the spaces and comment around it.
fn bare(v: &Value) -> String {
    let mut v = v.clone();
    v.decor_mut().clear();
    v.to_string()
}

/// `raw` as a TOML value, else a string; for a list key, `a,b` is a list of strings.
fn toml_value(raw: &str, list: bool) -> Value {
    if list && !raw.trim_start().starts_with('[') {
        let items: Array = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        return Value::Array(items);
    }
    raw.trim()
        .parse::<Value>()
        .unwrap_or_else(|_| Value::from(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key set twice keeps the file's comments and its other keys byte for byte; a
    /// bad value and an unknown key are refused and change nothing.
    #[test]
    fn a_set_keeps_the_rest_of_the_file_and_refuses_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("orch.toml");
        let original = "# my settings\n[run]\n# how many at once\nconcurrency = 2 # two\nmode = \"parallel\"\n\n[agent]\ncommand = \"true\"\n";
        std::fs::write(&file, original).unwrap();
        let out = set_setting(dir.path(), "run.concurrency", "8").unwrap();
        assert_eq!(out.before.as_deref(), Some("2"));
        assert_eq!(out.after, "8");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text,
            original.replace("concurrency = 2 # two", "concurrency = 8 # two")
        );
        set_setting(dir.path(), "validate.worker", "make test, make lint").unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with(&original.replace("= 2 #", "= 8 #")),
            "{text}"
        );
        assert!(
            text.contains("[validate]\nworker = [\"make test\", \"make lint\"]"),
            "{text}"
        );
        let before = std::fs::read_to_string(&file).unwrap();
        let e = set_setting(dir.path(), "run.concurrency", "0").unwrap_err();
        assert!(e.to_string().contains("run.concurrency"), "{e}");
        assert!(e.to_string().contains("orch.toml"), "{e}");
        let e = set_setting(dir.path(), "run.bogus", "1").unwrap_err();
        assert!(e.to_string().contains("unknown key \"bogus\""), "{e}");
        let e = set_setting(dir.path(), "run", "1").unwrap_err();
        assert!(e.to_string().contains("whole section"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    }
}
