//! Typed partitions: what `chunk_schema!` generates on top of the untyped API, so a
//! record kind a partition does not hold, or a key of the wrong shape, is a compile
//! error instead of a run-time one.

use std::fmt;
use std::marker::PhantomData;

use crate::error::Result;
use crate::ident::Ident;
use crate::key::{IntoKeyPrefix, IntoSortKey};
use crate::read::exec::Execution;
use crate::read::query::{Hit, Hits, Query, QueryResults};
use crate::schema::Schema;

/// A partition known at compile time: its schema, its key and the type of its sort
/// keys. `chunk_schema!` implements it for a unit struct per declared partition.
pub trait TypedPartition: Copy {
    /// The schema the partition belongs to.
    type Schema: Schema;
    /// The partition's typed sort key.
    type Key: IntoSortKey + PrefixOf<Self>;
    /// The partition key.
    const KEY: Ident;
}

/// Marks the record kinds a partition holds: only they can be inserted through
/// [`ChunkWriter::put`](crate::ChunkWriter::put).
#[diagnostic::on_unimplemented(
    message = "partition `{Self}` does not hold `{Record}` records",
    label = "this record kind is not in the partition's `holds` list",
    note = "insert it into a partition that holds it, or add it to this partition's `holds` list in the schema"
)]
pub trait Holds<Record> {}

/// Marks the key prefixes of a partition: its typed key itself and the prefix builder
/// stages `chunk_schema!` generates (`SymbolsKey::prefix().file(f)`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a key or key prefix of partition `{Partition}`",
    note = "build it with the partition's key type or its `prefix()` builder"
)]
pub trait PrefixOf<Partition>: IntoKeyPrefix {}

/// A query on a typed partition: the same conditions as [`Query`], taking only keys
/// and prefixes of the partition's own layout.
#[must_use = "a query does nothing until executed"]
pub struct TypedQuery<'s, P: TypedPartition> {
    query: Query<'s, P::Schema>,
    partition: PhantomData<P>,
}

impl<'s, P: TypedPartition> TypedQuery<'s, P> {
    pub(crate) fn new(query: Query<'s, P::Schema>) -> Self {
        TypedQuery { query, partition: PhantomData }
    }

    fn map(self, f: impl FnOnce(Query<'s, P::Schema>) -> Query<'s, P::Schema>) -> Self {
        TypedQuery { query: f(self.query), partition: PhantomData }
    }

    /// Records whose key is exactly `key`.
    pub fn exact(self, key: P::Key) -> Self {
        self.map(|query| query.exact(key))
    }

    /// Records whose key begins with `prefix`.
    pub fn begins_with(self, prefix: impl PrefixOf<P>) -> Self {
        self.map(|query| query.begins_with(prefix))
    }

    /// Records with `low <= key <= high` (see [`Query`] for how prefixes compare).
    pub fn between(self, low: impl PrefixOf<P>, high: impl PrefixOf<P>) -> Self {
        self.map(|query| query.between(low, high))
    }

    /// Records with `key < bound`.
    pub fn lt(self, bound: impl PrefixOf<P>) -> Self {
        self.map(|query| query.lt(bound))
    }

    /// Records with `key <= bound`.
    pub fn le(self, bound: impl PrefixOf<P>) -> Self {
        self.map(|query| query.le(bound))
    }

    /// Records with `key > bound`.
    pub fn gt(self, bound: impl PrefixOf<P>) -> Self {
        self.map(|query| query.gt(bound))
    }

    /// Records with `key >= bound`.
    pub fn ge(self, bound: impl PrefixOf<P>) -> Self {
        self.map(|query| query.ge(bound))
    }

    /// Keeps only the records `keep` accepts, with a filter the database keeps and
    /// evaluates again; see [`Query::filter`].
    pub fn filter(self, keep: impl for<'h> Fn(&Hit<'h, P::Schema>) -> bool + Send + Sync + 'static) -> Self {
        self.map(|query| query.filter(keep))
    }

    /// Keeps only the records `keep` accepts, with a filter that may borrow; see
    /// [`Query::filter_borrowed`].
    pub fn filter_borrowed(self, keep: impl Fn(&Hit<'s, P::Schema>) -> bool + Send + Sync + 's) -> Self {
        self.map(|query| query.filter_borrowed(keep))
    }

    /// Overrides how this query executes; see [`Query::execution`].
    pub fn execution(self, execution: Execution) -> Self {
        self.map(|query| query.execution(execution))
    }

    /// Runs the query and maps each record through `f`; see [`Query::filter_map`].
    ///
    /// # Errors
    /// As [`Query::execute`].
    pub fn filter_map<T: Send>(
        self,
        f: impl Fn(&Hit<'s, P::Schema>) -> Option<T> + Send + Sync,
    ) -> Result<Vec<T>> {
        self.query.filter_map(f)
    }

    /// Runs the query; see [`Query::execute`].
    ///
    /// # Errors
    /// As [`Query::execute`]; with typed keys only a hand-built raw key can fail.
    pub fn execute(self) -> Result<QueryResults<'s, P::Schema>> {
        self.query.execute()
    }

    /// Runs the query lazily; see [`Query::iter`].
    ///
    /// # Errors
    /// As [`Query::execute`].
    pub fn iter(self) -> Result<Hits<'s, P::Schema>> {
        self.query.iter()
    }

    /// Number of matching records.
    ///
    /// # Errors
    /// As [`Query::execute`].
    pub fn count(self) -> Result<usize> {
        self.query.count()
    }
}

impl<P: TypedPartition> fmt::Debug for TypedQuery<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.query.fmt(f)
    }
}

/// A secondary index declared by a schema: records looked up by the value of one of
/// their fields, of type `V`.
pub struct IndexHandle<S, V: ?Sized> {
    id: Ident,
    name: &'static str,
    types: PhantomData<Marker<S, V>>,
}

/// Ties a handle to its schema and value type without owning either (so the handle
/// is `Copy`, `Send` and `Sync` whatever they are).
type Marker<S, V> = (fn() -> S, fn() -> Box<V>);

impl<S, V: ?Sized> IndexHandle<S, V> {
    /// The handle of the index named `name` (its id is `Ident::new(name)`).
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        IndexHandle { id: Ident::new(name), name, types: PhantomData }
    }

    /// The index's id.
    #[must_use]
    pub const fn id(&self) -> Ident {
        self.id
    }

    /// The index's name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<S, V: ?Sized> Clone for IndexHandle<S, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, V: ?Sized> Copy for IndexHandle<S, V> {}

impl<S, V: ?Sized> fmt::Debug for IndexHandle<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndexHandle({})", self.name)
    }
}
