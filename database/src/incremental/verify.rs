//! Verify mode: catching tasks whose output is not a function of their inputs.
//!
//! Incremental reuse is only sound when running a task twice on the same inputs
//! writes the same output. A task that iterates a `HashMap`, stamps a time or numbers
//! things by address breaks that silently: its readers re-run for nothing, or worse,
//! keep a result no fresh build would produce. (This is the class of bug that made
//! rustc turn incremental compilation off twice.) Verify mode runs a task twice and
//! names the first record that differs.

use crate::database::Commit;
use crate::error::{Error, Result};
use crate::ident::Ident;
use crate::key::{SortKeyRef, decode_key};
use crate::schema::{self, Schema};
use crate::store::chunk::{Chunk, PartitionSlice};

/// `first` when both runs wrote the same output, otherwise
/// [`Error::Nondeterministic`] naming the first difference.
pub(crate) fn same_output<S: Schema>(first: Commit<S>, second: Commit<S>) -> Result<Commit<S>> {
    if first.chunk.output_hash == second.chunk.output_hash {
        return Ok(first);
    }
    Err(Error::Nondeterministic {
        task: first.chunk.task,
        difference: first_difference(&first.chunk, &second.chunk),
    })
}

/// The first record, in (partition, key) order, that one chunk has and the other
/// has not, or holds differently; described for a person.
pub(crate) fn first_difference<S: Schema>(a: &Chunk<S>, b: &Chunk<S>) -> String {
    let (left, right) = (rows(a), rows(b));
    let (mut i, mut j) = (0, 0);
    loop {
        match (left.get(i), right.get(j)) {
            (Some((pa, ka, ha)), Some((pb, kb, hb))) if (pa, ka) == (pb, kb) => {
                if a.record_hash(*ha) != b.record_hash(*hb) {
                    return format!(
                        "partition {pa}, key {}: the first run wrote {:?}, the second {:?}",
                        describe_key::<S>(*pa, *ka),
                        a.record(*ha),
                        b.record(*hb)
                    );
                }
                (i, j) = (i + 1, j + 1);
            }
            (Some((pa, ka, ha)), other) if other.is_none_or(|(pb, kb, _)| (pa, ka) < (pb, kb)) => {
                return format!(
                    "partition {pa}, key {}: only the first run wrote {:?}",
                    describe_key::<S>(*pa, *ka),
                    a.record(*ha)
                );
            }
            (_, Some((pb, kb, hb))) => {
                return format!(
                    "partition {pb}, key {}: only the second run wrote {:?}",
                    describe_key::<S>(*pb, *kb),
                    b.record(*hb)
                );
            }
            (_, None) => return "the records are equal; the difference is in their order".to_owned(),
        }
    }
}

/// A chunk's rows with their partitions, in (partition, key) order.
fn rows<S: Schema>(chunk: &Chunk<S>) -> Vec<(Ident, SortKeyRef<'_>, usize)> {
    let rows = |slice: &PartitionSlice| {
        let partition = slice.partition;
        slice.range().map(move |row| (partition, SortKeyRef::from_encoded(chunk.key(row)), row))
    };
    chunk.partitions.iter().flat_map(rows).collect()
}

/// A key rendered with its partition's layout, when the schema declares one.
pub(crate) fn describe_key<S: Schema>(partition: Ident, key: SortKeyRef<'_>) -> String {
    let layout = schema::partition_def::<S>(partition).ok().flatten().map_or(&[][..], |def| def.layout);
    match decode_key(key.as_bytes(), layout) {
        Ok(values) if !layout.is_empty() => {
            let values: Vec<String> = values.iter().map(ToString::to_string).collect();
            format!("({})", values.join(", "))
        }
        _ => format!("{key:?}"),
    }
}
