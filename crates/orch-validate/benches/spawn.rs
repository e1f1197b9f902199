//! The runner's overhead: spawning and collecting `true` through `orch_validate::run`
//! (process group, filtered environment, log file, pipes) against
//! `std::process::Command::output()`. Report the ratio of the two from one run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use orch_validate::{CancellationToken, CommandSpec, Environment, Program, run};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = CommandSpec {
        program: Program::Argv(vec!["true".into()]),
        cwd: dir.path().to_path_buf(),
        env: Environment::inherit(&["PATH".to_string()], vec![]),
        timeout: Duration::from_secs(10),
        kill_grace: Duration::from_secs(1),
        log_path: dir.path().join("true.log"),
        log_cap: 1 << 20,
        stdin: None,
        capture_stdout: None,
        hard_kill: None,
        log_frame: false,
    };
    let cancel = CancellationToken::new();
    let mut g = c.benchmark_group("spawn true");
    g.bench_function("std::process::Command::output", |b| {
        b.iter(|| {
            let o = std::process::Command::new("true").output().unwrap();
            assert!(o.status.success());
        })
    });
    g.bench_function("orch_validate::run", |b| {
        b.iter(|| {
            let r = rt.block_on(run(&spec, &cancel, None)).unwrap();
            assert!(r.outcome.success());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
