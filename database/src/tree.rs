//! A persistent (copy-on-write) B+tree with batched updates: the ordered map behind
//! every partition index.
//!
//! Cloning a tree is O(1): clones share nodes, and a node is copied only when one
//! of its sharers changes it. Updates come as a sorted batch (all of one commit's
//! changes to a partition) that [`Tree::apply`] merges in a single pass: subtrees no
//! change falls in stay shared untouched, and each touched leaf is copied and merged
//! once, however many of the batch's changes land in it. Applying one change at a
//! time would copy the same path again for every change, which is what made commits
//! several times slower than building a `BTreeMap` of the same records.
//!
//! Lookups descend once, and cursors keep their path in a fixed array, so neither
//! allocates.

use std::cmp::Ordering;
use std::sync::Arc;

/// Most entries a leaf, or children a branch, holds before it is split.
const MAX: usize = 16;
/// Fewest entries (or children) a non-root node keeps; fewer are merged with a
/// neighbour.
const MIN: usize = MAX / 4;
/// Deepest path a cursor can follow: a tree this deep holds at least `MIN^16` entries,
/// far more than memory allows.
const MAX_DEPTH: usize = 16;

/// How a search position compares with a key of the tree. Lets callers search with
/// borrowed probes instead of building keys.
pub(crate) trait Seek<K> {
    /// How `self` compares with `key`.
    fn seek_cmp(&self, key: &K) -> Ordering;
}

impl<K: Ord> Seek<K> for K {
    fn seek_cmp(&self, key: &K) -> Ordering {
        self.cmp(key)
    }
}

/// A node: one allocation holding its entries, exactly sized. Cloning a node is a
/// reference-count increment; nodes are never changed in place.
enum Node<K, V> {
    /// Sorted entries.
    Leaf(Arc<[(K, V)]>),
    /// Children, each with the smallest key under it, in key order.
    Branch(Arc<[(K, Node<K, V>)]>),
}

impl<K, V> Clone for Node<K, V> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(entries) => Node::Leaf(Arc::clone(entries)),
            Node::Branch(children) => Node::Branch(Arc::clone(children)),
        }
    }
}

impl<K, V> Node<K, V> {
    /// Entries of a leaf, children of a branch.
    fn width(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Branch(children) => children.len(),
        }
    }

    /// The smallest key under the node (nodes are never empty).
    fn first_key(&self) -> Option<&K> {
        match self {
            Node::Leaf(entries) => entries.first().map(|(key, _)| key),
            Node::Branch(children) => children.first().map(|(key, _)| key),
        }
    }
}

/// Which child of a branch a search for `probe` continues in: the last one whose
/// smallest key is not above the probe (the first if all are).
#[inline]
fn child_for<K, V, Q: Seek<K> + ?Sized>(children: &[(K, Node<K, V>)], probe: &Q) -> usize {
    children.partition_point(|(key, _)| probe.seek_cmp(key) != Ordering::Less).saturating_sub(1)
}

/// A persistent ordered map.
pub(crate) struct Tree<K, V> {
    root: Option<Node<K, V>>,
    len: usize,
}

impl<K, V> Clone for Tree<K, V> {
    fn clone(&self) -> Self {
        Tree { root: self.root.clone(), len: self.len }
    }
}

impl<K, V> Default for Tree<K, V> {
    fn default() -> Self {
        Tree { root: None, len: 0 }
    }
}

impl<K: Ord + Clone, V: Clone> Tree<K, V> {
    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry whose key compares equal to `probe`.
    pub(crate) fn get<Q: Seek<K> + ?Sized>(&self, probe: &Q) -> Option<(&K, &V)> {
        let mut node = self.root.as_ref()?;
        loop {
            match node {
                Node::Branch(children) => node = &children[child_for(children, probe)].1,
                Node::Leaf(entries) => {
                    let at = entries.binary_search_by(|(key, _)| probe.seek_cmp(key).reverse()).ok()?;
                    let (key, value) = &entries[at];
                    return Some((key, value));
                }
            }
        }
    }

    /// The entries from the first whose key is not below `probe`, in order.
    pub(crate) fn iter_from<Q: Seek<K> + ?Sized>(&self, probe: &Q) -> Iter<'_, K, V> {
        self.descend(
            |children| child_for(children, probe),
            |entries| entries.partition_point(|(key, _)| probe.seek_cmp(key) == Ordering::Greater),
        )
    }

    /// All entries, in order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        self.descend(|_| 0, |_| 0)
    }

    fn descend<'a>(
        &'a self,
        child: impl Fn(&'a [(K, Node<K, V>)]) -> usize,
        entry: impl Fn(&'a [(K, V)]) -> usize,
    ) -> Iter<'a, K, V> {
        let mut iter = Iter { path: [None; MAX_DEPTH], depth: 0, leaf: &[], at: 0 };
        let Some(mut node) = self.root.as_ref() else { return iter };
        loop {
            match node {
                Node::Branch(children) => {
                    let at = child(children);
                    // Depth is bounded by MAX_DEPTH (see its doc); a deeper tree cannot fit in memory.
                    iter.path[iter.depth] = Some((&children[..], at));
                    iter.depth += 1;
                    node = &children[at].1;
                }
                Node::Leaf(entries) => {
                    iter.leaf = entries;
                    iter.at = entry(entries);
                    return iter;
                }
            }
        }
    }

    /// Visits the entries from the first not below `probe` for as long as `admits`
    /// holds, dividing the work by subtrees on rayon's pool: each bottom-level branch
    /// (up to `MAX` leaves) is one task, and `visit` gets its stretches of entries.
    /// What the tasks return comes back in key order. No serial walk over the leaves
    /// precedes the split, so the scan scales with the threads.
    pub(crate) fn par_visit<'t, Q, A, F, R>(&'t self, probe: &Q, admits: &A, visit: &F) -> Vec<R>
    where
        K: Send + Sync,
        V: Send + Sync,
        Q: Seek<K> + Sync + ?Sized,
        A: Fn(&K) -> bool + Sync,
        F: Fn(&[&'t [(K, V)]]) -> R + Sync,
        R: Send,
    {
        match &self.root {
            None => Vec::new(),
            Some(Node::Leaf(entries)) => {
                let stretch = admitted(entries, probe, admits);
                if stretch.is_empty() { Vec::new() } else { vec![visit(&[stretch])] }
            }
            Some(node) => par_visit_node(node, probe, admits, visit, (true, true)),
        }
    }

    /// About how many entries [`par_visit`](Self::par_visit) would visit.
    pub(crate) fn estimate<Q, A>(&self, probe: &Q, admits: &A) -> usize
    where
        Q: Seek<K> + ?Sized,
        A: Fn(&K) -> bool,
    {
        self.root.as_ref().map_or(0, |root| estimate_node(root, probe, admits))
    }

    /// Applies a batch of changes sorted by key, with at most one change per key.
    /// `merge` receives each change with the entry's current value (if any) and
    /// returns its new value, or `None` to remove the entry.
    pub(crate) fn apply<C>(
        &mut self,
        changes: &[C],
        key_of: impl Fn(&C) -> &K,
        mut merge: impl FnMut(Option<V>, &C) -> Option<V>,
    ) {
        if changes.is_empty() {
            return;
        }
        debug_assert!(
            changes.windows(2).all(|w| key_of(&w[0]) < key_of(&w[1])),
            "changes must be sorted and unique"
        );
        let mut apply = Apply { key_of: &key_of, merge: &mut merge, len: self.len };
        let mut level = match self.root.take() {
            Some(root) => apply.node(&root, changes),
            None => apply.leaf(&[], changes),
        };
        self.len = apply.len;
        // Grow upwards while a level has more nodes than one branch holds.
        while level.len() > 1 {
            level = runs(level, MAX).into_iter().map(branch).collect();
        }
        let mut root = level.pop();
        // Shrink while the root is a branch with a single child.
        while let Some(Node::Branch(children)) = &root {
            if children.len() != 1 {
                break;
            }
            root = Some(children[0].1.clone());
        }
        self.root = root;
    }

    /// Checks every structural invariant; for tests.
    #[cfg(test)]
    pub(crate) fn check(&self) -> usize {
        fn walk<K: Ord, V>(
            node: &Node<K, V>,
            root: bool,
            low: Option<&K>,
            high: Option<&K>,
        ) -> (usize, usize) {
            assert!(root || node.width() >= MIN, "non-root node with {} entries", node.width());
            assert!(node.width() <= MAX, "node with {} entries", node.width());
            assert!(node.width() > 0, "no empty nodes");
            match node {
                Node::Leaf(entries) => {
                    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "leaf keys sorted and unique");
                    assert!(
                        entries.iter().all(|(k, _)| low.is_none_or(|l| k >= l) && high.is_none_or(|h| k < h))
                    );
                    (0, entries.len())
                }
                Node::Branch(children) => {
                    assert!(children.windows(2).all(|w| w[0].0 < w[1].0));
                    let mut depth = None;
                    let mut total = 0;
                    for (at, (first, child)) in children.iter().enumerate() {
                        assert!(child.first_key() == Some(first), "a child's key is its smallest key");
                        let child_high = children.get(at + 1).map(|(key, _)| key).or(high);
                        let (d, n) = walk(child, false, Some(first).filter(|_| at > 0).or(low), child_high);
                        assert!(depth.is_none_or(|depth| depth == d), "all leaves at one depth");
                        depth = Some(d);
                        total += n;
                    }
                    (depth.unwrap_or(0) + 1, total)
                }
            }
        }
        let total = self.root.as_ref().map_or(0, |root| walk(root, true, None, None).1);
        assert_eq!(total, self.len);
        total
    }
}

/// The entries of a leaf from `probe` on that `admits` accepts.
fn admitted<'a, K, V, Q: Seek<K> + ?Sized>(
    entries: &'a [(K, V)],
    probe: &Q,
    admits: &impl Fn(&K) -> bool,
) -> &'a [(K, V)] {
    let start = entries.partition_point(|(key, _)| probe.seek_cmp(key) == Ordering::Greater);
    let len = entries[start..].partition_point(|(key, _)| admits(key));
    &entries[start..start + len]
}

/// About how many entries lie from `probe` on while `admits` holds, counted from
/// branch nodes alone (a reachable leaf counts as three-quarters full): enough to pick
/// a size bucket, without the cost of visiting every leaf.
fn estimate_node<K, V, Q, A>(node: &Node<K, V>, probe: &Q, admits: &A) -> usize
where
    Q: Seek<K> + ?Sized,
    A: Fn(&K) -> bool,
{
    match node {
        Node::Leaf(entries) => admitted(entries, probe, admits).len(),
        Node::Branch(children) => {
            let first = child_for(children, probe);
            let last = first + 1 + children[first + 1..].partition_point(|(key, _)| admits(key));
            match children.first() {
                Some((_, Node::Leaf(_))) => (last - first) * (MAX * 3 / 4),
                _ => children[first..last].iter().map(|(_, child)| estimate_node(child, probe, admits)).sum(),
            }
        }
    }
}

/// `par_visit` below `node`. Only the leftmost and rightmost paths of the range need
/// trimming (`edges`: on the range's first path, on its last path); every other leaf
/// is visited whole, read front to back.
fn par_visit_node<'t, K, V, Q, A, F, R>(
    node: &'t Node<K, V>,
    probe: &Q,
    admits: &A,
    visit: &F,
    edges: (bool, bool),
) -> Vec<R>
where
    K: Send + Sync,
    V: Send + Sync,
    Q: Seek<K> + Sync + ?Sized,
    A: Fn(&K) -> bool + Sync,
    F: Fn(&[&'t [(K, V)]]) -> R + Sync,
    R: Send,
{
    use rayon::prelude::*;
    let Node::Branch(children) = node else { return Vec::new() };
    // The children the range can reach: from the one holding the probe's position up
    // to the last whose smallest key is still admitted.
    let first = if edges.0 { child_for(children, probe) } else { 0 };
    let last = if edges.1 {
        first + 1 + children[first + 1..].partition_point(|(key, _)| admits(key))
    } else {
        children.len()
    };
    let reachable = &children[first..last];
    let edges_of = |at: usize| (edges.0 && at == 0, edges.1 && at + 1 == reachable.len());
    if let Some((_, Node::Leaf(_))) = reachable.first() {
        let stretches: Vec<&'t [(K, V)]> = reachable
            .iter()
            .enumerate()
            .filter_map(|(at, (_, child))| match child {
                Node::Leaf(entries) => Some(match edges_of(at) {
                    (false, false) => &entries[..],
                    _ => admitted(entries, probe, admits),
                }),
                Node::Branch(_) => None,
            })
            .filter(|stretch| !stretch.is_empty())
            .collect();
        return if stretches.is_empty() { Vec::new() } else { vec![visit(&stretches)] };
    }
    reachable
        .par_iter()
        .enumerate()
        .flat_map_iter(|(at, (_, child))| par_visit_node(child, probe, admits, visit, edges_of(at)))
        .collect()
}

/// The state of one [`Tree::apply`] call.
struct Apply<'f, KeyOf, Merge> {
    key_of: &'f KeyOf,
    merge: &'f mut Merge,
    len: usize,
}

impl<KeyOf, Merge> Apply<'_, KeyOf, Merge> {
    /// Applies `changes` (all within this node's key range) to a node and returns
    /// the nodes that replace it: none if it emptied, several if it overflowed.
    fn node<K, V, C>(&mut self, node: &Node<K, V>, changes: &[C]) -> Vec<Node<K, V>>
    where
        K: Ord + Clone,
        V: Clone,
        KeyOf: Fn(&C) -> &K,
        Merge: FnMut(Option<V>, &C) -> Option<V>,
    {
        match node {
            Node::Leaf(entries) => self.leaf(entries, changes),
            Node::Branch(children) => self.branch(children, changes),
        }
    }

    fn leaf<K, V, C>(&mut self, entries: &[(K, V)], changes: &[C]) -> Vec<Node<K, V>>
    where
        K: Ord + Clone,
        V: Clone,
        KeyOf: Fn(&C) -> &K,
        Merge: FnMut(Option<V>, &C) -> Option<V>,
    {
        let mut merged = Vec::with_capacity(entries.len() + changes.len());
        let mut existing = entries.iter().peekable();
        for change in changes {
            let key = (self.key_of)(change);
            while let Some(entry) = existing.next_if(|(k, _)| k < key) {
                merged.push(entry.clone());
            }
            let current = existing.next_if(|(k, _)| k == key);
            let had = current.is_some();
            match (self.merge)(current.map(|(_, value)| value.clone()), change) {
                Some(value) => {
                    self.len += usize::from(!had);
                    merged.push((key.clone(), value));
                }
                None if had => self.len -= 1,
                None => {}
            }
        }
        merged.extend(existing.cloned());
        runs(merged, MAX).into_iter().map(|run| Node::Leaf(run.into())).collect()
    }

    fn branch<K, V, C>(&mut self, children: &[(K, Node<K, V>)], changes: &[C]) -> Vec<Node<K, V>>
    where
        K: Ord + Clone,
        V: Clone,
        KeyOf: Fn(&C) -> &K,
        Merge: FnMut(Option<V>, &C) -> Option<V>,
    {
        let mut rebuilt: Vec<Node<K, V>> = Vec::with_capacity(children.len() + 2);
        let mut rest = changes;
        for (at, (_, child)) in children.iter().enumerate() {
            // The changes below the next child's smallest key belong to this child.
            let here = match children.get(at + 1) {
                Some((next, _)) => rest.partition_point(|change| (self.key_of)(change) < next),
                None => rest.len(),
            };
            let (mine, later) = rest.split_at(here);
            rest = later;
            if mine.is_empty() {
                rebuilt.push(child.clone());
            } else {
                rebuilt.extend(self.node(child, mine));
            }
        }
        runs(rebalance(rebuilt), MAX).into_iter().map(branch).collect()
    }
}

/// Merges each node that fell below `MIN` into a neighbour (re-splitting if the pair
/// is then too wide), so only a root may be underfull.
fn rebalance<K: Clone, V: Clone>(mut nodes: Vec<Node<K, V>>) -> Vec<Node<K, V>> {
    let mut at = 0;
    while at < nodes.len() {
        if nodes[at].width() >= MIN || nodes.len() == 1 {
            at += 1;
            continue;
        }
        // Merge with the next node, or with the previous one at the end.
        let left = if at + 1 < nodes.len() { at } else { at - 1 };
        let right = nodes.remove(left + 1);
        let parts = concat(&nodes[left], &right);
        let count = parts.len();
        nodes.splice(left..=left, parts);
        at = left + count;
    }
    nodes
}

/// Joins two adjacent nodes of one level, re-split evenly if too wide.
fn concat<K: Clone, V: Clone>(left: &Node<K, V>, right: &Node<K, V>) -> Vec<Node<K, V>> {
    match (left, right) {
        (Node::Leaf(a), Node::Leaf(b)) => runs(a.iter().chain(b.iter()).cloned().collect(), MAX)
            .into_iter()
            .map(|run| Node::Leaf(run.into()))
            .collect(),
        (Node::Branch(a), Node::Branch(b)) => {
            runs(a.iter().chain(b.iter()).map(|(_, child)| child.clone()).collect(), MAX)
                .into_iter()
                .map(branch)
                .collect()
        }
        // Siblings are always at one level: every leaf is at the same depth.
        (left, right) => vec![left.clone(), right.clone()],
    }
}

/// A branch over `children`, each paired with its smallest key.
fn branch<K: Clone, V>(children: Vec<Node<K, V>>) -> Node<K, V> {
    Node::Branch(children.into_iter().filter_map(|child| Some((child.first_key()?.clone(), child))).collect())
}

/// Cuts `items` into the fewest runs of at most `max`, as even as possible, moving
/// them (a single run is the vector itself).
fn runs<T>(mut items: Vec<T>, max: usize) -> Vec<Vec<T>> {
    let len = items.len();
    let parts = len.div_ceil(max);
    let mut runs = Vec::with_capacity(parts);
    for part in (1..parts).rev() {
        runs.push(items.split_off(part * len / parts));
    }
    if len > 0 {
        runs.push(items);
    }
    runs.reverse();
    runs
}

/// A branch's children and the one a cursor is visiting.
type Step<'a, K, V> = Option<(&'a [(K, Node<K, V>)], usize)>;

/// A cursor over a tree's entries in key order. Its path lives in a fixed array, so
/// iterating never allocates.
pub(crate) struct Iter<'a, K, V> {
    /// For each branch level from the root: its children and the one being visited.
    path: [Step<'a, K, V>; MAX_DEPTH],
    depth: usize,
    leaf: &'a [(K, V)],
    at: usize,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        while self.at >= self.leaf.len() {
            self.next_leaf()?;
        }
        let (key, value) = &self.leaf[self.at];
        self.at += 1;
        Some((key, value))
    }
}

impl<'a, K, V> Iter<'a, K, V> {
    /// The rest of the current leaf as one slice, then moves past it: how parallel
    /// scans cut the work, a leaf at a time, without visiting entries.
    pub(crate) fn next_run(&mut self) -> Option<&'a [(K, V)]> {
        while self.at >= self.leaf.len() {
            self.next_leaf()?;
        }
        let run = &self.leaf[self.at..];
        self.at = self.leaf.len();
        Some(run)
    }

    /// Moves to the first entry of the next leaf.
    fn next_leaf(&mut self) -> Option<()> {
        // Climb to the nearest level with a child to the right.
        let level = loop {
            let level = self.depth.checked_sub(1)?;
            let (children, at) = self.path[level]?;
            if at + 1 < children.len() {
                self.path[level] = Some((children, at + 1));
                break level;
            }
            self.depth = level;
        };
        // Then down its leftmost path.
        let (children, at) = self.path[level]?;
        let mut node: &'a Node<K, V> = &children[at].1;
        loop {
            match node {
                Node::Branch(children) => {
                    self.path[self.depth] = Some((&children[..], 0));
                    self.depth += 1;
                    node = &children[0].1;
                }
                Node::Leaf(entries) => {
                    self.leaf = entries;
                    self.at = 0;
                    return Some(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Put(u16, u32),
        Del(u16),
    }

    fn apply_ops(tree: &mut Tree<u16, u32>, model: &mut BTreeMap<u16, u32>, mut ops: Vec<Op>) {
        let key = |op: &Op| match op {
            Op::Put(k, _) | Op::Del(k) => *k,
        };
        ops.sort_by_key(key);
        ops.dedup_by_key(|op| key(op));
        for op in &ops {
            match op {
                Op::Put(k, v) => model.insert(*k, *v),
                Op::Del(k) => model.remove(k),
            };
        }
        let keys: Vec<u16> = ops.iter().map(key).collect();
        let changes: Vec<(u16, &Op)> = keys.into_iter().zip(ops.iter()).collect();
        tree.apply(
            &changes,
            |(k, _)| k,
            |_, (_, op)| match op {
                Op::Put(_, v) => Some(*v),
                Op::Del(_) => None,
            },
        );
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..2000, any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
            (0u16..2000).prop_map(Op::Del)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(5), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn batches_match_a_btreemap_and_leave_clones_untouched(
            batches in prop::collection::vec(prop::collection::vec(op(), 0..300), 1..12),
            probes in prop::collection::vec(0u16..2100, 8),
        ) {
            let mut tree = Tree::default();
            let mut model = BTreeMap::new();
            let mut history = Vec::new();
            for batch in batches {
                history.push((tree.clone(), model.clone()));
                apply_ops(&mut tree, &mut model, batch);
                tree.check();
                prop_assert!(tree.iter().map(|(k, v)| (*k, *v)).eq(model.iter().map(|(k, v)| (*k, *v))));
                for probe in &probes {
                    prop_assert_eq!(tree.get(probe).map(|(_, v)| *v), model.get(probe).copied());
                    let from: Vec<_> = tree.iter_from(probe).map(|(k, _)| *k).collect();
                    let expected: Vec<_> = model.range(probe..).map(|(k, _)| *k).collect();
                    prop_assert_eq!(from, expected);
                }
            }
            // Every earlier clone still shows exactly its own contents.
            for (old, expected) in history {
                old.check();
                prop_assert!(old.iter().map(|(k, v)| (*k, *v)).eq(expected.iter().map(|(k, v)| (*k, *v))));
            }
        }
    }

    #[test]
    fn grows_and_shrinks_through_many_levels() {
        let mut tree = Tree::default();
        let mut model = BTreeMap::new();
        let puts: Vec<Op> = (0..60_000u32).map(|k| Op::Put((k % 65_000) as u16, k)).collect();
        for chunk in puts.chunks(7_000) {
            apply_ops(&mut tree, &mut model, chunk.to_vec());
            tree.check();
        }
        assert_eq!(tree.len(), model.len());
        let dels: Vec<Op> = (0..60_000u32).filter(|k| k % 3 != 0).map(|k| Op::Del(k as u16)).collect();
        for chunk in dels.chunks(5_000) {
            apply_ops(&mut tree, &mut model, chunk.to_vec());
            tree.check();
        }
        assert!(tree.iter().map(|(k, _)| *k).eq(model.keys().copied()));
        apply_ops(&mut tree, &mut model, (0..65_000u32).map(|k| Op::Del(k as u16)).collect());
        assert!(tree.is_empty() && tree.iter().next().is_none());
    }
}
