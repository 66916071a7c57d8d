//! Statistics: what the database holds, for monitoring and for the memory figures.

use crate::ident::Ident;

/// A picture of the database at one clock value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// The clock value (number of commits that changed the database).
    pub clock: u64,
    /// Tasks with a current version.
    pub tasks: usize,
    /// Current chunks (one per task).
    pub chunks: usize,
    /// Records in current chunks.
    pub records: usize,
    /// Approximate heap bytes of the current chunks (their records' storage as the
    /// schema reports it), of the partition and secondary indexes' trees, and of the
    /// maps of tasks and chunks.
    pub bytes: usize,
    /// Versions committed since the database was created.
    pub versions_committed: u64,
    /// Chunk objects in memory: the current ones plus superseded versions that open
    /// snapshots still hold. It counts objects, not ids: a chunk re-committed after
    /// it was superseded (an edit undone) is built anew, so while a snapshot holds
    /// the old object both count, though they share one [`ChunkId`](crate::ChunkId).
    /// [`chunks`](Self::chunks) counts the distinct current ids.
    pub chunks_in_memory: usize,
    /// Snapshots (and task contexts) currently open.
    pub open_snapshots: usize,
    /// Superseded states waiting to be freed: held by open snapshots, or released
    /// since the last commit (see [`Database::free_superseded`](crate::Database::free_superseded)).
    pub retired_states: usize,
    /// Tasks in the stale set (see [`Database::stale`](crate::Database::stale)).
    pub stale_tasks: usize,
    /// Reads of current task versions filed for invalidation.
    pub reads_tracked: usize,
    /// Subscriptions registered and not yet ready.
    pub subscriptions: usize,
    /// Garbage collection so far.
    pub gc: crate::gc::GcStats,
    /// The adaptive executor's decisions per measured query shape.
    pub execution: Vec<crate::read::exec::ShapeDecision>,
    /// Per-partition counts, in partition-key order.
    pub partitions: Vec<PartitionStats>,
}

/// Counts for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The partition key.
    pub partition: Ident,
    /// Records in the partition.
    pub records: usize,
    /// Chunks holding records of the partition.
    pub chunks: usize,
    /// Heap bytes of the partition's index tree: its keys, postings and nodes (not the
    /// shared lists of keys that several tasks write).
    pub index_bytes: usize,
}
