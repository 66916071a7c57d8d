//! The incremental reference model: random task runs with reads (every condition,
//! with and without filters, eager and lazy), parents (entries, real parents, a
//! parent that never exists, a task its own parent, re-parenting into cycles),
//! spawned children, forced runs, removals and re-additions, runs that commit after
//! other commits (in flight), and garbage collection in slices under three policies,
//! checked after every operation against a naive model of what the runtime
//! promises:
//!
//! - staleness: a task is stale exactly when it was scheduled (or spawned) and has
//!   not run since, or a commit changed a key inside one of its reads' ranges since
//!   it ran (including commits between its snapshot and its commit); removing a
//!   parent unschedules the children it spawned that never ran; `is_stale` and
//!   `stale()` agree, and reading them changes nothing;
//! - read-sets: each current chunk's reads hold the hits and the chunks of the run
//!   that is current;
//! - confirmation: `clear_unchanged` clears exactly the tasks stale only by
//!   invalidation whose every read returns what it returned: the same chunks hold
//!   its range, or (unfiltered or with a retained filter, run to the end) the same
//!   records are returned now. Clearing a task whose results changed would be a lost
//!   invalidation; keeping one whose results did not, a needless run;
//! - collection: only versions that reach no entry through their parents are ever
//!   swept, the collector knows about every such version (`has_garbage`), and
//!   `collect` leaves none.

use std::collections::{BTreeMap, BTreeSet};

use chunkdb_database::reference::TextLang;
use chunkdb_database::{ChunkId, Database, GcPolicy, Ident, KeyPrefix, Query, TaskContext, TaskId};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

const TASKS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];
const GHOST: &str = "ghost";
const PARTITIONS: [&str; 2] = ["p0", "p1"];

/// A read's condition on single-component `(u8,)` keys.
#[derive(Clone, Copy, Debug)]
enum Condition {
    All,
    Exact(u8),
    Between(u8, u8),
    Lt(u8),
    Le(u8),
    Gt(u8),
    Ge(u8),
}

impl Condition {
    fn matches(self, key: u8) -> bool {
        match self {
            Condition::All => true,
            Condition::Exact(k) => key == k,
            Condition::Between(low, high) => low <= key && key <= high,
            Condition::Lt(b) => key < b,
            Condition::Le(b) => key <= b,
            Condition::Gt(b) => key > b,
            Condition::Ge(b) => key >= b,
        }
    }

    fn build(self, query: Query<'_, TextLang>) -> Query<'_, TextLang> {
        let bound = |b: u8| KeyPrefix::new((b,));
        match self {
            Condition::All => query,
            Condition::Exact(k) => query.exact((k,)),
            Condition::Between(low, high) => query.between(bound(low), bound(high)),
            Condition::Lt(b) => query.lt(bound(b)),
            Condition::Le(b) => query.le(bound(b)),
            Condition::Gt(b) => query.gt(bound(b)),
            Condition::Ge(b) => query.ge(bound(b)),
        }
    }
}

/// Which records a read's filter keeps.
#[derive(Clone, Copy, Debug)]
enum Filter {
    /// No filter.
    Unfiltered,
    /// Keeps nothing.
    Nothing,
    /// Keeps values starting with `x`.
    StartsWithX,
}

impl Filter {
    fn keeps(self, value: &str) -> bool {
        match self {
            Filter::Unfiltered => true,
            Filter::Nothing => false,
            Filter::StartsWithX => value.starts_with('x'),
        }
    }
}

/// How a read is executed.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Execute,
    /// A lazy iterator, consumed to the end.
    Iterate,
}

#[derive(Clone, Copy, Debug)]
struct Read {
    partition: usize,
    condition: Condition,
    filter: Filter,
    /// Whether a filter is given with `filter` (kept by the database), not
    /// `filter_borrowed`.
    retained: bool,
    mode: Mode,
}

impl Read {
    /// Whether the database can evaluate the read again.
    fn recheckable(&self) -> bool {
        matches!(self.filter, Filter::Unfiltered) || self.retained
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parent {
    Entry,
    Task(usize),
    Ghost,
}

#[derive(Clone, Debug)]
struct Run {
    task: usize,
    parent: Parent,
    reads: Vec<Read>,
    writes: BTreeMap<(usize, u8), String>,
    spawn: Option<usize>,
}

#[derive(Clone, Debug)]
enum Op {
    Run(Run),
    /// Starts a run (its reads now) that commits at the next `Finish`.
    Begin(Run),
    Finish,
    Remove(usize),
    Schedule(usize),
    AskStale,
    ClearUnchanged,
    GcStep(usize),
    Collect,
    Policy(usize),
}

fn condition() -> impl Strategy<Value = Condition> {
    let key = || 0u8..6;
    prop_oneof![
        Just(Condition::All),
        key().prop_map(Condition::Exact),
        (key(), key()).prop_map(|(a, b)| Condition::Between(a, b)),
        key().prop_map(Condition::Lt),
        key().prop_map(Condition::Le),
        key().prop_map(Condition::Gt),
        key().prop_map(Condition::Ge),
    ]
}

fn read() -> impl Strategy<Value = Read> {
    let filter = prop_oneof![
        3 => Just(Filter::Unfiltered),
        1 => Just(Filter::Nothing),
        2 => Just(Filter::StartsWithX),
    ];
    let mode = prop_oneof![Just(Mode::Execute), Just(Mode::Iterate)];
    (0..PARTITIONS.len(), condition(), filter, any::<bool>(), mode).prop_map(
        |(partition, condition, filter, retained, mode)| Read {
            partition,
            condition,
            filter,
            retained,
            mode,
        },
    )
}

fn run_of() -> impl Strategy<Value = Run> {
    let parent = prop_oneof![
        3 => Just(Parent::Entry),
        4 => (0..TASKS.len()).prop_map(Parent::Task),
        1 => Just(Parent::Ghost),
    ];
    (
        0..TASKS.len(),
        parent,
        prop::collection::vec(read(), 0..3),
        prop::collection::btree_map((0..PARTITIONS.len(), 0u8..6), "[xy]{0,1}", 0..3),
        prop::option::weighted(0.2, 0..TASKS.len()),
    )
        .prop_map(|(task, parent, reads, writes, spawn)| Run {
            task,
            parent,
            reads,
            writes,
            spawn: spawn.filter(|child| *child != task),
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => run_of().prop_map(Op::Run),
        1 => run_of().prop_map(Op::Begin),
        1 => Just(Op::Finish),
        2 => (0..TASKS.len()).prop_map(Op::Remove),
        1 => (0..TASKS.len()).prop_map(Op::Schedule),
        2 => Just(Op::AskStale),
        2 => Just(Op::ClearUnchanged),
        2 => (1usize..4).prop_map(Op::GcStep),
        1 => Just(Op::Collect),
        1 => (0usize..3).prop_map(Op::Policy),
    ]
}

/// A read as the runtime must store it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelRead {
    partition: usize,
    condition: String,
    hits: usize,
    chunks: BTreeSet<ChunkId>,
    /// Who wrote which value under which key, for each record returned.
    results: BTreeSet<(usize, u8, String)>,
}

#[derive(Clone, Debug)]
struct Version {
    chunk: ChunkId,
    parent: Parent,
    records: BTreeMap<(usize, u8), String>,
    reads: Vec<(Read, ModelRead)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StaleEntry {
    scheduled: bool,
    /// For a scheduled task, when it was last scheduled (in the order of run starts
    /// and schedules): a run that started before does not answer it.
    ticket: u64,
    /// The task that spawned it, for a spawned task that has not run.
    spawner: Option<usize>,
}

#[derive(Default)]
struct Model {
    versions: BTreeMap<usize, Version>,
    stale: BTreeMap<usize, StaleEntry>,
    /// The keys changed since the in-flight run took its snapshot.
    in_flight_changes: Option<Vec<(usize, u8)>>,
    /// Orders run starts and schedules.
    tickets: u64,
}

impl Model {
    fn read(&self, read: &Read) -> ModelRead {
        let mut chunks = BTreeSet::new();
        let mut results = BTreeSet::new();
        for (task, version) in &self.versions {
            for ((partition, key), value) in &version.records {
                if *partition == read.partition && read.condition.matches(*key) {
                    chunks.insert(version.chunk);
                    if read.filter.keeps(value) {
                        results.insert((*task, *key, value.clone()));
                    }
                }
            }
        }
        let condition = format!("{:?}", read.condition);
        ModelRead { partition: read.partition, condition, hits: results.len(), chunks, results }
    }

    /// Whether `read`, which returned `then`, returns the same now as far as the
    /// database can tell: the same chunks hold its range, or it can be evaluated
    /// again and returns the same records.
    fn read_unchanged(&self, read: &Read, then: &ModelRead) -> bool {
        let now = self.read(read);
        now.chunks == then.chunks || (read.recheckable() && now.results == then.results)
    }

    /// The tasks `clear_unchanged` must clear: stale only by invalidation, with
    /// reads, every one unchanged.
    fn unchanged(&self) -> BTreeSet<usize> {
        self.stale
            .iter()
            .filter(|(task, entry)| {
                !entry.scheduled
                    && self.versions.get(task).is_some_and(|version| {
                        !version.reads.is_empty()
                            && version.reads.iter().all(|(read, then)| self.read_unchanged(read, then))
                    })
            })
            .map(|(task, _)| *task)
            .collect()
    }

    fn reachable(&self, task: usize) -> bool {
        let mut at = task;
        for _ in 0..=self.versions.len() {
            match self.versions.get(&at).map(|version| version.parent) {
                Some(Parent::Entry) => return true,
                Some(Parent::Task(parent)) => at = parent,
                Some(Parent::Ghost) | None => return false,
            }
        }
        false
    }

    fn unreachable(&self) -> Vec<usize> {
        self.versions.keys().copied().filter(|task| !self.reachable(*task)).collect()
    }

    fn ticket(&mut self) -> u64 {
        self.tickets += 1;
        self.tickets
    }

    fn add_stale(&mut self, task: usize, added: StaleEntry) {
        let entry = self.stale.entry(task).or_insert(added);
        if added.scheduled {
            entry.ticket = entry.ticket.max(added.ticket);
        }
        entry.scheduled |= added.scheduled;
        entry.spawner = added.spawner.or(entry.spawner);
    }

    /// Marks stale every reader (but `writer`) of a key in `changed`, and notes the
    /// keys for the run in flight.
    fn invalidate(&mut self, writer: usize, changed: &[(usize, u8)]) {
        if let Some(noted) = self.in_flight_changes.as_mut() {
            noted.extend_from_slice(changed);
        }
        let readers: Vec<usize> = self
            .versions
            .iter()
            .filter(|(task, version)| {
                **task != writer
                    && version.reads.iter().any(|(read, _)| {
                        changed.iter().any(|(p, key)| *p == read.partition && read.condition.matches(*key))
                    })
            })
            .map(|(task, _)| *task)
            .collect();
        for reader in readers {
            self.add_stale(reader, StaleEntry { scheduled: false, ticket: 0, spawner: None });
        }
    }

    /// The task ran (the run started at `ticket`) and its run is current: it is no
    /// longer stale, unless it was scheduled after the run started, or
    /// `changed_since` (what changed while it ran) touches its reads.
    fn ran(&mut self, task: usize, ticket: u64, changed_since: &[(usize, u8)]) {
        if self.stale.get(&task).is_some_and(|entry| entry.scheduled && entry.ticket > ticket) {
            return;
        }
        self.stale.remove(&task);
        let reads = self.versions.get(&task).map_or(&[][..], |version| &version.reads[..]);
        let touched = reads.iter().any(|(read, _)| {
            changed_since.iter().any(|(p, key)| *p == read.partition && read.condition.matches(*key))
        });
        if touched {
            self.add_stale(task, StaleEntry { scheduled: false, ticket: 0, spawner: None });
        }
    }

    fn replace(&mut self, task: usize, version: Version) {
        let old = self.versions.get(&task).map(|old| old.records.clone()).unwrap_or_default();
        let changed = changed_keys(&old, &version.records);
        self.versions.insert(task, version);
        self.invalidate(task, &changed);
    }

    fn remove(&mut self, task: usize) {
        let Some(old) = self.versions.remove(&task) else { return };
        self.stale.remove(&task);
        self.stale.retain(|_, entry| !(entry.scheduled && entry.spawner == Some(task)));
        let changed = changed_keys(&old.records, &BTreeMap::new());
        self.invalidate(task, &changed);
    }

    fn spawned(&mut self, parent: usize, child: Option<usize>) {
        if let Some(child) = child
            && !self.versions.contains_key(&child)
        {
            let ticket = self.ticket();
            self.add_stale(child, StaleEntry { scheduled: true, ticket, spawner: Some(parent) });
        }
    }
}

fn changed_keys(
    old: &BTreeMap<(usize, u8), String>,
    new: &BTreeMap<(usize, u8), String>,
) -> Vec<(usize, u8)> {
    let keys: BTreeSet<&(usize, u8)> = old.keys().chain(new.keys()).collect();
    keys.into_iter().filter(|key| old.get(key) != new.get(key)).copied().collect()
}

fn partition(at: usize) -> Ident {
    Ident::named(PARTITIONS[at])
}

fn task_of(at: usize) -> TaskId {
    TaskId::new(TASKS[at])
}

fn index_of(task: TaskId) -> usize {
    TASKS.iter().position(|name| TaskId::new(name) == task).expect("a model task")
}

/// Makes `run`'s reads through `ctx`; returns what the model says each returns.
fn make_reads(
    ctx: &TaskContext<TextLang>,
    run: &Run,
    model: &Model,
) -> Result<Vec<(Read, ModelRead)>, TestCaseError> {
    let mut reads = Vec::new();
    for read in &run.reads {
        let mut query = read.condition.build(ctx.query(partition(read.partition)));
        let filter = read.filter;
        if !matches!(filter, Filter::Unfiltered) {
            query = if read.retained {
                query.filter(move |hit| filter.keeps(hit.record()))
            } else {
                query.filter_borrowed(move |hit| filter.keeps(hit.record()))
            };
        }
        let hits = match read.mode {
            Mode::Execute => query.execute().map_err(|e| TestCaseError::fail(e.to_string()))?.len(),
            Mode::Iterate => query.iter().map_err(|e| TestCaseError::fail(e.to_string()))?.count(),
        };
        let expected = model.read(read);
        prop_assert_eq!(hits, expected.hits, "{:?}", read);
        reads.push((*read, expected));
    }
    Ok(reads)
}

/// Writes `run`'s output, parent and spawn into `ctx`.
fn write_output(ctx: &TaskContext<TextLang>, run: &Run) {
    match run.parent {
        Parent::Entry => {}
        Parent::Task(parent) => {
            ctx.set_parent(task_of(parent));
        }
        Parent::Ghost => {
            ctx.set_parent(TaskId::new(GHOST));
        }
    }
    for ((p, key), value) in &run.writes {
        ctx.insert(partition(*p), (*key,), value.clone()).expect("an open schema takes any key");
    }
    if let Some(child) = run.spawn {
        ctx.spawn(task_of(child));
    }
}

/// Commits a run's context and applies it to the model.
fn commit(
    db: &Database<TextLang>,
    model: &mut Model,
    ctx: TaskContext<TextLang>,
    run: &Run,
    reads: Vec<(Read, ModelRead)>,
    ticket: u64,
    changed_since: &[(usize, u8)],
) -> Result<(), TestCaseError> {
    write_output(&ctx, run);
    let receipt = ctx.commit().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let current = model.versions.get(&run.task);
    let same = current.is_some_and(|current| {
        current.parent == run.parent
            && current.records == run.writes
            && current.reads.iter().map(|(_, read)| read).eq(reads.iter().map(|(_, read)| read))
    });
    if !same {
        prop_assert!(receipt.stored, "a run that differs from the current version is stored: {:?}", run);
    }
    if receipt.stored {
        let chunk = receipt.chunk.expect("a commit has a chunk");
        model.replace(run.task, Version { chunk, parent: run.parent, records: run.writes.clone(), reads });
    }
    model.ran(run.task, ticket, changed_since);
    model.spawned(run.task, run.spawn);
    // The stored read-set is the current run's (unless the commit's collection
    // slice swept the version at once, which `sync_collection` checks).
    let snapshot = db.snapshot();
    let Some(stored) = snapshot.task_chunk(task_of(run.task)) else { return Ok(()) };
    let expected = &model.versions[&run.task].reads;
    prop_assert_eq!(stored.reads().len(), expected.len());
    for (got, (_, want)) in stored.reads().iter().zip(expected) {
        prop_assert_eq!(got.partition(), partition(want.partition));
        prop_assert_eq!(got.hits(), want.hits, "hits of {}", want.condition);
        let chunks: BTreeSet<ChunkId> = got.chunks().iter().copied().collect();
        prop_assert_eq!(&chunks, &want.chunks, "chunks of {}", want.condition);
    }
    for (got, (read, _)) in stored.reads().iter().zip(expected) {
        prop_assert_eq!(got.is_recheckable(), read.recheckable(), "{:?}", read);
    }
    Ok(())
}

/// Applies the sweeps the database made (each must be of an unreachable version) and
/// checks what the collector knows.
fn sync_collection(db: &Database<TextLang>, model: &mut Model) -> Result<(), TestCaseError> {
    let snapshot = db.snapshot();
    let live: BTreeSet<usize> = snapshot.tasks().map(index_of).collect();
    let unreachable = model.unreachable();
    let swept: Vec<usize> = model.versions.keys().copied().filter(|task| !live.contains(task)).collect();
    for task in swept {
        prop_assert!(unreachable.contains(&task), "{} was swept though it reaches an entry", TASKS[task]);
        model.remove(task);
    }
    let modelled: BTreeSet<usize> = model.versions.keys().copied().collect();
    prop_assert_eq!(&live, &modelled, "the database holds a version the model does not");
    for (task, version) in &model.versions {
        prop_assert_eq!(snapshot.task_chunk(task_of(*task)).map(|chunk| chunk.id()), Some(version.chunk));
    }
    if !model.unreachable().is_empty() {
        prop_assert!(
            db.has_garbage(),
            "unreachable versions {:?} are unknown to the collector",
            model.unreachable()
        );
    }
    Ok(())
}

fn check_staleness(db: &Database<TextLang>, model: &Model, ask: bool) -> Result<(), TestCaseError> {
    for (task, name) in TASKS.iter().enumerate() {
        prop_assert_eq!(db.is_stale(task_of(task)), model.stale.contains_key(&task), "is_stale({})", name);
    }
    prop_assert!(!db.is_stale(TaskId::new(GHOST)));
    if ask {
        let expected: BTreeSet<usize> = model.stale.keys().copied().collect();
        for _ in 0..2 {
            let got: BTreeSet<usize> = db.stale().into_iter().map(index_of).collect();
            prop_assert_eq!(&got, &expected, "stale()");
        }
    }
    Ok(())
}

/// A run that has read and not yet committed: its context, its plan and what the
/// model said its reads return.
type InFlight = (TaskContext<TextLang>, Run, Vec<(Read, ModelRead)>, u64);

fn script(ops: &[Op]) -> Result<(), TestCaseError> {
    let db = Database::<TextLang>::new();
    db.set_gc_policy(GcPolicy::default().garbage_bytes(usize::MAX).slice(1));
    let mut model = Model::default();
    let mut in_flight: Option<InFlight> = None;
    for op in ops {
        let mut ask = false;
        match op {
            Op::Run(run) => {
                let ticket = model.ticket();
                let ctx = db.task(task_of(run.task));
                let reads = make_reads(&ctx, run, &model)?;
                commit(&db, &mut model, ctx, run, reads, ticket, &[])?;
            }
            Op::Begin(run) => {
                if in_flight.is_none() {
                    let ticket = model.ticket();
                    let ctx = db.task(task_of(run.task));
                    let reads = make_reads(&ctx, run, &model)?;
                    model.in_flight_changes = Some(Vec::new());
                    in_flight = Some((ctx, run.clone(), reads, ticket));
                }
            }
            Op::Finish => {
                if let Some((ctx, run, reads, ticket)) = in_flight.take() {
                    let changed = model.in_flight_changes.take().unwrap_or_default();
                    commit(&db, &mut model, ctx, &run, reads, ticket, &changed)?;
                }
            }
            Op::Remove(task) => {
                let receipt = db.remove_task(task_of(*task));
                prop_assert_eq!(receipt.stored, model.versions.contains_key(task));
                model.remove(*task);
            }
            Op::Schedule(task) => {
                db.schedule(task_of(*task));
                let ticket = model.ticket();
                model.add_stale(*task, StaleEntry { scheduled: true, ticket, spawner: None });
            }
            Op::AskStale => ask = true,
            Op::ClearUnchanged => {
                let expected = model.unchanged();
                let cleared: BTreeSet<usize> = db.clear_unchanged(TASKS).into_iter().map(index_of).collect();
                prop_assert_eq!(&cleared, &expected, "clear_unchanged");
                model.stale.retain(|task, _| !cleared.contains(task));
            }
            Op::GcStep(budget) => {
                db.gc_step(*budget);
            }
            Op::Collect => {
                db.collect();
            }
            Op::Policy(which) => {
                let bytes = [usize::MAX, 1, 4096][*which];
                db.set_gc_policy(GcPolicy::default().garbage_bytes(bytes).slice(1 + *which));
            }
        }
        sync_collection(&db, &mut model)?;
        if matches!(op, Op::Collect) {
            prop_assert!(model.unreachable().is_empty(), "collect left {:?}", model.unreachable());
            prop_assert!(!db.has_garbage());
        }
        check_staleness(&db, &model, ask)?;
        db.check_consistency().map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    Ok(())
}

#[test]
fn staleness_read_sets_and_collection_match_the_incremental_model() {
    let config = Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x1DC0_57A1),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let total = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&prop::collection::vec(op(), 150..250), |ops| {
            script(&ops)?;
            total.fetch_add(ops.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert!(total.into_inner() >= 256 * 150);
}
