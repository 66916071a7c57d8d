//! Snapshots: read-only views fixed at one clock value.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::database::Counters;
use crate::error::Result;
use crate::hash::{ChunkId, ContentHash, StableHasher};
use crate::ident::{Ident, TaskId};
use crate::incremental::read_set::ReadEntry;
use crate::key::IntoSortKey;
use crate::key::Start;
use crate::read::query::{IndexQuery, Query, QueryResults};
use crate::read::typed::{IndexHandle, TypedPartition, TypedQuery};
use crate::schema::Schema;
use crate::store::chunk::Chunk;
use crate::store::index::Posting;
use crate::store::state::State;

/// A consistent view of the database at one clock value.
///
/// It sees, for every task, the newest version committed at or before its clock, and
/// nothing of later commits — not even part of one. Taking one is O(1) and never waits
/// for writers; while it is alive, every chunk it can see stays in memory.
pub struct Snapshot<S: Schema> {
    pub(crate) state: Arc<State<S>>,
    pub(crate) counters: Arc<Counters>,
}

impl<S: Schema> Snapshot<S> {
    pub(crate) fn new(state: Arc<State<S>>, counters: Arc<Counters>) -> Self {
        counters.open_snapshots.fetch_add(1, Ordering::Relaxed);
        Snapshot { state, counters }
    }

    /// The clock value this snapshot is fixed at.
    #[must_use]
    pub fn clock(&self) -> u64 {
        self.state.clock
    }

    /// Starts a query on one partition; refine it with a key condition, then
    /// [`execute`](Query::execute) or [`iter`](Query::iter) it.
    pub fn query(&self, partition: Ident) -> Query<'_, S> {
        Query::new(self, None, partition)
    }

    /// Starts a query on a typed partition: its conditions take only keys and
    /// prefixes of the partition's layout.
    pub fn partition<P: TypedPartition<Schema = S>>(&self, partition: P) -> TypedQuery<'_, P> {
        let _ = partition;
        TypedQuery::new(self.query(P::KEY))
    }

    /// Looks records up through a secondary index.
    pub fn index<V: ?Sized>(&self, index: IndexHandle<S, V>) -> IndexQuery<'_, S, V> {
        IndexQuery::new(self, None, index)
    }

    /// The records under exactly `key` (one per task that wrote the key).
    ///
    /// # Errors
    /// [`Error::UnknownPartition`](crate::Error::UnknownPartition) or
    /// [`Error::BadSortKey`](crate::Error::BadSortKey) for a closed schema.
    pub fn get(&self, partition: Ident, key: impl IntoSortKey) -> Result<QueryResults<'_, S>> {
        crate::read::query::get(self, None, partition, key)
    }

    /// Looks up many (partition, key) pairs at once; one result set per pair, in the
    /// order given.
    ///
    /// # Errors
    /// As [`get`](Self::get), for the first pair that is malformed; every pair is
    /// checked before any is looked up.
    pub fn batch_get<K: IntoSortKey>(
        &self,
        pairs: impl IntoIterator<Item = (Ident, K)>,
    ) -> Result<Vec<QueryResults<'_, S>>> {
        crate::read::query::batch_get(self, None, pairs)
    }

    /// The records under exactly `key` of a typed partition: [`get`](Self::get)
    /// taking only the partition's own key type.
    ///
    /// # Errors
    /// None for a key of the partition's type; the `Result` matches [`get`](Self::get).
    pub fn get_typed<P: TypedPartition<Schema = S>>(
        &self,
        partition: P,
        key: P::Key,
    ) -> Result<QueryResults<'_, S>> {
        let _ = partition;
        self.get(P::KEY, key)
    }

    /// Looks up many keys of one typed partition at once; one result set per key, in
    /// the order given: [`batch_get`](Self::batch_get) taking only the partition's own
    /// key type.
    ///
    /// # Errors
    /// As [`batch_get`](Self::batch_get).
    pub fn batch_get_typed<P: TypedPartition<Schema = S>>(
        &self,
        partition: P,
        keys: impl IntoIterator<Item = P::Key>,
    ) -> Result<Vec<QueryResults<'_, S>>> {
        let _ = partition;
        self.batch_get(keys.into_iter().map(|key| (P::KEY, key)))
    }

    /// A hash of what `read` returns in this snapshot: every record in its range
    /// (of its partition, or of the secondary index it was made through), with its key
    /// and task. Equal hashes on two snapshots mean the query would return the same
    /// results on both; a driver or a test can use it to check that a re-run was
    /// needed.
    #[must_use]
    pub fn results_hash(&self, read: &ReadEntry) -> ContentHash {
        let range = read.range();
        let mut hasher = StableHasher::new();
        let mut add = |key: &[u8], posting: &Posting<S>| {
            hasher.write_bytes(key);
            hasher.write_u64(posting.task().ident().raw());
            posting.chunk.hash_record(posting.row as usize, &mut hasher);
        };
        if let Some(index) = self.state.partitions.get(&read.partition()) {
            let mut scan = index.scan_from(Start::At(range.start()));
            while let Some((key, postings)) = scan.next().filter(|(key, _)| range.contains(key)) {
                postings.as_slice().iter().for_each(|posting| add(key, posting));
            }
        } else if let Some(index) = self.state.indexes.get(&read.partition()) {
            let mut scan = index.scan_from(range.start());
            while let Some((key, hit)) = scan.next().filter(|(key, _)| range.contains(key)) {
                add(key, &hit.posting);
            }
        }
        hasher.finish()
    }

    /// The current chunk of `task` in this snapshot.
    #[must_use]
    pub fn task_chunk(&self, task: impl Into<TaskId>) -> Option<&Arc<Chunk<S>>> {
        self.state.tasks.get(&task.into()).map(|version| &version.chunk)
    }

    /// The clock value at which `task`'s visible version was committed.
    #[must_use]
    pub fn task_committed_at(&self, task: impl Into<TaskId>) -> Option<u64> {
        self.state.tasks.get(&task.into()).map(|version| version.committed_at)
    }

    /// A chunk visible in this snapshot, by id.
    #[must_use]
    pub fn chunk(&self, id: ChunkId) -> Option<&Arc<Chunk<S>>> {
        self.state.chunks.get(&id)
    }

    /// The tasks with a version in this snapshot, in task-id order.
    pub fn tasks(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.state.tasks.keys()
    }

    /// The partitions holding records in this snapshot, in partition-key order.
    #[must_use]
    pub fn partitions(&self) -> Vec<Ident> {
        self.state.partitions.keys().collect()
    }

    /// Number of records in a partition.
    #[must_use]
    pub fn partition_len(&self, partition: Ident) -> usize {
        self.state.partitions.get(&partition).map_or(0, |index| index.len())
    }

    /// Number of records in all partitions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.state.records
    }

    /// Whether the snapshot holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.state.records == 0
    }
}

impl<S: Schema> Clone for Snapshot<S> {
    fn clone(&self) -> Self {
        Snapshot::new(Arc::clone(&self.state), Arc::clone(&self.counters))
    }
}

impl<S: Schema> Drop for Snapshot<S> {
    fn drop(&mut self) {
        self.counters.open_snapshots.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: Schema> fmt::Debug for Snapshot<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("clock", &self.state.clock)
            .field("tasks", &self.state.tasks.len())
            .field("records", &self.state.records)
            .finish()
    }
}
