//! Read-sets: what a task's queries read, recorded so the database can tell when an
//! edit changes what the task would see.
//!
//! A list of chunks read is not enough: another task may commit a new record inside a
//! range this task scanned without touching any chunk it read. So every query records
//! the partition and the key range it covered (an exact key is a range of one), and
//! the chunks that supplied its results. A query that found nothing is still a range
//! read: a *pending* dependency, satisfied when a commit supplies data in that range.

use std::mem::size_of;

use parking_lot::Mutex;

use crate::hash::{ChunkId, StableHash, StableHasher};
use crate::ident::Ident;
use crate::key::KeyRange;

/// One query's read: the partition and key range it covered and the chunks whose
/// records it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEntry {
    partition: Ident,
    range: KeyRange,
    chunks: Box<[ChunkId]>,
    hits: usize,
}

impl ReadEntry {
    pub(crate) fn new(partition: Ident, range: KeyRange, mut chunks: Vec<ChunkId>, hits: usize) -> Self {
        chunks.sort_unstable();
        chunks.dedup();
        ReadEntry { partition, range, chunks: chunks.into(), hits }
    }

    /// The partition read.
    #[must_use]
    pub fn partition(&self) -> Ident {
        self.partition
    }

    /// The key range the query covered.
    #[must_use]
    pub fn range(&self) -> &KeyRange {
        &self.range
    }

    /// The chunks that supplied results, sorted, without duplicates.
    #[must_use]
    pub fn chunks(&self) -> &[ChunkId] {
        &self.chunks
    }

    /// Number of records the query returned.
    #[must_use]
    pub fn hits(&self) -> usize {
        self.hits
    }

    /// Whether the query found nothing in a range that could hold data: a pending
    /// dependency on data that may arrive. (A query over an empty range, such as
    /// `between(high, low)`, waits for nothing.)
    #[must_use]
    pub fn is_pending(&self) -> bool {
        self.hits == 0 && !self.range.is_empty()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.range.start().len()
            + self.range.end().map_or(0, <[u8]>::len)
            + self.chunks.len() * size_of::<ChunkId>()
            + size_of::<Self>()
    }
}

/// A read's identity for a chunk's id: the partition, the range, the chunks that
/// supplied its results and how many it returned. Two runs whose reads differ in any
/// of these (a filter that now keeps nothing turns a read pending) store different
/// chunks, so the stored read-set is always that of the run that is current.
impl StableHash for ReadEntry {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u64(self.partition.raw());
        hasher.write_bytes(self.range.start());
        match self.range.end() {
            None => hasher.write_u8(0),
            Some(end) => {
                hasher.write_u8(1);
                hasher.write_bytes(end);
            }
        }
        self.chunks.stable_hash(hasher);
        hasher.write_u64(self.hits as u64);
    }
}

/// The reads of one task run, appended to by its queries (from any thread).
#[derive(Debug, Default)]
pub(crate) struct ReadLog {
    entries: Mutex<Vec<ReadEntry>>,
}

impl ReadLog {
    pub(crate) fn record(&self, entry: ReadEntry) {
        self.entries.lock().push(entry);
    }

    pub(crate) fn entries(&self) -> Vec<ReadEntry> {
        self.entries.lock().clone()
    }

    pub(crate) fn take(&self) -> Vec<ReadEntry> {
        std::mem::take(&mut *self.entries.lock())
    }
}
