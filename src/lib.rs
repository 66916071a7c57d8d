//! # chunkdb
//!
//! An in-memory, content-addressed database for incremental compilers, build tools
//! and language servers.
//!
//! A language author declares the records of their language once, with
//! [`chunk_schema!`]; the results of compiler tasks are stored as immutable *chunks*;
//! queries run on consistent snapshots at a cost independent of how many chunks hold
//! the data; every query a task makes through its [`TaskContext`] is recorded, so the
//! database can tell what an edit invalidates.
//!
//! ```
//! chunkdb::chunk_schema! {
//!     /// Items of a toy language.
//!     pub schema Toy {
//!         records {
//!             Function { name: Ident, arity: u8 },
//!             Diagnostic { message: String },
//!         }
//!         partitions {
//!             symbols holds Function key (file: Ident, name: String),
//!             diagnostics holds Diagnostic key (file: Ident, seq: u32),
//!         }
//!         indexes {
//!             by_name on Function.name,
//!         }
//!     }
//! }
//!
//! use chunkdb::{Database, Ident};
//!
//! let db = Database::<Toy>::new();
//! let file = Ident::named("src/main.rs");
//! let mut parse = db.writer("parse:src/main.rs");
//! parse.put(Toy::SYMBOLS, SymbolsKey::new(file, "main"), Function { name: Ident::named("main"), arity: 0 })?;
//! parse.commit()?;
//!
//! let snapshot = db.snapshot();
//! let in_file = snapshot.partition(Toy::SYMBOLS).begins_with(SymbolsKey::prefix().file(file)).execute()?;
//! assert_eq!(in_file.len(), 1);
//! assert_eq!(snapshot.index(Toy::BY_NAME).get(&Ident::new("main"))?.len(), 1);
//! # Ok::<(), chunkdb::Error>(())
//! ```
//!
//! This crate is the facade: it re-exports the runtime ([`Database`], [`Snapshot`],
//! [`TaskContext`], …) and the macro. [`example`] shows what the macro generates for a
//! language; [`reference`](mod@reference) shows the runtime's traits implemented by
//! hand.

#![deny(missing_docs)]

pub use chunkdb_database::*;

// Lets the macro's absolute paths (`::chunkdb::…`) resolve inside this crate too.
extern crate self as chunkdb;

/// Paths used by generated code. Not part of the public API: it may change in any
/// release.
#[doc(hidden)]
pub mod __private {
    pub use chunkdb_database::*;
}

pub mod example;

/// Declares a language: its records, the partitions they live in with the typed
/// components of their sort keys, and secondary indexes.
///
/// ```text
/// chunk_schema! {
///     /// docs (on anything below, too)
///     #[chunkdb(crate = path::to::chunkdb)]   // optional, for a renamed or re-exported chunkdb
///     pub schema Name {
///         records {
///             Kind { field: Type, … },
///         }
///         partitions {                        // optional: without it the schema is open
///             name: "key string" holds Kind, Kind key (field: Type, …),
///             other holds Kind key (…),        // the key string defaults to the name
///         }
///         indexes {                           // optional
///             name on Kind.field, Kind.field,
///         }
///     }
/// }
/// ```
///
/// Field types: `u8`…`u64`, `i8`…`i64`, `bool`, `char`, `Ident`, `String`, `TaskId`,
/// `ChunkId`, other records, `Vec<T>`, `Option<T>`, `Box<[T]>`, `Box<T>`, tuples, and
/// your own types that derive rkyv's `Archive`, `Serialize` and `Deserialize` (through
/// [`rkyv`], with `#[rkyv(crate = chunkdb::rkyv, derive(Debug, PartialEq, Eq))]`) and
/// implement [`StableHash`] on both the type and its archived form, feeding the same
/// bytes. Sort-key components: the integers,
/// `bool`, `Ident` and `String`. Indexed fields: those, or an `Option`, `Vec` or
/// `Box<[T]>` of one (each element is indexed).
///
/// For a schema `Name` it generates (see [`example`] for a rendered instance):
/// - `enum Name {}`, implementing [`Schema`], documented with an overview of records,
///   partitions, key layouts and indexes;
/// - a struct per record kind (with [`StableHash`] over its fields, in order) and its
///   archived form `ArchivedKind` (rkyv's: strings are `ArchivedString`, numbers
///   little-endian with `to_native()`, vectors slices; `to_owned()` gives the struct),
///   the record enum `NameRecord` and the borrowed `NameRecordRef<'a>`, one variant
///   per kind holding `&'a ArchivedKind` (with `as_kind()` accessors and `to_owned()`):
///   queries read records in place, in memory or in the mapped file of a persisted
///   database, through this one view type;
/// - columnar storage `NameStorage` (one vector per kind), its archive
///   `ArchivedNameStorage` (what a chunk keeps) and `NameStorageBuilder`;
/// - per partition `p`: a marker `PPartition` ([`TypedPartition`], [`Holds`] for each
///   kind it holds), a key struct `PKey` with `new`, `decode` and `prefix()`, prefix
///   builder stages `PKeyPrefixN` (and `PKeyPartialPrefix` for `field_starts_with`),
///   and the handle `Name::P`;
/// - per index `i`: the handle `Name::I`, an [`IndexHandle`] for
///   `snapshot.index(Name::I).get(&value)?`;
/// - a fingerprint of the declaration ([`Schema::fingerprint`]).
///
/// Generated code reaches the runtime only through `::chunkdb::__private` (or the
/// `crate` path given), never through your imports. Mistakes in a declaration are
/// compile errors on the offending tokens, all reported at once.
pub use chunkdb_codegen::chunk_schema;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
