//! Reading a directory's contents back into chunks: every version the manifest lists,
//! restored from their layouts and checked in parallel, or reported as damaged; their
//! records stay in the mapped segments until first read.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rayon::prelude::*;

use crate::error::DamagedChunk;
use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::persist::codec;
use crate::persist::directory::Contents;
use crate::persist::format::{StoredStale, StoredVersion};
use crate::schema::Schema;
use crate::store::chunk::Chunk;

/// What a directory restores.
pub(crate) struct Restored<S: Schema> {
    /// Each intact version, with the clock it was committed at, oldest first.
    pub(crate) versions: Vec<(u64, Arc<Chunk<S>>)>,
    pub(crate) stale: Vec<StoredStale>,
    pub(crate) clock: u64,
    /// The versions that failed their checks.
    pub(crate) damaged: Vec<DamagedChunk>,
}

/// Decodes every version `contents` lists (in parallel), and registers task names.
/// With `check_records`, every chunk's records are checked too (see
/// [`OpenOptions::check_at_open`](crate::OpenOptions::check_at_open)).
pub(crate) fn load<S: Schema>(
    contents: &Contents,
    live: &Arc<AtomicUsize>,
    check_records: bool,
) -> Restored<S> {
    let manifest = &contents.manifest;
    crate::ident::remember_all(manifest.names.iter().map(|(raw, name)| (*raw, name.as_str())));
    let decoded: Vec<(StoredVersion, Result<Chunk<S>, String>)> = manifest
        .versions
        .par_iter()
        .map(|version| (*version, decode_version::<S>(contents, version, live, check_records)))
        .collect();
    let mut versions = Vec::with_capacity(decoded.len());
    let mut damaged = Vec::new();
    let mut seen = rustc_hash::FxHashSet::default();
    for (version, chunk) in decoded {
        let task = TaskId::from_ident(Ident::from_raw(version.task));
        let chunk = chunk.and_then(|chunk| {
            if !seen.insert(task) {
                return Err("the manifest lists its task twice".into());
            }
            Ok(chunk)
        });
        match chunk {
            Ok(chunk) => versions.push((version.committed_at, Arc::new(chunk))),
            Err(reason) => {
                damaged.push(DamagedChunk { task, chunk: ChunkId::from_raw(version.chunk), reason })
            }
        }
    }
    versions.sort_by_key(|(committed_at, chunk)| (*committed_at, chunk.task));
    Restored { versions, stale: manifest.stale.clone(), clock: manifest.clock, damaged }
}

fn decode_version<S: Schema>(
    contents: &Contents,
    version: &StoredVersion,
    live: &Arc<AtomicUsize>,
    check_records: bool,
) -> Result<Chunk<S>, String> {
    let segment = match contents.segments.get(&version.segment) {
        Some(Ok(bytes)) => bytes,
        Some(Err(reason)) => return Err(reason.clone()),
        None => return Err(format!("its segment {} is not among the manifest's segments", version.segment)),
    };
    let size = AsRef::<[u8]>::as_ref(&**segment).len();
    let blob = usize::try_from(version.offset)
        .ok()
        .zip(usize::try_from(version.len).ok())
        .and_then(|(offset, len)| Some(offset..offset.checked_add(len)?))
        .filter(|blob| blob.end <= size && blob.start.is_multiple_of(16))
        .ok_or_else(|| {
            format!(
                "segment {} holds {size} bytes, the chunk is listed at {}..+{}",
                version.segment, version.offset, version.len
            )
        })?;
    let id = ChunkId::from_raw(version.chunk);
    let chunk = codec::decode::<S>(segment, blob, id, live)?;
    let task = TaskId::from_ident(Ident::from_raw(version.task));
    if chunk.task != task || chunk.parent.map(|p| p.ident().raw()) != version.parent {
        return Err(format!("the chunk belongs to task {}, not to the task it is listed under", chunk.task));
    }
    if check_records {
        chunk.records.archive(&chunk.rows)?;
    }
    Ok(chunk)
}
