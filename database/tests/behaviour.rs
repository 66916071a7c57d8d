//! End-to-end behaviour of the runtime on the reference schemas: writing, versions,
//! snapshots, every query kind, read tracking, errors and stats.

use chunkdb_database::reference::{
    DIAGNOSTICS, Diagnostic, Function, Module, RefLang, RefRecord, RefRecordRef, SYMBOLS, Struct, TextLang,
};
use chunkdb_database::{
    ChunkId, Database, Error, Ident, KeyBuilder, KeyPrefix, KeyRange, Result, SortKey, SortKeyRef, TaskId,
};

fn file(name: &str) -> Ident {
    Ident::named(name)
}

fn names(results: &chunkdb_database::QueryResults<'_, RefLang>) -> Vec<String> {
    results
        .records()
        .map(|record| match record {
            RefRecordRef::Module(m) => m.name.to_string(),
            RefRecordRef::Function(f) => f.name.to_string(),
            RefRecordRef::Struct(s) => s.name.to_string(),
            RefRecordRef::Diagnostic(d) => d.message.to_string(),
        })
        .collect()
}

fn parse_file(
    db: &Database<RefLang>,
    path: &str,
    functions: &[&str],
) -> Result<chunkdb_database::CommitReceipt> {
    let mut writer = db.writer(format!("parse:{path}"));
    writer.insert(SYMBOLS, (file(path), path), Module::new(path, functions))?;
    for name in functions {
        writer.insert(
            SYMBOLS,
            (file(path), format!("{path}::{name}")),
            Function::new(name, &["i32"], None),
        )?;
    }
    writer.commit()
}

#[test]
fn commit_then_query_every_kind() -> Result<()> {
    let db = Database::<RefLang>::new();
    parse_file(&db, "a.rs", &["alpha", "beta", "gamma"])?;
    parse_file(&db, "b.rs", &["delta"])?;
    let snap = db.snapshot();
    let a = file("a.rs");

    assert_eq!(snap.query(SYMBOLS).execute()?.len(), 6);
    assert_eq!(names(&snap.get(SYMBOLS, (a, "a.rs::beta"))?), ["beta"]);
    assert!(snap.get(SYMBOLS, (a, "a.rs::zeta"))?.is_empty());
    assert_eq!(names(&snap.query(SYMBOLS).begins_with((a,)).execute()?), ["a.rs", "alpha", "beta", "gamma"]);
    let partial = KeyPrefix::new((a,)).str_prefix("a.rs::");
    assert_eq!(names(&snap.query(SYMBOLS).begins_with(partial).execute()?), ["alpha", "beta", "gamma"]);
    let between = snap.query(SYMBOLS).between((a, "a.rs::alpha"), (a, "a.rs::beta")).execute()?;
    assert_eq!(names(&between), ["alpha", "beta"]);
    assert_eq!(names(&snap.query(SYMBOLS).lt((a, "a.rs::beta")).execute()?), ["a.rs", "alpha"]);
    assert_eq!(names(&snap.query(SYMBOLS).le((a, "a.rs::beta")).execute()?), ["a.rs", "alpha", "beta"]);
    assert_eq!(names(&snap.query(SYMBOLS).gt((a, "a.rs::beta")).execute()?).len(), 3);
    assert_eq!(names(&snap.query(SYMBOLS).ge((a, "a.rs::gamma")).execute()?).len(), 3);
    // A one-component bound covers every key that starts with it.
    assert_eq!(snap.query(SYMBOLS).le((a,)).count()?, 4);
    assert_eq!(snap.query(SYMBOLS).gt((a,)).count()?, 2);

    let batch = snap.batch_get([(SYMBOLS, (a, "a.rs::gamma")), (SYMBOLS, (file("b.rs"), "b.rs::delta"))])?;
    assert_eq!(batch.iter().map(|r| r.len()).collect::<Vec<_>>(), [1, 1]);

    let hit = snap.get(SYMBOLS, (a, "a.rs::alpha"))?.first().expect("alpha is there");
    assert_eq!(hit.task(), TaskId::new("parse:a.rs"));
    assert_eq!(hit.partition(), SYMBOLS);
    assert_eq!(hit.sort_key(), &SortKey::encode((a, "a.rs::alpha")));
    assert_eq!(Some(hit.chunk_id()), snap.task_chunk(TaskId::new("parse:a.rs")).map(|c| c.id()));
    Ok(())
}

#[test]
fn results_come_in_key_order_with_ties_by_task() -> Result<()> {
    let db = Database::<TextLang>::new();
    let p = Ident::named("shared");
    for task in ["t3", "t1", "t2"] {
        let mut writer = db.writer(task);
        writer.insert(p, "same", format!("from {task}"))?;
        writer.insert(p, format!("{task}-own"), "own".to_string())?;
        writer.commit()?;
    }
    let snap = db.snapshot();
    let same = snap.get(p, "same")?;
    let tasks: Vec<u64> = same.iter().map(|hit| hit.task().ident().raw()).collect();
    let mut sorted = tasks.clone();
    sorted.sort_unstable();
    assert_eq!(tasks, sorted, "ties come in ascending task-id order");
    let all = snap.query(p).execute()?;
    let keys: Vec<SortKeyRef<'_>> = all.iter().map(|hit| hit.sort_key()).collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]));
    Ok(())
}

#[test]
fn new_version_replaces_old_by_rule_and_old_snapshots_keep_theirs() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a = file("a.rs");
    let first = parse_file(&db, "a.rs", &["old_name", "kept"])?;
    let before = db.snapshot();
    let second = parse_file(&db, "a.rs", &["new_name", "kept"])?;
    assert_eq!(second.superseded, first.chunk);
    assert!(second.output_changed);
    assert_eq!(second.partitions_touched, [SYMBOLS]);

    let after = db.snapshot();
    let prefix = KeyPrefix::new((a,)).str_prefix("a.rs::");
    assert_eq!(names(&after.query(SYMBOLS).begins_with(prefix.clone()).execute()?), ["kept", "new_name"]);
    assert_eq!(names(&before.query(SYMBOLS).begins_with(prefix).execute()?), ["kept", "old_name"]);
    assert_eq!(before.clock() + 1, after.clock());
    assert_eq!(db.stats().tasks, 1);
    assert_eq!(db.stats().records, 3);
    Ok(())
}

#[test]
fn identical_commit_is_stored_once() -> Result<()> {
    let db = Database::<RefLang>::new();
    let first = parse_file(&db, "a.rs", &["f"])?;
    let clock = db.clock();
    let again = parse_file(&db, "a.rs", &["f"])?;
    assert_eq!(first.chunk, again.chunk);
    assert!(!again.stored && !again.output_changed);
    assert_eq!(db.clock(), clock, "an identical commit changes nothing");
    assert_eq!(db.stats().versions_committed, 1);
    Ok(())
}

#[test]
fn same_output_new_dependencies_is_an_early_cutoff() -> Result<()> {
    let db = Database::<RefLang>::new();
    let src = parse_file(&db, "a.rs", &["f"])?.chunk.expect("stored");
    let src2 = parse_file(&db, "b.rs", &["g"])?.chunk.expect("stored");
    let write = |dep: ChunkId| -> Result<chunkdb_database::CommitReceipt> {
        let mut writer = db.writer("summary");
        writer.set_parent(TaskId::new("parse:a.rs")).depend_on(dep);
        writer.insert(DIAGNOSTICS, (file("a.rs"), 0u8, 0u32), Diagnostic::new("ok", 0, 1))?;
        writer.commit()
    };
    let one = write(src)?;
    let two = write(src2)?;
    assert_ne!(one.chunk, two.chunk, "dependencies are part of the chunk id");
    assert_eq!(one.output_hash, two.output_hash);
    assert!(two.stored && !two.output_changed && two.partitions_touched.is_empty());
    let chunk = db.snapshot().task_chunk(TaskId::new("summary")).cloned().expect("current");
    assert_eq!(chunk.dependencies(), [src2]);
    assert_eq!(chunk.parent(), Some(TaskId::new("parse:a.rs")));
    assert!(!chunk.is_entry());
    Ok(())
}

#[test]
fn partitions_touched_are_only_those_that_changed() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a = file("a.rs");
    let write = |message: &str| -> Result<chunkdb_database::CommitReceipt> {
        let mut writer = db.writer("check:a.rs");
        writer.insert(SYMBOLS, (a, "s"), Struct::new("S", &[("x", "i32")]))?;
        writer.insert(DIAGNOSTICS, (a, 2u8, 0u32), Diagnostic::new(message, 2, 3))?;
        writer.commit()
    };
    let mut both = vec![SYMBOLS, DIAGNOSTICS];
    both.sort_unstable();
    assert_eq!(write("first")?.partitions_touched, both);
    assert_eq!(write("second")?.partitions_touched, [DIAGNOSTICS]);
    Ok(())
}

#[test]
fn remove_task_is_a_tombstone() -> Result<()> {
    let db = Database::<RefLang>::new();
    parse_file(&db, "a.rs", &["f"])?;
    let before = db.snapshot();
    let removed = db.remove_task("parse:a.rs");
    assert!(removed.stored && removed.output_changed && removed.chunk.is_none());
    assert_eq!(removed.partitions_touched, [SYMBOLS]);
    let after = db.snapshot();
    assert!(after.query(SYMBOLS).execute()?.is_empty());
    assert_eq!(before.query(SYMBOLS).count()?, 2);
    assert!(after.task_chunk(TaskId::new("parse:a.rs")).is_none());
    let again = db.remove_task("parse:a.rs");
    assert!(!again.stored, "removing an absent task changes nothing");
    assert_eq!(db.clock(), removed.clock);
    Ok(())
}

#[test]
fn errors_say_what_was_wrong_and_change_nothing() -> Result<()> {
    let db = Database::<RefLang>::new();
    parse_file(&db, "a.rs", &["f"])?;
    let clock = db.clock();
    let a = file("a.rs");

    let mut writer = db.writer("bad");
    let unknown = writer.insert(Ident::named("nope"), (a, "x"), Function::new("f", &[], None)).unwrap_err();
    assert!(matches!(unknown, Error::UnknownPartition { .. }));
    assert!(unknown.to_string().contains("`symbols`, `diagnostics`"), "{unknown}");

    let wrong_kind = writer.insert(SYMBOLS, (a, "x"), Diagnostic::new("d", 1, 1)).unwrap_err();
    assert!(matches!(wrong_kind, Error::RecordNotAllowed { kind: "Diagnostic", .. }), "{wrong_kind}");

    let wrong_key = writer.insert(DIAGNOSTICS, (a, 1u32), Diagnostic::new("d", 1, 1)).unwrap_err();
    assert!(matches!(wrong_key, Error::BadSortKey { .. }));
    assert!(wrong_key.to_string().contains("(file: Ident, severity: u8, seq: u32)"), "{wrong_key}");
    assert!(writer.is_empty(), "failed inserts leave the writer unchanged");

    writer.insert(SYMBOLS, (a, "dup"), Function::new("f", &[], None))?;
    writer.insert(SYMBOLS, (a, "dup"), Function::new("g", &[], None))?;
    assert!(matches!(writer.commit().unwrap_err(), Error::DuplicateSortKey { .. }));

    let mut writer = db.writer("bad");
    writer.depend_on(ChunkId::from_raw(42));
    writer.insert(SYMBOLS, (a, "ok"), Function::new("f", &[], None))?;
    let missing = writer.commit().unwrap_err();
    assert!(matches!(missing, Error::UnknownDependency { .. }), "{missing}");

    let snap = db.snapshot();
    assert!(matches!(snap.query(Ident::named("nope")).execute(), Err(Error::UnknownPartition { .. })));
    assert!(matches!(snap.get(SYMBOLS, 5u8), Err(Error::BadSortKey { .. })));
    assert!(matches!(
        snap.query(DIAGNOSTICS).begins_with((a, 1u16)).execute(),
        Err(Error::BadSortKey { .. })
    ));

    assert_eq!(db.clock(), clock, "no failed operation committed anything");
    assert_eq!(snap.query(SYMBOLS).count()?, 2);
    assert!(snap.task_chunk(TaskId::new("bad")).is_none());
    Ok(())
}

#[test]
fn open_schema_accepts_plain_string_keys_laburnum_style() -> Result<()> {
    let db = Database::<TextLang>::new();
    let diagnostics = Ident::named("diags");
    let mut writer = db.writer("lex:a");
    for (severity, seq) in [(1, 2), (2, 1), (1, 1)] {
        writer.insert(diagnostics, format!("file:///a|{severity}|{seq:04}"), format!("d{severity}{seq}"))?;
    }
    writer.commit()?;
    let snap = db.snapshot();
    let errors = snap.query(diagnostics).begins_with(KeyPrefix::str_start("file:///a|2|")).execute()?;
    assert_eq!(errors.records().collect::<Vec<_>>(), ["d21"]);
    let all: Vec<&str> = snap
        .query(diagnostics)
        .begins_with(KeyPrefix::str_start("file:///a|"))
        .execute()?
        .records()
        .collect();
    assert_eq!(all, ["d11", "d12", "d21"]);
    let range: Vec<&str> = snap
        .query(diagnostics)
        .between(KeyPrefix::str_start("file:///a|1|0002"), KeyPrefix::str_start("file:///a|2|"))
        .execute()?
        .records()
        .collect();
    assert_eq!(range, ["d12", "d21"]);
    Ok(())
}

#[test]
fn task_context_records_ranges_chunks_and_pending_reads() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a_chunk = parse_file(&db, "a.rs", &["f", "g"])?.chunk.expect("stored");
    let b_chunk = parse_file(&db, "b.rs", &["h"])?.chunk.expect("stored");
    let (a, b, c) = (file("a.rs"), file("b.rs"), file("c.rs"));

    let ctx = db.task("resolve:a.rs");
    ctx.set_parent(TaskId::new("parse:a.rs"));
    let found = ctx.query(SYMBOLS).begins_with((a,)).execute()?;
    assert_eq!(found.len(), 3);
    let exact = ctx.get(SYMBOLS, (b, "b.rs::h"))?;
    assert_eq!(exact.len(), 1);
    let missing = ctx.get(SYMBOLS, (c, "c.rs::main"))?;
    assert!(missing.is_empty());
    // Reading lazily is recorded too, when the iterator is dropped.
    assert_eq!(ctx.query(DIAGNOSTICS).iter()?.count(), 0);
    ctx.insert(DIAGNOSTICS, (a, 2u8, 0u32), Diagnostic::new("unresolved c.rs::main", 2, 1))?;

    let reads = ctx.reads();
    assert_eq!(reads.len(), 4);
    assert_eq!(reads[0].range(), &KeyRange::prefix(KeyPrefix::new((a,)).as_bytes()));
    assert_eq!(reads[0].chunks(), [a_chunk]);
    assert_eq!(reads[1].range(), &KeyRange::exact(SortKey::encode((b, "b.rs::h")).as_bytes()));
    assert_eq!(reads[1].chunks(), [b_chunk]);
    let pending = ctx.pending();
    assert_eq!(pending.len(), 2);
    assert!(pending[0].range().contains(SortKey::encode((c, "c.rs::main")).as_bytes()));
    assert_eq!(pending[1].partition(), DIAGNOSTICS);
    drop((found, exact, missing));

    let receipt = ctx.commit()?;
    let chunk = db.snapshot().task_chunk(receipt.task).cloned().expect("committed");
    let mut expected = vec![a_chunk, b_chunk];
    expected.sort_unstable();
    assert_eq!(chunk.dependencies(), expected);
    assert_eq!(chunk.reads(), reads);
    Ok(())
}

#[test]
fn two_queries_of_one_task_see_the_same_snapshot() -> Result<()> {
    let db = Database::<RefLang>::new();
    parse_file(&db, "a.rs", &["f"])?;
    let ctx = db.task("reader");
    let first = ctx.query(SYMBOLS).count()?;
    parse_file(&db, "b.rs", &["g", "h"])?;
    let second = ctx.query(SYMBOLS).count()?;
    assert_eq!(first, second, "a snapshot's clock filters every read");
    assert_eq!(db.snapshot().query(SYMBOLS).count()?, 5);
    Ok(())
}

#[test]
fn stats_count_what_is_held() -> Result<()> {
    let db = Database::<RefLang>::new();
    parse_file(&db, "a.rs", &["f", "g"])?;
    parse_file(&db, "b.rs", &["h"])?;
    let mut writer = db.writer("check");
    writer.insert(DIAGNOSTICS, (file("a.rs"), 1u8, 0u32), Diagnostic::new("w", 1, 1))?;
    writer.commit()?;
    let held = db.snapshot();
    parse_file(&db, "a.rs", &["f"])?;

    let stats = db.stats();
    assert_eq!((stats.tasks, stats.chunks, stats.records), (3, 3, 5));
    assert_eq!(stats.versions_committed, 4);
    assert_eq!(stats.open_snapshots, 1);
    assert_eq!(stats.chunks_in_memory, 4, "the superseded a.rs version is held by a snapshot");
    assert!(stats.bytes > 0);
    let symbols = stats.partitions.iter().find(|p| p.partition == SYMBOLS).expect("symbols");
    assert_eq!((symbols.records, symbols.chunks), (4, 2));
    drop(held);
    // The reader that let go does not free the old version; the writer side does.
    assert_eq!(db.stats().chunks_in_memory, 4);
    assert!(db.free_superseded() >= 1);
    let stats = db.stats();
    assert_eq!((stats.open_snapshots, stats.chunks_in_memory, stats.retired_states), (0, 3, 0));
    Ok(())
}

#[test]
fn records_round_trip_through_typed_views() -> Result<()> {
    let db = Database::<RefLang>::new();
    let record = RefRecord::Function(Function::new("f", &["a", "b"], Some("c")));
    let mut writer = db.writer("t");
    writer.insert(SYMBOLS, KeyBuilder::new().part(file("x")).part("f").key(), record.clone())?;
    writer.commit()?;
    let snap = db.snapshot();
    let hit = snap.query(SYMBOLS).execute()?.first().expect("one record");
    assert_eq!(hit.record().to_owned(), record);
    let chunk = hit.chunk();
    assert_eq!(chunk.records()?.count(), 1);
    Ok(())
}

#[test]
fn same_output_from_different_reads_is_a_new_version() -> Result<()> {
    let db = Database::<RefLang>::new();
    let run = |read: &str| -> Result<chunkdb_database::CommitReceipt> {
        let ctx = db.task("check");
        assert!(ctx.query(SYMBOLS).begins_with((file(read),)).execute()?.is_empty());
        ctx.insert(DIAGNOSTICS, (file("x"), 0u8, 0u32), Diagnostic::new("same", 0, 0))?;
        ctx.commit()
    };
    let first = run("a.rs")?;
    let second = run("b.rs")?;
    assert_ne!(first.chunk, second.chunk, "the read ranges are part of the chunk's identity");
    assert!(second.stored && !second.output_changed);
    let chunk = db.snapshot().task_chunk(TaskId::new("check")).cloned().expect("current");
    let prefix = KeyPrefix::new((file("b.rs"),));
    assert_eq!(chunk.reads()[0].range(), &KeyRange::prefix(prefix.as_bytes()));
    assert!(!run("b.rs")?.stored, "the same run again is stored once");
    Ok(())
}

#[test]
fn key_shapes_are_checked_kind_by_kind() {
    let db = Database::<RefLang>::new();
    let mut writer = db.writer("t");
    let record = || Diagnostic::new("d", 1, 1);
    let error = writer.insert(DIAGNOSTICS, (7u64, 1u8, 0u32), record()).unwrap_err();
    assert!(error.to_string().contains("component 0 (`file`) must be Ident, not u64"), "{error}");
    let error = writer.insert(DIAGNOSTICS, (file("a"), 1u8, 0i32), record()).unwrap_err();
    assert!(error.to_string().contains("must be u32, not i32"), "{error}");
    let snap = db.snapshot();
    let error = snap.query(SYMBOLS).begins_with(KeyPrefix::str_start("src/main.rs")).execute().unwrap_err();
    assert!(matches!(error, Error::BadSortKey { .. }), "a bare string is not an Ident: {error}");
    // Raw encoded keys carry no shape: they are checked by their encoding.
    assert!(snap.get(SYMBOLS, SortKey::encode((file("a"), "f"))).is_ok());
    assert!(snap.get(SYMBOLS, SortKey::from_encoded(&[1, 2, 3])).is_err());
}

#[test]
fn empty_ranges_are_not_pending_and_failed_batches_record_nothing() -> Result<()> {
    let db = Database::<RefLang>::new();
    let ctx = db.task("t");
    let a = file("a.rs");
    assert!(ctx.query(SYMBOLS).between((a, "z"), (a, "a")).execute()?.is_empty());
    assert_eq!(ctx.reads().len(), 1);
    assert!(ctx.pending().is_empty(), "nothing can ever arrive in an empty range");
    let bad = ctx.batch_get([(SYMBOLS, SortKey::encode((a, "f"))), (SYMBOLS, SortKey::from_encoded(&[9]))]);
    assert!(bad.is_err());
    assert_eq!(ctx.reads().len(), 1, "a failed batch records no read");
    Ok(())
}

/// A whole string component and the start of one are spelled differently and select
/// different records (a bare string does not compile as a prefix: `tests/ui`).
#[test]
fn a_whole_string_bound_and_a_string_start_differ() -> Result<()> {
    use chunkdb_database::reference::TextLang;
    let db = Database::<TextLang>::new();
    let names = Ident::named("names");
    let mut writer = db.writer("names");
    for name in ["b", "c", "cat", "d"] {
        writer.insert(names, (name,), name.to_string())?;
    }
    writer.commit()?;
    let snapshot = db.snapshot();
    let values = |query: chunkdb_database::Query<'_, TextLang>| -> Result<Vec<String>> {
        Ok(query.execute()?.records().map(str::to_string).collect())
    };
    assert_eq!(values(snapshot.query(names).le(("c",)))?, ["b", "c"]);
    assert_eq!(values(snapshot.query(names).le(KeyPrefix::str_start("c")))?, ["b", "c", "cat"]);
    assert_eq!(values(snapshot.query(names).begins_with(("c",)))?, ["c"]);
    assert_eq!(values(snapshot.query(names).begins_with(KeyPrefix::str_start("c")))?, ["c", "cat"]);
    Ok(())
}

/// `chunks_in_memory` counts objects: a version re-committed after it was superseded
/// (an edit undone) is a new object with the old id, and a snapshot still holds the
/// old one. An identical re-commit supersedes nothing.
#[test]
fn chunks_in_memory_counts_objects_and_identical_commits_supersede_nothing() -> Result<()> {
    let db = Database::<RefLang>::new();
    let file = Ident::named("undo.rs");
    let write = |name: &str| -> Result<chunkdb_database::CommitReceipt> {
        let mut writer = db.writer("parse:undo.rs");
        writer.insert(SYMBOLS, (file, "f"), Function::new(name, &[], None))?;
        writer.commit()
    };
    let first = write("f")?;
    let held_first = db.snapshot();
    write("g")?;
    let held_second = db.snapshot();
    let again = write("f")?;
    assert_eq!(again.chunk, first.chunk, "the same content has the same id");
    let stats = db.stats();
    assert_eq!((stats.chunks, stats.chunks_in_memory), (1, 3));
    let identical = write("f")?;
    assert!(!identical.stored);
    assert_eq!(identical.superseded, None);
    assert_eq!(identical.chunk, first.chunk);
    drop((held_first, held_second));
    db.free_superseded();
    assert_eq!(db.stats().chunks_in_memory, 1);
    Ok(())
}
