//! Parallel execution returns exactly the sequential results, in the same order, with
//! the same read-sets; it never runs in a one-thread pool; and queries made from inside
//! rayon tasks do not deadlock.

use chunkdb_database::reference::TextLang;
use chunkdb_database::{Database, Execution, Ident, KeyPrefix, Query, Snapshot, SortKey, TaskId};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

const P: Ident = Ident::new("p");

/// A database of `tasks` tasks, each writing `per_task` records under `(u16, u16)` keys
/// that interleave across tasks (and repeat, so keys have several postings).
fn build(tasks: u16, per_task: u16, seed: u16) -> Database<TextLang> {
    let db = Database::<TextLang>::new();
    for task in 0..tasks {
        let mut writer = db.writer(format!("t{task}"));
        for i in 0..per_task {
            // Mostly distinct keys, some shared between tasks.
            let key = (i.wrapping_mul(7).wrapping_add(task * 13) ^ seed, i % 3);
            // Duplicates within a task are skipped: one record per key and task.
            let _ = writer.insert(P, key, format!("{task}:{i}"));
        }
        let _ = writer.commit();
    }
    db
}

#[derive(Clone, Debug)]
enum Condition {
    All,
    Prefix(u16),
    Between(u16, u16),
    Gt(u16),
    Le(u16),
}

fn apply<'s>(query: Query<'s, TextLang>, condition: &Condition) -> Query<'s, TextLang> {
    match condition {
        Condition::All => query,
        Condition::Prefix(a) => query.begins_with((*a,)),
        Condition::Between(a, b) => query.between((*a,), (*b,)),
        Condition::Gt(a) => query.gt((*a,)),
        Condition::Le(a) => query.le(KeyPrefix::new((*a,))),
    }
}

type Row = (SortKey, TaskId, String);

fn run(
    snapshot: &Snapshot<TextLang>,
    condition: &Condition,
    modulus: usize,
    execution: Execution,
) -> Vec<Row> {
    let query = apply(snapshot.query(P), condition)
        .filter(move |hit| hit.record().len() % modulus != 0)
        .execution(execution);
    query
        .execute()
        .expect("valid")
        .iter()
        .map(|hit| (hit.sort_key().to_sort_key(), hit.task(), hit.record().to_string()))
        .collect()
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        Just(Condition::All),
        (0u16..u16::MAX).prop_map(Condition::Prefix),
        (0u16..u16::MAX, 0u16..u16::MAX).prop_map(|(a, b)| Condition::Between(a.min(b), a.max(b))),
        (0u16..u16::MAX).prop_map(Condition::Gt),
        (0u16..u16::MAX).prop_map(Condition::Le),
    ]
}

#[test]
fn parallel_equals_sequential() {
    let mut runner = TestRunner::new(Config {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x9A4A_11E1),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(1u16..40, 1u16..300, any::<u16>(), prop::collection::vec((condition(), 1usize..5), 1..6)),
            |(tasks, per_task, seed, queries)| {
                let db = build(tasks, per_task, seed);
                let snapshot = db.snapshot();
                for &(ref condition, modulus) in &queries {
                    let sequential = run(&snapshot, condition, modulus, Execution::Sequential);
                    let parallel = run(&snapshot, condition, modulus, Execution::Parallel);
                    let auto = run(&snapshot, condition, modulus, Execution::Auto);
                    let lazy: Vec<Row> = apply(snapshot.query(P), condition)
                        .filter(move |hit| hit.record().len() % modulus != 0)
                        .iter()
                        .expect("valid")
                        .map(|hit| hit.expect("built in memory"))
                        .map(|hit| (hit.sort_key().to_sort_key(), hit.task(), hit.record().to_string()))
                        .collect();
                    prop_assert_eq!(&sequential, &parallel);
                    prop_assert_eq!(&sequential, &auto);
                    prop_assert_eq!(&sequential, &lazy);
                    let mapped = |execution| {
                        apply(snapshot.query(P), condition)
                            .execution(execution)
                            .filter_map(move |hit| {
                                (hit.record().len() % modulus != 0).then(|| hit.record().len())
                            })
                            .expect("valid")
                    };
                    let lengths: Vec<usize> = sequential.iter().map(|(_, _, text)| text.len()).collect();
                    prop_assert_eq!(&mapped(Execution::Sequential), &lengths);
                    prop_assert_eq!(&mapped(Execution::Parallel), &lengths);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn parallel_reads_record_the_same_read_set() {
    let db = build(30, 400, 3);
    let reads = |execution: Execution| {
        db.set_execution(execution);
        let ctx = db.task("reader");
        let hits = ctx
            .query(P)
            .between((10u16,), (300u16,))
            .filter(|hit| hit.record().ends_with('7'))
            .execute()
            .expect("valid")
            .len();
        let keys: Vec<(Ident, SortKey)> =
            (0..2000u16).map(|i| (P, SortKey::encode((i.wrapping_mul(7), i % 3)))).collect();
        let batch: usize = ctx.batch_get(keys).expect("valid").iter().map(|results| results.len()).sum();
        (hits, batch, ctx.reads())
    };
    let sequential = reads(Execution::Sequential);
    let parallel = reads(Execution::Parallel);
    assert_eq!(sequential, parallel);
    assert!(sequential.0 > 0 && sequential.1 > 0);
}

#[test]
fn a_one_thread_pool_never_runs_in_parallel_and_nested_use_does_not_deadlock() {
    let db = build(20, 300, 9);
    let snapshot = db.snapshot();
    let expected = run(&snapshot, &Condition::All, 2, Execution::Sequential);
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    let in_single = single.install(|| run(&snapshot, &Condition::All, 2, Execution::Parallel));
    assert_eq!(in_single, expected);
    // Queries forced parallel from inside parallel tasks: rayon's work stealing runs
    // the inner tasks; nothing blocks waiting for a thread.
    use rayon::prelude::*;
    let results: Vec<Vec<Row>> =
        (0..16).into_par_iter().map(|_| run(&snapshot, &Condition::All, 2, Execution::Parallel)).collect();
    assert!(results.iter().all(|rows| *rows == expected));
}

#[test]
fn decisions_are_visible_in_stats() {
    let db = build(40, 400, 1);
    let snapshot = db.snapshot();
    let entries = snapshot.partition_len(P);
    assert!(entries >= chunkdb_database::SEQUENTIAL_BELOW, "{entries} entries");
    for _ in 0..(2 * chunkdb_database::EXPLORE_RUNS + 1) {
        run(&snapshot, &Condition::All, 3, Execution::Auto);
    }
    let decisions = db.stats().execution;
    if rayon::current_num_threads() > 1 {
        let shape = decisions.iter().find(|d| d.partition == P).expect("the scan's shape is measured");
        assert!(shape.chosen.is_some(), "{shape:?}");
        assert!(shape.sequential_ns_per_entry.is_some() && shape.parallel_ns_per_entry.is_some());
    } else {
        assert!(decisions.is_empty());
    }
}

#[test]
fn a_scan_that_starts_sequential_and_continues_in_parallel_matches() {
    // A mid-sized partition: the executor explores, alternating modes, so some runs
    // scan the first keys on this thread and the rest in parallel.
    let db = build(40, 400, 5);
    let snapshot = db.snapshot();
    assert!(snapshot.partition_len(P) > chunkdb_database::SEQUENTIAL_BELOW);
    let expected = run(&snapshot, &Condition::All, 3, Execution::Sequential);
    let expected_reads = {
        db.set_execution(Execution::Sequential);
        let ctx = db.task("r");
        let _ = ctx.query(P).filter(|hit| hit.record().len() % 3 != 0).execute().expect("valid").len();
        ctx.reads()
    };
    db.set_execution(Execution::Auto);
    for _ in 0..(4 * chunkdb_database::EXPLORE_RUNS) {
        assert_eq!(run(&snapshot, &Condition::All, 3, Execution::Auto), expected);
        let ctx = db.task("r");
        let _ = ctx.query(P).filter(|hit| hit.record().len() % 3 != 0).execute().expect("valid").len();
        assert_eq!(ctx.reads(), expected_reads, "the read-set does not depend on the path taken");
    }
}
