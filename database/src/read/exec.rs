//! Adaptive execution: whether a large query runs on one core or on rayon's pool.
//!
//! Parallelism pays only when a query has enough work to amortise splitting it and
//! merging the parts, and where that point lies depends on the machine, the record
//! types and the filter. So for each query *shape* (partition, kind of query, size
//! bucket: the power of two of the number of entries it covers) the executor:
//!
//! - runs inputs under [`SEQUENTIAL_BELOW`] entries sequentially, without measuring
//!   (most language-server queries: nothing to gain, and no timing overhead);
//! - runs inputs of [`PARALLEL_FROM`] entries or more in parallel, without measuring;
//! - in between, times the first runs of each mode alternately ([`EXPLORE_RUNS`] of
//!   each), keeps the faster per entry, and every [`RECHECK_EVERY`] runs times the other
//!   mode once more (and the chosen one once, half-way between), so a decision follows
//!   the workload when it drifts. Samples decay (each new one weighs a quarter), so old
//!   measurements fade.
//!
//! Timing costs two clock reads per measured query, well under a percent of a query
//! this large. With a pool of one thread nothing runs in parallel. Decisions are
//! visible in [`Stats::execution`](crate::Stats::execution) and can be overridden with
//! [`Execution`], for the whole database or for one query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::ident::Ident;

/// Inputs smaller than this always run sequentially.
pub const SEQUENTIAL_BELOW: usize = 4096;
/// Inputs at least this large run in parallel (when the pool has more than one thread).
pub const PARALLEL_FROM: usize = 1 << 18;
/// Timed runs of each mode before a shape's first decision.
pub const EXPLORE_RUNS: u32 = 2;
/// A decided shape times the other mode once every this many runs.
pub const RECHECK_EVERY: u64 = 32;

/// How queries execute: chosen by measurement, or forced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Execution {
    /// Measure and choose per query shape (the default).
    #[default]
    Auto,
    /// Always on the calling thread.
    Sequential,
    /// Always on rayon's pool (still sequential when the pool has one thread).
    Parallel,
}

impl Execution {
    fn to_u8(self) -> u8 {
        match self {
            Execution::Auto => 0,
            Execution::Sequential => 1,
            Execution::Parallel => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Execution::Sequential,
            2 => Execution::Parallel,
            _ => Execution::Auto,
        }
    }
}

/// The kinds of query the executor tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryKind {
    /// A scan of a key range (all, prefix, between, lt/le/gt/ge).
    Scan,
    /// A scan with a caller's filter.
    FilteredScan,
    /// A batch of exact lookups.
    BatchGet,
    /// A secondary-index lookup.
    IndexLookup,
}

/// One query shape and what the executor decided for it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeDecision {
    /// The partition (or index id).
    pub partition: Ident,
    /// The kind of query.
    pub kind: QueryKind,
    /// Entries covered, as a power of two: the shape covers `2^bucket ..< 2^(bucket+1)`.
    pub bucket: u8,
    /// The mode chosen; `None` while still exploring.
    pub chosen: Option<Execution>,
    /// Mean nanoseconds per entry when run sequentially, if measured.
    pub sequential_ns_per_entry: Option<f64>,
    /// Mean nanoseconds per entry when run in parallel, if measured.
    pub parallel_ns_per_entry: Option<f64>,
    /// Runs of this shape so far.
    pub runs: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    ns_per_entry: Option<f64>,
    timed: u32,
}

impl Sample {
    fn add(&mut self, ns_per_entry: f64) {
        self.ns_per_entry = Some(match self.ns_per_entry {
            None => ns_per_entry,
            Some(old) => old * 0.75 + ns_per_entry * 0.25,
        });
        self.timed += 1;
    }
}

#[derive(Debug, Default)]
struct Shape {
    sequential: Sample,
    parallel: Sample,
    chosen: Option<bool>,
    runs: u64,
}

/// The plan for one query run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) parallel: bool,
    /// Whether to time the run and report it back.
    pub(crate) timed: bool,
    key: Option<(Ident, QueryKind, u8)>,
}

/// Chooses between sequential and parallel execution per query shape.
#[derive(Debug, Default)]
pub(crate) struct Executor {
    mode: AtomicU8,
    shapes: Mutex<HashMap<(Ident, QueryKind, u8), Shape>>,
}

impl Executor {
    pub(crate) fn set_mode(&self, mode: Execution) {
        self.mode.store(mode.to_u8(), Ordering::Relaxed);
    }

    pub(crate) fn mode(&self) -> Execution {
        Execution::from_u8(self.mode.load(Ordering::Relaxed))
    }

    /// Decides how to run a query of `entries` entries.
    pub(crate) fn plan(&self, partition: Ident, kind: QueryKind, entries: usize, forced: Execution) -> Plan {
        let untimed = |parallel| Plan { parallel, timed: false, key: None };
        if rayon::current_num_threads() < 2 {
            return untimed(false);
        }
        let mode = if forced == Execution::Auto { self.mode() } else { forced };
        match mode {
            Execution::Sequential => return untimed(false),
            Execution::Parallel => return untimed(true),
            Execution::Auto => {}
        }
        if entries < SEQUENTIAL_BELOW {
            return untimed(false);
        }
        if entries >= PARALLEL_FROM {
            return untimed(true);
        }
        let bucket = entries.ilog2() as u8;
        let key = (partition, kind, bucket);
        let mut shapes = self.shapes.lock();
        let shape = shapes.entry(key).or_default();
        shape.runs += 1;
        let recheck_other = shape.runs.is_multiple_of(RECHECK_EVERY);
        // Time the chosen mode too, half-way between re-checks, so a drift of the whole
        // machine shows in both figures and does not flip the decision by itself.
        let recheck_chosen = shape.runs % RECHECK_EVERY == RECHECK_EVERY / 2;
        let parallel = match shape.chosen {
            // Explore: alternate until both modes have their timed runs.
            None => shape.parallel.timed < shape.sequential.timed,
            Some(parallel) if recheck_other => !parallel,
            Some(parallel) => parallel,
        };
        let timed = shape.chosen.is_none() || recheck_other || recheck_chosen;
        Plan { parallel, timed, key: timed.then_some(key) }
    }

    /// Reports how long a timed run took.
    pub(crate) fn report(&self, plan: Plan, entries: usize, elapsed: Duration) {
        let Some(key) = plan.key else { return };
        let ns_per_entry = elapsed.as_nanos() as f64 / entries.max(1) as f64;
        let mut shapes = self.shapes.lock();
        let shape = shapes.entry(key).or_default();
        if plan.parallel {
            shape.parallel.add(ns_per_entry);
        } else {
            shape.sequential.add(ns_per_entry);
        }
        if shape.sequential.timed >= EXPLORE_RUNS
            && shape.parallel.timed >= EXPLORE_RUNS
            && let (Some(sequential), Some(parallel)) =
                (shape.sequential.ns_per_entry, shape.parallel.ns_per_entry)
        {
            shape.chosen = Some(parallel < sequential);
        }
    }

    /// Every measured shape, in (partition, kind, bucket) order.
    pub(crate) fn decisions(&self) -> Vec<ShapeDecision> {
        let shapes = self.shapes.lock();
        let mut decisions: Vec<ShapeDecision> = shapes
            .iter()
            .map(|(&(partition, kind, bucket), shape)| ShapeDecision {
                partition,
                kind,
                bucket,
                chosen: shape
                    .chosen
                    .map(|parallel| if parallel { Execution::Parallel } else { Execution::Sequential }),
                sequential_ns_per_entry: shape.sequential.ns_per_entry,
                parallel_ns_per_entry: shape.parallel.ns_per_entry,
                runs: shape.runs,
            })
            .collect();
        decisions.sort_by_key(|d| (d.partition, d.kind, d.bucket));
        decisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_inputs_are_not_measured() {
        let executor = Executor::default();
        let p = Ident::new("p");
        let small = executor.plan(p, QueryKind::Scan, 10, Execution::Auto);
        assert!(!small.parallel && !small.timed);
        if rayon::current_num_threads() > 1 {
            let huge = executor.plan(p, QueryKind::Scan, PARALLEL_FROM, Execution::Auto);
            assert!(huge.parallel && !huge.timed);
        }
        assert!(executor.decisions().is_empty());
    }

    #[test]
    fn mid_sized_shapes_explore_then_keep_the_faster_and_recheck() {
        if rayon::current_num_threads() < 2 {
            return;
        }
        let executor = Executor::default();
        let p = Ident::new("p");
        let entries = SEQUENTIAL_BELOW * 4;
        let mut modes = Vec::new();
        for _ in 0..(2 * EXPLORE_RUNS) {
            let plan = executor.plan(p, QueryKind::Scan, entries, Execution::Auto);
            assert!(plan.timed);
            modes.push(plan.parallel);
            // Parallel is "faster" in this script.
            let elapsed = Duration::from_micros(if plan.parallel { 100 } else { 300 });
            executor.report(plan, entries, elapsed);
        }
        assert_eq!(modes.iter().filter(|&&parallel| parallel).count(), EXPLORE_RUNS as usize);
        let decision = &executor.decisions()[0];
        assert_eq!(decision.chosen, Some(Execution::Parallel));
        // Now decided: untimed parallel runs, with a timed sequential re-check.
        let mut rechecks = 0;
        for _ in 0..RECHECK_EVERY {
            let plan = executor.plan(p, QueryKind::Scan, entries, Execution::Auto);
            if plan.timed && !plan.parallel {
                rechecks += 1;
                // The workload drifted: sequential is now much faster.
                for _ in 0..8 {
                    executor.report(plan, entries, Duration::from_micros(10));
                }
            } else if plan.timed {
                rechecks += 1;
                assert_eq!(rechecks, 1, "the chosen mode is timed before the other is re-checked");
                executor.report(plan, entries, Duration::from_micros(100));
            } else {
                // Parallel until the re-check, sequential after it.
                assert_eq!(plan.parallel, rechecks < 2);
            }
        }
        assert_eq!(rechecks, 2, "one timed run of each mode per period");
        assert_eq!(
            executor.decisions()[0].chosen,
            Some(Execution::Sequential),
            "the decision follows the drift"
        );
    }

    #[test]
    fn overrides_win() {
        let executor = Executor::default();
        let p = Ident::new("p");
        executor.set_mode(Execution::Sequential);
        assert!(!executor.plan(p, QueryKind::Scan, PARALLEL_FROM * 2, Execution::Auto).parallel);
        let forced = executor.plan(p, QueryKind::Scan, 1, Execution::Parallel);
        assert_eq!(forced.parallel, rayon::current_num_threads() > 1);
    }
}
