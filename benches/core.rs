//! Detailed benchmarks behind the runtime figures of `examples/perf_report.rs`:
//! exact and prefix lookups over a partition spread across many chunks, a 1,000-record
//! commit that supersedes a previous version, snapshot + point query, concurrent
//! readers at 1, 2, 4 and 8 threads, and filtered scans in each execution mode.
//!
//! `cargo bench --bench core` (criterion; `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use workloads::{MiniLangRecord, SymbolsPartition};

#[path = "workloads.rs"]
mod workloads;

const FILES: usize = 10_000;

fn lookups(c: &mut Criterion) {
    let corpus = workloads::corpus(FILES);
    let db = workloads::load(&corpus);
    let btree = workloads::symbols_btree(&corpus);
    let keys = workloads::lookup_keys(&corpus, 4096);
    let prefixes = workloads::lookup_prefixes(&corpus, 4096);
    let snapshot = db.snapshot();

    let mut group = c.benchmark_group("lookup_exact_10k_chunks");
    let mut at = 0;
    group.bench_function("chunkdb", |b| {
        b.iter(|| {
            at = (at + 1) % keys.len();
            let hits = snapshot.get(SymbolsPartition::ID, &keys[at]).expect("valid key");
            black_box(hits.first().map(|hit| hit.record()));
        });
    });
    group.bench_function("btreemap", |b| {
        b.iter(|| {
            at = (at + 1) % keys.len();
            black_box(btree.get(keys[at].as_bytes()));
        });
    });
    group.finish();

    let mut group = c.benchmark_group("lookup_prefix_10k_chunks");
    group.bench_function("chunkdb", |b| {
        b.iter(|| {
            at = (at + 1) % prefixes.len();
            let hits = snapshot
                .query(SymbolsPartition::ID)
                .begins_with(prefixes[at].clone())
                .execute()
                .expect("valid");
            for record in hits.records() {
                black_box(record);
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("snapshot_point_query");
    group.bench_function("chunkdb", |b| {
        b.iter(|| {
            at = (at + 1) % keys.len();
            let snapshot = db.snapshot();
            black_box(snapshot.get(SymbolsPartition::ID, &keys[at]).expect("valid key").len());
        });
    });
    group.finish();
}

fn commits(c: &mut Criterion) {
    let corpus = workloads::corpus(FILES);
    let db = workloads::load(&corpus);
    let versions = [workloads::file_output(0, 1), workloads::file_output(0, 0)];
    let mut turn = 0;
    let mut group = c.benchmark_group("commit");
    group.bench_function("file_edit_16_records", |b| {
        b.iter(|| {
            turn += 1;
            workloads::commit_file(&db, &versions[turn % 2]);
        });
    });
    group.bench_function("1k_records_supersede", |b| {
        let chunks = [big_chunk(0), big_chunk(1)];
        b.iter_batched(
            || {
                turn += 1;
                &chunks[turn % 2]
            },
            |chunk| {
                let mut writer = db.writer("generate:src/generated.rs");
                for ((file, path), record) in chunk {
                    writer
                        .insert(SymbolsPartition::ID, (*file, path.as_str()), record.clone())
                        .expect("valid");
                }
                black_box(writer.commit().expect("valid"));
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn big_chunk(variant: usize) -> Vec<((chunkdb::Ident, String), MiniLangRecord)> {
    let file = chunkdb::Ident::named("src/generated.rs");
    (0..1000)
        .map(|i| {
            let name = format!("generated_{i:04}_{variant}");
            let record = workloads::function(&name, &["u32", "Span"], Some("Tree"));
            ((file, format!("crate::generated::{name}")), record.into())
        })
        .collect()
}

/// Point queries (fresh snapshot each) from 1, 2, 4 and 8 threads at once: readers
/// share nothing but the published state, so throughput should grow with the cores
/// (and hold steady beyond them).
fn concurrent_readers(c: &mut Criterion) {
    let corpus = workloads::corpus(FILES);
    let db = workloads::load(&corpus);
    let keys = workloads::lookup_keys(&corpus, 4096);
    let mut group = c.benchmark_group("concurrent_readers");
    for threads in [1usize, 2, 4, 8] {
        group.throughput(criterion::Throughput::Elements(1));
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads as u64);
                let started = std::time::Instant::now();
                std::thread::scope(|scope| {
                    for thread in 0..threads {
                        let (db, keys) = (&db, &keys);
                        scope.spawn(move || {
                            for at in 0..per_thread as usize {
                                let snapshot = db.snapshot();
                                let key = &keys[(at * 7 + thread * 131) % keys.len()];
                                black_box(snapshot.get(SymbolsPartition::ID, key).expect("valid key").len());
                            }
                        });
                    }
                });
                // `iters` queries ran, spread over the threads: criterion's time per
                // iteration is then time per query of the whole group, which should halve
                // from one thread to two on a two-core machine.
                started.elapsed()
            });
        });
    }
    group.finish();
}

/// A filtered scan of 200,000 records, forced sequential, forced parallel and left to
/// the executor (the detail behind the `scan_1m_*` figures, at a size criterion can
/// repeat often).
fn scans(c: &mut Criterion) {
    use chunkdb::Execution;
    let db = chunkdb::Database::<workloads::MiniLang>::new();
    for chunk in 0..200 {
        let file = chunkdb::Ident::new(&format!("src/scan_{chunk:03}.rs"));
        let mut writer = db.writer(format!("scan:{chunk}"));
        for i in 0..1000 {
            let name = format!("f{i:04}");
            let record = workloads::function(&name, &["u32"], (i % 2 == 0).then_some("Tree"));
            writer.insert(SymbolsPartition::ID, (file, name.as_str()), record).expect("valid");
        }
        writer.commit().expect("valid");
    }
    let snapshot = db.snapshot();
    let mut group = c.benchmark_group("scan_200k_filtered");
    for (name, execution) in [
        ("sequential", Execution::Sequential),
        ("parallel", Execution::Parallel),
        ("adaptive", Execution::Auto),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let kept = snapshot
                    .query(SymbolsPartition::ID)
                    .filter(|hit| hit.record().as_function().is_some_and(|f| f.return_type.is_some()))
                    .execution(execution)
                    .execute()
                    .expect("valid")
                    .len();
                black_box(kept);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, lookups, commits, concurrent_readers, scans);
criterion_main!(benches);
