//! Queries on a snapshot: one partition, a sort-key condition, results in key order.

use std::any::Any;
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::error::Result;
use crate::hash::{ChunkId, ContentHash};
use crate::ident::{Ident, TaskId};
use crate::incremental::read_set::{ReadEntry, ReadLog, Recheck, Tally};
use crate::key::{
    End, IntoKeyPrefix, IntoSortKey, KeyPart, KeyPrefix, KeyRange, KeyShape, RangeRef, SortKey, SortKeyRef,
    Start,
};
use crate::read::exec::{Execution, QueryKind, SEQUENTIAL_BELOW};
use crate::read::snapshot::Snapshot;
use crate::read::typed::IndexHandle;
use crate::schema::{self, Schema};
use crate::store::chunk::Chunk;
use crate::store::index::{Posting, Postings, Scan};
use crate::store::secondary::IndexHit;
use crate::store::state::State;

/// The key condition of a query.
#[derive(Clone, Debug)]
enum Condition {
    All,
    Exact(SortKey, Option<KeyShape>),
    BeginsWith(KeyPrefix),
    Between(KeyPrefix, KeyPrefix),
    LessThan(KeyPrefix),
    AtMost(KeyPrefix),
    GreaterThan(KeyPrefix),
    AtLeast(KeyPrefix),
}

/// A query being built: a partition and (optionally) a sort-key condition.
///
/// Range bounds are prefixes, and a key is compared with a bound on the key's leading
/// part of the bound's length: `le((file, 2u8))` includes `(file, 2, 99)`, and
/// `gt((file, 2u8))` starts after every key beginning with `(file, 2)`. For complete
/// keys this is plain key order. A bare string is the start of a string component
/// (as in [`begins_with`](Self::begins_with)), so `le("c")` includes `"cat"`; to bound
/// by the exact string, pass `SortKey::encode("c")`.
#[must_use = "a query does nothing until executed"]
pub struct Query<'s, S: Schema> {
    snapshot: &'s Snapshot<S>,
    log: Option<&'s ReadLog>,
    partition: Ident,
    condition: Condition,
    filter: Option<Filter<'s, S>>,
    /// The filter again, when the database may keep it with the read.
    retained: Option<Arc<RetainedFilter<S>>>,
    execution: Execution,
}

/// A caller's predicate on results, shared by the threads of a parallel scan.
type Keep<'s, S> = dyn Fn(&Hit<'s, S>) -> bool + Send + Sync + 's;

/// An owned [`Keep`].
type Filter<'s, S> = Box<Keep<'s, S>>;

/// A predicate on results that borrows nothing.
type KeepAny<S> = dyn for<'h> Fn(&Hit<'h, S>) -> bool + Send + Sync;

/// A filter that borrows nothing, kept with a tracked read so that the read can be
/// evaluated again on a newer state.
pub(crate) struct RetainedFilter<S: Schema>(Box<KeepAny<S>>);

impl<'s, S: Schema> Query<'s, S> {
    pub(crate) fn new(snapshot: &'s Snapshot<S>, log: Option<&'s ReadLog>, partition: Ident) -> Self {
        Query {
            snapshot,
            log,
            partition,
            condition: Condition::All,
            filter: None,
            retained: None,
            execution: Execution::Auto,
        }
    }

    /// Keeps only the records `keep` accepts. A large filtered scan runs on all cores
    /// when that is faster (see [`Execution`]); results stay in key order. A tracked
    /// query still records every chunk it examined: its output depends on all of them.
    /// `keep` may run on pool threads in any order, so it must not query or write
    /// through a [`TaskContext`](crate::TaskContext): the order of such reads would vary
    /// from run to run, and with it the chunk's id.
    ///
    /// The database keeps `keep` with a tracked read. When a record in the read's
    /// range changes, the [`Driver`](crate::Driver) (and
    /// [`Database::clear_unchanged`](crate::Database::clear_unchanged)) first
    /// evaluates the filter on the new records, and the task re-runs only if the
    /// records it keeps changed: an edit to a record the filter drops re-runs nothing.
    /// So `keep` borrows nothing (it may own what it needs) and must decide from the
    /// hit alone, the same way each time. A filter that must borrow is
    /// [`filter_borrowed`](Self::filter_borrowed).
    ///
    /// ```
    /// # use chunkdb_database::Database;
    /// # use chunkdb_database::reference::{RefLang, RefRecordRef, SYMBOLS};
    /// let db = Database::<RefLang>::new();
    /// let ctx = db.task("check");
    /// let typed = ctx
    ///     .query(SYMBOLS)
    ///     .filter(|hit| matches!(hit.record(), RefRecordRef::Function(f) if f.return_type.is_some()))
    ///     .count()?;
    /// # assert_eq!(typed, 0);
    /// assert!(ctx.reads()[0].is_recheckable());
    /// # Ok::<(), chunkdb_database::Error>(())
    /// ```
    pub fn filter(self, keep: impl for<'h> Fn(&Hit<'h, S>) -> bool + Send + Sync + 'static) -> Self {
        let retained = Arc::new(RetainedFilter(Box::new(keep)));
        let shared = Arc::clone(&retained);
        let filter: Filter<'s, S> = Box::new(move |hit: &Hit<'s, S>| (shared.0)(hit));
        Query { filter: Some(filter), retained: Some(retained), ..self }
    }

    /// Keeps only the records `keep` accepts, like [`filter`](Self::filter), with a
    /// filter that may borrow. The database cannot keep it, so it cannot evaluate the
    /// read again: a tracked read with this filter counts as changed whenever a record
    /// in its range changes, even one the filter drops, and its task re-runs (and
    /// then cuts off early if its output is the same).
    pub fn filter_borrowed(self, keep: impl Fn(&Hit<'s, S>) -> bool + Send + Sync + 's) -> Self {
        Query { filter: Some(Box::new(keep)), retained: None, ..self }
    }

    /// How the read this query records can be evaluated again, when it returns every
    /// record that passes its filter.
    fn recheck(&self) -> Recheck {
        match (&self.filter, &self.retained) {
            (None, _) => Recheck::Unfiltered,
            (Some(_), Some(retained)) => Recheck::Filter(Arc::clone(retained) as Arc<dyn Any + Send + Sync>),
            (Some(_), None) => Recheck::Never,
        }
    }

    /// Overrides how this query executes (by default the database's setting, which is
    /// [`Execution::Auto`] unless changed with
    /// [`Database::set_execution`](crate::Database::set_execution)).
    pub fn execution(self, execution: Execution) -> Self {
        Query { execution, ..self }
    }

    fn with(self, condition: Condition) -> Self {
        Query { condition, ..self }
    }

    /// Records whose key is exactly `key`.
    pub fn exact(self, key: impl IntoSortKey) -> Self {
        let shape = key.key_shape();
        self.with(Condition::Exact(key.into_sort_key(), shape))
    }

    /// Records whose key begins with `prefix`: whole tuple components, optionally
    /// ending in the start of a string ([`KeyPrefix::str_start`],
    /// [`KeyPrefix::str_prefix`]); see [`IntoKeyPrefix`]. `Ident` components order by
    /// hash, not by name (see [`Ident`](crate::Ident)).
    pub fn begins_with(self, prefix: impl IntoKeyPrefix) -> Self {
        self.with(Condition::BeginsWith(prefix.into_key_prefix()))
    }

    /// Records with `low <= key <= high`, inclusive at both ends (see the type's
    /// docs for how a bound shorter than the key compares).
    pub fn between(self, low: impl IntoKeyPrefix, high: impl IntoKeyPrefix) -> Self {
        self.with(Condition::Between(low.into_key_prefix(), high.into_key_prefix()))
    }

    /// Records with `key < bound` (comparing the key's leading part).
    pub fn lt(self, bound: impl IntoKeyPrefix) -> Self {
        self.with(Condition::LessThan(bound.into_key_prefix()))
    }

    /// Records with `key <= bound` (comparing the key's leading part).
    pub fn le(self, bound: impl IntoKeyPrefix) -> Self {
        self.with(Condition::AtMost(bound.into_key_prefix()))
    }

    /// Records with `key > bound` (comparing the key's leading part).
    pub fn gt(self, bound: impl IntoKeyPrefix) -> Self {
        self.with(Condition::GreaterThan(bound.into_key_prefix()))
    }

    /// Records with `key >= bound` (comparing the key's leading part).
    pub fn ge(self, bound: impl IntoKeyPrefix) -> Self {
        self.with(Condition::AtLeast(bound.into_key_prefix()))
    }

    /// Checks the query against the schema.
    fn validate(&self) -> Result<()> {
        let Some(def) = schema::partition_def::<S>(self.partition)? else {
            return Ok(());
        };
        let prefix = |p: &KeyPrefix| schema::check_key_shape(def, p.as_bytes(), p.shape(), true);
        match &self.condition {
            Condition::All => Ok(()),
            Condition::Exact(key, shape) => schema::check_key_shape(def, key.as_bytes(), *shape, false),
            Condition::Between(low, high) => prefix(low).and_then(|()| prefix(high)),
            Condition::BeginsWith(p)
            | Condition::LessThan(p)
            | Condition::AtMost(p)
            | Condition::GreaterThan(p)
            | Condition::AtLeast(p) => prefix(p),
        }
    }

    /// Runs the query and collects the matching records (borrowed, not copied). An
    /// exact-key query is a single tree descent and allocates nothing.
    ///
    /// # Errors
    /// [`Error::UnknownPartition`](crate::Error::UnknownPartition) or
    /// [`Error::BadSortKey`](crate::Error::BadSortKey) when the schema declares
    /// partitions and the query does not fit them.
    pub fn execute(self) -> Result<QueryResults<'s, S>> {
        self.validate()?;
        if let (Condition::Exact(key, _), None) = (&self.condition, &self.filter) {
            return exact(self.snapshot, self.log, self.partition, key.as_bytes());
        }
        let mut lists = self.scan(&|hit| Some(hit), self.recheck())?;
        let found =
            if lists.len() > 1 { Found::parts(lists) } else { Found::List(lists.pop().unwrap_or_default()) };
        Ok(QueryResults { partition: self.partition, found })
    }

    /// Runs the query and maps each record that passes its filter through `f`,
    /// keeping the `Some`s, in key order. A large scan maps on every core when that is
    /// faster, like [`execute`](Self::execute); a tracked query records the read with
    /// the number of values kept. Like filters, `f` may run on pool threads in any
    /// order: it must not query or write through a task context.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn filter_map<T: Send>(self, f: impl Fn(&Hit<'s, S>) -> Option<T> + Send + Sync) -> Result<Vec<T>> {
        self.validate()?;
        let lists = self.scan(&|hit| f(&hit), Recheck::Never)?;
        let mut values = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        for list in lists {
            values.extend(list);
        }
        Ok(values)
    }

    /// Scans the query's range (validated), emitting what `emit` makes of each record
    /// that passes the filter, in key order, as one list or as a parallel scan's parts.
    /// The scan starts on this thread; past [`SEQUENTIAL_BELOW`] keys the rest is
    /// planned by the executor and may run in parallel. A tracked read is recorded
    /// with `recheck`.
    ///
    /// # Errors
    /// [`Error::DamagedRecords`](crate::Error::DamagedRecords) when a chunk restored
    /// from disk that the scan reached fails its first-use check.
    fn scan<T: Send>(
        &self,
        emit: &(impl Fn(Hit<'s, S>) -> Option<T> + Sync),
        recheck: Recheck,
    ) -> Result<Vec<Vec<T>>> {
        let partition = self.partition;
        let range = self.condition.range();
        let Some(index) = self.snapshot.state.partitions.get(&partition) else {
            if let Some(log) = self.log {
                log.record(ReadEntry::new(partition, range.to_owned(), Tally::new(&recheck), recheck));
            }
            return Ok(Vec::new());
        };
        let damage = Damage::default();
        let admits = |key: &[u8]| range.admits_end(key);
        let kind = if self.filter.is_some() { QueryKind::FilteredScan } else { QueryKind::Scan };
        let executor = &self.snapshot.counters.executor;
        let filter = self.filter.as_deref();
        let forced_parallel = self.execution == Execution::Parallel
            || (self.execution == Execution::Auto && executor.mode() == Execution::Parallel);
        // Start on this thread: most scans end within a few keys, and then no size
        // estimate or plan is needed at all.
        let mut scan = (!forced_parallel).then(|| index.scan_from(range.start));
        let mut head = Vec::with_capacity(16);
        // What the scan saw is noted only for a recorded read.
        let mut tally = self.log.map(|_| Tally::new(&recheck));
        let mut examined = 0;
        // Where the rest of a long scan starts: right after the last key seen.
        let mut after: Option<Vec<u8>> = None;
        let mut exhausted = false;
        if let Some(scan) = scan.as_mut() {
            loop {
                let Some((key, postings)) = scan.next().filter(|(key, _)| admits(key)) else {
                    exhausted = true;
                    break;
                };
                collect_postings(partition, postings, filter, emit, &mut head, tally.as_mut(), &damage);
                examined += 1;
                if examined == SEQUENTIAL_BELOW {
                    after = Some([key, &[0]].concat());
                    break;
                }
            }
        }
        let rest = after.as_deref().map_or(range.start, Start::At);
        let remaining = if exhausted { 0 } else { index.estimate(rest, &admits) };
        let lists = if remaining == 0 {
            vec![head]
        } else {
            // A large scan: plan the rest.
            let started = Instant::now();
            let plan = executor.plan(partition, kind, examined + remaining, self.execution);
            let template = tally.as_ref().map(Tally::like);
            let lists = if plan.parallel {
                let visit = |stretches: &[&'s [Postings<S>]]| {
                    scan_stretches(
                        partition,
                        stretches,
                        filter,
                        emit,
                        template.as_ref().map(Tally::like),
                        &damage,
                    )
                };
                let parts: Vec<(Vec<T>, Option<Tally>)> = index.par_visit(rest, &admits, &visit);
                let mut lists = Vec::with_capacity(parts.len() + 1);
                if !head.is_empty() {
                    lists.push(head);
                }
                for (values, part_tally) in parts {
                    if let (Some(tally), Some(part_tally)) = (tally.as_mut(), part_tally) {
                        tally.merge(part_tally);
                    }
                    if !values.is_empty() {
                        lists.push(values);
                    }
                }
                lists
            } else {
                let mut scan = scan.unwrap_or_else(|| index.scan_from(range.start));
                while let Some((_, postings)) = scan.next().filter(|(key, _)| admits(key)) {
                    collect_postings(partition, postings, filter, emit, &mut head, tally.as_mut(), &damage);
                }
                vec![head]
            };
            // Only the planned rest was timed: report it against its own size.
            if plan.timed {
                executor.report(plan, remaining, started.elapsed());
            }
            lists
        };
        if let Some(error) = damage.into_inner() {
            return Err(error);
        }
        if let (Some(log), Some(tally)) = (self.log, tally) {
            log.record(ReadEntry::new(partition, range.to_owned(), tally, recheck));
        }
        Ok(lists)
    }

    /// Runs the query lazily: records are visited in key order as the iterator is
    /// advanced. A tracked query records its read when the iterator is dropped.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn iter(self) -> Result<Hits<'s, S>> {
        self.validate()?;
        let inner = self
            .snapshot
            .state
            .partitions
            .get(&self.partition)
            .map(|index| index.scan_from(self.condition.range().start));
        let recheck = self.recheck();
        let tracking = self.log.map(|log| Tracking { log, tally: Tally::new(&recheck), recheck });
        Ok(Hits {
            partition: self.partition,
            inner,
            current: None,
            finished: false,
            condition: self.condition,
            filter: self.filter,
            tracking,
            damaged: false,
        })
    }

    /// Number of matching records.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub fn count(self) -> Result<usize> {
        Ok(self.execute()?.len())
    }
}

/// Looks up one exact key (already validated): one descent, no allocation unless the
/// read is tracked.
fn exact<'s, S: Schema>(
    snapshot: &'s Snapshot<S>,
    log: Option<&ReadLog>,
    partition: Ident,
    key: &[u8],
) -> Result<QueryResults<'s, S>> {
    let found = snapshot.state.partitions.get(&partition).and_then(|index| index.get(key));
    let found = match found {
        Some(postings) => {
            for posting in postings.as_slice() {
                if !posting.chunk.is_checked() {
                    posting.chunk.check()?;
                }
            }
            Found::Key { postings: postings.as_slice() }
        }
        None => Found::List(Vec::new()),
    };
    let results = QueryResults { partition, found };
    if let Some(log) = log {
        log.record(ReadEntry::new(partition, KeyRange::exact(key), results.tally(), Recheck::Unfiltered));
    }
    Ok(results)
}

/// Looks up exactly `key` in `partition`, encoding a typed key into a scratch buffer
/// rather than allocating it.
pub(crate) fn get<'s, S: Schema>(
    snapshot: &'s Snapshot<S>,
    log: Option<&ReadLog>,
    partition: Ident,
    key: impl IntoSortKey,
) -> Result<QueryResults<'s, S>> {
    let shape = key.key_shape();
    key.with_encoded(|bytes| {
        if let Some(def) = schema::partition_def::<S>(partition)? {
            schema::check_key_shape(def, bytes, shape, false)?;
        }
        exact(snapshot, log, partition, bytes)
    })
}

/// Looks up many (partition, key) pairs: all are checked before any runs, so a bad
/// pair leaves no partial reads behind.
pub(crate) fn batch_get<'s, S: Schema, K: IntoSortKey>(
    snapshot: &'s Snapshot<S>,
    log: Option<&'s ReadLog>,
    pairs: impl IntoIterator<Item = (Ident, K)>,
) -> Result<Vec<QueryResults<'s, S>>> {
    let queries: Vec<Query<'s, S>> =
        pairs.into_iter().map(|(partition, key)| Query::new(snapshot, None, partition).exact(key)).collect();
    for query in &queries {
        query.validate()?;
    }
    let partition = queries.first().map_or(Ident::from_raw(0), |query| query.partition);
    // The requested keys are needed only to record the reads.
    let keys: Vec<(Ident, SortKey)> = if log.is_some() {
        queries
            .iter()
            .filter_map(|query| match &query.condition {
                Condition::Exact(key, _) => Some((query.partition, key.clone())),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let executor = &snapshot.counters.executor;
    let plan = executor.plan(partition, QueryKind::BatchGet, queries.len() * BATCH_WEIGHT, Execution::Auto);
    let started = plan.timed.then(Instant::now);
    let results: Vec<QueryResults<'s, S>> = if plan.parallel {
        queries.into_par_iter().map(Query::execute).collect::<Result<_>>()?
    } else {
        queries.into_iter().map(Query::execute).collect::<Result<_>>()?
    };
    if let Some(started) = started {
        executor.report(plan, results.len() * BATCH_WEIGHT, started.elapsed());
    }
    // Reads are recorded afterwards, in the order of the pairs, so a parallel batch
    // leaves the same read-set (and chunk id) as a sequential one.
    if let Some(log) = log {
        for (results, (partition, key)) in results.iter().zip(&keys) {
            let range = KeyRange::exact(key.as_bytes());
            log.record(ReadEntry::new(*partition, range, results.tally(), Recheck::Unfiltered));
        }
    }
    Ok(results)
}

/// An exact lookup costs about as much as scanning this many entries: how batches
/// are weighed against the executor's size bounds.
const BATCH_WEIGHT: usize = 64;

/// Appends what `emit` makes of one key's records that pass the filter to `out`,
/// noting in `tally`, when the read is recorded, every record examined and kept.
fn collect_postings<'s, S: Schema, T>(
    partition: Ident,
    postings: &'s Postings<S>,
    filter: Option<&Keep<'s, S>>,
    emit: &impl Fn(Hit<'s, S>) -> Option<T>,
    out: &mut Vec<T>,
    mut tally: Option<&mut Tally>,
    damage: &Damage,
) {
    for posting in postings.as_slice() {
        if let Some(tally) = tally.as_deref_mut() {
            tally.examined(posting.chunk.id);
        }
        if !checked(posting, damage) {
            continue;
        }
        let hit = Hit { partition, posting };
        if filter.is_none_or(|keep| keep(&hit))
            && let Some(value) = emit(hit)
        {
            if let Some(tally) = tally.as_deref_mut() {
                tally.kept(|| posting.result_hash(partition));
            }
            out.push(value);
        }
    }
}

/// Scans stretches of a partition's entries (one parallel task's share), and, when
/// the read is tracked, what it saw.
fn scan_stretches<'s, S: Schema, T>(
    partition: Ident,
    stretches: &[&'s [Postings<S>]],
    filter: Option<&Keep<'s, S>>,
    emit: &impl Fn(Hit<'s, S>) -> Option<T>,
    mut tally: Option<Tally>,
    damage: &Damage,
) -> (Vec<T>, Option<Tally>) {
    let mut values = Vec::with_capacity(stretches.iter().map(|stretch| stretch.len()).sum());
    for postings in stretches.iter().flat_map(|stretch| stretch.iter()) {
        collect_postings(partition, postings, filter, emit, &mut values, tally.as_mut(), damage);
    }
    (values, tally)
}

/// The first damaged chunk a query met (a parallel scan's parts share it).
type Damage = std::sync::OnceLock<crate::Error>;

/// Whether `posting`'s chunk may be read: built here, or restored and past its
/// first-use check. A failed check is kept in `damage` for the query to return.
#[inline]
fn checked<S: Schema>(posting: &Posting<S>, damage: &Damage) -> bool {
    if posting.chunk.is_checked() {
        return true;
    }
    match posting.chunk.check() {
        Ok(()) => true,
        Err(error) => {
            let _ = damage.set(error);
            false
        }
    }
}

/// Whether `read` would return what it returned when it ran. First, cheaply:
/// exactly the chunks it examined hold records in its range now (chunks are
/// immutable and content-addressed, so the same chunks hold the same records
/// there). Otherwise, when the read can be evaluated again (unfiltered, or with a
/// retained filter), whether it returns the same records now, wherever they are
/// held. A read that stopped early (a lazy iterator dropped midway) counts as
/// changed.
pub(crate) fn read_unchanged<S: Schema>(state: &State<S>, read: &ReadEntry) -> bool {
    read_same_chunks(state, read)
        || rerun_read(state, read).is_some_and(|now| now == (read.hits(), read.results()))
}

/// Whether exactly the chunks `read` examined hold records in its range now.
fn read_same_chunks<S: Schema>(state: &State<S>, read: &ReadEntry) -> bool {
    let noted = read.chunks();
    let mut seen = vec![false; noted.len()];
    let mut note = |id: ChunkId| match noted.binary_search(&id) {
        Ok(at) => {
            seen[at] = true;
            true
        }
        Err(_) => false,
    };
    let range = read.range();
    if let Some(index) = state.partitions.get(&read.partition()) {
        let mut scan = index.scan_from(crate::key::Start::At(range.start()));
        while let Some((_, postings)) = scan.next().filter(|(key, _)| range.contains(key)) {
            if !postings.as_slice().iter().all(|posting| note(posting.chunk.id)) {
                return false;
            }
        }
    } else if let Some(index) = state.indexes.get(&read.partition()) {
        let mut scan = index.scan_from(range.start());
        while let Some((_, hit)) = scan.next().filter(|(key, _)| range.contains(key)) {
            if !note(hit.posting.chunk.id) {
                return false;
            }
        }
    }
    seen.iter().all(|seen| *seen)
}

/// Evaluates `read` again on `state`: how many records it would return now and their
/// digest, or `None` when it cannot be evaluated again (see
/// [`ReadEntry::is_recheckable`]).
pub(crate) fn rerun_read<S: Schema>(state: &State<S>, read: &ReadEntry) -> Option<(usize, ContentHash)> {
    let filter = match read.recheck() {
        Recheck::Never | Recheck::FilterLost => return None,
        Recheck::Unfiltered => None,
        Recheck::Filter(retained) => Some(retained.downcast_ref::<RetainedFilter<S>>()?),
    };
    let (partition, range) = (read.partition(), read.range());
    let mut tally = Tally::new(read.recheck());
    if let Some(index) = state.partitions.get(&partition) {
        let mut scan = index.scan_from(Start::At(range.start()));
        while let Some((_, postings)) = scan.next().filter(|(key, _)| range.contains(key)) {
            for posting in postings.as_slice() {
                // A filter reads records: a damaged chunk makes the read one that
                // cannot be evaluated again, so its reader re-runs (and meets it).
                if filter.is_some() && posting.chunk.check().is_err() {
                    return None;
                }
                if filter.is_none_or(|keep| (keep.0)(&Hit { partition, posting })) {
                    tally.kept(|| posting.result_hash(partition));
                }
            }
        }
    } else if let Some(index) = state.indexes.get(&partition) {
        let mut scan = index.scan_from(range.start());
        while let Some((_, hit)) = scan.next().filter(|(key, _)| range.contains(key)) {
            if filter.is_some() && hit.posting.chunk.check().is_err() {
                return None;
            }
            if filter.is_none_or(|keep| (keep.0)(&Hit { partition: hit.partition, posting: &hit.posting })) {
                tally.kept(|| hit.posting.result_hash(hit.partition));
            }
        }
    }
    Some(tally.results())
}

/// The leaf runs of a scan, from its start to its end.
fn runs_until<'s, V>(
    mut scan: crate::store::tree::Iter<'s, V>,
    admits: impl Fn(&[u8]) -> bool,
) -> Vec<&'s [V]> {
    let mut runs = Vec::new();
    while let Some(run) = scan.run_while(&admits) {
        runs.push(run);
    }
    runs
}

impl<S: Schema> fmt::Debug for Query<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("partition", &self.partition)
            .field("condition", &self.condition)
            .field("tracked", &self.log.is_some())
            .finish()
    }
}

impl Condition {
    /// The range of keys the condition selects.
    fn range(&self) -> RangeRef<'_> {
        let (start, end) = match self {
            Condition::All => (Start::At(&[]), End::Unbounded),
            Condition::Exact(key, _) => (Start::At(key.as_bytes()), End::Through(key.as_bytes())),
            Condition::BeginsWith(p) => (Start::At(p.as_bytes()), End::ThroughPrefix(p.as_bytes())),
            Condition::Between(low, high) => (Start::At(low.as_bytes()), End::ThroughPrefix(high.as_bytes())),
            Condition::LessThan(p) => (Start::At(&[]), End::Before(p.as_bytes())),
            Condition::AtMost(p) => (Start::At(&[]), End::ThroughPrefix(p.as_bytes())),
            Condition::GreaterThan(p) => (Start::PastPrefix(p.as_bytes()), End::Unbounded),
            Condition::AtLeast(p) => (Start::At(p.as_bytes()), End::Unbounded),
        };
        RangeRef { start, end }
    }
}

struct Tracking<'s> {
    log: &'s ReadLog,
    tally: Tally,
    /// How the read can be evaluated again if the iterator runs to its end.
    recheck: Recheck,
}

/// A lazy iterator over a query's results, in sort-key order (records with equal keys
/// in ascending task-id order).
pub struct Hits<'s, S: Schema> {
    partition: Ident,
    inner: Option<Scan<'s, S>>,
    /// The postings of the key being visited not yet returned.
    current: Option<std::slice::Iter<'s, Posting<S>>>,
    /// Whether the scan has passed the end of its range.
    finished: bool,
    condition: Condition,
    filter: Option<Filter<'s, S>>,
    tracking: Option<Tracking<'s>>,
    /// Whether a damaged chunk ended the iteration (the read did not run to its end).
    damaged: bool,
}

impl<'s, S: Schema> Iterator for Hits<'s, S> {
    /// A hit, or the damage of a chunk restored from disk that failed its first-use
    /// check (after which the iterator ends).
    type Item = Result<Hit<'s, S>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.damaged {
            return None;
        }
        loop {
            if let Some(postings) = &mut self.current
                && let Some(posting) = postings.next()
            {
                if let Some(tracking) = &mut self.tracking {
                    tracking.tally.examined(posting.chunk.id);
                }
                if !posting.chunk.is_checked()
                    && let Err(error) = posting.chunk.check()
                {
                    (self.current, self.inner, self.damaged) = (None, None, true);
                    return Some(Err(error));
                }
                let hit = Hit { partition: self.partition, posting };
                if self.filter.as_ref().is_some_and(|keep| !keep(&hit)) {
                    continue;
                }
                if let Some(tracking) = &mut self.tracking {
                    tracking.tally.kept(|| posting.result_hash(self.partition));
                }
                return Some(Ok(hit));
            }
            let next = self.inner.as_mut().and_then(|scan| scan.next());
            let Some((_, postings)) = next.filter(|(key, _)| self.condition.range().admits_end(key)) else {
                self.inner = None;
                self.finished = true;
                return None;
            };
            self.current = Some(postings.as_slice().iter());
        }
    }
}

impl<S: Schema> Drop for Hits<'_, S> {
    fn drop(&mut self) {
        if let Some(tracking) = self.tracking.take() {
            let range = self.condition.range().to_owned();
            // A read that stopped early returned a part of its range it cannot name.
            let recheck = if self.finished { tracking.recheck } else { Recheck::Never };
            tracking.log.record(ReadEntry::new(self.partition, range, tracking.tally, recheck));
        }
    }
}

/// One result: a record with its metadata, borrowed from the snapshot.
pub struct Hit<'s, S: Schema> {
    partition: Ident,
    posting: &'s Posting<S>,
}

impl<S: Schema> Clone for Hit<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: Schema> Copy for Hit<'_, S> {}

impl<'s, S: Schema> Hit<'s, S> {
    /// The typed, borrowed record.
    #[must_use]
    pub fn record(&self) -> S::RecordRef<'s> {
        self.posting.record()
    }

    /// The partition the record lives in.
    #[must_use]
    pub fn partition(&self) -> Ident {
        self.partition
    }

    /// The record's sort key, borrowed from its chunk.
    #[must_use]
    pub fn sort_key(&self) -> SortKeyRef<'s> {
        SortKeyRef::from_encoded(self.posting.key())
    }

    /// The task that wrote the record.
    #[must_use]
    pub fn task(&self) -> TaskId {
        self.posting.task()
    }

    /// The id of the chunk holding the record.
    #[must_use]
    pub fn chunk_id(&self) -> ChunkId {
        self.posting.chunk.id
    }

    /// The chunk holding the record.
    #[must_use]
    pub fn chunk(&self) -> &'s Chunk<S> {
        &self.posting.chunk
    }

    /// All metadata at once.
    #[must_use]
    pub fn meta(&self) -> RecordMeta<'s> {
        RecordMeta {
            partition: self.partition,
            sort_key: self.sort_key(),
            chunk: self.chunk_id(),
            task: self.task(),
        }
    }
}

impl<S: Schema> fmt::Debug for Hit<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hit").field("meta", &self.meta()).field("record", &self.record()).finish()
    }
}

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta<'s> {
    /// The partition.
    pub partition: Ident,
    /// The sort key.
    pub sort_key: SortKeyRef<'s>,
    /// The chunk holding the record.
    pub chunk: ChunkId,
    /// The task that wrote it.
    pub task: TaskId,
}

/// What a query found: the postings of one key, borrowed straight from the tree, or a
/// list collected by a scan.
enum Found<'s, S: Schema> {
    Key {
        postings: &'s [Posting<S>],
    },
    List(Vec<Hit<'s, S>>),
    /// A parallel scan's parts, kept as they came (in key order) rather than copied
    /// into one list; `ends[i]` is the number of hits in parts `0..=i`.
    Parts {
        parts: Vec<Vec<Hit<'s, S>>>,
        ends: Vec<usize>,
    },
}

impl<'s, S: Schema> Found<'s, S> {
    fn parts(parts: Vec<Vec<Hit<'s, S>>>) -> Self {
        let ends = parts
            .iter()
            .scan(0, |total, part| {
                *total += part.len();
                Some(*total)
            })
            .collect();
        Found::Parts { parts, ends }
    }
}

/// The collected results of a query, in sort-key order.
pub struct QueryResults<'s, S: Schema> {
    partition: Ident,
    found: Found<'s, S>,
}

impl<'s, S: Schema> QueryResults<'s, S> {
    /// What a tracked read of exactly these results saw.
    fn tally(&self) -> Tally {
        let mut tally = Tally::new(&Recheck::Unfiltered);
        for hit in self {
            tally.examined(hit.posting.chunk.id);
            tally.kept(|| hit.posting.result_hash(hit.partition));
        }
        tally
    }

    /// The partition queried (the index's id for an index lookup).
    #[must_use]
    pub fn partition(&self) -> Ident {
        self.partition
    }

    /// Number of records.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.found {
            Found::Key { postings, .. } => postings.len(),
            Found::List(hits) => hits.len(),
            Found::Parts { ends, .. } => ends.last().copied().unwrap_or(0),
        }
    }

    /// Whether nothing matched.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The result at `index`.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<Hit<'s, S>> {
        match &self.found {
            Found::Key { postings } => {
                postings.get(index).map(|posting| Hit { partition: self.partition, posting })
            }
            Found::List(hits) => hits.get(index).copied(),
            Found::Parts { parts, ends } => {
                let part = ends.partition_point(|&end| end <= index);
                let before = if part == 0 { 0 } else { ends[part - 1] };
                parts.get(part)?.get(index - before).copied()
            }
        }
    }

    /// The first result.
    #[must_use]
    pub fn first(&self) -> Option<Hit<'s, S>> {
        self.get(0)
    }

    /// Iterates over the results, in order.
    pub fn iter(&self) -> ResultsIter<'_, 's, S> {
        ResultsIter { results: self, at: 0, part: 0, offset: 0 }
    }

    /// Iterates over (metadata, record) pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (RecordMeta<'s>, S::RecordRef<'s>)> + '_ {
        self.iter().map(|hit| (hit.meta(), hit.record()))
    }

    /// Iterates over the records alone.
    pub fn records(&self) -> impl Iterator<Item = S::RecordRef<'s>> + '_ {
        self.iter().map(|hit| hit.record())
    }
}

/// Iterator over [`QueryResults`].
pub struct ResultsIter<'r, 's, S: Schema> {
    results: &'r QueryResults<'s, S>,
    at: usize,
    /// For a parallel scan's parts: the part and the position in it, so iterating
    /// walks the parts instead of searching for each position.
    part: usize,
    offset: usize,
}

impl<'s, S: Schema> Iterator for ResultsIter<'_, 's, S> {
    type Item = Hit<'s, S>;

    fn next(&mut self) -> Option<Self::Item> {
        let hit = match &self.results.found {
            Found::Parts { parts, .. } => loop {
                let part = parts.get(self.part)?;
                if let Some(hit) = part.get(self.offset) {
                    self.offset += 1;
                    break *hit;
                }
                self.part += 1;
                self.offset = 0;
            },
            _ => self.results.get(self.at)?,
        };
        self.at += 1;
        Some(hit)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.results.len() - self.at;
        (left, Some(left))
    }
}

impl<S: Schema> ExactSizeIterator for ResultsIter<'_, '_, S> {}

impl<'r, 's, S: Schema> IntoIterator for &'r QueryResults<'s, S> {
    type Item = Hit<'s, S>;
    type IntoIter = ResultsIter<'r, 's, S>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<S: Schema> fmt::Debug for QueryResults<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A lookup in a secondary index; see [`Snapshot::index`].
pub struct IndexQuery<'s, S: Schema, V: ?Sized> {
    snapshot: &'s Snapshot<S>,
    log: Option<&'s ReadLog>,
    index: IndexHandle<S, V>,
}

impl<'s, S: Schema, V: ?Sized> IndexQuery<'s, S, V> {
    pub(crate) fn new(snapshot: &'s Snapshot<S>, log: Option<&'s ReadLog>, index: IndexHandle<S, V>) -> Self {
        IndexQuery { snapshot, log, index }
    }

    /// The records whose indexed field equals `value`, in (partition, task, sort key)
    /// order. A tracked lookup records the read under the index's id.
    ///
    /// # Errors
    /// [`Error::DamagedRecords`](crate::Error::DamagedRecords) when a chunk restored
    /// from disk that holds a match fails its first-use check.
    pub fn get<Q>(&self, value: &Q) -> Result<QueryResults<'s, S>>
    where
        Q: KeyPart + ?Sized,
        V: Borrow<Q>,
    {
        let mut bytes = Vec::with_capacity(16);
        value.encode_key(&mut bytes);
        let id = self.index.id();
        let runs = match self.snapshot.state.indexes.get(&id) {
            Some(index) => runs_until(index.scan_from(&bytes), |key| key.starts_with(&bytes)),
            None => Vec::new(),
        };
        let entries: usize = runs.iter().map(|run| run.len()).sum();
        let executor = &self.snapshot.counters.executor;
        let plan = executor.plan(id, QueryKind::IndexLookup, entries, Execution::Auto);
        let started = plan.timed.then(Instant::now);
        let damage = Damage::default();
        let collect = |runs: &[&'s [IndexHit<S>]]| -> Vec<Hit<'s, S>> {
            runs.iter()
                .flat_map(|run| run.iter())
                .filter(|hit| checked(&hit.posting, &damage))
                .map(|hit| Hit { partition: hit.partition, posting: &hit.posting })
                .collect()
        };
        let hits = if plan.parallel {
            let per_task = runs.len().div_ceil(rayon::current_num_threads() * 4).max(1);
            runs.par_chunks(per_task).map(collect).collect::<Vec<_>>().concat()
        } else {
            collect(&runs)
        };
        if let Some(started) = started {
            executor.report(plan, entries, started.elapsed());
        }
        if let Some(error) = damage.into_inner() {
            return Err(error);
        }
        let results = QueryResults { partition: id, found: Found::List(hits) };
        if let Some(log) = self.log {
            log.record(ReadEntry::new(id, KeyRange::prefix(&bytes), results.tally(), Recheck::Unfiltered));
        }
        Ok(results)
    }
}

impl<S: Schema, V: ?Sized> fmt::Debug for IndexQuery<'_, S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexQuery")
            .field("index", &self.index)
            .field("tracked", &self.log.is_some())
            .finish()
    }
}
