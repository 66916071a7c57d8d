//! Secondary indexes: records looked up by the value of a field, maintained by the
//! runtime at every commit, atomically with the records themselves.
//!
//! An index is a persistent tree like a partition's, keyed by `value ++ partition ++
//! task ++ sort key` (fixed-width parts before the variable-length sort key, so the
//! composite is unambiguous), one entry per indexed record.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ident::{Ident, TaskId};
use crate::key::KeyPart;
use crate::schema::{RecordStorage, Schema};
use crate::store::block::Probe;
use crate::store::chunk::{Chunk, IndexEntries, IndexEntry, PartitionSlice, Row};
use crate::store::index::Posting;
use crate::store::tree::{Iter, Tree};

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

/// One indexed record: its partition and where it lives.
pub(crate) struct IndexHit<S: Schema> {
    pub(crate) partition: Ident,
    pub(crate) posting: Posting<S>,
}

impl<S: Schema> Clone for IndexHit<S> {
    fn clone(&self) -> Self {
        IndexHit { partition: self.partition, posting: self.posting.clone() }
    }
}

/// One secondary index.
pub(crate) struct SecondaryIndex<S: Schema> {
    tree: Tree<IndexHit<S>>,
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
    pub(crate) fn scan_from(&self, value: &[u8]) -> Iter<'_, IndexHit<S>> {
        self.tree.iter_from(Probe::at(value))
    }

    /// The index holding `entries`, sorted by composite key with none twice, built
    /// in one pass (a restart's).
    pub(crate) fn from_sorted(entries: Vec<(&[u8], IndexHit<S>)>) -> Self {
        SecondaryIndex { tree: Tree::from_sorted(entries) }
    }

    /// Applies sorted changes: `Some` sets an entry, `None` removes it.
    pub(crate) fn apply(&mut self, changes: &[(&[u8], Option<IndexHit<S>>)]) {
        self.tree.apply(changes, |(key, _)| key, |_, (_, hit)| hit.clone());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Heap bytes of the index's tree.
    pub(crate) fn bytes(&self) -> usize {
        self.tree.bytes()
    }
}

/// Chunks with at least this many records compute their index entries in parallel.
const PARALLEL_FROM: usize = 1 << 16;

/// Every index entry of a chunk being built (`None` if it has none). Very large chunks
/// compute and sort them on every core.
///
/// # Errors
/// [`Error::TooManyRecords`] when the entries' keys pass the 4 GiB a chunk can address.
pub(crate) fn entries_of<S: Schema>(
    task: TaskId,
    partitions: &[PartitionSlice],
    keys: &[u8],
    rows: &[Row],
    archived: &<S::Storage as RecordStorage>::Archived,
) -> Result<Option<Box<IndexEntries>>> {
    use rayon::prelude::*;
    let task_bytes = task.ident().raw().to_be_bytes();
    let row_entries = |slice: &PartitionSlice, row: usize| {
        let mut entries = Vec::new();
        entries_of_row::<S>(&task_bytes, slice.partition, keys, rows, row, archived, &mut entries);
        entries
    };
    let positions = || partitions.iter().flat_map(|slice| slice.range().map(move |row| (slice, row)));
    let order = |(ia, ka, _, _): &Unsorted, (ib, kb, _, _): &Unsorted| ia.cmp(ib).then_with(|| ka.cmp(kb));
    let mut entries: Vec<Unsorted> = if rows.len() >= PARALLEL_FROM && rayon::current_num_threads() > 1 {
        // Split by rows, not by partitions: a big chunk may hold a single partition.
        let positions: Vec<(&PartitionSlice, usize)> = positions().collect();
        let mut entries: Vec<Unsorted> =
            positions.par_iter().flat_map_iter(|&(slice, row)| row_entries(slice, row)).collect();
        entries.par_sort_by(order);
        entries
    } else {
        let mut entries: Vec<Unsorted> =
            positions().flat_map(|(slice, row)| row_entries(slice, row)).collect();
        entries.sort_by(order);
        entries
    };
    entries.dedup_by(|(ia, ka, _, _), (ib, kb, _, _)| ia == ib && ka == kb);
    if entries.is_empty() {
        return Ok(None);
    }
    let total: usize = entries.iter().map(|(_, key, _, _)| key.len()).sum();
    if u32::try_from(total).is_err() {
        return Err(Error::TooManyRecords { task, records: rows.len() });
    }
    let mut index_keys = Vec::with_capacity(total);
    let entries: Box<[IndexEntry]> = entries
        .into_iter()
        .map(|(index, key, partition, row)| {
            index_keys.extend_from_slice(&key);
            // Row counts were checked to fit in u32 before, the keys' total just now.
            IndexEntry { index, key_end: index_keys.len() as u32, row: row as u32, partition }
        })
        .collect();
    Ok(Some(Box::new(IndexEntries { entries, keys: index_keys.into() })))
}

/// An index entry before sorting: index, composite key, partition, row.
type Unsorted = (Ident, Vec<u8>, Ident, usize);

/// The index entries of one row: `value ++ partition ++ task ++ sort key` per value.
fn entries_of_row<S: Schema>(
    task: &[u8; 8],
    partition: Ident,
    keys: &[u8],
    rows: &[Row],
    row: usize,
    archived: &<S::Storage as RecordStorage>::Archived,
    out: &mut Vec<Unsorted>,
) {
    let key = crate::store::chunk::row_key(keys, rows, row);
    S::index_values(
        S::Storage::get(archived, rows[row].handle.unpack::<S::Storage>()),
        &mut |index, value| {
            let mut bytes = Vec::with_capacity(32 + key.len());
            value.encode_index_value(&mut bytes);
            bytes.extend_from_slice(&partition.raw().to_be_bytes());
            bytes.extend_from_slice(task);
            bytes.extend_from_slice(key);
            out.push((index, bytes, partition, row));
        },
    );
}

/// The index hit of one of `chunk`'s entries.
pub(crate) fn hit_of<S: Schema>(chunk: &Arc<Chunk<S>>, entry: &IndexEntry) -> IndexHit<S> {
    IndexHit { partition: entry.partition, posting: Posting::new(chunk, entry.row) }
}
