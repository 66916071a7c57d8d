//! A chunk to its blob and back.
//!
//! Reading back checks everything a query, a commit or the invalidation tracker
//! relies on before the chunk is used: the row layout (keys in bounds and strictly
//! ordered inside each partition, partitions ordered, every record handle inside the
//! storage), then recomputes the partition hashes, the output hash and the chunk id
//! exactly as a commit does. A blob that passes is the chunk that was written; one
//! that does not is reported as damaged, never half used.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rkyv::rancor;

use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::incremental::read_set::{ReadEntry, Recheck};
use crate::key::KeyRange;
use crate::persist::format::{self, StoredChunk, StoredRead, StoredRow};
use crate::schema::{ArchiveBytes, RecordHandle, RecordKind, RecordStorage, Schema};
use crate::store::chunk::{Chunk, LiveCount, Row};
use crate::store::writer::hash_partitions;

/// The chunk's blob: its layout and its records, archived, behind a checksummed header.
pub(crate) fn encode<S: Schema>(chunk: &Chunk<S>) -> Result<Vec<u8>, String> {
    let mut partitions = Vec::with_capacity(chunk.partitions.len());
    for slice in chunk.partitions.iter() {
        partitions.push((slice.partition.raw(), slice.rows.1));
    }
    let stored = StoredChunk {
        task: chunk.task.ident().raw(),
        parent: chunk.parent.map(|parent| parent.ident().raw()),
        dependencies: chunk.dependencies.iter().map(|id| id.raw()).collect(),
        keys: chunk.keys.to_vec(),
        rows: chunk
            .rows
            .iter()
            .map(|row| StoredRow { key_end: row.key_end, index: row.handle.index, kind: row.handle.kind.0 })
            .collect(),
        partitions,
        reads: chunk.reads.iter().map(stored_read).collect(),
    };
    let layout = rkyv::to_bytes::<rancor::Error>(&stored).map_err(|error| error.to_string())?;
    let records = chunk.storage.to_archive()?;
    Ok(format::blob(chunk.id, &layout, &records))
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

/// The chunk `id` back from its blob, checked (see the module's docs).
pub(crate) fn decode<S: Schema>(
    blob: &[u8],
    id: ChunkId,
    live: &Arc<AtomicUsize>,
) -> Result<Chunk<S>, String> {
    let (layout, records) = format::open_blob(blob, id)?;
    let stored = rkyv::from_bytes::<StoredChunk, rancor::Error>(&aligned(layout))
        .map_err(|error| format!("layout archive: {error}"))?;
    let storage =
        S::Storage::from_archive(&aligned(records)).map_err(|error| format!("records archive: {error}"))?;
    let task = TaskId::from_ident(Ident::from_raw(stored.task));
    let parent = stored.parent.map(|raw| TaskId::from_ident(Ident::from_raw(raw)));
    let rows = check_rows(&stored, &storage)?;
    let keys: Box<[u8]> = stored.keys.into();
    let mut partition_of = Vec::with_capacity(rows.len());
    for (partition, end) in &stored.partitions {
        partition_of.resize(*end as usize, Ident::from_raw(*partition));
    }
    let key = |row: &usize| crate::store::chunk::row_key(&keys, &rows, *row);
    let numbered: Vec<usize> = (0..rows.len()).collect();
    let (partitions, output_hash) =
        hash_partitions(&numbered, |row| partition_of[*row], key, |row| rows[*row].handle, &storage);
    let dependencies: Box<[ChunkId]> = stored.dependencies.iter().copied().map(ChunkId::from_raw).collect();
    let reads = stored.reads.into_iter().map(read_entry).collect::<Result<Box<[ReadEntry]>, String>>()?;
    let recomputed = ChunkId::compute(task, output_hash, ChunkId::inputs_hash(parent, &dependencies, &reads));
    if recomputed != id {
        return Err(format!(
            "its records and reads hash to chunk {recomputed}, not to the chunk it was stored as"
        ));
    }
    let indexed = if S::indexes().is_empty() {
        None
    } else {
        crate::store::secondary::entries_of::<S>(task, &partitions, &keys, &rows, &storage)
            .map_err(|error| error.to_string())?
    };
    let mut chunk = Chunk {
        id,
        task,
        parent,
        output_hash,
        dependencies,
        keys,
        rows,
        partitions: partitions.into(),
        storage,
        reads,
        indexed,
        heap_bytes: 0,
        _live: LiveCount::new(live),
    };
    chunk.heap_bytes = chunk.estimate_heap_bytes();
    Ok(chunk)
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

/// The rows, after checking that they describe a chunk a commit could have built.
fn check_rows<T: RecordStorage>(stored: &StoredChunk, storage: &T) -> Result<Box<[Row]>, String> {
    let keys = stored.keys.len();
    if u32::try_from(keys).is_err() || u32::try_from(stored.rows.len()).is_err() {
        return Err("more rows or key bytes than a chunk holds".into());
    }
    let rows: Box<[Row]> = stored
        .rows
        .iter()
        .map(|row| Row {
            key_end: row.key_end,
            handle: RecordHandle { kind: RecordKind(row.kind), index: row.index },
        })
        .collect();
    let mut start = 0;
    for (at, row) in rows.iter().enumerate() {
        let end = row.key_end as usize;
        if end < start || end > keys {
            return Err(format!("row {at}'s key ends at {end}, outside the {keys} key bytes"));
        }
        if !storage.contains(row.handle) {
            return Err(format!("row {at} names record {:?}, which the records do not hold", row.handle));
        }
        start = end;
    }
    if storage.len() != rows.len() {
        return Err(format!("{} rows for {} records", rows.len(), storage.len()));
    }
    let mut row = 0;
    let mut previous: Option<u64> = None;
    for &(partition, end) in &stored.partitions {
        let end = end as usize;
        if previous.is_some_and(|previous| previous >= partition) || end <= row || end > rows.len() {
            return Err("partitions out of order, empty, or past the rows".into());
        }
        for pair in row + 1..end {
            let (a, b) = (
                crate::store::chunk::row_key(&stored.keys, &rows, pair - 1),
                crate::store::chunk::row_key(&stored.keys, &rows, pair),
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
    let mut handles: Vec<RecordHandle> = rows.iter().map(|row| row.handle).collect();
    handles.sort_unstable();
    if handles.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err("two rows name the same record".into());
    }
    Ok(rows)
}

fn read_entry(read: StoredRead) -> Result<ReadEntry, String> {
    let recheck =
        Recheck::restored(read.recheck).ok_or_else(|| format!("unknown recheck tag {}", read.recheck))?;
    Ok(ReadEntry::from_parts(
        Ident::from_raw(read.partition),
        KeyRange::from_parts(read.start.into(), read.end.map(Vec::into_boxed_slice)),
        read.chunks.into_iter().map(ChunkId::from_raw).collect(),
        usize::try_from(read.hits).map_err(|_| "a read's hit count overflows".to_string())?,
        crate::hash::ContentHash::from_raw(read.results),
        recheck,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Database;
    use crate::reference::{DIAGNOSTICS, Diagnostic, Function, RefLang, SYMBOLS};

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
        let blob = encode(chunk).expect("archivable");
        let back = decode::<RefLang>(&blob, chunk.id, db.live_chunk_counter()).expect("intact");
        assert_eq!(back.id, chunk.id);
        assert_eq!(back.output_hash, chunk.output_hash);
        assert_eq!(back.partitions(), chunk.partitions());
        let records: Vec<_> = back.records().map(|(p, k, r)| (p, k.to_owned(), r.to_owned())).collect();
        let expected: Vec<_> = chunk.records().map(|(p, k, r)| (p, k.to_owned(), r.to_owned())).collect();
        assert_eq!(records, expected);
        assert!(decode::<RefLang>(&blob, ChunkId::from_raw(1), db.live_chunk_counter()).is_err());
    }
}
