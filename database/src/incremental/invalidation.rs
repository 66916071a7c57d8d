//! Invalidation: which tasks must re-run after a commit.
//!
//! A task is *stale* when a commit changes what one of its queries would now return.
//! Every query a task ran through its [`TaskContext`](crate::TaskContext) is a read
//! (partition and key range); the tracker files the reads of every task's current
//! version in a [`RangeRegistry`], and a commit asks it, for each key whose records
//! changed, which reads cover that key. Those readers are stale. The cost is one
//! registry lookup per changed key, whatever the number of readers; an unchanged
//! output changes no key, so it invalidates nothing (early cut-off).
//!
//! A task runs on a snapshot and commits later; commits in between may already have
//! changed what it read. So the tracker keeps the changed keys of recent commits and
//! checks a committing task's reads against those made since its snapshot: if one
//! falls inside them, the task stays stale. Only runs still in flight can need them:
//! each run is registered ([`Runs`]) from the moment it takes its snapshot until its
//! commit has been decided (published, refused, or found identical to the current
//! version), and after each publication the tracker forgets what no run still in
//! flight can ask about. With no run in flight it keeps nothing past a publication.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rayon::iter::{IntoParallelRefIterator, ParallelIterator};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::hash::ChunkId;
use crate::ident::TaskId;
use crate::incremental::ranges::RangeRegistry;
use crate::incremental::read_set::ReadEntry;
use crate::schema::Schema;
use crate::store::chunk::Chunk;
use crate::store::state::{KeyList, State};

/// Recent commits' changed keys kept for checking tasks that ran concurrently, while
/// some run in flight started before them: at most this many commits...
const LOG_COMMITS: usize = 4096;
/// ...and this many keys in all. A task whose snapshot is older than the log is
/// conservatively kept stale.
const LOG_KEYS: usize = 1 << 20;

/// The task runs in flight: the clocks of the snapshots they read, with how many read
/// each. Shared by the database and its runs.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    clocks: Mutex<BTreeMap<u64, usize>>,
    /// Orders run starts and forced schedules: a run whose ticket is older than a
    /// schedule of its task did not answer that schedule.
    tickets: AtomicU64,
}

/// One task run in flight, reading the snapshot at its clock. Dropping it (once the
/// run's commit has been decided, or when the run is abandoned) ends the run.
#[derive(Debug)]
pub(crate) struct Run {
    clock: u64,
    ticket: u64,
    runs: Arc<Runs>,
}

/// What a commit knows of the run that made its reads: the clock of the snapshot it
/// read and the ticket it took when it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunStamp {
    pub(crate) clock: u64,
    pub(crate) ticket: u64,
}

impl Runs {
    /// Starts a run on the snapshot `take` returns with its clock. The snapshot is taken
    /// under the registry's lock, so a commit deciding what to forget either sees the
    /// run or comes before the snapshot (and then the run needs nothing it forgets).
    pub(crate) fn start<T>(self: &Arc<Self>, take: impl FnOnce() -> (T, u64)) -> (T, Run) {
        let ticket = self.ticket();
        let mut clocks = self.clocks.lock();
        let (snapshot, clock) = take();
        *clocks.entry(clock).or_default() += 1;
        (snapshot, Run { clock, ticket, runs: Arc::clone(self) })
    }

    /// A new ticket, later than every one handed out before.
    pub(crate) fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The oldest clock a run in flight reads at, or `published` (the clock of the
    /// current state, which every run starting from now on reads at or after).
    pub(crate) fn horizon(&self, published: u64) -> u64 {
        self.clocks.lock().keys().next().map_or(published, |&oldest| oldest.min(published))
    }
}

impl Run {
    /// The clock of the snapshot the run reads and the ticket it started with.
    pub(crate) fn stamp(&self) -> RunStamp {
        RunStamp { clock: self.clock, ticket: self.ticket }
    }

    /// Another run on the same snapshot (verify mode's second run).
    pub(crate) fn again(&self) -> Run {
        *self.runs.clocks.lock().entry(self.clock).or_default() += 1;
        Run { clock: self.clock, ticket: self.ticket, runs: Arc::clone(&self.runs) }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let mut clocks = self.runs.clocks.lock();
        if let Some(count) = clocks.get_mut(&self.clock) {
            *count -= 1;
            if *count == 0 {
                clocks.remove(&self.clock);
            }
        }
    }
}

/// One commit's changed keys, kept while a run in flight may ask about them.
#[derive(Debug)]
struct Logged {
    clock: u64,
    keys: KeyList,
    /// How many keys it added to the tracker's count (sorting may drop repeats).
    counted: usize,
    /// Whether `keys` is sorted: keys are sorted when first asked about, so a commit
    /// that nobody asks about (no run in flight) costs no sort.
    sorted: bool,
}

/// What the tracker needs of a version restored from disk: its reads.
pub(crate) trait RestoredReads: Send + Sync {
    /// The version's chunk.
    fn chunk_id(&self) -> ChunkId;
    /// The reads of its run.
    fn restored_reads(&self) -> &[ReadEntry];
}

impl<S: Schema> RestoredReads for Chunk<S> {
    fn chunk_id(&self) -> ChunkId {
        self.id()
    }

    fn restored_reads(&self) -> &[ReadEntry] {
        self.reads()
    }
}

/// After this many commits answered by scanning the unfiled reads, they are filed:
/// a scan costs one pass over them, filing a few.
const SCANS_BEFORE_FILING: usize = 8;

/// The current versions restored from disk whose reads are not filed in the
/// registry: a warm restart files none, and a commit asks them by one pass over
/// their reads against its sorted changed keys, until enough commits did that
/// filing them pays.
#[derive(Default)]
struct Unfiled {
    versions: FxHashMap<TaskId, Arc<dyn RestoredReads>>,
    scans: usize,
}

impl Unfiled {
    /// How many non-empty ranges they read: counted when asked (by statistics and
    /// the consistency check), so a restart does not walk every read it restores.
    fn reads(&self) -> usize {
        self.versions.values().map(|version| non_empty(version.restored_reads())).sum()
    }
}

impl std::fmt::Debug for Unfiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unfiled({} versions, {} reads)", self.versions.len(), self.reads())
    }
}

fn non_empty(reads: &[ReadEntry]) -> usize {
    reads.iter().filter(|read| !read.range().is_empty()).count()
}

/// A task in the stale set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StaleEntry {
    /// The parent to run it under: the spawner's, for a task scheduled by another;
    /// `None` keeps its current version's.
    pub(crate) parent: Option<TaskId>,
    /// Why it must run.
    pub(crate) cause: Cause,
    /// For a scheduled task, the ticket of the latest schedule: a run that started
    /// before it does not answer it.
    pub(crate) ticket: u64,
}

/// Why a task is in the stale set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A commit changed a key inside one of its reads. Key-level tracking
    /// over-approximates (a change may have been undone since), so a driver may
    /// confirm against the reads' chunks before running it.
    Invalidated,
    /// Asked to run ([`Tracker::schedule`]): it never ran, or a run was forced. It
    /// runs whatever its reads say.
    Scheduled,
}

/// The reverse dependency edges (every current task's reads, by key) and the stale
/// set. Lives with the publish lock: only commits change it.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    readers: RangeRegistry<TaskId>,
    /// Reads of versions restored from disk, not filed in `readers` yet.
    unfiled: Unfiled,
    stale: FxHashMap<TaskId, StaleEntry>,
    /// The tasks scheduled to run under each parent (spawned and not yet run), so a
    /// removal of the parent unschedules them. Entries may be out of date (the child
    /// ran since); they are checked against the stale set when used.
    scheduled_under: FxHashMap<TaskId, Vec<TaskId>>,
    /// The changed keys of recent commits, oldest first.
    log: VecDeque<Logged>,
    log_keys: usize,
    /// The oldest clock the log covers completely: commits after it are all logged.
    log_from: u64,
}

impl Tracker {
    /// Records that `task` was replaced by `new` (or removed) at `clock`, with
    /// `changed` the keys whose records changed. `run` stamps the run that made the
    /// new version's reads. Returns the tasks this made
    /// stale that were not stale before, in task order.
    pub(crate) fn replaced<S: Schema>(
        &mut self,
        task: TaskId,
        old: Option<&Chunk<S>>,
        new: Option<&Chunk<S>>,
        changed: KeyList,
        clock: u64,
        run: Option<RunStamp>,
    ) -> Vec<TaskId> {
        // A re-run that produced the identical chunk keeps its reads filed as they are.
        if old.map(Chunk::id) != new.map(Chunk::id) {
            let unfiled = self.unfiled.versions.remove(&task);
            if unfiled.is_none_or(|unfiled| Some(unfiled.chunk_id()) != old.map(Chunk::id)) {
                for read in old.map_or(&[][..], |chunk| chunk.reads()) {
                    self.readers.remove(read.partition(), read.range(), task);
                }
            }
            for read in new.map_or(&[][..], |chunk| chunk.reads()) {
                self.readers.insert(read.partition(), read.range(), task);
            }
        }
        let entry = self.stale.remove(&task);
        match (entry, new, run) {
            // Asked to run after this run started: this run does not answer that.
            (Some(entry), Some(_), Some(run))
                if entry.cause == Cause::Scheduled && entry.ticket > run.ticket =>
            {
                self.stale.insert(task, entry);
            }
            _ => {
                if let Some(StaleEntry { parent: Some(parent), .. }) = entry {
                    self.unfile_scheduled(parent, task);
                }
                if let (Some(new), Some(run)) = (new, run)
                    && self.changed_since(run.clock, clock, new.reads())
                {
                    // What it read changed while it ran: it is stale again, as a reader.
                    self.stale
                        .insert(task, StaleEntry { parent: None, cause: Cause::Invalidated, ticket: 0 });
                }
            }
        }
        if new.is_none() {
            // Tasks spawned under a removed task that never ran would only write
            // garbage: they are no longer asked for.
            for child in self.scheduled_under.remove(&task).unwrap_or_default() {
                if self
                    .stale
                    .get(&child)
                    .is_some_and(|entry| entry.cause == Cause::Scheduled && entry.parent == Some(task))
                {
                    self.stale.remove(&child);
                }
            }
        }

        let mut invalidated = FxHashSet::default();
        for (partition, key) in changed.iter() {
            self.readers.containing(partition, key, |reader| {
                if reader != task {
                    invalidated.insert(reader);
                }
            });
        }
        if !changed.is_empty() && !self.unfiled.versions.is_empty() {
            self.scan_unfiled(&changed, task, &mut invalidated);
        }
        let mut newly: Vec<TaskId> = invalidated
            .into_iter()
            .filter(|reader| {
                self.add(*reader, StaleEntry { parent: None, cause: Cause::Invalidated, ticket: 0 })
            })
            .collect();
        newly.sort_unstable();

        if changed.is_empty() {
            return newly;
        }
        let mut changed = changed;
        changed.shrink_to_fit();
        self.log_keys += changed.len();
        self.log.push_back(Logged { clock, counted: changed.len(), keys: changed, sorted: false });
        while self.log.len() > LOG_COMMITS || self.log_keys > LOG_KEYS {
            let Some(dropped) = self.log.pop_front() else { break };
            self.log_keys -= dropped.counted;
            self.log_from = dropped.clock;
        }
        newly
    }

    /// Forgets the changed keys of commits at or before `horizon` (see
    /// [`Runs::horizon`]): no run in flight read a snapshot older than it.
    pub(crate) fn forget_until(&mut self, horizon: u64) {
        while self.log.front().is_some_and(|logged| logged.clock <= horizon) {
            let dropped = self.log.pop_front();
            self.log_keys -= dropped.map_or(0, |dropped| dropped.counted);
        }
        self.log_from = self.log_from.max(horizon);
    }

    /// Number of changed keys kept for runs in flight.
    #[cfg(test)]
    pub(crate) fn logged_keys(&self) -> usize {
        self.log_keys
    }

    /// Whether a commit after `read_at` and before `clock` changed a key `reads`
    /// cover. Unknown (the log no longer reaches back that far) counts as changed.
    fn changed_since(&mut self, read_at: u64, clock: u64, reads: &[ReadEntry]) -> bool {
        if reads.is_empty() || read_at + 1 >= clock {
            return false;
        }
        if read_at < self.log_from {
            return true;
        }
        self.log.iter_mut().filter(|logged| logged.clock > read_at && logged.clock < clock).any(|logged| {
            if !logged.sorted {
                (logged.keys, logged.sorted) = (logged.keys.sorted(), true);
            }
            reads.iter().any(|read| covers_any(&logged.keys, read))
        })
    }

    /// Adds `task` to the stale set to run (or run again) whatever its reads say, under
    /// `parent` (`None`: its current version's), with the schedule's `ticket` (see
    /// [`Runs::ticket`]). Returns whether it was not stale before.
    pub(crate) fn schedule(&mut self, task: TaskId, parent: Option<TaskId>, ticket: u64) -> bool {
        if let Some(parent) = parent
            && self.stale.get(&task).is_none_or(|entry| entry.parent != Some(parent))
        {
            self.scheduled_under.entry(parent).or_default().push(task);
        }
        self.add(task, StaleEntry { parent, cause: Cause::Scheduled, ticket })
    }

    /// Adds `task` to the stale set, merged with its entry if it has one (a parent
    /// given replaces none; being scheduled outranks being invalidated). Returns
    /// whether it was not stale before.
    fn add(&mut self, task: TaskId, added: StaleEntry) -> bool {
        match self.stale.get_mut(&task) {
            Some(entry) => {
                entry.parent = added.parent.or(entry.parent);
                if added.cause == Cause::Scheduled {
                    entry.cause = Cause::Scheduled;
                    entry.ticket = entry.ticket.max(added.ticket);
                }
                false
            }
            None => {
                self.stale.insert(task, added);
                true
            }
        }
    }

    /// Forgets that `child` was scheduled under `parent`.
    fn unfile_scheduled(&mut self, parent: TaskId, child: TaskId) {
        if let Some(children) = self.scheduled_under.get_mut(&parent) {
            children.retain(|scheduled| *scheduled != child);
            if children.is_empty() {
                self.scheduled_under.remove(&parent);
            }
        }
    }

    /// Takes `task` out of the stale set if it is there only because a commit changed
    /// a key it read (not scheduled, so to run under its own parent), its current version
    /// in `state` has reads, and every read would return what it returned: the same
    /// chunks hold records in each read's range as when it ran (chunks are immutable
    /// and content-addressed, so the same chunks mean the same records). Returns
    /// whether it did.
    pub(crate) fn clear_if_unchanged<S: Schema>(&mut self, state: &State<S>, task: TaskId) -> bool {
        let Some(entry) = self.stale.get(&task) else { return false };
        let Some(version) = state.tasks.get(&task) else { return false };
        let chunk = &version.chunk;
        let unchanged = entry.cause == Cause::Invalidated
            && !chunk.reads().is_empty()
            && chunk.reads().iter().all(|read| crate::read::query::read_unchanged(state, read));
        if unchanged {
            self.stale.remove(&task);
        }
        unchanged
    }

    /// Whether `task` is stale.
    pub(crate) fn is_stale(&self, task: TaskId) -> bool {
        self.stale.contains_key(&task)
    }

    /// The stale set, in task order: each task with the parent to run it under and
    /// whether it was scheduled (rather than invalidated). What persistence stores.
    pub(crate) fn stale_entries(&self) -> Vec<(TaskId, Option<TaskId>, bool)> {
        let mut entries: Vec<(TaskId, Option<TaskId>, bool)> = self
            .stale
            .iter()
            .map(|(task, entry)| (*task, entry.parent, entry.cause == Cause::Scheduled))
            .collect();
        entries.sort_unstable();
        entries
    }

    /// Puts a task back into the stale set as [`stale_entries`](Self::stale_entries)
    /// described it, when a persisted database is opened (no run is in flight then,
    /// so schedules need no ticket).
    pub(crate) fn restore_stale(&mut self, task: TaskId, parent: Option<TaskId>, scheduled: bool) {
        if scheduled {
            self.schedule(task, parent, 0);
        } else {
            self.add(task, StaleEntry { parent, cause: Cause::Invalidated, ticket: 0 });
        }
    }

    /// Makes stale every task whose current version read one of `chunks` (chunks
    /// dropped because they were damaged on disk): what they read is gone.
    pub(crate) fn invalidate_readers_of<S: Schema>(&mut self, state: &State<S>, chunks: &FxHashSet<ChunkId>) {
        for (task, version) in state.tasks.iter() {
            if version.chunk.reads().iter().any(|read| read.chunks().iter().any(|id| chunks.contains(id))) {
                self.add(task, StaleEntry { parent: None, cause: Cause::Invalidated, ticket: 0 });
            }
        }
    }

    /// Number of stale tasks.
    pub(crate) fn stale_len(&self) -> usize {
        self.stale.len()
    }

    /// Number of reads filed (those of restored versions counted as filed).
    pub(crate) fn reads_filed(&self) -> usize {
        self.readers.len() + self.unfiled.reads()
    }

    /// Takes `versions`, restored from disk, as current versions whose reads are not
    /// filed yet (see [`Unfiled`]).
    pub(crate) fn restored<S: Schema>(&mut self, versions: Vec<Arc<Chunk<S>>>) {
        self.unfiled.versions.reserve(versions.len());
        for chunk in versions {
            self.unfiled.versions.insert(chunk.task(), chunk);
        }
    }

    /// Adds to `invalidated` the tasks (but `task`) of unfiled versions that read a
    /// key of `changed`; files them all once enough commits have scanned them.
    fn scan_unfiled(&mut self, changed: &KeyList, task: TaskId, invalidated: &mut FxHashSet<TaskId>) {
        let keys = changed.sorted();
        // On every core: the first scan after a restart decodes each version's reads
        // (thousands of chunks), and each scan is one pass over all of them.
        let readers: Vec<TaskId> = self
            .unfiled
            .versions
            .par_iter()
            .filter(|(reader, version)| {
                **reader != task && version.restored_reads().iter().any(|read| covers_any(&keys, read))
            })
            .map(|(reader, _)| *reader)
            .collect();
        invalidated.extend(readers);
        self.unfiled.scans += 1;
        if self.unfiled.scans >= SCANS_BEFORE_FILING {
            for (reader, version) in std::mem::take(&mut self.unfiled.versions) {
                for read in version.restored_reads() {
                    self.readers.insert(read.partition(), read.range(), reader);
                }
            }
        }
    }

    /// The stale tasks in waves, each task with the parent to run it under (`None`:
    /// its current version's). A task comes in a later wave than the stale tasks
    /// whose output it read and than its stale parent, so each wave can run in
    /// parallel once the waves before it have committed. Tasks waiting on each other
    /// in a cycle are released together, in one wave. Within a wave, task order.
    pub(crate) fn waves<S: Schema>(&self, state: &State<S>) -> Vec<Vec<(TaskId, Option<TaskId>)>> {
        // A task that never ran has no recorded reads, so nothing orders it after the
        // stale tasks whose output it may read: running it first would waste the run.
        // Tasks that ran before go first; new ones wait for all of them.
        let (known, new): (Vec<TaskId>, Vec<TaskId>) =
            self.stale.keys().copied().partition(|task| state.tasks.contains_key(task));
        let mut waves = self.waves_of(state, &known);
        waves.extend(self.waves_of(state, &new));
        waves
    }

    /// The dependency waves among `tasks` (a subset of the stale set): dependencies
    /// outside the subset are ignored.
    fn waves_of<S: Schema>(&self, state: &State<S>, tasks: &[TaskId]) -> Vec<Vec<(TaskId, Option<TaskId>)>> {
        let members: FxHashSet<TaskId> = tasks.iter().copied().collect();
        let stale = |task: &TaskId| members.contains(task);
        // A dependency orders a task only if it is the current chunk of another member:
        // those chunks are all that need looking up.
        let member_chunks: FxHashMap<ChunkId, TaskId> =
            tasks.iter().filter_map(|task| Some((state.tasks.get(task)?.chunk.id(), *task))).collect();
        let mut waiting: FxHashMap<TaskId, usize> = FxHashMap::default();
        let mut dependents: FxHashMap<TaskId, Vec<TaskId>> = FxHashMap::default();
        for &task in tasks {
            let entry = &self.stale[&task];
            let mut on: Vec<TaskId> = entry.parent.into_iter().filter(stale).collect();
            if let Some(version) = state.tasks.get(&task) {
                on.extend(version.chunk.parent().filter(stale));
                on.extend(version.chunk.dependencies().iter().filter_map(|id| {
                    member_chunks.get(id).copied().filter(|dependency| *dependency != task)
                }));
            }
            on.sort_unstable();
            on.dedup();
            waiting.insert(task, on.len());
            for dependency in on {
                dependents.entry(dependency).or_default().push(task);
            }
        }
        let mut waves = Vec::new();
        let mut wave: Vec<TaskId> = waiting.iter().filter(|(_, n)| **n == 0).map(|(t, _)| *t).collect();
        let mut placed = 0;
        while placed < waiting.len() {
            if wave.is_empty() {
                // Everything left waits in a cycle: release it together.
                wave = waiting.iter().filter(|(_, n)| **n > 0).map(|(t, _)| *t).collect();
                wave.iter().for_each(|task| {
                    waiting.insert(*task, 0);
                });
            }
            wave.sort_unstable();
            let mut next = Vec::new();
            for task in &wave {
                for dependent in dependents.get(task).map_or(&[][..], Vec::as_slice) {
                    let count = waiting.get_mut(dependent).expect("every dependent is stale");
                    if *count > 0 {
                        *count -= 1;
                        if *count == 0 {
                            next.push(*dependent);
                        }
                    }
                }
            }
            placed += wave.len();
            waves.push(wave.iter().map(|task| (*task, self.stale[task].parent)).collect());
            wave = next;
        }
        waves
    }
}

/// Whether any of the sorted `keys` lies inside `read`.
fn covers_any(keys: &KeyList, read: &ReadEntry) -> bool {
    let partition = read.partition();
    let range = read.range();
    // The first key at or after the range's start: a binary search over positions.
    let (mut low, mut high) = (0, keys.len());
    while low < high {
        let middle = (low + high) / 2;
        if keys.get(middle) < (partition, range.start()) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low < keys.len() && {
        let (p, key) = keys.get(low);
        p == partition && range.contains(key)
    }
}
