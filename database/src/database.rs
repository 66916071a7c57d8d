//! The database: publishes committed state and hands out snapshots and writers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::chunk::Chunk;
use crate::context::TaskContext;
use crate::error::{Error, Result};
use crate::exec::{Execution, Executor};
use crate::hash::{ChunkId, ContentHash};
use crate::ident::{Ident, TaskId};
use crate::schema::Schema;
use crate::snapshot::Snapshot;
use crate::state::State;
use crate::stats::{PartitionStats, Stats};
use crate::writer::ChunkWriter;

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
    current: ArcSwap<State<S>>,
    /// Serialises the short publish step of commits (building a chunk, sorting and
    /// hashing, happens before it, in parallel across threads). It guards the states
    /// replaced by commits, which are freed here rather than by whichever reader drops
    /// the last snapshot of them: readers never pay for writers' garbage.
    publish: Mutex<Vec<Arc<State<S>>>>,
    counters: Arc<Counters>,
}

/// Counters shared with snapshots and chunks, which outlive borrows of the database.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) executor: Executor,
    pub(crate) open_snapshots: AtomicUsize,
    pub(crate) live_chunks: Arc<AtomicUsize>,
    pub(crate) versions_committed: AtomicU64,
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
    /// The version this commit replaced, if any.
    pub superseded: Option<ChunkId>,
    /// The partitions whose records changed, in partition-key order.
    pub partitions_touched: Vec<Ident>,
}

impl<S: Schema> Database<S> {
    /// An empty database. Registers the schema's partition names for `Debug` output.
    #[must_use]
    pub fn new() -> Self {
        for def in S::partitions() {
            Ident::named(def.key_string);
        }
        Database {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(State::default()),
                publish: Mutex::new(Vec::new()),
                counters: Arc::default(),
            }),
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
        TaskContext::new(self.snapshot(), self.writer(task))
    }

    /// Removes `task`'s current version (a tombstone commit): later snapshots no longer
    /// see its records, earlier ones still do. Removing a task that has no version
    /// changes nothing and returns a receipt with `stored == false`.
    pub fn remove_task(&self, task: impl Into<TaskId>) -> CommitReceipt {
        let task = task.into();
        let mut retired = self.shared.publish.lock();
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
            };
        };
        let superseded = old.chunk.id;
        let output_changed = !old.chunk.is_empty();
        let mut next = State::clone(&current);
        next.clock += 1;
        let partitions_touched = next.replace(task, None);
        let clock = next.clock;
        self.install(&mut retired, next);
        CommitReceipt {
            task,
            chunk: None,
            output_hash: empty_output_hash(),
            output_changed,
            stored: true,
            clock,
            superseded: Some(superseded),
            partitions_touched,
        }
    }

    /// Makes a built chunk its task's current version. Everything is decided on a
    /// private copy of the state, which is then published in one atomic store: the clock
    /// value and every index update become visible together.
    pub(crate) fn publish(&self, chunk: Arc<Chunk<S>>, declared: &[ChunkId]) -> Result<CommitReceipt> {
        let mut retired = self.shared.publish.lock();
        let current = self.shared.current.load_full();
        if let Some(&missing) = declared.iter().find(|id| !current.chunks.contains_key(*id)) {
            return Err(Error::UnknownDependency { task: chunk.task, chunk: missing });
        }
        let previous = current.tasks.get(&chunk.task);
        let superseded = previous.map(|version| version.chunk.id);
        let output_changed =
            previous.map_or(!chunk.is_empty(), |version| version.chunk.output_hash != chunk.output_hash);
        if superseded == Some(chunk.id) {
            return Ok(CommitReceipt {
                task: chunk.task,
                chunk: Some(chunk.id),
                output_hash: chunk.output_hash,
                output_changed: false,
                stored: false,
                clock: current.clock,
                superseded: None,
                partitions_touched: Vec::new(),
            });
        }
        let mut next = State::clone(&current);
        next.clock += 1;
        let (task, id, output_hash) = (chunk.task, chunk.id, chunk.output_hash);
        let partitions_touched = next.replace(task, Some(chunk));
        let clock = next.clock;
        self.install(&mut retired, next);
        self.shared.counters.versions_committed.fetch_add(1, Ordering::Relaxed);
        Ok(CommitReceipt {
            task,
            chunk: Some(id),
            output_hash,
            output_changed,
            stored: true,
            clock,
            superseded,
            partitions_touched,
        })
    }

    /// Publishes `next` as the current state. The replaced state is retired, and
    /// retired states that no snapshot holds any more are freed now, on the writer's
    /// thread.
    fn install(&self, retired: &mut Vec<Arc<State<S>>>, next: State<S>) {
        let previous = self.shared.current.swap(Arc::new(next));
        retired.retain(|state| Arc::strong_count(state) > 1);
        retired.push(previous);
    }

    /// Sets how queries execute: [`Execution::Auto`] (the default) measures and
    /// chooses per query shape; the others force one mode, for tests and for callers
    /// who know their workload. A query's own [`Query::execution`](crate::Query::execution)
    /// takes precedence.
    pub fn set_execution(&self, execution: Execution) {
        self.shared.counters.executor.set_mode(execution);
    }

    /// Frees the superseded states (and the versions only they held) that no
    /// snapshot can see any more, returning how many were freed. Commits do this on
    /// their own; call it when writing has gone quiet and memory should be returned.
    pub fn reclaim(&self) -> usize {
        let mut retired = self.shared.publish.lock();
        let before = retired.len();
        retired.retain(|state| Arc::strong_count(state) > 1);
        before - retired.len()
    }

    pub(crate) fn live_chunk_counter(&self) -> &Arc<AtomicUsize> {
        &self.shared.counters.live_chunks
    }

    /// Counts of what the database holds now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let state = self.shared.current.load_full();
        let mut partitions: Vec<PartitionStats> = state
            .partitions
            .iter()
            .map(|(&partition, index)| PartitionStats {
                partition,
                records: index.len(),
                chunks: index.chunks,
                index_bytes: index.bytes(),
            })
            .collect();
        partitions.sort_unstable_by_key(|stats| stats.partition);
        let index_bytes: usize = partitions.iter().map(|p| p.index_bytes).sum();
        let counters = &self.shared.counters;
        let retired_states = self.shared.publish.lock().len();
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
            execution: counters.executor.decisions(),
            partitions,
        }
    }
}

/// The output hash of a task with no records.
fn empty_output_hash() -> ContentHash {
    crate::hash::StableHasher::new().finish()
}
