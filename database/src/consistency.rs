//! The index-consistency check: every index agrees with the task map, and none
//! points at a chunk that is not some task's current version. Tests run it after
//! commits, removals and collection; it is public so a user's tests can too.

use rustc_hash::FxHashSet;

use crate::hash::ChunkId;
use crate::ident::TaskId;
use crate::key::{SortKeyRef, Start};
use crate::schema::Schema;
use crate::store::index::Posting;
use crate::store::state::State;

/// Checks one state: partition indexes, secondary indexes, the chunk map and the
/// counts. Returns the first inconsistency found, described.
pub(crate) fn check_state<S: Schema>(state: &State<S>) -> Result<(), String> {
    let current: FxHashSet<ChunkId> = state.tasks.values().map(|version| version.chunk.id).collect();
    let posting_ok = |posting: &Posting<S>, what: &dyn Fn() -> String| -> Result<(), String> {
        match state.tasks.get(&posting.task()) {
            Some(version) if version.chunk.id == posting.chunk.id => Ok(()),
            Some(_) => Err(format!("{} points at a superseded version of task {}", what(), posting.task())),
            None => Err(format!("{} points at task {}, which has no version", what(), posting.task())),
        }
    };

    let mut records = 0;
    for (partition, index) in state.partitions.iter() {
        let mut in_partition = 0;
        let mut chunks = FxHashSet::default();
        let mut scan = index.scan_from(Start::At(&[]));
        while let Some((key, postings)) = scan.next() {
            let key = SortKeyRef::from_encoded(key);
            for posting in postings.as_slice() {
                posting_ok(posting, &|| format!("partition {partition}, key {key:?}"))?;
                let slice = posting.chunk.slice(partition).ok_or_else(|| {
                    format!("partition {partition} lists chunk {} that holds nothing of it", posting.chunk.id)
                })?;
                if !slice.range().contains(&(posting.row as usize)) || posting.key() != key.as_bytes() {
                    return Err(format!(
                        "partition {partition}, key {key:?}: the posting is not a row of its chunk"
                    ));
                }
                chunks.insert(posting.chunk.id);
                in_partition += 1;
            }
        }
        if in_partition != index.len() || chunks.len() != index.chunks {
            return Err(format!(
                "partition {partition} counts {} records in {} chunks, holds {in_partition} in {}",
                index.len(),
                index.chunks,
                chunks.len()
            ));
        }
        records += in_partition;
    }
    let expected: usize = state.tasks.values().map(|version| version.chunk.len()).sum();
    if records != expected || records != state.records {
        return Err(format!(
            "the partition indexes hold {records} records, the current versions {expected}, the count says {}",
            state.records
        ));
    }

    for (index, tree) in state.indexes.iter() {
        let mut scan = tree.scan_from(&[]);
        while let Some((key, hit)) = scan.next() {
            let key = SortKeyRef::from_encoded(key);
            posting_ok(&hit.posting, &|| format!("secondary index {index}, entry {key:?}"))?;
            if !key.as_bytes().ends_with(hit.posting.key()) {
                return Err(format!(
                    "secondary index {index}, entry {key:?}: not the key of the row it points at"
                ));
            }
        }
    }

    let mapped: FxHashSet<ChunkId> = state.chunks.keys().collect();
    if mapped != current {
        return Err(format!(
            "the chunk map holds {} chunks, the tasks' current versions are {}",
            mapped.len(),
            current.len()
        ));
    }
    Ok(())
}

/// Checks the write side's structures against the state: the reads filed and the
/// ownership edges.
pub(crate) fn check_edges<S: Schema>(
    state: &State<S>,
    reads_filed: usize,
    edges: impl Iterator<Item = (Option<TaskId>, TaskId)>,
) -> Result<(), String> {
    let reads: usize = state
        .tasks
        .values()
        .map(|version| version.chunk.reads().iter().filter(|read| !read.range().is_empty()).count())
        .sum();
    if reads != reads_filed {
        return Err(format!(
            "{reads_filed} reads are filed for invalidation, the current versions made {reads}"
        ));
    }
    let edges: FxHashSet<(Option<TaskId>, TaskId)> = edges.collect();
    let expected: FxHashSet<(Option<TaskId>, TaskId)> =
        state.tasks.iter().map(|(task, version)| (version.chunk.parent(), task)).collect();
    if edges != expected {
        return Err(format!(
            "the collector knows {} ownership edges, the current versions have {}",
            edges.len(),
            expected.len()
        ));
    }
    Ok(())
}
