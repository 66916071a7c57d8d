//! Subscriptions: waiting for data in a key range, as a future (on a hand-written
//! executor and on tokio), blocking with a timeout, or with a callback; unregistering
//! on drop; and subscriptions made while a commit is being published.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use chunkdb_database::reference::{DIAGNOSTICS, Diagnostic, Function, RefLang, SYMBOLS};
use chunkdb_database::{CommitReceipt, Database, Ident, KeyPrefix, KeyRange, Result, SortKey};

fn file(name: &str) -> Ident {
    Ident::named(name)
}

/// Every key of `file_name` in SYMBOLS.
fn file_range(file_name: &str) -> KeyRange {
    KeyRange::prefix(KeyPrefix::new((file(file_name),)).as_bytes())
}

/// Commits `task` writing one function `path` under `file_name`.
fn define(db: &Database<RefLang>, task: &str, file_name: &str, path: &str) -> Result<CommitReceipt> {
    let mut writer = db.writer(task);
    writer.insert(SYMBOLS, (file(file_name), path), Function::new(path, &[], None))?;
    writer.commit()
}

/// Commits `define(..)` from another thread after `delay`.
fn define_later(db: &Database<RefLang>, delay: Duration, file_name: &'static str) -> thread::JoinHandle<()> {
    let db = db.clone();
    thread::spawn(move || {
        thread::sleep(delay);
        define(&db, &format!("parse:{file_name}"), file_name, "main").expect("valid commit");
    })
}

#[test]
fn ready_at_once_with_data_and_after_a_commit_in_range() -> Result<()> {
    let db = Database::<RefLang>::new();
    define(&db, "parse:b", "b.rs", "f")?;
    let already = db.subscribe(SYMBOLS, file_range("b.rs"));
    assert!(already.is_ready(), "the range holds data already");
    assert_eq!(db.stats().subscriptions, 0, "a subscription ready at once is not registered");

    let waiting = db.subscribe(SYMBOLS, file_range("a.rs"));
    let exact = db.subscribe(SYMBOLS, KeyRange::exact(SortKey::encode((file("a.rs"), "g")).as_bytes()));
    assert_eq!(waiting.partition(), SYMBOLS);
    assert!(!waiting.is_ready() && !exact.is_ready());
    assert_eq!(db.stats().subscriptions, 2);

    // Outside the range: another file, and the same file in another partition.
    define(&db, "parse:c", "c.rs", "f")?;
    let mut lint = db.writer("lint:a");
    lint.insert(DIAGNOSTICS, (file("a.rs"), 1u8, 0u32), Diagnostic::new("w", 1, 1))?;
    lint.commit()?;
    define(&db, "parse:b", "b.rs", "g")?;
    assert!(!waiting.is_ready() && !exact.is_ready());
    assert!(!waiting.wait_timeout(Duration::ZERO));

    // Inside the prefix, beside the exact key.
    define(&db, "parse:a", "a.rs", "f")?;
    assert!(waiting.is_ready() && waiting.wait_timeout(Duration::ZERO));
    assert!(!exact.is_ready());
    assert_eq!(db.stats().subscriptions, 1, "a ready subscription is unregistered");
    define(&db, "gen:a", "a.rs", "g")?;
    assert!(exact.is_ready());
    assert_eq!(db.stats().subscriptions, 0);

    // Ready stays ready, whatever happens to the data afterwards.
    db.remove_task("parse:a");
    assert!(waiting.is_ready());
    db.check_consistency()?;
    Ok(())
}

#[test]
fn a_pending_read_can_be_subscribed_to() -> Result<()> {
    let db = Database::<RefLang>::new();
    let ctx = db.task("resolve");
    assert!(ctx.get(SYMBOLS, (file("late.rs"), "main"))?.is_empty());
    let pending = ctx.pending();
    assert_eq!(pending.len(), 1);
    let waiting = db.subscribe(pending[0].partition(), pending[0].range().clone());
    ctx.commit()?;
    define(&db, "parse:late", "late.rs", "helper")?;
    assert!(!waiting.is_ready(), "another key of the file is not the one read");
    define(&db, "parse:late", "late.rs", "main")?;
    assert!(waiting.is_ready());
    db.check_consistency()?;
    Ok(())
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `future` on this thread, parking between polls until
/// its waker is called. `None` if it is not done within `limit`.
fn block_on<F: Future>(future: F, limit: Duration) -> Option<(F::Output, usize)> {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + limit;
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some((output, polls));
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
    }
}

#[test]
fn awaited_on_a_hand_written_executor() -> Result<()> {
    let db = Database::<RefLang>::new();
    let waiting = db.subscribe(SYMBOLS, file_range("a.rs"));
    let started = Instant::now();
    let committer = define_later(&db, Duration::from_millis(30), "a.rs");
    let (_, polls) = block_on(waiting, Duration::from_secs(20)).expect("woken by the commit");
    assert!(polls >= 2, "it was pending first");
    assert!(started.elapsed() < Duration::from_secs(10), "woken, not timed out");
    committer.join().expect("the committer finished");

    // Ready at once: the first poll completes.
    let ready = db.subscribe(SYMBOLS, file_range("a.rs"));
    assert_eq!(block_on(ready, Duration::from_secs(1)).map(|(_, polls)| polls), Some(1));
    db.check_consistency()?;
    Ok(())
}

#[tokio::test]
async fn awaited_on_tokio() -> Result<()> {
    let db = Database::<RefLang>::new();
    let waiting = db.subscribe(SYMBOLS, file_range("a.rs"));
    let committer = define_later(&db, Duration::from_millis(30), "a.rs");
    tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("woken by the commit");
    committer.join().expect("the committer finished");
    db.check_consistency()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaited_by_many_tasks_on_a_multi_threaded_tokio() -> Result<()> {
    let db = Database::<RefLang>::new();
    let waiters: Vec<_> = (0..16)
        .map(|_| {
            let waiting = db.subscribe(SYMBOLS, file_range("a.rs"));
            tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(20), waiting).await.is_ok() })
        })
        .collect();
    let committer = define_later(&db, Duration::from_millis(30), "a.rs");
    for waiter in waiters {
        assert!(waiter.await.expect("the task ran"), "every waiter is woken");
    }
    committer.join().expect("the committer finished");
    assert_eq!(db.stats().subscriptions, 0);
    db.check_consistency()?;
    Ok(())
}

#[test]
fn wait_timeout_keeps_its_deadline_and_wakes_on_data() -> Result<()> {
    let db = Database::<RefLang>::new();
    let waiting = db.subscribe(SYMBOLS, file_range("a.rs"));
    let timeout = Duration::from_millis(50);
    let started = Instant::now();
    assert!(!waiting.wait_timeout(timeout));
    let took = started.elapsed();
    assert!(took >= timeout, "returned after {took:?}");
    assert!(took < Duration::from_secs(10), "returned after {took:?}");

    let started = Instant::now();
    let committer = define_later(&db, Duration::from_millis(30), "a.rs");
    assert!(waiting.wait_timeout(Duration::from_secs(20)));
    assert!(started.elapsed() < Duration::from_secs(10), "woken, not timed out");
    committer.join().expect("the committer finished");

    // `wait` blocks until ready, too.
    let other = db.subscribe(SYMBOLS, file_range("b.rs"));
    let committer = define_later(&db, Duration::from_millis(10), "b.rs");
    other.wait();
    assert!(other.is_ready());
    committer.join().expect("the committer finished");
    db.check_consistency()?;
    Ok(())
}

#[test]
fn a_callback_runs_once_and_may_commit() -> Result<()> {
    let db = Database::<RefLang>::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let echo_db = db.clone();
    let echo_runs = Arc::clone(&runs);
    let subscription = db.subscribe_with(SYMBOLS, file_range("a.rs"), move || {
        echo_runs.fetch_add(1, Ordering::SeqCst);
        // Committing from the callback: the commit that fired it has released its locks.
        define(&echo_db, "echo", "echo.rs", "heard").expect("the callback's commit");
    });
    let echoed = db.subscribe(SYMBOLS, file_range("echo.rs"));
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    define(&db, "parse:a", "a.rs", "f")?;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(subscription.is_ready());
    assert!(echoed.is_ready(), "the callback's own commit fired the next subscription");
    assert_eq!(db.snapshot().get(SYMBOLS, (file("echo.rs"), "heard"))?.len(), 1);

    define(&db, "parse:a", "a.rs", "g")?;
    define(&db, "parse:a2", "a.rs", "h")?;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "exactly once");

    // Ready at once: the callback runs in `subscribe_with`, and may commit there too.
    let at_once_runs = Arc::new(AtomicUsize::new(0));
    let (inner_db, inner_runs) = (db.clone(), Arc::clone(&at_once_runs));
    let at_once = db.subscribe_with(SYMBOLS, file_range("a.rs"), move || {
        inner_runs.fetch_add(1, Ordering::SeqCst);
        define(&inner_db, "echo:at-once", "echo2.rs", "heard").expect("the callback's commit");
    });
    assert!(at_once.is_ready());
    assert_eq!(at_once_runs.load(Ordering::SeqCst), 1);
    assert_eq!(db.snapshot().get(SYMBOLS, (file("echo2.rs"), "heard"))?.len(), 1);
    drop((subscription, at_once));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(db.stats().subscriptions, 0);
    db.check_consistency()?;
    Ok(())
}

#[test]
fn a_callback_fires_before_another_threads_commit_returns() -> Result<()> {
    let db = Database::<RefLang>::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let subscription = db.subscribe_with(SYMBOLS, file_range("a.rs"), move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    define_later(&db, Duration::ZERO, "a.rs").join().expect("the committer finished");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "run before the commit returned");
    assert!(subscription.is_ready());
    db.check_consistency()?;
    Ok(())
}

#[test]
fn dropping_before_ready_cancels() -> Result<()> {
    let db = Database::<RefLang>::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let subscription = db.subscribe_with(SYMBOLS, file_range("a.rs"), move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(db.stats().subscriptions, 1);
    drop(subscription);
    assert_eq!(db.stats().subscriptions, 0);
    define(&db, "parse:a", "a.rs", "f")?;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the callback was cancelled");
    db.check_consistency()?;

    // A subscription may outlive its database.
    let orphan = db.subscribe(SYMBOLS, file_range("never.rs"));
    drop(db);
    assert!(!orphan.is_ready());
    drop(orphan);
    Ok(())
}

#[test]
fn a_million_subscribe_drop_cycles_leave_nothing_registered() -> Result<()> {
    let db = Database::<RefLang>::new();
    define(&db, "parse:a", "a.rs", "f")?;
    let empty = file_range("nothing-here.rs");
    let full = file_range("a.rs");
    let kept = db.subscribe(SYMBOLS, empty.clone());
    for i in 0..1_000_000u32 {
        // Mostly registered and unregistered; every 16th ready at once.
        let range = if i % 16 == 0 { &full } else { &empty };
        let subscription = db.subscribe(SYMBOLS, range.clone());
        drop(subscription);
    }
    let stats = db.stats();
    assert_eq!(stats.subscriptions, 1, "only the one kept");
    drop(kept);
    assert_eq!(db.stats().subscriptions, 0);
    db.check_consistency()?;
    Ok(())
}

/// A subscription made while a commit supplying its range is being published (after
/// the commit decided whether to keep its changed keys, before it publishes) must not
/// be missed: once the commit has returned, the subscription is ready. The window is
/// short, so the subscriber is started at varying offsets into the commit.
#[test]
fn a_subscription_made_during_a_commit_is_not_missed() {
    const RECORDS: usize = 500;
    const TRIES: u32 = 200;
    let write = |db: &Database<RefLang>| {
        let mut writer = db.writer("parse:a");
        for i in 0..RECORDS {
            writer
                .insert(SYMBOLS, (file("a.rs"), format!("f{i}")), Function::new("f", &[], None))
                .expect("valid");
        }
        writer
    };
    // How long publishing takes, to spread the subscriber over it.
    let probe = Database::<RefLang>::new();
    let writer = write(&probe);
    let started = Instant::now();
    writer.commit().expect("valid commit");
    let span = started.elapsed().max(Duration::from_micros(100));

    let mut missed = 0;
    for attempt in 0..TRIES {
        let db = Database::<RefLang>::new();
        let writer = write(&db);
        let barrier = Barrier::new(2);
        let subscription = thread::scope(|scope| {
            scope.spawn(|| {
                barrier.wait();
                writer.commit().expect("valid commit");
            });
            barrier.wait();
            thread::sleep(span * attempt / TRIES);
            db.subscribe(SYMBOLS, file_range("a.rs"))
        });
        // The commit has returned: the data is there, so the subscription is ready.
        if !subscription.is_ready() {
            missed += 1;
        }
        if attempt % 50 == 0 {
            db.check_consistency().expect("consistent");
        }
    }
    assert_eq!(missed, 0, "{missed} of {TRIES} subscriptions missed the commit");
}
