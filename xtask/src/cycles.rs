//! Import cycles between the files of a crate. A file depends on the file that
//! *defines* what it names: a name reached through a re-export (`pub use`, a glob, the
//! crate root's index) is followed to its definition, and a parent module and its child
//! count like any two files. So `run/mod.rs` defining a type that `run/attempt.rs`
//! uses, while using `attempt::Attempts`, is a cycle; a `mod.rs` that only declares and
//! re-exports is an index and takes part in none.
//!
//! That strict rule holds for the crates in [`STRICT`]: every one but `orch-engine`,
//! which keeps the rule of a module tree (a file may also use what its ancestors
//! define, and an ancestor what its descendants do) while its crate root still defines
//! the `Engine` that its folders extend.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::tidy::root;

/// One file of a crate, as the check reads it.
struct Module {
    file: PathBuf,
    /// Child modules it declares (`mod x;`).
    children: BTreeSet<String>,
    /// Names of items it defines.
    defines: BTreeSet<String>,
    /// Names a `use` binds here, with the absolute path each stands for.
    binds: BTreeMap<String, Vec<String>>,
    /// Glob imports (`use x::*`), as absolute module paths.
    globs: Vec<Vec<String>>,
    /// Every absolute path its code names (in `use` and in expressions).
    names: Vec<Vec<String>>,
}

/// Crates whose parent and child modules count like any two files.
pub const STRICT: &[&str] = &[
    "orch-core",
    "orch-git",
    "orch-store",
    "orch-validate",
    "orch-web",
    "orch-cli",
    "orch-testkit",
];

/// No crate under `crates/` has files that import each other in a circle.
pub fn import_cycles() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root().join("crates"))? {
        let dir = entry?.path();
        let src = dir.join("src");
        let strict = dir
            .file_name()
            .is_some_and(|n| STRICT.iter().any(|s| n == *s));
        if src.is_dir() {
            problems.extend(cycles_in(&src, strict)?);
        }
    }
    Ok(problems)
}

/// The cycles among the files under `src`, one problem per knot of files; unless
/// `strict`, an edge between a module and its ancestor is not counted.
pub fn cycles_in(src: &Path, strict: bool) -> Result<Vec<String>> {
    let mut files = Vec::new();
    crate::tidy::rust_files(src, &mut files)?;
    let mut paths = Vec::new();
    for f in &files {
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
        paths.push(path);
    }
    let mut mods = BTreeMap::new();
    for (f, path) in files.iter().zip(&paths) {
        let text = std::fs::read_to_string(f)?;
        mods.insert(path.clone(), read_module(f, path, &text));
    }
    let mut edges = edges(&mods);
    if !strict {
        for (me, targets) in &mut edges {
            targets.retain(|t| !me.starts_with(t) && !t.starts_with(me));
        }
    }
    let mut problems = Vec::new();
    for knot in knots(&edges) {
        let cycle = find_cycle(&edges, &knot[0], &knot).expect("a knot holds a cycle");
        let name = |m: &Vec<String>| {
            let f = &mods[m].file;
            f.strip_prefix(root()).unwrap_or(f).display().to_string()
        };
        let mut line = cycle.iter().map(name).collect::<Vec<_>>().join(" -> ");
        line.push_str(&format!(" -> {}", name(&cycle[0])));
        if knot.len() > cycle.len() {
            let all: Vec<String> = knot.iter().map(name).collect();
            line.push_str(&format!(
                "; {} files in the knot in all: {}",
                knot.len(),
                all.join(", ")
            ));
        }
        problems.push(format!("files import each other in a circle: {line}"));
    }
    Ok(problems)
}

/// What one file declares, defines, binds and names. Its inline `#[cfg(test)]` module
/// is left out: tests may reach anywhere.
fn read_module(file: &Path, me: &[String], text: &str) -> Module {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod ") && n.ends_with('{'))
        {
            break;
        }
        code.push_str(line.split("//").next().unwrap_or(""));
        code.push('\n');
    }
    let mut m = Module {
        file: file.to_path_buf(),
        children: BTreeSet::new(),
        defines: BTreeSet::new(),
        binds: BTreeMap::new(),
        globs: Vec::new(),
        names: Vec::new(),
    };
    for line in code.lines() {
        let words: Vec<&str> = line
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!'))
            .filter(|w| !w.is_empty())
            .collect();
        let item = words
            .iter()
            .position(|w| !matches!(*w, "pub" | "crate" | "super" | "in" | "self"))
            .and_then(|i| Some((words[i], *words.get(i + 1)?)));
        if let Some((kind, name)) = item {
            let kind = if kind == "unsafe" || kind == "async" || kind == "const" && name == "fn" {
                name
            } else {
                kind
            };
            if matches!(
                kind,
                "struct" | "enum" | "fn" | "trait" | "type" | "const" | "static" | "union" | "mod"
            ) || kind == "macro_rules!"
            {
                m.defines.insert(name.to_owned());
                if kind == "mod" && line.trim_end().ends_with(';') {
                    m.children.insert(name.to_owned());
                }
            }
        }
    }
    let mut rest = code.as_str();
    let mut outside_use = String::new();
    while let Some(i) = find_use(rest) {
        outside_use.push_str(&rest[..i]);
        let body_start = i + rest[i..].find("use ").expect("found") + 4;
        let end = body_start + rest[body_start..].find(';').unwrap_or(0);
        for (path, bound) in expand(rest[body_start..end].trim()) {
            let Some(abs) = absolute(&path, me, &m.children) else {
                continue;
            };
            if bound == "*" {
                m.globs.push(abs.clone());
            } else if bound != "self" {
                m.binds.insert(bound, abs.clone());
            }
            m.names.push(abs);
        }
        rest = &rest[end + 1..];
    }
    outside_use.push_str(rest);
    for path in code_paths(&outside_use) {
        if let Some(abs) = absolute(&path, me, &m.children) {
            m.names.push(abs);
        }
    }
    m
}

/// Where the next `use` statement starts (at a line's start, after any `pub(...)`).
fn find_use(text: &str) -> Option<usize> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let t = t.strip_prefix("pub").map_or(t, |r| {
            let r = r.trim_start();
            if r.starts_with('(') {
                r.split_once(')').map_or(r, |(_, b)| b).trim_start()
            } else {
                r
            }
        });
        if t.starts_with("use ") {
            return Some(at);
        }
        at += line.len();
    }
    None
}

/// A use tree, flattened: each leaf's path and the name it binds (`*` for a glob).
fn expand(tree: &str) -> Vec<(Vec<String>, String)> {
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    expand_into(&tree, &[], &mut out);
    out
}

fn expand_into(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let base: Vec<String> = prefix.iter().cloned().chain(head).collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut from) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_into(&inner[from..i], &base, out);
                    from = i + 1;
                }
                _ => {}
            }
        }
        if from < inner.len() {
            expand_into(&inner[from..], &base, out);
        }
        return;
    }
    let tree = tree.trim();
    if tree.is_empty() {
        // After a trailing comma.
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p, Some(a.trim())),
        None => (tree, None),
    };
    let mut full: Vec<String> = prefix.to_vec();
    full.extend(
        path.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    let Some(last) = full.last().cloned() else {
        return;
    };
    if last == "*" {
        full.pop();
        out.push((full, "*".into()));
    } else if last == "self" {
        full.pop();
        let bound = alias
            .map(str::to_owned)
            .or_else(|| full.last().cloned())
            .unwrap_or_default();
        out.push((full, bound));
    } else {
        let bound = alias.map_or(last, str::to_owned);
        out.push((full, bound));
    }
}

/// The `a::b::c` paths an expression text names, from their first segment.
fn code_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) || (i > 0 && (is_word(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (is_word(bytes[j]) || bytes[j] == b':') {
            j += 1;
        }
        let token = &text[i..j];
        if token.contains("::") {
            out.push(
                token
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        i = j;
    }
    out
}

/// A path as written in module `me`, from the crate root; `None` for another crate's.
fn absolute(path: &[String], me: &[String], children: &BTreeSet<String>) -> Option<Vec<String>> {
    let first = path.first()?;
    let (mut base, mut rest) = match first.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (me.to_vec(), &path[1..]),
        "super" => (me.to_vec(), path),
        name if children.contains(name) => (me.to_vec(), path),
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop()?;
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The file whose module defines what `path` names, following re-exports, and
/// whether it was found defined there (else it is the nearest module on the path).
fn definer(
    mods: &BTreeMap<Vec<String>, Module>,
    path: &[String],
    depth: u32,
) -> Option<(Vec<String>, bool)> {
    let at = (0..=path.len())
        .rev()
        .find(|n| mods.contains_key(&path[..*n]))?;
    let module = path[..at].to_vec();
    let Some(name) = path.get(at) else {
        return Some((module, true));
    };
    let m = &mods[&module];
    if m.defines.contains(name) || depth > 8 {
        return Some((module, true));
    }
    if let Some(target) = m.binds.get(name) {
        let mut next = target.clone();
        next.extend(path[at + 1..].iter().cloned());
        if let Some(found) = definer(mods, &next, depth + 1) {
            return Some(found);
        }
    }
    for glob in &m.globs {
        let mut next = glob.clone();
        next.extend(path[at..].iter().cloned());
        if let Some(found @ (_, true)) = definer(mods, &next, depth + 1) {
            return Some(found);
        }
    }
    Some((module, false))
}

/// Which file depends on which.
fn edges(mods: &BTreeMap<Vec<String>, Module>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (me, m) in mods {
        for name in &m.names {
            if let Some((target, _)) = definer(mods, name, 0)
                && target != *me
            {
                edges.entry(me.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// The strongly connected sets of more than one file, each sorted.
fn knots(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::from([from.clone()]);
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in edges.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        edges.keys().map(|k| (k, reach(k))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for (node, from_node) in &reaches {
        if done.contains(*node) {
            continue;
        }
        let knot: Vec<Vec<String>> = from_node
            .iter()
            .filter(|other| reaches.get(other).is_some_and(|r| r.contains(*node)))
            .cloned()
            .collect();
        done.extend(knot.iter().cloned());
        if knot.len() > 1 {
            out.push(knot);
        }
    }
    out
}

/// A shortest cycle through `start` inside `knot`.
fn find_cycle(
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    start: &Vec<String>,
    knot: &[Vec<String>],
) -> Option<Vec<Vec<String>>> {
    let mut queue = std::collections::VecDeque::from([vec![start.clone()]]);
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        let node = path.last().expect("never empty");
        for next in edges.get(node).into_iter().flatten() {
            if next == start {
                return Some(path);
            }
            if knot.contains(next) && seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                queue.push_back(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_files_import_each_other_in_a_circle() {
        assert_eq!(import_cycles().unwrap(), Vec::<String>::new());
    }

    fn crate_of(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    /// Two siblings, a parent and its child, and a cycle through the crate root's
    /// re-export are all caught; an index that only re-exports is not a cycle.
    #[test]
    fn cycles_through_siblings_parents_and_re_exports_are_caught() {
        let siblings = crate_of(&[
            ("lib.rs", "//! r\nmod a;\nmod b;\n"),
            ("a.rs", "//! a\nuse crate::b::B;\npub struct A;\n"),
            ("b.rs", "//! b\nuse super::a::A;\npub struct B;\n"),
        ]);
        assert_eq!(cycles_in(siblings.path(), false).unwrap().len(), 1);
        let parent = crate_of(&[
            ("lib.rs", "//! r\nmod run;\n"),
            (
                "run/mod.rs",
                "//! run\nmod attempt;\nuse attempt::Attempts;\npub struct Orchestrator { a: Attempts }\n",
            ),
            (
                "run/attempt.rs",
                "//! a\npub struct Attempts;\nimpl super::Orchestrator {}\n",
            ),
        ]);
        assert_eq!(
            cycles_in(parent.path(), false).unwrap(),
            Vec::<String>::new(),
            "a module tree's rule allows it"
        );
        let c = cycles_in(parent.path(), true).unwrap();
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(
            c[0].contains("run/mod.rs") && c[0].contains("run/attempt.rs"),
            "{c:?}"
        );
        let through_root = crate_of(&[
            (
                "lib.rs",
                "//! r\nmod a;\nmod b;\npub use a::A;\npub use b::*;\n",
            ),
            ("a.rs", "//! a\nuse crate::B;\npub struct A;\n"),
            ("b.rs", "//! b\npub struct B(crate::A);\n"),
        ]);
        let c = cycles_in(through_root.path(), true).unwrap();
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(!c[0].contains("lib.rs"), "the index is not in it: {c:?}");
        let index = crate_of(&[
            (
                "lib.rs",
                "//! r\nmod run;\npub use run::{Orchestrator, Attempts};\n",
            ),
            (
                "run/mod.rs",
                "//! run\nmod attempt;\nmod machine;\npub use attempt::Attempts;\npub use machine::Orchestrator;\n",
            ),
            ("run/attempt.rs", "//! a\npub struct Attempts;\n"),
            (
                "run/machine.rs",
                "//! m\nuse super::Attempts;\npub struct Orchestrator(Attempts);\n",
            ),
        ]);
        assert_eq!(cycles_in(index.path(), true).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn use_trees_flatten() {
        let got = expand("super::{a::{B, C as D,}, self, e::*, }");
        let want: Vec<(Vec<String>, String)> = vec![
            (vec!["super".into(), "a".into(), "B".into()], "B".into()),
            (vec!["super".into(), "a".into(), "C".into()], "D".into()),
            (vec!["super".into()], "super".into()),
            (vec!["super".into(), "e".into()], "*".into()),
        ];
        assert_eq!(got, want);
    }
}
