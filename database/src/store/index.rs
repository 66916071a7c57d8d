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
//! apply them one by one, copying the same path again for each (see `tree.rs`); and
//! because ours keeps keys front-coded inside its nodes.
//!
//! Several tasks may write the same sort key, so each key maps to its *postings*: the
//! (chunk, row) pairs under it, in task order. Nearly every key has one, kept inline.

use std::mem::size_of;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::hash::StableHasher;
use crate::ident::{Ident, TaskId};
use crate::key::Start;
use crate::schema::{RecordRefOf, Schema};
use crate::store::block::Probe;
use crate::store::chunk::{Chunk, PackedHandle};
use crate::store::tree::{Iter, Tree};

/// One record under a key: its chunk (which knows the task that wrote it), its row
/// there, which gives its key, and the row's record handle, copied into what would be
/// the struct's padding so a hit reaches its record without loading the row.
pub(crate) struct Posting<S: Schema> {
    pub(crate) chunk: Arc<Chunk<S>>,
    pub(crate) row: u32,
    handle: PackedHandle,
}

impl<S: Schema> Clone for Posting<S> {
    fn clone(&self) -> Self {
        Posting { chunk: Arc::clone(&self.chunk), row: self.row, handle: self.handle }
    }
}

impl<S: Schema> Posting<S> {
    /// The posting of `row` of `chunk` (a row of it: rows are counted in u32).
    pub(crate) fn new(chunk: &Arc<Chunk<S>>, row: u32) -> Self {
        Posting { chunk: Arc::clone(chunk), row, handle: chunk.rows[row as usize].handle }
    }

    pub(crate) fn task(&self) -> TaskId {
        self.chunk.task
    }

    /// The record's sort key, in its chunk.
    pub(crate) fn key(&self) -> &[u8] {
        self.chunk.key(self.row as usize)
    }

    pub(crate) fn record(&self) -> RecordRefOf<'_, S> {
        self.chunk.record_of(self.handle)
    }

    /// This record's share of a read's results digest, as found under `partition`:
    /// who wrote which record under which key.
    pub(crate) fn result_hash(&self, partition: Ident) -> u128 {
        let mut hasher = StableHasher::new();
        hasher.write_u64(partition.raw());
        hasher.write_u64(self.task().ident().raw());
        hasher.write_bytes(self.key());
        self.chunk.hash_record(self.row as usize, &mut hasher);
        hasher.finish().raw()
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

    /// These postings with `posting`'s task's added or replaced.
    fn upserted(&self, posting: Posting<S>) -> Self {
        let task = posting.task();
        match self {
            Postings::One(existing) if existing.task() == task => Postings::One(posting),
            _ => {
                let mut all = self.as_slice().to_vec();
                match all.binary_search_by_key(&task, Posting::task) {
                    Ok(at) => all[at] = posting,
                    Err(at) => all.insert(at, posting),
                }
                Postings::from_vec(all)
            }
        }
    }

    /// These postings without `task`'s; `None` if none remain.
    fn removed(&self, task: TaskId) -> Option<Self> {
        // Nearly every key has one posting: no list to copy for it.
        if let Postings::One(existing) = self {
            return (existing.task() != task).then(|| self.clone());
        }
        let mut all = self.as_slice().to_vec();
        all.retain(|posting| posting.task() != task);
        (!all.is_empty()).then(|| Postings::from_vec(all))
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

/// The tree cursor a scan walks.
pub(crate) type Scan<'s, S> = Iter<'s, Postings<S>>;

/// One change a commit makes to a partition: `task`'s record under a key is set or
/// removed. The key is borrowed from the old or the new chunk.
pub(crate) struct Change<'k, S: Schema> {
    pub(crate) key: &'k [u8],
    pub(crate) op: Op<S>,
}

/// What a [`Change`] does.
pub(crate) enum Op<S: Schema> {
    Upsert(Posting<S>),
    Remove(TaskId),
}

/// The position a scan starting at `start` begins at.
pub(crate) fn probe(start: Start<'_>) -> Probe<'_> {
    match start {
        Start::At(key) => Probe::at(key),
        Start::PastPrefix(prefix) => Probe::past(prefix),
    }
}

/// One partition's records across all current chunks.
pub(crate) struct PartitionIndex<S: Schema> {
    entries: Entries<S>,
    /// Number of records (postings).
    records: usize,
    /// Number of chunks contributing records.
    pub(crate) chunks: usize,
}

/// A partition's tree, or, for a partition restored from disk and not read since,
/// the chunk slices to build it from when first read: a restart pays only for the
/// partitions its first queries and edits touch.
enum Entries<S: Schema> {
    Built(Tree<Postings<S>>),
    Restored(Arc<Restored<S>>),
}

/// Rows of one chunk in one partition.
pub(crate) type Slice<S> = (Arc<Chunk<S>>, Range<usize>);

/// A restored partition's rows, chunk by chunk.
pub(crate) type Slices<S> = Vec<Slice<S>>;

/// The slices a restored partition is built from, and the tree once built (shared
/// by every state holding the partition, so it is built once).
struct Restored<S: Schema> {
    slices: Slices<S>,
    tree: OnceLock<Tree<Postings<S>>>,
}

impl<S: Schema> Clone for Entries<S> {
    fn clone(&self) -> Self {
        match self {
            Entries::Built(tree) => Entries::Built(tree.clone()),
            Entries::Restored(restored) => Entries::Restored(Arc::clone(restored)),
        }
    }
}

impl<S: Schema> Clone for PartitionIndex<S> {
    fn clone(&self) -> Self {
        PartitionIndex { entries: self.entries.clone(), records: self.records, chunks: self.chunks }
    }
}

impl<S: Schema> Default for PartitionIndex<S> {
    fn default() -> Self {
        PartitionIndex { entries: Entries::Built(Tree::default()), records: 0, chunks: 0 }
    }
}

impl<S: Schema> PartitionIndex<S> {
    /// The partition holding rows `slices` of their chunks (each chunk once, its
    /// rows in key order), built when first read.
    pub(crate) fn restored(slices: Slices<S>) -> Self {
        let records = slices.iter().map(|(_, rows)| rows.len()).sum();
        let chunks = slices.len();
        let entries = Entries::Restored(Arc::new(Restored { slices, tree: OnceLock::new() }));
        PartitionIndex { entries, records, chunks }
    }

    fn tree(&self) -> &Tree<Postings<S>> {
        match &self.entries {
            Entries::Built(tree) => tree,
            Entries::Restored(restored) => restored.tree.get_or_init(|| {
                check_in_background(restored);
                build(&restored.slices)
            }),
        }
    }

    /// For a restored partition not read since, replaces `task`'s rows by `rows`
    /// without building the tree (a commit to a partition nobody has read since the
    /// restart costs a copy of its slice list, not a tree); false if the tree is built.
    pub(crate) fn replace_unbuilt(&mut self, task: TaskId, rows: Option<Slice<S>>) -> bool {
        let Entries::Restored(restored) = &self.entries else { return false };
        if restored.tree.get().is_some() {
            return false;
        }
        let mut slices: Slices<S> = Vec::with_capacity(restored.slices.len() + 1);
        slices.extend(restored.slices.iter().filter(|(chunk, _)| chunk.task != task).cloned());
        slices.extend(rows);
        *self = PartitionIndex::restored(slices);
        true
    }

    /// The records under exactly `key`: one descent, no allocation.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Postings<S>> {
        self.tree().get(key)
    }

    /// The keys from `start` on, in order; the caller stops at the range's end.
    pub(crate) fn scan_from(&self, start: Start<'_>) -> Scan<'_, S> {
        self.tree().iter_from(probe(start))
    }

    /// Applies one commit's changes to this partition, sorted by key.
    pub(crate) fn apply(&mut self, changes: &[Change<'_, S>]) {
        if let Entries::Restored(_) = &self.entries {
            self.entries = Entries::Built(self.tree().clone());
        }
        if let Entries::Built(tree) = &mut self.entries {
            apply_to(tree, &mut self.records, changes);
        }
    }

    /// About how many keys a scan from `start` visits while `admits` holds.
    pub(crate) fn estimate(&self, start: Start<'_>, admits: &impl Fn(&[u8]) -> bool) -> usize {
        self.tree().estimate(probe(start), admits)
    }

    /// Scans from `start` while `admits` holds, in parallel by subtrees; the parts
    /// `visit` makes come back in key order.
    pub(crate) fn par_visit<'t, R: Send>(
        &'t self,
        start: Start<'_>,
        admits: &(impl Fn(&[u8]) -> bool + Sync),
        visit: &(impl Fn(&[&'t [Postings<S>]]) -> R + Sync),
    ) -> Vec<R> {
        self.tree().par_visit(probe(start), admits, visit)
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.records
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Heap bytes of the tree's nodes (keys, postings and structure); a restored
    /// partition not built yet holds only its list of slices.
    pub(crate) fn bytes(&self) -> usize {
        match &self.entries {
            Entries::Built(tree) => tree.bytes(),
            Entries::Restored(restored) => {
                restored.tree.get().map_or(0, Tree::bytes)
                    + restored.slices.capacity() * size_of::<Slice<S>>()
            }
        }
    }
}

/// Starts the first-use checks of a restored partition's chunks on a thread, as
/// its tree is first built: a read that builds the tree (a scan, or the first lookup)
/// usually goes on to read many of them, and would otherwise check each one as it
/// meets it, on its own thread. A check is made once whoever starts it (the read
/// waits for one in progress), and a failed one is remembered and reported only to
/// reads that reach the chunk, so this changes when checks run, never what a read
/// returns.
fn check_in_background<S: Schema>(restored: &Arc<Restored<S>>) {
    if restored.slices.iter().all(|(chunk, _)| chunk.is_checked()) {
        return;
    }
    let restored = Arc::clone(restored);
    // A thread of its own: a job on rayon's pool waits behind the read's own
    // parallel scan, which is what it should run beside.
    let spawned = std::thread::Builder::new().name("chunkdb-check".into()).spawn(move || {
        for (chunk, _) in &restored.slices {
            if !chunk.is_checked() {
                // The outcome is kept in the chunk, for the reads that reach it.
                let _ = chunk.check();
            }
        }
    });
    // Without a thread, each chunk is still checked by the first read that meets it.
    drop(spawned);
}

/// The tree holding rows `slices` of their chunks: all rows sorted by (key, task),
/// the rows of one key (of different tasks) made one postings list, and the tree
/// built from them in one pass.
fn build<S: Schema>(slices: &[Slice<S>]) -> Tree<Postings<S>> {
    // Each chunk's rows are sorted already, and keys usually start with a file, so
    // the chunks' runs hardly overlap: laid end to end in the order of their first
    // keys they are (nearly) one run, which the stable sort then only checks.
    let mut runs: Vec<&Slice<S>> = slices.iter().filter(|(_, rows)| !rows.is_empty()).collect();
    runs.sort_by(|(a, a_rows), (b, b_rows)| {
        a.key(a_rows.start).cmp(b.key(b_rows.start)).then_with(|| a.task.cmp(&b.task))
    });
    let mut rows: Vec<(&[u8], Posting<S>)> = runs
        .iter()
        .flat_map(|(chunk, rows)| rows.clone().map(|row| (chunk.key(row), Posting::new(chunk, row as u32))))
        .collect();
    rows.sort_by(|(a, a_posting), (b, b_posting)| {
        a.cmp(b).then_with(|| a_posting.task().cmp(&b_posting.task()))
    });
    // A key several tasks hold gets their postings together, in task order.
    let mut entries: Vec<(&[u8], Postings<S>)> = Vec::with_capacity(rows.len());
    let mut rows = rows.into_iter().peekable();
    while let Some((key, posting)) = rows.next() {
        let mut shared = Vec::new();
        while let Some((_, next)) = rows.next_if(|(next, _)| *next == key) {
            shared.push(next);
        }
        let postings = if shared.is_empty() {
            Postings::One(posting)
        } else {
            shared.insert(0, posting);
            Postings::Many(Arc::new(shared))
        };
        entries.push((key, postings));
    }
    Tree::from_sorted(entries)
}

/// Applies `changes`, sorted by key, to `tree`, keeping its count of postings.
fn apply_to<S: Schema>(tree: &mut Tree<Postings<S>>, records: &mut usize, changes: &[Change<'_, S>]) {
    tree.apply(
        changes,
        |change| change.key,
        |current, change| match (current, &change.op) {
            (None, Op::Upsert(posting)) => {
                *records += 1;
                Some(Postings::One(posting.clone()))
            }
            (Some(postings), Op::Upsert(posting)) => {
                let upserted = postings.upserted(posting.clone());
                *records += upserted.as_slice().len() - postings.as_slice().len();
                Some(upserted)
            }
            (None, Op::Remove(_)) => None,
            (Some(postings), Op::Remove(task)) => {
                let removed = postings.removed(*task);
                *records -= postings.as_slice().len() - removed.as_ref().map_or(0, |p| p.as_slice().len());
                removed
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;
    use crate::reference::TextLang;

    #[test]
    fn postings_stay_small() {
        // The tree holds one postings value per key; keep it compact.
        assert_eq!(size_of::<Posting<TextLang>>(), 16);
        assert_eq!(size_of::<Postings<TextLang>>(), 16);
    }
}
