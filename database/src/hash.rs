//! Stable content hashing over an explicitly defined byte encoding.
//!
//! `std::hash::Hash` is not used anywhere a hash is kept: its output may change between
//! builds, platforms and std versions, so nothing persisted or shared could be trusted.
//! [`StableHash`] instead feeds a canonical encoding (little-endian fixed-width
//! integers, length-prefixed bytes, a tag byte for `Option`) to xxh3.

use std::fmt;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use crate::ident::{Ident, TaskId};

/// A 128-bit content hash.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct ContentHash(u128);

impl ContentHash {
    /// Wraps a raw hash value.
    #[must_use]
    pub const fn from_raw(raw: u128) -> Self {
        ContentHash(raw)
    }

    /// The raw 128-bit value.
    #[must_use]
    pub const fn raw(self) -> u128 {
        self.0
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({:032x})", self.0)
    }
}

/// The content address of a chunk: a hash of its task id, its output hash and its
/// inputs (the chunks it read, the key ranges it read, and its parent task). The same
/// inputs, computation and dependencies give the same id, so storing a chunk twice
/// stores it once; a run that read different ranges or has another parent is a new
/// version even when its records are the same.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash), compare(PartialEq))]
pub struct ChunkId(u128);

impl ChunkId {
    /// Computes the id of a chunk from its task, its output hash and the hash of its
    /// inputs (see [`ChunkId::inputs_hash`]).
    #[must_use]
    pub fn compute(task: TaskId, output: ContentHash, inputs: ContentHash) -> Self {
        let mut hasher = StableHasher::new();
        hasher.write_u64(task.ident().raw());
        hasher.write_u128(output.raw());
        hasher.write_u128(inputs.raw());
        ChunkId(hasher.finish().raw())
    }

    /// The hash of a chunk's inputs: its parent task, its dependencies (sorted, without
    /// duplicates) and the read-set entries it recorded, in order.
    #[must_use]
    pub fn inputs_hash<R: StableHash>(
        parent: Option<TaskId>,
        dependencies: &[ChunkId],
        reads: &[R],
    ) -> ContentHash {
        let mut hasher = StableHasher::new();
        parent.stable_hash(&mut hasher);
        dependencies.stable_hash(&mut hasher);
        reads.stable_hash(&mut hasher);
        hasher.finish()
    }

    /// Wraps a raw id (for example one read back from storage or a log).
    #[must_use]
    pub const fn from_raw(raw: u128) -> Self {
        ChunkId(raw)
    }

    /// The raw 128-bit id.
    #[must_use]
    pub const fn raw(self) -> u128 {
        self.0
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight bytes are plenty to tell chunks apart when reading logs.
        write!(f, "ChunkId({:016x}…)", (self.0 >> 64) as u64)
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A streaming hasher over the canonical encoding. It also counts the bytes it was
/// fed, which is the size of a value's canonical encoding.
pub struct StableHasher {
    inner: Xxh3,
    /// Small writes collect here and reach xxh3 in larger pieces: records are hashed
    /// field by field, and a streaming update per eight-byte field costs more than the
    /// hashing itself. The bytes (and so the hash) are the same either way.
    buffer: [u8; BUFFER],
    buffered: usize,
    written: u64,
}

const BUFFER: usize = 128;

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StableHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StableHasher").field("written", &self.written).finish()
    }
}

macro_rules! write_le {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        #[doc = concat!("Feeds a `", stringify!($ty), "` as little-endian bytes.")]
        #[inline]
        pub fn $name(&mut self, value: $ty) {
            self.write_raw(&value.to_le_bytes());
        }
    )*};
}

impl StableHasher {
    /// A hasher with the fixed default seed.
    #[must_use]
    pub fn new() -> Self {
        StableHasher { inner: Xxh3::new(), buffer: [0; BUFFER], buffered: 0, written: 0 }
    }

    write_le!(
        write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64, write_u128: u128,
        write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64, write_i128: i128,
    );

    /// Feeds a `bool` as one byte, 0 or 1.
    #[inline]
    pub fn write_bool(&mut self, value: bool) {
        self.write_u8(u8::from(value));
    }

    /// Feeds a length (of a sequence or byte string) as a `u64`, so the encoding does
    /// not depend on the platform's pointer width.
    #[inline]
    pub fn write_len(&mut self, len: usize) {
        self.write_u64(len as u64);
    }

    /// Feeds a byte string, prefixed with its length.
    #[inline]
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.write_len(bytes.len());
        self.write_raw(bytes);
    }

    /// Feeds a string as length-prefixed UTF-8.
    #[inline]
    pub fn write_str(&mut self, value: &str) {
        self.write_bytes(value.as_bytes());
    }

    /// Feeds bytes with no length prefix. Only for fixed-width data: variable-length
    /// data must go through [`write_bytes`](Self::write_bytes) so encodings stay
    /// unambiguous.
    #[inline]
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        if self.buffered + bytes.len() > BUFFER {
            self.inner.update(&self.buffer[..self.buffered]);
            self.buffered = 0;
            if bytes.len() > BUFFER {
                self.inner.update(bytes);
                return;
            }
        }
        self.buffer[self.buffered..self.buffered + bytes.len()].copy_from_slice(bytes);
        self.buffered += bytes.len();
    }

    /// Number of bytes fed so far: the length of the canonical encoding.
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The 128-bit hash of everything fed so far.
    #[must_use]
    pub fn finish(&self) -> ContentHash {
        if self.buffered == 0 {
            return ContentHash(self.inner.digest128());
        }
        let mut inner = self.inner.clone();
        inner.update(&self.buffer[..self.buffered]);
        ContentHash(inner.digest128())
    }
}

/// A value with a canonical, platform-independent byte encoding that is hashed.
///
/// Implementations must feed every field that makes two values different, in a fixed
/// order, through [`StableHasher`]'s typed `write_*` methods. `chunk_schema!` derives
/// this for records; hand-written schemas implement it per field.
pub trait StableHash {
    /// Feeds the canonical encoding of `self` to `hasher`.
    fn stable_hash(&self, hasher: &mut StableHasher);

    /// The hash of `self` alone.
    fn stable_hash_value(&self) -> ContentHash {
        let mut hasher = StableHasher::new();
        self.stable_hash(&mut hasher);
        hasher.finish()
    }
}

macro_rules! stable_hash_int {
    ($($ty:ty => $method:ident),* $(,)?) => {$(
        impl StableHash for $ty {
            #[inline]
            fn stable_hash(&self, hasher: &mut StableHasher) {
                hasher.$method(*self);
            }
        }
    )*};
}

stable_hash_int!(
    u8 => write_u8, u16 => write_u16, u32 => write_u32, u64 => write_u64, u128 => write_u128,
    i8 => write_i8, i16 => write_i16, i32 => write_i32, i64 => write_i64, i128 => write_i128,
    bool => write_bool,
);

impl StableHash for char {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u32(u32::from(*self));
    }
}

impl StableHash for Ident {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u64(self.raw());
    }
}

impl StableHash for TaskId {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u64(self.ident().raw());
    }
}

impl StableHash for ChunkId {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u128(self.raw());
    }
}

impl StableHash for str {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_str(self);
    }
}

impl StableHash for String {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_str(self);
    }
}

impl<T: StableHash> StableHash for [T] {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_len(self.len());
        for item in self {
            item.stable_hash(hasher);
        }
    }
}

impl<T: StableHash> StableHash for Vec<T> {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        self.as_slice().stable_hash(hasher);
    }
}

impl<T: StableHash + ?Sized> StableHash for Box<T> {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        (**self).stable_hash(hasher);
    }
}

impl<T: StableHash + ?Sized> StableHash for Arc<T> {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        (**self).stable_hash(hasher);
    }
}

impl<T: StableHash + ?Sized> StableHash for &T {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        (**self).stable_hash(hasher);
    }
}

impl<T: StableHash> StableHash for Option<T> {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        match self {
            None => hasher.write_u8(0),
            Some(value) => {
                hasher.write_u8(1);
                value.stable_hash(hasher);
            }
        }
    }
}

macro_rules! stable_hash_tuple {
    ($(($($name:ident),+)),* $(,)?) => {$(
        impl<$($name: StableHash),+> StableHash for ($($name,)+) {
            #[allow(non_snake_case)]
            fn stable_hash(&self, hasher: &mut StableHasher) {
                let ($($name,)+) = self;
                $($name.stable_hash(hasher);)+
            }
        }
    )*};
}

stable_hash_tuple!((A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F));

// The archived forms of the same types hash to the same bytes as the owned ones: a
// chunk's records are read (and hashed) in their archived form, wherever they came from.

macro_rules! stable_hash_archived_int {
    ($($ty:ty => $method:ident),* $(,)?) => {$(
        impl StableHash for $ty {
            #[inline]
            fn stable_hash(&self, hasher: &mut StableHasher) {
                hasher.$method(self.to_native());
            }
        }
    )*};
}

stable_hash_archived_int!(
    rkyv::rend::u16_le => write_u16, rkyv::rend::u32_le => write_u32, rkyv::rend::u64_le => write_u64,
    rkyv::rend::u128_le => write_u128, rkyv::rend::i16_le => write_i16, rkyv::rend::i32_le => write_i32,
    rkyv::rend::i64_le => write_i64, rkyv::rend::i128_le => write_i128,
);

impl StableHash for rkyv::rend::char_le {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u32(u32::from(self.to_native()));
    }
}

impl StableHash for crate::ident::ArchivedIdent {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u64(self.get().raw());
    }
}

impl StableHash for crate::ident::ArchivedTaskId {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u64(self.get().ident().raw());
    }
}

impl StableHash for ArchivedChunkId {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_u128(self.get().raw());
    }
}

impl StableHash for rkyv::string::ArchivedString {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        hasher.write_str(self.as_str());
    }
}

impl<T: StableHash> StableHash for rkyv::vec::ArchivedVec<T> {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        self.as_slice().stable_hash(hasher);
    }
}

impl<T: StableHash + rkyv::traits::ArchivePointee + ?Sized> StableHash for rkyv::boxed::ArchivedBox<T> {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        self.get().stable_hash(hasher);
    }
}

impl<T: StableHash> StableHash for rkyv::option::ArchivedOption<T> {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        self.as_ref().stable_hash(hasher);
    }
}

macro_rules! stable_hash_archived_tuple {
    ($($tuple:ident ($($name:ident $at:tt),+)),* $(,)?) => {$(
        impl<$($name: StableHash),+> StableHash for rkyv::tuple::$tuple<$($name),+> {
            fn stable_hash(&self, hasher: &mut StableHasher) {
                $(self.$at.stable_hash(hasher);)+
            }
        }
    )*};
}

stable_hash_archived_tuple!(
    ArchivedTuple1(A 0),
    ArchivedTuple2(A 0, B 1),
    ArchivedTuple3(A 0, B 1, C 2),
    ArchivedTuple4(A 0, B 1, C 2, D 3),
    ArchivedTuple5(A 0, B 1, C 2, D 3, E 4),
    ArchivedTuple6(A 0, B 1, C 2, D 3, E 4, F 5),
);

impl ArchivedChunkId {
    /// The chunk id this archived one stands for.
    #[must_use]
    pub fn get(&self) -> ChunkId {
        ChunkId(self.0.to_native())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_pinned() {
        // The canonical encoding is part of the format: a change here breaks every
        // persisted or shared hash, so it must be deliberate.
        let value = (7u32, "ab".to_string(), Some(Ident::new("x")), vec![true]);
        let mut hasher = StableHasher::new();
        value.stable_hash(&mut hasher);
        assert_eq!(hasher.bytes_written(), 4 + (8 + 2) + (1 + 8) + (8 + 1));
        let mut manual = Xxh3::new();
        manual.update(&7u32.to_le_bytes());
        manual.update(&2u64.to_le_bytes());
        manual.update(b"ab");
        manual.update(&[1]);
        manual.update(&Ident::new("x").raw().to_le_bytes());
        manual.update(&1u64.to_le_bytes());
        manual.update(&[1]);
        assert_eq!(hasher.finish().raw(), manual.digest128());
    }

    #[test]
    fn buffering_does_not_change_the_hash() {
        let pieces: Vec<Vec<u8>> = (0..40usize).map(|n| (0..n * 7).map(|b| b as u8).collect()).collect();
        let mut buffered = StableHasher::new();
        let mut direct = Xxh3::new();
        for piece in &pieces {
            buffered.write_raw(piece);
            direct.update(piece);
            assert_eq!(buffered.finish().raw(), direct.digest128());
        }
    }

    #[test]
    fn length_prefixes_keep_encodings_unambiguous() {
        let a = ("ab".to_string(), "c".to_string()).stable_hash_value();
        let b = ("a".to_string(), "bc".to_string()).stable_hash_value();
        assert_ne!(a, b);
        assert_ne!(None::<u8>.stable_hash_value(), Some(0u8).stable_hash_value());
    }

    #[test]
    fn chunk_id_depends_on_every_part() {
        let task = TaskId::new("t");
        let out = ContentHash::from_raw(1);
        let dep = ChunkId::from_raw(9);
        let none = ChunkId::inputs_hash::<u8>(None, &[], &[]);
        let base = ChunkId::compute(task, out, none);
        assert_eq!(base, ChunkId::compute(task, out, ChunkId::inputs_hash::<u8>(None, &[], &[])));
        assert_ne!(base, ChunkId::compute(TaskId::new("u"), out, none));
        assert_ne!(base, ChunkId::compute(task, ContentHash::from_raw(2), none));
        assert_ne!(base, ChunkId::compute(task, out, ChunkId::inputs_hash::<u8>(None, &[dep], &[])));
        assert_ne!(base, ChunkId::compute(task, out, ChunkId::inputs_hash::<u8>(Some(task), &[], &[])));
        assert_ne!(base, ChunkId::compute(task, out, ChunkId::inputs_hash(None, &[], &[1u8])));
    }
}
