//! Incremental computation: task contexts and the read-sets they record, the range
//! registries invalidation looks keys up in, the stale set, the driver and verify
//! mode, and subscriptions to pending reads.

pub(crate) mod context;
pub(crate) mod driver;
pub(crate) mod invalidation;
pub(crate) mod ranges;
pub(crate) mod read_set;
pub(crate) mod subscription;
pub(crate) mod verify;
