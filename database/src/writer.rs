//! Writing a chunk: a task inserts records into a writer, then commits it.

use std::sync::Arc;

use rayon::slice::ParallelSliceMut;

use crate::chunk::{Chunk, LiveCount, PartitionSlice, Row};
use crate::database::{Commit, Database};
use crate::error::{Error, Result};
use crate::hash::{ChunkId, ContentHash, StableHasher};
use crate::ident::{Ident, TaskId};
use crate::key::IntoSortKey;
use crate::read_set::ReadEntry;
use crate::schema::{self, RecordStorage, Schema, StorageBuilder};
use crate::typed::{Holds, TypedPartition};

/// Chunks with at least this many records sort them in parallel.
const PARALLEL_SORT_FROM: usize = 1 << 16;

type BuilderOf<S> = <<S as Schema>::Storage as RecordStorage>::Builder;

/// Collects the records of one task run; [`commit`](ChunkWriter::commit) turns them
/// into a chunk that becomes the task's current version.
///
/// Inserts are checked against the schema as they happen, so a mistake is reported at
/// the line that made it (a repeated key, which needs all keys to see, at commit);
/// nothing reaches the database before `commit`, and a failed commit changes nothing.
pub struct ChunkWriter<S: Schema> {
    db: Database<S>,
    task: TaskId,
    parent: Option<TaskId>,
    declared: Vec<ChunkId>,
    reads: Vec<ReadEntry>,
    read_at: Option<u64>,
    spawned: Vec<TaskId>,
    builder: BuilderOf<S>,
    rows: Vec<(Ident, Row)>,
}

impl<S: Schema> ChunkWriter<S> {
    pub(crate) fn new(db: Database<S>, task: TaskId) -> Self {
        ChunkWriter {
            db,
            task,
            parent: None,
            declared: Vec::new(),
            reads: Vec::new(),
            read_at: None,
            spawned: Vec::new(),
            builder: BuilderOf::<S>::default(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn database(&self) -> &Database<S> {
        &self.db
    }

    /// The task this writer writes for.
    #[must_use]
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// Sets the task that spawned this one. A chunk with a parent is derived data; a
    /// chunk without one is an entry (a source) and a root for garbage collection.
    pub fn set_parent(&mut self, parent: TaskId) -> &mut Self {
        self.parent = Some(parent);
        self
    }

    /// Declares a dependency on a chunk. Checked at commit: it must be a current chunk.
    pub fn depend_on(&mut self, chunk: ChunkId) -> &mut Self {
        self.declared.push(chunk);
        self
    }

    /// Number of records inserted so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing has been inserted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Inserts a record under `partition` and `key`. (A key inserted twice into one
    /// partition is reported by [`commit`](Self::commit), which sees all the keys.)
    ///
    /// # Errors
    /// [`Error::UnknownPartition`], [`Error::RecordNotAllowed`] or
    /// [`Error::BadSortKey`] when the schema declares partitions and the insert does
    /// not fit them. The writer is unchanged by a failed insert.
    pub fn insert(
        &mut self,
        partition: Ident,
        key: impl IntoSortKey,
        record: impl Into<S::Record>,
    ) -> Result<()> {
        let shape = key.key_shape();
        let key = key.into_sort_key();
        let record = record.into();
        if let Some(def) = schema::partition_def::<S>(partition)? {
            schema::check_kind::<S>(def, S::kind_of(&record))?;
            schema::check_key_shape(def, key.as_bytes(), shape, false)?;
        }
        let handle = self.builder.push(record);
        self.rows.push((partition, Row { key, handle }));
        Ok(())
    }

    /// Inserts a record into a typed partition: the record kind must be one the
    /// partition holds and the key must be the partition's key type, both checked at
    /// compile time.
    ///
    /// # Errors
    /// Only what the types cannot rule out: see [`insert`](Self::insert).
    pub fn put<P, R>(&mut self, partition: P, key: P::Key, record: R) -> Result<()>
    where
        P: TypedPartition<Schema = S> + Holds<R>,
        R: Into<S::Record>,
    {
        let _ = partition;
        self.insert(P::KEY, key, record)
    }

    /// Adds the reads a run made on the snapshot at clock `read_at`.
    pub(crate) fn add_reads(&mut self, reads: Vec<ReadEntry>, read_at: u64) {
        self.reads.extend(reads);
        self.read_at = Some(self.read_at.map_or(read_at, |at| at.min(read_at)));
    }

    /// Asks for `child` to exist: when this version is committed and `child` has no
    /// version yet, it is scheduled (see [`Database::schedule`]) with this task as its
    /// parent, so a [`Driver`](crate::Driver) runs it next.
    pub fn spawn(&mut self, child: impl Into<TaskId>) -> &mut Self {
        self.spawned.push(child.into());
        self
    }

    /// Commits the records as the task's new version and returns what changed.
    ///
    /// # Errors
    /// [`Error::DuplicateSortKey`] if one key was inserted twice into a partition,
    /// [`Error::UnknownDependency`] if a declared dependency is not a current chunk,
    /// [`Error::TooManyRecords`] past `u32::MAX` records. On error the database is
    /// unchanged.
    pub fn commit(self) -> Result<crate::CommitReceipt> {
        let db = self.db.clone();
        db.publish(self.build()?)
    }

    /// Freezes the records into a chunk (sorting, hashing, addressing) without
    /// touching the database, so this work runs outside the commit lock.
    pub(crate) fn build(self) -> Result<Commit<S>> {
        let ChunkWriter { db, task, parent, mut declared, reads, read_at, spawned, builder, mut rows } = self;
        let order =
            |(pa, a): &(Ident, Row), (pb, b): &(Ident, Row)| pa.cmp(pb).then_with(|| a.key.cmp(&b.key));
        // Very large chunks (a generated file, a bulk load) sort on every core.
        if rows.len() >= PARALLEL_SORT_FROM && rayon::current_num_threads() > 1 {
            rows.par_sort_unstable_by(order);
        } else {
            rows.sort_unstable_by(order);
        }
        if let Some(pair) =
            rows.windows(2).find(|pair| pair[0].0 == pair[1].0 && pair[0].1.key == pair[1].1.key)
        {
            return Err(Error::DuplicateSortKey { task, partition: pair[0].0, key: pair[0].1.key.clone() });
        }
        if u32::try_from(rows.len()).is_err() {
            return Err(Error::TooManyRecords { task, records: rows.len() });
        }
        let storage = builder.finish();
        let (partitions, output_hash) = hash_partitions(&rows, &storage);

        declared.sort_unstable();
        declared.dedup();
        let mut dependencies: Vec<ChunkId> = reads
            .iter()
            .flat_map(|read| read.chunks().iter().copied())
            .chain(declared.iter().copied())
            .collect();
        dependencies.sort_unstable();
        dependencies.dedup();

        let id = ChunkId::compute(task, output_hash, ChunkId::inputs_hash(parent, &dependencies, &reads));
        let rows: Box<[Row]> = rows.into_iter().map(|(_, row)| row).collect();
        let index_entries = if S::indexes().is_empty() {
            Box::default()
        } else {
            crate::secondary::entries_of::<S>(task, &partitions, &rows, &storage)
        };
        let mut chunk = Chunk {
            id,
            task,
            parent,
            output_hash,
            dependencies: dependencies.into(),
            rows,
            partitions: partitions.into(),
            storage,
            reads: reads.into(),
            index_entries,
            heap_bytes: 0,
            _live: LiveCount::new(db.live_chunk_counter()),
        };
        chunk.heap_bytes = chunk.estimate_heap_bytes();
        Ok(Commit { chunk: Arc::new(chunk), declared, read_at, spawned })
    }
}

/// Splits sorted rows into per-partition slices, each with the hash of its keys and
/// records, and hashes the slices into the chunk's output hash.
fn hash_partitions<T: RecordStorage>(
    rows: &[(Ident, Row)],
    storage: &T,
) -> (Vec<PartitionSlice>, ContentHash) {
    let mut slices = Vec::new();
    let mut output = StableHasher::new();
    let mut start = 0;
    while start < rows.len() {
        let partition = rows[start].0;
        let end = start + rows[start..].iter().take_while(|(p, _)| *p == partition).count();
        let mut hasher = StableHasher::new();
        hasher.write_len(end - start);
        for (_, row) in &rows[start..end] {
            hasher.write_bytes(row.key.as_bytes());
            storage.hash_record(row.handle, &mut hasher);
        }
        let hash = hasher.finish();
        output.write_u64(partition.raw());
        output.write_u128(hash.raw());
        // Chunks are far below 4 billion records; the writer cannot produce more rows
        // than it has memory for, and u32 keeps index entries small.
        slices.push(PartitionSlice { partition, hash, rows: (start as u32, end as u32) });
        start = end;
    }
    (slices, output.finish())
}

impl<S: Schema> std::fmt::Debug for ChunkWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkWriter")
            .field("task", &self.task)
            .field("parent", &self.parent)
            .field("records", &self.rows.len())
            .finish_non_exhaustive()
    }
}
