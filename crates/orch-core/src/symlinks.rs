//! Symlinks an attempt commits, judged by `policy.symlinks`. A link whose target
//! leaves the repository (`/etc/passwd`, `../../x`) would reach the integration line,
//! then the user's checkout, where a tool that follows it (a build, a copy of
//! `worktrees.include` into it) reads or writes outside the repository.

use serde::{Deserialize, Serialize};

/// A symlink in a commit: its path in the repository and the target it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symlink {
    /// Its path, relative to the repository's root (`/`-separated).
    pub path: String,
    /// The target it names, as stored.
    pub target: String,
}

impl std::fmt::Display for Symlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.path, self.target)
    }
}

/// Whether `link` points outside the repository: an absolute target, or a relative
/// one that climbs above the root from where the link is (a lexical check: the
/// links it may pass through are themselves checked when committed).
pub fn escapes(link: &Symlink) -> bool {
    if link.target.starts_with('/') || link.target.is_empty() {
        return true;
    }
    let mut depth: i64 = link.path.split('/').filter(|c| !c.is_empty()).count() as i64 - 1;
    for c in link.target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// The links of `links` that `policy.symlinks = "inside"` refuses.
pub fn refused(links: &[Symlink]) -> Vec<&Symlink> {
    links.iter().filter(|l| escapes(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(path: &str, target: &str) -> Symlink {
        Symlink {
            path: path.into(),
            target: target.into(),
        }
    }

    #[test]
    fn targets_outside_the_repository_escape() {
        for (p, t) in [
            ("a", "/etc/passwd"),
            ("a", "../x"),
            ("d/a", "../../x"),
            ("d/a", "./../e/../../x"),
            ("a", ""),
        ] {
            assert!(escapes(&l(p, t)), "{p} -> {t}");
        }
        for (p, t) in [
            ("a", "b"),
            ("d/a", "../b"),
            ("d/e/a", "../../b/c"),
            ("d/a", "./x/../y"),
        ] {
            assert!(!escapes(&l(p, t)), "{p} -> {t}");
        }
    }
}
