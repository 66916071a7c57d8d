//! The database's committed state at one clock value: an immutable value that a
//! commit replaces as a whole and a snapshot holds as a whole.

use std::sync::Arc;

use crate::chunk::{Chunk, PartitionSlice};
use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::index::{Change, IdMap, IndexKey, Op, PartitionIndex, Posting};
use crate::key::SortKey;
use crate::schema::Schema;
use crate::secondary::{self, IndexHit, SecondaryIndex};

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
            self.update_partition(partition, task, before, after, keys);
        }

        if !S::indexes().is_empty() {
            self.update_indexes(old.as_ref(), new.as_ref(), &mut changes.keys);
        }

        if let Some(old) = old {
            self.chunks.remove(&old.id);
            self.records -= old.rows.len();
            self.chunk_bytes -= old.heap_bytes;
        }
        if let Some(new) = new {
            self.records += new.rows.len();
            self.chunk_bytes += new.heap_bytes;
            self.chunks.insert(new.id, new);
        }
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
        changed: &mut Vec<(Ident, SortKey)>,
    ) {
        let same_output = matches!((old, new), (Some(a), Some(b)) if a.output_hash == b.output_hash);
        let old_entries = old.map_or(&[][..], |chunk| &chunk.index_entries[..]);
        let new_entries = new.map_or(&[][..], |chunk| &chunk.index_entries[..]);
        let mut changes: Vec<(Ident, IndexKey, Option<IndexHit<S>>)> =
            Vec::with_capacity(old_entries.len().max(new_entries.len()));
        let mut old_iter = old_entries.iter().peekable();
        for (index, key, partition, row) in new_entries {
            while let Some((gone_index, gone, _, _)) =
                old_iter.next_if(|(i, k, _, _)| (*i, k) < (*index, key))
            {
                changed.push((*gone_index, gone.key.clone()));
                changes.push((*gone_index, gone.clone(), None));
            }
            let kept = old_iter.next_if(|(i, k, _, _)| i == index && k == key);
            let record_changed = match (kept, old, new) {
                (None, _, _) => true,
                (Some((_, _, _, old_row)), Some(old), Some(new)) => {
                    !same_output
                        && old.record_hash(old.rows[*old_row as usize].handle)
                            != new.record_hash(new.rows[*row as usize].handle)
                }
                _ => false,
            };
            if record_changed {
                changed.push((*index, key.key.clone()));
            }
            if let Some(chunk) = new {
                changes.push((*index, key.clone(), Some(secondary::hit_of(chunk, *partition, *row))));
            }
        }
        for (index, key, _, _) in old_iter {
            changed.push((*index, key.key.clone()));
            changes.push((*index, key.clone(), None));
        }
        let mut rest = &changes[..];
        while let Some((index, _, _)) = rest.first() {
            let run = rest.iter().take_while(|(i, _, _)| i == index).count();
            let batch: Vec<(IndexKey, Option<IndexHit<S>>)> =
                rest[..run].iter().map(|(_, key, hit)| (key.clone(), hit.clone())).collect();
            let tree = self.indexes.entry(*index).or_default();
            tree.apply(&batch);
            if tree.is_empty() {
                self.indexes.remove(index);
            }
            rest = &rest[run..];
        }
    }

    /// Replaces `task`'s records in one partition: the old rows go, the new chunk's
    /// rows come in, as one sorted batch of changes. Keys present in both are
    /// overwritten in place rather than removed and re-inserted. With `changed`, the
    /// keys added, removed or holding a different record are reported there.
    fn update_partition(
        &mut self,
        partition: Ident,
        task: TaskId,
        before: Option<(&Arc<Chunk<S>>, &PartitionSlice)>,
        after: Option<(&Arc<Chunk<S>>, &PartitionSlice)>,
        mut changed: Option<&mut Vec<(Ident, SortKey)>>,
    ) {
        let old_rows = before.map_or(&[][..], |(chunk, slice)| chunk.rows_of(slice));
        let new_rows = after.map_or(&[][..], |(chunk, slice)| chunk.rows_of(slice));
        let diffing = changed.is_some();
        let mut report = |key: &SortKey| {
            if let Some(changed) = changed.as_deref_mut() {
                changed.push((partition, key.clone()));
            }
        };
        let mut changes = Vec::with_capacity(old_rows.len().max(new_rows.len()));
        let mut old = old_rows.iter().peekable();
        for row in new_rows {
            while let Some(gone) = old.next_if(|old| old.key < row.key) {
                report(&gone.key);
                changes.push(Change { key: IndexKey::new(gone.key.clone()), op: Op::Remove(task) });
            }
            match (old.next_if(|old| old.key == row.key), before, after) {
                (Some(kept), Some((old_chunk, _)), Some((new_chunk, _))) => {
                    if diffing && old_chunk.record_hash(kept.handle) != new_chunk.record_hash(row.handle) {
                        report(&row.key);
                    }
                }
                _ => report(&row.key),
            }
            if let Some((chunk, _)) = after {
                let posting = Posting { chunk: Arc::clone(chunk), handle: row.handle };
                changes.push(Change { key: IndexKey::new(row.key.clone()), op: Op::Upsert(posting) });
            }
        }
        for gone in old {
            report(&gone.key);
            changes.push(Change { key: IndexKey::new(gone.key.clone()), op: Op::Remove(task) });
        }

        let index = self.partitions.entry(partition).or_default();
        index.apply(&changes);
        if !old_rows.is_empty() {
            index.chunks -= 1;
        }
        if !new_rows.is_empty() {
            index.chunks += 1;
        }
        if index.is_empty() {
            self.partitions.remove(&partition);
        }
    }
}

impl<S: Schema> State<S> {
    /// Whether `range` of `partition` (or of the secondary index with that id) holds
    /// at least one record.
    pub(crate) fn holds_data(&self, partition: Ident, range: &crate::key::KeyRange) -> bool {
        if let Some(index) = self.partitions.get(&partition) {
            let first = index.scan_from(crate::key::Start::At(range.start())).next();
            return first.is_some_and(|(key, _)| range.contains(key.key.as_bytes()));
        }
        if let Some(index) = self.indexes.get(&partition) {
            let first = index.scan_from(range.start()).next();
            return first.is_some_and(|(key, _)| range.contains(key.key.as_bytes()));
        }
        false
    }
}

/// What one replacement changed.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The partitions whose records changed, in partition-key order.
    pub(crate) touched: Vec<Ident>,
    /// Every key whose records changed (added, removed or different), under its
    /// partition, or under the index id for secondary-index entries. A query covering
    /// none of these keys returns what it returned before.
    pub(crate) keys: Vec<(Ident, SortKey)>,
}
