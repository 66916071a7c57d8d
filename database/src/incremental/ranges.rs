//! Range registries: which registered key ranges contain a given key.
//!
//! Invalidation registers every read of every task, subscriptions every condition a
//! waiting task waits on; after a commit, each changed key asks "who covers me?". That
//! question must cost what the key costs, not what the registry holds, or an edit
//! would get slower with every task in the workspace. So ranges are filed by the
//! bytes every key inside them must start with, and a key looks only under its own
//! prefixes:
//!
//! - an exact read is filed under its key, and a prefix read under its prefix: both
//!   match every key they are filed under, with no further test;
//! - any other range `start..end` is filed under the longest common prefix of `start`
//!   and `end` (every key between two keys starts with what they share) and tested
//!   one by one in its bucket. Unbounded ranges share the empty bucket.
//!
//! A key of `n` bytes looks up at most `n + 1` prefixes, and only the prefix lengths
//! some range was filed under (a handful per partition in practice).

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::ident::Ident;
use crate::key::KeyRange;

/// Ranges registered per partition, each with a member (a reader task, a subscriber).
/// One member may register the same range several times; it is counted, and stays
/// registered until removed as often as it was added.
#[derive(Debug)]
pub(crate) struct RangeRegistry<M> {
    partitions: FxHashMap<Ident, PartitionRanges<M>>,
    len: usize,
}

impl<M> Default for RangeRegistry<M> {
    fn default() -> Self {
        RangeRegistry { partitions: FxHashMap::default(), len: 0 }
    }
}

#[derive(Debug)]
struct PartitionRanges<M> {
    /// Exact keys and prefixes: every key filed under them matches.
    whole: FxHashMap<Box<[u8]>, Members<M>>,
    /// Other ranges, by the common prefix of their bounds: each is tested.
    partial: FxHashMap<Box<[u8]>, Vec<(KeyRange, M)>>,
    /// How many entries of `whole` (exact keys apart) and `partial` are filed under
    /// each prefix length, so a lookup tries only lengths in use.
    lengths: BTreeMap<usize, usize>,
}

impl<M> Default for PartitionRanges<M> {
    fn default() -> Self {
        PartitionRanges {
            whole: FxHashMap::default(),
            partial: FxHashMap::default(),
            lengths: BTreeMap::new(),
        }
    }
}

/// How a range is filed.
enum Filing<'r> {
    /// Under exactly this key: matches it alone.
    Exact(&'r [u8]),
    /// Under this prefix: matches every key starting with it.
    Prefix(&'r [u8]),
    /// Under the common prefix of its bounds, tested key by key.
    Partial(Box<[u8]>),
}

fn filing(range: &KeyRange) -> Filing<'_> {
    if let Some(prefix) = range.as_prefix() {
        return Filing::Prefix(prefix);
    }
    if range.start().is_empty() && range.end().is_none() {
        return Filing::Prefix(&[]);
    }
    if range.is_exact() {
        return Filing::Exact(range.start());
    }
    let shared = match range.end() {
        Some(end) => range.start().iter().zip(end).take_while(|(a, b)| a == b).count(),
        None => 0,
    };
    Filing::Partial(range.start()[..shared].into())
}

impl<M: Copy + Eq + Hash> RangeRegistry<M> {
    /// Registers `range` of `partition` for `member`. Empty ranges match nothing and
    /// are not filed.
    pub(crate) fn insert(&mut self, partition: Ident, range: &KeyRange, member: M) {
        if range.is_empty() {
            return;
        }
        let ranges = self.partitions.entry(partition).or_default();
        match filing(range) {
            Filing::Exact(key) => ranges.add_whole(key, member, false),
            Filing::Prefix(prefix) => ranges.add_whole(prefix, member, true),
            Filing::Partial(bucket) => {
                let len = bucket.len();
                let bucket = ranges.partial.entry(bucket).or_default();
                if bucket.is_empty() {
                    *ranges.lengths.entry(len).or_default() += 1;
                }
                bucket.push((range.clone(), member));
            }
        }
        self.len += 1;
    }

    /// Unregisters one registration of `range` for `member`; registrations that do
    /// not exist are ignored.
    pub(crate) fn remove(&mut self, partition: Ident, range: &KeyRange, member: M) {
        if range.is_empty() {
            return;
        }
        let Some(ranges) = self.partitions.get_mut(&partition) else { return };
        let removed = match filing(range) {
            Filing::Exact(key) => ranges.remove_whole(key, member, false),
            Filing::Prefix(prefix) => ranges.remove_whole(prefix, member, true),
            Filing::Partial(bucket) => ranges.remove_partial(&bucket, range, member),
        };
        if removed {
            self.len -= 1;
            if ranges.whole.is_empty() && ranges.partial.is_empty() {
                self.partitions.remove(&partition);
            }
        }
    }

    /// Calls `found` for every member with a range of `partition` containing `key`
    /// (once per registration).
    pub(crate) fn containing(&self, partition: Ident, key: &[u8], mut found: impl FnMut(M)) {
        let Some(ranges) = self.partitions.get(&partition) else { return };
        if let Some(members) = ranges.whole.get(key) {
            members.for_each(&mut found);
        }
        for &len in ranges.lengths.range(..=key.len()).map(|(len, _)| len) {
            let prefix = &key[..len];
            if len < key.len()
                && let Some(members) = ranges.whole.get(prefix)
            {
                members.prefixes(&mut found);
            }
            if let Some(bucket) = ranges.partial.get(prefix) {
                bucket.iter().filter(|(range, _)| range.contains(key)).for_each(|(_, member)| found(*member));
            }
        }
    }

    /// Number of registrations.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<M: Copy + Eq + Hash> PartitionRanges<M> {
    fn add_whole(&mut self, key: &[u8], member: M, prefix: bool) {
        let members = match self.whole.entry(key.into()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Members::default()),
        };
        if prefix && members.prefix_count() == 0 {
            *self.lengths.entry(key.len()).or_default() += 1;
        }
        members.add(member, prefix);
    }

    fn remove_whole(&mut self, key: &[u8], member: M, prefix: bool) -> bool {
        let Some(members) = self.whole.get_mut(key) else { return false };
        if !members.remove(member, prefix) {
            return false;
        }
        let last_prefix = prefix && members.prefix_count() == 0;
        if members.is_empty() {
            self.whole.remove(key);
        }
        if last_prefix {
            self.forget_length(key.len());
        }
        true
    }

    fn remove_partial(&mut self, bucket: &[u8], range: &KeyRange, member: M) -> bool {
        let Some(entries) = self.partial.get_mut(bucket) else { return false };
        let Some(at) = entries.iter().position(|(r, m)| *m == member && r == range) else { return false };
        entries.swap_remove(at);
        if entries.is_empty() {
            self.partial.remove(bucket);
            self.forget_length(bucket.len());
        }
        true
    }

    fn forget_length(&mut self, len: usize) {
        if let Some(count) = self.lengths.get_mut(&len) {
            *count -= 1;
            if *count == 0 {
                self.lengths.remove(&len);
            }
        }
    }
}

/// The members filed under one key, as exact reads and as prefix reads, with counts.
/// Nearly every key has one or two, so they are a small vector until they are many.
#[derive(Debug)]
enum Members<M> {
    Few(Vec<(M, Counts)>),
    Many(FxHashMap<M, Counts>),
}

/// Registrations of one member under one key: as the exact key, as a prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    exact: u32,
    prefix: u32,
}

impl Counts {
    fn bump(&mut self, prefix: bool, up: bool) -> bool {
        let count = if prefix { &mut self.prefix } else { &mut self.exact };
        if up {
            *count += 1;
            true
        } else if *count > 0 {
            *count -= 1;
            true
        } else {
            false
        }
    }

    fn is_zero(self) -> bool {
        self == Counts::default()
    }
}

/// Past this many members a key's list becomes a hash map.
const FEW: usize = 8;

impl<M> Default for Members<M> {
    fn default() -> Self {
        Members::Few(Vec::new())
    }
}

impl<M: Copy + Eq + Hash> Members<M> {
    fn add(&mut self, member: M, prefix: bool) {
        match self {
            Members::Few(list) => {
                if let Some((_, counts)) = list.iter_mut().find(|(m, _)| *m == member) {
                    counts.bump(prefix, true);
                } else if list.len() < FEW {
                    let mut counts = Counts::default();
                    counts.bump(prefix, true);
                    list.push((member, counts));
                } else {
                    let mut map: FxHashMap<M, Counts> = list.drain(..).collect();
                    map.entry(member).or_default().bump(prefix, true);
                    *self = Members::Many(map);
                }
            }
            Members::Many(map) => {
                map.entry(member).or_default().bump(prefix, true);
            }
        }
    }

    fn remove(&mut self, member: M, prefix: bool) -> bool {
        match self {
            Members::Few(list) => {
                let Some(at) = list.iter().position(|(m, _)| *m == member) else { return false };
                let removed = list[at].1.bump(prefix, false);
                if list[at].1.is_zero() {
                    list.swap_remove(at);
                }
                removed
            }
            Members::Many(map) => {
                let Some(counts) = map.get_mut(&member) else { return false };
                let removed = counts.bump(prefix, false);
                if counts.is_zero() {
                    map.remove(&member);
                }
                removed
            }
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (M, Counts)> + '_> {
        match self {
            Members::Few(list) => Box::new(list.iter().copied()),
            Members::Many(map) => Box::new(map.iter().map(|(m, c)| (*m, *c))),
        }
    }

    /// Every registration, exact or prefix: the key itself was asked for.
    fn for_each(&self, found: &mut impl FnMut(M)) {
        for (member, counts) in self.iter() {
            (0..counts.exact + counts.prefix).for_each(|_| found(member));
        }
    }

    /// The prefix registrations only: a longer key was asked for.
    fn prefixes(&self, found: &mut impl FnMut(M)) {
        for (member, counts) in self.iter() {
            (0..counts.prefix).for_each(|_| found(member));
        }
    }

    fn prefix_count(&self) -> u32 {
        self.iter().map(|(_, counts)| counts.prefix).sum()
    }

    fn is_empty(&self) -> bool {
        match self {
            Members::Few(list) => list.is_empty(),
            Members::Many(map) => map.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const P: Ident = Ident::new("p");

    fn found(registry: &RangeRegistry<u32>, key: &[u8]) -> Vec<u32> {
        let mut members = Vec::new();
        registry.containing(P, key, |member| members.push(member));
        members.sort_unstable();
        members
    }

    fn range_strategy() -> impl Strategy<Value = KeyRange> {
        let bytes = || proptest::collection::vec(0u8..4, 0..4);
        prop_oneof![
            bytes().prop_map(|key| KeyRange::exact(&key)),
            bytes().prop_map(|key| KeyRange::prefix(&key)),
            (bytes(), bytes()).prop_map(|(a, b)| KeyRange::between(&a, &b)),
            bytes().prop_map(|key| KeyRange::at_least(&key)),
            bytes().prop_map(|key| KeyRange::greater_than(&key)),
            bytes().prop_map(|key| KeyRange::less_than(&key)),
            bytes().prop_map(|key| KeyRange::at_most(&key)),
            Just(KeyRange::all()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(11),
            ..ProptestConfig::default()
        })]

        /// The registry answers exactly what testing every live registration would.
        #[test]
        fn registry_matches_brute_force(
            ops in proptest::collection::vec((any::<bool>(), 0u32..12, range_strategy()), 1..80),
            keys in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..5), 1..20),
        ) {
            let mut registry = RangeRegistry::default();
            let mut model: Vec<(KeyRange, u32)> = Vec::new();
            for (add, member, range) in ops {
                if add {
                    registry.insert(P, &range, member);
                    if !range.is_empty() {
                        model.push((range, member));
                    }
                } else {
                    registry.remove(P, &range, member);
                    if let Some(at) = model.iter().position(|(r, m)| *r == range && *m == member) {
                        model.swap_remove(at);
                    }
                }
                prop_assert_eq!(registry.len(), model.len());
                for key in &keys {
                    let mut expected: Vec<u32> =
                        model.iter().filter(|(r, _)| r.contains(key)).map(|(_, m)| *m).collect();
                    expected.sort_unstable();
                    prop_assert_eq!(found(&registry, key), expected, "key {:?}", key);
                }
            }
        }
    }

    #[test]
    fn many_members_under_one_key() {
        let mut registry = RangeRegistry::default();
        let key = KeyRange::exact(b"k");
        for member in 0..100 {
            registry.insert(P, &key, member);
        }
        assert_eq!(found(&registry, b"k").len(), 100);
        for member in 0..100 {
            registry.remove(P, &key, member);
        }
        assert_eq!(registry.len(), 0);
        assert!(registry.partitions.is_empty(), "an emptied registry keeps nothing");
    }
}
