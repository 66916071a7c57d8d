//! # chunkdb
//!
//! An in-memory, content-addressed database for incremental compilers, build tools
//! and language servers.
//!
//! A language author declares the records of their language once; the results of
//! compiler tasks are stored as immutable *chunks*; queries run on consistent
//! snapshots at a cost independent of how many chunks hold the data; every query a
//! task makes is recorded, so the database can tell what an edit invalidates.
//!
//! This crate is the facade: it re-exports the runtime ([`Database`], [`Snapshot`],
//! [`TaskContext`], …). See [`reference`](mod@reference) for a schema written out by hand.
//!
//! ```
//! use chunkdb::reference::{Function, RefLang, SYMBOLS};
//! use chunkdb::{Database, Ident};
//!
//! let db = Database::<RefLang>::new();
//! let file = Ident::named("src/main.rs");
//! let mut parse = db.writer("parse:src/main.rs");
//! parse.insert(SYMBOLS, (file, "main"), Function::new("main", &[], None))?;
//! parse.commit()?;
//!
//! let snapshot = db.snapshot();
//! let main = snapshot.get(SYMBOLS, (file, "main"))?;
//! assert_eq!(main.len(), 1);
//! # Ok::<(), chunkdb::Error>(())
//! ```

#![deny(missing_docs)]

pub use chunkdb_database::*;

// Lets the macro's absolute paths (`::chunkdb::…`) resolve inside this crate too.
extern crate self as chunkdb;

/// Paths used by generated code. Not part of the public API: it may change in any
/// release.
#[doc(hidden)]
pub mod __private {
    pub use chunkdb_database::*;

    /// Heap bytes of a vector's buffer (used by generated storage accounting).
    pub fn vec_heap_bytes<T>(vector: &Vec<T>) -> usize {
        vector.capacity() * core::mem::size_of::<T>()
    }
}

pub use chunkdb_codegen::chunk_schema;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
