//! A unified diff as HTML: one foldable section per file with its added and removed
//! line counts, lines coloured by kind, and a notice where a large diff was cut. Every
//! line is escaped. For review, each line of the new side carries its number, a link
//! a reviewer clicks to comment on it.

use std::fmt::Write as _;

use crate::html::esc;

/// What git appends to a diff it cut at its cap (`Git::diff`).
const CUT: &str = "[the diff goes on; cut here]";

/// One file's part of a diff.
struct File<'a> {
    path: String,
    lines: Vec<&'a str>,
    added: usize,
    removed: usize,
}

/// `diff` (git's `--stat --patch` output) as HTML.
pub(crate) fn diff_html(diff: &str) -> String {
    render(diff, false)
}

/// `diff` as HTML with each new-side line numbered by a link (`a.ln`, its
/// `data-at` the `path:line` a comment on it names).
pub(crate) fn diff_html_numbered(diff: &str) -> String {
    render(diff, true)
}

fn render(diff: &str, numbered: bool) -> String {
    let cut = diff.contains(CUT);
    let mut files: Vec<File> = Vec::new();
    for line in diff.lines().filter(|l| *l != CUT) {
        if let Some(paths) = line.strip_prefix("diff --git ") {
            files.push(File {
                path: path_of(paths),
                lines: Vec::new(),
                added: 0,
                removed: 0,
            });
            continue;
        }
        // The stat before the first file is the summary this view replaces.
        let Some(f) = files.last_mut() else { continue };
        if line.starts_with('+') && !line.starts_with("+++") {
            f.added += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            f.removed += 1;
        }
        f.lines.push(line);
    }
    if files.is_empty() {
        return "<p class=\"meta\">No change.</p>".to_owned();
    }
    let (added, removed) = files
        .iter()
        .fold((0, 0), |(a, r), f| (a + f.added, r + f.removed));
    let mut out = format!(
        "<div class=\"diff\"><p class=\"meta\">{} file{} changed, <span class=\"add\">+{added}</span> <span class=\"del\">&minus;{removed}</span></p>",
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    );
    for f in &files {
        let _ = write!(
            out,
            "<details class=\"file\" open><summary><code>{}</code> <span class=\"add\">+{}</span> <span class=\"del\">&minus;{}</span></summary><pre>",
            esc(&f.path),
            f.added,
            f.removed
        );
        let path = f.path.rsplit(" → ").next().unwrap_or(&f.path);
        let mut next: Option<u32> = None;
        for l in f.lines.iter().filter(|l| !is_header(l)) {
            let class = match l.as_bytes().first() {
                Some(b'+') => "add",
                Some(b'-') => "del",
                Some(b'@') => "hunk",
                _ => "ctx",
            };
            let number = match class {
                "hunk" => {
                    next = new_start(l);
                    None
                }
                "del" => None,
                _ => next.inspect(|_| next = next.map(|n| n + 1)),
            };
            let ln = match (numbered, number) {
                (false, _) => String::new(),
                (true, None) => "<a class=\"ln\"></a>".to_owned(),
                (true, Some(n)) => format!(
                    "<a class=\"ln\" href=\"#comments\" data-at=\"{}:{n}\" title=\"comment on this line\">{n}</a>",
                    esc(path)
                ),
            };
            // Each line a block of its own (its colour spans the width): no newline
            // between them, which a <pre> would show as an empty line.
            let _ = write!(out, "<span class=\"{class}\">{ln}{}</span>", esc(l));
        }
        out.push_str("</pre></details>");
    }
    if cut {
        out.push_str(
            "<p class=\"notice\">This diff is large: it is cut here. <code>git diff</code> on the attempt's branch shows all of it.</p>",
        );
    }
    out.push_str("</div>");
    out
}

/// The first new-side line of a hunk: `@@ -a,b +c,d @@` gives `c`.
fn new_start(hunk: &str) -> Option<u32> {
    let plus = hunk.split_whitespace().find(|w| w.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok()
}

/// A file's header lines, which its summary says already.
fn is_header(l: &str) -> bool {
    [
        "index ",
        "--- ",
        "+++ ",
        "new file mode",
        "deleted file mode",
        "similarity",
        "rename ",
    ]
    .iter()
    .any(|p| l.starts_with(p))
}

/// `a/x b/y` → `y` (or `x → y` for a rename).
fn path_of(paths: &str) -> String {
    match paths.split_once(" b/") {
        Some((a, b)) => {
            let a = a.strip_prefix("a/").unwrap_or(a);
            if a == b {
                b.to_owned()
            } else {
                format!("{a} → {b}")
            }
        }
        None => paths.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_fold_with_their_counts_and_lines_are_escaped() {
        let diff = " a.txt | 2 +-\n 1 file changed\n\ndiff --git a/a.txt b/a.txt\nindex 1..2 100644\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-<old>\n+<new>\n ctx\ndiff --git a/b.rs b/b.rs\nnew file mode 100644\n--- /dev/null\n+++ b/b.rs\n@@ -0,0 +1 @@\n+fn main() {}\n";
        let html = diff_html(diff);
        assert!(
            html.contains(
                "2 files changed, <span class=\"add\">+2</span> <span class=\"del\">&minus;1</span>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<code>a.txt</code> <span class=\"add\">+1</span>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"del\">-&lt;old&gt;</span>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"add\">+&lt;new&gt;</span>"),
            "{html}"
        );
        assert!(!html.contains("index 1..2"), "{html}");
        assert!(!html.contains("is large"), "{html}");
        let cut = diff_html(&format!("{diff}\n{CUT}\n"));
        assert!(cut.contains("This diff is large"), "{cut}");
        assert_eq!(diff_html(""), "<p class=\"meta\">No change.</p>");
        let numbered = diff_html_numbered(
            "diff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -3,2 +7,3 @@ fn x\n ctx\n-old\n+new\n+more\n",
        );
        for (at, n) in [("a.rs:7", 7), ("a.rs:8", 8), ("a.rs:9", 9)] {
            assert!(
                numbered.contains(&format!(
                    "data-at=\"{at}\" title=\"comment on this line\">{n}</a>"
                )),
                "{numbered}"
            );
        }
        assert!(
            numbered.contains("<span class=\"del\"><a class=\"ln\"></a>-old</span>"),
            "{numbered}"
        );
    }
}
