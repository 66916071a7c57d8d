//! Persistence: reopening restores what was flushed; refusals are typed errors; no
//! damage to the files makes opening or querying panic or answer wrongly.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use chunkdb_database::reference::{DIAGNOSTICS, Diagnostic, Function, RefLang, SYMBOLS, TextLang};
use chunkdb_database::{Database, Error, Ident, OpenOptions, TaskId};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// Two sources and a task that reads one of them, flushed.
fn populate(db: &Database<RefLang>) {
    for (file, names) in [("a.rs", &["main", "helper"][..]), ("b.rs", &["lib"][..])] {
        let ident = Ident::named(file);
        let mut writer = db.writer(format!("parse:{file}"));
        for name in names {
            writer.insert(SYMBOLS, (ident, *name), Function::new(name, &["i32"], Some("u8"))).unwrap();
        }
        writer.commit().unwrap();
    }
    let check = db.task("check:a.rs");
    let found = check.query(SYMBOLS).begins_with((Ident::named("a.rs"),)).execute().unwrap().len();
    check
        .insert(
            DIAGNOSTICS,
            (Ident::named("a.rs"), 1u8, 0u32),
            Diagnostic::new(&format!("{found} items"), 1, 1),
        )
        .unwrap();
    check.commit().unwrap();
    db.flush().unwrap();
}

/// Every record, by partition, as (key, task, record) text.
fn answers(db: &Database<RefLang>) -> chunkdb_database::Result<BTreeMap<String, Vec<String>>> {
    let snapshot = db.snapshot();
    let mut out = BTreeMap::new();
    for partition in [SYMBOLS, DIAGNOSTICS] {
        let hits = snapshot.query(partition).execute()?;
        let rows = hits
            .iter()
            .map(|hit| format!("{:?} {} {:?}", hit.sort_key(), hit.task(), hit.record()))
            .collect();
        out.insert(format!("{partition:?}"), rows);
    }
    Ok(out)
}

#[test]
fn a_reopened_database_answers_as_before_and_a_resubmission_reruns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let db = Database::<RefLang>::open(dir.path()).unwrap();
        populate(&db);
        answers(&db).unwrap()
    };
    let db = Database::<RefLang>::open(dir.path()).unwrap();
    assert_eq!(answers(&db).unwrap(), before);
    db.check_consistency().unwrap();
    assert!(db.stale().is_empty());
    // Task names came back with the manifest.
    assert_eq!(TaskId::new("check:a.rs").ident().name().as_deref(), Some("check:a.rs"));

    // The same input again: stored once, nothing to re-run.
    let ident = Ident::named("a.rs");
    let mut writer = db.writer("parse:a.rs");
    for name in ["main", "helper"] {
        writer.insert(SYMBOLS, (ident, name), Function::new(name, &["i32"], Some("u8"))).unwrap();
    }
    let receipt = writer.commit().unwrap();
    assert!(!receipt.stored && receipt.invalidated.is_empty());

    // A changed input invalidates exactly the reader, as it would have in memory.
    let mut writer = db.writer("parse:a.rs");
    writer.insert(SYMBOLS, (ident, "main"), Function::new("main", &[], None)).unwrap();
    let receipt = writer.commit().unwrap();
    assert_eq!(receipt.invalidated, vec![TaskId::new("check:a.rs")]);
}

/// Commits after a reopen that nothing has read yet (its partition trees unbuilt, its
/// read-sets unfiled, first scanned and then filed) invalidate and answer exactly as
/// the same commits on a database that never left memory.
#[test]
fn commits_after_a_reopen_nothing_read_invalidate_and_answer_as_in_memory() {
    const ROUNDS: usize = 12; // more than the commits that scan unfiled reads
    let file = |round: usize| if round % 3 == 2 { "b.rs" } else { "a.rs" };
    let name = |round: usize| format!("item{round:02}");
    // `watch:N` looks for the symbol round N adds; `check:a.rs` reads all of a.rs.
    let setup = |db: &Database<RefLang>| {
        populate(db);
        for round in 0..ROUNDS {
            let watch = db.task(format!("watch:{round}"));
            let key = (Ident::named(file(round)), &*name(round));
            let found = watch.query(SYMBOLS).begins_with(key).execute().unwrap().len();
            let diagnostic = Diagnostic::new(&format!("{found} found"), 1, 1);
            watch.insert(DIAGNOSTICS, (Ident::named("watch"), 1u8, round as u32), diagnostic).unwrap();
            watch.commit().unwrap();
        }
        db.flush().unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    Database::<RefLang>::open(dir.path()).map(|db| setup(&db)).unwrap();
    let reopened = Database::<RefLang>::open(dir.path()).unwrap();
    let twin = Database::<RefLang>::new();
    setup(&twin);
    for round in 0..ROUNDS {
        let mut receipts = Vec::new();
        for db in [&reopened, &twin] {
            let mut writer = db.writer(format!("parse:{}", file(round)));
            let name = name(round);
            writer
                .insert(SYMBOLS, (Ident::named(file(round)), &*name), Function::new(&name, &[], None))
                .unwrap();
            receipts.push((writer.commit().unwrap().invalidated, db.stale()));
        }
        assert_eq!(receipts[0], receipts[1], "round {round}");
        let watch = TaskId::new(&format!("watch:{round}"));
        assert!(receipts[0].0.contains(&watch), "round {round}: {:?}", receipts[0].0);
        assert_eq!(receipts[0].0.contains(&TaskId::new("check:a.rs")), round == 0, "round {round}");
        assert_eq!(answers(&reopened).unwrap(), answers(&twin).unwrap(), "round {round}");
        reopened.check_consistency().unwrap();
    }
}

#[test]
fn another_schema_another_format_and_a_second_opener_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::<RefLang>::open(dir.path()).unwrap();
        populate(&db);
        // A second database on the same directory, even in this process.
        let second = Database::<RefLang>::open(dir.path());
        assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    }
    let other = Database::<TextLang>::open(dir.path());
    match other {
        Err(Error::SchemaMismatch { schema, .. }) => assert_eq!(schema, "TextLang"),
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    let manifest = dir.path().join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&manifest, &bytes).unwrap();
    match Database::<RefLang>::open(dir.path()) {
        Err(error @ Error::FormatMismatch { found: 99, .. }) => {
            assert!(error.to_string().contains("format 99"), "{error}");
        }
        other => panic!("expected a format mismatch, got {other:?}"),
    }
}

#[test]
fn superseded_versions_leave_the_disk_and_sparse_segments_are_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let db = OpenOptions::new().compact_below(0.5).open::<RefLang>(dir.path()).unwrap();
    let file = Ident::named("churn.rs");
    let mut sizes = Vec::new();
    for round in 0..200u32 {
        for task in 0..10u32 {
            let mut writer = db.writer(format!("parse:{task}"));
            let name = format!("f{round}");
            writer.insert(SYMBOLS, (file, name.as_str()), Function::new(&name, &[], None)).unwrap();
            writer.commit().unwrap();
        }
        db.flush().unwrap();
        sizes.push(db.disk_bytes());
    }
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().starts_with("seg-"))
        .count();
    assert!(segments <= 65, "{segments} segment files");
    let (early, late) = (sizes[20], sizes[199]);
    assert!(
        late <= early * 2,
        "the directory grows with edits: {early} bytes after 20 rounds, {late} after 200"
    );
    drop(db);
    let db = Database::<RefLang>::open(dir.path()).unwrap();
    assert_eq!(db.snapshot().query(SYMBOLS).execute().unwrap().len(), 10);
}

/// The files of a directory, by name (the lock file aside).
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name() != "LOCK")
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap()))
        .collect()
}

#[derive(Clone, Debug)]
enum Damage {
    Truncate { file: usize, keep: f64 },
    Flip { file: usize, at: Vec<(f64, u8)> },
}

#[test]
fn damaged_files_give_a_typed_error_or_the_right_answer_never_a_panic() {
    let original = tempfile::tempdir().unwrap();
    let expected = {
        let db = Database::<RefLang>::open(original.path()).unwrap();
        populate(&db);
        answers(&db).unwrap()
    };
    let files = files_of(original.path());
    assert!(files.len() >= 2, "a manifest and a segment: {:?}", files.keys());
    let names: Vec<String> = files.keys().cloned().collect();

    let damage = prop_oneof![
        (0..names.len(), 0.0..1.0f64).prop_map(|(file, keep)| Damage::Truncate { file, keep }),
        (0..names.len(), prop::collection::vec((0.0..1.0f64, 1u8..=255), 1..4))
            .prop_map(|(file, at)| Damage::Flip { file, at }),
    ];
    let config = Config {
        cases: 512,
        rng_seed: RngSeed::Fixed(0xBAD_F11E),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let (opened, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    runner
        .run(&damage, |damage| {
            let dir = tempfile::tempdir().unwrap();
            for (name, bytes) in &files {
                let mut bytes = bytes.clone();
                match &damage {
                    Damage::Truncate { file, keep } if names[*file] == *name => {
                        bytes.truncate((bytes.len() as f64 * keep) as usize);
                    }
                    Damage::Flip { file, at } if names[*file] == *name => {
                        for (place, xor) in at {
                            let at = ((bytes.len() as f64 * place) as usize).min(bytes.len() - 1);
                            bytes[at] ^= xor;
                        }
                    }
                    _ => {}
                }
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            // Discarding what is damaged (checking every chunk's records at open) opens,
            // and what is left is right.
            let recovers = || -> Result<(), TestCaseError> {
                let db =
                    OpenOptions::new().check_at_open(true).discard_damaged(true).open::<RefLang>(dir.path());
                prop_assert!(db.is_ok(), "discarding opens: {:?}", db.as_ref().err());
                if let Ok(db) = db {
                    prop_assert!(db.check_consistency().is_ok());
                    let answers = answers(&db);
                    prop_assert!(answers.is_ok(), "nothing damaged is left: {:?}", answers.as_ref().err());
                    for (partition, rows) in answers.unwrap() {
                        for row in rows {
                            prop_assert!(expected[&partition].contains(&row), "{} not in the original", row);
                        }
                    }
                }
                Ok(())
            };
            match Database::<RefLang>::open(dir.path()) {
                Ok(db) => match answers(&db) {
                    Ok(answers) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Damage the checks did not see changed nothing that is read.
                        prop_assert_eq!(answers, expected.clone());
                        prop_assert!(db.check_consistency().is_ok());
                    }
                    Err(Error::DamagedRecords { .. }) => {
                        // Records are checked at first use: the query that met them says so.
                        refused.fetch_add(1, Ordering::Relaxed);
                        drop(db);
                        recovers()?;
                    }
                    Err(other) => {
                        return Err(TestCaseError::fail(format!("unexpected query error: {other}")));
                    }
                },
                Err(Error::FormatMismatch { .. } | Error::SchemaMismatch { .. }) => {
                    // The header's format or fingerprint bytes were hit: nothing to discard.
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(Error::Corrupt { .. } | Error::CorruptManifest { .. }) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    recovers()?;
                }
                Err(other) => return Err(TestCaseError::fail(format!("unexpected error: {other}"))),
            }
            Ok(())
        })
        .unwrap();
    let (opened, refused) = (opened.into_inner(), refused.into_inner());
    // Most damage is caught; some lands in padding or in bytes nothing reads.
    assert!(refused > 300 && opened > 0, "{refused} refused, {opened} opened intact");
}

#[test]
fn records_are_read_in_place_and_damage_to_them_is_reported_by_the_query_that_meets_it() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let db = Database::<RefLang>::open(dir.path()).unwrap();
        populate(&db);
        answers(&db).unwrap()
    };
    // The diagnostic's message lies only in the records of `check:a.rs`, not in any
    // layout: damage there is invisible until those records are read.
    let segment = files_of(dir.path()).into_keys().find(|name| name.starts_with("seg-")).expect("a segment");
    let path = dir.path().join(&segment);
    let mut bytes = std::fs::read(&path).unwrap();
    let at =
        bytes.windows(7).position(|window| window == b"2 items").expect("the message is stored as written");
    bytes[at] = b'3';
    std::fs::write(&path, bytes).unwrap();

    let db =
        Database::<RefLang>::open(dir.path()).expect("layouts are intact: the open does not read records");
    let symbols = db.snapshot().query(SYMBOLS).execute().unwrap().len();
    assert_eq!(symbols, 3, "chunks whose records are intact answer");
    match db.snapshot().query(DIAGNOSTICS).execute().map(|hits| hits.len()) {
        Err(Error::DamagedRecords { damaged }) => {
            assert_eq!(damaged.task, TaskId::new("check:a.rs"));
            assert!(damaged.reason.contains("checksum"), "{}", damaged.reason);
        }
        other => panic!("the damaged records must be reported, got {other:?}"),
    }
    drop(db);

    // Checking every chunk at open finds it up front; discarding recomputes the task.
    let checked = OpenOptions::new().check_at_open(true).open::<RefLang>(dir.path());
    assert!(matches!(&checked, Err(Error::Corrupt { damaged, .. }) if damaged.len() == 1), "{checked:?}");
    let db =
        OpenOptions::new().check_at_open(true).discard_damaged(true).open::<RefLang>(dir.path()).unwrap();
    assert!(db.snapshot().query(DIAGNOSTICS).execute().unwrap().is_empty());
    assert!(db.stale().iter().any(|task| *task == TaskId::new("check:a.rs")), "{:?}", db.stale());
    populate(&db);
    assert_eq!(answers(&db).unwrap(), before);
    db.check_consistency().unwrap();
}

/// A partition's first read also starts checking all its chunks on a thread of its
/// own; that changes when a check runs, never what a read returns: a lookup in an
/// intact chunk answers although a damaged chunk shares the partition, and the damage
/// is reported to each read that reaches it, whoever ran the check.
#[test]
fn checks_begun_in_the_background_leave_every_answer_as_the_reads_own_checks_would() {
    let dir = tempfile::tempdir().unwrap();
    let key = |file: &str| (Ident::named(file), 1u8, 0u32);
    {
        let db = Database::<RefLang>::open(dir.path()).unwrap();
        for file in ["a.rs", "b.rs", "c.rs"] {
            let mut writer = db.writer(format!("check:{file}"));
            // A message lies only in the records, not in any layout.
            writer.insert(DIAGNOSTICS, key(file), Diagnostic::new(&format!("only in {file}"), 1, 1)).unwrap();
            writer.commit().unwrap();
        }
        db.flush().unwrap();
    }
    let segment = files_of(dir.path()).into_keys().find(|name| name.starts_with("seg-")).expect("a segment");
    let path = dir.path().join(&segment);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(12).position(|window| window == b"only in b.rs").expect("stored as written");
    bytes[at] = b'O';
    std::fs::write(&path, bytes).unwrap();

    for _ in 0..20 {
        let db = Database::<RefLang>::open(dir.path()).unwrap();
        let snapshot = db.snapshot();
        let intact = snapshot.get(DIAGNOSTICS, key("a.rs")).unwrap();
        assert_eq!(intact.len(), 1, "the partition's first read answers from an intact chunk");
        for _ in 0..2 {
            match snapshot.get(DIAGNOSTICS, key("b.rs")) {
                Err(Error::DamagedRecords { damaged }) => assert_eq!(damaged.task, TaskId::new("check:b.rs")),
                other => panic!("the damaged chunk must be reported, got {other:?}"),
            }
        }
        assert_eq!(snapshot.get(DIAGNOSTICS, key("c.rs")).unwrap().len(), 1);
        assert!(matches!(snapshot.query(DIAGNOSTICS).execute(), Err(Error::DamagedRecords { .. })));
    }
}
