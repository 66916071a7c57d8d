//! The chunkdb runtime: an in-memory, content-addressed database of task outputs for
//! incremental compilers and language servers.
//!
//! - A **task** (with a stable [`TaskId`]) writes records through a [`ChunkWriter`]
//!   or a [`TaskContext`]; its commit becomes an immutable [`Chunk`] addressed by a
//!   [`ChunkId`] and supersedes the task's previous version.
//! - Records live under a partition key ([`Ident`]) and a [`SortKey`] whose byte order
//!   is the order of its typed components.
//! - A [`Snapshot`] is a consistent view at one clock value; [`Query`] answers exact,
//!   prefix and range conditions from it in key order, at a cost that does not grow
//!   with the number of chunks.
//! - A [`TaskContext`] records what every query read ([`ReadEntry`]), which is what
//!   invalidation builds on.
//!
//! Most users depend on the `chunkdb` facade and declare their language with
//! `chunk_schema!`; [`reference`](mod@reference) shows the traits implemented by hand.

#![deny(missing_docs)]

mod consistency;
mod database;
mod error;
mod gc;
mod hash;
mod ident;
mod incremental;
mod key;
pub mod persist;
mod read;
pub mod reference;
mod schema;
mod stats;
mod store;

pub use database::{CommitReceipt, Database};
pub use error::{DamagedChunk, Error, Result};
pub use gc::{GcPolicy, GcProgress, GcStats};
pub use hash::{ChunkId, ContentHash, StableHash, StableHasher};
pub use ident::{Ident, TaskId};
pub use incremental::context::TaskContext;
pub use incremental::driver::{DriveError, DriveReport, Driver};
pub use incremental::read_set::ReadEntry;
pub use incremental::subscription::Subscription;
pub use key::{
    IntoKeyPrefix, IntoSortKey, KeyBuilder, KeyField, KeyPart, KeyPartKind, KeyPrefix, KeyRange, KeyShape,
    KeyValue, SortKey, SortKeyRef, decode_key, describe_layout,
};
pub use persist::OpenOptions;
pub use read::exec::{
    EXPLORE_RUNS, Execution, PARALLEL_FROM, QueryKind, RECHECK_EVERY, SEQUENTIAL_BELOW, ShapeDecision,
};
pub use read::query::{Hit, Hits, IndexQuery, Query, QueryResults, RecordMeta, ResultsIter};
pub use read::snapshot::Snapshot;
pub use read::typed::{Holds, IndexHandle, PrefixOf, TypedPartition, TypedQuery};
/// The archive format persisted chunks are written in (rkyv 0.8), re-exported so a
/// field type of your own can derive `Archive`, `Serialize` and `Deserialize` with
/// the same version: `#[derive(chunkdb::rkyv::Archive, …)] #[rkyv(crate = chunkdb::rkyv)]`.
pub use rkyv;
pub use schema::{
    ArchiveBytes, IndexDef, PartitionDef, RecordHandle, RecordKind, RecordOf, RecordRefOf, RecordStorage,
    Schema, StorageBuilder, owned_record,
};
pub use stats::{PartitionStats, Stats};
pub use store::chunk::{Chunk, PartitionSlice};
pub use store::secondary::IndexValue;
pub use store::writer::ChunkWriter;
