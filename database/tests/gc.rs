//! Garbage collection: what a removal leaves unreachable is collected (and nothing
//! else), old snapshots keep answering, slices are bounded, the sweep re-checks what
//! commits made reachable again during a cycle, ownership cycles are collected, the
//! default policy keeps memory bounded, and readers of old snapshots are unaffected
//! by concurrent commits and collection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use chunkdb_database::reference::{DIAGNOSTICS, Diagnostic, Function, RefLang, RefRecord, SYMBOLS};
use chunkdb_database::{
    CommitReceipt, Database, Driver, GcPolicy, Ident, Result, Snapshot, SortKey, TaskContext, TaskId,
};

fn file(name: &str) -> Ident {
    Ident::named(name)
}

fn task(name: &str) -> TaskId {
    TaskId::new(name)
}

/// A policy under which commits never start a cycle on their own (a cycle under way
/// still advances by one task per commit).
fn manual() -> GcPolicy {
    GcPolicy::default().garbage_bytes(usize::MAX).slice(1)
}

/// Commits `name` (under `parent`, if any) with `records` functions named `tag`
/// under its own file.
fn put(
    db: &Database<RefLang>,
    name: &str,
    parent: Option<&str>,
    records: usize,
    tag: &str,
) -> Result<CommitReceipt> {
    let mut writer = db.writer(name);
    if let Some(parent) = parent {
        writer.set_parent(task(parent));
    }
    for i in 0..records {
        writer.insert(SYMBOLS, (file(name), format!("r{i}")), Function::new(tag, &[], None))?;
    }
    writer.commit()
}

/// Every record of SYMBOLS in `snapshot`, with its key and writer.
fn contents(snapshot: &Snapshot<RefLang>) -> Vec<(SortKey, TaskId, RefRecord)> {
    snapshot
        .query(SYMBOLS)
        .execute()
        .expect("a declared partition")
        .iter()
        .map(|hit| (hit.sort_key().to_sort_key(), hit.task(), hit.record().to_owned()))
        .collect()
}

/// Whether every task of the snapshot reaches an entry task through its parents.
fn all_reachable(snapshot: &Snapshot<RefLang>) -> bool {
    snapshot.tasks().all(|start| {
        let mut at = start;
        for _ in 0..=snapshot.tasks().count() {
            match snapshot.task_chunk(at).map(|chunk| chunk.parent()) {
                Some(None) => return true,
                Some(Some(parent)) => at = parent,
                None => return false,
            }
        }
        false
    })
}

/// The derived tasks the spawning driver creates under `src`: two per task, three
/// levels deep (2 + 4 + 8).
fn derived_names() -> Vec<String> {
    let mut names = Vec::new();
    let mut level = vec![String::new()];
    for depth in 1..=3 {
        level = level.iter().flat_map(|path| [format!("{path}0"), format!("{path}1")]).collect();
        names.extend(level.iter().map(|path| format!("lvl{depth}:{path}")));
    }
    names
}

/// The spawning task function: `lvl{n}:{path}` writes one record and, above level 3,
/// spawns its two children.
fn spawning(ctx: &TaskContext<RefLang>) -> Result<()> {
    let name = ctx.task().to_string();
    let (level, path) = name.split_once(':').expect("lvlN:path");
    let depth: usize = level.trim_start_matches("lvl").parse().expect("a level");
    if depth < 3 {
        for i in 0..2 {
            ctx.spawn(format!("lvl{}:{path}{i}", depth + 1));
        }
    }
    ctx.insert(SYMBOLS, (file(&name), "out"), Function::new(&name, &[], None))
}

#[test]
fn removing_a_source_collects_exactly_its_descendants() -> Result<()> {
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual());
    let mut source = db.writer("src");
    source.insert(SYMBOLS, (file("src"), "main"), Function::new("main", &[], None))?;
    source.spawn("lvl1:0").spawn("lvl1:1");
    source.commit()?;
    let report = Driver::new(&db).run(spawning).expect("spawns converge");
    let derived = derived_names();
    assert_eq!(report.ran.len(), derived.len());
    // Unrelated data that must survive: another source with a child, and a root
    // reader of a derived record.
    put(&db, "keep", None, 2, "keep")?;
    put(&db, "keep:child", Some("keep"), 2, "keep")?;
    let deepest = (file("lvl3:111"), "out");
    let reader = db.task("reader");
    assert_eq!(reader.get(SYMBOLS, deepest)?.len(), 1);
    reader.commit()?;
    let before = db.stats();
    assert_eq!(before.tasks, 1 + derived.len() + 3);
    for name in &derived {
        let chunk = db.snapshot().task_chunk(task(name)).cloned().expect("derived task ran");
        assert!(chunk.parent().is_some(), "{name} is owned");
    }

    let removed = db.remove_task("src");
    assert!(removed.invalidated.is_empty(), "nobody read src's own records");
    assert!(db.has_garbage());
    assert!(!db.is_stale("reader"), "derived data is visible until it is swept");
    assert_eq!(db.snapshot().get(SYMBOLS, deepest)?.len(), 1);

    let progress = db.collect();
    assert!(progress.done);
    assert_eq!(progress.chunks_reclaimed, derived.len());
    assert!(progress.bytes_reclaimed > 0);
    let after = db.stats();
    assert_eq!(after.gc.chunks_reclaimed, derived.len() as u64);
    assert_eq!(after.gc.cycles, 1);
    assert_eq!(after.tasks, 3, "keep, keep:child and reader remain");
    assert!(!db.has_garbage());
    let now = db.snapshot();
    assert!(derived.iter().all(|name| now.task_chunk(task(name)).is_none()));
    assert!(now.task_chunk(task("keep:child")).is_some());
    assert!(now.get(SYMBOLS, deepest)?.is_empty());
    assert!(db.is_stale("reader"), "a reader of a collected record is invalidated");
    assert_eq!(db.stale(), [task("reader")]);
    db.check_consistency()?;

    // Collecting again finds nothing.
    let again = db.collect();
    assert!(again.done && again.chunks_reclaimed == 0);
    Ok(())
}

#[test]
fn an_old_snapshot_keeps_answering_after_collection() -> Result<()> {
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual());
    put(&db, "src", None, 3, "src")?;
    put(&db, "d1", Some("src"), 3, "d1")?;
    put(&db, "d2", Some("d1"), 3, "d2")?;
    put(&db, "d3", Some("d2"), 3, "d3")?;
    put(&db, "other", None, 3, "other")?;
    db.free_superseded();
    let old = db.snapshot();
    let seen = contents(&old);
    assert_eq!(seen.len(), 15);
    let deep = old.get(SYMBOLS, (file("d3"), "r1"))?.first().map(|hit| hit.record().to_owned());
    assert_eq!(deep, Some(Function::new("d3", &[], None).into()));

    db.remove_task("src");
    assert_eq!(db.collect().chunks_reclaimed, 3);
    assert_eq!(contents(&db.snapshot()).len(), 3, "only `other` is left");
    assert_eq!(contents(&old), seen, "the old snapshot answers as before");
    assert_eq!(old.get(SYMBOLS, (file("d3"), "r1"))?.first().map(|hit| hit.record().to_owned()), deep);
    assert!(old.task_chunk(task("d2")).is_some());

    let held = db.stats();
    assert_eq!(held.chunks, 1);
    assert_eq!(held.chunks_in_memory, 5, "the snapshot holds the four removed versions");
    drop(old);
    db.free_superseded();
    let freed = db.stats();
    assert_eq!((freed.chunks_in_memory, freed.open_snapshots, freed.retired_states), (1, 0, 0));
    db.check_consistency()?;
    Ok(())
}

#[test]
fn slices_are_bounded_and_finish() -> Result<()> {
    const CHILDREN: usize = 300;
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual());
    put(&db, "src", None, 1, "src")?;
    for i in 0..CHILDREN {
        put(&db, &format!("child:{i}"), Some("src"), 1, "child")?;
    }
    for i in 0..20 {
        put(&db, &format!("root:{i}"), None, 1, "root")?;
    }
    db.remove_task("src");
    let mut steps = 0;
    let mut swept_by_steps = 0;
    loop {
        let progress = db.gc_step(1);
        steps += 1;
        assert!(progress.chunks_reclaimed <= 1, "a slice of 1 reclaims at most 1");
        swept_by_steps += progress.chunks_reclaimed;
        if progress.done {
            break;
        }
        assert!(db.stats().gc.in_progress);
        if steps % 40 == 0 {
            // Commits interleave with the cycle (each advances it by one task).
            put(&db, "root:0", None, 1, &format!("busy {steps}"))?;
            db.check_consistency()?;
        }
        assert!(steps < 10_000, "the cycle finishes");
    }
    assert!(steps > CHILDREN, "one task per slice: {steps} slices");
    let stats = db.stats();
    assert_eq!(stats.gc.chunks_reclaimed, CHILDREN as u64);
    assert!(swept_by_steps > 0 && swept_by_steps <= CHILDREN);
    assert_eq!(stats.tasks, 20);
    assert_eq!(stats.gc.cycles, 1);
    assert!(!stats.gc.in_progress && !db.has_garbage());
    assert!(stats.gc.steps >= steps as u64);
    assert!(stats.gc.max_pause <= stats.gc.total_pause);
    assert!(db.gc_step(1).done, "nothing left to do");
    db.check_consistency()?;
    Ok(())
}

/// A source with `children` owned tasks (each owning one grandchild) and `roots`
/// unrelated entry tasks.
fn family(db: &Database<RefLang>, children: usize, roots: usize) -> Result<()> {
    put(db, "src", None, 2, "src")?;
    for i in 0..children {
        put(db, &format!("child:{i}"), Some("src"), 1, "child")?;
        put(db, &format!("grandchild:{i}"), Some(&format!("child:{i}")), 1, "grandchild")?;
    }
    for i in 0..roots {
        put(db, &format!("root:{i}"), None, 1, "root")?;
    }
    Ok(())
}

#[test]
fn a_source_re_added_while_marking_keeps_its_descendants() -> Result<()> {
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual());
    family(&db, 20, 60)?;
    let everything = db.stats().tasks;
    db.remove_task("src");
    for _ in 0..3 {
        let progress = db.gc_step(2);
        assert!(!progress.done && progress.chunks_reclaimed == 0, "still marking the roots");
    }
    assert!(db.stats().gc.in_progress);

    // The write barrier: the source comes back mid-cycle, its descendants with it.
    let back = put(&db, "src", None, 2, "src")?;
    assert!(back.stored);
    let mut steps = 0;
    while !db.gc_step(2).done {
        steps += 1;
        assert!(steps < 10_000);
    }
    let stats = db.stats();
    assert_eq!(stats.gc.chunks_reclaimed, 0, "nothing reachable is swept");
    assert_eq!(stats.tasks, everything);
    assert!(all_reachable(&db.snapshot()));
    db.check_consistency()?;

    // Without the re-add they were garbage.
    db.remove_task("src");
    assert_eq!(db.collect().chunks_reclaimed, 40);
    assert_eq!(db.stats().tasks, 60);
    db.check_consistency()?;
    Ok(())
}

#[test]
fn a_source_re_added_while_sweeping_keeps_what_is_left() -> Result<()> {
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual());
    put(&db, "src", None, 1, "src")?;
    for i in 0..30 {
        put(&db, &format!("child:{i}"), Some("src"), 1, "child")?;
    }
    db.remove_task("src");
    // Step until the sweep has removed one child.
    let mut steps = 0;
    loop {
        let progress = db.gc_step(1);
        assert!(!progress.done);
        if progress.chunks_reclaimed == 1 {
            break;
        }
        steps += 1;
        assert!(steps < 10_000);
    }
    put(&db, "src", None, 1, "src")?;
    while !db.gc_step(1).done {}
    let stats = db.stats();
    assert_eq!(stats.gc.chunks_reclaimed, 1, "only what was swept before the re-add");
    assert_eq!(stats.tasks, 1 + 29);
    assert!(all_reachable(&db.snapshot()));
    db.check_consistency()?;
    Ok(())
}

#[test]
fn an_ownership_cycle_without_a_root_is_collected() -> Result<()> {
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual());
    put(&db, "root", None, 1, "root")?;
    put(&db, "a", Some("b"), 2, "a")?;
    put(&db, "b", Some("a"), 2, "b")?;
    put(&db, "c", Some("a"), 2, "c")?;
    assert!(db.has_garbage(), "a version under a parent that does not exist is possible garbage");
    assert_eq!(db.stats().tasks, 4);
    let progress = db.collect();
    assert_eq!(progress.chunks_reclaimed, 3);
    let snapshot = db.snapshot();
    assert_eq!(snapshot.tasks().collect::<Vec<_>>(), [task("root")]);
    assert!(!db.has_garbage());
    db.check_consistency()?;
    Ok(())
}

#[test]
fn idle_collects_once_writing_has_stopped() -> Result<()> {
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual().idle_after(Duration::from_millis(20)));
    family(&db, 5, 1)?;
    assert!(!db.collect_if_idle(), "nothing to collect");
    db.remove_task("src");
    thread::sleep(Duration::from_millis(30));
    assert!(db.collect_if_idle());
    assert_eq!(db.stats().gc.chunks_reclaimed, 10);
    assert!(!db.has_garbage() && !db.collect_if_idle());
    db.check_consistency()?;
    Ok(())
}

#[test]
fn the_default_policy_keeps_memory_bounded() -> Result<()> {
    const GENERATIONS: usize = 100;
    const CHILDREN: usize = 10;
    let db = Database::<RefLang>::new();
    let message = "x".repeat(256);
    let mut most = 0;
    for generation in 0..GENERATIONS {
        // A large owner, its small derived tasks, then the owner goes.
        let owner = format!("src:{generation}");
        let mut writer = db.writer(owner.as_str());
        for seq in 0..400u32 {
            writer.insert(DIAGNOSTICS, (file(&owner), 1u8, seq), Diagnostic::new(&message, 1, seq))?;
        }
        writer.commit()?;
        for child in 0..CHILDREN {
            put(&db, &format!("{owner}:{child}"), Some(&owner), 5, "derived")?;
        }
        db.remove_task(owner.as_str());
        most = most.max(db.stats().chunks);
    }
    let stats = db.stats();
    // Without collection this would be GENERATIONS * CHILDREN = 1000 (the policy
    // lets about 1 MiB of removed owners accumulate: some 8 generations).
    assert!(stats.gc.cycles >= 3, "{:?}", stats.gc);
    assert!(most <= 20 * CHILDREN, "at most {most} chunks at once");
    assert!(stats.chunks <= 20 * CHILDREN, "{} chunks at the end", stats.chunks);
    assert!(stats.chunks_in_memory <= stats.chunks + 2 * (CHILDREN + 1), "{stats:?}");
    db.check_consistency()?;
    Ok(())
}

#[test]
fn old_snapshots_are_unaffected_by_concurrent_commits_and_collection() -> Result<()> {
    const ROOTS: usize = 4;
    const WRITES: usize = 200;
    const READER_ROUNDS: usize = 40;
    const GC_ROUNDS: usize = 300;
    let db = Database::<RefLang>::new();
    db.set_gc_policy(GcPolicy::default().garbage_bytes(4096).slice(8));
    let build = |root: usize, generation: usize| -> Result<()> {
        let name = format!("root:{root}");
        let tag = format!("gen {generation}");
        put(&db, &name, None, 3, &tag)?;
        for child in 0..3 {
            let child_name = format!("{name}:{child}");
            put(&db, &child_name, Some(&name), 2, &tag)?;
            put(&db, &format!("{child_name}:leaf"), Some(&child_name), 2, &tag)?;
        }
        Ok(())
    };
    for root in 0..ROOTS {
        build(root, 0)?;
    }
    let writing = AtomicBool::new(true);
    thread::scope(|scope| {
        for reader in 0..4 {
            let db = &db;
            scope.spawn(move || {
                for round in 0..READER_ROUNDS {
                    let snapshot = db.snapshot();
                    let first = contents(&snapshot);
                    let probe = (file(&format!("root:{}:1:leaf", (reader + round) % ROOTS)), "r1");
                    let probed = snapshot.get(SYMBOLS, probe).expect("valid key").len();
                    for _ in 0..10 {
                        assert_eq!(contents(&snapshot), first, "a snapshot always answers the same");
                        assert_eq!(snapshot.get(SYMBOLS, probe).expect("valid key").len(), probed);
                        thread::yield_now();
                    }
                }
            });
        }
        let (db_gc, writing_gc) = (&db, &writing);
        scope.spawn(move || {
            for round in 0..GC_ROUNDS {
                if round % 25 == 0 {
                    db_gc.collect();
                } else {
                    db_gc.gc_step(4);
                }
                if !writing_gc.load(Ordering::Relaxed) && round > GC_ROUNDS / 2 {
                    break;
                }
                thread::yield_now();
            }
        });
        for write in 1..=WRITES {
            let root = write % ROOTS;
            if write % 3 == 0 {
                db.remove_task(format!("root:{root}"));
            } else {
                build(root, write).expect("valid commits");
            }
        }
        writing.store(false, Ordering::Relaxed);
    });
    db.collect();
    db.check_consistency()?;
    assert!(!db.has_garbage());
    let snapshot = db.snapshot();
    assert!(all_reachable(&snapshot), "collection left no unreachable task");
    let roots =
        snapshot.tasks().filter(|t| snapshot.task_chunk(*t).is_some_and(|c| c.parent().is_none())).count();
    assert!((1..=ROOTS).contains(&roots));
    assert_eq!(snapshot.tasks().count(), roots * 7, "each remaining root with its whole family");
    Ok(())
}

/// Regression (independent model, divergence 2): ownership cycles that a commit
/// closes (a task its own parent; a task re-parented under its own child) reach no
/// entry and are collected.
#[test]
fn a_cycle_closed_by_re_parenting_is_collected() -> Result<()> {
    let db = Database::<RefLang>::new();
    db.set_gc_policy(manual());
    put(&db, "src", None, 1, "src")?;
    put(&db, "self", Some("src"), 1, "self")?;
    put(&db, "self", Some("self"), 1, "self")?;
    put(&db, "p", Some("src"), 1, "p")?;
    put(&db, "q", Some("p"), 1, "q")?;
    put(&db, "p", Some("q"), 1, "p")?;
    assert!(db.has_garbage(), "each cycle was garbage from the commit that closed it");
    assert_eq!(db.collect().chunks_reclaimed, 3);
    assert_eq!(db.snapshot().tasks().collect::<Vec<_>>(), [task("src")]);
    assert!(!db.has_garbage());
    db.check_consistency()?;
    Ok(())
}

/// Regression (independent model, divergence 3): a task committed during a cycle
/// under a parent that the cycle then sweeps is garbage the collector knows about.
#[test]
fn a_task_committed_under_a_parent_being_swept_is_collected() -> Result<()> {
    for policy in [GcPolicy::default().garbage_bytes(usize::MAX), GcPolicy::default().garbage_bytes(1)] {
        let db = Database::<RefLang>::new();
        db.set_gc_policy(policy);
        put(&db, "src", None, 1, "src")?;
        put(&db, "p", Some("ghost"), 1, "p")?;
        if policy.garbage_bytes == usize::MAX {
            db.gc_step(1);
        }
        put(&db, "c", Some("p"), 1, "c")?;
        assert!(db.has_garbage() || db.snapshot().task_chunk(task("c")).is_none());
        db.collect();
        assert_eq!(db.snapshot().tasks().collect::<Vec<_>>(), [task("src")], "{policy:?}");
        assert!(!db.has_garbage());
        assert!(all_reachable(&db.snapshot()));
        db.check_consistency()?;
    }
    Ok(())
}
