//! `board::plan_import` of a file whose tasks form one long dependency chain (each
//! after the one before), at 2,000 and 8,000 tasks: with a linear check the time per
//! task stays the same as the chain grows.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orch_core::board::{BoardFile, BoardTask, plan_import};

fn chain(n: usize) -> BoardFile {
    BoardFile {
        tasks: (0..n)
            .map(|i| BoardTask {
                key: format!("t{i}"),
                title: format!("Task {i}"),
                after: if i == 0 {
                    vec![]
                } else {
                    vec![format!("t{}", i - 1)]
                },
                ..BoardTask::default()
            })
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("import");
    g.sample_size(10);
    for n in [2_000, 8_000] {
        let file = chain(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("dependency chain", n), &file, |b, f| {
            b.iter(|| plan_import(f, &[]).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
