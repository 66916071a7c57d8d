//! The background writer: commits only signal it, it syncs the directory on its own
//! thread, so a commit never waits for the disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::persist::directory::Directory;

/// A persisted database's directory and the thread that keeps it in step.
#[derive(Debug)]
pub(crate) struct Persister {
    /// Held for a whole sync: syncs happen one at a time, each capturing the state
    /// after the lock is taken, so the manifest never goes back in time.
    pub(crate) directory: Mutex<Directory>,
    signal: Mutex<Signal>,
    wake: Condvar,
    delay: Duration,
    /// Set once the database's state was restored from the directory: only then may
    /// a sync write (before, the state is not yet what the directory holds).
    started: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Signal {
    dirty: bool,
    stop: bool,
}

impl Persister {
    pub(crate) fn new(directory: Directory, delay: Duration) -> Arc<Self> {
        Arc::new(Persister {
            directory: Mutex::new(directory),
            signal: Mutex::default(),
            wake: Condvar::new(),
            delay,
            started: AtomicBool::new(false),
            thread: Mutex::default(),
        })
    }

    /// Starts the writer thread, which calls `sync` to write the current state.
    pub(crate) fn start(self: &Arc<Self>, sync: impl Fn() -> crate::Result<()> + Send + 'static) {
        self.started.store(true, Ordering::Release);
        let persister = Arc::clone(self);
        let thread =
            std::thread::Builder::new().name("chunkdb-writer".into()).spawn(move || persister.run(sync)).ok();
        *self.thread.lock() = thread;
    }

    /// Whether the state was restored and syncs may write.
    pub(crate) fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    fn run(&self, sync: impl Fn() -> crate::Result<()>) {
        loop {
            {
                let mut signal = self.signal.lock();
                while !signal.dirty && !signal.stop {
                    self.wake.wait(&mut signal);
                }
                if signal.stop {
                    return;
                }
                if !self.delay.is_zero() {
                    // Batch what follows; a stop cuts the wait short.
                    self.wake.wait_for(&mut signal, self.delay);
                    if signal.stop {
                        return;
                    }
                }
                signal.dirty = false;
            }
            // A failed sync is tried again at the next change, and `flush` (which
            // syncs itself) reports it.
            let _ = sync();
        }
    }

    /// Something changed: the writer syncs soon.
    pub(crate) fn notify(&self) {
        let mut signal = self.signal.lock();
        if !signal.dirty {
            signal.dirty = true;
            self.wake.notify_one();
        }
    }

    /// Stops the writer thread and waits for it.
    pub(crate) fn stop(&self) {
        self.signal.lock().stop = true;
        self.wake.notify_all();
        if let Some(thread) = self.thread.lock().take() {
            // A panic on the writer thread has nothing more to report here.
            let _ = thread.join();
        }
    }
}
