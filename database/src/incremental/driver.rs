//! The reference driver: re-runs stale tasks until nothing is stale.
//!
//! It is what the examples and tests use, and a template for a language server's own
//! scheduler: take the stale set in dependency order ([`Database::stale`]), run what
//! does not wait on another stale task, commit, repeat. Each commit's invalidation
//! adds the readers it changed; an unchanged output adds none, so the cascade stops
//! there (early cut-off).

use std::fmt;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::database::{Commit, CommitReceipt, Database};
use crate::error::Error;
use crate::ident::TaskId;
use crate::incremental::context::TaskContext;
use crate::incremental::verify;
use crate::schema::Schema;

/// Runs stale tasks with a function that knows how to run any task.
///
/// ```
/// use chunkdb_database::reference::{Diagnostic, RefLang, DIAGNOSTICS, SYMBOLS, Function};
/// use chunkdb_database::{Database, Driver, Ident, TaskContext};
///
/// let db = Database::<RefLang>::new();
/// let file = Ident::named("a.rs");
/// // A checker that reports a file without functions.
/// let run = |ctx: &TaskContext<RefLang>| -> chunkdb_database::Result<()> {
///     if ctx.query(SYMBOLS).begins_with((file,)).execute()?.is_empty() {
///         ctx.insert(DIAGNOSTICS, (file, 1u8, 0u32), Diagnostic::new("no functions", 1, 0))?;
///     }
///     Ok(())
/// };
/// db.schedule("check:a.rs");
/// let report = Driver::new(&db).run(run)?;
/// assert_eq!(report.ran.len(), 1);
///
/// // An edit to what the checker read makes it stale; the driver re-runs it.
/// let mut parse = db.writer("parse:a.rs");
/// parse.insert(SYMBOLS, (file, "main"), Function::new("main", &[], None))?;
/// assert_eq!(parse.commit()?.invalidated.len(), 1);
/// let report = Driver::new(&db).run(run)?;
/// assert_eq!(report.changed.len(), 1); // its diagnostic is gone
/// assert!(db.stale().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Driver<'db, S: Schema> {
    db: &'db Database<S>,
    parallel: bool,
    verify: bool,
    max_rounds: usize,
}

/// What a [`Driver::run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriveReport {
    /// Every task run, in the order the runs were committed (a task can run more than
    /// once when what it read changed again after it ran).
    pub ran: Vec<TaskId>,
    /// The runs whose output changed (new, different or removed records).
    pub changed: Vec<TaskId>,
    /// The runs whose output equalled the previous version's: nothing that read them
    /// was invalidated (early cut-off).
    pub cut_off: Vec<TaskId>,
    /// Stale tasks that did not run: a commit had changed a key inside one of their
    /// reads, but each read still found exactly the chunks it found when the task
    /// last ran (the change was undone, or came and went while the task ran), so
    /// its output could not have changed. They were taken out of the stale set unrun.
    /// (A changed record that a query's filter dropped still makes its reader run:
    /// only the task can evaluate its filter, and such a run is cut off early.)
    pub skipped: Vec<TaskId>,
    /// Rounds of parallel runs (one dependency wave each, counting waves whose tasks
    /// were all skipped).
    pub rounds: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl DriveReport {
    fn record(&mut self, receipt: &CommitReceipt) {
        self.ran.push(receipt.task);
        if receipt.output_changed {
            self.changed.push(receipt.task);
        } else {
            self.cut_off.push(receipt.task);
        }
    }
}

/// Why a [`Driver::run`] stopped before nothing was stale.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriveError<E> {
    /// The task function failed. The task stays stale; runs committed before the
    /// failure stay committed.
    #[error("task {task} failed: {error}")]
    Task {
        /// The task whose run failed.
        task: TaskId,
        /// The task function's error.
        #[source]
        error: E,
        /// What ran before the failure.
        report: Box<DriveReport>,
    },
    /// The database refused a task's output (see [`Error`]).
    #[error("the output of task {task} could not be committed: {error}")]
    Commit {
        /// The task whose output was refused.
        task: TaskId,
        /// Why.
        #[source]
        error: Error,
        /// What ran before the failure.
        report: Box<DriveReport>,
    },
    /// Tasks kept invalidating each other for the configured number of rounds.
    #[error(
        "the stale set did not empty after {rounds} rounds (still stale: {stale:?}): tasks \
         that read each other's output keep changing it; make one of them stop writing \
         what the other reads, or raise the limit with Driver::max_rounds"
    )]
    DidNotConverge {
        /// The rounds run.
        rounds: usize,
        /// The tasks still stale, at most the first 16.
        stale: Vec<TaskId>,
        /// What ran.
        report: Box<DriveReport>,
    },
}

/// A task function's outcome, or the database's refusal of its output.
enum Failure<E> {
    Task(E),
    Commit(Error),
}

/// How many runs a parallel worker publishes together (see [`Driver::run`]).
const COMMIT_GROUP: usize = 16;

/// One worker's runs of a wave: those built and waiting to be published, and those
/// published or failed.
struct Group<S: Schema, E> {
    pending: Vec<Commit<S>>,
    done: Vec<(TaskId, Result<CommitReceipt, Failure<E>>)>,
}

impl<S: Schema, E> Default for Group<S, E> {
    fn default() -> Self {
        Group { pending: Vec::new(), done: Vec::new() }
    }
}

impl<S: Schema, E> Group<S, E> {
    fn add(&mut self, task: TaskId, built: Result<Commit<S>, Failure<E>>) {
        match built {
            Ok(commit) => self.pending.push(commit),
            Err(failure) => self.done.push((task, Err(failure))),
        }
    }

    fn publish(&mut self, db: &Database<S>) {
        if self.pending.is_empty() {
            return;
        }
        let tasks: Vec<TaskId> = self.pending.iter().map(|commit| commit.chunk.task).collect();
        let receipts = db.publish_all(std::mem::take(&mut self.pending));
        self.done.extend(
            tasks.into_iter().zip(receipts).map(|(task, receipt)| (task, receipt.map_err(Failure::Commit))),
        );
    }
}

impl<'db, S: Schema> Driver<'db, S> {
    /// A driver for `db`: parallel, not verifying, at most 100,000 rounds.
    #[must_use]
    pub fn new(db: &'db Database<S>) -> Self {
        Driver { db, parallel: true, verify: false, max_rounds: 100_000 }
    }

    /// Whether independent tasks run in parallel on rayon (default `true`).
    #[must_use]
    pub fn parallel(mut self, parallel: bool) -> Self {
        self.parallel = parallel;
        self
    }

    /// Verify mode: run every task twice on the same snapshot and fail with
    /// [`Error::Nondeterministic`] when the two outputs differ. For task authors'
    /// tests and debug builds; it doubles the work.
    #[must_use]
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Stops with [`DriveError::DidNotConverge`] after this many rounds.
    #[must_use]
    pub fn max_rounds(mut self, rounds: usize) -> Self {
        self.max_rounds = rounds;
        self
    }

    /// Re-runs stale tasks until nothing is stale: each round first collects the
    /// garbage removals left (see [`Database::collect`]), then takes the tasks that
    /// wait on no other stale task, skips those whose reads turn out unchanged (see
    /// [`DriveReport::skipped`]), runs the rest (in parallel when enabled), commits
    /// each, and looks at the stale set again. In parallel, each worker commits its runs in
    /// groups of up to 16, each group one state transition under one hold of the
    /// commit lock; each run still gets its own receipt and clock value.
    ///
    /// `run` gets a [`TaskContext`] for the task (its [`task`](TaskContext::task)
    /// says which) whose queries are recorded; it writes the task's output into it,
    /// and the driver commits it.
    ///
    /// # Errors
    /// See [`DriveError`]. Whatever was committed before the error stays committed,
    /// and the failed task stays stale.
    pub fn run<F, E>(&self, run: F) -> Result<DriveReport, DriveError<E>>
    where
        F: Fn(&TaskContext<S>) -> Result<(), E> + Sync,
        E: Send,
    {
        let started = Instant::now();
        let mut report = DriveReport::default();
        loop {
            // A removal leaves its spawned tasks' data visible until it is collected:
            // collect it first, so no task runs on it (its readers are invalidated).
            if self.db.has_garbage() {
                self.db.collect();
            }
            let Some(mut wave) = self.db.stale_waves().into_iter().next() else { break };
            if report.rounds == self.max_rounds {
                let stale = self.db.stale().into_iter().take(16).collect();
                report.elapsed = started.elapsed();
                return Err(DriveError::DidNotConverge {
                    rounds: report.rounds,
                    stale,
                    report: Box::new(report),
                });
            }
            report.rounds += 1;
            // Invalidation works on keys and over-approximates; a run is due only if
            // what the task read has changed.
            let skipped = self.db.clear_unchanged(wave.iter().map(|(task, _)| *task));
            if !skipped.is_empty() {
                let skipped_set: rustc_hash::FxHashSet<TaskId> = skipped.iter().copied().collect();
                wave.retain(|(task, _)| !skipped_set.contains(task));
                report.skipped.extend(skipped);
                if wave.is_empty() {
                    continue;
                }
            }
            let outcomes: Vec<(TaskId, Result<CommitReceipt, Failure<E>>)> =
                if self.parallel && wave.len() > 1 && rayon::current_num_threads() > 1 {
                    // Each worker publishes its runs in groups: one hold of the commit
                    // lock and one state transition per group instead of per run, so
                    // short tasks do not queue on the lock. Wave-mates never wait on
                    // each other, so holding a run back until its group is full changes
                    // no result.
                    wave.par_iter()
                        .fold(Group::default, |mut group, &(task, parent)| {
                            group.add(task, self.run_one(task, parent, &run));
                            if group.pending.len() == COMMIT_GROUP {
                                group.publish(self.db);
                            }
                            group
                        })
                        .flat_map_iter(|mut group| {
                            group.publish(self.db);
                            group.done
                        })
                        .collect()
                } else {
                    wave.iter()
                        .map(|&(task, parent)| {
                            let published = self
                                .run_one(task, parent, &run)
                                .and_then(|commit| self.db.publish(commit).map_err(Failure::Commit));
                            (task, published)
                        })
                        .collect()
                };
            let mut failure = None;
            for (task, outcome) in outcomes {
                match outcome {
                    Ok(receipt) => report.record(&receipt),
                    Err(error) => {
                        failure.get_or_insert((task, error));
                    }
                }
            }
            if let Some((task, failure)) = failure {
                report.elapsed = started.elapsed();
                let report = Box::new(report);
                return Err(match failure {
                    Failure::Task(error) => DriveError::Task { task, error, report },
                    Failure::Commit(error) => DriveError::Commit { task, error, report },
                });
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Runs `task` and builds its output (twice, compared, in verify mode), ready to
    /// publish.
    fn run_one<F, E>(&self, task: TaskId, parent: Option<TaskId>, run: &F) -> Result<Commit<S>, Failure<E>>
    where
        F: Fn(&TaskContext<S>) -> Result<(), E>,
    {
        let context = self.context(task, parent, None);
        run(&context).map_err(Failure::Task)?;
        if self.verify {
            let again = self.context(task, parent, Some(&context));
            run(&again).map_err(Failure::Task)?;
            verify::same_output(
                context.build().map_err(Failure::Commit)?,
                again.build().map_err(Failure::Commit)?,
            )
            .map_err(Failure::Commit)
        } else {
            context.build().map_err(Failure::Commit)
        }
    }

    /// A context for one run of `task`, under `parent` or its current version's
    /// parent; with `like`, on the same snapshot as that context.
    fn context(&self, task: TaskId, parent: Option<TaskId>, like: Option<&TaskContext<S>>) -> TaskContext<S> {
        let writer = self.db.writer(task);
        let context = match like {
            Some(first) => first.again(writer),
            None => TaskContext::new(self.db.start_run(), writer),
        };
        let parent = parent.or_else(|| context.snapshot().task_chunk(task).and_then(|chunk| chunk.parent()));
        if let Some(parent) = parent {
            context.set_parent(parent);
        }
        context
    }
}

impl<S: Schema> fmt::Debug for Driver<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("parallel", &self.parallel)
            .field("verify", &self.verify)
            .field("max_rounds", &self.max_rounds)
            .finish_non_exhaustive()
    }
}
