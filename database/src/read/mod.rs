//! The read side: snapshots, queries and their results, adaptive (sequential or
//! parallel) execution, and the typed query layer generated code uses.

pub(crate) mod exec;
pub(crate) mod query;
pub(crate) mod snapshot;
pub(crate) mod typed;
