//! A persistent (copy-on-write) B+tree over byte-string keys, with batched updates:
//! the ordered map behind every partition index and secondary index.
//!
//! Cloning a tree is O(1): clones share nodes, and a node is copied only when one of
//! its sharers changes it. Updates come as a sorted batch (all of one commit's changes
//! to a partition) that [`Tree::apply`] merges in a single pass: subtrees no change
//! falls in stay shared untouched, and each touched leaf is copied and merged once,
//! however many of the batch's changes land in it.
//!
//! Keys live inside the nodes, front-coded (see `block.rs`): each key is stored as the
//! length it shares with the key before it plus the bytes that differ. The keys of one
//! file share a long prefix (its id, then its module path), so a leaf holds them in a
//! fraction of their length, and a search compares the probe with the differing bytes
//! in the node's own memory instead of following a pointer per key, which is what a
//! lookup spent most of its time on. Branches hold *separators* rather than keys: a
//! byte string above every key of the previous child and at or below every key of its
//! child. When a branch is rebuilt around a new child, the separator is the shortest
//! prefix of the child's first key that is still above the previous child's last key,
//! usually a byte or two, so a branch is a cache line or two; when a commit leaves the
//! children as they were (one node each), their separators stay, still parting them.
//!
//! Lookups descend once and allocate nothing; cursors keep their path in a fixed array.

use std::mem::{size_of, size_of_val};

use triomphe::ThinArc;

use crate::store::block::{self, Probe};

/// Most entries a leaf holds before it is split.
const LEAF_MAX: usize = 16;
/// Most children a branch holds before it is split.
const BRANCH_MAX: usize = 16;
/// Deepest path a cursor can follow: a tree this deep holds at least `4^16` entries,
/// far more than memory allows.
const MAX_DEPTH: usize = 16;

/// Fewest entries (leaf) or children (branch) a non-root node keeps; fewer are merged
/// with a neighbour.
const fn min_width(max: usize) -> usize {
    max / 4
}

/// A leaf: its values, and their keys as a front-coded block in the same allocation.
struct Leaf<V>(ThinArc<Box<[V]>, u8>);

/// A branch: its children and the number of entries below it, and the separators
/// between its children (one fewer than the children) as a front-coded block. Child
/// `i` holds the keys from separator `i - 1` (inclusive) to separator `i` (exclusive).
struct Branch<V>(ThinArc<BranchHead<V>, u8>);

struct BranchHead<V> {
    children: Box<[Node<V>]>,
    len: usize,
}

/// A node. Cloning is a reference-count increment; nodes are never changed in place.
enum Node<V> {
    Leaf(Leaf<V>),
    Branch(Branch<V>),
}

impl<V> Clone for Node<V> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(leaf) => Node::Leaf(Leaf(leaf.0.clone())),
            Node::Branch(branch) => Node::Branch(Branch(branch.0.clone())),
        }
    }
}

/// What a thin allocation holds beside its header and slice: a reference count and
/// the slice's length.
const THIN_OVERHEAD: usize = 2 * size_of::<usize>();

impl<V> Leaf<V> {
    /// Heap bytes of its two allocations.
    fn bytes(&self) -> usize {
        THIN_OVERHEAD + size_of::<Box<[V]>>() + self.keys().len() + size_of_val(self.values())
    }

    fn values(&self) -> &[V] {
        &self.0.header.header
    }

    fn keys(&self) -> &[u8] {
        &self.0.slice
    }
}

impl<V> Branch<V> {
    /// Heap bytes of its two allocations (not of its children).
    fn bytes(&self) -> usize {
        THIN_OVERHEAD + size_of::<BranchHead<V>>() + self.separators().len() + size_of_val(self.children())
    }

    fn children(&self) -> &[Node<V>] {
        &self.0.header.header.children
    }

    fn separators(&self) -> &[u8] {
        &self.0.slice
    }

    /// The child a search for `probe` continues in.
    #[inline]
    fn child_for(&self, probe: Probe<'_>) -> usize {
        let (below, equal) = block::position(self.separators(), probe);
        below + usize::from(equal)
    }
}

impl<V> Node<V> {
    /// Heap bytes of the node itself (not of its children).
    fn bytes(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.bytes(),
            Node::Branch(branch) => branch.bytes(),
        }
    }

    /// Entries of a leaf, children of a branch.
    #[cfg(test)]
    fn width(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.values().len(),
            Node::Branch(branch) => branch.children().len(),
        }
    }

    /// Entries below the node.
    fn len(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.values().len(),
            Node::Branch(branch) => branch.0.header.header.len,
        }
    }

    fn is_underfull(&self) -> bool {
        match self {
            Node::Leaf(leaf) => leaf.values().len() < min_width(LEAF_MAX),
            Node::Branch(branch) => branch.children().len() < min_width(BRANCH_MAX),
        }
    }
}

/// A node with the separator that precedes it among its siblings (`None` for the first
/// child of a branch, or where the caller keeps the one it has).
struct Piece<V> {
    separator: Option<Box<[u8]>>,
    node: Node<V>,
}

/// A persistent ordered map from byte strings to `V`.
pub(crate) struct Tree<V> {
    root: Option<Node<V>>,
    len: usize,
    /// Heap bytes of all its nodes (shared with other versions or not).
    bytes: usize,
}

impl<V> Clone for Tree<V> {
    fn clone(&self) -> Self {
        Tree { root: self.root.clone(), len: self.len, bytes: self.bytes }
    }
}

impl<V> Default for Tree<V> {
    fn default() -> Self {
        Tree { root: None, len: 0, bytes: 0 }
    }
}

impl<V: Clone> Tree<V> {
    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes of its nodes: keys, values and structure.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The value under exactly `key`: one descent, no allocation.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        let probe = Probe::at(key);
        let mut node = self.root.as_ref()?;
        loop {
            match node {
                Node::Branch(branch) => {
                    prefetch(branch.children());
                    node = &branch.children()[branch.child_for(probe)]
                }
                Node::Leaf(leaf) => {
                    prefetch(leaf.values());
                    let (at, equal) = block::position(leaf.keys(), probe);
                    return if equal { leaf.values().get(at) } else { None };
                }
            }
        }
    }

    /// A cursor at the first entry not before `probe`.
    pub(crate) fn iter_from(&self, probe: Probe<'_>) -> Iter<'_, V> {
        let mut iter = Iter::empty();
        let Some(mut node) = self.root.as_ref() else { return iter };
        loop {
            match node {
                Node::Branch(branch) => {
                    prefetch(branch.children());
                    let at = branch.child_for(probe);
                    // Depth is bounded by MAX_DEPTH (see its doc); a deeper tree cannot fit in memory.
                    iter.path[iter.depth] = Some((branch, at));
                    iter.depth += 1;
                    node = &branch.children()[at];
                }
                Node::Leaf(leaf) => {
                    let (at, _) = block::position(leaf.keys(), probe);
                    iter.enter(leaf);
                    for _ in 0..at {
                        iter.step_in_leaf();
                    }
                    return iter;
                }
            }
        }
    }

    /// A cursor at the first entry.
    pub(crate) fn iter(&self) -> Iter<'_, V> {
        self.iter_from(Probe::at(&[]))
    }

    /// Visits the entries from `probe` on for as long as `admits` holds, dividing
    /// the work by subtrees on rayon's pool: each bottom-level branch (up to
    /// `BRANCH_MAX` leaves) is one task, and `visit` gets its stretches of values. What
    /// the tasks return comes back in key order. No serial walk over the leaves
    /// precedes the split, so the scan scales with the threads.
    ///
    /// `admits` must hold for every byte string up to some point of byte order and for
    /// none after it, as a range's end test does: it is asked about separators too,
    /// which are not keys of the tree.
    pub(crate) fn par_visit<'t, A, F, R>(&'t self, probe: Probe<'_>, admits: &A, visit: &F) -> Vec<R>
    where
        V: Send + Sync,
        A: Fn(&[u8]) -> bool + Sync,
        F: Fn(&[&'t [V]]) -> R + Sync,
        R: Send,
    {
        match &self.root {
            None => Vec::new(),
            Some(Node::Leaf(leaf)) => {
                let stretch = admitted(leaf, probe, admits, (true, true));
                if stretch.is_empty() { Vec::new() } else { vec![visit(&[stretch])] }
            }
            Some(node) => par_visit_node(node, probe, admits, visit, (true, true)),
        }
    }

    /// About how many entries [`par_visit`](Self::par_visit) would visit: exact in the
    /// leaves on the range's two edges, the entry counts of the subtrees in between.
    /// `admits` is as for `par_visit`.
    pub(crate) fn estimate<A: Fn(&[u8]) -> bool>(&self, probe: Probe<'_>, admits: &A) -> usize {
        self.root.as_ref().map_or(0, |root| estimate_node(root, probe, admits, (true, true)))
    }

    /// The tree of `entries`, sorted by key with no key twice: leaves filled in one
    /// pass, then each level of branches above them, with none of a batch's merging
    /// (a restored partition's tree is built this way, at its first read).
    pub(crate) fn from_sorted(entries: Vec<(&[u8], V)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "entries sorted and unique");
        let len = entries.len();
        let mut build = Apply {
            key_of: &(),
            merge: &mut (),
            len,
            bytes: 0,
            writer: block::Writer::default(),
            decoded: Decoded::default(),
        };
        let mut level = build.leaves(entries.into_iter(), |key| key);
        while level.len() > 1 {
            level = build.branches(level);
        }
        Tree { root: level.pop().map(|piece| piece.node), len, bytes: build.bytes }
    }

    /// Applies a batch of changes sorted by key, with at most one change per key.
    /// `merge` receives each change with the entry's current value (if any) and
    /// returns its new value, or `None` to remove the entry.
    pub(crate) fn apply<C>(
        &mut self,
        changes: &[C],
        key_of: impl Fn(&C) -> &[u8],
        mut merge: impl FnMut(Option<&V>, &C) -> Option<V>,
    ) {
        if changes.is_empty() {
            return;
        }
        debug_assert!(changes.windows(2).all(|w| key_of(&w[0]) < key_of(&w[1])), "changes sorted and unique");
        let mut apply = Apply {
            key_of: &key_of,
            merge: &mut merge,
            len: self.len,
            bytes: self.bytes,
            writer: block::Writer::default(),
            decoded: Decoded::default(),
        };
        let mut level = match self.root.take() {
            Some(root) => apply.node(&root, changes),
            None => apply.leaf(None, changes),
        };
        // Grow upwards while a level has more nodes than one branch holds.
        while level.len() > 1 {
            level = apply.branches(level);
        }
        let mut root = level.pop().map(|piece| piece.node);
        // Shrink while the root is a branch with a single child.
        while let Some(node @ Node::Branch(branch)) = &root {
            if branch.children().len() != 1 {
                break;
            }
            apply.bytes -= node.bytes();
            root = Some(branch.children()[0].clone());
        }
        (self.len, self.bytes) = (apply.len, apply.bytes);
        self.root = root;
    }

    /// Checks every structural invariant (sizes, depth, order, separators, counts);
    /// for tests. Returns the number of entries.
    #[cfg(test)]
    pub(crate) fn check(&self) -> usize {
        fn keys_of<V>(node: &Node<V>, out: &mut Vec<Vec<u8>>) -> usize {
            match node {
                Node::Leaf(leaf) => {
                    let mut keys = block::Keys::new(leaf.keys());
                    let mut count = 0;
                    while let Some(key) = keys.next_key() {
                        out.push(key.to_vec());
                        count += 1;
                    }
                    assert_eq!(count, leaf.values().len(), "one key per value");
                    0
                }
                Node::Branch(branch) => {
                    let children = branch.children();
                    let mut separators = Vec::new();
                    let mut keys = block::Keys::new(branch.separators());
                    while let Some(key) = keys.next_key() {
                        separators.push(key.to_vec());
                    }
                    assert_eq!(separators.len() + 1, children.len(), "one separator between children");
                    let mut depth = None;
                    let mut below = 0;
                    for (at, child) in children.iter().enumerate() {
                        let start = out.len();
                        let child_depth = keys_of(child, out);
                        assert!(depth.is_none_or(|d| d == child_depth), "all leaves at one depth");
                        depth = Some(child_depth);
                        let max = if matches!(child, Node::Leaf(_)) { LEAF_MAX } else { BRANCH_MAX };
                        assert!(child.width() <= max, "node with {} entries", child.width());
                        assert!(!child.is_underfull(), "non-root node with {} entries", child.width());
                        assert_eq!(out.len() - start, child.len(), "entry counts add up");
                        below += child.len();
                        let (low, high) = (at.checked_sub(1).map(|i| &separators[i]), separators.get(at));
                        for key in &out[start..] {
                            assert!(low.is_none_or(|low| key >= low), "a key below its child's separator");
                            assert!(
                                high.is_none_or(|high| key < high),
                                "a key at or above the next separator"
                            );
                        }
                    }
                    assert_eq!(below, node.len());
                    depth.unwrap_or(0) + 1
                }
            }
        }
        let mut keys = Vec::new();
        if let Some(root) = &self.root {
            keys_of(root, &mut keys);
            assert!(root.width() > 0, "no empty root");
        }
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys ascend");
        assert_eq!(keys.len(), self.len);
        fn bytes_of<V>(node: &Node<V>) -> usize {
            node.bytes()
                + match node {
                    Node::Leaf(_) => 0,
                    Node::Branch(branch) => branch.children().iter().map(bytes_of).sum(),
                }
        }
        assert_eq!(self.root.as_ref().map_or(0, bytes_of), self.bytes, "node bytes add up");
        keys.len()
    }
}

/// The values of a leaf from `probe` on (on the range's first path) that `admits`
/// accepts (on its last path).
fn admitted<'t, V>(
    leaf: &'t Leaf<V>,
    probe: Probe<'_>,
    admits: &impl Fn(&[u8]) -> bool,
    edges: (bool, bool),
) -> &'t [V] {
    let start = if edges.0 { block::position(leaf.keys(), probe).0 } else { 0 };
    let mut end = leaf.values().len();
    if edges.1 {
        let mut keys = block::Keys::new(leaf.keys());
        let mut at = 0;
        while let Some(key) = keys.next_key() {
            if at >= start && !admits(key) {
                end = at;
                break;
            }
            at += 1;
        }
    }
    &leaf.values()[start..end.max(start)]
}

/// The children of a branch a range can reach: from the one holding the probe's
/// position (on the range's first path) to the last whose separator is still
/// admitted (on its last path). A separator is at or below every key of its child, so
/// one that is not admitted means nothing after it is.
fn reachable<V>(
    branch: &Branch<V>,
    probe: Probe<'_>,
    admits: &impl Fn(&[u8]) -> bool,
    edges: (bool, bool),
) -> (usize, usize) {
    let first = if edges.0 { branch.child_for(probe) } else { 0 };
    let mut last = branch.children().len();
    if edges.1 {
        let mut separators = block::Keys::new(branch.separators());
        let mut child = 1;
        while let Some(separator) = separators.next_key() {
            if child > first && !admits(separator) {
                last = child;
                break;
            }
            child += 1;
        }
    }
    (first, last)
}

fn estimate_node<V, A: Fn(&[u8]) -> bool>(
    node: &Node<V>,
    probe: Probe<'_>,
    admits: &A,
    edges: (bool, bool),
) -> usize {
    match node {
        Node::Leaf(leaf) => admitted(leaf, probe, admits, edges).len(),
        Node::Branch(branch) => {
            let (first, last) = reachable(branch, probe, admits, edges);
            let children = &branch.children()[first..last];
            children
                .iter()
                .enumerate()
                .map(|(at, child)| match (edges.0 && at == 0, edges.1 && at + 1 == children.len()) {
                    (false, false) => child.len(),
                    inner => estimate_node(child, probe, admits, inner),
                })
                .sum()
        }
    }
}

/// `par_visit` below `node`. Only the leftmost and rightmost paths of the range need
/// trimming (`edges`: on the range's first path, on its last path); every other leaf
/// is visited whole.
fn par_visit_node<'t, V, A, F, R>(
    node: &'t Node<V>,
    probe: Probe<'_>,
    admits: &A,
    visit: &F,
    edges: (bool, bool),
) -> Vec<R>
where
    V: Send + Sync,
    A: Fn(&[u8]) -> bool + Sync,
    F: Fn(&[&'t [V]]) -> R + Sync,
    R: Send,
{
    use rayon::prelude::*;
    let Node::Branch(branch) = node else { return Vec::new() };
    let (first, last) = reachable(branch, probe, admits, edges);
    let reachable = &branch.children()[first..last];
    let edges_of = |at: usize| (edges.0 && at == 0, edges.1 && at + 1 == reachable.len());
    if let Some(Node::Leaf(_)) = reachable.first() {
        let stretches: Vec<&'t [V]> = reachable
            .iter()
            .enumerate()
            .filter_map(|(at, child)| match child {
                Node::Leaf(leaf) => Some(admitted(leaf, probe, admits, edges_of(at))),
                Node::Branch(_) => None,
            })
            .filter(|stretch| !stretch.is_empty())
            .collect();
        return if stretches.is_empty() { Vec::new() } else { vec![visit(&stretches)] };
    }
    reachable
        .par_iter()
        .enumerate()
        .flat_map_iter(|(at, child)| par_visit_node(child, probe, admits, visit, edges_of(at)))
        .collect()
}

/// The state of one [`Tree::apply`] call.
struct Apply<'f, KeyOf, Merge> {
    key_of: &'f KeyOf,
    merge: &'f mut Merge,
    /// The tree's entries and node bytes, kept up to date as nodes are replaced.
    len: usize,
    bytes: usize,
    /// Reused for every block built.
    writer: block::Writer,
    /// Reused for every leaf merged: its keys decoded.
    decoded: Decoded,
}

/// Keys decoded from blocks into one buffer, each found by its position.
#[derive(Default)]
struct Decoded {
    bytes: Vec<u8>,
    /// Where each key ends in `bytes`.
    ends: Vec<usize>,
}

impl Decoded {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Appends the keys of a block, all but the one at `skip`.
    fn push_block(&mut self, block: &[u8], skip: Option<usize>) {
        let mut keys = block::Keys::new(block);
        let mut at = 0;
        while let Some(key) = keys.next_key() {
            if Some(at) != skip {
                self.bytes.extend_from_slice(key);
                self.ends.push(self.bytes.len());
            }
            at += 1;
        }
    }

    fn key(&self, at: usize) -> &[u8] {
        &self.bytes[at.checked_sub(1).map_or(0, |previous| self.ends[previous])..self.ends[at]]
    }
}

impl<KeyOf, Merge> Apply<'_, KeyOf, Merge> {
    /// Applies `changes` (all within this node's key range) to a node and returns
    /// the nodes that replace it: none if it emptied, several if it overflowed.
    fn node<V: Clone, C>(&mut self, node: &Node<V>, changes: &[C]) -> Vec<Piece<V>>
    where
        KeyOf: Fn(&C) -> &[u8],
        Merge: FnMut(Option<&V>, &C) -> Option<V>,
    {
        match node {
            Node::Leaf(leaf) => self.leaf(Some(leaf), changes),
            Node::Branch(branch) => self.branch(branch, changes),
        }
    }

    fn leaf<V: Clone, C>(&mut self, leaf: Option<&Leaf<V>>, changes: &[C]) -> Vec<Piece<V>>
    where
        KeyOf: Fn(&C) -> &[u8],
        Merge: FnMut(Option<&V>, &C) -> Option<V>,
    {
        let key_of = self.key_of;
        // One change to an existing key (a map's value replaced or removed): found
        // without decoding the keys, and a replaced value keeps the key block.
        if let (Some(leaf), [change]) = (leaf, changes) {
            let (at, equal) = block::position(leaf.keys(), Probe::at(key_of(change)));
            if equal {
                self.bytes -= leaf.bytes();
                let mut values = leaf.values().to_vec();
                return match (self.merge)(Some(&values[at]), change) {
                    Some(value) => {
                        values[at] = value;
                        let node =
                            Node::Leaf(Leaf(ThinArc::from_header_and_slice(values.into(), leaf.keys())));
                        self.bytes += node.bytes();
                        vec![Piece { separator: None, node }]
                    }
                    None => {
                        self.len -= 1;
                        values.remove(at);
                        let mut decoded = std::mem::take(&mut self.decoded);
                        decoded.clear();
                        decoded.push_block(leaf.keys(), Some(at));
                        let pieces = self.leaves(values.into_iter().enumerate(), |at| decoded.key(*at));
                        self.decoded = decoded;
                        pieces
                    }
                };
            }
        }
        // The existing keys, decoded into one buffer (kept between leaves).
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        if let Some(leaf) = leaf {
            decoded.push_block(leaf.keys(), None);
        }
        let old_values = leaf.map_or(&[][..], |leaf| leaf.values());
        self.bytes -= leaf.map_or(0, Leaf::bytes);
        let old_key = |at: usize| decoded.key(at);

        // Merge: each merged entry's key comes from the old leaf or from a change.
        enum From {
            Old(usize),
            Change(usize),
        }
        let mut merged: Vec<(From, V)> = Vec::with_capacity(old_values.len() + changes.len());
        // Whether the merged keys differ from the old ones (an entry added or removed).
        let mut keys_changed = false;
        let mut old = 0;
        for (at, change) in changes.iter().enumerate() {
            let key = key_of(change);
            while old < old_values.len() && old_key(old) < key {
                merged.push((From::Old(old), old_values[old].clone()));
                old += 1;
            }
            let current = (old < old_values.len() && old_key(old) == key).then(|| &old_values[old]);
            let had = current.is_some();
            old += usize::from(had);
            match (self.merge)(current, change) {
                Some(value) => {
                    self.len += usize::from(!had);
                    keys_changed |= !had;
                    merged.push((From::Change(at), value));
                }
                None if had => {
                    self.len -= 1;
                    keys_changed = true;
                }
                None => {}
            }
        }
        merged.extend((old..old_values.len()).map(|at| (From::Old(at), old_values[at].clone())));

        let pieces = if let Some(leaf) = leaf.filter(|_| !keys_changed) {
            // Only values were replaced (a task re-committing the same keys): the key
            // block stays as it is.
            let values: Box<[V]> = merged.into_iter().map(|(_, value)| value).collect();
            let node = Node::Leaf(Leaf(ThinArc::from_header_and_slice(values, leaf.keys())));
            self.bytes += node.bytes();
            vec![Piece { separator: None, node }]
        } else {
            let key_at = |from: &From| match from {
                From::Old(at) => old_key(*at),
                From::Change(at) => key_of(&changes[*at]),
            };
            self.leaves(merged.into_iter(), key_at)
        };
        self.decoded = decoded;
        pieces
    }

    /// Leaves over `entries` (in key order, with where each one's key is), as few as
    /// hold them, evenly filled.
    fn leaves<'k, V, K>(
        &mut self,
        mut entries: impl ExactSizeIterator<Item = (K, V)>,
        key: impl Fn(&K) -> &'k [u8],
    ) -> Vec<Piece<V>> {
        let lengths = run_lengths(entries.len(), LEAF_MAX);
        let mut pieces = Vec::with_capacity(lengths.len());
        let mut last_key: Option<&[u8]> = None;
        for length in lengths {
            self.writer.clear();
            let mut separator = None;
            let mut values = Vec::with_capacity(length);
            for (at, value) in entries.by_ref().take(length) {
                let key = key(&at);
                if values.is_empty() {
                    separator = last_key.map(|last| block::separator(last, key).into());
                }
                self.writer.push(key);
                last_key = Some(key);
                values.push(value);
            }
            let node = Node::Leaf(Leaf(ThinArc::from_header_and_slice(values.into(), &self.writer.bytes)));
            self.bytes += node.bytes();
            pieces.push(Piece { separator, node });
        }
        pieces
    }

    fn branch<V: Clone, C>(&mut self, branch: &Branch<V>, changes: &[C]) -> Vec<Piece<V>>
    where
        KeyOf: Fn(&C) -> &[u8],
        Merge: FnMut(Option<&V>, &C) -> Option<V>,
    {
        self.bytes -= branch.bytes();
        let children = branch.children();
        // Each child's replacement (`None`: untouched), given the changes below the
        // next separator.
        let mut replaced: Vec<Option<Vec<Piece<V>>>> = Vec::with_capacity(children.len());
        let mut separators = block::Keys::new(branch.separators());
        let mut rest = changes;
        for child in children {
            let here = match separators.next_key() {
                Some(next) => rest.partition_point(|change| (self.key_of)(change) < next),
                None => rest.len(),
            };
            let (mine, later) = rest.split_at(here);
            rest = later;
            replaced.push((!mine.is_empty()).then(|| self.node(child, mine)));
        }

        // Every child still one node, wide enough (a commit that split or emptied no
        // node): the separators still part the children, so they stay as they are.
        let one_each = |pieces: &Vec<Piece<V>>| pieces.len() == 1 && !pieces[0].node.is_underfull();
        if replaced.iter().all(|pieces| pieces.as_ref().is_none_or(one_each)) {
            let nodes = children.iter().zip(replaced).map(|(child, pieces)| match pieces {
                Some(mut pieces) => pieces.pop().map_or_else(|| child.clone(), |piece| piece.node),
                None => child.clone(),
            });
            let node = self.build_branch(nodes.collect(), branch.separators());
            return vec![Piece { separator: None, node }];
        }

        let mut rebuilt: Vec<Piece<V>> = Vec::with_capacity(children.len() + 2);
        let mut separators = block::Keys::new(branch.separators());
        let mut separator: Option<Box<[u8]>> = None;
        for (child, pieces) in children.iter().zip(replaced) {
            let next = separators.next_key().map(Box::<[u8]>::from);
            match pieces {
                None => rebuilt.push(Piece { separator: separator.take(), node: child.clone() }),
                Some(mut pieces) => {
                    if let Some(first) = pieces.first_mut() {
                        first.separator = separator.take();
                    }
                    rebuilt.extend(pieces);
                }
            }
            separator = next;
        }
        // A removed first child leaves its separator on the new first one: drop it.
        if let Some(first) = rebuilt.first_mut() {
            first.separator = None;
        }
        let rebuilt = self.rebalance(rebuilt);
        if rebuilt.is_empty() {
            return Vec::new();
        }
        self.branches(rebuilt)
    }

    /// Groups one level's pieces into as few branches of at most `BRANCH_MAX`
    /// children as possible, evenly; each branch's separator is the one its first
    /// child had.
    fn branches<V>(&mut self, pieces: Vec<Piece<V>>) -> Vec<Piece<V>> {
        runs(pieces, BRANCH_MAX)
            .into_iter()
            .map(|mut run| {
                let separator = run[0].separator.take();
                let mut writer = std::mem::take(&mut self.writer);
                writer.clear();
                let nodes: Vec<Node<V>> = run
                    .into_iter()
                    .enumerate()
                    .map(|(at, piece)| {
                        if at > 0 {
                            writer.push(piece.separator.as_deref().unwrap_or_default());
                        }
                        piece.node
                    })
                    .collect();
                let node = self.build_branch(nodes, &writer.bytes);
                self.writer = writer;
                Piece { separator, node }
            })
            .collect()
    }

    /// A branch over `children`, parted by the front-coded `separators`.
    fn build_branch<V>(&mut self, children: Vec<Node<V>>, separators: &[u8]) -> Node<V> {
        let len = children.iter().map(Node::len).sum();
        let head = BranchHead { children: children.into(), len };
        let node = Node::Branch(Branch(ThinArc::from_header_and_slice(head, separators)));
        self.bytes += node.bytes();
        node
    }

    /// Merges each piece that fell below the minimum width into a neighbour
    /// (re-splitting if the pair is then too wide), so only a root may be underfull.
    fn rebalance<V: Clone>(&mut self, mut pieces: Vec<Piece<V>>) -> Vec<Piece<V>> {
        let mut at = 0;
        while at < pieces.len() {
            if !pieces[at].node.is_underfull() || pieces.len() == 1 {
                at += 1;
                continue;
            }
            // Merge with the next piece, or with the previous one at the end.
            let left = if at + 1 < pieces.len() { at } else { at - 1 };
            let right = pieces.remove(left + 1);
            let mut parts = self.concat(&pieces[left].node, right);
            if let Some(first) = parts.first_mut() {
                first.separator = pieces[left].separator.take();
            }
            pieces.splice(left..=left, parts);
            // Two underfull nodes can make one that is still underfull: look again.
            at = left;
        }
        pieces
    }

    /// Joins two adjacent nodes of one level, re-split evenly if too wide. The first
    /// piece's separator is left for the caller.
    fn concat<V: Clone>(&mut self, left: &Node<V>, right: Piece<V>) -> Vec<Piece<V>> {
        if std::mem::discriminant(left) == std::mem::discriminant(&right.node) {
            self.bytes -= left.bytes() + right.node.bytes();
        }
        match (left, &right.node) {
            (Node::Leaf(a), Node::Leaf(b)) => {
                let mut decoded = Decoded::default();
                decoded.push_block(a.keys(), None);
                decoded.push_block(b.keys(), None);
                let values: Vec<(usize, V)> =
                    a.values().iter().chain(b.values()).cloned().enumerate().collect();
                self.leaves(values.into_iter(), |at| decoded.key(*at))
            }
            (Node::Branch(a), Node::Branch(b)) => {
                let separators_of = |branch: &Branch<V>| {
                    let mut out = vec![None];
                    let mut keys = block::Keys::new(branch.separators());
                    while let Some(key) = keys.next_key() {
                        out.push(Some(Box::<[u8]>::from(key)));
                    }
                    out
                };
                let mut children: Vec<Piece<V>> = a
                    .children()
                    .iter()
                    .zip(separators_of(a))
                    .map(|(child, separator)| Piece { separator, node: child.clone() })
                    .collect();
                let mut b_separators = separators_of(b);
                // The separator between the two nodes goes between their children.
                b_separators[0] = right.separator;
                children.extend(
                    b.children()
                        .iter()
                        .zip(b_separators)
                        .map(|(child, separator)| Piece { separator, node: child.clone() }),
                );
                // An underfull node whose parent was underfull too meets its new siblings here.
                let children = self.rebalance(children);
                self.branches(children)
            }
            // Siblings are always at one level: every leaf is at the same depth.
            (left, _) => vec![Piece { separator: None, node: left.clone() }, right],
        }
    }
}

/// Cuts `items` into the fewest runs of at most `max`, as even as possible, moving
/// them (a single run is the vector itself).
fn runs<T>(mut items: Vec<T>, max: usize) -> Vec<Vec<T>> {
    let mut lengths = run_lengths(items.len(), max);
    let mut runs = Vec::with_capacity(lengths.len());
    let first = lengths.next();
    for length in lengths.rev() {
        runs.push(items.split_off(items.len() - length));
    }
    if first.is_some() {
        runs.push(items);
    }
    runs.reverse();
    runs
}

/// The lengths of the fewest runs of at most `max` that `len` items make, as even
/// as possible (none for no items).
fn run_lengths(len: usize, max: usize) -> impl DoubleEndedIterator<Item = usize> + ExactSizeIterator {
    let parts = len.div_ceil(max);
    (0..parts).map(move |part| (part + 1) * len / parts - part * len / parts)
}

/// A branch and the child a cursor is visiting.
type Step<'a, V> = Option<(&'a Branch<V>, usize)>;

/// Asks the CPU to start loading `slice` into the cache, without waiting for it.
///
/// A descent reads a node's key block first and only then the one child pointer or
/// value it needs, in an allocation of its own: each level cost two cache misses one
/// after the other. Fetched while the key block is searched, the second one mostly
/// overlaps the first (exact lookups 1.19–1.32 → 1.03–1.08 × a `BTreeMap`, three
/// alternated `perf_report --only lookup` runs).
#[inline]
fn prefetch<T>(slice: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = slice.as_ptr().cast::<i8>();
        for offset in (0..size_of_val(slice)).step_by(64) {
            // SAFETY: a prefetch is only a hint: it reads nothing the program sees and
            // cannot fault, whatever the address. Here every address is inside
            // `slice` anyway (an empty slice prefetches nothing).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slice;
}

/// A cursor over a tree's entries in key order. Its path lives in a fixed array and it
/// rebuilds each key in a buffer of its own as it moves, so it hands out keys that
/// live until its next step.
pub(crate) struct Iter<'a, V> {
    /// For each branch level from the root: the branch and the child being visited.
    path: [Step<'a, V>; MAX_DEPTH],
    depth: usize,
    leaf: Option<&'a Leaf<V>>,
    entries: block::Entries<'a>,
    /// The index in the leaf of the entry the next step returns.
    at: usize,
    key: Vec<u8>,
}

impl<'a, V> Iter<'a, V> {
    fn empty() -> Self {
        Iter {
            path: [None; MAX_DEPTH],
            depth: 0,
            leaf: None,
            entries: block::Entries::new(&[]),
            at: 0,
            // Room for a typical key from the start: grown from empty, it was
            // reallocated three or four times by every short scan.
            key: Vec::with_capacity(64),
        }
    }

    fn enter(&mut self, leaf: &'a Leaf<V>) {
        prefetch(leaf.values());
        self.leaf = Some(leaf);
        self.entries = block::Entries::new(leaf.keys());
        self.at = 0;
        self.key.clear();
    }

    /// Decodes the next key of the leaf into the buffer; false at the leaf's end.
    #[inline]
    fn step_in_leaf(&mut self) -> bool {
        match self.entries.next() {
            Some((shared, suffix)) => {
                self.key.truncate(shared);
                self.key.extend_from_slice(suffix);
                self.at += 1;
                true
            }
            None => false,
        }
    }

    /// The next entry: its key (valid until the next step) and its value.
    #[inline]
    pub(crate) fn next(&mut self) -> Option<(&[u8], &'a V)> {
        loop {
            let leaf = self.leaf?;
            if self.step_in_leaf() {
                return Some((&self.key, &leaf.values()[self.at - 1]));
            }
            self.next_leaf()?;
        }
    }

    /// The values of the current leaf from the cursor on whose keys `admits` accepts
    /// (which must hold for a prefix of the keys in order), then moves past them: how
    /// index lookups cut their work a leaf at a time. After the first key `admits`
    /// refuses, the cursor is at its end.
    pub(crate) fn run_while(&mut self, admits: &impl Fn(&[u8]) -> bool) -> Option<&'a [V]> {
        loop {
            let leaf = self.leaf?;
            let start = self.at;
            while self.step_in_leaf() {
                if !admits(&self.key) {
                    self.leaf = None;
                    let run = &leaf.values()[start..self.at - 1];
                    return (!run.is_empty()).then_some(run);
                }
            }
            if self.at > start {
                return Some(&leaf.values()[start..self.at]);
            }
            self.next_leaf()?;
        }
    }

    /// Moves to the first entry of the next leaf.
    fn next_leaf(&mut self) -> Option<()> {
        // Climb to the nearest level with a child to the right.
        let level = loop {
            let Some(level) = self.depth.checked_sub(1) else {
                self.leaf = None;
                return None;
            };
            let (branch, at) = self.path[level]?;
            if at + 1 < branch.children().len() {
                self.path[level] = Some((branch, at + 1));
                break level;
            }
            self.depth = level;
        };
        // Then down its leftmost path.
        let (branch, at) = self.path[level]?;
        let mut node: &'a Node<V> = &branch.children()[at];
        loop {
            match node {
                Node::Branch(branch) => {
                    self.path[self.depth] = Some((branch, 0));
                    self.depth += 1;
                    node = &branch.children()[0];
                }
                Node::Leaf(leaf) => {
                    self.enter(leaf);
                    return Some(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Put(Vec<u8>, u32),
        Del(Vec<u8>),
    }

    impl Op {
        fn key(&self) -> &[u8] {
            match self {
                Op::Put(key, _) | Op::Del(key) => key,
            }
        }
    }

    fn apply_ops(tree: &mut Tree<u32>, model: &mut BTreeMap<Vec<u8>, u32>, mut ops: Vec<Op>) {
        ops.sort_by(|a, b| a.key().cmp(b.key()));
        ops.dedup_by(|a, b| a.key() == b.key());
        for op in &ops {
            match op {
                Op::Put(key, value) => model.insert(key.clone(), *value),
                Op::Del(key) => model.remove(key),
            };
        }
        tree.apply(&ops, Op::key, |_, op| match op {
            Op::Put(_, value) => Some(*value),
            Op::Del(_) => None,
        });
    }

    /// Keys shaped like real sort keys: a few shared heads, a common middle, short
    /// distinct tails, with the bytes the encoding uses at its edges (0x00, 0xFF).
    fn key() -> impl Strategy<Value = Vec<u8>> {
        let head = prop::sample::select(vec![
            &b""[..],
            b"\0",
            b"ab",
            b"abcdefgh",
            b"\xff\xff",
            b"abcdefgh::module::",
        ]);
        let tail = prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xfe, 0xff]), 0..3);
        (head, tail).prop_map(|(head, tail)| [head, &tail].concat())
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(key(), any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)), key().prop_map(Op::Del)]
    }

    fn collect(mut iter: Iter<'_, u32>) -> Vec<(Vec<u8>, u32)> {
        let mut out = Vec::new();
        while let Some((key, value)) = iter.next() {
            out.push((key.to_vec(), *value));
        }
        out
    }

    fn expected_from(model: &BTreeMap<Vec<u8>, u32>, probe: Probe<'_>) -> Vec<(Vec<u8>, u32)> {
        model
            .iter()
            .filter(|(key, _)| probe.cmp_key(key) != Ordering::Less)
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(5), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn batches_match_a_btreemap_and_leave_clones_untouched(
            batches in prop::collection::vec((any::<bool>(), prop::collection::vec(op(), 0..200)), 1..10),
            probes in prop::collection::vec((key(), any::<bool>()), 8),
        ) {
            let mut tree = Tree::default();
            let mut model = BTreeMap::new();
            let mut history = Vec::new();
            for (thinning, mut batch) in batches {
                if thinning {
                    // Some batches only delete, so nodes fall below their minimum and merge.
                    batch.iter_mut().for_each(|op| *op = Op::Del(op.key().to_vec()));
                }
                history.push((tree.clone(), model.clone()));
                apply_ops(&mut tree, &mut model, batch);
                tree.check();
                let all: Vec<(Vec<u8>, u32)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
                prop_assert_eq!(collect(tree.iter()), all);
                for (probe, past) in &probes {
                    let probe = Probe { bytes: probe, past: *past };
                    if !past {
                        prop_assert_eq!(tree.get(probe.bytes), model.get(probe.bytes));
                    }
                    prop_assert_eq!(collect(tree.iter_from(probe)), expected_from(&model, probe));
                    // A range from the probe to the end of its prefix's keys, in parallel.
                    let end = probe.bytes.get(..1).unwrap_or_default();
                    let admits = |key: &[u8]| key.starts_with(end) || key < end;
                    let expected: Vec<u32> = expected_from(&model, probe)
                        .into_iter()
                        .take_while(|(key, _)| admits(key))
                        .map(|(_, v)| v)
                        .collect();
                    let parts = tree.par_visit(probe, &admits, &|stretches: &[&[u32]]| stretches.concat());
                    prop_assert_eq!(parts.concat(), expected.clone());
                    prop_assert_eq!(tree.estimate(probe, &admits) >= expected.len(), true);
                }
            }
            // Every earlier clone still shows exactly its own contents.
            for (old, expected) in history {
                old.check();
                let all: Vec<(Vec<u8>, u32)> = expected.iter().map(|(k, v)| (k.clone(), *v)).collect();
                prop_assert_eq!(collect(old.iter()), all);
            }
        }
    }

    #[test]
    fn grows_and_shrinks_through_many_levels() {
        let mut tree = Tree::default();
        let mut model = BTreeMap::new();
        let key = |k: u32| format!("file{:03}::item_{k:06}", k % 97).into_bytes();
        let puts: Vec<Op> = (0..60_000u32).map(|k| Op::Put(key(k), k)).collect();
        for chunk in puts.chunks(7_000) {
            apply_ops(&mut tree, &mut model, chunk.to_vec());
            tree.check();
        }
        assert_eq!(tree.len(), model.len());
        let dels: Vec<Op> = (0..60_000u32).filter(|k| k % 3 != 0).map(|k| Op::Del(key(k))).collect();
        for chunk in dels.chunks(5_000) {
            apply_ops(&mut tree, &mut model, chunk.to_vec());
            tree.check();
        }
        assert_eq!(collect(tree.iter()), model.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>());
        apply_ops(&mut tree, &mut model, (0..60_000u32).map(|k| Op::Del(key(k))).collect());
        assert!(tree.is_empty() && tree.iter().next().is_none());
    }

    #[test]
    fn thinning_merges_leaves_and_branches() {
        let mut tree = Tree::default();
        let mut model = BTreeMap::new();
        let key = |k: u32| format!("f{:02}::{k:05}", k % 7).into_bytes();
        apply_ops(&mut tree, &mut model, (0..20_000u32).map(|k| Op::Put(key(k), k)).collect());
        // Delete ever more of what is left, in batches spread over the key space, so
        // leaves and then branches fall below their minimum and merge.
        for step in [2u32, 3, 5, 7, 11, 13] {
            let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
            for batch in keys.chunks(997) {
                let ops = batch.iter().enumerate().filter(|(at, _)| !(*at as u32).is_multiple_of(step));
                apply_ops(&mut tree, &mut model, ops.map(|(_, key)| Op::Del(key.clone())).collect());
                tree.check();
            }
            assert_eq!(collect(tree.iter()), model.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn single_changes_replace_insert_and_remove() {
        let mut tree = Tree::default();
        let mut model = BTreeMap::new();
        let key = |k: u32| format!("task:{:04}", k.wrapping_mul(7_919) % 1_000).into_bytes();
        for step in 0..4_000u32 {
            // Mostly existing keys, so values are replaced and entries removed in place.
            let recent = key(step / 5 % 300);
            let op = match step % 5 {
                0 | 1 => Op::Put(recent, step),
                2 => Op::Del(recent),
                _ => Op::Put(key(step), step),
            };
            let old = tree.clone();
            apply_ops(&mut tree, &mut model, vec![op]);
            if step % 97 == 0 {
                tree.check();
                old.check();
            }
        }
        tree.check();
        assert_eq!(collect(tree.iter()), model.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>());
    }

    #[test]
    fn a_tree_built_from_sorted_entries_is_the_one_a_batch_builds() {
        for len in [0usize, 1, 15, 16, 17, 64, 255, 256, 257, 4099] {
            let keys: Vec<Vec<u8>> =
                (0..len).map(|at| format!("file/{:05}/item", at * 7).into_bytes()).collect();
            let entries: Vec<(&[u8], u32)> =
                keys.iter().zip(0u32..).map(|(key, at)| (key.as_slice(), at)).collect();
            let built = Tree::from_sorted(entries.clone());
            assert_eq!(built.check(), len);
            let mut batched = Tree::default();
            batched.apply(&entries, |(key, _)| key, |_, (_, value)| Some(*value));
            assert_eq!(collect(built.iter()), collect(batched.iter()));
            assert_eq!((built.len(), built.bytes()), (batched.len(), batched.bytes()), "{len} entries");
        }
    }

    #[test]
    fn prefetching_reaches_every_line_of_any_slice_and_changes_nothing() {
        // Empty (a dangling pointer, never touched), under a line, and many lines
        // ending exactly at the end of their allocation.
        for len in [0usize, 1, 3, 4, 5, 16, 17, 1000] {
            let values: Box<[u128]> = (0..len as u128).collect();
            prefetch(&values);
            prefetch(&values[len / 2..]);
            assert!(values.iter().copied().eq(0..len as u128));
        }
    }

    #[test]
    fn long_keys_use_multi_byte_lengths() {
        let mut tree = Tree::default();
        let mut model = BTreeMap::new();
        let ops: Vec<Op> =
            (0..100u32).map(|k| Op::Put([vec![7u8; 300], k.to_be_bytes().to_vec()].concat(), k)).collect();
        apply_ops(&mut tree, &mut model, ops);
        tree.check();
        assert_eq!(tree.get(&[vec![7u8; 300], 42u32.to_be_bytes().to_vec()].concat()), Some(&42));
    }
}
