//! Chunks: the immutable output of one task run.

use std::fmt;
use std::mem::size_of;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::hash::{ChunkId, ContentHash, StableHasher};
use crate::ident::{Ident, TaskId};
use crate::index::IndexKey;
use crate::key::SortKey;
use crate::read_set::ReadEntry;

/// A secondary-index entry of a chunk: the index, the composite key (value ++
/// partition ++ task ++ sort key), the record's partition and its row.
pub(crate) type IndexEntry = (Ident, IndexKey, Ident, u32);
use crate::schema::{RecordHandle, RecordRefOf, RecordStorage, Schema};

/// One record's place in a chunk: its sort key and its handle in the storage. The
/// partition is given by the [`PartitionSlice`] the row falls in.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) key: SortKey,
    pub(crate) handle: RecordHandle,
}

/// The rows of one partition inside a chunk, with the hash of just those rows, so a
/// commit can tell which partitions its new version actually changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSlice {
    /// The partition key.
    pub partition: Ident,
    /// Hash of this partition's keys and records in this chunk.
    pub hash: ContentHash,
    pub(crate) rows: (u32, u32),
}

impl PartitionSlice {
    /// Number of records of this partition in the chunk.
    #[must_use]
    pub fn len(&self) -> usize {
        (self.rows.1 - self.rows.0) as usize
    }

    /// Whether the slice holds no record (never true for a stored chunk).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn range(&self) -> Range<usize> {
        self.rows.0 as usize..self.rows.1 as usize
    }
}

/// The immutable output of one task run: records under partition and sort keys, the
/// chunks the task read, and the task that spawned it. A chunk without a parent is an
/// *entry* chunk (a source), a root for garbage collection.
pub struct Chunk<S: Schema> {
    pub(crate) id: ChunkId,
    pub(crate) task: TaskId,
    pub(crate) parent: Option<TaskId>,
    pub(crate) output_hash: ContentHash,
    pub(crate) dependencies: Box<[ChunkId]>,
    /// Sorted by (partition, key); unique.
    pub(crate) rows: Box<[Row]>,
    pub(crate) partitions: Box<[PartitionSlice]>,
    pub(crate) storage: S::Storage,
    pub(crate) reads: Box<[ReadEntry]>,
    /// The chunk's secondary-index entries, sorted by (index, composite key), computed
    /// once when the chunk is built so commits only diff them.
    pub(crate) index_entries: Box<[IndexEntry]>,
    pub(crate) heap_bytes: usize,
    pub(crate) _live: LiveCount,
}

impl<S: Schema> Chunk<S> {
    /// The chunk's content address.
    #[must_use]
    pub fn id(&self) -> ChunkId {
        self.id
    }

    /// The task that produced it.
    #[must_use]
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// The task that spawned the producing task; `None` for an entry chunk.
    #[must_use]
    pub fn parent(&self) -> Option<TaskId> {
        self.parent
    }

    /// Whether this is an entry chunk (a source, with no parent task).
    #[must_use]
    pub fn is_entry(&self) -> bool {
        self.parent.is_none()
    }

    /// The hash of the records alone (partition, key and content of each), which does
    /// not depend on the task or its dependencies: equal output hashes between two
    /// versions of a task mean "recomputed, same output".
    #[must_use]
    pub fn output_hash(&self) -> ContentHash {
        self.output_hash
    }

    /// The chunks the task read, sorted and without duplicates.
    #[must_use]
    pub fn dependencies(&self) -> &[ChunkId] {
        &self.dependencies
    }

    /// What the task's queries read, when it ran through a
    /// [`TaskContext`](crate::TaskContext).
    #[must_use]
    pub fn reads(&self) -> &[ReadEntry] {
        &self.reads
    }

    /// The partitions this chunk holds records of, in partition-key order.
    #[must_use]
    pub fn partitions(&self) -> &[PartitionSlice] {
        &self.partitions
    }

    /// Number of records.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the chunk holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Approximate heap bytes held by the chunk (records, keys, metadata).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }

    /// Every record with its partition and sort key, in (partition, key) order.
    pub fn records(&self) -> impl Iterator<Item = (Ident, &SortKey, RecordRefOf<'_, S>)> + '_ {
        self.partitions.iter().flat_map(move |slice| {
            self.rows[slice.range()]
                .iter()
                .map(move |row| (slice.partition, &row.key, self.storage.get(row.handle)))
        })
    }

    pub(crate) fn record(&self, handle: RecordHandle) -> RecordRefOf<'_, S> {
        self.storage.get(handle)
    }

    /// The hash of one record's canonical encoding: equal exactly when the records
    /// are equal.
    pub(crate) fn record_hash(&self, handle: RecordHandle) -> ContentHash {
        let mut hasher = StableHasher::new();
        self.storage.hash_record(handle, &mut hasher);
        hasher.finish()
    }

    pub(crate) fn slice(&self, partition: Ident) -> Option<&PartitionSlice> {
        self.partitions
            .binary_search_by_key(&partition, |slice| slice.partition)
            .ok()
            .map(|at| &self.partitions[at])
    }

    pub(crate) fn rows_of(&self, slice: &PartitionSlice) -> &[Row] {
        &self.rows[slice.range()]
    }

    pub(crate) fn estimate_heap_bytes(&self) -> usize {
        let keys: usize = self.rows.iter().map(|row| row.key.len() + 2 * size_of::<usize>()).sum();
        let reads: usize = self.reads.iter().map(ReadEntry::heap_bytes).sum();
        let index_entries: usize = self
            .index_entries
            .iter()
            .map(|(_, key, _, _)| key.key.len() + 16 + size_of::<IndexEntry>())
            .sum();
        self.storage.heap_bytes()
            + keys
            + reads
            + index_entries
            + self.rows.len() * size_of::<Row>()
            + self.partitions.len() * size_of::<PartitionSlice>()
            + self.dependencies.len() * size_of::<ChunkId>()
            + size_of::<Self>()
    }
}

impl<S: Schema> fmt::Debug for Chunk<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("id", &self.id)
            .field("task", &self.task)
            .field("parent", &self.parent)
            .field("records", &self.rows.len())
            .field("dependencies", &self.dependencies.len())
            .finish_non_exhaustive()
    }
}

/// Counts chunk objects alive in memory, superseded versions kept by snapshots
/// included; decremented when the last reference to a chunk goes.
#[derive(Debug)]
pub(crate) struct LiveCount(Arc<AtomicUsize>);

impl LiveCount {
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        LiveCount(Arc::clone(counter))
    }
}

impl Drop for LiveCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
