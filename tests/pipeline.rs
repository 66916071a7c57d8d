//! The pipeline property test: random edit scripts on a five-stage pipeline with
//! cross-file references, file additions and removals. After every edit, the
//! incremental result (the driver re-running stale tasks) must equal a from-scratch
//! build in a fresh database, partition by partition, and no task may have re-run
//! when what its queries read had not changed.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chunkdb::{ContentHash, Database, ReadEntry, TaskContext, TaskId};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use support::pipeline::{self, Toy};

const FILES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
const NAMES: [&str; 4] = ["x", "y", "z", "w"];

/// One line of toy source.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&NAMES[..]).prop_map(|name| format!("fn {name}")),
        3 => (proptest::sample::select(&FILES[..]), proptest::sample::select(&NAMES[..]))
            .prop_map(|(file, name)| format!("use {file}::{name}")),
        1 => Just(String::new()),
        1 => Just("fn".to_owned()),
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    /// Set a file's text (adding the file if it does not exist).
    Write { file: usize, lines: Vec<String> },
    /// Change one line of an existing file (a body edit).
    Line { file: usize, at: usize, line: String },
    /// Re-submit a file's identical text.
    Touch { file: usize },
    /// Delete a file.
    Remove { file: usize },
    /// Change one line of an existing file and, before anything runs, change it back
    /// (an edit undone): what its readers read is as it was.
    Undone { file: usize, at: usize, line: String },
    /// Close and reopen a persisted database; with `pending`, after committing that
    /// line edit and before driving it, so the stale set crosses the restart.
    Restart { pending: Option<(usize, usize, String)> },
}

fn edit() -> impl Strategy<Value = Edit> {
    let file = || 0..FILES.len();
    prop_oneof![
        2 => (file(), proptest::collection::vec(line(), 0..5)).prop_map(|(file, lines)| Edit::Write { file, lines }),
        4 => (file(), 0..5usize, line()).prop_map(|(file, at, line)| Edit::Line { file, at, line }),
        1 => file().prop_map(|file| Edit::Touch { file }),
        1 => file().prop_map(|file| Edit::Remove { file }),
        1 => (file(), 0..5usize, line()).prop_map(|(file, at, line)| Edit::Undone { file, at, line }),
        1 => proptest::option::of((file(), 0..5usize, line())).prop_map(|pending| Edit::Restart { pending }),
    ]
}

/// What each task's queries returned in its last run: (read, results hash).
type Seen = Mutex<HashMap<TaskId, Vec<(ReadEntry, ContentHash)>>>;

/// Runs pipeline tasks, checking before each re-run that some read changed.
fn checked_run<'a>(
    seen: &'a Seen,
    unjustified: &'a Mutex<Vec<String>>,
) -> impl Fn(&TaskContext<Toy>) -> chunkdb::Result<()> + Sync + 'a {
    move |ctx| {
        let task = ctx.task();
        let before = seen.lock().unwrap().get(&task).cloned();
        if let Some(reads) = before
            && ctx.snapshot().task_chunk(task).is_some()
            && reads.iter().all(|(read, hash)| ctx.snapshot().results_hash(read) == *hash)
        {
            unjustified
                .lock()
                .unwrap()
                .push(format!("{task} re-ran though none of its {} reads changed", reads.len()));
        }
        pipeline::run_task(ctx)?;
        let reads = ctx.reads().into_iter().map(|read| {
            let hash = ctx.snapshot().results_hash(&read);
            (read, hash)
        });
        seen.lock().unwrap().insert(task, reads.collect());
        Ok(())
    }
}

fn from_scratch(files: &BTreeMap<usize, Vec<String>>) -> Vec<String> {
    let db = Database::<Toy>::new();
    for (file, lines) in files {
        pipeline::write_source(&db, FILES[*file], &lines.join("\n")).unwrap();
    }
    pipeline::drive(&db, false).unwrap();
    pipeline::contents(&db)
}

/// Task runs and skipped stale tasks over the whole test.
static RUNS: AtomicUsize = AtomicUsize::new(0);
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

fn run_script(edits: &[Edit], parallel: bool, dir: Option<&std::path::Path>) -> Result<usize, TestCaseError> {
    let mut db = match dir {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir);
            Database::<Toy>::open(dir).unwrap()
        }
        None => Database::<Toy>::new(),
    };
    let seen = Seen::default();
    let unjustified = Mutex::new(Vec::new());
    let run = checked_run(&seen, &unjustified);
    let mut files: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (step, edit) in edits.iter().enumerate() {
        match edit {
            Edit::Write { file, lines } => {
                files.insert(*file, lines.clone());
            }
            Edit::Line { file, at, line } => {
                let Some(lines) = files.get_mut(file) else { continue };
                match lines.get_mut(*at) {
                    Some(old) => *old = line.clone(),
                    None => lines.push(line.clone()),
                }
            }
            Edit::Touch { file } => {
                if !files.contains_key(file) {
                    continue;
                }
            }
            Edit::Remove { file } => {
                if files.remove(file).is_some() {
                    pipeline::remove_source(&db, FILES[*file]);
                }
            }
            Edit::Restart { pending } => {
                if let Some((file, at, line)) = pending
                    && let Some(lines) = files.get_mut(file)
                {
                    match lines.get_mut(*at) {
                        Some(old) => *old = line.clone(),
                        None => lines.push(line.clone()),
                    }
                    pipeline::write_source(&db, FILES[*file], &lines.join("\n")).unwrap();
                }
                if let Some(dir) = dir {
                    let stale_before = db.stale();
                    db.flush().unwrap();
                    drop(db);
                    db = Database::<Toy>::open(dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(db.stale(), stale_before, "the stale set survives the restart");
                    db.check_consistency().map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            Edit::Undone { file, at, line } => {
                let Some(lines) = files.get(file) else { continue };
                let mut edited = lines.clone();
                match edited.get_mut(*at) {
                    Some(old) => *old = line.clone(),
                    None => edited.push(line.clone()),
                }
                pipeline::write_source(&db, FILES[*file], &edited.join("\n")).unwrap();
                pipeline::write_source(&db, FILES[*file], &lines.join("\n")).unwrap();
            }
        }
        if let Edit::Write { file, .. } | Edit::Line { file, .. } | Edit::Touch { file } = edit
            && let Some(lines) = files.get(file)
        {
            let receipt = pipeline::write_source(&db, FILES[*file], &lines.join("\n")).unwrap();
            if matches!(edit, Edit::Touch { .. }) {
                prop_assert!(
                    !receipt.output_changed && receipt.invalidated.is_empty(),
                    "a touch changes nothing"
                );
            }
        }
        let report = chunkdb::Driver::new(&db)
            .parallel(parallel)
            .run(&run)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        RUNS.fetch_add(report.ran.len(), Ordering::Relaxed);
        SKIPPED.fetch_add(report.skipped.len(), Ordering::Relaxed);
        prop_assert!(db.stale().is_empty());
        prop_assert!(!db.has_garbage(), "the driver collects what removals left");
        db.check_consistency().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let incremental = pipeline::contents(&db);
        let expected = from_scratch(&files);
        prop_assert_eq!(&incremental, &expected, "after edit {} ({:?})", step, edit);
        let unjustified = std::mem::take(&mut *unjustified.lock().unwrap());
        prop_assert!(unjustified.is_empty(), "after edit {} ({:?}): {:?}", step, edit, unjustified);
        prop_assert_eq!(
            db.stats().tasks,
            files.len() * 5,
            "five tasks per file; deleted files' are collected"
        );
    }
    Ok(edits.len())
}

#[test]
fn incremental_equals_from_scratch_over_random_edit_scripts() {
    // 48 scripts of 45 edits: 2,160 edits per run, half of them driven in parallel.
    let config = Config {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let total = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (proptest::collection::vec(edit(), 45), any::<bool>());
    runner
        .run(&strategy, |(edits, parallel)| {
            let done = run_script(&edits, parallel, None)?;
            total.fetch_add(done, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert!(total.into_inner() >= 2000, "at least 2,000 edits per run");
    // Key-level invalidation over-approximates; the driver confirmed these stale
    // tasks' reads unchanged and did not run them (no run was unjustified, above).
    let (runs, skipped) = (RUNS.load(Ordering::Relaxed), SKIPPED.load(Ordering::Relaxed));
    println!(
        "pipeline: {runs} runs; {skipped} stale tasks skipped unrun, their reads unchanged ({:.1}% of the stale tasks)",
        100.0 * skipped as f64 / (runs + skipped).max(1) as f64
    );
}

#[test]
fn incremental_equals_from_scratch_across_restarts() {
    // The same property with the database persisted, closed and reopened at random
    // points (some between an edit's commit and its drive): after a restart,
    // re-submitting an identical file changes nothing, and an edit re-runs what it
    // would have re-run without the restart (no run is unjustified, the result equals
    // a from-scratch build).
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        cases: 16,
        rng_seed: RngSeed::Fixed(0xd15c),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (proptest::collection::vec(edit(), 45), any::<bool>());
    runner
        .run(&strategy, |(edits, parallel)| {
            run_script(&edits, parallel, Some(&dir.path().join("db"))).map(drop)
        })
        .unwrap();
}
