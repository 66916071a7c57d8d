//! Front-coded key blocks: a sequence of keys in ascending order, each stored as
//! `shared` (a varint: the length of the prefix it shares with the key before it),
//! `len` (a varint) and the `len` bytes that follow the shared prefix. The first key
//! of a block shares nothing.
//!
//! Keys of one node share long prefixes (a file's id, then its module path), so a
//! block holds them in a fraction of their length, and [`position`] finds a probe's
//! place by looking only at the bytes where each key differs from the one before it.

/// Appends `value` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint at `*at` and moves past it.
#[inline]
fn get_varint(block: &[u8], at: &mut usize) -> usize {
    let first = block[*at];
    *at += 1;
    if first < 0x80 {
        return usize::from(first);
    }
    let mut value = usize::from(first & 0x7f);
    let mut shift = 7;
    loop {
        let byte = block[*at];
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

/// Length of the common prefix of two byte strings.
#[inline]
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut at = 0;
    while at + 8 <= len {
        let x = u64::from_ne_bytes(a[at..at + 8].try_into().unwrap_or_default());
        let y = u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
        if x != y {
            let diff = x ^ y;
            let bytes =
                if cfg!(target_endian = "little") { diff.trailing_zeros() } else { diff.leading_zeros() };
            return at + (bytes / 8) as usize;
        }
        at += 8;
    }
    while at < len && a[at] == b[at] {
        at += 1;
    }
    at
}

/// Builds a block key by key.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
    previous: Vec<u8>,
    count: usize,
}

impl Writer {
    /// Appends `key`, which must be above the key appended before it.
    pub(crate) fn push(&mut self, key: &[u8]) {
        debug_assert!(self.count == 0 || self.previous.as_slice() < key, "block keys ascend");
        let shared = if self.count == 0 { 0 } else { common_prefix(&self.previous, key) };
        put_varint(&mut self.bytes, shared);
        put_varint(&mut self.bytes, key.len() - shared);
        self.bytes.extend_from_slice(&key[shared..]);
        self.previous.truncate(shared);
        self.previous.extend_from_slice(&key[shared..]);
        self.count += 1;
    }

    /// Starts a new block, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.previous.clear();
        self.count = 0;
    }
}

/// Reads a block's entries in order without building the keys.
#[derive(Clone, Copy)]
pub(crate) struct Entries<'a> {
    block: &'a [u8],
    at: usize,
}

impl<'a> Entries<'a> {
    pub(crate) fn new(block: &'a [u8]) -> Self {
        Entries { block, at: 0 }
    }
}

impl<'a> Iterator for Entries<'a> {
    /// (bytes shared with the previous key, the bytes after them).
    type Item = (usize, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.block.len() {
            return None;
        }
        let shared = get_varint(self.block, &mut self.at);
        let len = get_varint(self.block, &mut self.at);
        let suffix = &self.block[self.at..self.at + len];
        self.at += len;
        Some((shared, suffix))
    }
}

/// Reads a block's keys in order into a buffer of its own.
pub(crate) struct Keys<'a> {
    entries: Entries<'a>,
    key: Vec<u8>,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(block: &'a [u8]) -> Self {
        Keys { entries: Entries::new(block), key: Vec::new() }
    }

    /// The next key, valid until the next call.
    #[inline]
    pub(crate) fn next_key(&mut self) -> Option<&[u8]> {
        let (shared, suffix) = self.entries.next()?;
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        Some(&self.key)
    }
}

/// A search position: the position of `bytes`, or with `past`, the position after
/// every key that starts with `bytes`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) past: bool,
}

impl<'a> Probe<'a> {
    /// The position of `key`.
    pub(crate) fn at(key: &'a [u8]) -> Self {
        Probe { bytes: key, past: false }
    }

    /// The position after every key that starts with `prefix`.
    pub(crate) fn past(prefix: &'a [u8]) -> Self {
        Probe { bytes: prefix, past: true }
    }

    /// How a key compares with the probe (`Less`: the key comes before it).
    #[cfg(test)]
    pub(crate) fn cmp_key(&self, key: &[u8]) -> std::cmp::Ordering {
        if self.past && key.starts_with(self.bytes) {
            return std::cmp::Ordering::Less;
        }
        key.cmp(self.bytes)
    }
}

/// The number of the block's keys that come before `probe`, and whether the next
/// key equals it. One pass over the entries, comparing only the bytes where a key
/// differs from the one before it: while `matched` is the length the probe shares
/// with the previous key (which is below it), a key sharing more than `matched`
/// with that key is below the probe too, one sharing less is above it, and only
/// one sharing exactly `matched` needs its own bytes looked at.
#[inline]
pub(crate) fn position(block: &[u8], probe: Probe<'_>) -> (usize, bool) {
    let mut matched = 0;
    let mut below = 0;
    for (shared, suffix) in Entries::new(block) {
        if shared != matched {
            if shared > matched {
                below += 1;
                continue;
            }
            return (below, false);
        }
        let rest = &probe.bytes[matched..];
        let same = common_prefix(rest, suffix);
        match (rest.get(same), suffix.get(same)) {
            (Some(p), Some(k)) if k > p => return (below, false),
            // The key differs below the probe, or is a proper prefix of it.
            (Some(_), _) => {}
            // The probe's bytes are a prefix of the key, or equal to it.
            (None, _) if probe.past => {}
            (None, rest_of_key) => return (below, rest_of_key.is_none()),
        }
        matched += same;
        below += 1;
    }
    (below, false)
}

/// The shortest separator between two adjacent keys `last < first`: a prefix of
/// `first` that is still above `last`.
pub(crate) fn separator<'a>(last: &[u8], first: &'a [u8]) -> &'a [u8] {
    debug_assert!(last < first);
    &first[..(common_prefix(last, first) + 1).min(first.len())]
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use proptest::prelude::*;

    use super::*;

    /// Keys shaped like real sort keys: shared heads, short tails, the encoding's edge
    /// bytes (0x00, 0xFF), and some long enough to need two-byte lengths.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        let head =
            prop::sample::select(vec![&b""[..], b"\0", b"ab", b"abcdefgh", b"\xff\xff", &[b'x'; 200][..]]);
        let tail = prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xfe, 0xff]), 0..4);
        (head, tail).prop_map(|(head, tail)| [head, &tail].concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(11), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn blocks_give_back_their_keys(mut keys in prop::collection::vec(key(), 0..40)) {
            keys.sort();
            keys.dedup();
            let mut writer = Writer::default();
            keys.iter().for_each(|key| writer.push(key));
            let mut read = Keys::new(&writer.bytes);
            let mut back = Vec::new();
            while let Some(key) = read.next_key() {
                back.push(key.to_vec());
            }
            prop_assert_eq!(back, keys);
        }

        #[test]
        fn position_agrees_with_comparing_whole_keys(
            mut keys in prop::collection::vec(key(), 0..40),
            probe in key(),
            past in any::<bool>(),
        ) {
            keys.sort();
            keys.dedup();
            let mut writer = Writer::default();
            keys.iter().for_each(|key| writer.push(key));
            let probe = Probe { bytes: &probe, past };
            let below = keys.iter().filter(|key| probe.cmp_key(key) == Ordering::Less).count();
            let equal = !past && keys.get(below).is_some_and(|key| key.as_slice() == probe.bytes);
            prop_assert_eq!(position(&writer.bytes, probe), (below, equal));
        }

        #[test]
        fn common_prefix_agrees_with_comparing_bytes(a in key(), b in key()) {
            let expected = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_prefix(&a, &b), expected);
        }
    }

    #[test]
    fn separators_are_short_prefixes_of_first_keys() {
        assert_eq!(separator(b"abc", b"abd"), b"abd");
        assert_eq!(separator(b"ab", b"abc"), b"abc");
        assert_eq!(separator(b"a\xff", b"b\0\0"), b"b");
    }
}
