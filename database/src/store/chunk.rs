//! Chunks: the immutable output of one task run.

use std::fmt;
use std::mem::{size_of, size_of_val};
use std::ops::Range;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{DamagedChunk, Error, Result};
use crate::hash::{ChunkId, ContentHash, StableHasher};
use crate::ident::{Ident, TaskId};
use crate::incremental::read_set::ReadEntry;
use crate::key::SortKeyRef;
use crate::schema::{RecordHandle, RecordKind, RecordRefOf, RecordStorage, Schema};
use crate::store::records::Records;

/// One record's place in a chunk: where its sort key ends in the chunk's key bytes
/// (it starts where the previous row's ends) and its handle in the storage. The
/// partition is given by the [`PartitionSlice`] the row falls in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row {
    pub(crate) key_end: u32,
    pub(crate) handle: PackedHandle,
}

/// A [`RecordHandle`] in 32 bits: the kind in the low bits, as few as the schema's
/// kinds need, and the index in its column above them. Every record has a row, so
/// this keeps a row at 8 bytes where the plain handle would make it 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PackedHandle(u32);

impl PackedHandle {
    /// Bits the kinds of `T`'s schema take.
    fn kind_bits<T: RecordStorage>() -> u32 {
        let kinds = <T::Schema as Schema>::record_kinds().len();
        usize::BITS - kinds.saturating_sub(1).leading_zeros()
    }

    /// Most records of one kind a chunk of `T`'s schema holds.
    pub(crate) fn most_per_kind<T: RecordStorage>() -> u64 {
        1u64 << (u32::BITS - Self::kind_bits::<T>())
    }

    /// `handle` packed; `None` when its kind or index does not fit in the bits the
    /// schema leaves them.
    pub(crate) fn pack<T: RecordStorage>(handle: RecordHandle) -> Option<Self> {
        let bits = Self::kind_bits::<T>();
        let kind = u32::from(handle.kind.0);
        let fits = kind < (1 << bits) && u64::from(handle.index) < Self::most_per_kind::<T>();
        fits.then(|| PackedHandle(handle.index << bits | kind))
    }

    /// The handle packed by [`pack`](Self::pack) for the same schema.
    #[inline]
    pub(crate) fn unpack<T: RecordStorage>(self) -> RecordHandle {
        let bits = Self::kind_bits::<T>();
        // The kind took at most 16 bits when it was packed.
        let kind = (self.0 & ((1 << bits) - 1)) as u16;
        RecordHandle { kind: RecordKind(kind), index: self.0.checked_shr(bits).unwrap_or(0) }
    }
}

/// A chunk's secondary-index entries, sorted by (index, composite key), computed once
/// when the chunk is built so commits only diff them, and their composite keys
/// concatenated in that order.
#[derive(Debug, Default)]
pub(crate) struct IndexEntries {
    pub(crate) entries: Box<[IndexEntry]>,
    pub(crate) keys: Box<[u8]>,
}

/// The sort key of `row`, in the key bytes its rows point into.
#[inline]
pub(crate) fn row_key<'k>(keys: &'k [u8], rows: &[Row], row: usize) -> &'k [u8] {
    let start = row.checked_sub(1).map_or(0, |previous| rows[previous].key_end as usize);
    &keys[start..rows[row].key_end as usize]
}

/// A secondary-index entry of a chunk: the index, where its composite key (value ++
/// partition ++ task ++ sort key) ends in the chunk's index-key bytes, the record's
/// row and its partition.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexEntry {
    pub(crate) index: Ident,
    pub(crate) key_end: u32,
    pub(crate) row: u32,
    pub(crate) partition: Ident,
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

/// A chunk's reads: recorded by the commit that built it, or restored from disk and
/// decoded from the mapped layout the first time something asks for them (a restart
/// restores thousands of chunks, its first query needs none of their reads, and only
/// a commit's invalidation pass reads them).
///
/// Boxed when mapped: every chunk holds one, and in memory it costs what the reads'
/// box did plus a tag.
pub(crate) enum ChunkReads {
    Built(Box<[ReadEntry]>),
    Mapped(Box<MappedReads>),
}

/// Restored reads: where they lie, and once asked for, decoded.
pub(crate) struct MappedReads {
    pub(crate) stored: crate::persist::codec::StoredReads,
    pub(crate) decoded: OnceLock<Box<[ReadEntry]>>,
    /// What the decoded reads hold, counted from the layout without decoding them.
    pub(crate) heap_bytes: usize,
}

impl ChunkReads {
    pub(crate) fn get(&self) -> &[ReadEntry] {
        match self {
            ChunkReads::Built(reads) => reads,
            ChunkReads::Mapped(mapped) => mapped.decoded.get_or_init(|| mapped.stored.decode()),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            ChunkReads::Built(reads) => reads.iter().map(ReadEntry::heap_bytes).sum(),
            ChunkReads::Mapped(mapped) => mapped.heap_bytes,
        }
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
    /// Every row's sort key, concatenated in row order: one allocation for all of
    /// them, which the partition indexes and query results point into.
    pub(crate) keys: Box<[u8]>,
    /// Sorted by (partition, key); unique.
    pub(crate) rows: Box<[Row]>,
    pub(crate) partitions: Box<[PartitionSlice]>,
    /// The records, archived: built by the commit, or mapped from a segment.
    pub(crate) records: Records<S::Storage>,
    pub(crate) reads: ChunkReads,
    /// The chunk's secondary-index entries, when it has any (boxed: most chunks have
    /// none, and then they cost a word).
    pub(crate) indexed: Option<Box<IndexEntries>>,
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
        self.reads.get()
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

    /// Checks the chunk's records, once: a chunk restored from disk is checked
    /// (checksum, archive validation, rows) the first time anything reads it; a
    /// chunk built by a commit always passes.
    ///
    /// # Errors
    /// [`Error::DamagedRecords`] naming the chunk and what is wrong with it.
    pub fn check(&self) -> Result<()> {
        self.records.archive(&self.rows).map(|_| ()).map_err(|reason| self.damaged(reason))
    }

    /// Every record with its partition and sort key, in (partition, key) order.
    ///
    /// # Errors
    /// As [`check`](Self::check): the records are checked before any is read.
    pub fn records(&self) -> Result<impl Iterator<Item = (Ident, SortKeyRef<'_>, RecordRefOf<'_, S>)> + '_> {
        self.check()?;
        Ok(self.partitions.iter().flat_map(move |slice| {
            slice
                .range()
                .map(move |row| (slice.partition, SortKeyRef::from_encoded(self.key(row)), self.record(row)))
        }))
    }

    /// The error that reports this chunk's records as damaged.
    pub(crate) fn damaged(&self, reason: String) -> Error {
        Error::DamagedRecords { damaged: DamagedChunk { task: self.task, chunk: self.id, reason } }
    }

    /// Whether the records may be read without a check (built here, or checked).
    #[inline]
    pub(crate) fn is_checked(&self) -> bool {
        self.records.is_checked()
    }

    /// The sort key of a row.
    #[inline]
    pub(crate) fn key(&self, row: usize) -> &[u8] {
        row_key(&self.keys, &self.rows, row)
    }

    /// Bytes of the keys of `rows` together.
    pub(crate) fn key_bytes(&self, rows: std::ops::Range<usize>) -> usize {
        let end = |row: usize| row.checked_sub(1).map_or(0, |previous| self.rows[previous].key_end as usize);
        end(rows.end) - end(rows.start)
    }

    /// The record of a row, of a chunk already checked (every hit is made from one).
    #[inline]
    pub(crate) fn record(&self, row: usize) -> RecordRefOf<'_, S> {
        self.record_of(self.rows[row].handle)
    }

    /// The record a row's handle names, of a chunk already checked.
    #[inline]
    pub(crate) fn record_of(&self, handle: PackedHandle) -> RecordRefOf<'_, S> {
        S::Storage::get(self.records.checked_archive(&self.rows), handle.unpack::<S::Storage>())
    }

    /// The chunk's secondary-index entries.
    pub(crate) fn index_entries(&self) -> &[IndexEntry] {
        self.indexed.as_ref().map_or(&[], |indexed| &indexed.entries)
    }

    /// The index and composite key of a secondary-index entry.
    pub(crate) fn index_entry(&self, at: usize) -> (Ident, &[u8]) {
        let entries = self.index_entries();
        let start = at.checked_sub(1).map_or(0, |previous| entries[previous].key_end as usize);
        let keys = self.indexed.as_ref().map_or(&[][..], |indexed| &indexed.keys);
        (entries[at].index, &keys[start..entries[at].key_end as usize])
    }

    /// The hash of one row's record's canonical encoding: equal exactly when the
    /// records are equal. A damaged chunk's records hash to a value no record has
    /// (see [`hash_record`](Self::hash_record)).
    pub(crate) fn record_hash(&self, row: usize) -> ContentHash {
        let mut hasher = StableHasher::new();
        self.hash_record(row, &mut hasher);
        hasher.finish()
    }

    /// Feeds one row's record's canonical encoding to `hasher`. A record of a chunk
    /// whose records fail their check is fed as a tag no record encoding starts
    /// with, followed by the chunk id: whatever compares it sees a change, so the
    /// readers re-run and meet the damage as an error where they query.
    pub(crate) fn hash_record(&self, row: usize, hasher: &mut StableHasher) {
        match self.records.archive(&self.rows) {
            Ok(archived) => {
                S::Storage::hash_record(archived, self.rows[row].handle.unpack::<S::Storage>(), hasher);
            }
            Err(_) => {
                hasher.write_u16(u16::MAX);
                hasher.write_u128(self.id.raw());
            }
        }
    }

    pub(crate) fn slice(&self, partition: Ident) -> Option<&PartitionSlice> {
        self.partitions
            .binary_search_by_key(&partition, |slice| slice.partition)
            .ok()
            .map(|at| &self.partitions[at])
    }

    pub(crate) fn estimate_heap_bytes(&self) -> usize {
        self.records.heap_bytes()
            + self.keys.len()
            + self.reads.heap_bytes()
            + self.indexed.as_ref().map_or(0, |indexed| {
                size_of::<IndexEntries>() + indexed.keys.len() + size_of_val(&*indexed.entries)
            })
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

#[cfg(test)]
mod tests {
    use super::PackedHandle;
    use crate::reference::{RefStorage, TextStorage};
    use crate::schema::{RecordHandle, RecordKind};

    fn handle(kind: u16, index: u32) -> RecordHandle {
        RecordHandle { kind: RecordKind(kind), index }
    }

    #[test]
    fn packed_handles_round_trip_up_to_the_bits_the_schema_leaves() {
        // Four kinds take two bits, one kind none.
        assert_eq!(PackedHandle::most_per_kind::<RefStorage>(), 1 << 30);
        assert_eq!(PackedHandle::most_per_kind::<TextStorage>(), 1 << 32);
        for kind in 0..4 {
            for index in [0, 1, 7, (1 << 30) - 1] {
                let packed = PackedHandle::pack::<RefStorage>(handle(kind, index)).expect("fits");
                assert_eq!(packed.unpack::<RefStorage>(), handle(kind, index));
            }
        }
        for index in [0, 1, u32::MAX] {
            let packed = PackedHandle::pack::<TextStorage>(handle(0, index)).expect("fits");
            assert_eq!(packed.unpack::<TextStorage>(), handle(0, index));
        }
        assert!(PackedHandle::pack::<RefStorage>(handle(0, 1 << 30)).is_none());
        assert!(PackedHandle::pack::<RefStorage>(handle(4, 0)).is_none());
        assert!(PackedHandle::pack::<TextStorage>(handle(1, 0)).is_none());
    }

    #[test]
    fn packed_handles_order_rows_of_one_kind_by_index() {
        let a = PackedHandle::pack::<RefStorage>(handle(2, 5)).expect("fits");
        let b = PackedHandle::pack::<RefStorage>(handle(2, 6)).expect("fits");
        assert!(a < b);
        assert_ne!(a, PackedHandle::pack::<RefStorage>(handle(1, 5)).expect("fits"));
    }
}
