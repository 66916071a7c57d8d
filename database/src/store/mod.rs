//! The store: front-coded key blocks, the persistent B+tree, immutable chunks, their
//! archived records and the chunk writer, identifier maps, partition and secondary indexes, and the published
//! state that holds them.

pub(crate) mod block;
pub(crate) mod chunk;
pub(crate) mod idmap;
pub(crate) mod index;
pub(crate) mod records;
pub(crate) mod secondary;
pub(crate) mod state;
pub(crate) mod tree;
pub(crate) mod writer;
