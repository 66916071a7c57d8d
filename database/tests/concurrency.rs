//! Concurrency stress: many threads commit multi-record, multi-partition chunks while
//! many others take snapshots and check that every commit is seen whole or not at all,
//! that results are sorted, and that one snapshot always answers the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chunkdb_database::reference::TextLang;
use chunkdb_database::{Database, Ident, Snapshot, TaskId};

const WRITERS: usize = 8;
const READERS: usize = 8;
const TASKS_PER_WRITER: usize = 4;
const RECORDS_PER_PARTITION: u32 = 24;
const LEFT: Ident = Ident::new("left");
const RIGHT: Ident = Ident::new("right");

/// Each commit of task `(w, t)` at generation `g` writes the same number of records
/// into both partitions, every value `"{g}"`. Keys interleave with other tasks' keys.
fn commit(db: &Database<TextLang>, writer: usize, task: usize, generation: u64) {
    let mut chunk = db.writer(format!("w{writer}t{task}"));
    for i in 0..RECORDS_PER_PARTITION {
        let key = (i, writer as u8, task as u8);
        chunk.insert(LEFT, key, generation.to_string()).expect("open schema");
        chunk.insert(RIGHT, key, generation.to_string()).expect("open schema");
    }
    chunk.commit().expect("valid commit");
}

/// Checks one snapshot; returns the generation seen per task.
fn check(snapshot: &Snapshot<TextLang>) -> HashMap<TaskId, u64> {
    let mut seen: HashMap<TaskId, (u64, u32)> = HashMap::new();
    for partition in [LEFT, RIGHT] {
        let results = snapshot.query(partition).execute().expect("open schema");
        let keys: Vec<_> = results.iter().map(|hit| (hit.sort_key().to_sort_key(), hit.task())).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "results are sorted and unique");
        let mut here: HashMap<TaskId, (u64, u32)> = HashMap::new();
        for hit in &results {
            let generation: u64 = hit.record().parse().expect("numeric value");
            let entry = here.entry(hit.task()).or_insert((generation, 0));
            assert_eq!(entry.0, generation, "one task's records in one partition come from one commit");
            entry.1 += 1;
        }
        for (task, (generation, count)) in here {
            assert_eq!(count, RECORDS_PER_PARTITION, "a commit is seen whole");
            let other = seen.entry(task).or_insert((generation, 0));
            assert_eq!(other.0, generation, "both partitions show the same commit of a task");
            other.1 += 1;
        }
    }
    assert!(
        seen.values().all(|(_, partitions)| *partitions == 2),
        "a commit is seen in every partition it wrote"
    );
    seen.into_iter().map(|(task, (generation, _))| (task, generation)).collect()
}

#[test]
fn commits_are_atomic_and_snapshots_are_stable_under_contention() {
    let db = Database::<TextLang>::new();
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicUsize::new(0));
    let checks = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_millis(1500);

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (db, stop, commits) = (db.clone(), Arc::clone(&stop), Arc::clone(&commits));
            thread::spawn(move || {
                let mut generation = 0;
                while !stop.load(Ordering::Relaxed) {
                    generation += 1;
                    for task in 0..TASKS_PER_WRITER {
                        commit(&db, writer, task, generation);
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (db, stop, checks) = (db.clone(), Arc::clone(&stop), Arc::clone(&checks));
            thread::spawn(move || {
                let mut last_clock = 0;
                let mut last_seen: HashMap<TaskId, u64> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let snapshot = db.snapshot();
                    assert!(snapshot.clock() >= last_clock, "the clock never goes back");
                    last_clock = snapshot.clock();
                    let first = check(&snapshot);
                    for (task, generation) in &first {
                        let before = last_seen.insert(*task, *generation).unwrap_or(0);
                        assert!(*generation >= before, "a later snapshot never shows an older version");
                    }
                    // Commits go on meanwhile: the same snapshot must answer the same.
                    thread::yield_now();
                    assert_eq!(check(&snapshot), first, "a snapshot's answers do not change");
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for handle in writers.into_iter().chain(readers) {
        handle.join().expect("no thread panicked");
    }
    let (commits, checks) = (commits.load(Ordering::Relaxed), checks.load(Ordering::Relaxed));
    assert!(commits >= WRITERS * TASKS_PER_WRITER, "writers made progress: {commits}");
    assert!(checks >= READERS, "readers made progress: {checks}");
    let final_state = check(&db.snapshot());
    assert_eq!(final_state.len(), WRITERS * TASKS_PER_WRITER);
    assert_eq!(db.stats().open_snapshots, 0);
}

#[test]
fn a_large_commit_is_seen_whole_while_it_is_built_and_published() {
    let db = Database::<TextLang>::new();
    let big = {
        let db = db.clone();
        thread::spawn(move || {
            let mut writer = db.writer("big");
            for i in 0..200_000u32 {
                writer.insert(LEFT, i, String::new()).expect("open schema");
            }
            writer.commit().expect("valid")
        })
    };
    let mut observed = 0;
    while !big.is_finished() {
        let snapshot = db.snapshot();
        let len = snapshot.partition_len(LEFT);
        assert!(len == 0 || len == 200_000, "saw {len} of 200,000 records");
        let found = snapshot.query(LEFT).exact(199_999u32).count().expect("open schema");
        assert_eq!(found, usize::from(len > 0), "the last record arrives with the first");
        observed += 1;
    }
    big.join().expect("commit thread");
    assert!(observed > 0);
    assert_eq!(db.snapshot().partition_len(LEFT), 200_000);
}
