//! A chunk to its blob and back.
//!
//! Reading back restores the chunk from its layout alone, after checking everything
//! a query, a commit or the invalidation tracker relies on before the chunk is used:
//! the layout's checksum and archive, the row layout (keys in bounds and strictly
//! ordered inside each partition, partitions ordered), and the secondary-index
//! entries (ordered, naming rows of their partition). The records stay where they
//! are, in the mapped segment, and are checked (checksum, archive, every row's
//! handle) when first read. So do the task's reads, checked with the layout but
//! decoded only when invalidation first asks for them (a restart's first query needs
//! none of them; at 1,000 files they are 35,000 ranges). A blob that fails is
//! reported as damaged, never half used.

use std::ops::Range;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use rkyv::rancor;
use rkyv::tuple::{ArchivedTuple3, ArchivedTuple4};

/// A partition of the layout as archived: its key, where its rows end, their hash.
type ArchivedPartition = ArchivedTuple3<rkyv::Archived<u64>, rkyv::Archived<u32>, rkyv::Archived<u128>>;

use crate::hash::{ChunkId, ContentHash};
use crate::ident::{Ident, TaskId};
use crate::incremental::read_set::{ReadEntry, Recheck};
use crate::key::KeyRange;
use crate::persist::format::{
    self, ArchivedStoredChunk, ArchivedStoredRead, StoredChunk, StoredRead, StoredRow,
};
use crate::schema::{ArchiveBytes, RecordHandle, RecordKind, Schema};
use crate::store::chunk::{
    Chunk, ChunkReads, IndexEntries, IndexEntry, LiveCount, MappedReads, PackedHandle, PartitionSlice, Row,
};
use crate::store::records::{Records, SharedBytes};

/// The chunk's blob: its layout and its records, archived, behind a checksummed header.
pub(crate) fn encode<S: Schema>(chunk: &Chunk<S>) -> Result<Vec<u8>, String> {
    let partitions = chunk
        .partitions
        .iter()
        .map(|slice| (slice.partition.raw(), slice.rows.1, slice.hash.raw()))
        .collect();
    let (index_entries, index_keys) = match &chunk.indexed {
        Some(indexed) => (
            indexed
                .entries
                .iter()
                .map(|entry| (entry.index.raw(), entry.key_end, entry.row, entry.partition.raw()))
                .collect(),
            indexed.keys.to_vec(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let stored = StoredChunk {
        task: chunk.task.ident().raw(),
        parent: chunk.parent.map(|parent| parent.ident().raw()),
        dependencies: chunk.dependencies.iter().map(|id| id.raw()).collect(),
        keys: chunk.keys.to_vec(),
        rows: chunk
            .rows
            .iter()
            .map(|row| {
                let handle = row.handle.unpack::<S::Storage>();
                StoredRow { key_end: row.key_end, index: handle.index, kind: handle.kind.0 }
            })
            .collect(),
        partitions,
        output_hash: chunk.output_hash.raw(),
        reads: chunk.reads().iter().map(stored_read).collect(),
        records_checksum: chunk.records.checksum(),
        index_entries,
        index_keys,
    };
    let layout = rkyv::to_bytes::<rancor::Error>(&stored).map_err(|error| error.to_string())?;
    Ok(format::blob(chunk.id, &layout, chunk.records.bytes()))
}

fn stored_read(read: &ReadEntry) -> StoredRead {
    StoredRead {
        partition: read.partition().raw(),
        start: read.range().start().to_vec(),
        end: read.range().end().map(<[u8]>::to_vec),
        chunks: read.chunks().iter().map(|id| id.raw()).collect(),
        hits: read.hits() as u64,
        results: read.results().raw(),
        recheck: read.recheck_tag(),
    }
}

/// The chunk `id` back from its blob, the `blob` bytes of `segment`, checked (see the
/// module's docs); its records stay in `segment`.
pub(crate) fn decode<S: Schema>(
    segment: &SharedBytes,
    blob: Range<usize>,
    id: ChunkId,
    live: &Arc<AtomicUsize>,
) -> Result<Chunk<S>, String> {
    let bytes = AsRef::<[u8]>::as_ref(&**segment).get(blob.clone()).ok_or_else(|| {
        format!("the blob at {}..{} lies past the end of its segment", blob.start, blob.end)
    })?;
    let (layout_bytes, records) = format::open_blob(bytes, id)?;
    let layout = aligned(layout_bytes);
    // Validated in place: the layout's fields go straight into the chunk, without an
    // owned copy of the archive in between.
    let stored = rkyv::access::<ArchivedStoredChunk, rancor::Error>(&layout)
        .map_err(|error| format!("layout archive: {error}"))?;
    let task = TaskId::from_ident(Ident::from_raw(stored.task.to_native()));
    let parent = stored.parent.as_ref().map(|raw| TaskId::from_ident(Ident::from_raw(raw.to_native())));
    let rows = check_rows::<S>(stored)?;
    let partitions = partition_slices(&stored.partitions);
    let indexed = index_entries(stored, &partitions)?;
    let records = Records::mapped(
        Arc::clone(segment),
        blob.start + records.start,
        records.end - records.start,
        stored.records_checksum.to_native(),
    );
    let dependencies: Box<[ChunkId]> =
        stored.dependencies.iter().map(|raw| ChunkId::from_raw(raw.to_native())).collect();
    let heap_bytes = stored.reads.iter().map(check_read).sum::<Result<usize, String>>()?;
    let reads = match layout {
        Aligned::Borrowed(_) => {
            let start = blob.start + format::HEADER_LEN;
            let stored =
                StoredReads { segment: Arc::clone(segment), layout: start..start + layout_bytes.len() };
            ChunkReads::Mapped(Box::new(MappedReads { stored, decoded: OnceLock::new(), heap_bytes }))
        }
        // Copied bytes do not outlive this call: decoded now.
        Aligned::Copied(_) => ChunkReads::Built(stored.reads.iter().map(read_entry).collect()),
    };
    let mut chunk = Chunk {
        id,
        task,
        parent,
        output_hash: ContentHash::from_raw(stored.output_hash.to_native()),
        dependencies,
        keys: stored.keys.as_slice().into(),
        rows,
        partitions,
        records,
        reads,
        indexed,
        heap_bytes: 0,
        _live: LiveCount::new(live),
    };
    chunk.heap_bytes = chunk.estimate_heap_bytes();
    Ok(chunk)
}

/// The items of `items` until the first error, allocated once at their number:
/// collecting `Result`s into a box grows a vector from nothing (a restart decodes
/// thousands of chunks' rows).
fn collect_exact<T>(items: impl ExactSizeIterator<Item = Result<T, String>>) -> Result<Box<[T]>, String> {
    let mut collected = Vec::with_capacity(items.len());
    for item in items {
        collected.push(item?);
    }
    Ok(collected.into_boxed_slice())
}

/// The slices of partitions checked by [`check_rows`].
fn partition_slices(stored: &[ArchivedPartition]) -> Box<[PartitionSlice]> {
    let mut start = 0;
    stored
        .iter()
        .map(|ArchivedTuple3(partition, end, hash)| {
            let end = end.to_native();
            let slice = PartitionSlice {
                partition: Ident::from_raw(partition.to_native()),
                hash: ContentHash::from_raw(hash.to_native()),
                rows: (start, end),
            };
            start = end;
            slice
        })
        .collect()
}

/// The secondary-index entries, after checking that they are ordered by (index, key),
/// their keys in bounds, and each names a row of its partition.
fn index_entries(
    stored: &ArchivedStoredChunk,
    partitions: &[PartitionSlice],
) -> Result<Option<Box<IndexEntries>>, String> {
    if stored.index_entries.is_empty() {
        return if stored.index_keys.is_empty() {
            Ok(None)
        } else {
            Err("index keys without entries".into())
        };
    }
    if u32::try_from(stored.index_keys.len()).is_err() {
        return Err("more index key bytes than a chunk holds".into());
    }
    let keys = stored.index_keys.as_slice();
    let mut start = 0usize;
    let mut previous: Option<(u64, &[u8])> = None;
    let mut entries = Vec::with_capacity(stored.index_entries.len());
    for (at, ArchivedTuple4(index, key_end, row, partition)) in stored.index_entries.iter().enumerate() {
        let (index, key_end, row, partition) =
            (index.to_native(), key_end.to_native(), row.to_native(), partition.to_native());
        let end = key_end as usize;
        let key = keys
            .get(start..end)
            .ok_or_else(|| format!("index entry {at}'s key lies outside the index keys"))?;
        if previous.is_some_and(|previous| previous >= (index, key)) {
            return Err(format!("index entries {} and {at} are not in strict order", at.saturating_sub(1)));
        }
        let slice = partitions
            .binary_search_by_key(&partition, |slice| slice.partition.raw())
            .ok()
            .map(|found| &partitions[found])
            .filter(|slice| slice.range().contains(&(row as usize)))
            .ok_or_else(|| format!("index entry {at} names row {row}, which is not in its partition"))?;
        entries.push(IndexEntry { index: Ident::from_raw(index), key_end, row, partition: slice.partition });
        (start, previous) = (end, Some((index, key)));
    }
    if start != keys.len() {
        return Err("index key bytes past the last entry".into());
    }
    Ok(Some(Box::new(IndexEntries { entries: entries.into(), keys: keys.into() })))
}

/// `bytes` at an address rkyv can read archives from: mapped blobs already are; other
/// bytes are copied.
pub(crate) enum Aligned<'b> {
    Borrowed(&'b [u8]),
    Copied(ArchiveBytes),
}

impl std::ops::Deref for Aligned<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Aligned::Borrowed(bytes) => bytes,
            Aligned::Copied(bytes) => bytes,
        }
    }
}

pub(crate) fn aligned(bytes: &[u8]) -> Aligned<'_> {
    if (bytes.as_ptr() as usize).is_multiple_of(16) {
        Aligned::Borrowed(bytes)
    } else {
        let mut copy = ArchiveBytes::with_capacity(bytes.len());
        copy.extend_from_slice(bytes);
        Aligned::Copied(copy)
    }
}

/// The rows, after checking that they describe a chunk a commit could have built
/// (their handles are checked against the records when those are first read).
fn check_rows<S: Schema>(stored: &ArchivedStoredChunk) -> Result<Box<[Row]>, String> {
    let keys = stored.keys.as_slice();
    if u32::try_from(keys.len()).is_err() || u32::try_from(stored.rows.len()).is_err() {
        return Err("more rows or key bytes than a chunk holds".into());
    }
    let rows: Box<[Row]> = collect_exact(stored.rows.iter().enumerate().map(|(at, row)| {
        let handle = RecordHandle { kind: RecordKind(row.kind.to_native()), index: row.index.to_native() };
        let handle = PackedHandle::pack::<S::Storage>(handle).ok_or_else(|| {
            format!("row {at} names record {handle:?}, which no chunk of this schema holds")
        })?;
        Ok(Row { key_end: row.key_end.to_native(), handle })
    }))?;
    let mut start = 0;
    for (at, row) in rows.iter().enumerate() {
        let end = row.key_end as usize;
        if end < start || end > keys.len() {
            return Err(format!("row {at}'s key ends at {end}, outside the {} key bytes", keys.len()));
        }
        start = end;
    }
    let mut row = 0;
    let mut previous: Option<u64> = None;
    for ArchivedTuple3(partition, end, _) in stored.partitions.iter() {
        let (partition, end) = (partition.to_native(), end.to_native() as usize);
        if previous.is_some_and(|previous| previous >= partition) || end <= row || end > rows.len() {
            return Err("partitions out of order, empty, or past the rows".into());
        }
        for pair in row + 1..end {
            let (a, b) = (
                crate::store::chunk::row_key(keys, &rows, pair - 1),
                crate::store::chunk::row_key(keys, &rows, pair),
            );
            if a >= b {
                return Err(format!("rows {} and {pair} are not in strict key order", pair - 1));
            }
        }
        (row, previous) = (end, Some(partition));
    }
    if row != rows.len() {
        return Err("rows outside every partition".into());
    }
    Ok(rows)
}

/// Checks what [`read_entry`] relies on in `read` (the archive itself was validated
/// with the layout); returns the heap bytes the decoded read will hold (the sum
/// [`ReadEntry::heap_bytes`] makes, from the archive).
fn check_read(read: &ArchivedStoredRead) -> Result<usize, String> {
    if Recheck::restored(read.recheck).is_none() {
        return Err(format!("unknown recheck tag {}", read.recheck));
    }
    if usize::try_from(read.hits.to_native()).is_err() {
        return Err("a read's hit count overflows".into());
    }
    Ok(read.start.len()
        + read.end.as_ref().map_or(0, |end| end.len())
        + read.chunks.len() * size_of::<ChunkId>()
        + size_of::<ReadEntry>())
}

/// A read, after [`check_read`] passed on it.
fn read_entry(read: &ArchivedStoredRead) -> ReadEntry {
    ReadEntry::from_parts(
        Ident::from_raw(read.partition.to_native()),
        KeyRange::from_parts(read.start.as_slice(), read.end.as_ref().map(|end| end.as_slice())),
        read.chunks.iter().map(|raw| ChunkId::from_raw(raw.to_native())).collect(),
        usize::try_from(read.hits.to_native()).unwrap_or(usize::MAX),
        crate::hash::ContentHash::from_raw(read.results.to_native()),
        Recheck::restored(read.recheck).unwrap_or(Recheck::Never),
    )
}

/// Where a restored chunk's layout lies in its mapped segment, for decoding its reads
/// when they are first asked for (see [`ChunkReads`]).
pub(crate) struct StoredReads {
    segment: SharedBytes,
    layout: Range<usize>,
}

impl StoredReads {
    /// The reads, decoded from the layout [`decode`] validated and checked.
    pub(crate) fn decode(&self) -> Box<[ReadEntry]> {
        // In bounds: `decode` took the range from these bytes, and a segment's bytes
        // never change length.
        let layout = &AsRef::<[u8]>::as_ref(&*self.segment)[self.layout.clone()];
        debug_assert!(rkyv::access::<ArchivedStoredChunk, rancor::Error>(layout).is_ok());
        // SAFETY: `decode` validated exactly these bytes as an `ArchivedStoredChunk`
        // with rkyv's checked access (after their checksum), and they are 16-byte
        // aligned (it keeps a `StoredReads` only for a layout it did not have to copy).
        // They never change afterwards: the segment is a read-only map of a file
        // chunkdb never rewrites or truncates (or an owned buffer), which this struct
        // keeps alive. (Checked access would validate the whole layout a second time.)
        let stored = unsafe { rkyv::access_unchecked::<ArchivedStoredChunk>(layout) };
        stored.reads.iter().map(read_entry).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Database;
    use crate::reference::{DIAGNOSTICS, Diagnostic, Function, RefLang, SYMBOLS};

    fn shared(bytes: Vec<u8>) -> SharedBytes {
        let mut aligned = ArchiveBytes::with_capacity(bytes.len());
        aligned.extend_from_slice(&bytes);
        Arc::new(aligned)
    }

    #[test]
    fn a_chunk_reads_back_identical_and_a_forged_one_is_refused() {
        let db = Database::<RefLang>::new();
        let file = Ident::named("codec.rs");
        let mut writer = db.writer("parse:codec.rs");
        writer.insert(SYMBOLS, (file, "main"), Function::new("main", &[], None)).expect("valid");
        writer
            .insert(SYMBOLS, (file, "helper"), Function::new("helper", &["i32"], Some("u8")))
            .expect("valid");
        writer.insert(DIAGNOSTICS, (file, 2u8, 0u32), Diagnostic::new("unused", 2, 3)).expect("valid");
        writer.commit().expect("valid commit");
        let snapshot = db.snapshot();
        let chunk = snapshot.task_chunk(TaskId::new("parse:codec.rs")).expect("committed");
        let blob = shared(encode(chunk).expect("archivable"));
        let whole = 0..AsRef::<[u8]>::as_ref(&*blob).len();
        let back =
            decode::<RefLang>(&blob, whole.clone(), chunk.id, db.live_chunk_counter()).expect("intact");
        assert_eq!(back.id, chunk.id);
        assert_eq!(back.output_hash, chunk.output_hash);
        assert_eq!(back.partitions(), chunk.partitions());
        assert!(!back.is_checked(), "records are checked at first use, not when restored");
        let records: Vec<_> =
            back.records().expect("intact").map(|(p, k, r)| (p, k.to_owned(), r.to_owned())).collect();
        let expected: Vec<_> =
            chunk.records().expect("built").map(|(p, k, r)| (p, k.to_owned(), r.to_owned())).collect();
        assert_eq!(records, expected);
        assert!(decode::<RefLang>(&blob, whole, ChunkId::from_raw(1), db.live_chunk_counter()).is_err());
    }

    #[test]
    fn restored_reads_are_decoded_when_first_asked_for_and_equal_the_recorded_ones() {
        let db = Database::<RefLang>::new();
        let file = Ident::named("reads.rs");
        let mut writer = db.writer("parse:reads.rs");
        writer.insert(SYMBOLS, (file, "main"), Function::new("main", &[], None)).expect("valid");
        writer.commit().expect("valid commit");
        let check = db.task("check:reads.rs");
        assert_eq!(check.get(SYMBOLS, (file, "main")).expect("valid key").len(), 1);
        assert!(check.query(SYMBOLS).begins_with((file,)).execute().expect("valid prefix").len() == 1);
        assert!(check.get(SYMBOLS, (file, "absent")).expect("valid key").is_empty());
        check.insert(DIAGNOSTICS, (file, 1u8, 0u32), Diagnostic::new("checked", 1, 0)).expect("valid");
        let receipt = check.commit().expect("valid commit");
        let snapshot = db.snapshot();
        let chunk = snapshot.task_chunk(receipt.task).expect("committed");
        assert_eq!(chunk.reads().len(), 3);
        let blob = shared(encode(chunk).expect("archivable"));
        let whole = 0..AsRef::<[u8]>::as_ref(&*blob).len();
        let back = decode::<RefLang>(&blob, whole, chunk.id, db.live_chunk_counter()).expect("intact");
        let ChunkReads::Mapped(mapped) = &back.reads else { panic!("an aligned layout is mapped") };
        let decoded = &mapped.decoded;
        assert!(decoded.get().is_none(), "nothing is decoded before it is asked for");
        assert_eq!(
            back.heap_bytes,
            chunk.heap_bytes - chunk.records.heap_bytes(),
            "counted from the layout as the decoded reads hold (mapped records hold no heap)"
        );
        assert_eq!(back.reads(), chunk.reads());
        assert!(decoded.get().is_some());
        assert_eq!(back.reads.heap_bytes(), chunk.reads.heap_bytes());
    }

    #[test]
    fn damaged_records_are_found_at_first_use_and_never_read() {
        let db = Database::<RefLang>::new();
        let mut writer = db.writer("parse:damaged.rs");
        writer
            .insert(DIAGNOSTICS, (Ident::named("damaged.rs"), 2u8, 0u32), Diagnostic::new("x", 2, 3))
            .expect("valid");
        writer.commit().expect("valid commit");
        let snapshot = db.snapshot();
        let chunk = snapshot.task_chunk(TaskId::new("parse:damaged.rs")).expect("committed");
        let mut bytes = encode(chunk).expect("archivable");
        let (_, records) = format::open_blob(&bytes, chunk.id).expect("intact");
        bytes[records.start] ^= 0x40;
        let blob = shared(bytes);
        let whole = 0..AsRef::<[u8]>::as_ref(&*blob).len();
        let back =
            decode::<RefLang>(&blob, whole, chunk.id, db.live_chunk_counter()).expect("the layout is intact");
        let error = back.check().expect_err("the records changed");
        assert!(matches!(error, crate::Error::DamagedRecords { .. }), "{error}");
        assert!(back.records().is_err());
        assert_ne!(back.record_hash(0), chunk.record_hash(0), "a damaged record never compares equal");
    }
}
