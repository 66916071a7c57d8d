//! Errors: every misuse a caller can make at run time, each saying what was wrong and
//! what to do. A failed operation leaves the database exactly as it was.

use std::path::PathBuf;

use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::key::SortKey;

/// An error from writing to or querying a chunkdb database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A partition key the schema does not declare.
    #[error(
        "unknown partition {partition} in schema `{schema}`: it declares {known}; \
         use one of those partition keys, or declare this partition in the schema"
    )]
    UnknownPartition {
        /// The partition key used.
        partition: Ident,
        /// The schema's name.
        schema: &'static str,
        /// The declared partitions, for the message.
        known: String,
    },

    /// A record kind the partition does not hold.
    #[error(
        "partition `{partition}` does not hold `{kind}` records (it holds {allowed}); \
         insert the record into a partition that holds `{kind}`, or add `{kind}` to this \
         partition's record list in the schema"
    )]
    RecordNotAllowed {
        /// The partition's declared name.
        partition: &'static str,
        /// The record kind inserted.
        kind: &'static str,
        /// The kinds the partition holds, for the message.
        allowed: String,
    },

    /// A sort key (or prefix) that does not match the partition's declared layout.
    #[error(
        "sort key {key:?} does not fit partition `{partition}`, whose keys are {layout}: \
         {reason}; build keys as a tuple of exactly these components, in this order"
    )]
    BadSortKey {
        /// The partition's declared name.
        partition: &'static str,
        /// The offending key or prefix bytes.
        key: SortKey,
        /// The declared layout, for the message.
        layout: String,
        /// What exactly does not fit.
        reason: String,
    },

    /// One writer inserted the same sort key twice into one partition.
    #[error(
        "task {task} inserted sort key {key:?} twice into partition {partition}; a chunk \
         holds one record per key in a partition: add a distinguishing component (such as \
         a sequence number) to the key"
    )]
    DuplicateSortKey {
        /// The writing task.
        task: TaskId,
        /// The partition.
        partition: Ident,
        /// The repeated key.
        key: SortKey,
    },

    /// A chunk with more than one chunk can address: 4,294,967,295 records, or 4 GiB
    /// of sort keys (or of secondary-index keys).
    #[error(
        "task {task} wrote {records} records into one chunk, more than one chunk can address \
         (4,294,967,295 records and 4 GiB of keys): split the work over several tasks"
    )]
    TooManyRecords {
        /// The writing task.
        task: TaskId,
        /// How many records it wrote.
        records: usize,
    },

    /// A chunk with more records of one kind than a chunk of its schema can address:
    /// a row packs the record's kind and its place in the kind's column in 32 bits, the
    /// kind taking as few bits as the schema's kinds need.
    #[error(
        "task {task} wrote more than {most} `{kind}` records into one chunk, more than a \
         chunk of a schema with {kinds} record kinds can address: split the work over \
         several tasks"
    )]
    TooManyRecordsOfKind {
        /// The writing task.
        task: TaskId,
        /// The record kind.
        kind: &'static str,
        /// Most records of one kind a chunk of this schema holds.
        most: u64,
        /// Record kinds of the schema.
        kinds: usize,
    },

    /// A declared dependency on a chunk that is not in the database.
    #[error(
        "task {task} depends on chunk {chunk}, which is not a current chunk of this \
         database (never committed, or superseded or removed since): re-run the task on a \
         fresh snapshot, or take dependencies from a TaskContext, which records them as \
         it reads"
    )]
    UnknownDependency {
        /// The writing task.
        task: TaskId,
        /// The missing chunk.
        chunk: ChunkId,
    },

    /// [`Database::check_consistency`](crate::Database::check_consistency) found an
    /// index that disagrees with the current versions: a bug in chunkdb.
    #[error(
        "chunkdb's indexes are inconsistent: {detail}; this is a bug in chunkdb, please \
         report it with the operations that led here"
    )]
    Inconsistent {
        /// What disagrees.
        detail: String,
    },

    /// Verify mode ran a task twice on the same inputs and got different outputs.
    #[error(
        "task {task} is not deterministic: run twice on the same snapshot it wrote different \
         output ({difference}); incremental reuse needs a task's output to depend on its \
         reads alone: look for iteration over a HashMap or HashSet, timestamps, random \
         numbers or addresses in what it writes"
    )]
    Nondeterministic {
        /// The task.
        task: TaskId,
        /// The first record that differs, described.
        difference: String,
    },

    /// Reading or writing a persisted directory failed in the operating system.
    #[error(
        "could not {operation} {path}: {message} ({kind:?}); check that the directory \
         exists, is writable by this process and that its disk is not full, then retry"
    )]
    Io {
        /// What chunkdb was doing (`write segment`, `rename manifest`, …).
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error kind.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        message: String,
    },

    /// The directory was written under another schema declaration.
    #[error(
        "{path} holds chunks of schema fingerprint {found:016x}, but schema `{schema}` is \
         {expected:016x} now: its records may not read back the same; open another \
         directory, or delete this one to start cold (nothing in it is usable by this schema)"
    )]
    SchemaMismatch {
        /// The directory (or file) checked.
        path: PathBuf,
        /// The schema's name.
        schema: &'static str,
        /// The fingerprint found on disk.
        found: u64,
        /// The schema's fingerprint now.
        expected: u64,
    },

    /// The directory was written by a chunkdb with another on-disk format.
    #[error(
        "{path} is in on-disk format {found}, and this chunkdb reads format {supported}: \
         open it with the chunkdb that wrote it, or delete it to start cold"
    )]
    FormatMismatch {
        /// The file checked.
        path: PathBuf,
        /// The format version found.
        found: u32,
        /// The format version this build reads and writes.
        supported: u32,
    },

    /// Another process (or another database in this one) has the directory open.
    #[error(
        "{path} is in use: another chunkdb database holds its lock file {lock:?}; close \
         that one first (two writers would corrupt each other), or use another directory"
    )]
    Locked {
        /// The directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },

    /// The manifest (the directory's table of contents) is unreadable.
    #[error(
        "the manifest {path} is damaged: {reason}; open with \
         `OpenOptions::discard_damaged(true)` to start from an empty database (every task \
         is recomputed), or restore the directory from a backup"
    )]
    CorruptManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Persisted chunks failed their checks (checksum, archive validation, layout).
    #[error(
        "{} persisted chunk(s) in {path} are damaged ({}); open with \
         `OpenOptions::discard_damaged(true)` to drop them and recompute their tasks",
        damaged.len(),
        describe_damage(damaged)
    )]
    Corrupt {
        /// The directory.
        path: PathBuf,
        /// Every damaged chunk, with its task and what is wrong.
        damaged: Vec<DamagedChunk>,
    },

    /// A chunk restored from disk whose records failed their check at first use
    /// (checksum, archive validation or rows): nothing of it was read.
    #[error(
        "the records of chunk {} of task {} are damaged on disk ({}); reopen the directory \
         with `OpenOptions::check_at_open(true)` and `discard_damaged(true)` to drop every \
         damaged chunk and recompute its task",
        damaged.chunk,
        damaged.task,
        damaged.reason
    )]
    DamagedRecords {
        /// The chunk, its task and what is wrong.
        damaged: DamagedChunk,
    },

    /// A record could not be archived at commit (a field type's own `Serialize`
    /// failed).
    #[error(
        "task {task} wrote a record that cannot be archived: {reason}; check the rkyv \
         `Serialize` implementation of the record's field types"
    )]
    Unarchivable {
        /// The writing task.
        task: TaskId,
        /// The serializer's message.
        reason: String,
    },
}

/// A persisted chunk that failed its checks, when its directory was opened or when
/// its records were first read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedChunk {
    /// The task whose current version it was.
    pub task: TaskId,
    /// The chunk.
    pub chunk: ChunkId,
    /// What is wrong with it.
    pub reason: String,
}

fn describe_damage(damaged: &[DamagedChunk]) -> String {
    let mut listed: Vec<String> = damaged
        .iter()
        .take(5)
        .map(|d| format!("chunk {} of task {}: {}", d.chunk, d.task, d.reason))
        .collect();
    if damaged.len() > listed.len() {
        listed.push(format!("and {} more", damaged.len() - listed.len()));
    }
    listed.join("; ")
}

impl Error {
    /// An operating-system error while doing `operation` on `path`.
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, error: &std::io::Error) -> Self {
        Error::Io { operation, path: path.into(), kind: error.kind(), message: error.to_string() }
    }
}

/// The result type of chunkdb operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
