//! The database: publishes committed state and hands out snapshots and writers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::gc::{self, Collector, GcPolicy, GcProgress};
use crate::hash::{ChunkId, ContentHash};
use crate::ident::{Ident, TaskId};
use crate::incremental::context::TaskContext;
use crate::incremental::invalidation::{Run, RunStamp, Runs, Tracker};
use crate::incremental::subscription::{Ready, Subscription, Subscriptions};
use crate::key::KeyRange;
use crate::persist::OpenOptions;
use crate::persist::format::StoredStale;
use crate::persist::writer::Persister;
use crate::read::exec::{Execution, Executor};
use crate::read::snapshot::Snapshot;
use crate::schema::Schema;
use crate::stats::{PartitionStats, Stats};
use crate::store::chunk::Chunk;
use crate::store::state::{KeyList, State};
use crate::store::writer::ChunkWriter;

/// An in-memory, content-addressed database of task outputs.
///
/// Cloning is cheap (a reference count) and every clone is the same database, so
/// pass clones to threads freely.
///
/// ```
/// use chunkdb_database::reference::{Function, RefLang, SYMBOLS};
/// use chunkdb_database::{Database, Ident};
///
/// let db = Database::<RefLang>::new();
/// let file = Ident::named("src/lib.rs");
/// let mut writer = db.writer("parse:src/lib.rs");
/// writer.insert(SYMBOLS, (file, "main"), Function::new("main", &[], None))?;
/// let receipt = writer.commit()?;
/// assert!(receipt.output_changed);
///
/// let snapshot = db.snapshot();
/// let hits = snapshot.query(SYMBOLS).begins_with((file,)).execute()?;
/// assert_eq!(hits.len(), 1);
/// # Ok::<(), chunkdb_database::Error>(())
/// ```
pub struct Database<S: Schema> {
    shared: Arc<Shared<S>>,
}

struct Shared<S: Schema> {
    /// The current state; readers load it without locking.
    current: Arc<ArcSwap<State<S>>>,
    /// Serialises the short publish step of commits (building a chunk, sorting and
    /// hashing, happens before it, in parallel across threads), and guards what only
    /// commits change.
    publish: Arc<Mutex<WriteSide<S>>>,
    /// Registered subscriptions; locked after `publish` when both are held.
    subscriptions: Arc<Mutex<Subscriptions>>,
    counters: Arc<Counters>,
    /// The directory and its writer, for a persisted database.
    persist: Option<Arc<Persister>>,
}

impl<S: Schema> Drop for Shared<S> {
    /// A persisted database writes its last state before the lock is released.
    fn drop(&mut self) {
        if let Some(persister) = &self.persist {
            persister.stop();
            if persister.started() {
                // Nobody is left to report an error to: `flush` is how to know.
                let _ = sync_to_disk(&self.current, &self.publish, persister);
            }
        }
    }
}

/// Makes `persister`'s directory hold `shared`'s current state and stale set. The
/// directory is locked first, then the state captured: syncs queue on the directory
/// and each writes a state at least as new as the one before.
fn sync_to_disk<S: Schema>(
    current: &ArcSwap<State<S>>,
    publish: &Mutex<WriteSide<S>>,
    persister: &Persister,
) -> Result<()> {
    let mut directory = persister.directory.lock();
    let (state, stale) = {
        let side = publish.lock();
        (current.load_full(), side.tracker.stale_entries())
    };
    let stale = stale
        .into_iter()
        .map(|(task, parent, scheduled)| StoredStale {
            task: task.ident().raw(),
            parent: parent.map(|parent| parent.ident().raw()),
            scheduled,
        })
        .collect();
    directory.sync(&state, stale).map(drop)
}

/// Counters shared with snapshots and chunks, which outlive borrows of the database.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) executor: Executor,
    pub(crate) open_snapshots: AtomicUsize,
    pub(crate) live_chunks: Arc<AtomicUsize>,
    pub(crate) versions_committed: AtomicU64,
    /// Subscriptions registered and not yet ready.
    pub(crate) subscriptions: Arc<AtomicUsize>,
    /// Task runs in flight.
    pub(crate) runs: Arc<Runs>,
}

/// The commit lock, held; fires the subscriptions made ready once released.
struct SideGuard<'a, S: Schema>(Option<MutexGuard<'a, WriteSide<S>>>);

impl<S: Schema> std::ops::Deref for SideGuard<'_, S> {
    type Target = WriteSide<S>;

    fn deref(&self) -> &WriteSide<S> {
        self.0.as_ref().expect("held until dropped")
    }
}

impl<S: Schema> std::ops::DerefMut for SideGuard<'_, S> {
    fn deref_mut(&mut self) -> &mut WriteSide<S> {
        self.0.as_mut().expect("held until dropped")
    }
}

impl<S: Schema> Drop for SideGuard<'_, S> {
    fn drop(&mut self) {
        let Some(mut side) = self.0.take() else { return };
        let ready = std::mem::take(&mut side.ready);
        drop(side);
        ready.into_iter().for_each(Ready::fire);
    }
}

/// What commits change besides the published state.
struct WriteSide<S: Schema> {
    /// States replaced by commits, freed here rather than by whichever reader drops
    /// the last snapshot of them: readers never pay for writers' garbage.
    retired: Vec<Arc<State<S>>>,
    /// Reverse dependencies and the stale set.
    tracker: Tracker,
    /// Ownership edges, the garbage estimate and the cycle under way.
    collector: Collector,
    /// Keys changed by the commit being published, kept for subscriptions (only
    /// while some are registered).
    changed: KeyList,
    /// Whether a replacement of the commit being published did not keep its changed
    /// keys (no subscription was registered then). A subscription may register
    /// between that decision and the publication, against the state before it; the
    /// publication then checks every registered subscription instead.
    unwatched: bool,
    /// Subscriptions made ready, fired once the lock is released.
    ready: Vec<Ready>,
}

impl<S: Schema> Default for WriteSide<S> {
    fn default() -> Self {
        WriteSide {
            retired: Vec::new(),
            tracker: Tracker::default(),
            collector: Collector::default(),
            changed: KeyList::default(),
            unwatched: false,
            ready: Vec::new(),
        }
    }
}

impl<S: Schema> WriteSide<S> {
    /// Replaces `task`'s version in `next` (which the caller then installs) and keeps
    /// the reverse dependencies, the stale set and the ownership edges in step.
    /// Returns what changed and the tasks newly made stale.
    fn replace(
        &mut self,
        next: &mut State<S>,
        task: TaskId,
        new: Option<&Arc<Chunk<S>>>,
        run: Option<RunStamp>,
        watching: bool,
    ) -> (Vec<Ident>, Vec<TaskId>) {
        let old = next.tasks.get(&task).map(|version| Arc::clone(&version.chunk));
        let changes = next.replace(task, new.cloned());
        if watching {
            self.changed.extend(&changes.keys);
        } else {
            self.unwatched = true;
        }
        let invalidated = self.tracker.replaced(
            task,
            old.as_deref(),
            new.map(|chunk| &**chunk),
            changes.keys,
            next.clock,
            run,
        );
        self.collector.replaced(task, old.as_deref(), new.map(|chunk| &**chunk), next);
        (changes.touched, invalidated)
    }
}

/// A built chunk on its way into the database, with what its writer knew.
pub(crate) struct Commit<S: Schema> {
    pub(crate) chunk: Arc<Chunk<S>>,
    /// Dependencies declared with `depend_on`, checked at publish.
    pub(crate) declared: Vec<ChunkId>,
    /// The run that made its reads, in flight until the commit is published.
    pub(crate) run: Option<Run>,
    /// Tasks the run asked to exist, with this task as their parent.
    pub(crate) spawned: Vec<TaskId>,
}

impl<S: Schema> Clone for Database<S> {
    fn clone(&self) -> Self {
        Database { shared: Arc::clone(&self.shared) }
    }
}

impl<S: Schema> Default for Database<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Schema> fmt::Debug for Database<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.current.load();
        f.debug_struct("Database")
            .field("schema", &S::NAME)
            .field("clock", &state.clock)
            .field("tasks", &state.tasks.len())
            .field("records", &state.records)
            .finish_non_exhaustive()
    }
}

/// What a commit (or a task removal) changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The task written.
    pub task: TaskId,
    /// The task's current chunk after the commit (`None` after a removal).
    pub chunk: Option<ChunkId>,
    /// The hash of the task's records after the commit (of nothing after a removal).
    pub output_hash: ContentHash,
    /// Whether the records differ from the task's previous version. `false` means the
    /// task was recomputed with the same output: nothing that read it needs to re-run
    /// (early cut-off).
    pub output_changed: bool,
    /// Whether the commit changed the database at all. `false` when the identical
    /// chunk was already the task's current version: it is stored once.
    pub stored: bool,
    /// The clock value at which the result is visible: snapshots taken at this value
    /// or later see it, earlier ones do not.
    pub clock: u64,
    /// The version this commit replaced, if any. `None` also when `stored` is false:
    /// an identical re-commit replaces nothing (the current version stays, and is
    /// `chunk`).
    pub superseded: Option<ChunkId>,
    /// The partitions whose records changed, in partition-key order.
    pub partitions_touched: Vec<Ident>,
    /// The tasks this commit made stale: they read a key whose records changed, and
    /// were not stale already. In task order.
    pub invalidated: Vec<TaskId>,
}

impl<S: Schema> Database<S> {
    /// An empty database. Registers the schema's partition names for `Debug` output.
    #[must_use]
    pub fn new() -> Self {
        Self::with_persister(None)
    }

    fn with_persister(persist: Option<Arc<Persister>>) -> Self {
        for def in S::partitions() {
            Ident::named(def.key_string);
        }
        let counters = Arc::<Counters>::default();
        let subscriptions = Subscriptions::new(Arc::clone(&counters.subscriptions));
        Database {
            shared: Arc::new(Shared {
                current: Arc::new(ArcSwap::from_pointee(State::default())),
                publish: Arc::new(Mutex::new(WriteSide::default())),
                subscriptions: Arc::new(Mutex::new(subscriptions)),
                counters,
                persist,
            }),
        }
    }

    /// Opens the database persisted in `dir` with the default [`OpenOptions`] (see
    /// there, and the [`persist`](crate::persist) module for the guarantees).
    ///
    /// # Errors
    /// As [`OpenOptions::open`].
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        OpenOptions::new().open(dir)
    }

    /// Opens and restores a persisted database (see [`OpenOptions::open`]).
    pub(crate) fn open_with(dir: &std::path::Path, options: &OpenOptions) -> Result<Self> {
        let (directory, contents) = crate::persist::directory::Directory::open::<S>(
            dir,
            options.compaction,
            options.discard_damaged,
        )?;
        let persister = Persister::new(directory, options.write_delay);
        let db = Self::with_persister(Some(Arc::clone(&persister)));
        let restored =
            crate::persist::restore::load::<S>(&contents, db.live_chunk_counter(), options.check_at_open);
        if !restored.damaged.is_empty() && !options.discard_damaged {
            return Err(Error::Corrupt { path: dir.to_path_buf(), damaged: restored.damaged });
        }
        let adopted = db.restore(restored);
        {
            let mut directory = persister.directory.lock();
            let written = adopted.map(|stale| (contents.manifest.clock, stale));
            directory.adopt(&contents.manifest.versions, written);
            directory.remove_unreferenced()?;
        }
        // The writer holds the state and the commit lock, not the database: dropping
        // the last handle stops it, syncs and releases the directory at once.
        let (current, publish) = (Arc::clone(&db.shared.current), Arc::clone(&db.shared.publish));
        let writer = Arc::clone(&persister);
        persister.start(move || sync_to_disk(&current, &publish, &writer));
        Ok(db)
    }

    /// Installs a restored state; returns the stale set the manifest holds when the
    /// state is exactly the manifest's (`None`: damaged versions were dropped, so the
    /// directory must be written again).
    fn restore(&self, restored: crate::persist::restore::Restored<S>) -> Option<Vec<StoredStale>> {
        let crate::persist::restore::Restored { versions, stale, clock, damaged } = restored;
        let mut side = self.lock_side();
        let newest = versions.last().map_or(0, |(committed_at, _)| *committed_at);
        // The state and the collector's edges are built side by side.
        let chunks: Vec<&Chunk<S>> = versions.iter().map(|(_, chunk)| &**chunk).collect();
        let collector = &mut side.collector;
        let (mut next, ()) =
            rayon::join(|| State::load(&versions, clock.max(newest)), || collector.restored(&chunks));
        drop(chunks);
        side.tracker.restored(versions.into_iter().map(|(_, chunk)| chunk).collect());
        for entry in &stale {
            let task = TaskId::from_ident(Ident::from_raw(entry.task));
            let parent = entry.parent.map(|raw| TaskId::from_ident(Ident::from_raw(raw)));
            side.tracker.restore_stale(task, parent, entry.scheduled);
        }
        let exact = damaged.is_empty();
        if !exact {
            // Dropping the damaged versions is a change of its own.
            next.clock += 1;
            for damage in &damaged {
                side.tracker.restore_stale(damage.task, None, true);
            }
            let ids = damaged.iter().map(|damage| damage.chunk).collect();
            side.tracker.invalidate_readers_of(&next, &ids);
        }
        self.install(&mut side, next);
        exact.then_some(stale)
    }

    /// Waits until everything committed before this call is durable in the
    /// database's directory (see [`persist`](crate::persist) for the guarantee). For
    /// an in-memory database, does nothing.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory could not be written; the database is
    /// unchanged and a later flush tries again.
    pub fn flush(&self) -> Result<()> {
        match &self.shared.persist {
            Some(persister) => sync_to_disk(&self.shared.current, &self.shared.publish, persister),
            None => Ok(()),
        }
    }

    /// The directory the database is persisted in, if it is.
    #[must_use]
    pub fn directory(&self) -> Option<std::path::PathBuf> {
        self.shared.persist.as_ref().map(|persister| persister.directory.lock().path().to_path_buf())
    }

    /// Bytes of the segment files the directory's manifest names (0 in memory).
    #[must_use]
    pub fn disk_bytes(&self) -> u64 {
        self.shared.persist.as_ref().map_or(0, |persister| persister.directory.lock().segment_bytes())
    }

    fn notify_writer(&self) {
        if let Some(persister) = &self.shared.persist {
            persister.notify();
        }
    }

    /// A consistent, read-only view of the database as of now. O(1); it never waits for
    /// writers, and holding it keeps everything it sees alive.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot<S> {
        Snapshot::new(self.shared.current.load_full(), Arc::clone(&self.shared.counters))
    }

    /// The current clock value: the number of commits that changed the database.
    #[must_use]
    pub fn clock(&self) -> u64 {
        self.shared.current.load().clock
    }

    /// A writer for `task`'s next version. Use it for tasks that read nothing from the
    /// database (sources); tasks that query should use [`Database::task`], which records
    /// their reads as dependencies.
    pub fn writer(&self, task: impl Into<TaskId>) -> ChunkWriter<S> {
        ChunkWriter::new(self.clone(), task.into())
    }

    /// A context for one run of `task`: a fresh snapshot to query, with every query
    /// recorded as a read, and a writer for the task's output.
    pub fn task(&self, task: impl Into<TaskId>) -> TaskContext<S> {
        TaskContext::new(self.start_run(), self.writer(task))
    }

    /// A snapshot for a task run, with the run registered as in flight (see
    /// [`Runs`]) until the run's commit has been decided or it is dropped.
    pub(crate) fn start_run(&self) -> (Snapshot<S>, Run) {
        self.shared.counters.runs.start(|| {
            let snapshot = self.snapshot();
            let clock = snapshot.clock();
            (snapshot, clock)
        })
    }

    /// Removes `task`'s current version (a tombstone commit): later snapshots no longer
    /// see its records, earlier ones still do. Removing a task that has no version
    /// changes nothing and returns a receipt with `stored == false`.
    pub fn remove_task(&self, task: impl Into<TaskId>) -> CommitReceipt {
        let task = task.into();
        let mut side = self.lock_side();
        let current = self.shared.current.load_full();
        let Some(old) = current.tasks.get(&task) else {
            return CommitReceipt {
                task,
                chunk: None,
                output_hash: empty_output_hash(),
                output_changed: false,
                stored: false,
                clock: current.clock,
                superseded: None,
                partitions_touched: Vec::new(),
                invalidated: Vec::new(),
            };
        };
        let superseded = old.chunk.id;
        let output_changed = !old.chunk.is_empty();
        let mut next = State::clone(&current);
        next.clock += 1;
        let (partitions_touched, invalidated) = side.replace(&mut next, task, None, None, self.watching());
        let clock = next.clock;
        self.install(&mut side, next);
        self.policy_step(&mut side);
        CommitReceipt {
            task,
            chunk: None,
            output_hash: empty_output_hash(),
            output_changed,
            stored: true,
            clock,
            superseded: Some(superseded),
            partitions_touched,
            invalidated,
        }
    }

    /// The current version's chunk of `task`, if it has one.
    pub(crate) fn current_chunk(&self, task: TaskId) -> Option<Arc<Chunk<S>>> {
        self.shared.current.load().tasks.get(&task).map(|version| Arc::clone(&version.chunk))
    }

    /// Makes a built chunk its task's current version. Everything is decided on a
    /// private copy of the state, which is then published in one atomic store: the clock
    /// value and every index update become visible together.
    pub(crate) fn publish(&self, commit: Commit<S>) -> Result<CommitReceipt> {
        self.publish_all(vec![commit]).pop().expect("one receipt per commit")
    }

    /// Publishes several built chunks as one state transition: under one hold of the
    /// commit lock, on one private copy of the state (so a persistent map's path is
    /// copied once for the group, then changed in place), published with one store.
    /// Each commit is decided as if published alone, in the order given, and gets its
    /// own clock value and receipt; one refused commit does not stop the others.
    pub(crate) fn publish_all(&self, commits: Vec<Commit<S>>) -> Vec<Result<CommitReceipt>> {
        let mut side = self.lock_side();
        let current = self.shared.current.load_full();
        let mut next: Option<State<S>> = None;
        let watching = self.watching();
        let receipts = commits
            .into_iter()
            .map(|commit| {
                let Commit { chunk, declared, run, spawned } = commit;
                let stamp = run.as_ref().map(Run::stamp);
                let view = next.as_ref().unwrap_or(&current);
                if let Some(&missing) = declared.iter().find(|id| !view.chunks.contains_key(*id)) {
                    return Err(Error::UnknownDependency { task: chunk.task, chunk: missing });
                }
                let previous = view.tasks.get(&chunk.task).map(|version| Arc::clone(&version.chunk));
                let superseded = previous.as_ref().map(|old| old.id);
                let output_changed =
                    previous.as_ref().map_or(!chunk.is_empty(), |old| old.output_hash != chunk.output_hash);
                if superseded == Some(chunk.id) {
                    // Identical inputs and output: nothing changes, and the run is current.
                    let invalidated = side.tracker.replaced(
                        chunk.task,
                        Some(&*chunk),
                        Some(&*chunk),
                        KeyList::default(),
                        view.clock + 1,
                        stamp,
                    );
                    debug_assert!(invalidated.is_empty());
                    self.schedule_spawned(&mut side, view, chunk.task, &spawned);
                    return Ok(CommitReceipt {
                        task: chunk.task,
                        chunk: Some(chunk.id),
                        output_hash: chunk.output_hash,
                        output_changed: false,
                        stored: false,
                        clock: view.clock,
                        superseded: None,
                        partitions_touched: Vec::new(),
                        invalidated: Vec::new(),
                    });
                }
                let next = next.get_or_insert_with(|| State::clone(&current));
                next.clock += 1;
                let (task, id, output_hash) = (chunk.task, chunk.id, chunk.output_hash);
                let (partitions_touched, invalidated) =
                    side.replace(next, task, Some(&chunk), stamp, watching);
                self.schedule_spawned(&mut side, next, task, &spawned);
                self.shared.counters.versions_committed.fetch_add(1, Ordering::Relaxed);
                Ok(CommitReceipt {
                    task,
                    chunk: Some(id),
                    output_hash,
                    output_changed,
                    stored: true,
                    clock: next.clock,
                    superseded,
                    partitions_touched,
                    invalidated,
                })
            })
            .collect();
        if let Some(next) = next {
            self.install(&mut side, next);
            self.policy_step(&mut side);
        }
        receipts
    }

    /// Schedules the tasks a run spawned that have no version yet, under `parent`.
    fn schedule_spawned(
        &self,
        side: &mut WriteSide<S>,
        state: &State<S>,
        parent: TaskId,
        spawned: &[TaskId],
    ) {
        for &child in spawned {
            let ticket = self.shared.counters.runs.ticket();
            if !state.tasks.contains_key(&child) {
                side.tracker.schedule(child, Some(parent), ticket);
            }
        }
    }

    /// Publishes `next` as the current state. The replaced state is retired, and
    /// retired states that no snapshot holds any more are freed now, on the writer's
    /// thread.
    fn install(&self, side: &mut WriteSide<S>, next: State<S>) {
        let published = next.clock;
        let previous = self.shared.current.swap(Arc::new(next));
        // Runs that start from now on read this state or a later one: only the runs
        // already in flight can ask about the commits published so far.
        side.tracker.forget_until(self.shared.counters.runs.horizon(published));
        Self::free_retired(side);
        side.retired.push(previous);
        self.notify_writer();
        let unwatched = std::mem::take(&mut side.unwatched);
        if unwatched || !side.changed.is_empty() {
            // After the swap, under the registry's lock: a subscriber registering now
            // either sees the new state or is registered before this looks. When the
            // changed keys were not kept, a subscription may have registered since,
            // having seen the old state: every registered one is checked (when none
            // is, this is the lock and an emptiness test).
            let current = self.shared.current.load();
            let ready = self.shared.subscriptions.lock().notify(
                side.changed.iter(),
                unwatched,
                |partition, range| current.holds_data(partition, range),
            );
            side.changed.clear();
            side.ready.push(ready);
        }
    }

    /// The commit lock; subscriptions made ready while it was held fire when it is
    /// released.
    fn lock_side(&self) -> SideGuard<'_, S> {
        SideGuard(Some(self.shared.publish.lock()))
    }

    /// Whether any subscription is registered (so commits keep their changed keys).
    fn watching(&self) -> bool {
        self.shared.counters.subscriptions.load(Ordering::Relaxed) > 0
    }

    /// Waits for data in `range` of `partition` (or of a secondary index, by its
    /// id): the subscription is ready once the range holds at least one record, at
    /// once if it does already. Typically made from a pending read, whose range a
    /// task found empty: `db.subscribe(read.partition(), read.range().clone())`.
    ///
    /// ```
    /// use chunkdb_database::reference::{Function, RefLang, SYMBOLS};
    /// use chunkdb_database::{Database, Ident, KeyRange, SortKey};
    /// use std::time::Duration;
    ///
    /// let db = Database::<RefLang>::new();
    /// let file = Ident::named("late.rs");
    /// let wanted = SortKey::encode((file,));
    /// let waiting = db.subscribe(SYMBOLS, KeyRange::prefix(wanted.as_bytes()));
    /// assert!(!waiting.wait_timeout(Duration::from_millis(1)));
    ///
    /// let mut writer = db.writer("parse:late.rs");
    /// writer.insert(SYMBOLS, (file, "f"), Function::new("f", &[], None))?;
    /// writer.commit()?;
    /// assert!(waiting.is_ready());
    /// # Ok::<(), chunkdb_database::Error>(())
    /// ```
    pub fn subscribe(&self, partition: Ident, range: KeyRange) -> Subscription {
        self.subscribe_inner(partition, range, None)
    }

    /// Like [`subscribe`](Self::subscribe), and runs `callback` once when the
    /// subscription becomes ready: on the committing thread after the commit's locks
    /// are released (so it may commit), or at once if the data is there already.
    /// Dropping the subscription before then cancels the callback.
    pub fn subscribe_with(
        &self,
        partition: Ident,
        range: KeyRange,
        callback: impl FnOnce() + Send + 'static,
    ) -> Subscription {
        self.subscribe_inner(partition, range, Some(Box::new(callback)))
    }

    fn subscribe_inner(
        &self,
        partition: Ident,
        range: KeyRange,
        callback: Option<Box<dyn FnOnce() + Send>>,
    ) -> Subscription {
        Subscription::register(
            &self.shared.subscriptions,
            partition,
            range,
            |range| self.shared.current.load().holds_data(partition, range),
            callback,
        )
    }

    /// Frees the retired states no snapshot holds any more; returns how many.
    fn free_retired(side: &mut WriteSide<S>) -> usize {
        let before = side.retired.len();
        side.retired.retain(|state| Arc::strong_count(state) > 1);
        let freed = before - side.retired.len();
        side.collector.stats.states_freed += freed as u64;
        freed
    }

    /// After a commit: one slice of collection if the policy asks for it.
    fn policy_step(&self, side: &mut WriteSide<S>) {
        if side.collector.wants_step() {
            let slice = side.collector.policy.slice;
            self.step_locked(side, slice);
        }
    }

    /// One slice of garbage collection: marks up to `budget` tasks, or sweeps up to
    /// `budget` candidates (each re-checked against the current state, removed in
    /// one commit). Holds the commit lock for the slice only; readers never wait.
    /// Also frees superseded states no snapshot holds any more.
    pub fn gc_step(&self, budget: usize) -> GcProgress {
        let mut side = self.lock_side();
        self.step_locked(&mut side, budget)
    }

    fn step_locked(&self, side: &mut WriteSide<S>, budget: usize) -> GcProgress {
        let started = Instant::now();
        Self::free_retired(side);
        if !side.collector.has_work() {
            return GcProgress { done: true, ..GcProgress::default() };
        }
        let current = self.shared.current.load_full();
        let mut progress = GcProgress::default();
        if let Some(candidates) = side.collector.advance(&current, budget) {
            let mut next: Option<State<S>> = None;
            for task in candidates {
                let view = next.as_ref().unwrap_or(&current);
                let Some(version) = view.tasks.get(&task) else { continue };
                if gc::reachable(view, task) {
                    continue;
                }
                let bytes = version.chunk.heap_bytes();
                let next = next.get_or_insert_with(|| {
                    let mut next = State::clone(&current);
                    next.clock += 1;
                    next
                });
                // Sweeping a task's owner does not make more garbage than the cycle
                // already holds: its owned tasks are candidates too.
                let pending = side.collector.pending_bytes;
                side.replace(next, task, None, None, self.watching());
                side.collector.pending_bytes = pending;
                progress.chunks_reclaimed += 1;
                progress.bytes_reclaimed += bytes;
            }
            if let Some(next) = next {
                self.install(side, next);
            }
            progress.done = side.collector.finish_if_swept();
        }
        side.collector.account(started.elapsed(), progress.chunks_reclaimed, progress.bytes_reclaimed);
        progress
    }

    /// Collects garbage now: the one call to make when memory should be returned.
    /// Runs slice after slice (releasing the commit lock between slices) until no
    /// garbage is known: finishes the cycle under way and runs another if garbage
    /// arrived during it. Returns what was reclaimed.
    ///
    /// # What is garbage
    ///
    /// - **Superseded versions** no open snapshot can see. A snapshot keeps
    ///   everything it sees alive until it is dropped; nothing else keeps a
    ///   superseded version, not even a reader's dependency on it.
    /// - **Versions that reach no entry.** A version without a parent (an *entry*, a
    ///   source) is a root, alive until its task is removed. A version with a parent
    ///   is alive exactly when its parent task's current version is: a spawned task
    ///   is owned by its spawner. So removing a source makes everything it spawned,
    ///   directly or not, garbage; so does a parent that never existed, and so does
    ///   an ownership cycle (a task made its own parent, or re-parented under its own
    ///   descendant): cycles are collected, not refused. Every commit that creates
    ///   such a version counts it at once, so [`has_garbage`](Self::has_garbage)
    ///   knows about it.
    /// - **Dependency edges keep nothing alive.** A task that read a collected chunk
    ///   is invalidated instead (its read results changed), so it re-runs.
    ///
    /// Sweeping removes a version exactly as [`remove_task`](Self::remove_task)
    /// does, invalidating its readers; until then its records stay visible.
    ///
    /// # The other entry points
    ///
    /// Commits collect on their own as [`GcPolicy`] says (a slice per commit once
    /// enough garbage is known), and free superseded versions no snapshot holds.
    /// [`gc_step`](Self::gc_step) runs one bounded slice, for a scheduler that spreads
    /// the work itself; [`collect_if_idle`](Self::collect_if_idle) calls `collect`
    /// from an event loop's idle tick once writing has stopped;
    /// [`free_superseded`](Self::free_superseded) only frees superseded versions that
    /// snapshots released, without looking for unreachable ones.
    pub fn collect(&self) -> GcProgress {
        let mut total = GcProgress::default();
        let mut cycles = 0;
        loop {
            let mut side = self.lock_side();
            if !side.collector.has_work() || cycles == 2 {
                Self::free_retired(&mut side);
                total.done = !side.collector.has_work();
                return total;
            }
            let slice = side.collector.policy.slice;
            let step = self.step_locked(&mut side, slice);
            total.chunks_reclaimed += step.chunks_reclaimed;
            total.bytes_reclaimed += step.bytes_reclaimed;
            cycles += usize::from(step.done);
        }
    }

    /// For a language server's idle moments: if no commit has happened for the
    /// policy's [`idle_after`](GcPolicy::idle_after) and there is possible garbage,
    /// collects it (see [`collect`](Self::collect)). Returns whether it collected.
    pub fn collect_if_idle(&self) -> bool {
        let ready = {
            let side = self.shared.publish.lock();
            side.collector.has_work()
                && side.collector.last_commit.elapsed() >= side.collector.policy.idle_after
        };
        if ready {
            self.collect();
        }
        ready
    }

    /// Checks that every index agrees with the current versions: no partition
    /// index, secondary index, chunk map entry, filed read or ownership edge refers to
    /// a chunk that is not a task's current version, and every count adds up. For
    /// tests (it walks everything); the database is not changed.
    ///
    /// # Errors
    /// [`Error::Inconsistent`] describing the first disagreement found.
    pub fn check_consistency(&self) -> Result<()> {
        let side = self.shared.publish.lock();
        let state = self.shared.current.load_full();
        crate::consistency::check_state(&state)
            .and_then(|()| {
                crate::consistency::check_edges(&state, side.tracker.reads_filed(), side.collector.edges())
            })
            .and_then(|()| self.shared.subscriptions.lock().check())
            .map_err(|detail| Error::Inconsistent { detail })
    }

    /// Sets when collection runs on its own; see [`GcPolicy`].
    pub fn set_gc_policy(&self, policy: GcPolicy) {
        self.shared.publish.lock().collector.policy = policy;
    }

    /// Whether there is possible garbage that no cycle has collected yet: versions
    /// that reach no entry (see [`collect`](Self::collect)), whose records stay
    /// visible until they are swept. Never false while such a version exists.
    #[must_use]
    pub fn has_garbage(&self) -> bool {
        self.shared.publish.lock().collector.has_work()
    }

    /// Asks for `task` to run: it joins the stale set (if it is not stale already),
    /// so a driver runs it. Use it for a task that has never run (the parse of a new
    /// file) or to force a run. Returns whether it was not stale before.
    pub fn schedule(&self, task: impl Into<TaskId>) -> bool {
        let mut side = self.shared.publish.lock();
        let ticket = self.shared.counters.runs.ticket();
        let added = side.tracker.schedule(task.into(), None, ticket);
        self.notify_writer();
        added
    }

    /// Whether `task` is stale: a commit changed what one of its queries would return
    /// since it last ran, or it was scheduled and has not run since.
    #[must_use]
    pub fn is_stale(&self, task: impl Into<TaskId>) -> bool {
        self.shared.publish.lock().tracker.is_stale(task.into())
    }

    /// The stale tasks in dependency order: a task comes after the stale tasks whose
    /// output it read and after its stale parent (tasks in a cycle come together).
    /// Run them in this order, or let [`Driver`](crate::Driver) do it.
    ///
    /// A pure query, like [`is_stale`](Self::is_stale), with which it always agrees:
    /// only commits change the stale set. A stale task whose parent was removed stays
    /// stale until the collector sweeps it (or the parent returns); a task spawned
    /// under a parent that is removed before the task ran is no longer stale.
    /// Staleness is tracked per key and may over-approximate (a changed record that
    /// a query's filter dropped, a change undone); [`Driver`](crate::Driver) checks
    /// before running a stale task that what it read changed.
    #[must_use]
    pub fn stale(&self) -> Vec<TaskId> {
        self.stale_waves().into_iter().flatten().map(|(task, _)| task).collect()
    }

    /// The stale tasks grouped in waves that can each run in parallel, each with the
    /// parent to run it under (`None`: its current version's).
    pub(crate) fn stale_waves(&self) -> Vec<Vec<(TaskId, Option<TaskId>)>> {
        let side = self.shared.publish.lock();
        let state = self.shared.current.load_full();
        side.tracker.waves(&state)
    }

    /// Takes out of the stale set those of `tasks` that are stale only because a
    /// commit changed a key inside one of their reads, and whose every read would
    /// still return what it returned. Returns the tasks cleared: they need not run.
    ///
    /// Key-level invalidation over-approximates: an edit undone before the reader
    /// re-ran, a change to another record of a chunk the reader read, or a change to
    /// a record its filter drops all make it stale. A read returns what it returned
    /// when exactly the chunks it examined still hold its range (chunks are immutable
    /// and content-addressed), or, for a read that can be evaluated again
    /// ([`ReadEntry::is_recheckable`](crate::ReadEntry::is_recheckable)), when it returns the same records now. Tasks
    /// that were scheduled or spawned, and tasks that read nothing, stay stale.
    /// The [`Driver`](crate::Driver) calls this before each wave; a scheduler of your
    /// own should too.
    pub fn clear_unchanged(&self, tasks: impl IntoIterator<Item = impl Into<TaskId>>) -> Vec<TaskId> {
        let mut side = self.shared.publish.lock();
        let state = self.shared.current.load_full();
        let cleared: Vec<TaskId> = tasks
            .into_iter()
            .map(Into::into)
            .filter(|task| side.tracker.clear_if_unchanged(&state, *task))
            .collect();
        if !cleared.is_empty() {
            self.notify_writer();
        }
        cleared
    }

    /// Sets how queries execute: [`Execution::Auto`] (the default) measures and
    /// chooses per query shape; the others force one mode, for tests and for callers
    /// who know their workload. A query's own [`Query::execution`](crate::Query::execution)
    /// takes precedence.
    pub fn set_execution(&self, execution: Execution) {
        self.shared.counters.executor.set_mode(execution);
    }

    /// Frees the superseded states (and the versions only they held) that no
    /// snapshot can see any more, returning how many were freed: the cheap part of
    /// [`collect`](Self::collect), with no search for unreachable versions. Commits
    /// do this on their own; call it after dropping old snapshots when writing has
    /// gone quiet.
    pub fn free_superseded(&self) -> usize {
        Self::free_retired(&mut self.shared.publish.lock())
    }

    pub(crate) fn live_chunk_counter(&self) -> &Arc<AtomicUsize> {
        &self.shared.counters.live_chunks
    }

    /// Counts of what the database holds now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let state = self.shared.current.load_full();
        let partitions: Vec<PartitionStats> = state
            .partitions
            .iter()
            .map(|(partition, index)| PartitionStats {
                partition,
                records: index.len(),
                chunks: index.chunks,
                index_bytes: index.bytes(),
            })
            .collect();
        let index_bytes: usize = partitions.iter().map(|p| p.index_bytes).sum::<usize>()
            + state.indexes.values().map(|index| index.bytes()).sum::<usize>()
            + state.tasks.bytes()
            + state.chunks.bytes()
            + state.partitions.bytes()
            + state.indexes.bytes();
        let counters = &self.shared.counters;
        let (retired_states, stale_tasks, reads_tracked, gc) = {
            let side = self.shared.publish.lock();
            (side.retired.len(), side.tracker.stale_len(), side.tracker.reads_filed(), side.collector.stats())
        };
        Stats {
            clock: state.clock,
            tasks: state.tasks.len(),
            chunks: state.chunks.len(),
            records: state.records,
            bytes: state.chunk_bytes + index_bytes,
            versions_committed: counters.versions_committed.load(Ordering::Relaxed),
            chunks_in_memory: counters.live_chunks.load(Ordering::Relaxed),
            open_snapshots: counters.open_snapshots.load(Ordering::Relaxed),
            retired_states,
            stale_tasks,
            reads_tracked,
            subscriptions: counters.subscriptions.load(Ordering::Relaxed),
            gc,
            execution: counters.executor.decisions(),
            partitions,
        }
    }
}

/// The output hash of a task with no records.
fn empty_output_hash() -> ContentHash {
    crate::hash::StableHasher::new().finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ContentHash;
    use crate::reference::{Function, RefLang, SYMBOLS};

    #[test]
    fn a_group_publishes_each_commit_as_if_alone_in_one_transition() {
        let db = Database::<RefLang>::new();
        let file = Ident::named("group.rs");
        let built = |task: &str, name: &str, unknown: bool| {
            let mut writer = db.writer(task);
            writer.insert(SYMBOLS, (file, name), Function::new(name, &[], None)).expect("valid insert");
            if unknown {
                writer.depend_on(ChunkId::compute(
                    TaskId::new("nowhere"),
                    ContentHash::default(),
                    ContentHash::default(),
                ));
            }
            writer.build().expect("valid chunk")
        };
        let first = db.publish(built("a", "f", false)).expect("valid commit");
        assert_eq!(first.clock, 1);
        let states_before = db.shared.counters.versions_committed.load(Ordering::Relaxed);

        let receipts = db.publish_all(vec![
            built("a", "f", false),
            built("b", "g", true),
            built("c", "h", false),
            built("d", "i", false),
        ]);
        // The unchanged re-run of `a` stores nothing; the refused one changes nothing.
        let a = receipts[0].as_ref().expect("identical re-run");
        assert!(!a.stored && !a.output_changed && a.clock == 1);
        assert!(matches!(receipts[1], Err(Error::UnknownDependency { .. })));
        let clocks: Vec<u64> =
            receipts[2..].iter().map(|r| r.as_ref().expect("valid commit").clock).collect();
        assert_eq!(clocks, [2, 3]);
        assert_eq!(db.shared.counters.versions_committed.load(Ordering::Relaxed), states_before + 2);

        let snapshot = db.snapshot();
        assert_eq!(snapshot.clock(), 3);
        assert_eq!(snapshot.partition_len(SYMBOLS), 3);
        assert!(snapshot.task_chunk(TaskId::new("b")).is_none());
    }

    #[test]
    fn changed_keys_are_kept_only_for_runs_in_flight() {
        let db = Database::<RefLang>::new();
        let file = Ident::named("log.rs");
        let write = |task: &str, name: &str| {
            let mut writer = db.writer(task);
            writer.insert(SYMBOLS, (file, name), Function::new(name, &[], None)).expect("valid insert");
            writer.commit().expect("valid commit");
        };
        let logged = || db.shared.publish.lock().tracker.logged_keys();
        for at in 0..100 {
            write(&format!("source:{at}"), &format!("f{at}"));
        }
        // With nothing in flight, nothing is kept.
        assert_eq!(logged(), 0);

        // A run reads `f0` and, before it commits, another commit changes `f0`.
        let reader = db.task("reader");
        assert_eq!(reader.get(SYMBOLS, (file, "f0")).expect("valid key").len(), 1);
        for at in 1..11 {
            write(&format!("source:{at}"), &format!("g{at}"));
        }
        write("source:0", "renamed");
        // Two keys (old and new) per commit since the run's snapshot, and nothing before.
        assert_eq!(logged(), 2 * 11, "every commit since the run's snapshot is kept");
        let receipt = reader.commit().expect("an empty output commits");
        assert!(db.is_stale(receipt.task), "the run read what changed after its snapshot");
        assert_eq!(logged(), 0, "forgotten once the run committed");
    }
}
