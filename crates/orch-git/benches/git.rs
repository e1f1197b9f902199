//! orch-git against the git CLI on a generated repository of 20,000 files: adding a
//! worktree, switching the integration worktree between commits that differ in 10
//! files, the in-memory merge, and the ref update. Report the ratios from one run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario reads top to bottom; the cap is for src/"
)]

use orch_testkit::git;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use orch_core::config::MergeStyle;
use orch_core::ports::MergeOutcome;
use orch_core::run::CommitId;
use orch_git::Git;

const FILES: usize = 20_000;

fn commit(dir: &Path, msg: &str) -> CommitId {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    CommitId(git(dir, &["rev-parse", "HEAD"]))
}

struct Setup {
    _tmp: tempfile::TempDir,
    repo: std::path::PathBuf,
    root: std::path::PathBuf,
    base: CommitId,
    /// Differs from `base` in 10 files.
    ten: CommitId,
    /// Two sides to merge, touching different files.
    ours: CommitId,
    theirs: CommitId,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    for i in 0..FILES {
        let p = repo.join(format!("d{:03}/f{i:05}.txt", i % 200));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("file {i}\n")).unwrap();
    }
    git(&repo, &["init", "-q", "-b", "main"]);
    let base = commit(&repo, "base");
    let edit = |n: usize, tag: &str| {
        for i in 0..n {
            std::fs::write(
                repo.join(format!("d{:03}/f{i:05}.txt", i % 200)),
                format!("{tag} {i}\n"),
            )
            .unwrap();
        }
    };
    edit(10, "ten");
    let ten = commit(&repo, "ten");
    git(&repo, &["checkout", "-q", "-b", "ours", &base.0]);
    std::fs::write(repo.join("d000/ours.txt"), "ours\n").unwrap();
    let ours = commit(&repo, "ours");
    git(&repo, &["checkout", "-q", "-b", "theirs", &base.0]);
    std::fs::write(repo.join("d199/theirs.txt"), "theirs\n").unwrap();
    let theirs = commit(&repo, "theirs");
    git(&repo, &["checkout", "-q", "main"]);
    let root = tmp.path().join("wt");
    Setup {
        _tmp: tmp,
        repo,
        root,
        base,
        ten,
        ours,
        theirs,
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let g = Git::open(&s.repo).unwrap();
    let mut group = c.benchmark_group("git 20k files");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));

    let mut n = 0u64;
    group.bench_function("worktree add: orch (gix)", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let path = s.root.join(format!("o{n}"));
                let start = Instant::now();
                g.add_worktree(&format!("bench/o{n}"), &s.base, &path)
                    .unwrap();
                t += start.elapsed();
                g.remove_worktree(&path, true).unwrap();
            }
            t
        })
    });
    group.bench_function("worktree add: git CLI", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let path = s.root.join(format!("c{n}"));
                let start = Instant::now();
                git(
                    &s.repo,
                    &[
                        "worktree",
                        "add",
                        "-q",
                        "-b",
                        &format!("bench/c{n}"),
                        path.to_str().unwrap(),
                        &s.base.0,
                    ],
                );
                t += start.elapsed();
                git(
                    &s.repo,
                    &["worktree", "remove", "--force", path.to_str().unwrap()],
                );
            }
            t
        })
    });

    let wt = s.root.join("integration");
    g.checkout_detached(&wt, &s.base).unwrap();
    let mut flip = false;
    group.bench_function("switch 10 files: orch", |b| {
        b.iter(|| {
            flip = !flip;
            g.checkout_detached(&wt, if flip { &s.ten } else { &s.base })
                .unwrap();
        })
    });
    group.bench_function("switch 10 files: git checkout --detach", |b| {
        b.iter(|| {
            flip = !flip;
            git(
                &wt,
                &[
                    "checkout",
                    "-q",
                    "--detach",
                    if flip { &s.ten.0 } else { &s.base.0 },
                ],
            );
        })
    });

    group.bench_function("merge in memory: orch (gix)", |b| {
        b.iter(|| {
            let out = g.merge(&s.ours, &s.theirs, MergeStyle::Merge, "m").unwrap();
            assert!(matches!(out, MergeOutcome::Clean { .. }));
        })
    });
    group.bench_function("merge in memory: git merge-tree + commit-tree", |b| {
        b.iter(|| {
            let tree = git(
                &s.repo,
                &["merge-tree", "--write-tree", &s.ours.0, &s.theirs.0],
            );
            git(
                &s.repo,
                &[
                    "commit-tree",
                    &tree,
                    "-p",
                    &s.ours.0,
                    "-p",
                    &s.theirs.0,
                    "-m",
                    "m",
                ],
            );
        })
    });

    g.create_branch("bench/integration", &s.base).unwrap();
    let mut at = s.base.clone();
    group.bench_function("ref update (CAS): orch (gix)", |b| {
        b.iter(|| {
            let next = if at == s.base {
                s.ten.clone()
            } else {
                s.base.clone()
            };
            g.advance_ref("refs/heads/bench/integration", &at, &next)
                .unwrap();
            at = next;
        })
    });
    group.bench_function("ref update (CAS): git update-ref", |b| {
        b.iter(|| {
            let next = if at == s.base {
                s.ten.clone()
            } else {
                s.base.clone()
            };
            git(
                &s.repo,
                &["update-ref", "refs/heads/bench/integration", &next.0, &at.0],
            );
            at = next;
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
