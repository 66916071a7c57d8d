//! Task contexts: one run of a task, whose queries are recorded as its reads.

use std::fmt;

use parking_lot::Mutex;

use crate::database::CommitReceipt;
use crate::error::Result;
use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::incremental::invalidation::Run;
use crate::incremental::read_set::{ReadEntry, ReadLog};
use crate::key::IntoSortKey;
use crate::read::query::{IndexQuery, Query, QueryResults};
use crate::read::snapshot::Snapshot;
use crate::read::typed::{Holds, IndexHandle, TypedPartition, TypedQuery};
use crate::schema::Schema;
use crate::store::writer::ChunkWriter;

/// One run of a task: a snapshot to read from and a writer for the output.
///
/// Every query made through the context is recorded as a [`ReadEntry`] (partition, key
/// range, chunks that supplied results). At [`commit`](TaskContext::commit) the chunks
/// read become the new chunk's dependencies and the read-set is stored with it, so the
/// database can later tell whether an edit changed anything this run saw. All queries
/// of one run see the same snapshot.
///
/// ```
/// use chunkdb_database::reference::{Diagnostic, RefLang, DIAGNOSTICS, SYMBOLS};
/// use chunkdb_database::{Database, Ident};
///
/// let db = Database::<RefLang>::new();
/// let file = Ident::named("a.rs");
/// let check = db.task("check:a.rs");
/// let symbols = check.query(SYMBOLS).begins_with((file,)).execute()?;
/// if symbols.is_empty() {
///     check.insert(DIAGNOSTICS, (file, 1u8, 0u32), Diagnostic::new("empty file", 1, 0))?;
/// }
/// assert_eq!(check.pending().len(), 1); // the symbols lookup found nothing: yet
/// drop(symbols);
/// let receipt = check.commit()?;
/// assert_eq!(db.snapshot().task_chunk(receipt.task).unwrap().reads().len(), 1);
/// # Ok::<(), chunkdb_database::Error>(())
/// ```
pub struct TaskContext<S: Schema> {
    snapshot: Snapshot<S>,
    /// Registers the run as in flight until its commit has been decided.
    run: Run,
    log: ReadLog,
    /// Behind a lock so a task can insert while it holds results borrowed from the
    /// context (and from several threads).
    writer: Mutex<ChunkWriter<S>>,
}

impl<S: Schema> TaskContext<S> {
    pub(crate) fn new((snapshot, run): (Snapshot<S>, Run), writer: ChunkWriter<S>) -> Self {
        TaskContext { snapshot, run, log: ReadLog::default(), writer: Mutex::new(writer) }
    }

    /// Another run of the same task on the same snapshot (verify mode).
    pub(crate) fn again(&self, writer: ChunkWriter<S>) -> Self {
        TaskContext::new((self.snapshot.clone(), self.run.again()), writer)
    }

    /// The task being run.
    #[must_use]
    pub fn task(&self) -> TaskId {
        self.writer.lock().task()
    }

    /// The snapshot this run reads. Queries made on it directly are *not* recorded;
    /// use [`query`](Self::query) for reads that the output depends on.
    #[must_use]
    pub fn snapshot(&self) -> &Snapshot<S> {
        &self.snapshot
    }

    /// Starts a recorded query on one partition.
    pub fn query(&self, partition: Ident) -> Query<'_, S> {
        Query::new(&self.snapshot, Some(&self.log), partition)
    }

    /// Starts a recorded query on a typed partition.
    pub fn partition<P: TypedPartition<Schema = S>>(&self, partition: P) -> TypedQuery<'_, P> {
        let _ = partition;
        TypedQuery::new(self.query(P::KEY))
    }

    /// Recorded lookups through a secondary index.
    pub fn index<V: ?Sized>(&self, index: IndexHandle<S, V>) -> IndexQuery<'_, S, V> {
        IndexQuery::new(&self.snapshot, Some(&self.log), index)
    }

    /// Recorded lookup of exactly `key`.
    ///
    /// # Errors
    /// As [`Snapshot::get`].
    pub fn get(&self, partition: Ident, key: impl IntoSortKey) -> Result<QueryResults<'_, S>> {
        crate::read::query::get(&self.snapshot, Some(&self.log), partition, key)
    }

    /// Recorded lookup of many (partition, key) pairs; one result set per pair.
    ///
    /// # Errors
    /// As [`Snapshot::batch_get`]; a failed batch records no read.
    pub fn batch_get<K: IntoSortKey>(
        &self,
        pairs: impl IntoIterator<Item = (Ident, K)>,
    ) -> Result<Vec<QueryResults<'_, S>>> {
        crate::read::query::batch_get(&self.snapshot, Some(&self.log), pairs)
    }

    /// Recorded lookup of exactly `key` in a typed partition; see
    /// [`Snapshot::get_typed`].
    ///
    /// # Errors
    /// As [`Snapshot::get_typed`].
    pub fn get_typed<P: TypedPartition<Schema = S>>(
        &self,
        partition: P,
        key: P::Key,
    ) -> Result<QueryResults<'_, S>> {
        let _ = partition;
        self.get(P::KEY, key)
    }

    /// Recorded lookup of many keys of one typed partition; see
    /// [`Snapshot::batch_get_typed`].
    ///
    /// # Errors
    /// As [`Snapshot::batch_get_typed`]; a failed batch records no read.
    pub fn batch_get_typed<P: TypedPartition<Schema = S>>(
        &self,
        partition: P,
        keys: impl IntoIterator<Item = P::Key>,
    ) -> Result<Vec<QueryResults<'_, S>>> {
        let _ = partition;
        self.batch_get(keys.into_iter().map(|key| (P::KEY, key)))
    }

    /// The reads recorded so far.
    #[must_use]
    pub fn reads(&self) -> Vec<ReadEntry> {
        self.log.entries()
    }

    /// The reads that found nothing: data this run waited for and did not get.
    #[must_use]
    pub fn pending(&self) -> Vec<ReadEntry> {
        self.log.entries().into_iter().filter(ReadEntry::is_pending).collect()
    }

    /// Inserts an output record; see [`ChunkWriter::insert`].
    ///
    /// # Errors
    /// As [`ChunkWriter::insert`].
    pub fn insert(
        &self,
        partition: Ident,
        key: impl IntoSortKey,
        record: impl Into<S::Record>,
    ) -> Result<()> {
        self.writer.lock().insert(partition, key, record)
    }

    /// Inserts an output record into a typed partition; see [`ChunkWriter::put`].
    ///
    /// # Errors
    /// As [`ChunkWriter::put`].
    pub fn put<P, R>(&self, partition: P, key: P::Key, record: R) -> Result<()>
    where
        P: TypedPartition<Schema = S> + Holds<R>,
        R: Into<S::Record>,
    {
        self.writer.lock().put(partition, key, record)
    }

    /// Sets the task that spawned this one; see [`ChunkWriter::set_parent`].
    pub fn set_parent(&self, parent: TaskId) -> &Self {
        self.writer.lock().set_parent(parent);
        self
    }

    /// Asks for a child task to exist; see [`ChunkWriter::spawn`].
    pub fn spawn(&self, child: impl Into<TaskId>) -> &Self {
        self.writer.lock().spawn(child);
        self
    }

    /// Declares an extra dependency; see [`ChunkWriter::depend_on`].
    pub fn depend_on(&self, chunk: ChunkId) -> &Self {
        self.writer.lock().depend_on(chunk);
        self
    }

    /// Builds the output into a chunk, with the reads as dependencies, without
    /// committing it.
    pub(crate) fn build(self) -> Result<crate::database::Commit<S>> {
        let TaskContext { snapshot, run, log, writer } = self;
        drop(snapshot);
        let mut writer = writer.into_inner();
        writer.add_reads(log.take(), run);
        writer.build()
    }

    /// Commits the output with the reads as dependencies.
    ///
    /// # Errors
    /// As [`ChunkWriter::commit`].
    pub fn commit(self) -> Result<CommitReceipt> {
        let db = self.writer.lock().database().clone();
        db.publish(self.build()?)
    }
}

impl<S: Schema> fmt::Debug for TaskContext<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("task", &self.task())
            .field("clock", &self.snapshot.clock())
            .field("reads", &self.log.entries().len())
            .finish()
    }
}
