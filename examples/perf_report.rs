//! Prints every figure of SPEC.md's performance table, one line each:
//!
//! ```text
//! figure <name> <value> target <op> <bound>
//! ```
//!
//! Each value is a ratio against a baseline measured in the same run, trials of the
//! two interleaved and the median of each taken, so machine noise and drift cancel
//! out. A figure that cannot be measured yet prints `n/a` and the reason.
//!
//! `cargo run --release --example perf_report` (full sizes) or `-- --quick` (CI).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chunkdb::{Database, Ident, KeyRange};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region};
use workloads::{MiniLang, MiniLangRecord, SymbolsPartition};

#[global_allocator]
static GLOBAL: Switch = Switch;

/// Whether allocations go through the counting allocator (the memory figures) or
/// straight to the system's (the timing figures of the real-source pipeline: shared
/// atomic counters would make every allocation of two threads contend).
static COUNTING: AtomicBool = AtomicBool::new(true);

/// The global allocator: the system's, counted while [`COUNTING`] is set.
struct Switch;

// SAFETY: both arms are the system allocator (`StatsAlloc<System>` forwards to it
// after counting), so memory allocated in either mode may be freed in the other; the
// counters only drift by what crosses a switch, which no figure spans.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                INSTRUMENTED_SYSTEM.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                INSTRUMENTED_SYSTEM.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                INSTRUMENTED_SYSTEM.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                INSTRUMENTED_SYSTEM.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[path = "../benches/workloads.rs"]
mod workloads;

#[path = "../tests/support/pipeline.rs"]
mod pipeline;

/// The real-source pipeline of the `rust_index` example, and its salsa twin.
mod rust_index {
    pub mod analysis;
    pub mod bench;
    pub mod chunk_index;
    pub mod manifest;
    pub mod salsa_index;
    pub mod sample;
    pub mod script;
    pub mod session;
    pub mod syntax;

    // The language server of `examples/rust_lsp/`, run as a child process of this
    // binary (`--lsp-server ROOT`), and the client that measures it.
    #[path = "../rust_lsp/handlers.rs"]
    pub mod handlers;
    #[path = "../rust_lsp/host.rs"]
    pub mod host;
    #[path = "../rust_lsp/bench.rs"]
    pub mod lsp_bench;
    #[path = "../../tests/support/lsp_client.rs"]
    pub mod lsp_client;
    #[path = "../rust_lsp/server.rs"]
    pub mod server;
    #[path = "../rust_lsp/text.rs"]
    pub mod text;
}

/// Problem sizes; `--quick` shrinks them for CI smoke runs.
struct Sizes {
    files: usize,
    lookups: usize,
    prefix_lookups: usize,
    rounds: usize,
    commits_per_trial: usize,
    scan_records: usize,
    readers: (usize, usize),
    soak_files: usize,
    soak_cycles: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                files: 2_000,
                lookups: 20_000,
                prefix_lookups: 4_000,
                rounds: 3,
                commits_per_trial: 5,
                scan_records: 200_000,
                readers: (1_000, 20_000),
                soak_files: 50,
                soak_cycles: 5_000,
            }
        } else {
            Sizes {
                files: 10_000,
                lookups: 200_000,
                prefix_lookups: 40_000,
                rounds: 9,
                commits_per_trial: 40,
                scan_records: 1_000_000,
                readers: (1_000, 100_000),
                soak_files: 200,
                soak_cycles: 100_000,
            }
        }
    }
}

fn main() {
    // `--peak SYSTEM FILES`: the child process measuring one system's peak memory.
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, mode, dir, files] = args.as_slice()
        && flag == "--rss"
    {
        COUNTING.store(false, Ordering::Relaxed);
        let kib = files
            .parse()
            .ok()
            .and_then(|files| rust_index::bench::rss_in_this_process(mode, std::path::Path::new(dir), files));
        println!("rss_kib {}", kib.map_or_else(|| "n/a".to_owned(), |kib| kib.to_string()));
        return;
    }
    if let [_, flag, system, files] = args.as_slice()
        && flag == "--peak"
    {
        COUNTING.store(false, Ordering::Relaxed);
        let kib = files.parse().ok().and_then(|files| rust_index::bench::peak_in_this_process(system, files));
        println!("peak_kib {}", kib.map_or_else(|| "n/a".to_owned(), |kib| kib.to_string()));
        return;
    }
    // `--lsp-server ROOT`: the language server on stdio, for the LSP figures.
    if let [_, flag, root] = args.as_slice()
        && flag == "--lsp-server"
    {
        COUNTING.store(false, Ordering::Relaxed);
        let options =
            rust_index::server::Options { root: Some(root.into()), workers: 2, ..Default::default() };
        std::process::exit(rust_index::server::serve(std::io::stdin().lock(), std::io::stdout(), options));
    }
    let quick = std::env::args().any(|arg| arg == "--quick");
    let sizes = Sizes::new(quick);
    println!(
        "chunkdb perf report ({}; {} cores; ratios of medians over {} interleaved trials)",
        if quick { "quick sizes" } else { "full sizes" },
        thread::available_parallelism().map_or(1, usize::from),
        sizes.rounds
    );

    // `--only NAME[,NAME…]` runs the figures whose name starts with one of the NAMEs (for profiling).
    let only: Option<String> = std::env::args().skip_while(|arg| arg != "--only").nth(1);
    let wanted = |name: &str| {
        only.as_deref().is_none_or(|prefixes| prefixes.split(',').any(|prefix| name.starts_with(prefix)))
    };

    let corpus = workloads::corpus(sizes.files);
    if wanted("bytes_per_record") {
        bytes_per_record(&corpus);
    }
    let db = workloads::load(&corpus);
    if wanted("lookup") {
        lookups(&sizes, &corpus, &db);
    }
    if wanted("commit") {
        commit_1k(&sizes, &db);
    }
    if wanted("read_slowdown") {
        read_slowdown(&sizes, &corpus, &db);
    }
    if wanted("index") {
        index_cost(&sizes);
    }
    if wanted("scan") {
        scans(&sizes);
    }
    if wanted("invalidation") {
        invalidation(&sizes);
    }
    if wanted("soak") || wanted("disk_soak") {
        soak(&sizes);
    }
    if wanted("disk_bytes") || wanted("commit_persisted") {
        persistence(&sizes, &corpus, &db, &wanted);
    }

    if rust_index::bench::NAMES.iter().any(|(name, _, _)| wanted(name)) {
        real_source(quick, &wanted);
    }
    if rust_index::bench::RESTART_NAMES.iter().any(|(name, _, _)| wanted(name)) {
        restarts(quick, &wanted);
    }
    if rust_index::lsp_bench::NAMES.iter().any(|(name, _, _)| wanted(name)) || wanted("lsp_registry") {
        language_server(quick, &wanted);
    }
}

/// The language server's figures: `rust_lsp` over stdio (this binary, run again as
/// the server) against the same work in process, on the 1,000-file sample; then
/// its latencies on the registry's whole sources.
fn language_server(quick: bool, wanted: &dyn Fn(&str) -> bool) {
    let sizes = if quick {
        rust_index::lsp_bench::Sizes { files: 250, edit_trials: 3, requests: 200 }
    } else {
        rust_index::lsp_bench::Sizes { files: 1_000, edit_trials: 15, requests: 1_000 }
    };
    println!("language server: examples/rust_lsp over stdio");
    COUNTING.store(false, Ordering::Relaxed);
    let serve = |root: &std::path::Path| {
        let mut command = std::process::Command::new(std::env::current_exe().expect("this binary's path"));
        command.arg("--lsp-server").arg(root);
        command
    };
    if rust_index::lsp_bench::NAMES.iter().any(|(name, _, _)| wanted(name)) {
        print_figures(rust_index::lsp_bench::figures(sizes, &serve), wanted);
    }
    if wanted("lsp_registry") {
        let sizes = rust_index::lsp_bench::Sizes { edit_trials: sizes.edit_trials.min(10), ..sizes };
        match rust_index::lsp_bench::registry_latencies(sizes, &serve) {
            Ok(line) => println!("info lsp_registry_latencies {line}"),
            Err(why) => println!("info lsp_registry_latencies n/a ({why})"),
        }
    }
    COUNTING.store(true, Ordering::Relaxed);
}

/// The warm-restart figures: the `rust_index` pipeline persisted, restarted from its
/// directory, against a cold build (SPEC, wave 2: the 1,000-file sample).
fn restarts(quick: bool, wanted: &dyn Fn(&str) -> bool) {
    let files = if quick { 250 } else { 1_000 };
    let sizes = rust_index::bench::Sizes {
        small: files,
        large: files,
        cold_trials: if quick { 1 } else { 5 },
        edit_trials: 1,
        whole: false,
    };
    println!("warm restart: the rust_index pipeline persisted, {files} files");
    COUNTING.store(false, Ordering::Relaxed);
    let rss = |mode: &str, dir: &std::path::Path| {
        child_reading(&["--rss", mode, &dir.display().to_string(), &files.to_string()], "rss_kib ")
    };
    print_figures(rust_index::bench::restart_figures(sizes, rss), wanted);
    COUNTING.store(true, Ordering::Relaxed);
}

/// The real-source figures: the `rust_index` pipeline on chunkdb against its salsa
/// twin, on whole crates from the cargo registry (SPEC: 1,000 and 3,000 files).
fn real_source(quick: bool, wanted: &dyn Fn(&str) -> bool) {
    let mut sizes = if quick {
        rust_index::bench::Sizes { small: 250, large: 750, cold_trials: 1, edit_trials: 5, whole: false }
    } else {
        rust_index::bench::Sizes { small: 1_000, large: 3_000, cold_trials: 5, edit_trials: 15, whole: true }
    };
    // `--edit-trials N`: more trials per edit kind, to profile an edit or to compare
    // two builds on a noisy machine.
    if let Some(trials) = std::env::args().skip_while(|arg| arg != "--edit-trials").nth(1) {
        sizes.edit_trials = trials.parse().unwrap_or(sizes.edit_trials).max(1);
    }
    println!("real-source pipeline: chunkdb vs salsa (examples/rust_index)");
    COUNTING.store(false, Ordering::Relaxed);
    let peak =
        |system: &str, files: usize| child_reading(&["--peak", system, &files.to_string()], "peak_kib ");
    print_figures(rust_index::bench::figures(sizes, peak), wanted);
    COUNTING.store(true, Ordering::Relaxed);
}

/// Runs this binary again with `args` (a measurement in a process of its own) and
/// returns the number it prints after `prefix`.
fn child_reading(args: &[&str], prefix: &str) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let output = std::process::Command::new(exe).args(args).output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().find_map(|line| line.strip_prefix(prefix)?.parse().ok())
}

/// Prints the figures `wanted` selects, or why one could not be measured.
fn print_figures(figures: Vec<rust_index::bench::Figure>, wanted: &dyn Fn(&str) -> bool) {
    for (name, value, op, bound, detail) in figures {
        if !wanted(name) {
            continue;
        }
        match value {
            Ok(value) => figure(name, value, op, bound, &detail),
            Err(reason) => println!("figure {name} n/a target {op} {bound} ({reason})"),
        }
    }
}

fn figure(name: &str, value: f64, op: &str, bound: f64, detail: &str) {
    println!("figure {name} {value:.3} target {op} {bound}");
    println!("  {detail}");
}

/// Times `work` once.
fn time(mut work: impl FnMut()) -> Duration {
    let started = Instant::now();
    work();
    started.elapsed()
}

/// Runs baseline and candidate trials alternately and returns their median times.
fn interleaved(
    rounds: usize,
    mut baseline: impl FnMut() -> Duration,
    mut candidate: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    // One untimed round of each warms caches and the allocator.
    baseline();
    candidate();
    let mut base = Vec::with_capacity(rounds);
    let mut cand = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Alternate which goes first so neither always follows the other.
        if round % 2 == 0 {
            base.push(baseline());
            cand.push(candidate());
        } else {
            cand.push(candidate());
            base.push(baseline());
        }
    }
    (median(base), median(cand))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn per_op(total: Duration, ops: usize) -> f64 {
    total.as_nanos() as f64 / ops as f64
}

fn bytes_per_record(corpus: &[workloads::FileOutput]) {
    let region = Region::new(&INSTRUMENTED_SYSTEM);
    let db = workloads::load(corpus);
    let change = region.change();
    let held = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    let records = workloads::record_count(corpus);
    let raw = workloads::raw_encoded_bytes(corpus) as f64;
    let stats = db.stats();
    assert_eq!(stats.records, records);
    figure(
        "bytes_per_record_vs_raw",
        held / raw,
        "<=",
        1.3,
        &format!(
            "{:.0} bytes held per record (allocator, all chunks and indexes) / {:.0} canonical encoded bytes per record \
             (partition + sort key + fields); stats estimate {:.0} bytes per record; {records} records in {} chunks",
            held / records as f64,
            raw / records as f64,
            stats.bytes as f64 / records as f64,
            stats.chunks
        ),
    );
}

fn lookups(sizes: &Sizes, corpus: &[workloads::FileOutput], db: &Database<MiniLang>) {
    let btree = workloads::symbols_btree(corpus);
    let keys = workloads::lookup_keys(corpus, sizes.lookups);
    let snapshot = db.snapshot();
    assert_eq!(snapshot.partition_len(SymbolsPartition::ID), btree.len());

    let (base, cand) = interleaved(
        sizes.rounds,
        || {
            time(|| {
                for key in &keys {
                    black_box(btree.get(key.as_bytes()));
                }
            })
        },
        || {
            time(|| {
                for key in &keys {
                    let hits = snapshot.get(SymbolsPartition::ID, key).expect("valid key");
                    black_box(hits.first().map(|hit| hit.record()));
                }
            })
        },
    );
    figure(
        "lookup_exact_10k_chunks_vs_btreemap",
        cand.as_secs_f64() / base.as_secs_f64(),
        "<=",
        1.0,
        &format!(
            "chunkdb {:.0} ns vs BTreeMap {:.0} ns per exact lookup; {} records of one partition in {} chunks",
            per_op(cand, keys.len()),
            per_op(base, keys.len()),
            btree.len(),
            corpus.len()
        ),
    );

    let prefixes = workloads::lookup_prefixes(corpus, sizes.prefix_lookups);
    let mut found = 0;
    let (base, cand) = interleaved(
        sizes.rounds,
        || {
            time(|| {
                for prefix in &prefixes {
                    let range = KeyRange::prefix(prefix.as_bytes());
                    let upper = range.end().map_or(Bound::Unbounded, Bound::Excluded);
                    let hits: Vec<&MiniLangRecord> = btree
                        .range::<[u8], _>((Bound::Included(range.start()), upper))
                        .map(|(_, r)| r)
                        .collect();
                    black_box(hits);
                }
            })
        },
        || {
            time(|| {
                for prefix in &prefixes {
                    let hits = snapshot
                        .query(SymbolsPartition::ID)
                        .begins_with(prefix.clone())
                        .execute()
                        .expect("valid prefix");
                    found = hits.len();
                    for record in hits.records() {
                        black_box(record);
                    }
                }
            })
        },
    );
    figure(
        "lookup_prefix_10k_chunks_vs_btreemap",
        cand.as_secs_f64() / base.as_secs_f64(),
        "<=",
        1.0,
        &format!(
            "chunkdb {:.0} ns vs BTreeMap {:.0} ns per prefix lookup of {found} records",
            per_op(cand, prefixes.len()),
            per_op(base, prefixes.len())
        ),
    );
}

/// A 1,000-record chunk (one big file's functions), in two versions that alternate so
/// every commit supersedes the previous one.
fn big_chunk(variant: usize) -> Vec<((Ident, String), MiniLangRecord)> {
    let file = Ident::named("src/generated.rs");
    (0..1000)
        .map(|i| {
            let name = format!("generated_{i:04}_{variant}");
            (
                (file, format!("crate::generated::{name}")),
                workloads::function(&name, &["u32", "Span"], Some("Tree")).into(),
            )
        })
        .collect()
}

/// Bytes of the files in `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|entry| entry.ok()?.metadata().ok()).map(|meta| meta.len()).sum())
        .unwrap_or(0)
}

/// The persistence figures on the synthetic corpus: the directory's size against
/// the raw records, and a 1,000-record commit with the background writer on.
fn persistence(
    sizes: &Sizes,
    corpus: &[workloads::FileOutput],
    memory: &Database<MiniLang>,
    wanted: &dyn Fn(&str) -> bool,
) {
    let dir = std::env::temp_dir().join(format!("chunkdb-perf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let persisted = Database::<MiniLang>::open(&dir).expect("a fresh directory opens");
    workloads::load_into(&persisted, corpus);
    persisted.flush().expect("the corpus is written");
    if wanted("disk_bytes") {
        let (bytes, raw) = (dir_bytes(&dir) as f64, workloads::raw_encoded_bytes(corpus) as f64);
        let records = workloads::record_count(corpus);
        figure(
            "disk_bytes_per_record_vs_raw",
            bytes / raw,
            "<=",
            1.5,
            &format!(
                "{:.0} directory bytes per record after a flush (segments and manifest) / {:.0} canonical encoded bytes \
                 per record; {records} records in {} chunks",
                bytes / records as f64,
                raw / records as f64,
                persisted.stats().chunks
            ),
        );
    }
    if wanted("commit_persisted") {
        let versions = [big_chunk(0), big_chunk(1)];
        let commits = |db: &Database<MiniLang>, turn: &mut usize| {
            time(|| {
                for _ in 0..sizes.commits_per_trial {
                    *turn += 1;
                    let mut writer = db.writer("generate:src/generated.rs");
                    for ((file, path), record) in &versions[*turn % 2] {
                        writer
                            .insert(SymbolsPartition::ID, (*file, path.as_str()), record.clone())
                            .expect("valid insert");
                    }
                    black_box(writer.commit().expect("valid commit"));
                }
            })
        };
        let (mut memory_turn, mut persisted_turn) = (0, 0);
        let (base, cand) = interleaved(
            sizes.rounds,
            || commits(memory, &mut memory_turn),
            || commits(&persisted, &mut persisted_turn),
        );
        persisted.flush().expect("the commits are written");
        figure(
            "commit_persisted_vs_memory",
            cand.as_secs_f64() / base.as_secs_f64(),
            "<=",
            1.2,
            &format!(
                "{:.0} µs per 1,000-record commit with the background writer on vs {:.0} µs in memory ({} cores shared \
                 with the writer); {:.1} MiB on disk after",
                per_op(cand, sizes.commits_per_trial) / 1000.0,
                per_op(base, sizes.commits_per_trial) / 1000.0,
                thread::available_parallelism().map_or(1, usize::from),
                persisted.disk_bytes() as f64 / (1 << 20) as f64
            ),
        );
    }
    drop(persisted);
    let _ = std::fs::remove_dir_all(&dir);
}

fn commit_1k(sizes: &Sizes, db: &Database<MiniLang>) {
    let versions = [big_chunk(0), big_chunk(1)];
    let mut turn = 0;
    let (base, cand) = interleaved(
        sizes.rounds,
        || {
            time(|| {
                for round in 0..sizes.commits_per_trial {
                    let map: BTreeMap<(Ident, String), MiniLangRecord> = versions[round % 2]
                        .iter()
                        .map(|(key, record)| (key.clone(), record.clone()))
                        .collect();
                    black_box(map);
                }
            })
        },
        || {
            time(|| {
                for _ in 0..sizes.commits_per_trial {
                    turn += 1;
                    let mut writer = db.writer("generate:src/generated.rs");
                    for ((file, path), record) in &versions[turn % 2] {
                        writer
                            .insert(SymbolsPartition::ID, (*file, path.as_str()), record.clone())
                            .expect("valid insert");
                    }
                    black_box(writer.commit().expect("valid commit"));
                }
            })
        },
    );
    figure(
        "commit_1k_vs_btreemap",
        cand.as_secs_f64() / base.as_secs_f64(),
        "<=",
        1.5,
        &format!(
            "chunkdb {:.0} µs per 1,000-record commit superseding the previous version, into a database of {} records, \
             vs {:.0} µs to build a BTreeMap of the same records",
            per_op(cand, sizes.commits_per_trial) / 1000.0,
            db.stats().records,
            per_op(base, sizes.commits_per_trial) / 1000.0
        ),
    );
}

fn read_slowdown(sizes: &Sizes, corpus: &[workloads::FileOutput], db: &Database<MiniLang>) {
    let keys = workloads::lookup_keys(corpus, sizes.lookups);
    // Edits to commit: new versions of the first files, alternating with the originals.
    let edits: Vec<workloads::FileOutput> =
        (0..64).flat_map(|i| [workloads::file_output(i, 1), workloads::file_output(i, 0)]).collect();
    let queries = || {
        time(|| {
            for key in &keys {
                // Each request takes a fresh snapshot, as a language server would.
                let snapshot = db.snapshot();
                black_box(snapshot.get(SymbolsPartition::ID, key).expect("valid key").len());
            }
        })
    };
    let mut commits = 0usize;
    let (idle, busy) = interleaved(sizes.rounds, queries, || {
        let stop = AtomicBool::new(false);
        let (elapsed, done) = thread::scope(|scope| {
            let committer = scope.spawn(|| {
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    workloads::commit_file(db, &edits[done % edits.len()]);
                    done += 1;
                }
                done
            });
            let elapsed = queries();
            stop.store(true, Ordering::Relaxed);
            (elapsed, committer.join().expect("committer"))
        });
        commits += done;
        elapsed
    });
    figure(
        "read_slowdown_under_commits",
        busy.as_secs_f64() / idle.as_secs_f64(),
        "<=",
        1.1,
        &format!(
            "snapshot + point query {:.0} ns while another thread commits ({commits} commits in all) vs {:.0} ns idle",
            per_op(busy, keys.len()),
            per_op(idle, keys.len())
        ),
    );
}

/// Not a figure of the table: what a secondary index adds to a commit. The same
/// 1,000-record supersede as `commit_1k`, on `chunkdb::example::MiniLang` (which indexes
/// functions by name) and on the benchmark schema (the same records, no index).
fn index_cost(sizes: &Sizes) {
    use chunkdb::example::{Function, MiniLang as Indexed, SymbolsKey};
    let file = Ident::named("src/generated.rs");
    let indexed_chunk = |variant: usize| -> Vec<(SymbolsKey, Function)> {
        (0..1000)
            .map(|i| {
                let name = format!("generated_{i:04}_{variant}");
                let key = SymbolsKey::new(file, format!("crate::generated::{name}"));
                let function = Function {
                    name: Ident::named(&name),
                    params: vec![Ident::named("u32"), Ident::named("Span")],
                    return_type: Some(Ident::named("Tree")),
                };
                (key, function)
            })
            .collect()
    };
    let (plain_versions, indexed_versions) =
        ([big_chunk(0), big_chunk(1)], [indexed_chunk(0), indexed_chunk(1)]);
    let (plain_db, indexed_db) = (Database::<MiniLang>::new(), Database::<Indexed>::new());
    let mut turn = 0;
    let (plain, indexed) = interleaved(
        sizes.rounds,
        || {
            time(|| {
                for round in 0..sizes.commits_per_trial {
                    let mut writer = plain_db.writer("generate");
                    for ((file, path), record) in &plain_versions[round % 2] {
                        writer
                            .insert(SymbolsPartition::ID, (*file, path.as_str()), record.clone())
                            .expect("valid");
                    }
                    black_box(writer.commit().expect("valid"));
                }
            })
        },
        || {
            time(|| {
                for _ in 0..sizes.commits_per_trial {
                    turn += 1;
                    let mut writer = indexed_db.writer("generate");
                    for (key, function) in &indexed_versions[turn % 2] {
                        writer.put(Indexed::SYMBOLS, key.clone(), function.clone()).expect("valid");
                    }
                    black_box(writer.commit().expect("valid"));
                }
            })
        },
    );
    println!(
        "info index_by_name_commit_cost {:.3} (a 1,000-record supersede with the `by_name` index / without: {:.0} µs vs {:.0} µs)",
        indexed.as_secs_f64() / plain.as_secs_f64(),
        per_op(indexed, sizes.commits_per_trial) / 1000.0,
        per_op(plain, sizes.commits_per_trial) / 1000.0
    );
}

/// `scan_1m_parallel_speedup` and `scan_1m_adaptive_vs_best`: a full scan of one
/// partition of a million diagnostics (1,000 chunks of 1,000) with a filter that
/// searches each message for a word, as a "problems" view filters by text; forced
/// sequential, forced parallel, and left to the executor. An info line gives the same
/// for a predicate that barely reads the record, where the scan is bound by memory
/// traffic rather than work.
fn scans(sizes: &Sizes) {
    use chunkdb::Execution;
    use workloads::{BenchLangRecordRef, Diagnostic, DiagnosticsPartition};
    let db = Database::<MiniLang>::new();
    let per_chunk = 1_000;
    let words =
        ["unused import", "mismatched types", "cannot find value", "unreachable code", "missing docs"];
    for chunk in 0..sizes.scan_records / per_chunk {
        let file = Ident::new(&format!("src/scan_{chunk:05}.rs"));
        let mut writer = db.writer(format!("scan:{chunk}"));
        for i in 0..per_chunk {
            let message = format!(
                "{} `item_{i}` in function `f{chunk}_{i}` at line {}",
                words[(i + chunk) % words.len()],
                i * 3
            );
            let diagnostic = Diagnostic { message, severity: (i % 3) as u8, line: i as u32 };
            writer
                .insert(DiagnosticsPartition::ID, (file, (i % 3) as u8, i as u32), diagnostic)
                .expect("valid insert");
        }
        writer.commit().expect("valid commit");
    }
    let snapshot = db.snapshot();
    let records = snapshot.partition_len(DiagnosticsPartition::ID);
    let run = |execution: Execution, search: bool| {
        time(|| {
            let found = snapshot
                .query(DiagnosticsPartition::ID)
                .filter(move |hit| match hit.record() {
                    BenchLangRecordRef::Diagnostic(d) if search => {
                        d.message.contains("types` in function `f7")
                    }
                    BenchLangRecordRef::Diagnostic(d) => d.severity == 2,
                    _ => false,
                })
                .execution(execution)
                .execute()
                .expect("valid query");
            black_box(found.len());
        })
    };
    let (sequential, parallel) =
        interleaved(sizes.rounds, || run(Execution::Sequential, true), || run(Execution::Parallel, true));
    figure(
        "scan_1m_parallel_speedup",
        sequential.as_secs_f64() / parallel.as_secs_f64(),
        ">=",
        1.6,
        &format!(
            "text search over {records} diagnostics: {:.1} ms sequential, {:.1} ms parallel on {} threads",
            sequential.as_secs_f64() * 1e3,
            parallel.as_secs_f64() * 1e3,
            rayon::current_num_threads()
        ),
    );
    let (best, adaptive) = interleaved(
        sizes.rounds,
        || run(Execution::Sequential, true).min(run(Execution::Parallel, true)),
        || run(Execution::Auto, true),
    );
    figure(
        "scan_1m_adaptive_vs_best",
        best.as_secs_f64() / adaptive.as_secs_f64(),
        ">=",
        0.9,
        &format!(
            "adaptive {:.1} ms vs the better forced mode {:.1} ms",
            adaptive.as_secs_f64() * 1e3,
            best.as_secs_f64() * 1e3
        ),
    );
    let (sequential, parallel) =
        interleaved(sizes.rounds, || run(Execution::Sequential, false), || run(Execution::Parallel, false));
    println!(
        "info scan_1m_cheap_filter_speedup {:.3} (a predicate that barely reads the record: {:.1} ms sequential, {:.1} ms parallel; bound by memory traffic)",
        sequential.as_secs_f64() / parallel.as_secs_f64(),
        sequential.as_secs_f64() * 1e3,
        parallel.as_secs_f64() * 1e3
    );
}

/// A database where `readers` tasks each looked up a key that does not exist yet
/// (a pending read, filed for invalidation) and reader 0's key is the one edited.
fn readers_db(readers: usize) -> Database<pipeline::Toy> {
    use pipeline::{SymbolsKey, Toy};
    let db = Database::<Toy>::new();
    for reader in 0..readers {
        let ctx = db.task(format!("reader:{reader}"));
        let found = ctx.partition(Toy::SYMBOLS).exact(SymbolsKey::new(format!("n{reader}"), "f")).execute();
        assert!(found.expect("valid key").is_empty());
        ctx.commit().expect("an empty output commits");
    }
    db
}

/// One edit of the key reader 0 read; returns the tasks it invalidated.
fn edit_read_key(db: &Database<pipeline::Toy>, line: u32) -> usize {
    use pipeline::{Symbol, SymbolsKey, Toy};
    let mut writer = db.writer("edit");
    writer.put(Toy::SYMBOLS, SymbolsKey::new("n0", "f"), Symbol { line }).expect("fits the schema");
    writer.commit().expect("commits").invalidated.len()
}

fn invalidation(sizes: &Sizes) {
    let (few, many) = sizes.readers;
    let small = readers_db(few);
    let large = readers_db(many);
    let edits: usize = 2_000;
    let run = |db: &Database<pipeline::Toy>| {
        time(|| {
            for line in 0..edits {
                // Alternate two contents so every commit changes the key; reader 0 is
                // invalidated by the first and stays stale after.
                black_box(edit_read_key(db, (line % 2) as u32));
            }
        })
    };
    let (base, cand) = interleaved(sizes.rounds, || run(&small), || run(&large));
    let stats = large.stats();
    assert!(large.is_stale("reader:0") && stats.stale_tasks == 1, "exactly the reader of the key is stale");
    figure(
        "invalidation_100k_vs_1k_readers",
        cand.as_secs_f64() / base.as_secs_f64(),
        "<=",
        2.0,
        &format!(
            "commit of one changed key and its invalidation: {:.2} us with {many} readers / {:.2} us with {few} \
             readers ({} reads filed; one reader stale)",
            per_op(cand, edits) / 1e3,
            per_op(base, edits) / 1e3,
            stats.reads_tracked
        ),
    );
}

/// The soak, with persistence on (SPEC: "the soak's 100,000 edit cycles with
/// persistence on"): the bytes the database holds, sampled every 100 cycles, and
/// the directory's size, flushed and measured every 1,000, both after a warm-up of
/// a tenth of the cycles. One run gives both figures; the in-memory soak without a
/// directory runs in `tests/soak.rs`. The allocator's count of live heap bytes is
/// taken right after each flush and printed as its first, last, lowest and highest
/// value: it counts whatever the writer thread holds at that moment too, so its
/// highs come and go, and growth shows as a last value above the first.
fn soak(sizes: &Sizes) {
    let dir = std::env::temp_dir().join(format!("chunkdb-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::<pipeline::Toy>::open(&dir).expect("a fresh directory opens");
    let warm_up = sizes.soak_cycles / 10;
    let mut bytes_baseline = None;
    let (mut drift, mut heap_peak): (f64, f64) = (0.0, 0.0);
    let mut heaps: Vec<f64> = Vec::new();
    let (mut most_chunks, mut most_in_memory) = (0, 0);
    let (mut disk_baseline, mut disk_drift, mut largest, mut smallest) = (None, 0.0f64, 0u64, u64::MAX);
    let region = Region::new(&INSTRUMENTED_SYSTEM);
    let live_heap = || {
        let change = region.change();
        change.bytes_allocated as f64 - change.bytes_deallocated as f64
    };
    let started = Instant::now();
    let mut last = None;
    let runs = pipeline::soak_in(&db, sizes.soak_files, sizes.soak_cycles, |cycle, db| {
        let final_cycle = cycle + 1 == sizes.soak_cycles;
        heap_peak = heap_peak.max(live_heap());
        if cycle % 1000 == 999 || final_cycle {
            db.flush().expect("the directory is writable");
            let (bytes, heap) = (dir_bytes(&dir), live_heap());
            if cycle >= warm_up {
                let base = *disk_baseline.get_or_insert(bytes) as f64;
                disk_drift = disk_drift.max((bytes as f64 - base).abs() / base * 100.0);
                (largest, smallest) = (largest.max(bytes), smallest.min(bytes));
                heaps.push(heap);
            }
        }
        if cycle % 100 != 0 && !final_cycle {
            return;
        }
        let stats = db.stats();
        most_chunks = most_chunks.max(stats.chunks);
        most_in_memory = most_in_memory.max(stats.chunks_in_memory);
        if cycle >= warm_up {
            let base = *bytes_baseline.get_or_insert(stats.bytes as f64);
            drift = drift.max((stats.bytes as f64 - base).abs() / base * 100.0);
        }
        last = Some(stats);
    });
    let elapsed = started.elapsed();
    let files = std::fs::read_dir(&dir).map_or(0, |entries| entries.count());
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    let stats = last.expect("the soak ran");
    let kib = |bytes: f64| bytes / 1024.0;
    let heap_range =
        heaps.iter().copied().fold((f64::MAX, 0.0f64), |(low, high), heap| (low.min(heap), high.max(heap)));
    let cycles = sizes.soak_cycles as f64;
    figure(
        "soak_bytes_drift_pct",
        drift,
        "<=",
        5.0,
        &format!(
            "{} edit cycles over {} files with persistence on in {:.1} s ({:.0} us and {:.1} task runs per cycle, \
             driver, default GC and flushes included); largest deviation of stats bytes from cycle {warm_up} on; \
             live heap by the allocator after flushes {:.0} KiB at first, {:.0} KiB at \
             last, {:.0} to {:.0} KiB (peak {:.0} KiB between flushes, with a sync in flight); {} bytes held at the end; at most {most_chunks} \
             current chunks, {most_in_memory} in memory; GC: {} cycles, {} chunks and {} bytes reclaimed, longest \
             slice {:?}",
            sizes.soak_cycles,
            sizes.soak_files,
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / cycles,
            runs as f64 / cycles,
            kib(heaps.first().copied().unwrap_or_default()),
            kib(heaps.last().copied().unwrap_or_default()),
            kib(heap_range.0),
            kib(heap_range.1),
            kib(heap_peak),
            stats.bytes,
            stats.gc.cycles,
            stats.gc.chunks_reclaimed,
            stats.gc.bytes_reclaimed,
            stats.gc.max_pause
        ),
    );
    figure(
        "disk_soak_drift_pct",
        disk_drift,
        "<=",
        10.0,
        &format!(
            "the same run: largest deviation of the directory's size (flushed every 1,000 cycles) from cycle \
             {warm_up} on: between {:.1} and {:.1} KiB; {files} files at the end",
            smallest as f64 / 1024.0,
            largest as f64 / 1024.0
        ),
    );
}
