//! Code shared by integration tests (and the performance report).

pub mod pipeline;
