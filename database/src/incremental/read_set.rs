//! Read-sets: what a task's queries read, recorded so the database can tell when an
//! edit changes what the task would see.
//!
//! A list of chunks read is not enough: another task may commit a new record inside a
//! range this task scanned without touching any chunk it read. So every query records
//! the partition and the key range it covered (an exact key is a range of one), and
//! the chunks that supplied its results. A query that found nothing is still a range
//! read: a *pending* dependency, satisfied when a commit supplies data in that range.

use std::any::Any;
use std::fmt;
use std::mem::size_of;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::hash::{ChunkId, ContentHash, StableHash, StableHasher};
use crate::ident::Ident;
use crate::key::KeyRange;

/// One query's read: the partition and key range it covered, the chunks it examined,
/// and a digest of the records it returned.
#[derive(Clone, Debug)]
pub struct ReadEntry {
    partition: Ident,
    range: KeyRange,
    chunks: Box<[ChunkId]>,
    hits: usize,
    results: ContentHash,
    recheck: Recheck,
}

/// Whether, and how, the database can evaluate a read again on a newer state to tell
/// whether its results changed.
#[derive(Clone)]
pub(crate) enum Recheck {
    /// Not possible: the read kept records through a closure the database does not
    /// hold (a borrowed filter, a `filter_map`), or it stopped early.
    Never,
    /// Every record in the range was a result.
    Unfiltered,
    /// The results were the records a retained filter kept (a `RetainedFilter<S>`).
    Filter(Arc<dyn Any + Send + Sync>),
    /// A filtered read restored from disk: the filter (a closure) did not survive the
    /// restart, so the read cannot be evaluated again, but it is the same read for
    /// the chunk's id.
    FilterLost,
}

impl fmt::Debug for Recheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Recheck::Never => "Never",
            Recheck::Unfiltered => "Unfiltered",
            Recheck::Filter(_) => "Filter",
            Recheck::FilterLost => "FilterLost",
        })
    }
}

impl Recheck {
    fn tag(&self) -> u8 {
        match self {
            Recheck::Never => 0,
            Recheck::Unfiltered => 1,
            Recheck::Filter(_) | Recheck::FilterLost => 2,
        }
    }

    /// The recheck a persisted read's tag restores (`None`: not a tag chunkdb writes).
    pub(crate) fn restored(tag: u8) -> Option<Recheck> {
        match tag {
            0 => Some(Recheck::Never),
            1 => Some(Recheck::Unfiltered),
            2 => Some(Recheck::FilterLost),
            _ => None,
        }
    }
}

/// What a query saw while it ran: the chunks it examined and the records it returned.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) chunks: Vec<ChunkId>,
    pub(crate) hits: usize,
    results: u128,
    /// Whether results are digested: only for a read that can be evaluated again
    /// (hashing each record returned is most of a tracked read's bookkeeping).
    digest: bool,
}

impl Tally {
    /// An empty tally for a read that can be evaluated again as `recheck` says.
    pub(crate) fn new(recheck: &Recheck) -> Self {
        Tally { digest: !matches!(recheck, Recheck::Never), ..Tally::default() }
    }

    /// An empty tally with the same settings, for another part of the same query.
    pub(crate) fn like(&self) -> Self {
        Tally { digest: self.digest, ..Tally::default() }
    }

    /// Notes that the query examined a record of `chunk`.
    #[inline]
    pub(crate) fn examined(&mut self, chunk: ChunkId) {
        if self.chunks.last() != Some(&chunk) {
            self.chunks.push(chunk);
        }
    }

    /// Notes that the query returned a record, whose share of the digest `result`
    /// computes (only when results are digested). Shares are added, so the digest
    /// does not depend on the order a parallel scan's parts finish in.
    #[inline]
    pub(crate) fn kept(&mut self, result: impl FnOnce() -> u128) {
        self.hits += 1;
        if self.digest {
            self.results = self.results.wrapping_add(result());
        }
    }

    /// Adds what another part of the same query saw.
    pub(crate) fn merge(&mut self, other: Tally) {
        self.chunks.extend(other.chunks);
        self.hits += other.hits;
        self.results = self.results.wrapping_add(other.results);
    }

    /// The number of results and their digest.
    pub(crate) fn results(&self) -> (usize, ContentHash) {
        (self.hits, ContentHash::from_raw(self.results))
    }
}

impl ReadEntry {
    pub(crate) fn new(partition: Ident, range: KeyRange, tally: Tally, recheck: Recheck) -> Self {
        let (hits, results) = tally.results();
        let mut chunks = tally.chunks;
        chunks.sort_unstable();
        chunks.dedup();
        ReadEntry { partition, range, chunks: chunks.into(), hits, results, recheck }
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

    /// The chunks the query examined (for a filtered scan, also those whose records
    /// the filter dropped), sorted, without duplicates.
    #[must_use]
    pub fn chunks(&self) -> &[ChunkId] {
        &self.chunks
    }

    /// Number of records the query returned.
    #[must_use]
    pub fn hits(&self) -> usize {
        self.hits
    }

    /// A digest of the records the query returned: which task wrote which record
    /// under which key, independent of the chunks that held them. Zero for a read that
    /// cannot be evaluated again ([`is_recheckable`](Self::is_recheckable)).
    #[must_use]
    pub fn results(&self) -> ContentHash {
        self.results
    }

    /// Whether the database can evaluate this read again on a newer state, to confirm
    /// that its results changed before re-running the task: true for a read that ran
    /// to its end unfiltered or with a [`filter`](crate::Query::filter). A
    /// [`filter_borrowed`](crate::Query::filter_borrowed) or a
    /// [`filter_map`](crate::Query::filter_map) cannot be evaluated again.
    #[must_use]
    pub fn is_recheckable(&self) -> bool {
        !matches!(self.recheck, Recheck::Never | Recheck::FilterLost)
    }

    pub(crate) fn recheck(&self) -> &Recheck {
        &self.recheck
    }

    /// A read as persisted: its parts, exactly as they were.
    pub(crate) fn from_parts(
        partition: Ident,
        range: KeyRange,
        chunks: Box<[ChunkId]>,
        hits: usize,
        results: ContentHash,
        recheck: Recheck,
    ) -> Self {
        ReadEntry { partition, range, chunks, hits, results, recheck }
    }

    /// The tag that says how the read can be evaluated again (see [`Recheck`]).
    pub(crate) fn recheck_tag(&self) -> u8 {
        self.recheck.tag()
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

/// Reads are equal when they covered the same range, examined the same chunks,
/// returned the same records and can be checked again the same way (two retained
/// filters are not compared: a task's two runs hold their own copies of its filter).
impl PartialEq for ReadEntry {
    fn eq(&self, other: &Self) -> bool {
        self.partition == other.partition
            && self.range == other.range
            && self.chunks == other.chunks
            && self.hits == other.hits
            && self.results == other.results
            && self.recheck.tag() == other.recheck.tag()
    }
}

impl Eq for ReadEntry {}

/// A read's identity for a chunk's id: the partition, the range, the chunks it
/// examined, and how many records it returned with their digest. Two runs whose
/// reads differ in any of these (a filter that now keeps nothing turns a read
/// pending) store different chunks, so the stored read-set is always that of the run
/// that is current.
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
        hasher.write_u128(self.results.raw());
        hasher.write_u8(self.recheck.tag());
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
