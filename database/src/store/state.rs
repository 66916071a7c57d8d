//! The database's committed state at one clock value: an immutable value that a
//! commit replaces as a whole and a snapshot holds as a whole.

use std::ops::Range;
use std::sync::Arc;

use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::schema::Schema;
use crate::store::chunk::{Chunk, PartitionSlice};
use crate::store::idmap::IdMap;
use crate::store::index::{Change, Op, PartitionIndex, Posting};
use crate::store::secondary::{self, IndexHit, SecondaryIndex};

/// A task's current version: its chunk and the clock value of the commit that made it
/// current.
pub(crate) struct Version<S: Schema> {
    pub(crate) chunk: Arc<Chunk<S>>,
    pub(crate) committed_at: u64,
}

impl<S: Schema> Clone for Version<S> {
    fn clone(&self) -> Self {
        Version { chunk: Arc::clone(&self.chunk), committed_at: self.committed_at }
    }
}

/// Everything visible at one clock value. Cloning is O(1): all maps are persistent
/// and share structure with the state they were cloned from.
pub(crate) struct State<S: Schema> {
    pub(crate) clock: u64,
    pub(crate) partitions: IdMap<Ident, PartitionIndex<S>>,
    pub(crate) tasks: IdMap<TaskId, Version<S>>,
    pub(crate) chunks: IdMap<ChunkId, Arc<Chunk<S>>>,
    pub(crate) indexes: IdMap<Ident, SecondaryIndex<S>>,
    pub(crate) records: usize,
    pub(crate) chunk_bytes: usize,
}

impl<S: Schema> Clone for State<S> {
    fn clone(&self) -> Self {
        State {
            clock: self.clock,
            partitions: self.partitions.clone(),
            tasks: self.tasks.clone(),
            chunks: self.chunks.clone(),
            indexes: self.indexes.clone(),
            records: self.records,
            chunk_bytes: self.chunk_bytes,
        }
    }
}

impl<S: Schema> Default for State<S> {
    fn default() -> Self {
        State {
            clock: 0,
            partitions: IdMap::default(),
            tasks: IdMap::default(),
            chunks: IdMap::default(),
            indexes: IdMap::default(),
            records: 0,
            chunk_bytes: 0,
        }
    }
}

impl<S: Schema> State<S> {
    /// Makes `new` the current version of its task (or, with `None`, removes the task's
    /// version) and returns what changed. The caller publishes the result as a whole,
    /// so no reader sees a part of it.
    pub(crate) fn replace(&mut self, task: TaskId, new: Option<Arc<Chunk<S>>>) -> Changes {
        let old = match &new {
            Some(chunk) => {
                self.tasks.insert(task, Version { chunk: Arc::clone(chunk), committed_at: self.clock })
            }
            None => self.tasks.remove(&task),
        }
        .map(|version| version.chunk);

        let mut changes = Changes::default();
        let old_slices = old.as_deref().map_or(&[][..], |chunk| &chunk.partitions[..]);
        let new_slices = new.as_deref().map_or(&[][..], |chunk| &chunk.partitions[..]);
        let mut partitions: Vec<Ident> =
            old_slices.iter().chain(new_slices).map(|slice| slice.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let mut indexes = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let before = old.as_ref().and_then(|chunk| chunk.slice(partition).map(|s| (chunk, s)));
            let after = new.as_ref().and_then(|chunk| chunk.slice(partition).map(|s| (chunk, s)));
            let changed = match (before, after) {
                (Some((_, a)), Some((_, b))) => a.hash != b.hash,
                _ => true,
            };
            if changed {
                changes.touched.push(partition);
            }
            let keys = changed.then_some(&mut changes.keys);
            indexes.push((partition, self.update_partition(partition, task, before, after, keys)));
        }
        self.partitions.set_all(indexes);

        if !S::indexes().is_empty() {
            self.update_indexes(old.as_ref(), new.as_ref(), &mut changes.keys);
        }

        let mut chunks = Vec::with_capacity(2);
        if let Some(old) = old {
            self.records -= old.rows.len();
            self.chunk_bytes -= old.heap_bytes;
            if new.as_ref().is_none_or(|new| new.id != old.id) {
                chunks.push((old.id, None));
            }
        }
        if let Some(new) = new {
            self.records += new.rows.len();
            self.chunk_bytes += new.heap_bytes;
            chunks.push((new.id, Some(new)));
        }
        self.chunks.set_all(chunks);
        changes
    }

    /// Replaces the old version's secondary-index entries with the new version's.
    /// Entries of both are re-pointed at the new chunk, so every entry is set; those
    /// only the old version had are removed. Entries added, removed, or whose record
    /// changed are reported in `changed`, under the index's id.
    fn update_indexes(
        &mut self,
        old: Option<&Arc<Chunk<S>>>,
        new: Option<&Arc<Chunk<S>>>,
        changed: &mut KeyList,
    ) {
        let same_output = matches!((old, new), (Some(a), Some(b)) if a.output_hash == b.output_hash);
        let entries = |chunk: Option<&Arc<Chunk<S>>>| chunk.map_or(0, |chunk| chunk.index_entries().len());
        let mut changes: Vec<IndexChange<'_, S>> = Vec::with_capacity(entries(old).max(entries(new)));
        // Old entries before `until` (all of them, with `None`) are gone.
        let mut at_old = 0;
        let mut drop_old_until =
            |until: Option<(Ident, &[u8])>, changes: &mut Vec<_>, changed: &mut KeyList| {
                let old = old?;
                while at_old < old.index_entries().len()
                    && until.is_none_or(|until| old.index_entry(at_old) < until)
                {
                    let (index, key) = old.index_entry(at_old);
                    changed.push(index, key);
                    changes.push((index, key, None));
                    at_old += 1;
                }
                // The old entry equal to `until`, if any, is kept: its row.
                let kept = until
                    .filter(|until| at_old < old.index_entries().len() && old.index_entry(at_old) == *until);
                kept.map(|_| {
                    at_old += 1;
                    old.index_entries()[at_old - 1].row as usize
                })
            };
        if let Some(new) = new {
            for (at, entry) in new.index_entries().iter().enumerate() {
                let (index, key) = new.index_entry(at);
                let kept = drop_old_until(Some((index, key)), &mut changes, changed);
                let record_changed = match (kept, old) {
                    (Some(old_row), Some(old)) => {
                        !same_output && old.record_hash(old_row) != new.record_hash(entry.row as usize)
                    }
                    _ => true,
                };
                if record_changed {
                    changed.push(index, key);
                }
                changes.push((index, key, Some(secondary::hit_of(new, entry))));
            }
        }
        drop_old_until(None, &mut changes, changed);
        let mut rest = &changes[..];
        let mut trees = Vec::new();
        while let Some((index, _, _)) = rest.first() {
            let run = rest.iter().take_while(|(i, _, _)| i == index).count();
            let batch: Vec<(&[u8], Option<IndexHit<S>>)> =
                rest[..run].iter().map(|(_, key, hit)| (*key, hit.clone())).collect();
            let mut tree = self.indexes.get(index).cloned().unwrap_or_default();
            tree.apply(&batch);
            trees.push((*index, (!tree.is_empty()).then_some(tree)));
            rest = &rest[run..];
        }
        self.indexes.set_all(trees);
    }

    /// Replaces `task`'s records in one partition: the old rows go, the new chunk's
    /// rows come in, as one sorted batch of changes. Keys present in both are
    /// overwritten in place rather than removed and re-inserted. With `changed`, the
    /// keys added, removed or holding a different record are reported there. Returns
    /// the partition's new index (`None`: it emptied), for the caller to set.
    fn update_partition(
        &self,
        partition: Ident,
        task: TaskId,
        before: Option<(&Arc<Chunk<S>>, &PartitionSlice)>,
        after: Option<(&Arc<Chunk<S>>, &PartitionSlice)>,
        mut changed: Option<&mut KeyList>,
    ) -> Option<PartitionIndex<S>> {
        let rows =
            |side: Option<(&Arc<Chunk<S>>, &PartitionSlice)>| side.map_or(0..0, |(_, slice)| slice.range());
        let (old_rows, new_rows) = (rows(before), rows(after));
        let (had_rows, has_rows) = (!old_rows.is_empty(), !new_rows.is_empty());
        let diffing = changed.is_some();
        if let Some(changed) = changed.as_deref_mut() {
            // At most every key of both versions is reported: one allocation each.
            let key_bytes = |side: Option<(&Arc<Chunk<S>>, &PartitionSlice)>, rows: &Range<usize>| {
                side.map_or(0, |(chunk, _)| chunk.key_bytes(rows.clone()))
            };
            changed.reserve(
                old_rows.len() + new_rows.len(),
                key_bytes(before, &old_rows) + key_bytes(after, &new_rows),
            );
        }
        let mut report = |key: &[u8]| {
            if let Some(changed) = changed.as_deref_mut() {
                changed.push(partition, key);
            }
        };
        let mut changes = Vec::with_capacity(old_rows.len().max(new_rows.len()));
        let mut old = old_rows.peekable();
        if let Some((new_chunk, _)) = after {
            for row in new_rows {
                let key = new_chunk.key(row);
                if let Some((old_chunk, _)) = before {
                    while let Some(gone) = old.next_if(|&old| old_chunk.key(old) < key) {
                        report(old_chunk.key(gone));
                        changes.push(Change { key: old_chunk.key(gone), op: Op::Remove(task) });
                    }
                    match old.next_if(|&old| old_chunk.key(old) == key) {
                        Some(kept) => {
                            if diffing && old_chunk.record_hash(kept) != new_chunk.record_hash(row) {
                                report(key);
                            }
                        }
                        None => report(key),
                    }
                } else {
                    report(key);
                }
                let posting = Posting::new(new_chunk, row as u32);
                changes.push(Change { key, op: Op::Upsert(posting) });
            }
        }
        if let Some((old_chunk, _)) = before {
            for gone in old {
                report(old_chunk.key(gone));
                changes.push(Change { key: old_chunk.key(gone), op: Op::Remove(task) });
            }
        }

        let mut index = self.partitions.get(&partition).cloned().unwrap_or_default();
        let rows = after
            .map(|(chunk, slice)| (Arc::clone(chunk), slice.range()))
            .filter(|(_, rows)| !rows.is_empty());
        if !index.replace_unbuilt(task, rows) {
            index.apply(&changes);
            if had_rows {
                index.chunks -= 1;
            }
            if has_rows {
                index.chunks += 1;
            }
        }
        (!index.is_empty()).then_some(index)
    }
}

impl<S: Schema> State<S> {
    /// The state holding exactly `versions` (each with the clock it was committed
    /// at), built in one pass per partition and per secondary index: what
    /// [`replace`](Self::replace) would give version by version from an empty state,
    /// for a restart that restores thousands of chunks at once. Each task appears
    /// once.
    pub(crate) fn load(versions: &[(u64, Arc<Chunk<S>>)], clock: u64) -> Self {
        // The two id maps and the indexes are built side by side: a restart waits on
        // this, with the cores otherwise idle.
        let tasks = || {
            IdMap::from_entries(
                versions
                    .iter()
                    .map(|(committed_at, chunk)| {
                        (chunk.task, Version { chunk: Arc::clone(chunk), committed_at: *committed_at })
                    })
                    .collect(),
            )
        };
        let chunks =
            || IdMap::from_entries(versions.iter().map(|(_, chunk)| (chunk.id, Arc::clone(chunk))).collect());
        let ((tasks, chunks), (partitions, indexes)) =
            rayon::join(|| rayon::join(tasks, chunks), || Self::load_indexes(versions));
        let mut state = State { clock, tasks, chunks, partitions, indexes, ..State::default() };
        for (_, chunk) in versions {
            state.records += chunk.rows.len();
            state.chunk_bytes += chunk.heap_bytes;
        }
        state
    }

    /// The partition indexes (each tree built when first read) and the secondary
    /// indexes of the restored `versions`.
    fn load_indexes(
        versions: &[(u64, Arc<Chunk<S>>)],
    ) -> (IdMap<Ident, PartitionIndex<S>>, IdMap<Ident, SecondaryIndex<S>>) {
        // Each partition's slices, its tree built when first read.
        let mut by_partition: std::collections::BTreeMap<Ident, crate::store::index::Slices<S>> =
            std::collections::BTreeMap::new();
        // Each secondary index's entries, by composite key.
        let mut by_index: std::collections::BTreeMap<Ident, Vec<IndexEntryOf<'_, S>>> =
            std::collections::BTreeMap::new();
        for (_, chunk) in versions {
            for slice in chunk.partitions.iter() {
                by_partition.entry(slice.partition).or_default().push((Arc::clone(chunk), slice.range()));
            }
            for (at, entry) in chunk.index_entries().iter().enumerate() {
                let (index, key) = chunk.index_entry(at);
                by_index.entry(index).or_default().push((key, secondary::hit_of(chunk, entry)));
            }
        }
        let mut partitions = IdMap::default();
        for (partition, slices) in by_partition {
            partitions.insert(partition, PartitionIndex::restored(slices));
        }
        let mut indexes = IdMap::default();
        for (index, mut entries) in by_index {
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            indexes.insert(index, SecondaryIndex::from_sorted(entries));
        }
        (partitions, indexes)
    }

    /// Whether `range` of `partition` (or of the secondary index with that id) holds
    /// at least one record.
    pub(crate) fn holds_data(&self, partition: Ident, range: &crate::key::KeyRange) -> bool {
        if let Some(index) = self.partitions.get(&partition) {
            let mut scan = index.scan_from(crate::key::Start::At(range.start()));
            return scan.next().is_some_and(|(key, _)| range.contains(key));
        }
        if let Some(index) = self.indexes.get(&partition) {
            let mut scan = index.scan_from(range.start());
            return scan.next().is_some_and(|(key, _)| range.contains(key));
        }
        false
    }
}

/// A secondary-index entry: its composite key and what it points at.
type IndexEntryOf<'k, S> = (&'k [u8], IndexHit<S>);

/// One change to a secondary index: its id, the entry's composite key, and the entry
/// to set (`None`: remove it).
type IndexChange<'k, S> = (Ident, &'k [u8], Option<IndexHit<S>>);

/// What one replacement changed.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The partitions whose records changed, in partition-key order.
    pub(crate) touched: Vec<Ident>,
    /// Every key whose records changed (added, removed or different), under its
    /// partition, or under the index id for secondary-index entries. A query covering
    /// none of these keys returns what it returned before.
    pub(crate) keys: KeyList,
}

/// Keys, each under a partition (or index id), copied into one buffer: what a commit
/// changed, kept after the chunks it came from may be gone.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyList {
    bytes: Vec<u8>,
    /// Each key's partition and where it ends in `bytes`.
    ends: Vec<(Ident, usize)>,
}

impl KeyList {
    pub(crate) fn push(&mut self, partition: Ident, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push((partition, self.bytes.len()));
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Makes room for `keys` more keys of `bytes` bytes in all.
    pub(crate) fn reserve(&mut self, keys: usize, bytes: usize) {
        self.ends.reserve(keys);
        self.bytes.reserve(bytes);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `at`-th key with its partition.
    pub(crate) fn get(&self, at: usize) -> (Ident, &[u8]) {
        let start = at.checked_sub(1).map_or(0, |previous| self.ends[previous].1);
        let (partition, end) = self.ends[at];
        (partition, &self.bytes[start..end])
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Ident, &[u8])> + '_ {
        (0..self.len()).map(|at| self.get(at))
    }

    /// Adds every key of `other`.
    pub(crate) fn extend(&mut self, other: &KeyList) {
        other.iter().for_each(|(partition, key)| self.push(partition, key));
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Releases spare capacity, for a list that is kept.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    /// The same keys sorted by (partition, key), without duplicates, exactly sized.
    pub(crate) fn sorted(&self) -> KeyList {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by(|&a, &b| self.get(a).cmp(&self.get(b)));
        order.dedup_by(|a, b| self.get(*a) == self.get(*b));
        let mut sorted = KeyList {
            bytes: Vec::with_capacity(order.iter().map(|&at| self.get(at).1.len()).sum()),
            ends: Vec::with_capacity(order.len()),
        };
        order.into_iter().for_each(|at| {
            let (partition, key) = self.get(at);
            sorted.push(partition, key);
        });
        sorted
    }
}
