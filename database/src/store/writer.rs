//! Writing a chunk: a task inserts records into a writer, then commits it.

use std::sync::Arc;

use rayon::slice::ParallelSliceMut;

use crate::database::{Commit, Database};
use crate::error::{Error, Result};
use crate::hash::{ChunkId, ContentHash, StableHasher};
use crate::ident::{Ident, TaskId};
use crate::incremental::invalidation::Run;
use crate::incremental::read_set::ReadEntry;
use crate::key::{IntoSortKey, SortKey};
use crate::read::typed::{Holds, TypedPartition};
use crate::schema::{self, RecordHandle, RecordStorage, Schema, StorageBuilder};
use crate::store::chunk::{Chunk, ChunkReads, LiveCount, PackedHandle, PartitionSlice, Row};
use crate::store::records::Records;

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
    /// The run whose reads were added, if any (the earliest, when several were).
    run: Option<Run>,
    spawned: Vec<TaskId>,
    builder: BuilderOf<S>,
    /// The inserted keys, concatenated in insertion order.
    keys: Vec<u8>,
    rows: Vec<Pending>,
}

/// An inserted record: its partition, where its key lies in the writer's key bytes,
/// and its handle in the storage being built.
#[derive(Clone, Copy)]
struct Pending {
    partition: Ident,
    key: (usize, usize),
    handle: RecordHandle,
}

impl<S: Schema> ChunkWriter<S> {
    pub(crate) fn new(db: Database<S>, task: TaskId) -> Self {
        ChunkWriter {
            db,
            task,
            parent: None,
            declared: Vec::new(),
            reads: Vec::new(),
            run: None,
            spawned: Vec::new(),
            builder: BuilderOf::<S>::default(),
            keys: Vec::new(),
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
        let record = record.into();
        let start = self.keys.len();
        key.with_encoded(|bytes| self.keys.extend_from_slice(bytes));
        let fits = match schema::partition_def::<S>(partition) {
            Ok(Some(def)) => schema::check_kind::<S>(def, S::kind_of(&record))
                .and_then(|()| schema::check_key_shape(def, &self.keys[start..], shape, false)),
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = fits {
            self.keys.truncate(start);
            return Err(error);
        }
        let handle = self.builder.push(record);
        self.rows.push(Pending { partition, key: (start, self.keys.len()), handle });
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

    /// Adds the reads `run` made on its snapshot.
    pub(crate) fn add_reads(&mut self, reads: Vec<ReadEntry>, run: Run) {
        self.reads.extend(reads);
        if self.run.as_ref().is_none_or(|earliest| run.stamp().clock < earliest.stamp().clock) {
            self.run = Some(run);
        }
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
        let ChunkWriter { db, task, parent, mut declared, reads, run, spawned, builder, keys, mut rows } =
            self;
        let key = |row: &Pending| &keys[row.key.0..row.key.1];
        let order = |a: &Pending, b: &Pending| a.partition.cmp(&b.partition).then_with(|| key(a).cmp(key(b)));
        // Very large chunks (a generated file, a bulk load) sort on every core.
        if rows.len() >= PARALLEL_SORT_FROM && rayon::current_num_threads() > 1 {
            rows.par_sort_unstable_by(order);
        } else {
            rows.sort_unstable_by(order);
        }
        if let Some(pair) = rows.windows(2).find(|pair| order(&pair[0], &pair[1]).is_eq()) {
            let key = SortKey::from_encoded(key(&pair[0]));
            return Err(Error::DuplicateSortKey { task, partition: pair[0].partition, key });
        }
        // Rows and key offsets are u32 inside a chunk, which keeps its rows small.
        if u32::try_from(rows.len()).is_err() || u32::try_from(keys.len()).is_err() {
            return Err(Error::TooManyRecords { task, records: rows.len() });
        }
        let handles = rows
            .iter()
            .map(|row| {
                PackedHandle::pack::<S::Storage>(row.handle).ok_or_else(|| Error::TooManyRecordsOfKind {
                    task,
                    kind: S::kind_name(row.handle.kind),
                    most: PackedHandle::most_per_kind::<S::Storage>(),
                    kinds: S::record_kinds().len(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (partitions, output_hash) = hash_partitions(
            &rows,
            |row| row.partition,
            key,
            |row, hasher| builder.hash_record(row.handle, hasher),
        );
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
        // The task's current chunk is this one (a source re-submitted unchanged, as a
        // restart does with the whole workspace): a chunk is its id's content, so
        // publish that one rather than archive the same records again. Publishing
        // checks the current version afresh, under the commit lock.
        if let Some(current) = db.current_chunk(task).filter(|current| current.id == id) {
            return Ok(Commit { chunk: current, declared, run, spawned });
        }

        let archive = builder.finish().to_archive().map_err(|reason| Error::Unarchivable { task, reason })?;
        let records = Records::<S::Storage>::built(archive);
        // Built records are valid by construction: this never fails.
        let archived = records.archive(&[]).map_err(|reason| Error::Unarchivable { task, reason })?;
        // The keys in row order, in one allocation.
        let mut sorted_keys = Vec::with_capacity(keys.len());
        let rows: Box<[Row]> = rows
            .iter()
            .zip(handles)
            .map(|(row, handle)| {
                sorted_keys.extend_from_slice(key(row));
                Row { key_end: sorted_keys.len() as u32, handle }
            })
            .collect();
        let keys: Box<[u8]> = sorted_keys.into();

        let indexed = if S::indexes().is_empty() {
            None
        } else {
            crate::store::secondary::entries_of::<S>(task, &partitions, &keys, &rows, archived)?
        };
        let mut chunk = Chunk {
            id,
            task,
            parent,
            output_hash,
            dependencies: dependencies.into(),
            keys,
            rows,
            partitions: partitions.into(),
            records,
            reads: ChunkReads::Built(reads.into()),
            indexed,
            heap_bytes: 0,
            _live: LiveCount::new(db.live_chunk_counter()),
        };
        chunk.heap_bytes = chunk.estimate_heap_bytes();
        Ok(Commit { chunk: Arc::new(chunk), declared, run, spawned })
    }
}

/// Splits sorted rows into per-partition slices, each with the hash of its keys and
/// records, and hashes the slices into the chunk's output hash.
pub(crate) fn hash_partitions<'k, R>(
    rows: &[R],
    partition_of: impl Fn(&R) -> Ident,
    key: impl Fn(&R) -> &'k [u8],
    hash_record: impl Fn(&R, &mut StableHasher),
) -> (Vec<PartitionSlice>, ContentHash) {
    let mut slices = Vec::new();
    let mut output = StableHasher::new();
    let mut start = 0;
    while start < rows.len() {
        let partition = partition_of(&rows[start]);
        let end = start + rows[start..].iter().take_while(|row| partition_of(row) == partition).count();
        let mut hasher = StableHasher::new();
        hasher.write_len(end - start);
        for row in &rows[start..end] {
            hasher.write_bytes(key(row));
            hash_record(row, &mut hasher);
        }
        let hash = hasher.finish();
        output.write_u64(partition.raw());
        output.write_u128(hash.raw());
        // Row counts were checked to fit in u32 before the chunk was built.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Database;
    use crate::reference::{DIAGNOSTICS, Diagnostic, Function, Module, RefLang, SYMBOLS, TextLang};

    /// The output hash of `chunk` computed again from its archived records, the way a
    /// reader of the archive would.
    fn archived_output_hash<S: Schema>(chunk: &Chunk<S>) -> (Vec<PartitionSlice>, ContentHash) {
        let archived = chunk.records.archive(&chunk.rows).expect("a built chunk is valid");
        let rows: Vec<(Ident, usize)> = chunk
            .partitions
            .iter()
            .flat_map(|slice| slice.range().map(|row| (slice.partition, row)))
            .collect();
        hash_partitions(
            &rows,
            |(partition, _)| *partition,
            |(_, row)| chunk.key(*row),
            |(_, row), hasher| {
                S::Storage::hash_record(archived, chunk.rows[*row].handle.unpack::<S::Storage>(), hasher)
            },
        )
    }

    #[test]
    fn owned_and_archived_records_hash_alike() {
        let db = Database::<RefLang>::new();
        let mut writer = db.writer("parse:a.rs");
        let file = Ident::new("a.rs");
        writer.insert(SYMBOLS, (file, "a"), Module::new("a", &["f", "g"])).expect("insert");
        writer.insert(SYMBOLS, (file, "a::f"), Function::new("f", &["u32"], Some("bool"))).expect("insert");
        writer.insert(SYMBOLS, (file, "a::g"), Function::new("g", &[], None)).expect("insert");
        let warning = Diagnostic { message: "unused\0here".into(), severity: 1, line: 3 };
        writer.insert(DIAGNOSTICS, (file, 1u8, 0u32), warning).expect("insert");
        writer.commit().expect("commit");
        let chunk = db.current_chunk(TaskId::new("parse:a.rs")).expect("committed");
        let (partitions, output_hash) = archived_output_hash(&chunk);
        assert_eq!(output_hash, chunk.output_hash);
        assert_eq!(partitions, chunk.partitions.to_vec());

        let text = Database::<TextLang>::new();
        let mut writer = text.writer("notes");
        for (at, note) in ["", "one", "two\0three"].into_iter().enumerate() {
            writer.insert(Ident::new("notes"), at as u32, note.to_owned()).expect("insert");
        }
        writer.commit().expect("commit");
        let chunk = text.current_chunk(TaskId::new("notes")).expect("committed");
        assert_eq!(archived_output_hash(&chunk).1, chunk.output_hash);
    }

    #[test]
    fn re_committing_the_current_chunk_changes_nothing() {
        let db = Database::<TextLang>::new();
        let commit = |text: &str| {
            let mut writer = db.writer("source:a.rs");
            writer.insert(Ident::new("sources"), 0u32, text.to_owned()).expect("insert");
            writer.commit().expect("commit")
        };
        let first = commit("fn main() {}");
        let current = db.current_chunk(TaskId::new("source:a.rs")).expect("committed");
        let again = commit("fn main() {}");
        assert!(first.stored && !again.stored && !again.output_changed);
        assert_eq!(again.chunk, first.chunk);
        assert!(Arc::ptr_eq(&current, &db.current_chunk(TaskId::new("source:a.rs")).expect("still there")));
        let changed = commit("fn main() { run() }");
        assert!(changed.stored && changed.output_changed);
        assert_eq!(
            db.snapshot().get(Ident::new("sources"), 0u32).expect("valid").first().map(|hit| hit.record()),
            Some("fn main() { run() }")
        );
    }
}
