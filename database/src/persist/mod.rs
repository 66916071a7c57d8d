//! Persistence: a database whose chunks live in a directory, so a language server
//! restarts warm.
//!
//! [`OpenOptions::open`] (or [`Database::open`](crate::Database::open)) opens a
//! directory and restores what it holds: every task's current version, the
//! partition and secondary indexes, the read-sets and reverse dependencies, and the
//! stale set. Records are not read: the segments are mapped, and queries read a
//! restored chunk's records in place there, through the same record views as a
//! chunk built in memory. Each restored chunk's records are checked (checksum, rkyv
//! validation, rows) once, when first read; a failed check is
//! [`Error::DamagedRecords`](crate::Error::DamagedRecords) from the query that met it. Commits never wait for the disk: a background writer notices each
//! publication, waits [`OpenOptions::write_delay`] to batch what follows, and syncs
//! the directory to the state current then. [`Database::flush`](crate::Database::flush)
//! returns once everything committed before it is durable.
//!
//! # The durability guarantee
//!
//! After `flush()` returns `Ok`, a crash (of the process or of the machine, on a file
//! system that honours fsync) leaves the directory holding the flushed state or a
//! later one that the background writer completed: every task's version, the clock
//! and the stale set exactly as they were at one publication, never a mix of two.
//! Without a flush, what is on disk is the last state the background writer
//! completed, typically [`write_delay`](OpenOptions::write_delay) old. Superseded
//! versions are not persisted: a restart restores current versions only.
//!
//! # The directory
//!
//! - `LOCK`: an OS file lock, held while a database has the directory open.
//! - `seg-NNNNNNNNNN.chunks`: immutable segment files of checksummed chunk blobs (rkyv
//!   archives), each written whole and fsynced once, deleted once no manifest
//!   points into it and no restored chunk maps it. A sync writes the chunks not on disk yet into one new segment.
//! - `MANIFEST`: the clock, the live segments, every task's current version and where
//!   it lies, the stale set and task names; replaced atomically (write
//!   `MANIFEST.tmp`, fsync, rename, fsync the directory).
//!
//! Bounded: superseded and collected versions leave the manifest at the next sync; a
//! segment whose live share falls under [`OpenOptions::compact_below`] is compacted
//! (its live chunks written again, the file deleted once no restored chunk still
//! reads its records there).

pub(crate) mod codec;
pub(crate) mod directory;
pub(crate) mod format;
pub(crate) mod restore;
pub(crate) mod writer;

use std::path::Path;
use std::time::Duration;

use crate::database::Database;
use crate::error::Result;
use crate::schema::Schema;

/// How a persisted database is opened; [`OpenOptions::open`] opens it.
///
/// ```
/// use chunkdb_database::reference::{Function, RefLang, SYMBOLS};
/// use chunkdb_database::{Database, Ident, OpenOptions};
/// # let dir = std::env::temp_dir().join(format!("chunkdb-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
///
/// let db = OpenOptions::new().open::<RefLang>(&dir)?;
/// let file = Ident::named("lib.rs");
/// let mut parse = db.writer("parse:lib.rs");
/// parse.insert(SYMBOLS, (file, "main"), Function::new("main", &[], None))?;
/// parse.commit()?;
/// db.flush()?;
/// drop(db);
///
/// // A restart: the records are back, and re-submitting the same input stores nothing.
/// let db = Database::<RefLang>::open(&dir)?;
/// assert_eq!(db.snapshot().query(SYMBOLS).begins_with((file,)).execute()?.len(), 1);
/// let mut parse = db.writer("parse:lib.rs");
/// parse.insert(SYMBOLS, (file, "main"), Function::new("main", &[], None))?;
/// assert!(!parse.commit()?.stored);
/// # drop(db);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), chunkdb_database::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub(crate) discard_damaged: bool,
    pub(crate) check_at_open: bool,
    pub(crate) write_delay: Duration,
    pub(crate) compaction: directory::Compaction,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            discard_damaged: false,
            check_at_open: false,
            write_delay: Duration::from_millis(20),
            compaction: directory::Compaction {
                live_share_below: 0.5,
                max_segments: 64,
                max_garbage_share: 0.1,
            },
        }
    }
}

impl OpenOptions {
    /// The defaults: refuse damaged directories, batch writes for 20 ms, compact
    /// segments under half live, keep at most 10 % of the directory dead, at most 64
    /// segments.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to open a directory with damaged chunks (or a damaged manifest) by
    /// dropping what is damaged: the tasks of damaged chunks lose their version and
    /// are scheduled to run again (entry tasks are simply gone until re-submitted),
    /// tasks that read them are made stale, and a damaged manifest opens as an empty
    /// database. Off by default: `open` then fails with
    /// [`Error::Corrupt`](crate::Error::Corrupt) naming every damaged chunk, and the
    /// directory is left as it was.
    #[must_use]
    pub fn discard_damaged(mut self, discard: bool) -> Self {
        self.discard_damaged = discard;
        self
    }

    /// Whether to check every chunk's records when the directory is opened, rather
    /// than each chunk's at its first use (the default, which keeps a restart's cost
    /// to what the first queries read). With [`discard_damaged`](Self::discard_damaged),
    /// this finds and drops every damaged chunk up front: the way to recover after a
    /// query reported [`Error::DamagedRecords`](crate::Error::DamagedRecords).
    #[must_use]
    pub fn check_at_open(mut self, check: bool) -> Self {
        self.check_at_open = check;
        self
    }

    /// How long the background writer waits after a commit before writing, so a
    /// burst of commits is written as one segment. Zero writes after every commit.
    #[must_use]
    pub fn write_delay(mut self, delay: Duration) -> Self {
        self.write_delay = delay;
        self
    }

    /// Compacts a segment file once less than `share` (0 to 1) of its bytes belong
    /// to current versions: its live chunks are written again and the file deleted.
    #[must_use]
    pub fn compact_below(mut self, share: f64) -> Self {
        self.compaction.live_share_below = share.clamp(0.0, 1.0);
        self
    }

    /// Keeps at most `share` (0 to 1) of the directory's bytes dead (superseded or
    /// collected versions): past it, the segments with the smallest live share are
    /// compacted. The directory stays within `1 / (1 - share)` of its live bytes,
    /// for a write amplification of about `1 / share`.
    #[must_use]
    pub fn max_garbage(mut self, share: f64) -> Self {
        self.compaction.max_garbage_share = share.clamp(0.0, 1.0);
        self
    }

    /// Opens the database persisted in `dir`, creating the directory if it does not
    /// exist, and locks it for this process.
    ///
    /// # Errors
    /// [`Error::Locked`](crate::Error::Locked) if another database holds the
    /// directory; [`Error::SchemaMismatch`](crate::Error::SchemaMismatch) or
    /// [`Error::FormatMismatch`](crate::Error::FormatMismatch) if it was written by
    /// another schema or another on-disk format;
    /// [`Error::CorruptManifest`](crate::Error::CorruptManifest) or
    /// [`Error::Corrupt`](crate::Error::Corrupt) if files are damaged (see
    /// [`discard_damaged`](Self::discard_damaged));
    /// [`Error::Io`](crate::Error::Io) if the operating system refuses. On error
    /// nothing in the directory was changed.
    pub fn open<S: Schema>(&self, dir: impl AsRef<Path>) -> Result<Database<S>> {
        Database::open_with(dir.as_ref(), self)
    }
}
