//! The per-partition index across chunks: every record of a partition, from every
//! chunk, in one persistent B+tree ordered by (sort key, task).
//!
//! Why a persistent tree: a snapshot must keep seeing exactly the versions committed
//! before it, while commits go on, and no reader may wait for a writer. An `imbl`
//! `OrdMap` is copy-on-write with structural sharing: a commit edits a clone of the
//! current tree (copying only the nodes on the paths it changes) and publishes the new
//! root, and each snapshot holds the root it was taken at. Reads are a plain B+tree
//! descent, O(log n) in the records of the partition, independent of how many chunks
//! they came from. We use `imbl`'s single-owner persistent map (sound, widely used)
//! rather than a concurrent ordered map: nothing here is shared mutably, so there is no
//! concurrent-structure hazard to audit (indexset's `concurrent` module is beta and has
//! reported memory-safety bugs).

use std::cmp::Ordering;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;
use std::ops::Bound;
use std::sync::Arc;

use equivalent::{Comparable, Equivalent};
use imbl::shared_ptr::DefaultSharedPtr;
use imbl::{GenericHashMap, OrdMap};

use crate::chunk::Chunk;
use crate::ident::TaskId;
use crate::key::{SortKey, Start, compare_keys};
use crate::schema::Schema;

/// Index key: records order by sort key, then by task id, so records with equal sort
/// keys from different tasks come in ascending task-id order (the raw `Ident` hash),
/// which is stable across runs and platforms.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct EntryKey {
    pub(crate) key: SortKey,
    pub(crate) task: TaskId,
}

/// Index value: the chunk holding the record and the record's row in it.
pub(crate) struct Entry<S: Schema> {
    pub(crate) chunk: Arc<Chunk<S>>,
    pub(crate) row: u32,
}

impl<S: Schema> Clone for Entry<S> {
    fn clone(&self) -> Self {
        Entry { chunk: Arc::clone(&self.chunk), row: self.row }
    }
}

/// A borrowed search position in the tree, so lookups never allocate a key.
pub(crate) enum Probe<'a> {
    /// The position of (key, task).
    At { key: &'a [u8], task: TaskId },
    /// The position right after every key that starts with the prefix.
    PastPrefix(&'a [u8]),
}

impl<'a> Probe<'a> {
    pub(crate) fn new(key: &'a [u8], task: TaskId) -> Self {
        Probe::At { key, task }
    }
}

impl Equivalent<EntryKey> for Probe<'_> {
    fn equivalent(&self, key: &EntryKey) -> bool {
        self.compare(key) == Ordering::Equal
    }
}

impl Comparable<EntryKey> for Probe<'_> {
    fn compare(&self, entry: &EntryKey) -> Ordering {
        match self {
            Probe::At { key, task } => {
                compare_keys(key, entry.key.as_bytes()).then_with(|| task.cmp(&entry.task))
            }
            Probe::PastPrefix(prefix) if entry.key.as_bytes().starts_with(prefix) => Ordering::Greater,
            Probe::PastPrefix(prefix) => compare_keys(prefix, entry.key.as_bytes()),
        }
    }
}

/// The lowest task id, which sorts before every other with the same key.
const FIRST_TASK: TaskId = TaskId::from_ident(crate::Ident::from_raw(0));

/// One partition's records across all current chunks.
pub(crate) struct PartitionIndex<S: Schema> {
    pub(crate) entries: OrdMap<EntryKey, Entry<S>>,
    /// Number of chunks contributing records.
    pub(crate) chunks: usize,
    /// Encoded key bytes held by the entries.
    pub(crate) key_bytes: usize,
}

impl<S: Schema> Clone for PartitionIndex<S> {
    fn clone(&self) -> Self {
        PartitionIndex { entries: self.entries.clone(), chunks: self.chunks, key_bytes: self.key_bytes }
    }
}

impl<S: Schema> Default for PartitionIndex<S> {
    fn default() -> Self {
        PartitionIndex { entries: OrdMap::new(), chunks: 0, key_bytes: 0 }
    }
}

/// Bytes an entry takes in the tree, counting B+tree leaves as two-thirds full on
/// average (imbl splits full leaves in half and merges below a third).
pub(crate) const ENTRY_BYTES: usize = size_of::<(EntryKey, Arc<()>, u32)>() * 3 / 2;

impl<S: Schema> PartitionIndex<S> {
    /// The entries from `start` on, in (key, task) order. The caller stops at the
    /// range's end: giving imbl only a lower bound makes it descend the tree once
    /// instead of twice (it seeks both ends of a bounded range up front).
    pub(crate) fn scan_from<'s>(
        &'s self,
        start: Start<'_>,
    ) -> imbl::ordmap::RangedIter<'s, EntryKey, Entry<S>, DefaultSharedPtr> {
        match start {
            Start::At([]) => self.entries.range::<_, Probe<'_>>(..),
            Start::At(key) => {
                self.entries.range((Bound::Included(Probe::At { key, task: FIRST_TASK }), Bound::Unbounded))
            }
            Start::PastPrefix(prefix) => {
                self.entries.range((Bound::Included(Probe::PastPrefix(prefix)), Bound::Unbounded))
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.entries.len() * ENTRY_BYTES + self.key_bytes
    }
}

/// A persistent hash map keyed by values that are already hashes (identifiers, chunk
/// ids), so hashing them again would only cost time.
pub(crate) type IdMap<K, V> = GenericHashMap<K, V, BuildHasherDefault<PrehashedHasher>, DefaultSharedPtr>;

/// Passes an already-uniform hash through.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }

    fn write_u128(&mut self, value: u128) {
        self.0 ^= (value as u64) ^ ((value >> 64) as u64);
    }
}
