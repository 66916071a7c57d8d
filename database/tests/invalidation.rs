//! Invalidation: which tasks a commit makes stale (exact, range and pending reads,
//! removals, runs on an old snapshot), the dependency order of the stale set, and the
//! reference driver (re-running exactly what changed, early cut-off, non-convergence,
//! task errors and verify mode). Every scenario ends with the consistency check.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chunkdb_database::reference::{DIAGNOSTICS, Diagnostic, Function, RefLang, RefRecordRef, SYMBOLS};
use chunkdb_database::{
    CommitReceipt, Database, DriveError, Driver, Error, Ident, Result, TaskContext, TaskId,
};

fn file(name: &str) -> Ident {
    Ident::named(name)
}

fn task(name: &str) -> TaskId {
    TaskId::new(name)
}

fn sorted(mut tasks: Vec<TaskId>) -> Vec<TaskId> {
    tasks.sort_unstable();
    tasks
}

/// Commits `name` as a source (no reads, no parent) writing one function per
/// `(path, return type)` under `file_name`.
fn source(
    db: &Database<RefLang>,
    name: &str,
    file_name: &str,
    functions: &[(&str, &str)],
) -> Result<CommitReceipt> {
    let mut writer = db.writer(name);
    for (path, returns) in functions {
        writer.insert(SYMBOLS, (file(file_name), *path), Function::new(path, &[], Some(returns)))?;
    }
    writer.commit()
}

/// Runs the task `name` once: `read` makes its (recorded) queries and says how many
/// records they found; the output is one diagnostic holding that count.
fn run_reader(
    db: &Database<RefLang>,
    name: &str,
    read: impl FnOnce(&TaskContext<RefLang>) -> Result<usize>,
) -> Result<CommitReceipt> {
    let ctx = db.task(name);
    let hits = read(&ctx)?;
    let line = u32::try_from(hits).expect("few hits");
    ctx.insert(DIAGNOSTICS, (file(name), 0u8, 0u32), Diagnostic::new(&format!("{hits} hits"), 0, line))?;
    ctx.commit()
}

#[test]
fn exact_read_is_invalidated_only_by_its_own_key() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a = file("a.rs");
    source(&db, "parse:a", "a.rs", &[("f", "i32"), ("g", "i32")])?;
    let read_f = |ctx: &TaskContext<RefLang>| Ok(ctx.get(SYMBOLS, (a, "f"))?.len());
    run_reader(&db, "use:f", read_f)?;
    // A second-level reader of use:f's output.
    let read_use = |ctx: &TaskContext<RefLang>| Ok(ctx.get(DIAGNOSTICS, (file("use:f"), 0u8, 0u32))?.len());
    run_reader(&db, "use:use:f", read_use)?;
    assert!(!db.is_stale("use:f") && !db.is_stale("use:use:f"));

    // Another key of the same writer changes: the exact read of `f` is untouched.
    let other_key = source(&db, "parse:a", "a.rs", &[("f", "i32"), ("g", "u64")])?;
    assert!(other_key.output_changed && other_key.stored);
    assert!(other_key.invalidated.is_empty(), "{:?}", other_key.invalidated);
    assert!(!db.is_stale("use:f"));

    // The same output again: stored once, nothing invalidated (early cut-off).
    let same = source(&db, "parse:a", "a.rs", &[("f", "i32"), ("g", "u64")])?;
    assert!(!same.output_changed && !same.stored);
    assert!(same.invalidated.is_empty());

    // The key read changes: its reader, and only it, is stale.
    let changed = source(&db, "parse:a", "a.rs", &[("f", "bool"), ("g", "u64")])?;
    assert_eq!(changed.invalidated, [task("use:f")]);
    assert!(db.is_stale("use:f") && !db.is_stale("use:use:f"));
    assert_eq!(db.stale(), [task("use:f")]);
    // A task already stale is not reported again.
    let again = source(&db, "parse:a", "a.rs", &[("f", "char"), ("g", "u64")])?;
    assert!(again.output_changed && again.invalidated.is_empty());
    assert!(db.is_stale("use:f"));

    // Re-running the reader gives the same output (one hit): a new version (new
    // dependencies) whose unchanged output invalidates nothing downstream.
    let rerun = run_reader(&db, "use:f", read_f)?;
    assert!(rerun.stored && !rerun.output_changed);
    assert!(rerun.invalidated.is_empty());
    assert!(!db.is_stale("use:f") && !db.is_stale("use:use:f"));
    assert!(db.stale().is_empty());
    db.check_consistency()?;
    Ok(())
}

#[test]
fn new_record_inside_a_scanned_range_invalidates_the_scanner() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a = file("a.rs");
    source(&db, "parse:a", "a.rs", &[("alpha", "i32"), ("mid", "i32"), ("zulu", "i32")])?;
    let prefix = |ctx: &TaskContext<RefLang>| Ok(ctx.query(SYMBOLS).begins_with((a,)).execute()?.len());
    let between =
        |ctx: &TaskContext<RefLang>| Ok(ctx.query(SYMBOLS).between((a, "m"), (a, "p")).execute()?.len());
    let rerun_both = || -> Result<()> {
        run_reader(&db, "scan:prefix", prefix)?;
        run_reader(&db, "scan:between", between)?;
        assert!(db.stale().is_empty());
        Ok(())
    };
    rerun_both()?;

    // Another task's record lands inside both ranges.
    let inside = source(&db, "gen:a:1", "a.rs", &[("nu", "i32")])?;
    assert_eq!(inside.invalidated, sorted(vec![task("scan:prefix"), task("scan:between")]));
    rerun_both()?;

    // Outside both: another file.
    let outside = source(&db, "gen:b", "b.rs", &[("nu", "i32")])?;
    assert!(outside.invalidated.is_empty(), "{:?}", outside.invalidated);
    assert!(db.stale().is_empty());

    // Inside the prefix, after the range's end and before its start.
    let after_end = source(&db, "gen:a:2", "a.rs", &[("zeta", "i32")])?;
    assert_eq!(after_end.invalidated, [task("scan:prefix")]);
    rerun_both()?;
    let before_start = source(&db, "gen:a:3", "a.rs", &[("aardvark", "i32")])?;
    assert_eq!(before_start.invalidated, [task("scan:prefix")]);
    rerun_both()?;

    // `between` includes both bounds.
    for (n, bound) in ["m", "p"].into_iter().enumerate() {
        let at_bound = source(&db, &format!("gen:a:bound:{n}"), "a.rs", &[(bound, "i32")])?;
        assert_eq!(at_bound.invalidated, sorted(vec![task("scan:prefix"), task("scan:between")]));
        rerun_both()?;
    }

    // The same key in another partition is outside a range of SYMBOLS.
    let mut diagnostics = db.writer("lint:a");
    diagnostics.insert(DIAGNOSTICS, (a, 1u8, 0u32), Diagnostic::new("w", 1, 1))?;
    assert!(diagnostics.commit()?.invalidated.is_empty());

    db.check_consistency()?;
    Ok(())
}

#[test]
fn a_lookup_that_found_nothing_waits_for_its_key() -> Result<()> {
    let db = Database::<RefLang>::new();
    let (c, d) = (file("c.rs"), file("d.rs"));
    let ctx = db.task("wants:c:main");
    assert!(ctx.get(SYMBOLS, (c, "main"))?.is_empty());
    assert_eq!(ctx.pending().len(), 1);
    ctx.commit()?;
    let ctx = db.task("wants:d");
    assert!(ctx.query(SYMBOLS).begins_with((d,)).execute()?.is_empty());
    assert_eq!(ctx.pending().len(), 1);
    ctx.commit()?;
    assert!(db.stale().is_empty());

    // A neighbouring key is not the one waited for.
    let neighbour = source(&db, "parse:c", "c.rs", &[("helper", "i32")])?;
    assert!(neighbour.invalidated.is_empty());
    let supplied = source(&db, "parse:c", "c.rs", &[("helper", "i32"), ("main", "()")])?;
    assert_eq!(supplied.invalidated, [task("wants:c:main")]);
    // Any key under the awaited prefix supplies it.
    let prefix = source(&db, "parse:d", "d.rs", &[("anything", "i32")])?;
    assert_eq!(prefix.invalidated, [task("wants:d")]);
    db.check_consistency()?;
    Ok(())
}

#[test]
fn removing_a_writer_invalidates_its_readers() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a = file("a.rs");
    source(&db, "parse:a", "a.rs", &[("f", "i32")])?;
    source(&db, "parse:unread", "z.rs", &[("f", "i32")])?;
    run_reader(&db, "use:a", |ctx| Ok(ctx.query(SYMBOLS).begins_with((a,)).execute()?.len()))?;
    run_reader(&db, "use:a:f", |ctx| Ok(ctx.get(SYMBOLS, (a, "f"))?.len()))?;

    let unread = db.remove_task("parse:unread");
    assert!(unread.stored && unread.invalidated.is_empty());
    let removed = db.remove_task("parse:a");
    assert!(removed.output_changed);
    assert_eq!(removed.invalidated, sorted(vec![task("use:a"), task("use:a:f")]));
    assert!(db.is_stale("use:a") && db.is_stale("use:a:f"));

    // Re-run: both find nothing now, and wait for the key again.
    let rerun = run_reader(&db, "use:a:f", |ctx| Ok(ctx.get(SYMBOLS, (a, "f"))?.len()))?;
    assert!(rerun.output_changed);
    assert!(!db.is_stale("use:a:f") && db.is_stale("use:a"));
    let back = source(&db, "parse:a", "a.rs", &[("f", "i32")])?;
    assert_eq!(back.invalidated, [task("use:a:f")], "use:a was stale already");
    db.check_consistency()?;
    Ok(())
}

/// RefLang declares no secondary index, so this test declares its own schema with
/// one: records are `"name:payload"` strings in any partition, indexed by name.
mod named {
    use chunkdb_database::{
        IndexDef, IndexHandle, IndexValue, RecordHandle, RecordKind, RecordStorage, Schema, StableHasher,
        StorageBuilder,
    };

    pub enum Named {}

    pub const BY_NAME: IndexHandle<Named, str> = IndexHandle::new("by_name");
    const TEXT: RecordKind = RecordKind(0);

    #[derive(Default)]
    pub struct Store(Vec<String>);

    #[derive(Default)]
    pub struct Builder(Vec<String>);

    impl Schema for Named {
        type Record = String;
        type RecordRef<'a> = &'a str;
        type Storage = Store;

        const NAME: &'static str = "Named";

        fn record_kinds() -> &'static [&'static str] {
            &["Text"]
        }

        fn kind_of(_: &String) -> RecordKind {
            TEXT
        }

        fn fingerprint() -> u64 {
            1
        }

        fn indexes() -> &'static [IndexDef] {
            const INDEXES: &[IndexDef] =
                &[IndexDef { name: "by_name", id: BY_NAME.id(), fields: &[(TEXT, "name")] }];
            INDEXES
        }

        fn index_values(record: &str, emit: &mut dyn FnMut(chunkdb_database::Ident, &dyn IndexValue)) {
            let name = record.split(':').next().unwrap_or_default();
            emit(BY_NAME.id(), &name);
        }
    }

    type Archived = chunkdb_database::rkyv::Archived<Vec<String>>;

    impl RecordStorage for Store {
        type Schema = Named;
        type Builder = Builder;
        type Archived = Archived;

        fn get(archived: &Archived, handle: RecordHandle) -> &str {
            archived[handle.index as usize].as_str()
        }

        fn hash_record(archived: &Archived, handle: RecordHandle, hasher: &mut StableHasher) {
            hasher.write_str(Self::get(archived, handle));
        }

        fn len(archived: &Archived) -> usize {
            archived.len()
        }

        fn contains(archived: &Archived, handle: RecordHandle) -> bool {
            handle.kind == TEXT && (handle.index as usize) < archived.len()
        }

        fn to_archive(&self) -> Result<chunkdb_database::ArchiveBytes, String> {
            chunkdb_database::rkyv::to_bytes::<chunkdb_database::rkyv::rancor::Error>(&self.0)
                .map_err(|error| error.to_string())
        }
    }

    impl StorageBuilder for Builder {
        type Storage = Store;

        fn push(&mut self, record: String) -> RecordHandle {
            self.0.push(record);
            RecordHandle { kind: TEXT, index: u32::try_from(self.0.len() - 1).expect("few records") }
        }

        fn hash_record(&self, handle: RecordHandle, hasher: &mut StableHasher) {
            hasher.write_str(&self.0[handle.index as usize]);
        }

        fn finish(self) -> Store {
            Store(self.0)
        }
    }
}

#[test]
fn secondary_index_reads_are_invalidated_when_the_indexed_records_change() -> Result<()> {
    use named::{BY_NAME, Named};
    let db = Database::<Named>::new();
    let items = Ident::named("items");
    let define = |name: &str, records: &[(&str, &str)]| -> Result<CommitReceipt> {
        let mut writer = db.writer(name);
        for (key, record) in records {
            writer.insert(items, *key, (*record).to_owned())?;
        }
        writer.commit()
    };
    let use_foo = || -> Result<usize> {
        let ctx = db.task("use:foo");
        let found: Vec<String> = ctx.index(BY_NAME).get("foo")?.records().map(str::to_owned).collect();
        // Indexed under "uses" (the text before the first ':'), not under "foo".
        ctx.insert(Ident::named("uses"), "foo", format!("uses={}", found.join(",")))?;
        ctx.commit()?;
        Ok(found.len())
    };
    define("defs", &[("k1", "foo:1"), ("k2", "bar:1"), ("k3", "foobar:1")])?;
    assert_eq!(use_foo()?, 1);

    // Another name's record changes, and a name that merely starts with "foo".
    let other = define("defs", &[("k1", "foo:1"), ("k2", "bar:2"), ("k3", "foobar:2")])?;
    assert!(other.output_changed && other.invalidated.is_empty(), "{:?}", other.invalidated);

    // The indexed record changes, its indexed value staying.
    let payload = define("defs", &[("k1", "foo:2"), ("k2", "bar:2"), ("k3", "foobar:2")])?;
    assert_eq!(payload.invalidated, [task("use:foo")]);
    assert_eq!(use_foo()?, 1);

    // The indexed value changes: the record leaves the lookup's result.
    let renamed = define("defs", &[("k1", "baz:2"), ("k2", "bar:2"), ("k3", "foobar:2")])?;
    assert_eq!(renamed.invalidated, [task("use:foo")]);
    assert_eq!(use_foo()?, 0);

    // Another task supplies the awaited value (a pending index read), under any key.
    let supplied = define("more", &[("elsewhere", "foo:3")])?;
    assert_eq!(supplied.invalidated, [task("use:foo")]);
    assert_eq!(use_foo()?, 1);
    let removed = db.remove_task("more");
    assert_eq!(removed.invalidated, [task("use:foo")]);
    db.check_consistency()?;
    Ok(())
}

#[test]
fn a_run_on_an_old_snapshot_stays_stale_after_committing() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a = file("a.rs");
    source(&db, "parse:a", "a.rs", &[("f", "i32")])?;

    // First run: never committed before; the key it read changes while it runs.
    let ctx = db.task("check");
    assert_eq!(ctx.get(SYMBOLS, (a, "f"))?.len(), 1);
    let meanwhile = source(&db, "parse:a", "a.rs", &[("f", "u8")])?;
    assert!(meanwhile.invalidated.is_empty(), "check has no version to invalidate yet");
    ctx.insert(DIAGNOSTICS, (a, 0u8, 0u32), Diagnostic::new("checked", 0, 0))?;
    let late = ctx.commit()?;
    assert!(late.stored);
    assert!(db.is_stale("check"), "it read a key that changed after its snapshot");
    assert_eq!(db.stale(), [task("check")]);

    // A fresh run is current.
    run_reader(&db, "check", |ctx| Ok(ctx.get(SYMBOLS, (a, "f"))?.len()))?;
    assert!(!db.is_stale("check"));

    // A run with a version: the change invalidates the version, and the old run's
    // commit does not clear that.
    let ctx = db.task("check");
    assert_eq!(ctx.get(SYMBOLS, (a, "f"))?.len(), 1);
    let meanwhile = source(&db, "parse:a", "a.rs", &[("f", "u16")])?;
    assert_eq!(meanwhile.invalidated, [task("check")]);
    ctx.commit()?;
    assert!(db.is_stale("check"));

    // A run during which only unrelated keys changed is current once committed.
    run_reader(&db, "check", |ctx| Ok(ctx.get(SYMBOLS, (a, "f"))?.len()))?;
    let ctx = db.task("check");
    assert_eq!(ctx.get(SYMBOLS, (a, "f"))?.len(), 1);
    source(&db, "parse:b", "b.rs", &[("f", "u16")])?;
    source(&db, "parse:a", "a.rs", &[("f", "u16"), ("g", "i32")])?;
    ctx.insert(DIAGNOSTICS, (a, 0u8, 0u32), Diagnostic::new("1 hits", 0, 1))?;
    ctx.commit()?;
    assert!(!db.is_stale("check"), "nothing it read changed after its snapshot");
    db.check_consistency()?;
    Ok(())
}

/// The chain's task names, chosen so that task-id order is not the chain's order.
const CHAIN: [&str; 5] = ["chain:0", "chain:1", "chain:2", "chain:3", "chain:4"];

/// Runs link `i` of the chain: link 0 is a source; link `i` reads link `i - 1`'s
/// record and writes its own.
fn run_link(db: &Database<RefLang>, i: usize, input: &str) -> Result<CommitReceipt> {
    let key = |i: usize| (file("chain"), i.to_string());
    if i == 0 {
        let mut writer = db.writer(CHAIN[0]);
        writer.insert(SYMBOLS, key(0), Function::new("link", &[], Some(input)))?;
        return writer.commit();
    }
    let ctx = db.task(CHAIN[i]);
    let returns = match ctx.get(SYMBOLS, key(i - 1))?.first().map(|hit| hit.record()) {
        Some(RefRecordRef::Function(f)) => {
            f.return_type.as_ref().map_or_else(String::new, |t| t.get().to_string())
        }
        _ => "missing".to_owned(),
    };
    ctx.insert(SYMBOLS, key(i), Function::new("link", &[], Some(&returns)))?;
    ctx.commit()
}

#[test]
fn stale_tasks_come_in_dependency_order() -> Result<()> {
    let db = Database::<RefLang>::new();
    let chain: Vec<TaskId> = CHAIN.iter().map(|name| task(name)).collect();
    assert_ne!(sorted(chain.clone()), chain, "the test needs task order to differ from chain order");
    for i in 0..CHAIN.len() {
        run_link(&db, i, "i32")?;
    }
    assert!(db.stale().is_empty());
    for name in CHAIN.iter().rev() {
        assert!(db.schedule(*name));
    }
    assert!(!db.schedule(CHAIN[2]), "scheduling a stale task again is a no-op");
    assert_eq!(db.stale(), chain);

    // Run in that order: every link re-runs once, and the output propagates.
    let mut last = None;
    for (i, expected) in db.stale().into_iter().enumerate() {
        assert_eq!(expected, chain[i]);
        last = Some(run_link(&db, i, "u64")?);
    }
    assert!(db.stale().is_empty());
    assert!(last.is_some_and(|receipt| receipt.output_changed));
    let end = db.snapshot();
    let hit = end.get(SYMBOLS, (file("chain"), "4".to_string()))?.first().map(|hit| hit.record().to_owned());
    assert_eq!(hit, Some(Function::new("link", &[], Some("u64")).into()));

    // A change at the head makes only the next link stale; running it cascades.
    let head = run_link(&db, 0, "bool")?;
    assert_eq!(head.invalidated, [chain[1]]);
    db.check_consistency()?;
    Ok(())
}

/// A three-stage pipeline: `parse` (a source) → `lower` (maps whether `x` exists to
/// a constant) → `check` (reads what `lower` wrote); `other` reads another file.
fn pipeline(ctx: &TaskContext<RefLang>, calls: &Mutex<Vec<TaskId>>) -> Result<()> {
    let (a, b) = (file("a.rs"), file("b.rs"));
    calls.lock().expect("not poisoned").push(ctx.task());
    if ctx.task() == task("lower") {
        let found = !ctx.get(SYMBOLS, (a, "x"))?.is_empty();
        let name = if found { "lowered" } else { "nothing to lower" };
        ctx.insert(SYMBOLS, (a, "~lowered"), Function::new(name, &[], None))?;
    } else if ctx.task() == task("check") {
        let lowered = ctx.get(SYMBOLS, (a, "~lowered"))?.first().map(|hit| hit.record().to_owned());
        let ok = lowered == Some(Function::new("lowered", &[], None).into());
        let message = if ok { "ok" } else { "nothing lowered" };
        ctx.insert(DIAGNOSTICS, (a, 0u8, 0u32), Diagnostic::new(message, 0, 0))?;
    } else if ctx.task() == task("other") {
        let n = ctx.query(SYMBOLS).begins_with((b,)).count()?;
        let line = u32::try_from(n).expect("few");
        ctx.insert(DIAGNOSTICS, (b, 0u8, 0u32), Diagnostic::new("other", 0, line))?;
    } else {
        panic!("unexpected task {}", ctx.task());
    }
    Ok(())
}

#[test]
fn driver_reruns_exactly_the_affected_tasks_and_cuts_off() -> Result<()> {
    let db = Database::<RefLang>::new();
    let calls = Mutex::new(Vec::new());
    let run = |ctx: &TaskContext<RefLang>| pipeline(ctx, &calls);
    source(&db, "parse", "a.rs", &[("x", "i32")])?;
    source(&db, "parse:b", "b.rs", &[("y", "i32")])?;
    for name in ["lower", "check", "other"] {
        db.schedule(name);
    }
    let first = Driver::new(&db).run(run).expect("the first run converges");
    assert!(first.ran.len() >= 3);
    assert!(db.stale().is_empty());
    let lowered =
        db.snapshot().get(DIAGNOSTICS, (file("a.rs"), 0u8, 0u32))?.first().map(|h| h.record().to_owned());
    assert_eq!(lowered, Some(Diagnostic::new("ok", 0, 0).into()));

    // `x` changes: `lower` re-runs, writes the same constant, and `check` is cut off.
    calls.lock().expect("not poisoned").clear();
    let edit = source(&db, "parse", "a.rs", &[("x", "u64")])?;
    assert_eq!(edit.invalidated, [task("lower")]);
    let report = Driver::new(&db).run(run).expect("converges");
    assert_eq!(report.ran, [task("lower")]);
    assert_eq!(report.cut_off, [task("lower")]);
    assert!(report.changed.is_empty());
    assert_eq!(report.rounds, 1);
    assert_eq!(*calls.lock().expect("not poisoned"), [task("lower")], "nothing else was even called");

    // `x` goes away: `lower`'s output changes, so `check` re-runs too (after it).
    calls.lock().expect("not poisoned").clear();
    let edit = source(&db, "parse", "a.rs", &[("w", "u64")])?;
    assert_eq!(edit.invalidated, [task("lower")]);
    let report = Driver::new(&db).parallel(false).run(run).expect("converges");
    assert_eq!(report.ran, [task("lower"), task("check")]);
    assert_eq!(report.changed, [task("lower"), task("check")]);
    assert_eq!(report.rounds, 2);
    assert_eq!(*calls.lock().expect("not poisoned"), [task("lower"), task("check")]);
    let verdict =
        db.snapshot().get(DIAGNOSTICS, (file("a.rs"), 0u8, 0u32))?.first().map(|h| h.record().to_owned());
    assert_eq!(verdict, Some(Diagnostic::new("nothing lowered", 0, 0).into()));

    // Nothing stale: the driver does nothing.
    let idle = Driver::new(&db).run(run).expect("nothing to do");
    assert!(idle.ran.is_empty() && idle.rounds == 0);
    db.check_consistency()?;
    Ok(())
}

#[test]
fn tasks_that_keep_changing_each_others_input_do_not_converge() -> Result<()> {
    let db = Database::<RefLang>::new();
    let key = |name: &str| (file(name), 0u8, 0u32);
    // Each writes one more than what it reads from the other.
    let run = |ctx: &TaskContext<RefLang>| -> Result<()> {
        let (me, other) = if ctx.task() == task("ping") { ("ping", "pong") } else { ("pong", "ping") };
        let seen = match ctx.get(DIAGNOSTICS, key(other))?.first().map(|hit| hit.record()) {
            Some(RefRecordRef::Diagnostic(d)) => d.line.to_native(),
            _ => 0,
        };
        ctx.insert(DIAGNOSTICS, key(me), Diagnostic::new("count", 0, seen + 1))
    };
    db.schedule("ping");
    db.schedule("pong");
    match Driver::new(&db).max_rounds(50).run(run) {
        Err(DriveError::DidNotConverge { rounds, stale, report }) => {
            assert_eq!(rounds, 50);
            assert_eq!(report.rounds, 50);
            assert!(report.ran.len() >= 50, "{} runs", report.ran.len());
            assert!(!stale.is_empty());
            assert!(stale.iter().all(|t| *t == task("ping") || *t == task("pong")), "{stale:?}");
        }
        other => panic!("expected DidNotConverge, got {other:?}"),
    }
    assert!(!db.stale().is_empty());
    db.check_consistency()?;
    Ok(())
}

#[test]
fn a_failing_task_is_reported_and_stays_stale() -> Result<()> {
    let db = Database::<RefLang>::new();
    let broken = AtomicBool::new(true);
    let run = |ctx: &TaskContext<RefLang>| -> Result<(), String> {
        if ctx.task() == task("bad") && broken.load(Ordering::SeqCst) {
            return Err("boom".to_owned());
        }
        let name = ctx.task().to_string();
        ctx.insert(DIAGNOSTICS, (file(&name), 0u8, 0u32), Diagnostic::new("fine", 0, 0))
            .map_err(|e| e.to_string())
    };
    db.schedule("bad");
    db.schedule("good");
    match Driver::new(&db).run(run) {
        Err(DriveError::Task { task: failed, error, report }) => {
            assert_eq!(failed, task("bad"));
            assert_eq!(error, "boom");
            assert!(!report.ran.contains(&task("bad")));
        }
        other => panic!("expected a task error, got {other:?}"),
    }
    assert!(db.is_stale("bad"));
    assert!(db.snapshot().task_chunk(task("bad")).is_none(), "nothing was committed for it");
    db.check_consistency()?;

    broken.store(false, Ordering::SeqCst);
    let report = Driver::new(&db).run(run).expect("fixed");
    assert!(report.ran.contains(&task("bad")));
    assert!(db.stale().is_empty());
    db.check_consistency()?;
    Ok(())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

#[test]
fn verify_mode_names_the_nondeterministic_record() -> Result<()> {
    let db = Database::<RefLang>::new();
    let a = file("a.rs");
    source(&db, "parse", "a.rs", &[("f", "i32"), ("g", "i32")])?;
    let run = |ctx: &TaskContext<RefLang>| -> Result<()> {
        let n = ctx.query(SYMBOLS).begins_with((a,)).count()?;
        let line = u32::try_from(n).expect("few");
        if ctx.task() == task("flaky") {
            let stamp = COUNTER.fetch_add(1, Ordering::SeqCst);
            ctx.insert(DIAGNOSTICS, (a, 1u8, 0u32), Diagnostic::new("stable", 1, line))?;
            ctx.insert(DIAGNOSTICS, (a, 2u8, 7u32), Diagnostic::new(&format!("run #{stamp}"), 2, line))?;
        } else {
            ctx.insert(DIAGNOSTICS, (file("steady"), 0u8, 0u32), Diagnostic::new("same", 0, line))?;
        }
        Ok(())
    };

    db.schedule("steady");
    let report = Driver::new(&db).verify(true).run(run).expect("a deterministic task passes");
    assert_eq!(report.ran, [task("steady")]);
    assert!(db.stale().is_empty());

    db.schedule("flaky");
    match Driver::new(&db).verify(true).run(run) {
        Err(DriveError::Commit { task: failed, error, .. }) => {
            assert_eq!(failed, task("flaky"));
            let message = error.to_string();
            let Error::Nondeterministic { task: named, difference } = error else {
                panic!("expected Nondeterministic, got {message}");
            };
            assert_eq!(named, task("flaky"));
            assert!(message.contains("flaky"), "the message names the task: {message}");
            assert!(difference.contains("diagnostics"), "names the partition: {difference}");
            assert!(difference.contains("a.rs, 2, 7"), "names the key: {difference}");
            assert!(difference.contains("run #"), "shows the records: {difference}");
            assert!(
                !difference.contains("stable"),
                "the first differing record, not an equal one: {difference}"
            );
        }
        other => panic!("expected a nondeterminism error, got {other:?}"),
    }
    assert!(db.is_stale("flaky"));
    assert!(db.snapshot().task_chunk(task("flaky")).is_none(), "the output was refused");
    // Without verify mode the same task commits.
    Driver::new(&db).run(run).expect("not verifying");
    db.check_consistency()?;
    Ok(())
}

/// Regression (independent model, divergence 1): staleness is a function of what was
/// read and what changed. Removing a stale task's parent, asking for the stale set,
/// and re-adding the parent leaves the task stale; reading the stale set changes
/// nothing.
#[test]
fn a_stale_task_stays_stale_through_its_parents_removal_and_return() -> Result<()> {
    let db = Database::<RefLang>::new();
    source(&db, "parse:a", "a", &[("a", "A")])?;
    source(&db, "parse:b", "b", &[("b", "B")])?;
    let check = db.task("check");
    check.set_parent(task("parse:a"));
    assert_eq!(check.get(SYMBOLS, (file("b"), "b"))?.len(), 1);
    check.commit()?;

    let receipt = source(&db, "parse:b", "b", &[("b", "B2")])?;
    assert_eq!(receipt.invalidated, [task("check")]);
    db.remove_task("parse:a");
    assert!(db.is_stale("check"), "removing its parent does not make what it read current");
    assert_eq!(db.stale(), [task("check")], "stale() and is_stale() agree");
    assert_eq!(db.stale(), [task("check")], "asking twice gives the same answer");
    source(&db, "parse:a", "a", &[("a", "A")])?;
    assert!(db.is_stale("check"));
    assert_eq!(db.stale(), [task("check")]);
    db.check_consistency()?;
    Ok(())
}

/// A task spawned under a parent that is removed before the child ran is no longer
/// asked for: running it would only write garbage.
#[test]
fn a_spawned_task_that_never_ran_is_unscheduled_when_its_parent_goes() -> Result<()> {
    let db = Database::<RefLang>::new();
    let parent = db.task("parent");
    parent.spawn("child");
    parent.commit()?;
    assert!(db.is_stale("child"));
    db.remove_task("parent");
    assert!(!db.is_stale("child"));
    assert!(db.stale().is_empty());
    Ok(())
}

/// Regression (independent model, divergence 4): a re-run whose output and chunks
/// read are those of the previous run, but whose reads differ (a filter now keeps
/// nothing, so the read is pending), stores its own read-set.
#[test]
fn a_re_run_with_other_reads_stores_its_own_read_set() -> Result<()> {
    let db = Database::<RefLang>::new();
    source(&db, "parse:a", "a", &[("f", "A"), ("g", "A")])?;
    let reader = |keep: bool| -> Result<CommitReceipt> {
        let ctx = db.task("reader");
        let hits = ctx.query(SYMBOLS).filter(move |_| keep).execute()?.len();
        assert_eq!(hits, if keep { 2 } else { 0 });
        ctx.insert(DIAGNOSTICS, (file("reader"), 0u8, 0u32), Diagnostic::new("same", 0, 0))?;
        ctx.commit()
    };
    reader(true)?;
    let receipt = reader(false)?;
    assert!(receipt.stored, "the read-set differs, so the chunk does");
    assert!(!receipt.output_changed);
    let snapshot = db.snapshot();
    let reads = snapshot.task_chunk(task("reader")).expect("committed").reads();
    assert_eq!(reads[0].hits(), 0);
    assert!(reads[0].is_pending());
    assert!(!reader(false)?.stored, "the identical run is stored once");
    db.check_consistency()?;
    Ok(())
}

/// Key-level invalidation over-approximates: a record the query's filter dropped
/// changed, or a change was undone before the reader re-ran. The driver confirms
/// against the chunks each read found and skips such runs.
#[test]
fn the_driver_skips_stale_tasks_whose_reads_are_unchanged()
-> std::result::Result<(), Box<dyn std::error::Error>> {
    let db = Database::<RefLang>::new();
    source(&db, "parse:a", "a", &[("f", "A")])?;
    let runs = AtomicU64::new(0);
    let run = |ctx: &TaskContext<RefLang>| -> Result<()> {
        runs.fetch_add(1, Ordering::Relaxed);
        let hits = ctx.query(SYMBOLS).begins_with((file("a"),)).execute()?.len();
        ctx.insert(DIAGNOSTICS, (file("check"), 0u8, 0u32), Diagnostic::new(&format!("{hits}"), 0, 0))
    };
    db.schedule("check");
    Driver::new(&db).run(run)?;
    assert_eq!(runs.load(Ordering::Relaxed), 1);

    // Changed, then undone: the reader is stale but what it read is as it was.
    assert_eq!(source(&db, "parse:a", "a", &[("f", "B")])?.invalidated, [task("check")]);
    source(&db, "parse:a", "a", &[("f", "A")])?;
    assert!(db.is_stale("check"));
    let report = Driver::new(&db).run(run)?;
    assert_eq!(report.skipped, [task("check")]);
    assert!(report.ran.is_empty());
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert!(db.stale().is_empty());

    // A real change still runs it; a forced run always runs.
    source(&db, "parse:a", "a", &[("f", "B")])?;
    assert_eq!(Driver::new(&db).run(run)?.ran, [task("check")]);
    db.schedule("check");
    let report = Driver::new(&db).run(run)?;
    assert_eq!((report.ran.len(), report.skipped.len()), (1, 0));
    assert_eq!(runs.load(Ordering::Relaxed), 3);
    db.check_consistency()?;
    Ok(())
}

/// The functions of `a` that return `i32`, through a filter the database keeps
/// (`retained`) or a borrowed one.
fn typed_functions(ctx: &TaskContext<RefLang>, retained: bool) -> Result<usize> {
    let query = ctx.query(SYMBOLS).begins_with((file("a"),));
    let typed = |hit: &chunkdb_database::Hit<'_, RefLang>| matches!(hit.record(), RefRecordRef::Function(f) if f.return_type == Some(file("i32")));
    if retained { query.filter(typed).count() } else { query.filter_borrowed(typed).count() }
}

/// A record the filter drops changed inside the scanned range: the reader is stale
/// by its keys, but with a retained filter the driver evaluates the read again, finds
/// the same records kept and skips the run; a change to a kept record runs it.
#[test]
fn a_change_a_retained_filter_drops_re_runs_nothing() -> std::result::Result<(), Box<dyn std::error::Error>> {
    for retained in [true, false] {
        let db = Database::<RefLang>::new();
        source(&db, "parse:a", "a", &[("f", "i32"), ("g", "()")])?;
        let runs = AtomicU64::new(0);
        let run = |ctx: &TaskContext<RefLang>| -> Result<()> {
            runs.fetch_add(1, Ordering::Relaxed);
            let typed = typed_functions(ctx, retained)?;
            ctx.insert(DIAGNOSTICS, (file("check"), 0u8, 0u32), Diagnostic::new(&format!("{typed}"), 0, 0))
        };
        db.schedule("check");
        Driver::new(&db).run(run)?;
        let read = db.snapshot().task_chunk("check").expect("committed").reads()[0].clone();
        assert_eq!((read.hits(), read.is_recheckable()), (1, retained));

        // `g` is dropped by the filter before and after.
        let receipt = source(&db, "parse:a", "a", &[("f", "i32"), ("g", "bool")])?;
        assert_eq!(receipt.invalidated, [task("check")], "key-level invalidation sees the change");
        let report = Driver::new(&db).run(run)?;
        if retained {
            assert_eq!((report.ran.len(), report.skipped.len()), (0, 1));
        } else {
            assert_eq!(
                (report.ran.len(), report.skipped.len()),
                (1, 0),
                "a borrowed filter cannot be re-checked"
            );
        }
        let runs_before = runs.load(Ordering::Relaxed);

        // `g` now passes the filter: the results changed.
        source(&db, "parse:a", "a", &[("f", "i32"), ("g", "i32")])?;
        let report = Driver::new(&db).run(run)?;
        assert_eq!((report.ran.len(), report.skipped.len()), (1, 0));
        assert_eq!(runs.load(Ordering::Relaxed), runs_before + 1);
        let read = db.snapshot().task_chunk("check").expect("committed").reads()[0].clone();
        assert_eq!(read.hits(), 2);
        assert!(db.stale().is_empty());
        db.check_consistency()?;
    }
    Ok(())
}

/// An exact read whose writer changed another of its records: the chunk that holds
/// the key is new, the record under the key is the same, and the driver skips the
/// reader. A lazy read dropped before its end cannot be evaluated again and runs.
#[test]
fn a_read_whose_records_moved_to_a_new_chunk_re_runs_nothing()
-> std::result::Result<(), Box<dyn std::error::Error>> {
    let db = Database::<RefLang>::new();
    source(&db, "parse:a", "a", &[("f", "i32"), ("g", "i32")])?;
    let run = |ctx: &TaskContext<RefLang>| -> Result<()> {
        let exact = ctx.task() == task("exact");
        let found = if exact {
            ctx.get(SYMBOLS, (file("a"), "f"))?.len()
        } else {
            ctx.query(SYMBOLS).begins_with((file("a"),)).iter()?.take(1).count()
        };
        let out = file(if exact { "exact" } else { "partial" });
        ctx.insert(DIAGNOSTICS, (out, 0u8, 0u32), Diagnostic::new(&format!("{found}"), 0, 0))
    };
    db.schedule("exact");
    db.schedule("partial");
    Driver::new(&db).run(run)?;
    let snapshot = db.snapshot();
    assert!(snapshot.task_chunk("exact").expect("committed").reads()[0].is_recheckable());
    assert!(!snapshot.task_chunk("partial").expect("committed").reads()[0].is_recheckable());

    // `g` changes: `exact` is stale by chunk (not by key), `partial` by its range.
    let receipt = source(&db, "parse:a", "a", &[("f", "i32"), ("g", "u8")])?;
    assert_eq!(sorted(receipt.invalidated.clone()), sorted(vec![task("partial")]));
    // Force the exact reader's check through a change of the key it read, undone.
    source(&db, "parse:a", "a", &[("f", "u8"), ("g", "u8")])?;
    source(&db, "parse:a", "a", &[("f", "i32"), ("g", "u16")])?;
    assert!(db.is_stale("exact"));
    let report = Driver::new(&db).run(run)?;
    assert_eq!(report.skipped, [task("exact")]);
    assert_eq!(report.ran, [task("partial")]);
    db.check_consistency()?;
    Ok(())
}

/// A run forced while another run of the same task is in flight is not answered by
/// that run: the task stays stale, and the driver runs it whatever its reads say.
#[test]
fn a_run_forced_during_a_run_in_flight_still_runs() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let db = Database::<RefLang>::new();
    source(&db, "parse:a", "a", &[("f", "A")])?;
    let ctx = db.task("check");
    assert_eq!(ctx.query(SYMBOLS).begins_with((file("a"),)).execute()?.len(), 1);
    source(&db, "parse:a", "a", &[("f", "B")])?;
    db.schedule("check");
    source(&db, "parse:a", "a", &[("f", "A")])?;
    ctx.commit()?;
    assert!(db.is_stale("check"), "the forced run came after this run started");
    let report = Driver::new(&db).run(|ctx: &TaskContext<RefLang>| -> Result<()> {
        ctx.query(SYMBOLS).begins_with((file("a"),)).execute().map(drop)
    })?;
    assert_eq!((report.ran.len(), report.skipped.len()), (1, 0));
    assert!(db.stale().is_empty());
    db.check_consistency()?;
    Ok(())
}
