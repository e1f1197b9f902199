//! Where the database is ([`Location`]), and a URL with its password hidden.

use std::path::{Path, PathBuf};

use crate::StoreError;

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, created (with its parent directory) if missing.
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// Resolves the `database_url` setting: empty means `<repo>/.orch/orch.db`.
    pub fn from_setting(database_url: &str, repo: &Path) -> Result<Location, StoreError> {
        let url = database_url.trim();
        if url.is_empty() {
            Ok(Location::Sqlite(repo.join(".orch").join("orch.db")))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Ok(Location::Sqlite(PathBuf::from(path)))
        } else {
            Err(StoreError::BadLocation(url.to_owned()))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// Hides the password in a URL, for messages and `orch config show`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        let repo = Path::new("/r");
        assert_eq!(
            Location::from_setting("", repo).unwrap(),
            Location::Sqlite("/r/.orch/orch.db".into())
        );
        assert!(matches!(
            Location::from_setting("postgres://u:p@h/db", repo).unwrap(),
            Location::Postgres(_)
        ));
        let err = Location::from_setting("mysql://x", repo).unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
        assert_eq!(
            Location::Postgres("postgres://orch:secret@localhost/db".into()).to_string(),
            "postgres://orch:***@localhost/db"
        );
    }
}
