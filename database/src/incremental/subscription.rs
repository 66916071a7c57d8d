//! Subscriptions: waiting for data that is not there yet.
//!
//! A task whose query found nothing (a pending read) can park and subscribe to that
//! partition and key range; the subscription becomes ready when the range holds data
//! (at once, if a commit supplied it in the meantime). Three ways to wait: as a
//! [`Future`] on any executor, blocking with a timeout, or with a callback. Dropping
//! a subscription unregisters it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustc_hash::FxHashMap;

use crate::ident::Ident;
use crate::incremental::ranges::RangeRegistry;
use crate::key::KeyRange;

/// A callback run once when a subscription becomes ready.
type Callback = Box<dyn FnOnce() + Send>;

/// The shared wake-up state of one subscription.
#[derive(Default)]
struct Signal {
    state: Mutex<SignalState>,
    ready: Condvar,
}

#[derive(Default)]
struct SignalState {
    fired: bool,
    waker: Option<Waker>,
    callback: Option<Callback>,
}

impl Signal {
    /// Marks the subscription ready and wakes every way of waiting on it. Runs the
    /// callback on the calling thread, after every lock of the database is released.
    fn fire(&self) {
        let (waker, callback) = {
            let mut state = self.state.lock();
            if state.fired {
                return;
            }
            state.fired = true;
            (state.waker.take(), state.callback.take())
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
        if let Some(callback) = callback {
            callback();
        }
    }

    fn is_fired(&self) -> bool {
        self.state.lock().fired
    }
}

/// The registered subscriptions of one database.
pub(crate) struct Subscriptions {
    ranges: RangeRegistry<u64>,
    signals: FxHashMap<u64, (Ident, KeyRange, Arc<Signal>)>,
    next_id: u64,
    /// The number of registered subscriptions, readable without this lock, so
    /// commits skip collecting changed keys when nobody waits.
    open: Arc<AtomicUsize>,
}

/// Subscriptions that became ready during a commit, fired once the commit's locks
/// are released (a callback may commit).
#[must_use]
pub(crate) struct Ready(Vec<Arc<Signal>>);

impl Ready {
    pub(crate) fn fire(self) {
        self.0.iter().for_each(|signal| signal.fire());
    }
}

impl Subscriptions {
    pub(crate) fn new(open: Arc<AtomicUsize>) -> Self {
        Subscriptions { ranges: RangeRegistry::default(), signals: FxHashMap::default(), next_id: 0, open }
    }

    fn count(&self) {
        self.open.store(self.signals.len(), Ordering::Relaxed);
    }

    /// Registers a subscription, unless `ready_now` (the range already holds data).
    fn register(&mut self, partition: Ident, range: KeyRange, ready_now: bool) -> (u64, Arc<Signal>) {
        let signal = Arc::new(Signal::default());
        self.next_id += 1;
        let id = self.next_id;
        if ready_now || range.is_empty() {
            signal.state.lock().fired = ready_now;
        } else {
            self.ranges.insert(partition, &range, id);
            self.signals.insert(id, (partition, range, Arc::clone(&signal)));
            self.count();
        }
        (id, signal)
    }

    fn unregister(&mut self, id: u64) {
        if let Some((partition, range, _)) = self.signals.remove(&id) {
            self.ranges.remove(partition, &range, id);
            self.count();
        }
    }

    /// The subscriptions a commit that changed `keys` makes ready: those with a
    /// changed key in their range (with `every`, all registered ones: the commit did
    /// not keep all its keys) for which `has_data(partition, range)` now holds.
    /// They are unregistered; their handles stay valid.
    pub(crate) fn notify<'k>(
        &mut self,
        keys: impl IntoIterator<Item = (Ident, &'k [u8])>,
        every: bool,
        has_data: impl Fn(Ident, &KeyRange) -> bool,
    ) -> Ready {
        if self.signals.is_empty() {
            return Ready(Vec::new());
        }
        let mut touched = Vec::new();
        if every {
            touched.extend(self.signals.keys().copied());
        } else {
            for (partition, key) in keys {
                self.ranges.containing(partition, key, |id| touched.push(id));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut ready = Vec::new();
        for id in touched {
            let Some((partition, range, _)) = self.signals.get(&id) else { continue };
            if has_data(*partition, range) {
                let (partition, range, signal) = self.signals.remove(&id).expect("just found");
                self.ranges.remove(partition, &range, id);
                ready.push(signal);
            }
        }
        self.count();
        Ready(ready)
    }

    /// Whether the registry and the signal map agree, for the consistency check.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.ranges.len() == self.signals.len() {
            Ok(())
        } else {
            Err(format!(
                "{} subscription ranges are filed for {} subscriptions",
                self.ranges.len(),
                self.signals.len()
            ))
        }
    }
}

/// A wait for data in a partition's key range; see
/// [`Database::subscribe`](crate::Database::subscribe).
///
/// Ready once the range holds at least one record. Await it (it is a [`Future`] that
/// works on any executor), block on it with [`wait_timeout`](Self::wait_timeout), or
/// pass a callback to
/// [`Database::subscribe_with`](crate::Database::subscribe_with). Dropping it
/// unregisters it.
#[must_use = "a subscription is unregistered when dropped"]
pub struct Subscription {
    id: u64,
    partition: Ident,
    signal: Arc<Signal>,
    registry: Weak<Mutex<Subscriptions>>,
}

impl Subscription {
    /// Registers a subscription; `ready_now` is decided by the caller while it
    /// holds `registry`'s lock, so no commit can slip between the check and the
    /// registration.
    pub(crate) fn register(
        registry: &Arc<Mutex<Subscriptions>>,
        partition: Ident,
        range: KeyRange,
        ready_now: impl FnOnce(&KeyRange) -> bool,
        callback: Option<Callback>,
    ) -> Subscription {
        let (id, signal) = {
            let mut subscriptions = registry.lock();
            let ready = ready_now(&range);
            let (id, signal) = subscriptions.register(partition, range, ready);
            signal.state.lock().callback = callback;
            (id, signal)
        };
        if signal.is_fired() {
            // Ready at once: run the callback now, outside the registry's lock.
            let callback = signal.state.lock().callback.take();
            if let Some(callback) = callback {
                callback();
            }
        }
        Subscription { id, partition, signal, registry: Arc::downgrade(registry) }
    }

    /// The partition (or index) subscribed to.
    #[must_use]
    pub fn partition(&self) -> Ident {
        self.partition
    }

    /// Whether the range holds data now (or did when a commit made it ready).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.signal.is_fired()
    }

    /// Blocks until ready or until `timeout` has passed, whichever comes first;
    /// returns whether it is ready. The deadline is kept even if nothing ever wakes
    /// the thread.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.signal.state.lock();
        while !state.fired {
            if self.signal.ready.wait_until(&mut state, deadline).timed_out() {
                return state.fired;
            }
        }
        true
    }

    /// Blocks until ready.
    pub fn wait(&self) {
        let mut state = self.signal.state.lock();
        while !state.fired {
            self.signal.ready.wait(&mut state);
        }
    }
}

impl Future for Subscription {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.signal.state.lock();
        if state.fired {
            return Poll::Ready(());
        }
        // Registered under the same lock `fire` takes: a commit either sees this
        // waker or has already set `fired`, which the check above would have seen.
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.lock().unregister(self.id);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("partition", &self.partition)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}
