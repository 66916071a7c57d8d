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

use crate::hash::ChunkId;
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

    /// Whether the query found nothing: a pending dependency on data that may arrive.
    #[must_use]
    pub fn is_pending(&self) -> bool {
        self.hits == 0
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.range.start().len()
            + self.range.end().map_or(0, <[u8]>::len)
            + self.chunks.len() * size_of::<ChunkId>()
            + size_of::<Self>()
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
