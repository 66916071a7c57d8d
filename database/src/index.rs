//! The per-partition index across chunks: every record of a partition, from every
//! chunk, in one persistent B+tree keyed by sort key.
//!
//! Why a persistent tree: a snapshot must keep seeing exactly the versions committed
//! before it, while commits go on, and no reader may wait for a writer. A persistent
//! tree ([`Tree`]) is copy-on-write with structural sharing: a commit edits a clone of
//! the current tree (copying only the nodes its changes land in) and publishes the new
//! root, and each snapshot holds the root it was taken at. Reads are a plain B+tree
//! descent, O(log n) in the records of the partition, independent of how many chunks
//! they came from. Nothing is shared mutably, so there is no concurrent-structure
//! hazard to audit (unlike a concurrent ordered map: indexset's `concurrent` module is
//! beta and has reported memory-safety bugs). We use our own tree rather than
//! `imbl::OrdMap` because a commit changes many keys at once, and `imbl` can only
//! apply them one by one, copying the same path again for each (see `tree.rs`).
//!
//! Several tasks may write the same sort key, so each key maps to its *postings*: the
//! (task, record) pairs under it, in task order. Nearly every key has one, kept inline.

use std::cmp::Ordering;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::size_of;
use std::sync::Arc;

use imbl::GenericHashMap;
use imbl::shared_ptr::DefaultSharedPtr;

use crate::chunk::Chunk;
use crate::ident::TaskId;
use crate::key::{SortKey, Start, compare_keys};
use crate::schema::{RecordHandle, Schema};
use crate::tree::{Iter, Seek, Tree};

/// A sort key in the tree.
///
/// `head` holds the key's first eight bytes inline: a tree search then compares
/// integers in the node it already has in cache, and follows the pointer to the key's
/// bytes only between keys that share those eight bytes.
#[derive(Clone, Debug)]
pub(crate) struct IndexKey {
    head: u64,
    pub(crate) key: SortKey,
}

impl IndexKey {
    pub(crate) fn new(key: SortKey) -> Self {
        IndexKey { head: head_of(key.as_bytes()), key }
    }

    /// Whether the key starts with `prefix`; decided inline for prefixes of up to
    /// eight bytes.
    #[inline]
    pub(crate) fn starts_with(&self, prefix: &[u8]) -> bool {
        if prefix.len() <= 8 && self.key.len() >= prefix.len() {
            let mask = if prefix.is_empty() { 0 } else { u64::MAX << (64 - 8 * prefix.len()) };
            return self.head & mask == head_of(prefix);
        }
        self.key.as_bytes().starts_with(prefix)
    }
}

/// The first eight bytes of a key, big-endian, zero-padded. When two heads differ,
/// their order is the keys' order; when they are equal, the full keys decide.
#[inline]
pub(crate) fn head_of(key: &[u8]) -> u64 {
    let mut head = [0; 8];
    let len = key.len().min(8);
    head[..len].copy_from_slice(&key[..len]);
    u64::from_be_bytes(head)
}

#[inline]
fn compare_with_head(head: u64, key: &[u8], entry: &IndexKey) -> Ordering {
    head.cmp(&entry.head).then_with(|| compare_keys(key, entry.key.as_bytes()))
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head && self.key == other.key
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_with_head(self.head, self.key.as_bytes(), other)
    }
}

/// One record under a key: its chunk (which knows the task that wrote it) and its
/// handle there. Sixteen bytes, the bulk of the index.
pub(crate) struct Posting<S: Schema> {
    pub(crate) chunk: Arc<Chunk<S>>,
    pub(crate) handle: RecordHandle,
}

impl<S: Schema> Clone for Posting<S> {
    fn clone(&self) -> Self {
        Posting { chunk: Arc::clone(&self.chunk), handle: self.handle }
    }
}

impl<S: Schema> Posting<S> {
    pub(crate) fn task(&self) -> TaskId {
        self.chunk.task
    }
}

/// The records under one key, in ascending task-id order (the raw `Ident` hash),
/// which is stable across runs and platforms. Nearly every key has one; several tasks
/// writing one key share a boxed list (a thin pointer, so the enum stays 16 bytes).
pub(crate) enum Postings<S: Schema> {
    One(Posting<S>),
    Many(Arc<Vec<Posting<S>>>),
}

impl<S: Schema> Clone for Postings<S> {
    fn clone(&self) -> Self {
        match self {
            Postings::One(posting) => Postings::One(posting.clone()),
            Postings::Many(postings) => Postings::Many(Arc::clone(postings)),
        }
    }
}

impl<S: Schema> Postings<S> {
    pub(crate) fn as_slice(&self) -> &[Posting<S>] {
        match self {
            Postings::One(posting) => std::slice::from_ref(posting),
            Postings::Many(postings) => postings,
        }
    }

    /// Adds or replaces the posting of `posting`'s task.
    fn upsert(&mut self, posting: Posting<S>) {
        let task = posting.task();
        match self {
            Postings::One(existing) if existing.task() == task => *existing = posting,
            _ => {
                let mut all = self.as_slice().to_vec();
                match all.binary_search_by_key(&task, Posting::task) {
                    Ok(at) => all[at] = posting,
                    Err(at) => all.insert(at, posting),
                }
                *self = Postings::from_vec(all);
            }
        }
    }

    /// Removes `task`'s posting; returns whether any remain.
    fn remove(&mut self, task: TaskId) -> bool {
        if let Postings::One(existing) = self {
            return existing.task() != task;
        }
        let mut all = self.as_slice().to_vec();
        all.retain(|posting| posting.task() != task);
        let remaining = !all.is_empty();
        if remaining {
            *self = Postings::from_vec(all);
        }
        remaining
    }

    fn from_vec(mut all: Vec<Posting<S>>) -> Self {
        match all.pop() {
            Some(only) if all.is_empty() => Postings::One(only),
            Some(last) => {
                all.push(last);
                Postings::Many(Arc::new(all))
            }
            None => Postings::Many(Arc::new(all)),
        }
    }
}

/// A borrowed search position in the tree, so lookups never allocate a key.
pub(crate) enum Probe<'a> {
    /// The position of a key.
    At { head: u64, key: &'a [u8] },
    /// The position right after every key that starts with the prefix.
    PastPrefix(&'a [u8]),
}

impl<'a> Probe<'a> {
    pub(crate) fn new(key: &'a [u8]) -> Self {
        Probe::At { head: head_of(key), key }
    }
}

impl Seek<IndexKey> for Probe<'_> {
    fn seek_cmp(&self, entry: &IndexKey) -> Ordering {
        match self {
            Probe::At { head, key } => compare_with_head(*head, key, entry),
            Probe::PastPrefix(prefix) if entry.starts_with(prefix) => Ordering::Greater,
            Probe::PastPrefix(prefix) => compare_keys(prefix, entry.key.as_bytes()),
        }
    }
}

/// The tree iterator a scan walks.
pub(crate) type Scan<'s, S> = Iter<'s, IndexKey, Postings<S>>;

/// One change a commit makes to a partition: `task`'s record under a key is set or
/// removed.
pub(crate) struct Change<S: Schema> {
    pub(crate) key: IndexKey,
    pub(crate) op: Op<S>,
}

/// What a [`Change`] does.
pub(crate) enum Op<S: Schema> {
    Upsert(Posting<S>),
    Remove(TaskId),
}

/// One partition's records across all current chunks.
pub(crate) struct PartitionIndex<S: Schema> {
    entries: Tree<IndexKey, Postings<S>>,
    /// Number of records (postings).
    records: usize,
    /// Number of chunks contributing records.
    pub(crate) chunks: usize,
    /// Encoded key bytes held by the keys.
    key_bytes: usize,
}

impl<S: Schema> Clone for PartitionIndex<S> {
    fn clone(&self) -> Self {
        PartitionIndex {
            entries: self.entries.clone(),
            records: self.records,
            chunks: self.chunks,
            key_bytes: self.key_bytes,
        }
    }
}

impl<S: Schema> Default for PartitionIndex<S> {
    fn default() -> Self {
        PartitionIndex { entries: Tree::default(), records: 0, chunks: 0, key_bytes: 0 }
    }
}

/// Bytes an entry takes in the tree, counting B+tree leaves as two-thirds full on
/// average (imbl splits full leaves in half and merges below a third).
const ENTRY_BYTES: usize = size_of::<(IndexKey, Postings<crate::reference::TextLang>)>() * 3 / 2;

impl<S: Schema> PartitionIndex<S> {
    /// The records under exactly `key`: one descent, no allocation.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(&IndexKey, &Postings<S>)> {
        self.entries.get(&Probe::new(key))
    }

    /// The keys from `start` on, in order; the caller stops at the range's end.
    pub(crate) fn scan_from(&self, start: Start<'_>) -> Scan<'_, S> {
        match start {
            Start::At([]) => self.entries.iter(),
            start => self.entries.iter_from(&Self::probe(start)),
        }
    }

    /// Applies one commit's changes to this partition, sorted by key.
    pub(crate) fn apply(&mut self, changes: &[Change<S>]) {
        let (records, key_bytes) = (&mut self.records, &mut self.key_bytes);
        self.entries.apply(
            changes,
            |change| &change.key,
            |current, change| match (current, &change.op) {
                (None, Op::Upsert(posting)) => {
                    *records += 1;
                    *key_bytes += change.key.key.len();
                    Some(Postings::One(posting.clone()))
                }
                (Some(mut postings), Op::Upsert(posting)) => {
                    let before = postings.as_slice().len();
                    postings.upsert(posting.clone());
                    *records += postings.as_slice().len() - before;
                    Some(postings)
                }
                (None, Op::Remove(_)) => None,
                (Some(mut postings), Op::Remove(task)) => {
                    let before = postings.as_slice().len();
                    if postings.remove(*task) {
                        *records -= before - postings.as_slice().len();
                        Some(postings)
                    } else {
                        *records -= before;
                        *key_bytes -= change.key.key.len();
                        None
                    }
                }
            },
        );
    }

    /// The position a scan starting at `start` begins at.
    fn probe<'a>(start: Start<'a>) -> Probe<'a> {
        match start {
            Start::At(key) => Probe::new(key),
            Start::PastPrefix(prefix) => Probe::PastPrefix(prefix),
        }
    }

    /// About how many keys a scan from `start` visits while `admits` holds.
    pub(crate) fn estimate(&self, start: Start<'_>, admits: &impl Fn(&IndexKey) -> bool) -> usize {
        self.entries.estimate(&Self::probe(start), admits)
    }

    /// Scans from `start` while `admits` holds, in parallel by subtrees; the parts
    /// `visit` makes come back in key order.
    pub(crate) fn par_visit<'t, R: Send>(
        &'t self,
        start: Start<'_>,
        admits: &(impl Fn(&IndexKey) -> bool + Sync),
        visit: &(impl Fn(&[&'t [(IndexKey, Postings<S>)]]) -> R + Sync),
    ) -> Vec<R> {
        self.entries.par_visit(&Self::probe(start), admits, visit)
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.records
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.records * ENTRY_BYTES + self.key_bytes
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::TextLang;

    #[test]
    fn postings_stay_small() {
        // The tree holds one (key, postings) pair per key; keep it compact.
        assert_eq!(size_of::<Postings<TextLang>>(), 16);
        assert_eq!(size_of::<(IndexKey, Postings<TextLang>)>(), 32);
    }

    #[test]
    fn inline_heads_agree_with_key_order() {
        let keys: Vec<&[u8]> =
            vec![b"", b"\0", b"a", b"a\0", b"a\0\0\0\0\0\0\0\x01", b"ab", b"abcdefgh", b"abcdefgh\0", b"b"];
        for a in &keys {
            for b in &keys {
                let (ka, kb) =
                    (IndexKey::new(SortKey::from_encoded(a)), IndexKey::new(SortKey::from_encoded(b)));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(Probe::new(a).seek_cmp(&kb), a.cmp(b));
                assert_eq!(ka.starts_with(b), a.starts_with(b), "{a:?} starts with {b:?}");
            }
        }
    }
}
