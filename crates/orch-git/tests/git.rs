//! The git adapter against real repositories in temp dirs. Every merge is checked
//! against `git merge-tree --write-tree`, and every test checks that the user's
//! checkout (files, index, HEAD, status) is byte for byte what it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orch_testkit::{git, git_cmd};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_core::config::{MergeStyle, Offline};
use orch_core::ports::MergeOutcome;
use orch_core::run::CommitId;
use orch_git::{Expect, Git, GitError};

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn commit_all(dir: &Path, msg: &str) -> CommitId {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", msg]);
    CommitId(git(dir, &["rev-parse", "HEAD"]))
}

/// A repository with a few files, plus a worktree root beside it.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        write(&repo, "README.md", "hello\n");
        write(&repo, "src/lib.rs", "pub fn a() {}\n");
        write(&repo, ".gitignore", "target/\n");
        commit_all(&repo, "init");
        // The user's own uncommitted work, which orch must never touch.
        write(&repo, "README.md", "hello, edited by the user\n");
        write(&repo, "notes.txt", "user's untracked notes\n");
        Fixture { tmp }
    }
    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }
    fn wt(&self, name: &str) -> PathBuf {
        self.tmp.path().join("worktrees").join(name)
    }
    fn git(&self) -> Git {
        Git::open(&self.repo()).unwrap()
    }
    fn head(&self) -> CommitId {
        CommitId(git(&self.repo(), &["rev-parse", "HEAD"]))
    }
}

/// Everything about the user's checkout that orch must leave alone.
fn snapshot(repo: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, m: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if rel == ".git" {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, m);
            } else {
                m.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    walk(repo, repo, &mut m);
    m.insert(
        "<index>".into(),
        std::fs::read(repo.join(".git/index")).unwrap(),
    );
    m.insert(
        "<HEAD>".into(),
        std::fs::read(repo.join(".git/HEAD")).unwrap(),
    );
    m.insert(
        "<status>".into(),
        git(repo, &["status", "--porcelain"]).into_bytes(),
    );
    m
}

/// Runs `f` and checks the user's checkout is unchanged by it.
fn untouched<T>(fx: &Fixture, f: impl FnOnce() -> T) -> T {
    let before = snapshot(&fx.repo());
    let r = f();
    assert_eq!(snapshot(&fx.repo()), before, "the user's checkout changed");
    r
}

/// `git merge-tree --write-tree`: (clean, tree, conflicted paths).
fn merge_tree(repo: &Path, ours: &CommitId, theirs: &CommitId) -> (bool, String, BTreeSet<String>) {
    let o = git_cmd()
        .arg("-C")
        .arg(repo)
        .args([
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            &ours.0,
            &theirs.0,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    let mut lines = out.lines();
    let tree = lines.next().unwrap_or("").to_owned();
    let paths = lines.filter(|l| !l.is_empty()).map(String::from).collect();
    (o.status.code() == Some(0), tree, paths)
}

/// Merges with orch and checks the result against git's own merge-tree; a merge told
/// the merge base (`merge_from`, the engine's) gives the same.
fn merge_checked(fx: &Fixture, ours: &CommitId, theirs: &CommitId) -> MergeOutcome {
    let out = untouched(fx, || {
        fx.git()
            .merge(ours, theirs, MergeStyle::Merge, "merge")
            .unwrap()
    });
    let base = CommitId(git(&fx.repo(), &["merge-base", &ours.0, &theirs.0]));
    let told = fx
        .git()
        .merge_from(&base, ours, theirs, MergeStyle::Merge, "merge")
        .unwrap();
    let tree = |c: &CommitId| git(&fx.repo(), &["rev-parse", &format!("{}^{{tree}}", c.0)]);
    match (&out, &told) {
        (MergeOutcome::Clean { commit: a }, MergeOutcome::Clean { commit: b }) => {
            assert_eq!(tree(a), tree(b), "merge_from's tree differs");
        }
        (MergeOutcome::Conflicted { conflicts: a }, MergeOutcome::Conflicted { conflicts: b }) => {
            assert_eq!(a, b, "merge_from's conflicts differ");
        }
        (a, b) => panic!("merge gave {a:?}, merge_from {b:?}"),
    }
    let (clean, tree, paths) = merge_tree(&fx.repo(), ours, theirs);
    match &out {
        MergeOutcome::Clean { commit } => {
            assert!(
                clean,
                "orch merged cleanly, git found conflicts in {paths:?}"
            );
            assert_eq!(
                git(
                    &fx.repo(),
                    &["rev-parse", &format!("{}^{{tree}}", commit.0)]
                ),
                tree,
                "trees differ"
            );
            let parents = git(&fx.repo(), &["rev-list", "--parents", "-n1", &commit.0]);
            assert_eq!(parents, format!("{} {} {}", commit.0, ours.0, theirs.0));
        }
        MergeOutcome::Conflicted { conflicts } => {
            assert!(
                !clean,
                "orch found conflicts {conflicts:?}, git merged cleanly"
            );
            let ours: BTreeSet<String> = conflicts.iter().map(|c| c.path.clone()).collect();
            assert_eq!(ours, paths, "conflict paths differ");
        }
    }
    out
}

/// Two branches from the initial commit, each changed by `a` and `b`.
fn diverge(fx: &Fixture, a: impl Fn(&Path), b: impl Fn(&Path)) -> (CommitId, CommitId) {
    let scratch = fx.tmp.path().join(format!("scratch-{}", rand_suffix()));
    git(
        &fx.repo(),
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            scratch.to_str().unwrap(),
            "HEAD",
        ],
    );
    a(&scratch);
    let ours = commit_all(&scratch, "ours");
    git(&scratch, &["checkout", "-q", "--detach", "HEAD~1"]);
    b(&scratch);
    let theirs = commit_all(&scratch, "theirs");
    git(
        &fx.repo(),
        &["worktree", "remove", "--force", scratch.to_str().unwrap()],
    );
    (ours, theirs)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn merges_agree_with_git_merge_tree() {
    let fx = Fixture::new();
    // Different files: clean.
    let (o, t) = diverge(
        &fx,
        |d| write(d, "a.txt", "a\n"),
        |d| write(d, "b.txt", "b\n"),
    );
    assert!(matches!(
        merge_checked(&fx, &o, &t),
        MergeOutcome::Clean { .. }
    ));
    // Same line changed: a content conflict, reported as an Ok resolution by gix.
    let (o, t) = diverge(
        &fx,
        |d| write(d, "src/lib.rs", "pub fn a() { 1 }\n"),
        |d| write(d, "src/lib.rs", "pub fn a() { 2 }\n"),
    );
    match merge_checked(&fx, &o, &t) {
        MergeOutcome::Conflicted { conflicts } => {
            assert_eq!(conflicts.len(), 1);
            assert_eq!(
                (conflicts[0].path.as_str(), conflicts[0].kind.as_str()),
                ("src/lib.rs", "content")
            );
        }
        other => panic!("{other:?}"),
    }
    // add/add with different contents.
    let (o, t) = diverge(
        &fx,
        |d| write(d, "new.txt", "one\n"),
        |d| write(d, "new.txt", "two\n"),
    );
    assert!(matches!(
        merge_checked(&fx, &o, &t),
        MergeOutcome::Conflicted { .. }
    ));
    // delete/modify.
    let (o, t) = diverge(
        &fx,
        |d| std::fs::remove_file(d.join("src/lib.rs")).unwrap(),
        |d| write(d, "src/lib.rs", "pub fn b() {}\n"),
    );
    assert!(matches!(
        merge_checked(&fx, &o, &t),
        MergeOutcome::Conflicted { .. }
    ));
    // A rename on one side and an edit on the other merge cleanly.
    let big = "line\n".repeat(40);
    let (base_fx, _) = (Fixture::new(), ());
    write(&base_fx.repo(), "doc.txt", &big);
    git(&base_fx.repo(), &["add", "doc.txt"]);
    git(&base_fx.repo(), &["commit", "-q", "-m", "doc"]);
    let (o, t) = diverge(
        &base_fx,
        |d| git(d, &["mv", "doc.txt", "moved.txt"]).truncate(0),
        |d| write(d, "doc.txt", &format!("{big}one more\n")),
    );
    assert!(matches!(
        merge_checked(&base_fx, &o, &t),
        MergeOutcome::Clean { .. }
    ));
    // Binary files changed on both sides conflict.
    let (o, t) = diverge(
        &fx,
        |d| std::fs::write(d.join("blob.bin"), [0u8, 1, 2, 255]).unwrap(),
        |d| std::fs::write(d.join("blob.bin"), [0u8, 9, 9, 255]).unwrap(),
    );
    assert!(matches!(
        merge_checked(&fx, &o, &t),
        MergeOutcome::Conflicted { .. }
    ));
}

#[test]
fn squash_merges_have_one_parent_and_the_same_tree() {
    let fx = Fixture::new();
    let (o, t) = diverge(
        &fx,
        |d| write(d, "a.txt", "a\n"),
        |d| write(d, "b.txt", "b\n"),
    );
    let MergeOutcome::Clean { commit } = untouched(&fx, || {
        fx.git()
            .merge(&o, &t, MergeStyle::Squash, "squash")
            .unwrap()
    }) else {
        panic!()
    };
    assert_eq!(
        git(&fx.repo(), &["rev-list", "--parents", "-n1", &commit.0]),
        format!("{} {}", commit.0, o.0)
    );
    let (_, tree, _) = merge_tree(&fx.repo(), &o, &t);
    assert_eq!(
        git(
            &fx.repo(),
            &["rev-parse", &format!("{}^{{tree}}", commit.0)]
        ),
        tree
    );
}

#[test]
fn compare_and_swap_ref_updates() {
    let fx = Fixture::new();
    let g = fx.git();
    let base = fx.head();
    let (a, b) = diverge(
        &fx,
        |d| write(d, "a.txt", "a\n"),
        |d| write(d, "b.txt", "b\n"),
    );
    g.create_branch("orch/r1/integration", &base).unwrap();
    untouched(&fx, || {
        g.advance_ref("refs/heads/orch/r1/integration", &base, &a)
            .unwrap()
    });
    assert_eq!(
        g.ref_target("refs/heads/orch/r1/integration").unwrap(),
        Some(a.clone())
    );
    // Someone else moved it: orch's expected value is stale.
    match g.advance_ref("refs/heads/orch/r1/integration", &base, &b) {
        Err(GitError::LostRace {
            actual, expected, ..
        }) => {
            assert_eq!((actual, expected), (Some(a.clone()), base.clone()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        g.ref_target("refs/heads/orch/r1/integration").unwrap(),
        Some(a)
    );
    assert!(matches!(
        g.create_branch("orch/r1/integration", &base),
        Err(GitError::BranchExists(_))
    ));
    // A branch checked out in any worktree never moves under it: the user's main
    // checkout, or a linked worktree someone made of the line.
    let main = fx.head();
    let refused = untouched(&fx, || g.advance_ref("refs/heads/main", &main, &b));
    match refused {
        Err(GitError::BranchCheckedOut { branch, worktree }) => {
            assert_eq!(branch, "main");
            assert_eq!(
                worktree.canonicalize().unwrap(),
                fx.repo().canonicalize().unwrap()
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(g.ref_target("refs/heads/main").unwrap(), Some(main));
    let other = fx.wt("looking-at-the-line");
    git(
        &fx.repo(),
        &[
            "worktree",
            "add",
            "-q",
            other.to_str().unwrap(),
            "orch/r1/integration",
        ],
    );
    let at = g
        .ref_target("refs/heads/orch/r1/integration")
        .unwrap()
        .unwrap();
    assert!(matches!(
        g.advance_ref("refs/heads/orch/r1/integration", &at, &b),
        Err(GitError::BranchCheckedOut { worktree, .. }) if worktree.ends_with("looking-at-the-line")
    ));
    assert_eq!(g.checkout_of("refs/heads/orch/r1/other"), None);
}

/// A lock a killed update left on the line (another run on it was killed mid-update)
/// is removed and the update goes on; a lock some process holds open stays, and the
/// update fails without moving the ref.
#[test]
fn a_lock_left_on_the_line_by_a_killed_update_is_cleared_and_a_held_one_is_not() {
    let fx = Fixture::new();
    let g = fx.git();
    let base = fx.head();
    let (a, _) = diverge(
        &fx,
        |d| write(d, "a.txt", "a\n"),
        |d| write(d, "b.txt", "b\n"),
    );
    let line = "refs/heads/orch/integration";
    g.create_branch("orch/integration", &base).unwrap();
    let lock = g.common_dir().join(format!("{line}.lock"));
    let held = std::fs::File::create(&lock).unwrap();
    let refused = g.advance_ref(line, &base, &a);
    assert!(refused.is_err(), "{refused:?}");
    assert!(lock.exists(), "a lock held open is in use");
    assert_eq!(g.ref_target(line).unwrap(), Some(base.clone()));
    // Its holder is gone without removing it.
    drop(held);
    untouched(&fx, || g.advance_ref(line, &base, &a).unwrap());
    assert!(!lock.exists());
    assert_eq!(g.ref_target(line).unwrap(), Some(a));
}

#[test]
fn base_ref_policy_with_a_remote_and_offline() {
    let fx = Fixture::new();
    let remote = fx.tmp.path().join("remote.git");
    git(
        fx.tmp.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    git(
        &fx.repo(),
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&fx.repo(), &["push", "-q", "origin", "main"]);
    let g = fx.git();
    // Never fetched, and the remote is gone: nothing cached.
    // First, a normal fetch picks up a commit pushed by someone else.
    let other = fx.tmp.path().join("other");
    git(
        fx.tmp.path(),
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    write(&other, "theirs.txt", "pushed elsewhere\n");
    let pushed = commit_all(&other, "pushed");
    git(&other, &["push", "-q", "origin", "main"]);
    let r = untouched(&fx, || {
        g.resolve_base("origin/main", Offline::Fail, Duration::from_secs(20))
            .unwrap()
    });
    assert_eq!(
        (r.commit, r.fetched, r.warning),
        (pushed.clone(), true, None)
    );
    assert_eq!(r.source, "refs/remotes/origin/main");
    // Offline: the remote disappears.
    std::fs::rename(&remote, fx.tmp.path().join("gone.git")).unwrap();
    let cached = g
        .resolve_base("origin/main", Offline::UseCached, Duration::from_secs(20))
        .unwrap();
    assert_eq!((cached.commit, cached.fetched), (pushed, false));
    assert!(
        cached
            .warning
            .unwrap()
            .contains("using the cached refs/remotes/origin/main")
    );
    match g.resolve_base("origin/main", Offline::Fail, Duration::from_secs(20)) {
        Err(e @ GitError::Fetch { .. }) => assert!(e.to_string().contains("use-cached"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        g.resolve_base(
            "origin/never-fetched",
            Offline::UseCached,
            Duration::from_secs(20)
        ),
        Err(GitError::NothingCached { .. })
    ));
    // Local forms.
    let head = fx.head();
    git(&fx.repo(), &["tag", "v1"]);
    for rev in ["HEAD", "main", "v1", head.0.as_str()] {
        assert_eq!(
            g.resolve_base(rev, Offline::Fail, Duration::from_secs(1))
                .unwrap()
                .commit,
            head,
            "{rev}"
        );
    }
    let err = g
        .resolve_base("no-such-branch", Offline::Fail, Duration::from_secs(1))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected HEAD, a branch, a tag, a commit, or origin/<branch>"),
        "{err}"
    );
}

#[test]
fn worktrees_for_attempts_and_their_leftovers() {
    let fx = Fixture::new();
    // orch commits as the repository's user, never as the caller's GIT_AUTHOR_*.
    git(&fx.repo(), &["config", "user.name", "Ada Lovelace"]);
    git(&fx.repo(), &["config", "user.email", "ada@example.com"]);
    let g = fx.git();
    let base = fx.head();
    let wt = fx.wt("task-1-1");
    untouched(&fx, || {
        g.add_worktree("orch/r1/task-1-1", &base, &wt).unwrap()
    });
    assert_eq!(
        std::fs::read_to_string(wt.join("README.md")).unwrap(),
        "hello\n"
    );
    assert!(matches!(
        g.add_worktree("orch/r1/task-1-1", &base, &fx.wt("other")),
        Err(GitError::BranchExists(_))
    ));
    // A taken path creates no branch.
    write(&fx.wt("taken"), "x", "x");
    assert!(matches!(
        g.add_worktree("orch/r1/task-2-1", &base, &fx.wt("taken")),
        Err(GitError::PathTaken(_))
    ));
    assert_eq!(g.ref_target("refs/heads/orch/r1/task-2-1").unwrap(), None);

    // Nothing changed: an empty diff.
    let l = untouched(&fx, || {
        g.commit_leftovers(&wt, "orch/r1/task-1-1", &base, "task 1", &[])
            .unwrap()
    });
    assert!(l.empty && !l.committed && l.branch_moved.is_none() && !l.rewrote_history);
    // Tracked edits and new files are committed; ignored files are not.
    write(&wt, "src/lib.rs", "pub fn a() { 42 }\n");
    write(&wt, "src/new.rs", "pub fn n() {}\n");
    write(&wt, "target/debug/junk", "build output\n");
    // An agent's own scratch files (aider's) stay out of the commit.
    write(&wt, ".aider.chat.history.md", "# chat\n");
    write(&wt, ".aider.tags.cache.v4/cache.db", "tags\n");
    let l = untouched(&fx, || {
        g.commit_leftovers(
            &wt,
            "orch/r1/task-1-1",
            &base,
            "task 1",
            &[".aider*".into()],
        )
        .unwrap()
    });
    assert!(!l.empty && l.committed);
    let files = git(&wt, &["show", "--name-only", "--format=", &l.head.0]);
    assert_eq!(files, "src/lib.rs\nsrc/new.rs");
    assert_eq!(
        git(&wt, &["log", "-1", "--format=%an <%ae> %cn <%ce>"]),
        "Ada Lovelace <ada@example.com> Ada Lovelace <ada@example.com>"
    );
    // An agent that rewrote history below the base.
    git(&wt, &["reset", "-q", "--hard", &base.0]);
    git(&wt, &["commit", "-q", "--amend", "-m", "rewritten"]);
    let l = g
        .commit_leftovers(&wt, "orch/r1/task-1-1", &base, "task 1", &[])
        .unwrap();
    assert!(l.rewrote_history);
    // An agent that switched branches.
    git(&wt, &["checkout", "-q", "-b", "elsewhere"]);
    let l = g
        .commit_leftovers(&wt, "orch/r1/task-1-1", &base, "task 1", &[])
        .unwrap();
    assert_eq!(l.branch_moved.as_deref(), Some("refs/heads/elsewhere"));
    git(&wt, &["checkout", "-q", "--detach"]);
    let l = g
        .commit_leftovers(&wt, "orch/r1/task-1-1", &base, "task 1", &[])
        .unwrap();
    assert_eq!(l.branch_moved.as_deref(), Some("a detached HEAD"));
}

/// Objects in packs, as `git count-objects -v` counts them.
fn in_pack(repo: &Path) -> u64 {
    let counts = git(repo, &["count-objects", "-v"]);
    let line = counts.lines().find(|l| l.starts_with("in-pack:")).unwrap();
    line["in-pack:".len()..].trim().parse().unwrap()
}

/// orch's own commits start none of git's automatic maintenance (a process each);
/// `maintain`, once per run, does it as the repository's thresholds say.
#[test]
fn commits_start_no_maintenance_and_maintain_packs_once() {
    let fx = Fixture::new();
    let repo = fx.repo();
    // Any loose object is one too many: a commit that started git's automatic
    // maintenance would pack them at once.
    for (k, v) in [
        ("maintenance.gc.enabled", "false"),
        ("maintenance.loose-objects.enabled", "true"),
        ("maintenance.loose-objects.auto", "1"),
    ] {
        git(&repo, &["config", k, v]);
    }
    let g = fx.git();
    let base = fx.head();
    let wt = fx.wt("task-1-1");
    g.add_worktree("orch/r1/task-1-1", &base, &wt).unwrap();
    for i in 0..3 {
        write(&wt, &format!("f{i}.txt"), &format!("{i}\n"));
        let l = g
            .commit_leftovers(&wt, "orch/r1/task-1-1", &base, "task 1", &[])
            .unwrap();
        assert!(l.committed && !l.rewrote_history);
    }
    assert_eq!(in_pack(&repo), 0);
    g.maintain().unwrap();
    assert!(in_pack(&repo) > 0);
}

#[test]
fn the_integration_worktree_switches_touching_only_what_differs() {
    let fx = Fixture::new();
    let g = fx.git();
    let base = fx.head();
    let (a, _) = diverge(
        &fx,
        |d| write(d, "src/lib.rs", "pub fn a() { 7 }\n"),
        |_| {},
    );
    let wt = fx.wt("integration");
    untouched(&fx, || g.checkout_detached(&wt, &base).unwrap());
    let readme_before = std::fs::metadata(wt.join("README.md"))
        .unwrap()
        .modified()
        .unwrap();
    write(&wt, "target/cache", "kept\n");
    write(&wt, "stray.txt", "left by a test\n");
    std::thread::sleep(Duration::from_millis(20));
    untouched(&fx, || g.checkout_detached(&wt, &a).unwrap());
    assert_eq!(
        std::fs::read_to_string(wt.join("src/lib.rs")).unwrap(),
        "pub fn a() { 7 }\n"
    );
    assert_eq!(
        std::fs::metadata(wt.join("README.md"))
            .unwrap()
            .modified()
            .unwrap(),
        readme_before,
        "an unchanged file was rewritten"
    );
    assert!(
        wt.join("target/cache").exists(),
        "ignored build caches are kept"
    );
    assert!(
        !wt.join("stray.txt").exists(),
        "untracked leftovers are removed"
    );
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), a.0);
}

#[test]
fn a_pooled_worktree_switches_branches_keeping_only_what_the_rules_keep() {
    use orch_core::pool::CacheRules;
    let fx = Fixture::new();
    let g = fx.git();
    let base = fx.head();
    let wt = fx.wt("pool/attempt-0");
    untouched(&fx, || {
        g.add_worktree("orch/r1/task-1-1", &base, &wt).unwrap()
    });
    // What attempt 1 leaves: a commit, build caches, an ignored scratch file, an
    // untracked file and a change to a tracked one.
    write(&wt, "one.txt", "attempt 1\n");
    let one = commit_all(&wt, "attempt 1");
    write(&wt, "target/debug/app", "binary\n");
    write(&wt, "target/debug/incremental/x", "stale\n");
    write(&wt, "target/tmp.log", "log\n");
    write(&wt, "stray.txt", "left over\n");
    write(&wt, "README.md", "changed\n");
    let readme_mtime = || {
        std::fs::metadata(wt.join("src/lib.rs"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = readme_mtime();
    std::thread::sleep(Duration::from_millis(20));
    untouched(&fx, || g.detach_worktree(&wt).unwrap());
    // Detached where the branch was, as git itself reads it.
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), one.0);
    assert_eq!(
        git(&wt, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "HEAD",
        "HEAD names no branch"
    );
    // Its branch is free to go while the worktree waits in the pool.
    g.delete_branch("orch/r1/task-1-1", true).unwrap();
    let rules = CacheRules {
        keep: vec!["target/debug/".into()],
        scrub: vec!["target/debug/incremental".into()],
    };
    untouched(&fx, || {
        g.switch_worktree(&wt, "orch/r1/task-2-1", &base, &rules)
            .unwrap()
    });
    assert_eq!(
        git(&wt, &["symbolic-ref", "HEAD"]),
        "refs/heads/orch/r1/task-2-1"
    );
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), base.0);
    assert_ne!(one, base);
    assert!(
        !wt.join("one.txt").exists(),
        "attempt 1's committed file is gone"
    );
    assert!(!wt.join("stray.txt").exists(), "untracked leftovers go");
    assert_eq!(
        std::fs::read_to_string(wt.join("README.md")).unwrap(),
        "hello\n"
    );
    assert!(wt.join("target/debug/app").exists(), "kept caches stay");
    assert!(
        !wt.join("target/debug/incremental").exists(),
        "scrubbed caches go"
    );
    assert!(
        !wt.join("target/tmp.log").exists(),
        "ignored files not kept go"
    );
    assert_eq!(readme_mtime(), before, "an unchanged file was rewritten");
    // The branch exists now: a second switch onto it is refused, and nothing moves.
    g.detach_worktree(&wt).unwrap();
    let again = g.switch_worktree(&wt, "orch/r1/task-2-1", &base, &rules);
    assert!(matches!(again, Err(GitError::BranchExists(_))), "{again:?}");
    // A worktree that is gone is not a worktree.
    let gone = fx.wt("pool/attempt-9");
    assert!(matches!(
        g.switch_worktree(&gone, "orch/r1/task-3-1", &base, &rules),
        Err(GitError::WorktreeBroken { .. })
    ));
    assert!(
        g.ref_target("refs/heads/orch/r1/task-3-1")
            .unwrap()
            .is_none()
    );
    // An agent pointed the worktree's .git at the user's repository: nothing of orch's
    // runs git there (no commit, no switch, no scrub, no detach), and the user's HEAD,
    // index and files stay as they were; removal takes the directory only.
    write(&wt, "left.txt", "the agent's\n");
    let users = fx.repo().join(".git");
    std::fs::write(wt.join(".git"), format!("gitdir: {}\n", users.display())).unwrap();
    untouched(&fx, || {
        let commit = g.commit_leftovers(&wt, "orch/r1/task-1-1", &base, "m", &[]);
        assert!(
            matches!(&commit, Err(GitError::WorktreeBroken { why, .. }) if why.contains("not at one of the repository's worktrees")),
            "{commit:?}"
        );
        let switch = g.switch_worktree(&wt, "orch/r1/task-4-1", &base, &rules);
        assert!(
            matches!(switch, Err(GitError::WorktreeBroken { .. })),
            "{switch:?}"
        );
        assert!(g.scrub(&wt, &rules).is_err());
        assert!(g.detach_worktree(&wt).is_err());
        g.remove_worktree(&wt, true).unwrap();
    });
    assert!(!wt.exists());
    assert!(fx.repo().join(".git/HEAD").exists());
}

#[test]
fn removal_inventory_and_orphans() {
    let fx = Fixture::new();
    let g = fx.git();
    let base = fx.head();
    g.create_branch("orch/r1/integration", &base).unwrap();
    for n in 1..=4 {
        g.add_worktree(
            &format!("orch/r1/task-{n}-1"),
            &base,
            &fx.wt(&format!("t{n}")),
        )
        .unwrap();
    }
    // t1: merged by squash into the integration branch.
    write(&fx.wt("t1"), "one.txt", "1\n");
    let l1 = g
        .commit_leftovers(&fx.wt("t1"), "orch/r1/task-1-1", &base, "one", &[])
        .unwrap();
    let MergeOutcome::Clean { commit } = g
        .merge(&base, &l1.head, MergeStyle::Squash, "squash")
        .unwrap()
    else {
        panic!()
    };
    g.advance_ref("refs/heads/orch/r1/integration", &base, &commit)
        .unwrap();
    // t2: work that is in no integration branch.
    write(&fx.wt("t2"), "two.txt", "2\n");
    g.commit_leftovers(&fx.wt("t2"), "orch/r1/task-2-1", &base, "two", &[])
        .unwrap();
    // t3: dirty. t4: its directory deleted by hand.
    write(&fx.wt("t3"), "dirty.txt", "uncommitted\n");
    std::fs::remove_dir_all(fx.wt("t4")).unwrap();

    let inv = untouched(&fx, || g.inventory().unwrap());
    let wt = |n: &str| {
        inv.worktrees
            .iter()
            .find(|w| w.path.ends_with(n))
            .unwrap()
            .clone()
    };
    assert_eq!(wt("t3").dirty, Some(true));
    assert_eq!(wt("t1").dirty, Some(false));
    assert!(wt("t4").prunable && wt("t4").dirty.is_none());
    assert_eq!(wt("t2").branch.as_deref(), Some("orch/r1/task-2-1"));
    let br = |n: &str| inv.branches.iter().find(|b| b.name == n).unwrap().clone();
    assert!(
        br("orch/r1/task-1-1").merged,
        "a squash-merged branch counts as merged"
    );
    assert!(!br("orch/r1/task-2-1").merged);
    assert!(
        br("orch/r1/task-3-1").merged,
        "a branch with no new commits is contained"
    );

    // A branch checked out in a worktree cannot be deleted.
    assert!(matches!(
        g.delete_branch("orch/r1/task-2-1", true),
        Err(GitError::BranchCheckedOut { .. })
    ));
    // A dirty worktree is not removed without force.
    assert!(matches!(
        g.remove_worktree(&fx.wt("t3"), false),
        Err(GitError::Dirty(_))
    ));

    // Orphans, with task 1's attempt still live.
    let live_b: BTreeSet<String> = [
        "orch/r1/integration".to_string(),
        "orch/r1/task-1-1".to_string(),
    ]
    .into();
    let live_w: BTreeSet<PathBuf> = [fx.wt("t1")].into();
    let report = untouched(&fx, || {
        g.remove_orphans(&live_b, &live_w, |_| false).unwrap()
    });
    assert!(
        report.removed_worktrees.contains(&fx.wt("t2"))
            && report.removed_worktrees.contains(&fx.wt("t4"))
    );
    assert!(
        report
            .kept
            .iter()
            .any(|(what, why)| what.ends_with("t3") && why.contains("uncommitted"))
    );
    assert!(
        report
            .kept
            .iter()
            .any(|(what, why)| what == "orch/r1/task-2-1" && why.contains("no integration branch"))
    );
    assert!(
        report
            .deleted_branches
            .contains(&"orch/r1/task-4-1".to_string())
    );
    // Forced: everything not live goes.
    let report = untouched(&fx, || {
        g.remove_orphans(&live_b, &live_w, |_| true).unwrap()
    });
    assert!(report.kept.is_empty(), "{report:?}");
    let left = g.inventory().unwrap();
    assert_eq!(left.worktrees.len(), 1);
    let names: Vec<_> = left.branches.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, vec!["orch/r1/integration", "orch/r1/task-1-1"]);
    assert!(git(&fx.repo(), &["worktree", "list"]).lines().count() == 2);
}

#[test]
fn the_worktree_root_is_outside_the_repository_and_stable() {
    let a = orch_git::default_worktree_root(Path::new("/home/u/src/my repo")).unwrap();
    let b = orch_git::default_worktree_root(Path::new("/home/u/src/my repo")).unwrap();
    let c = orch_git::default_worktree_root(Path::new("/home/u/other/my repo")).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(
        a.to_string_lossy().contains("orch/worktrees/my_repo-"),
        "{}",
        a.display()
    );
    assert!(!a.starts_with("/home/u/src/my repo"));
}

#[test]
fn after_a_crash_stale_locks_and_half_added_worktrees_go_and_nothing_else() {
    let fx = Fixture::new();
    let g = fx.git();
    let base = fx.head();
    let wt = fx.wt("r1/task-1-1");
    g.add_worktree("orch/r1/task-1-1", &base, &wt).unwrap();
    let gitdir = fx.repo().join(".git");
    let ref_lock = gitdir.join("refs/heads/orch/r1/integration.lock");
    let wt_admin = gitdir.join("worktrees/task-1-1");
    assert!(wt_admin.is_dir());
    let index_lock = wt_admin.join("index.lock");
    // The line the run lands on (shared with other runs, but a lock left older than
    // min_age is no live update's).
    let line_lock = gitdir.join("refs/heads/orch/integration.lock");
    // Someone else's locks: another run's ref, and the user's own index.
    std::fs::create_dir_all(gitdir.join("refs/heads/orch/r2")).unwrap();
    let other_run = gitdir.join("refs/heads/orch/r2/integration.lock");
    let user_index = gitdir.join("index.lock");
    for p in [&ref_lock, &line_lock, &index_lock, &other_run, &user_index] {
        std::fs::write(p, "").unwrap();
    }
    let run_refs = ["orch/r1/", "orch/integration"];
    let removed = g.clear_stale_locks(&run_refs, std::slice::from_ref(&wt), Duration::ZERO);
    assert_eq!(
        removed.iter().collect::<BTreeSet<_>>(),
        [&ref_lock, &line_lock, &index_lock]
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    assert!(other_run.exists() && user_index.exists());
    std::fs::remove_file(&user_index).unwrap();
    // A lock younger than min_age is waited for and then removed only if still there.
    std::fs::write(&ref_lock, "").unwrap();
    let removed = g.clear_stale_locks(&run_refs, &[], Duration::from_millis(200));
    assert_eq!(removed, vec![ref_lock.clone()]);

    // A worktree add killed midway: locked "initializing", half checked out.
    std::fs::write(wt_admin.join("locked"), "initializing\n").unwrap();
    std::fs::remove_file(wt.join("README.md")).unwrap();
    untouched(&fx, || g.remove_worktree(&wt, false).unwrap());
    assert!(!wt.exists() && !wt_admin.exists());
    // A lock with any other reason is someone's decision: it stays.
    let wt2 = fx.wt("r1/task-2-1");
    g.add_worktree("orch/r1/task-2-1", &base, &wt2).unwrap();
    std::fs::write(gitdir.join("worktrees/task-2-1/locked"), "on a USB disk\n").unwrap();
    assert!(g.remove_worktree(&wt2, true).is_err());
    assert!(wt2.exists());
}

/// A pinned merge candidate survives `git gc --prune=now`; an unpinned one is pruned,
/// and the integration ref is never advanced to a commit that is gone.
#[test]
fn a_pinned_merge_survives_gc_and_a_pruned_one_is_never_advanced_to() {
    let fx = Fixture::new();
    let g = fx.git();
    let base = fx.head();
    let (a, b) = diverge(
        &fx,
        |d| write(d, "a.txt", "a\n"),
        |d| write(d, "b.txt", "b\n"),
    );
    let merged = |message: &str| match g.merge(&a, &b, MergeStyle::Merge, message).unwrap() {
        MergeOutcome::Clean { commit } => commit,
        other => panic!("{other:?}"),
    };
    let pinned = merged("pinned");
    let pin = "refs/orch/r1/candidates/task-1-1";
    g.pin(pin, &pinned).unwrap();
    let loose = merged("not pinned");
    git(&fx.repo(), &["gc", "--quiet", "--prune=now"]);
    g.create_branch("orch/r1/integration", &base).unwrap();
    let integration = "refs/heads/orch/r1/integration";
    match g.advance_ref(integration, &base, &loose) {
        Err(GitError::MissingCommit(c)) => assert_eq!(c, loose),
        other => panic!("advanced to a pruned commit: {other:?}"),
    }
    assert_eq!(g.ref_target(integration).unwrap(), Some(base.clone()));
    g.advance_ref(integration, &base, &pinned).unwrap();
    g.unpin(pin).unwrap();
    assert_eq!(g.ref_target(pin).unwrap(), None);
    git(&fx.repo(), &["fsck", "--no-progress"]);
}

#[test]
fn pushes_to_a_shared_remote_are_compare_and_swap() {
    let f = Fixture::new();
    let remote = f.tmp.path().join("remote.git");
    git(
        f.tmp.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    git(
        &f.repo(),
        &["remote", "add", "shared", remote.to_str().unwrap()],
    );
    let g = f.git();
    let (a, r) = (f.head(), "refs/heads/orch/line");
    assert_eq!(g.remote_ref("shared", r).unwrap(), None);
    g.push_ref("shared", &a, r, &Expect::Absent).unwrap();
    assert_eq!(g.remote_ref("shared", r).unwrap(), Some(a.clone()));
    // Pushing it again changes nothing; expecting it absent, or somewhere else, is
    // refused and moves nothing.
    g.push_ref("shared", &a, r, &Expect::Absent).unwrap();
    let b = commit_all(&f.repo(), "b");
    let again = g.push_ref("shared", &b, r, &Expect::Absent);
    assert!(
        matches!(again, Err(GitError::PushRefused { .. })),
        "{again:?}"
    );
    let wrong = g.push_ref("shared", &b, r, &Expect::At(b.clone()));
    assert!(
        matches!(wrong, Err(GitError::PushRefused { .. })),
        "{wrong:?}"
    );
    assert_eq!(g.remote_ref("shared", r).unwrap(), Some(a.clone()));
    g.push_ref("shared", &b, r, &Expect::At(a.clone())).unwrap();
    // Another clone fetches it, and works on from it.
    let other = f.tmp.path().join("other");
    git(
        f.tmp.path(),
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    let o = Git::open(&other).unwrap();
    o.fetch_refs("origin", &[format!("+{r}:refs/heads/orch/line")])
        .unwrap();
    assert_eq!(o.ref_target(r).unwrap(), Some(b.clone()));
    g.push_ref("shared", &a, r, &Expect::Any).unwrap();
    assert_eq!(g.remote_ref("shared", r).unwrap(), Some(a));
    g.delete_remote_ref("shared", r).unwrap();
    g.delete_remote_ref("shared", r).unwrap();
    assert_eq!(g.remote_ref("shared", r).unwrap(), None);
}
