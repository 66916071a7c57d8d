//! A chunk's records: one rkyv archive of the schema's storage, built at commit or
//! mapped from a segment file, and checked once before any record of it is read.
//!
//! Record views point into the archive whatever its origin, so a chunk restored from
//! disk answers queries in place, without being deserialised. An archive built by a
//! commit is valid by construction; a mapped one is checked at its first use
//! (checksum, then rkyv validation, then the rows' handles), and a failed check is
//! remembered and reported, never read past.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use crate::schema::{ArchiveBytes, RecordStorage};
use crate::store::chunk::{PackedHandle, Row};

/// Bytes shared by the chunks that lie in them: a mapped (or read) segment file.
pub(crate) type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

enum Bytes {
    /// Archived at commit: valid by construction.
    Built(ArchiveBytes),
    /// A stretch of a segment, with the checksum its chunk's layout recorded.
    Mapped { segment: SharedBytes, start: usize, len: usize, checksum: u128 },
}

/// A chunk's records (see the module's docs).
pub(crate) struct Records<T: RecordStorage> {
    bytes: Bytes,
    /// Set once: whether the archive may be read, or what is wrong with it.
    checked: OnceLock<Result<(), String>>,
    _storage: PhantomData<fn() -> T>,
}

impl<T: RecordStorage> Records<T> {
    /// The archive a commit just built, trimmed to its length: the serializer grows
    /// its buffer by doubling, and a chunk keeps its archive for as long as it lives.
    pub(crate) fn built(mut bytes: ArchiveBytes) -> Self {
        bytes.shrink_to_fit();
        Records { bytes: Bytes::Built(bytes), checked: OnceLock::from(Ok(())), _storage: PhantomData }
    }

    /// `len` bytes of `segment` from `start` (16-byte aligned, inside the segment:
    /// the caller checked both), to be checked against `checksum` at first use.
    pub(crate) fn mapped(segment: SharedBytes, start: usize, len: usize, checksum: u128) -> Self {
        Records {
            bytes: Bytes::Mapped { segment, start, len, checksum },
            checked: OnceLock::new(),
            _storage: PhantomData,
        }
    }

    /// The archive's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Built(bytes) => bytes,
            Bytes::Mapped { segment, start, len, .. } => {
                AsRef::<[u8]>::as_ref(&**segment).get(*start..start + len).unwrap_or(&[])
            }
        }
    }

    /// The archive's checksum: the one recorded with a mapped archive (so damage
    /// that happened on disk stays detectable when the chunk is written again), or
    /// computed for a built one.
    pub(crate) fn checksum(&self) -> u128 {
        match &self.bytes {
            Bytes::Built(bytes) => crate::persist::format::checksum(bytes),
            Bytes::Mapped { checksum, .. } => *checksum,
        }
    }

    /// Heap bytes held: a built archive's; a mapped one lives in the page cache.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.bytes {
            Bytes::Built(bytes) => bytes.capacity(),
            Bytes::Mapped { .. } => 0,
        }
    }

    /// Whether the archive was checked (or built here) and passed.
    pub(crate) fn is_checked(&self) -> bool {
        matches!(self.checked.get(), Some(Ok(())))
    }

    /// The archive, checked against `rows` the first time it is asked for.
    ///
    /// # Errors
    /// What is wrong with the bytes, every time it is asked for after a failed check.
    pub(crate) fn archive(&self, rows: &[Row]) -> Result<&T::Archived, String> {
        match self.checked.get_or_init(|| self.check(rows)) {
            Ok(()) => Ok(self.view()),
            Err(reason) => Err(reason.clone()),
        }
    }

    /// The archive of records already checked: only called once [`archive`]
    /// succeeded (every hit is made from a checked chunk).
    pub(crate) fn checked_archive(&self, rows: &[Row]) -> &T::Archived {
        match self.archive(rows) {
            Ok(archived) => archived,
            Err(reason) => panic!("a record of a damaged chunk was read before its check: {reason}"),
        }
    }

    fn view(&self) -> &T::Archived {
        debug_assert!(self.is_checked());
        // SAFETY: `view` is only reached once `checked` holds `Ok`: either the bytes
        // were produced by rkyv's serializer for `T` (`built`), or `check` validated
        // exactly these bytes as a `T::Archived` with rkyv's checked access. The bytes
        // never change afterwards: a built archive is owned and immutable, and a
        // mapped one is a read-only map of a segment file chunkdb never rewrites or
        // truncates. Both are 16-byte aligned (`ArchiveBytes`, segment offsets).
        // (Checked access on every read would validate the whole archive per record.)
        unsafe { rkyv::access_unchecked::<T::Archived>(self.bytes()) }
    }

    fn check(&self, rows: &[Row]) -> Result<(), String> {
        let Bytes::Mapped { checksum, len, .. } = &self.bytes else { return Ok(()) };
        let bytes = self.bytes();
        if bytes.len() != *len {
            return Err("the records lie past the end of their segment".into());
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(16) {
            return Err("the records are not 16-byte aligned in their segment".into());
        }
        if crate::persist::format::checksum(bytes) != *checksum {
            return Err("records checksum mismatch: the bytes changed after they were written".into());
        }
        let archived = rkyv::access::<T::Archived, rkyv::rancor::Error>(bytes)
            .map_err(|error| format!("records archive: {error}"))?;
        check_handles::<T>(archived, rows)
    }
}

/// Every row names a record of the archive, and each record exactly one row.
fn check_handles<T: RecordStorage>(archived: &T::Archived, rows: &[Row]) -> Result<(), String> {
    if T::len(archived) != rows.len() {
        return Err(format!("{} rows for {} records", rows.len(), T::len(archived)));
    }
    for (at, row) in rows.iter().enumerate() {
        let handle = row.handle.unpack::<T>();
        if !T::contains(archived, handle) {
            return Err(format!("row {at} names record {handle:?}, which the records do not hold"));
        }
    }
    let mut handles: Vec<PackedHandle> = rows.iter().map(|row| row.handle).collect();
    handles.sort_unstable();
    if handles.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err("two rows name the same record".into());
    }
    Ok(())
}
