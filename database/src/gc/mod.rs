//! Garbage collection: what stays alive, and collecting the rest in bounded slices.
//!
//! # What keeps a chunk alive
//!
//! - **Snapshots.** A superseded version stays in memory while an open snapshot can
//!   see it (the snapshot holds the state it was taken from); when the last such
//!   snapshot closes, the next commit or collection step frees it. Nothing else
//!   keeps a superseded version: not a reader's dependency on it.
//! - **Entry chunks are roots.** A current version without a parent (a source) is
//!   alive until its task is removed.
//! - **Parent edges.** A current version with a parent is alive exactly when its
//!   parent task's current version is alive: a spawned task is owned by its spawner.
//!   Ownership chains that reach no entry (a parent removed, a parent that never
//!   existed, a cycle) are garbage. Cycles are collected, not refused: a commit whose
//!   new version reaches no entry (it names a missing parent, a parent that is
//!   itself garbage, or closes a cycle, as a task made its own parent does) counts
//!   its bytes as garbage at once, so a cycle never hides from the collector.
//! - **Dependency edges do not keep chunks alive.** A task that read a chunk that is
//!   removed or collected is invalidated instead (its read results changed), so it
//!   re-runs and stops depending on it. Keeping the dependency alive would keep a
//!   deleted file's symbols visible to the files that imported them.
//!
//! # How it runs
//!
//! A cycle marks from the roots through parent edges, then sweeps the current
//! versions it did not mark. Both phases run in slices of a bounded number of tasks
//! (`gc_step(budget)`), each slice under the commit lock only (readers never wait),
//! so commits interleave with a cycle. Marking may lag behind those commits; the sweep
//! therefore re-checks each candidate against the current state (walking its parent
//! chain) and keeps anything a commit made reachable again in the meantime, such as
//! a source re-added while its derived tasks were being marked. Sweeping removes a
//! version exactly as a removal commit does: from the task map, every partition
//! index, every secondary index and the reverse dependencies, invalidating its
//! readers.

use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::ident::TaskId;
use crate::schema::Schema;
use crate::store::chunk::Chunk;
use crate::store::state::State;

/// When collection runs on its own.
///
/// What is garbage (superseded versions no snapshot sees; versions that reach no
/// entry through their parents, ownership cycles included) is described on
/// [`Database::collect`](crate::Database::collect), which collects it all at once;
/// the policy decides when commits and idle ticks do it in slices instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcPolicy {
    /// Start a cycle once this many bytes of possible garbage have accumulated: the
    /// versions of removed tasks (whose spawned tasks are now unreachable) and versions
    /// committed under a parent that does not exist. Commits then do one slice each
    /// until the cycle ends. `usize::MAX` turns this off.
    pub garbage_bytes: usize,
    /// [`Database::collect_if_idle`](crate::Database::collect_if_idle) finishes a cycle when no commit has
    /// happened for this long and there is possible garbage.
    pub idle_after: Duration,
    /// Tasks examined per slice when commits drive collection.
    pub slice: usize,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy { garbage_bytes: 1 << 20, idle_after: Duration::from_millis(200), slice: 256 }
    }
}

impl GcPolicy {
    /// Sets [`garbage_bytes`](Self::garbage_bytes).
    #[must_use]
    pub fn garbage_bytes(mut self, bytes: usize) -> Self {
        self.garbage_bytes = bytes;
        self
    }

    /// Sets [`idle_after`](Self::idle_after).
    #[must_use]
    pub fn idle_after(mut self, idle: Duration) -> Self {
        self.idle_after = idle;
        self
    }

    /// Sets [`slice`](Self::slice) (at least 1).
    #[must_use]
    pub fn slice(mut self, tasks: usize) -> Self {
        self.slice = tasks.max(1);
        self
    }
}

/// What collection has done since the database was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcStats {
    /// Cycles completed.
    pub cycles: u64,
    /// Slices run.
    pub steps: u64,
    /// Current versions found unreachable and removed.
    pub chunks_reclaimed: u64,
    /// Their heap bytes.
    pub bytes_reclaimed: u64,
    /// Superseded states freed once no snapshot held them.
    pub states_freed: u64,
    /// The longest slice (time the commit lock was held).
    pub max_pause: Duration,
    /// All slices together.
    pub total_pause: Duration,
    /// Bytes of possible garbage waiting for a cycle.
    pub pending_bytes: usize,
    /// Whether a cycle is under way.
    pub in_progress: bool,
}

/// What one [`gc_step`](crate::Database::gc_step) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcProgress {
    /// Whether the step ended a cycle (or there was nothing to do).
    pub done: bool,
    /// Versions removed by this step.
    pub chunks_reclaimed: usize,
    /// Their heap bytes.
    pub bytes_reclaimed: usize,
}

enum Phase {
    Mark { stack: Vec<TaskId> },
    Sweep { candidates: Vec<TaskId> },
}

struct Cycle {
    phase: Phase,
    marked: FxHashSet<TaskId>,
    /// Possible garbage when the cycle started: what it will have dealt with.
    pending_at_start: usize,
}

/// The collector's state; lives with the commit lock.
pub(crate) struct Collector {
    /// Ownership edges: tasks by parent (`None`: entry tasks, the roots).
    children: FxHashMap<Option<TaskId>, FxHashSet<TaskId>>,
    pub(crate) pending_bytes: usize,
    cycle: Option<Cycle>,
    pub(crate) policy: GcPolicy,
    pub(crate) stats: GcStats,
    pub(crate) last_commit: Instant,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            children: FxHashMap::default(),
            pending_bytes: 0,
            cycle: None,
            policy: GcPolicy::default(),
            stats: GcStats::default(),
            last_commit: Instant::now(),
        }
    }
}

/// Whether `task`'s current version in `state` reaches an entry task through its
/// parents: the sweep's verdict on a candidate, and a commit's test of whether it
/// made garbage. A chain longer than the number of tasks has gone round a cycle.
pub(crate) fn reachable<S: Schema>(state: &State<S>, task: TaskId) -> bool {
    let mut at = task;
    for _ in 0..=state.tasks.len() {
        let Some(version) = state.tasks.get(&at) else { return false };
        match version.chunk.parent() {
            None => return true,
            Some(parent) => at = parent,
        }
    }
    false
}

impl Collector {
    /// Keeps the ownership edges and the garbage estimate up to date with a
    /// replacement of `task`'s version (`state` is the state after it).
    pub(crate) fn replaced<S: Schema>(
        &mut self,
        task: TaskId,
        old: Option<&Chunk<S>>,
        new: Option<&Chunk<S>>,
        state: &State<S>,
    ) {
        if let Some(old) = old
            && let Some(siblings) = self.children.get_mut(&old.parent())
        {
            siblings.remove(&task);
            if siblings.is_empty() {
                self.children.remove(&old.parent());
            }
        }
        match (old, new) {
            (_, Some(new)) => {
                self.children.entry(new.parent()).or_default().insert(task);
                // Under a parent that does not exist, under one that is itself
                // garbage, or closing an ownership cycle: garbage from the start.
                if new.parent().is_some() && !reachable(state, task) {
                    self.pending_bytes += new.heap_bytes().max(1);
                }
            }
            (Some(old), None) => {
                // Only a task that owns others leaves garbage behind.
                if self.children.contains_key(&Some(task)) {
                    self.pending_bytes += old.heap_bytes().max(1);
                }
            }
            (None, None) => {}
        }
        self.last_commit = Instant::now();
    }

    /// The edges and garbage estimate of a state restored from disk, which holds
    /// exactly `chunks`: what [`replaced`](Self::replaced) gives for each of them in
    /// turn against that state, with reachability marked once from the roots rather
    /// than walked up every task's parent chain (a restart restores thousands).
    pub(crate) fn restored<S: Schema>(&mut self, chunks: &[&Chunk<S>]) {
        // Grouped by parent first, so each set is allocated once at its size: the
        // entry tasks' set alone holds thousands.
        let mut edges: Vec<(Option<TaskId>, TaskId)> =
            chunks.iter().map(|chunk| (chunk.parent(), chunk.task)).collect();
        edges.sort_unstable();
        self.children.reserve(edges.chunk_by(|a, b| a.0 == b.0).count());
        for group in edges.chunk_by(|a, b| a.0 == b.0) {
            // A new set reserves the group's exact size as it is extended.
            self.children.entry(group[0].0).or_default().extend(group.iter().map(|(_, task)| *task));
        }
        // Chains that reach no entry (a missing parent, a cycle) are never marked.
        let mut marked = FxHashSet::with_capacity_and_hasher(chunks.len(), Default::default());
        let mut stack: Vec<TaskId> =
            self.children.get(&None).map_or_else(Vec::new, |roots| roots.iter().copied().collect());
        while let Some(task) = stack.pop() {
            if marked.insert(task) {
                stack.extend(self.children.get(&Some(task)).into_iter().flatten().copied());
            }
        }
        for chunk in chunks {
            if chunk.parent().is_some() && !marked.contains(&chunk.task) {
                self.pending_bytes += chunk.heap_bytes().max(1);
            }
        }
        self.last_commit = Instant::now();
    }

    /// Whether the policy wants a slice after a commit.
    pub(crate) fn wants_step(&self) -> bool {
        self.cycle.is_some() || self.pending_bytes >= self.policy.garbage_bytes
    }

    /// Whether there is anything to collect.
    pub(crate) fn has_work(&self) -> bool {
        self.cycle.is_some() || self.pending_bytes > 0
    }

    /// One slice of marking, or the list of candidates for sweeping; returns the
    /// tasks to sweep now (re-checked by the caller), if the cycle is sweeping.
    pub(crate) fn advance<S: Schema>(&mut self, state: &State<S>, budget: usize) -> Option<Vec<TaskId>> {
        let budget = budget.max(1);
        let cycle = self.cycle.get_or_insert_with(|| Cycle {
            phase: Phase::Mark {
                stack: self
                    .children
                    .get(&None)
                    .map_or_else(Vec::new, |roots| roots.iter().copied().collect()),
            },
            marked: FxHashSet::default(),
            pending_at_start: self.pending_bytes,
        });
        match &mut cycle.phase {
            Phase::Mark { stack } => {
                for _ in 0..budget {
                    let Some(task) = stack.pop() else { break };
                    if state.tasks.contains_key(&task) && cycle.marked.insert(task) {
                        stack.extend(self.children.get(&Some(task)).into_iter().flatten().copied());
                    }
                }
                if stack.is_empty() {
                    let candidates: Vec<TaskId> =
                        state.tasks.keys().filter(|task| !cycle.marked.contains(task)).collect();
                    cycle.phase = Phase::Sweep { candidates };
                }
                None
            }
            Phase::Sweep { candidates } => {
                let take = candidates.len().min(budget);
                Some(candidates.split_off(candidates.len() - take))
            }
        }
    }

    /// Ends the cycle if its sweep has no candidates left; returns whether it did.
    pub(crate) fn finish_if_swept(&mut self) -> bool {
        let swept = matches!(&self.cycle, Some(Cycle { phase: Phase::Sweep { candidates }, .. }) if candidates.is_empty());
        if swept {
            let cycle = self.cycle.take().expect("a cycle is under way");
            self.pending_bytes = self.pending_bytes.saturating_sub(cycle.pending_at_start);
            self.stats.cycles += 1;
        }
        swept
    }

    /// Records a slice's pause and reclaimed versions.
    pub(crate) fn account(&mut self, pause: Duration, chunks: usize, bytes: usize) {
        self.stats.steps += 1;
        self.stats.max_pause = self.stats.max_pause.max(pause);
        self.stats.total_pause += pause;
        self.stats.chunks_reclaimed += chunks as u64;
        self.stats.bytes_reclaimed += bytes as u64;
    }

    /// The stats with the live fields filled in.
    pub(crate) fn stats(&self) -> GcStats {
        GcStats { pending_bytes: self.pending_bytes, in_progress: self.cycle.is_some(), ..self.stats.clone() }
    }

    /// Every ownership edge, for the consistency check.
    pub(crate) fn edges(&self) -> impl Iterator<Item = (Option<TaskId>, TaskId)> + '_ {
        self.children
            .iter()
            .flat_map(|(parent, children)| children.iter().map(move |child| (*parent, *child)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{DIAGNOSTICS, Diagnostic, RefLang};
    use crate::{Database, ident::Ident};

    #[test]
    fn a_restore_marks_what_replacing_chunk_by_chunk_would() {
        let db = Database::<RefLang>::new();
        // Roots, a chain under them, a parent that does not exist, a cycle and a
        // task that is its own parent.
        let tasks: [(&str, Option<&str>); 9] = [
            ("a", None),
            ("b", None),
            ("a1", Some("a")),
            ("a2", Some("a1")),
            ("b1", Some("b")),
            ("orphan", Some("missing")),
            ("x", Some("y")),
            ("y", Some("x")),
            ("self", Some("self")),
        ];
        for (at, (task, parent)) in tasks.into_iter().enumerate() {
            let mut writer = db.writer(task);
            if let Some(parent) = parent {
                writer.set_parent(TaskId::new(parent));
            }
            let diagnostic = Diagnostic { message: task.to_string(), severity: 0, line: at as u32 };
            writer.insert(DIAGNOSTICS, (Ident::new(task), 0u8, at as u32), diagnostic).expect("valid insert");
            writer.commit().expect("commit");
        }
        let snapshot = db.snapshot();
        let state = &snapshot.state;
        let chunks: Vec<&Chunk<RefLang>> = state.tasks.values().map(|version| &*version.chunk).collect();
        let mut one_by_one = Collector::default();
        for chunk in &chunks {
            one_by_one.replaced(chunk.task, None, Some(*chunk), state);
        }
        let mut at_once = Collector::default();
        at_once.restored(&chunks);
        assert_eq!(at_once.pending_bytes, one_by_one.pending_bytes);
        let garbage: usize = chunks
            .iter()
            .filter(|chunk| ["orphan", "x", "y", "self"].iter().any(|name| chunk.task == TaskId::new(name)))
            .map(|chunk| chunk.heap_bytes().max(1))
            .sum();
        assert_eq!(at_once.pending_bytes, garbage);
        let edges = |collector: &Collector| {
            let mut edges: Vec<_> = collector.edges().collect();
            edges.sort();
            edges
        };
        assert_eq!(edges(&at_once), edges(&one_by_one));
    }
}
