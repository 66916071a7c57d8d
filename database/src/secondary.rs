//! Secondary indexes: records looked up by the value of a field, maintained by the
//! runtime at every commit, atomically with the records themselves.
//!
//! An index is a persistent tree like a partition's, keyed by `value ++ partition ++
//! task ++ sort key` (fixed-width parts before the variable-length sort key, so the
//! composite is unambiguous), one entry per indexed record.

use std::sync::Arc;

use crate::chunk::{Chunk, IndexEntry};
use crate::ident::Ident;
use crate::index::{IndexKey, Posting, Probe};
use crate::key::{KeyPart, SortKey};
use crate::schema::Schema;
use crate::tree::Tree;

/// A value an index can be keyed by: anything with a sort-key encoding. Object safe,
/// so generated code can hand field values to the runtime without knowing their type.
pub trait IndexValue {
    /// Appends the value's order-preserving encoding.
    fn encode_index_value(&self, out: &mut Vec<u8>);
}

impl<T: KeyPart + ?Sized> IndexValue for T {
    fn encode_index_value(&self, out: &mut Vec<u8>) {
        self.encode_key(out);
    }
}

/// One indexed record: where it lives.
pub(crate) struct IndexHit<S: Schema> {
    pub(crate) partition: Ident,
    pub(crate) key: SortKey,
    pub(crate) posting: Posting<S>,
}

impl<S: Schema> Clone for IndexHit<S> {
    fn clone(&self) -> Self {
        IndexHit { partition: self.partition, key: self.key.clone(), posting: self.posting.clone() }
    }
}

/// One secondary index.
pub(crate) struct SecondaryIndex<S: Schema> {
    tree: Tree<IndexKey, IndexHit<S>>,
}

impl<S: Schema> Clone for SecondaryIndex<S> {
    fn clone(&self) -> Self {
        SecondaryIndex { tree: self.tree.clone() }
    }
}

impl<S: Schema> Default for SecondaryIndex<S> {
    fn default() -> Self {
        SecondaryIndex { tree: Tree::default() }
    }
}

impl<S: Schema> SecondaryIndex<S> {
    /// The entries from the first whose composite key starts at `value` on; the
    /// caller stops where the keys stop starting with it.
    pub(crate) fn scan_from(&self, value: &[u8]) -> crate::tree::Iter<'_, IndexKey, IndexHit<S>> {
        self.tree.iter_from(&Probe::new(value))
    }

    /// Applies sorted changes: `Some` sets an entry, `None` removes it.
    pub(crate) fn apply(&mut self, changes: &[(IndexKey, Option<IndexHit<S>>)]) {
        self.tree.apply(changes, |(key, _)| key, |_, (_, hit)| hit.clone());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

/// Chunks with at least this many records compute their index entries in parallel.
const PARALLEL_FROM: usize = 1 << 16;

/// Every index entry of a chunk being built, sorted by (index, composite key). Very
/// large chunks compute and sort them on every core.
pub(crate) fn entries_of<S: Schema>(
    task: crate::ident::TaskId,
    partitions: &[crate::chunk::PartitionSlice],
    rows: &[crate::chunk::Row],
    storage: &S::Storage,
) -> Box<[IndexEntry]> {
    use rayon::prelude::*;
    let task = task.ident().raw().to_be_bytes();
    let row_entries = |slice: &crate::chunk::PartitionSlice, row_index: usize| {
        let mut entries = Vec::new();
        entries_of_row::<S>(&task, slice.partition, rows, row_index, storage, &mut entries);
        entries
    };
    let order =
        |(ia, ka, _, _): &IndexEntry, (ib, kb, _, _): &IndexEntry| ia.cmp(ib).then_with(|| ka.cmp(kb));
    let mut entries: Vec<IndexEntry> = if rows.len() >= PARALLEL_FROM && rayon::current_num_threads() > 1 {
        // Split by rows, not by partitions: a big chunk may hold a single partition.
        let positions: Vec<(&crate::chunk::PartitionSlice, usize)> = partitions
            .iter()
            .flat_map(|slice| slice.range().map(move |row_index| (slice, row_index)))
            .collect();
        let mut entries: Vec<IndexEntry> =
            positions.par_iter().flat_map_iter(|&(slice, row_index)| row_entries(slice, row_index)).collect();
        entries.par_sort_by(order);
        entries
    } else {
        let mut entries: Vec<IndexEntry> = partitions
            .iter()
            .flat_map(|slice| slice.range().map(move |row_index| (slice, row_index)))
            .flat_map(|(slice, row_index)| row_entries(slice, row_index))
            .collect();
        entries.sort_by(order);
        entries
    };
    entries.dedup_by(|(ia, ka, _, _), (ib, kb, _, _)| ia == ib && ka == kb);
    entries.into()
}

/// The index entries of one row: `value ++ partition ++ task ++ sort key` per value.
fn entries_of_row<S: Schema>(
    task: &[u8; 8],
    partition: Ident,
    rows: &[crate::chunk::Row],
    row_index: usize,
    storage: &S::Storage,
    out: &mut Vec<IndexEntry>,
) {
    use crate::schema::RecordStorage;
    let row = &rows[row_index];
    S::index_values(storage.get(row.handle), &mut |index, value| {
        let mut bytes = Vec::with_capacity(32 + row.key.len());
        value.encode_index_value(&mut bytes);
        bytes.extend_from_slice(&partition.raw().to_be_bytes());
        bytes.extend_from_slice(task);
        bytes.extend_from_slice(row.key.as_bytes());
        // Row counts were checked to fit in u32 before the chunk was built.
        out.push((index, IndexKey::new(SortKey::from_encoded(&bytes)), partition, row_index as u32));
    });
}

/// The index hit of one of `chunk`'s entries.
pub(crate) fn hit_of<S: Schema>(chunk: &Arc<Chunk<S>>, partition: Ident, row: u32) -> IndexHit<S> {
    let row = &chunk.rows[row as usize];
    IndexHit {
        partition,
        key: row.key.clone(),
        posting: Posting { chunk: Arc::clone(chunk), handle: row.handle },
    }
}
