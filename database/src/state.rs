//! The database's committed state at one clock value: an immutable value that a
//! commit replaces as a whole and a snapshot holds as a whole.

use std::ops::Range;
use std::sync::Arc;

use crate::chunk::{Chunk, Row};
use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::index::{Change, IdMap, IndexKey, Op, PartitionIndex, Posting};
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
    /// version) and returns the partitions whose contents changed. The caller publishes
    /// the result as a whole, so no reader sees a part of it.
    pub(crate) fn replace(&mut self, task: TaskId, new: Option<Arc<Chunk<S>>>) -> Vec<Ident> {
        let old = match &new {
            Some(chunk) => {
                self.tasks.insert(task, Version { chunk: Arc::clone(chunk), committed_at: self.clock })
            }
            None => self.tasks.remove(&task),
        }
        .map(|version| version.chunk);

        let mut touched = Vec::new();
        let old_slices = old.as_deref().map_or(&[][..], |chunk| &chunk.partitions[..]);
        let new_slices = new.as_deref().map_or(&[][..], |chunk| &chunk.partitions[..]);
        let mut partitions: Vec<Ident> =
            old_slices.iter().chain(new_slices).map(|slice| slice.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        for partition in partitions {
            let before = old.as_deref().and_then(|chunk| chunk.slice(partition).map(|s| (chunk, s)));
            let after = new.as_ref().and_then(|chunk| chunk.slice(partition).map(|s| (chunk, s)));
            let changed = match (before, after) {
                (Some((_, a)), Some((_, b))) => a.hash != b.hash,
                _ => true,
            };
            if changed {
                touched.push(partition);
            }
            self.update_partition(
                partition,
                task,
                before.map_or(&[][..], |(chunk, slice)| chunk.rows_of(slice)),
                after.map(|(chunk, slice)| (chunk, slice.range())),
            );
        }

        if !S::indexes().is_empty() {
            self.update_indexes(old.as_ref(), new.as_ref());
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
        touched
    }

    /// Replaces the old version's secondary-index entries with the new version's.
    /// Entries of both are re-pointed at the new chunk, so every entry is set; those
    /// only the old version had are removed.
    fn update_indexes(&mut self, old: Option<&Arc<Chunk<S>>>, new: Option<&Arc<Chunk<S>>>) {
        let old_entries = old.map_or(&[][..], |chunk| &chunk.index_entries[..]);
        let new_entries = new.map_or(&[][..], |chunk| &chunk.index_entries[..]);
        let mut changes: Vec<(Ident, IndexKey, Option<IndexHit<S>>)> =
            Vec::with_capacity(old_entries.len().max(new_entries.len()));
        let mut old_iter = old_entries.iter().peekable();
        for (index, key, partition, row) in new_entries {
            while let Some((gone_index, gone, _, _)) =
                old_iter.next_if(|(i, k, _, _)| (*i, k) < (*index, key))
            {
                changes.push((*gone_index, gone.clone(), None));
            }
            old_iter.next_if(|(i, k, _, _)| i == index && k == key);
            if let Some(chunk) = new {
                changes.push((*index, key.clone(), Some(secondary::hit_of(chunk, *partition, *row))));
            }
        }
        changes.extend(old_iter.map(|(index, key, _, _)| (*index, key.clone(), None)));
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
    /// overwritten in place rather than removed and re-inserted.
    fn update_partition(
        &mut self,
        partition: Ident,
        task: TaskId,
        old_rows: &[Row],
        new: Option<(&Arc<Chunk<S>>, Range<usize>)>,
    ) {
        let new_rows = new.as_ref().map_or(&[][..], |(chunk, rows)| &chunk.rows[rows.clone()]);
        let mut changes = Vec::with_capacity(old_rows.len().max(new_rows.len()));
        let mut old = old_rows.iter().peekable();
        for row in new_rows {
            while let Some(gone) = old.next_if(|old| old.key < row.key) {
                changes.push(Change { key: IndexKey::new(gone.key.clone()), op: Op::Remove(task) });
            }
            old.next_if(|old| old.key == row.key);
            if let Some((chunk, _)) = &new {
                let posting = Posting { chunk: Arc::clone(chunk), handle: row.handle };
                changes.push(Change { key: IndexKey::new(row.key.clone()), op: Op::Upsert(posting) });
            }
        }
        changes.extend(old.map(|gone| Change { key: IndexKey::new(gone.key.clone()), op: Op::Remove(task) }));

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
