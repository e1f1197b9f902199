//! A setting that parses but cannot be used, and git's rule for branch names.

/// A setting that parses but cannot be used: its key, and what is wrong and what is
/// allowed (the message names the key too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadSetting {
    /// The dotted key, such as `worker.poll`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl BadSetting {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: String) -> BadSetting {
        BadSetting {
            key: key.into(),
            message,
        }
    }
}

/// A short branch name git accepts (`git check-ref-format --branch`, in brief).
pub fn check_branch_name(key: &str, name: &str) -> Result<(), BadSetting> {
    let bad = name.is_empty()
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.contains("/.")
        || name
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
    if bad {
        return Err(BadSetting::new(
            key,
            format!(
                "{key} {name:?} is not a branch name git accepts; use letters, digits, `-`, `_`, `.` and `/` (for example \"orch/integration\")"
            ),
        ));
    }
    Ok(())
}
