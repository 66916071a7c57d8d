//! The on-disk format: fixed little-endian headers, and rkyv archives behind them.
//!
//! A *segment* file is a 64-byte header followed by chunk blobs, each at a 16-byte
//! aligned offset (rkyv reads archives in place only when they are aligned). A blob is
//! a 64-byte header (magic, chunk id, the two lengths, an xxh3-128 checksum of the
//! layout) and two archives: the chunk's layout ([`StoredChunk`], which holds the
//! records' checksum) and its records (the schema's storage, archived by the code
//! `chunk_schema!` generates). Queries read the records in place, in the mapped file.
//!
//! The *manifest* is a 64-byte header (magic, format, schema fingerprint, length,
//! checksum) and one archive ([`StoredManifest`]): the clock, the live segments, every
//! task's current version and where it lies, the stale set and the task names.
//!
//! Nothing read from disk is trusted: every length is bounds-checked, every archive is
//! checksummed and validated by rkyv before it is read (a layout when the directory is
//! opened, records at their first use), and a layout's rows, partitions and index
//! entries are checked to be ones a commit could have built.

use std::ops::Range;

use xxhash_rust::xxh3::xxh3_128;

use crate::hash::ChunkId;

/// The on-disk format this build reads and writes. Bump it with any change to a
/// header or a stored type.
pub(crate) const FORMAT_VERSION: u32 = 2;

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"CHKDBSEG";
pub(crate) const MANIFEST_MAGIC: &[u8; 8] = b"CHKDBMAN";
pub(crate) const BLOB_MAGIC: &[u8; 8] = b"CHKDBBLB";
pub(crate) const HEADER_LEN: usize = 64;

/// Rounds `at` up to the alignment archives need.
pub(crate) fn align16(at: usize) -> usize {
    at.div_ceil(16) * 16
}

/// A little-endian header being written.
pub(crate) struct HeaderWriter(Vec<u8>);

impl HeaderWriter {
    pub(crate) fn new(magic: &[u8; 8]) -> Self {
        let mut bytes = Vec::with_capacity(HEADER_LEN);
        bytes.extend_from_slice(magic);
        HeaderWriter(bytes)
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(crate) fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(crate) fn u128(mut self, value: u128) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(crate) fn finish(mut self) -> [u8; HEADER_LEN] {
        self.0.resize(HEADER_LEN, 0);
        let mut header = [0; HEADER_LEN];
        header.copy_from_slice(&self.0);
        header
    }
}

/// A little-endian header being read: every read is bounds-checked.
pub(crate) struct HeaderReader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> HeaderReader<'b> {
    /// The header at the start of `bytes`, if it holds one with `magic`.
    pub(crate) fn new(bytes: &'b [u8], magic: &[u8; 8]) -> Result<Self, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than a {HEADER_LEN}-byte header", bytes.len()));
        }
        if &bytes[..8] != magic {
            return Err(format!(
                "wrong magic bytes {:?} (expected {:?})",
                String::from_utf8_lossy(&bytes[..8]),
                String::from_utf8_lossy(magic)
            ));
        }
        Ok(HeaderReader { bytes: &bytes[..HEADER_LEN], at: 8 })
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        // The fields of every header fit in its 64 bytes: a short read is a bug here,
        // not bad input, and reads zeros rather than panicking.
        if let Some(bytes) = self.bytes.get(self.at..self.at + N) {
            out.copy_from_slice(bytes);
        }
        self.at += N;
        out
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    pub(crate) fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take())
    }
}

/// The xxh3-128 checksum of `bytes` (one shot: the streaming hasher copies its
/// input through a buffer, and a first query after a restart checks every chunk it
/// reads).
pub(crate) fn checksum(bytes: &[u8]) -> u128 {
    xxh3_128(bytes)
}

/// A segment's header: format, schema fingerprint, its id.
pub(crate) fn segment_header(fingerprint: u64, segment: u64) -> [u8; HEADER_LEN] {
    HeaderWriter::new(SEGMENT_MAGIC).u32(FORMAT_VERSION).u32(0).u64(fingerprint).u64(segment).finish()
}

/// A chunk blob: its header (with the layout's checksum; the records' is in the
/// layout), then its layout and records archives, each padded to 16 bytes. Returns
/// the blob's bytes (its length is a multiple of 16).
pub(crate) fn blob(id: ChunkId, layout: &[u8], records: &[u8]) -> Vec<u8> {
    let header = HeaderWriter::new(BLOB_MAGIC)
        .u128(id.raw())
        .u64(layout.len() as u64)
        .u64(records.len() as u64)
        .u128(checksum(layout))
        .finish();
    let mut out = Vec::with_capacity(HEADER_LEN + align16(layout.len()) + align16(records.len()));
    out.extend_from_slice(&header);
    out.extend_from_slice(layout);
    out.resize(HEADER_LEN + align16(layout.len()), 0);
    out.extend_from_slice(records);
    out.resize(align16(out.len()), 0);
    out
}

/// A blob's layout archive, after its header and the layout's checksum were checked
/// against `id`, and where its records archive lies in `bytes` (checked when first
/// read, against the checksum the layout records).
pub(crate) fn open_blob(bytes: &[u8], id: ChunkId) -> Result<(&[u8], Range<usize>), String> {
    let mut header = HeaderReader::new(bytes, BLOB_MAGIC)?;
    let stored_id = header.u128();
    let layout_len = usize::try_from(header.u64()).map_err(|_| "layout length overflows".to_string())?;
    let records_len = usize::try_from(header.u64()).map_err(|_| "records length overflows".to_string())?;
    let sum = header.u128();
    if stored_id != id.raw() {
        return Err(format!("the blob holds chunk {}, not this one", ChunkId::from_raw(stored_id)));
    }
    let layout_end = HEADER_LEN.checked_add(layout_len).ok_or("layout length overflows")?;
    let records_start = HEADER_LEN.checked_add(align16(layout_len)).ok_or("layout length overflows")?;
    let records_end = records_start.checked_add(records_len).ok_or("records length overflows")?;
    if records_end > bytes.len() || layout_end > bytes.len() {
        return Err(format!("truncated: the blob needs {records_end} bytes and has {}", bytes.len()));
    }
    let layout = &bytes[HEADER_LEN..layout_end];
    if checksum(layout) != sum {
        return Err("layout checksum mismatch: the bytes changed after they were written".into());
    }
    Ok((layout, records_start..records_end))
}

/// A chunk's layout, as persisted: everything but its records, which are archived by
/// the schema's storage beside it, with their checksum. The hashes and index entries
/// computed from the records at commit are stored too, so a chunk is restored
/// without reading its records: they are read (and checked) only when first used.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
pub(crate) struct StoredChunk {
    pub(crate) task: u64,
    pub(crate) parent: Option<u64>,
    pub(crate) dependencies: Vec<u128>,
    /// Every row's sort key, concatenated in row order.
    pub(crate) keys: Vec<u8>,
    pub(crate) rows: Vec<StoredRow>,
    /// Each partition's rows: its key, where its rows end, and their hash.
    pub(crate) partitions: Vec<(u64, u32, u128)>,
    pub(crate) output_hash: u128,
    pub(crate) reads: Vec<StoredRead>,
    /// The xxh3-128 checksum of the records archive.
    pub(crate) records_checksum: u128,
    /// Secondary-index entries: index, end of its key in `index_keys`, row, partition.
    pub(crate) index_entries: Vec<(u64, u32, u32, u64)>,
    pub(crate) index_keys: Vec<u8>,
}

/// One row: where its key ends in the keys, and its record's kind and column index.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy)]
pub(crate) struct StoredRow {
    pub(crate) key_end: u32,
    pub(crate) index: u32,
    pub(crate) kind: u16,
}

/// One read of the task's run, exactly as it was recorded.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug)]
pub(crate) struct StoredRead {
    pub(crate) partition: u64,
    pub(crate) start: Vec<u8>,
    pub(crate) end: Option<Vec<u8>>,
    pub(crate) chunks: Vec<u128>,
    pub(crate) hits: u64,
    pub(crate) results: u128,
    pub(crate) recheck: u8,
}

/// The directory's table of contents at one clock value.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Default)]
pub(crate) struct StoredManifest {
    pub(crate) clock: u64,
    /// The segments the versions lie in, by id.
    pub(crate) segments: Vec<u64>,
    pub(crate) versions: Vec<StoredVersion>,
    pub(crate) stale: Vec<StoredStale>,
    /// Task names, for messages and `Debug` after a restart.
    pub(crate) names: Vec<(u64, String)>,
}

/// A task's current version and where its blob lies.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredVersion {
    pub(crate) task: u64,
    pub(crate) chunk: u128,
    pub(crate) committed_at: u64,
    pub(crate) parent: Option<u64>,
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// A task of the stale set: the parent to run it under, and whether it was scheduled
/// (rather than invalidated by a changed read).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredStale {
    pub(crate) task: u64,
    pub(crate) parent: Option<u64>,
    pub(crate) scheduled: bool,
}

/// The manifest's bytes: header and archive.
pub(crate) fn manifest_bytes(fingerprint: u64, manifest: &StoredManifest) -> Result<Vec<u8>, String> {
    let body = rkyv::to_bytes::<rkyv::rancor::Error>(manifest).map_err(|error| error.to_string())?;
    let header = HeaderWriter::new(MANIFEST_MAGIC)
        .u32(FORMAT_VERSION)
        .u32(0)
        .u64(fingerprint)
        .u64(body.len() as u64)
        .u128(checksum(&body))
        .finish();
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&body);
    Ok(out)
}

/// What a manifest's header says, checked; the archive is validated separately.
pub(crate) struct ManifestHeader {
    pub(crate) format: u32,
    pub(crate) fingerprint: u64,
}

/// Checks a manifest's header and checksum and returns the header and the archive's
/// bytes. Format and fingerprint are returned for the caller to compare (they are
/// distinct errors).
pub(crate) fn open_manifest(bytes: &[u8]) -> Result<(ManifestHeader, &[u8]), String> {
    let mut header = HeaderReader::new(bytes, MANIFEST_MAGIC)?;
    let format = header.u32();
    let _reserved = header.u32();
    let fingerprint = header.u64();
    let len = usize::try_from(header.u64()).map_err(|_| "length overflows".to_string())?;
    let sum = header.u128();
    let head = ManifestHeader { format, fingerprint };
    if format != FORMAT_VERSION {
        // The rest may mean something else in another format: do not look further.
        return Ok((head, &[]));
    }
    let body =
        bytes.get(HEADER_LEN..HEADER_LEN.saturating_add(len)).filter(|body| body.len() == len).ok_or_else(
            || format!("truncated: the header announces {len} bytes, the file holds {}", bytes.len()),
        )?;
    if checksum(body) != sum {
        return Err("checksum mismatch: the bytes changed after they were written".into());
    }
    Ok((head, body))
}

/// A segment header's format and fingerprint.
pub(crate) fn open_segment_header(bytes: &[u8], segment: u64) -> Result<ManifestHeader, String> {
    let mut header = HeaderReader::new(bytes, SEGMENT_MAGIC)?;
    let format = header.u32();
    let _reserved = header.u32();
    let fingerprint = header.u64();
    let id = header.u64();
    if id != segment {
        return Err(format!("the file says it is segment {id}"));
    }
    Ok(ManifestHeader { format, fingerprint })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Directories written with the streaming hasher stay readable: the one-shot
    /// hash is the same at every length band of xxh3 (and across a block).
    #[test]
    fn the_checksum_is_the_streaming_hash() {
        let bytes: Vec<u8> = (0..70_000u32).map(|at| (at.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025, 65_536, 70_000] {
            let mut streaming = xxhash_rust::xxh3::Xxh3::new();
            streaming.update(&bytes[..len]);
            assert_eq!(checksum(&bytes[..len]), streaming.digest128(), "{len} bytes");
        }
    }

    #[test]
    fn a_blob_reads_back_and_any_flipped_byte_is_caught() {
        let id = ChunkId::from_raw(7);
        let bytes = blob(id, b"layout", b"records!");
        assert_eq!(bytes.len() % 16, 0);
        let records = HEADER_LEN + 16..HEADER_LEN + 16 + 8;
        assert_eq!(open_blob(&bytes, id), Ok((&b"layout"[..], records.clone())));
        assert_eq!(&bytes[records.clone()], b"records!");
        assert!(open_blob(&bytes, ChunkId::from_raw(8)).is_err(), "another chunk's blob");
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x20;
            // Padding is not covered, and changes nothing that is read; the records are
            // checked against their own checksum when first read.
            let padding = (HEADER_LEN + 6..HEADER_LEN + 16).contains(&at) || at >= HEADER_LEN + 16 + 8;
            let reserved = (56..64).contains(&at);
            let later = records.contains(&at);
            assert_eq!(open_blob(&flipped, id).is_ok(), padding || reserved || later, "byte {at}");
        }
        for len in 0..bytes.len() - 8 {
            assert!(open_blob(&bytes[..len], id).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn a_manifest_reads_back_and_damage_is_caught() {
        let manifest = StoredManifest { clock: 3, segments: vec![1], ..StoredManifest::default() };
        let bytes = manifest_bytes(42, &manifest).expect("archivable");
        let (head, body) = open_manifest(&bytes).expect("intact");
        assert_eq!((head.format, head.fingerprint), (FORMAT_VERSION, 42));
        let read = rkyv::from_bytes::<StoredManifest, rkyv::rancor::Error>(body).expect("valid archive");
        assert_eq!((read.clock, read.segments), (3, vec![1]));
        assert!(open_manifest(&bytes[..bytes.len() - 1]).is_err());
        let mut flipped = bytes.clone();
        *flipped.last_mut().expect("not empty") ^= 1;
        assert!(open_manifest(&flipped).is_err());
    }
}
