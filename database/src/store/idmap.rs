//! Persistent maps keyed by identifiers (tasks, chunks, partitions, indexes): a
//! [`Tree`] keyed by the identifier's big-endian bytes.
//!
//! A commit changes a state's maps on a clone, so they must be persistent like the
//! indexes. A hash trie would do, but its nodes have fixed widths: a task cost 90 to
//! 270 bytes in the two maps that every task has an entry in, more than the 16
//! records of a typical chunk cost in their index. In the tree an entry costs about
//! its key and value.

use std::marker::PhantomData;

use crate::hash::ChunkId;
use crate::ident::{Ident, TaskId};
use crate::store::tree::Tree;

/// An identifier that keys an [`IdMap`], by its big-endian bytes (so the map's order
/// is the identifiers' numeric order).
pub(crate) trait IdKey: Copy {
    type Bytes: AsRef<[u8]>;

    fn to_key(self) -> Self::Bytes;

    /// The identifier back from its key bytes (always ones `to_key` made).
    fn from_key(bytes: &[u8]) -> Self;
}

impl IdKey for Ident {
    type Bytes = [u8; 8];

    fn to_key(self) -> [u8; 8] {
        self.raw().to_be_bytes()
    }

    fn from_key(bytes: &[u8]) -> Self {
        Ident::from_raw(u64::from_be_bytes(bytes.try_into().unwrap_or_default()))
    }
}

impl IdKey for TaskId {
    type Bytes = [u8; 8];

    fn to_key(self) -> [u8; 8] {
        self.ident().to_key()
    }

    fn from_key(bytes: &[u8]) -> Self {
        TaskId::from_ident(Ident::from_key(bytes))
    }
}

impl IdKey for ChunkId {
    type Bytes = [u8; 16];

    fn to_key(self) -> [u8; 16] {
        self.raw().to_be_bytes()
    }

    fn from_key(bytes: &[u8]) -> Self {
        ChunkId::from_raw(u128::from_be_bytes(bytes.try_into().unwrap_or_default()))
    }
}

/// A persistent map from identifiers to `V`. Cloning is O(1).
pub(crate) struct IdMap<K, V> {
    tree: Tree<V>,
    key: PhantomData<fn() -> K>,
}

impl<K, V> Clone for IdMap<K, V> {
    fn clone(&self) -> Self {
        IdMap { tree: self.tree.clone(), key: PhantomData }
    }
}

impl<K, V> Default for IdMap<K, V> {
    fn default() -> Self {
        IdMap { tree: Tree::default(), key: PhantomData }
    }
}

impl<K: IdKey, V: Clone> IdMap<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.tree.get(key.to_key().as_ref())
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }

    /// Heap bytes of the map's tree (not of what its values own).
    pub(crate) fn bytes(&self) -> usize {
        self.tree.bytes()
    }

    /// The map of `entries` (keys unique), built in one pass rather than one insert
    /// at a time (each of which rewrites a leaf).
    pub(crate) fn from_entries(entries: Vec<(K, V)>) -> Self {
        let mut keyed: Vec<(K::Bytes, V)> =
            entries.into_iter().map(|(key, value)| (key.to_key(), value)).collect();
        keyed.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let (keys, values): (Vec<K::Bytes>, Vec<V>) = keyed.into_iter().unzip();
        let tree = Tree::from_sorted(keys.iter().map(AsRef::as_ref).zip(values).collect());
        IdMap { tree, key: PhantomData }
    }

    /// Sets `key`'s value; returns the one it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.set(key, Some(value))
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.set(*key, None)
    }

    fn set(&mut self, key: K, mut value: Option<V>) -> Option<V> {
        let key = key.to_key();
        let mut previous = None;
        self.tree.apply(
            &[key.as_ref()],
            |key| key,
            |current, _| {
                previous = current.cloned();
                value.take()
            },
        );
        previous
    }

    /// Sets (`Some`) or removes (`None`) the value of each key, keys unique, in one
    /// pass over the tree: a commit touching a dozen partitions copies the map's
    /// path once rather than once per partition.
    pub(crate) fn set_all(&mut self, changes: Vec<(K, Option<V>)>) {
        let mut values: Vec<Option<V>> = Vec::with_capacity(changes.len());
        let mut keyed: Vec<(K::Bytes, usize)> = Vec::with_capacity(changes.len());
        for (at, (key, value)) in changes.into_iter().enumerate() {
            keyed.push((key.to_key(), at));
            values.push(value);
        }
        keyed.sort_unstable_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        self.tree.apply(&keyed, |(key, _)| key.as_ref(), |_, (_, at)| values[*at].take());
    }

    /// The entries, in identifier order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &V)> + '_ {
        let mut entries = self.tree.iter();
        std::iter::from_fn(move || entries.next().map(|(key, value)| (K::from_key(key), value)))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.iter().map(|(key, _)| key)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn behaves_like_an_ordered_map_and_versions_stay_apart() {
        let mut map: IdMap<ChunkId, u32> = IdMap::default();
        let mut model = BTreeMap::new();
        let mut old = Vec::new();
        for step in 0..3_000u32 {
            let id = ChunkId::from_raw(u128::from(step.wrapping_mul(2_654_435_761) % 997) << 64 | 7);
            if step % 7 == 6 {
                // A batch: this key and two others, unordered, some removed.
                let ids = [id, ChunkId::from_raw(id.raw() ^ 1 << 70), ChunkId::from_raw(id.raw() + 1)];
                let batch: Vec<(ChunkId, Option<u32>)> =
                    ids.iter().enumerate().map(|(at, id)| (*id, (at != 1).then_some(step))).collect();
                for (id, value) in &batch {
                    match value {
                        Some(value) => model.insert(id.raw(), *value),
                        None => model.remove(&id.raw()),
                    };
                }
                map.set_all(batch);
            } else if step % 3 == 2 {
                assert_eq!(map.remove(&id), model.remove(&id.raw()));
            } else {
                assert_eq!(map.insert(id, step), model.insert(id.raw(), step));
            }
            if step % 500 == 0 {
                old.push((map.clone(), model.clone()));
            }
        }
        for (map, model) in old.iter().chain([&(map.clone(), model.clone())]) {
            assert_eq!(map.len(), model.len());
            let entries: Vec<(u128, u32)> = map.iter().map(|(id, value)| (id.raw(), *value)).collect();
            assert_eq!(entries, model.iter().map(|(id, value)| (*id, *value)).collect::<Vec<_>>());
            assert!(model.keys().all(|id| map.contains_key(&ChunkId::from_raw(*id))));
        }
        let task = TaskId::from_ident(Ident::from_raw(u64::MAX - 3));
        assert_eq!(TaskId::from_key(task.to_key().as_ref()), task);
    }
}
