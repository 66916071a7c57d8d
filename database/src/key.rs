//! Sort keys: byte strings whose byte order is the logical order of typed tuples.
//!
//! Every component is encoded so that comparing encodings byte by byte compares the
//! values, and so that a tuple prefix is a byte prefix:
//!
//! | type | encoding |
//! |---|---|
//! | `u8`…`u64` | big-endian, fixed width |
//! | `i8`…`i64` | sign bit flipped, then big-endian |
//! | `bool` | one byte, 0 or 1 |
//! | [`Ident`] | its `u64`, big-endian |
//! | `str`/`String` | bytes with `0x00` escaped as `00 FF`, terminated by `00 01` |
//!
//! A plain string sort key (`"file|0001"`) is a key of one string component.
//!
//! **An [`Ident`] component orders by its hash, not by its name**: `Ident::named("b")`
//! may sort before `Ident::named("a")`, so a range over `Ident` components selects
//! hash intervals and a scan returns names in no alphabetical order. Idents are for
//! grouping and exact lookups (all symbols of one file); use a `String` component
//! where names must come out in order or be searched by range or by their start.
//!
//! A range bound or prefix shorter than the key compares the key's leading
//! components only (`le((1u8,))` includes every key whose first component is 1); the
//! start of a string component is written [`KeyPrefix::str_start`] or
//! [`KeyPrefix::str_prefix`], never as a bare string (see [`IntoKeyPrefix`]).

use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::fmt;
use triomphe::ThinArc;

use crate::ident::Ident;

/// An encoded sort key. Cheap to clone: the bytes are shared, behind a thin (one-word)
/// pointer, since every record's key is referenced from its chunk and from the index.
#[derive(Clone)]
pub struct SortKey(ThinArc<(), u8>);

impl PartialEq for SortKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SortKey {}

impl std::hash::Hash for SortKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_keys(self.as_bytes(), other.as_bytes())
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares encoded keys eight bytes at a time. Keys are short and share long prefixes
/// (a file, then a module path), where this beats a `memcmp` call per comparison.
#[inline]
pub(crate) fn compare_keys(a: &[u8], b: &[u8]) -> Ordering {
    let common = a.len().min(b.len());
    let (a_words, b_words) = (a[..common].chunks_exact(8), b[..common].chunks_exact(8));
    let (a_tail, b_tail) = (a_words.remainder(), b_words.remainder());
    for (x, y) in a_words.zip(b_words) {
        let (x, y) = (u64::from_be_bytes(word(x)), u64::from_be_bytes(word(y)));
        if x != y {
            return x.cmp(&y);
        }
    }
    for (x, y) in a_tail.iter().zip(b_tail) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

#[inline]
fn word(bytes: &[u8]) -> [u8; 8] {
    let mut word = [0; 8];
    word.copy_from_slice(bytes);
    word
}

/// Encodes into a per-thread scratch buffer, then copies once into the shared key:
/// one allocation per key instead of a growing `Vec` plus the `Arc` copy.
fn encode_shared(encode: impl FnOnce(&mut Vec<u8>)) -> ThinArc<(), u8> {
    with_scratch(encode, |bytes| ThinArc::from_header_and_slice((), bytes))
}

thread_local! {
    /// Scratch space for encoding keys, reused by every encode on the thread.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(64));
}

impl SortKey {
    /// A key from already-encoded bytes (for example from [`KeyBuilder`] or storage).
    #[must_use]
    pub fn from_encoded(bytes: &[u8]) -> Self {
        SortKey(ThinArc::from_header_and_slice((), bytes))
    }

    /// Encodes a value (a component or a tuple of components) as a key.
    ///
    /// ```
    /// use chunkdb_database::{Ident, SortKey};
    /// let a = SortKey::encode((Ident::new("f"), 2u8, 10u32));
    /// let b = SortKey::encode((Ident::new("f"), 2u8, 9u32));
    /// assert!(b < a);
    /// ```
    pub fn encode(value: impl IntoSortKey) -> Self {
        value.into_sort_key()
    }

    /// The encoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.slice
    }

    /// Number of encoded bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.slice.len()
    }

    /// Whether this is the empty key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Whether `prefix` is a prefix of this key.
    #[must_use]
    pub fn starts_with(&self, prefix: &KeyPrefix) -> bool {
        self.as_bytes().starts_with(prefix.as_bytes())
    }
}

impl Borrow<[u8]> for SortKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl SortKey {
    /// A borrowed view of this key, the form queries return stored keys in.
    #[must_use]
    pub fn as_key_ref(&self) -> SortKeyRef<'_> {
        SortKeyRef(self.as_bytes())
    }
}

/// A borrowed sort key: the encoded key of a stored record, as queries and chunks
/// hand it out, pointing into the chunk that holds it (no copy, no allocation).
/// [`SortKey`] is its owned form.
///
/// ```
/// use chunkdb_database::{Ident, SortKey, SortKeyRef};
/// let owned = SortKey::encode((Ident::new("f"), 2u32));
/// let borrowed: SortKeyRef<'_> = owned.as_key_ref();
/// assert_eq!(borrowed, owned);
/// assert_eq!(borrowed.to_sort_key(), owned);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKeyRef<'a>(&'a [u8]);

impl<'a> SortKeyRef<'a> {
    /// A key from already-encoded bytes.
    #[must_use]
    pub fn from_encoded(bytes: &'a [u8]) -> Self {
        SortKeyRef(bytes)
    }

    /// The encoded bytes.
    #[must_use]
    pub fn as_bytes(self) -> &'a [u8] {
        self.0
    }

    /// Number of encoded bytes.
    #[must_use]
    pub fn len(self) -> usize {
        self.0.len()
    }

    /// Whether this is the empty key.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }

    /// Whether `prefix` is a prefix of this key.
    #[must_use]
    pub fn starts_with(self, prefix: &KeyPrefix) -> bool {
        self.0.starts_with(prefix.as_bytes())
    }

    /// An owned copy.
    #[must_use]
    pub fn to_sort_key(self) -> SortKey {
        SortKey::from_encoded(self.0)
    }
}

impl<'a> From<&'a SortKey> for SortKeyRef<'a> {
    fn from(key: &'a SortKey) -> Self {
        key.as_key_ref()
    }
}

impl PartialEq<SortKey> for SortKeyRef<'_> {
    fn eq(&self, other: &SortKey) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&SortKey> for SortKeyRef<'_> {
    fn eq(&self, other: &&SortKey) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<SortKeyRef<'_>> for SortKey {
    fn eq(&self, other: &SortKeyRef<'_>) -> bool {
        self.as_bytes() == other.0
    }
}

impl fmt::Debug for SortKeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SortKey(")?;
        debug_encoded(self.0, f)?;
        f.write_str(")")
    }
}

impl fmt::Debug for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SortKey(")?;
        debug_encoded(self.as_bytes(), f)?;
        f.write_str(")")
    }
}

/// Renders an encoding readably: a key that is exactly one string component prints
/// as that string, anything else as hex.
fn debug_encoded(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if let Some(Ok(text)) = decode_single_str(bytes).map(String::from_utf8) {
        return write!(f, "{text:?}");
    }
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

fn decode_single_str(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let rest = take_str(bytes, Some(&mut out)).ok()?;
    rest.is_empty().then_some(out)
}

/// A component of a sort key.
pub trait KeyPart {
    /// The kind of component, used to check keys against a partition's layout.
    const KIND: KeyPartKind;

    /// Appends the order-preserving encoding of `self`.
    fn encode_key(&self, out: &mut Vec<u8>);
}

macro_rules! key_part_unsigned {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        impl KeyPart for $ty {
            const KIND: KeyPartKind = KeyPartKind::$kind;
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
    )*};
}

macro_rules! key_part_signed {
    ($($ty:ty => $unsigned:ty, $kind:ident),* $(,)?) => {$(
        impl KeyPart for $ty {
            const KIND: KeyPartKind = KeyPartKind::$kind;
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>) {
                // Flipping the sign bit maps MIN..=MAX onto 0..=unsigned MAX in order.
                let flipped = (*self as $unsigned) ^ (1 << (<$unsigned>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
        }
    )*};
}

key_part_unsigned!(u8 => U8, u16 => U16, u32 => U32, u64 => U64);
key_part_signed!(i8 => u8, I8, i16 => u16, I16, i32 => u32, I32, i64 => u64, I64);

impl KeyPart for bool {
    const KIND: KeyPartKind = KeyPartKind::Bool;
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

/// Encoded as its `u64`: keys order by the hash, not by the name (see the module
/// docs).
impl KeyPart for Ident {
    const KIND: KeyPartKind = KeyPartKind::Ident;
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.raw().to_be_bytes());
    }
}

impl KeyPart for str {
    const KIND: KeyPartKind = KeyPartKind::Str;
    fn encode_key(&self, out: &mut Vec<u8>) {
        escape_str(self, out);
        out.extend_from_slice(&STR_TERMINATOR);
    }
}

impl KeyPart for String {
    const KIND: KeyPartKind = KeyPartKind::Str;
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_str().encode_key(out);
    }
}

/// The archived forms of the scalars encode as the values they stand for, so a
/// record read in place (an archived field) is indexed like the owned one.
macro_rules! key_part_archived {
    ($($ty:ty => $native:ty),* $(,)?) => {$(
        impl KeyPart for $ty {
            const KIND: KeyPartKind = <$native as KeyPart>::KIND;
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>) {
                self.to_native().encode_key(out);
            }
        }
    )*};
}

key_part_archived!(
    rkyv::rend::u16_le => u16, rkyv::rend::u32_le => u32, rkyv::rend::u64_le => u64,
    rkyv::rend::i16_le => i16, rkyv::rend::i32_le => i32, rkyv::rend::i64_le => i64,
);

impl KeyPart for rkyv::string::ArchivedString {
    const KIND: KeyPartKind = KeyPartKind::Str;
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_str().encode_key(out);
    }
}

impl KeyPart for crate::ident::ArchivedIdent {
    const KIND: KeyPartKind = KeyPartKind::Ident;
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.get().encode_key(out);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for &T {
    const KIND: KeyPartKind = T::KIND;
    fn encode_key(&self, out: &mut Vec<u8>) {
        (**self).encode_key(out);
    }
}

const STR_TERMINATOR: [u8; 2] = [0x00, 0x01];
const ESCAPED_NUL: [u8; 2] = [0x00, 0xFF];

/// Appends the escaped bytes of `text` without its terminator: the encoding of any
/// string that starts with `text` begins with these bytes.
fn escape_str(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    if !bytes.contains(&0) {
        out.extend_from_slice(bytes);
        return;
    }
    for &byte in bytes {
        if byte == 0 {
            out.extend_from_slice(&ESCAPED_NUL);
        } else {
            out.push(byte);
        }
    }
}

/// Consumes one encoded string component; returns the rest. With `partial_ok`
/// semantics handled by the caller: `Err(true)` means the input ended inside the
/// string, `Err(false)` that it is malformed.
fn take_str<'a>(bytes: &'a [u8], mut out: Option<&mut Vec<u8>>) -> Result<&'a [u8], bool> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0 {
            if let Some(out) = out.as_deref_mut() {
                out.push(bytes[i]);
            }
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(0x01) => return Ok(&bytes[i + 2..]),
            Some(0xFF) => {
                if let Some(out) = out.as_deref_mut() {
                    out.push(0);
                }
                i += 2;
            }
            Some(_) => return Err(false),
            None => return Err(true),
        }
    }
    Err(true)
}

/// The kinds of sort-key component, as declared in a partition's key layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyPartKind {
    /// `u8`, 1 byte.
    U8,
    /// `u16`, 2 bytes.
    U16,
    /// `u32`, 4 bytes.
    U32,
    /// `u64`, 8 bytes.
    U64,
    /// `i8`, 1 byte.
    I8,
    /// `i16`, 2 bytes.
    I16,
    /// `i32`, 4 bytes.
    I32,
    /// `i64`, 8 bytes.
    I64,
    /// `bool`, 1 byte.
    Bool,
    /// [`Ident`], 8 bytes.
    Ident,
    /// A string, escaped and terminated.
    Str,
}

impl KeyPartKind {
    /// The Rust type name of this kind, for messages and docs.
    #[must_use]
    pub const fn type_name(self) -> &'static str {
        match self {
            KeyPartKind::U8 => "u8",
            KeyPartKind::U16 => "u16",
            KeyPartKind::U32 => "u32",
            KeyPartKind::U64 => "u64",
            KeyPartKind::I8 => "i8",
            KeyPartKind::I16 => "i16",
            KeyPartKind::I32 => "i32",
            KeyPartKind::I64 => "i64",
            KeyPartKind::Bool => "bool",
            KeyPartKind::Ident => "Ident",
            KeyPartKind::Str => "String",
        }
    }

    const fn fixed_width(self) -> Option<usize> {
        match self {
            KeyPartKind::U8 | KeyPartKind::I8 | KeyPartKind::Bool => Some(1),
            KeyPartKind::U16 | KeyPartKind::I16 => Some(2),
            KeyPartKind::U32 | KeyPartKind::I32 => Some(4),
            KeyPartKind::U64 | KeyPartKind::I64 | KeyPartKind::Ident => Some(8),
            KeyPartKind::Str => None,
        }
    }
}

/// The component kinds a typed key or prefix was built from, so it can be checked
/// against a partition's layout kind by kind (`u64` is not an `Ident`, `i32` is not a
/// `u32`), not just by width. Keys of up to eight components carry a shape; raw
/// encoded bytes do not, and are checked by their encoding alone.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyShape {
    kinds: [KeyPartKind; MAX_SHAPE],
    len: u8,
    /// Whether the last component is the start of a string rather than a whole one.
    partial_str: bool,
}

const MAX_SHAPE: usize = 8;

impl KeyShape {
    /// The empty shape.
    #[must_use]
    pub const fn empty() -> Self {
        KeyShape { kinds: [KeyPartKind::U8; MAX_SHAPE], len: 0, partial_str: false }
    }

    /// This shape with one more whole component; `None` past eight components.
    #[must_use]
    pub const fn push(mut self, kind: KeyPartKind) -> Option<Self> {
        if self.partial_str || self.len as usize == MAX_SHAPE {
            return None;
        }
        self.kinds[self.len as usize] = kind;
        self.len += 1;
        Some(self)
    }

    /// This shape followed by the start of a string component.
    #[must_use]
    pub const fn push_str_start(self) -> Option<Self> {
        match self.push(KeyPartKind::Str) {
            Some(mut shape) => {
                shape.partial_str = true;
                Some(shape)
            }
            None => None,
        }
    }

    /// The component kinds, in order.
    #[must_use]
    pub fn kinds(&self) -> &[KeyPartKind] {
        &self.kinds[..usize::from(self.len)]
    }

    /// Checks the shape against a layout: a whole key must match it exactly, a prefix
    /// must match its leading components.
    pub(crate) fn check(&self, layout: &[KeyField], prefix: bool) -> Result<(), String> {
        let kinds = self.kinds();
        if kinds.len() > layout.len() {
            return Err(format!("it has {} components, the layout {}", kinds.len(), layout.len()));
        }
        for (at, (kind, field)) in kinds.iter().zip(layout).enumerate() {
            if *kind != field.kind {
                return Err(format!(
                    "component {at} (`{}`) must be {}, not {}",
                    field.name,
                    field.kind.type_name(),
                    kind.type_name()
                ));
            }
        }
        if !prefix && kinds.len() < layout.len() {
            let missing = &layout[kinds.len()];
            return Err(format!(
                "component {} (`{}: {}`) is missing",
                kinds.len(),
                missing.name,
                missing.kind.type_name()
            ));
        }
        Ok(())
    }
}

/// One named component of a partition's sort-key layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyField {
    /// The component's name, as declared in the schema.
    pub name: &'static str,
    /// Its type.
    pub kind: KeyPartKind,
}

/// Describes a layout for messages: `(file: Ident, path: String)`.
#[must_use]
pub fn describe_layout(layout: &[KeyField]) -> String {
    let fields: Vec<String> =
        layout.iter().map(|field| format!("{}: {}", field.name, field.kind.type_name())).collect();
    format!("({})", fields.join(", "))
}

/// One decoded sort-key component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValue {
    /// An unsigned integer component.
    Unsigned(u64),
    /// A signed integer component.
    Signed(i64),
    /// A `bool` component.
    Bool(bool),
    /// An [`Ident`] component.
    Ident(Ident),
    /// A string component; `partial` when a prefix ends inside it.
    Str {
        /// The text (lossily decoded if not UTF-8).
        text: String,
        /// Whether the string continues past the encoded bytes.
        partial: bool,
    },
}

impl KeyValue {
    /// The value of an unsigned component.
    #[must_use]
    pub fn into_u64(self) -> Option<u64> {
        match self {
            KeyValue::Unsigned(value) => Some(value),
            _ => None,
        }
    }

    /// The value of a signed component.
    #[must_use]
    pub fn into_i64(self) -> Option<i64> {
        match self {
            KeyValue::Signed(value) => Some(value),
            _ => None,
        }
    }

    /// The value of a `bool` component.
    #[must_use]
    pub fn into_bool(self) -> Option<bool> {
        match self {
            KeyValue::Bool(value) => Some(value),
            _ => None,
        }
    }

    /// The value of an [`Ident`] component.
    #[must_use]
    pub fn into_ident(self) -> Option<Ident> {
        match self {
            KeyValue::Ident(value) => Some(value),
            _ => None,
        }
    }

    /// The value of a whole (not partial) string component.
    #[must_use]
    pub fn into_string(self) -> Option<String> {
        match self {
            KeyValue::Str { text, partial: false } => Some(text),
            _ => None,
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Unsigned(value) => write!(f, "{value}"),
            KeyValue::Signed(value) => write!(f, "{value}"),
            KeyValue::Bool(value) => write!(f, "{value}"),
            KeyValue::Ident(ident) => write!(f, "{ident}"),
            KeyValue::Str { text, partial: false } => write!(f, "{text:?}"),
            KeyValue::Str { text, partial: true } => write!(f, "{text:?}…"),
        }
    }
}

/// Decodes an encoded key or key prefix into its components, following `layout`
/// (a prefix decodes to fewer components). Identifiers show their names where the
/// process knows them. A prefix ending inside a string decodes to a `partial` string
/// of the text before the end; when it ends between the two bytes of an escape (a
/// lone `0x00`), that byte is not part of the text.
///
/// ```
/// use chunkdb_database::{decode_key, Ident, KeyField, KeyPartKind, SortKey};
/// let layout = [
///     KeyField { name: "file", kind: KeyPartKind::Ident },
///     KeyField { name: "line", kind: KeyPartKind::U32 },
/// ];
/// let key = SortKey::encode((Ident::named("a.rs"), 7u32));
/// let parts: Vec<String> = decode_key(key.as_bytes(), &layout)?.iter().map(ToString::to_string).collect();
/// assert_eq!(parts, ["a.rs", "7"]);
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// A message saying where the bytes stop fitting the layout.
pub fn decode_key(bytes: &[u8], layout: &[KeyField]) -> Result<Vec<KeyValue>, String> {
    check_prefix(bytes, layout)?;
    let mut rest = bytes;
    let mut values = Vec::with_capacity(layout.len());
    for field in layout {
        if rest.is_empty() {
            break;
        }
        let value = match field.kind.fixed_width() {
            Some(width) => {
                let mut word = [0u8; 8];
                word[8 - width..].copy_from_slice(&rest[..width]);
                let raw = u64::from_be_bytes(word);
                rest = &rest[width..];
                // Undo the sign flip: the top bit of the component's width.
                let signed = |bits: u32| ((raw ^ (1 << (bits - 1))) << (64 - bits)) as i64 >> (64 - bits);
                match field.kind {
                    KeyPartKind::Bool => KeyValue::Bool(raw == 1),
                    KeyPartKind::Ident => KeyValue::Ident(Ident::from_raw(raw)),
                    KeyPartKind::I8 => KeyValue::Signed(signed(8)),
                    KeyPartKind::I16 => KeyValue::Signed(signed(16)),
                    KeyPartKind::I32 => KeyValue::Signed(signed(32)),
                    KeyPartKind::I64 => KeyValue::Signed(signed(64)),
                    _ => KeyValue::Unsigned(raw),
                }
            }
            None => {
                let mut text = Vec::new();
                let (partial, after) = match take_str(rest, Some(&mut text)) {
                    Ok(after) => (false, after),
                    Err(_) => (true, &rest[rest.len()..]),
                };
                rest = after;
                KeyValue::Str { text: String::from_utf8_lossy(&text).into_owned(), partial }
            }
        };
        values.push(value);
    }
    Ok(values)
}

/// Checks that `bytes` is a complete key of `layout`. The error says which component
/// is wrong.
pub(crate) fn check_key(bytes: &[u8], layout: &[KeyField]) -> Result<(), String> {
    check_against(bytes, layout, false)
}

/// Checks that `bytes` is a prefix of some key of `layout`: whole components,
/// possibly ending inside a string component.
pub(crate) fn check_prefix(bytes: &[u8], layout: &[KeyField]) -> Result<(), String> {
    check_against(bytes, layout, true)
}

fn check_against(mut bytes: &[u8], layout: &[KeyField], prefix: bool) -> Result<(), String> {
    for field in layout {
        if bytes.is_empty() && prefix {
            return Ok(());
        }
        let described = || format!("component `{}: {}`", field.name, field.kind.type_name());
        match field.kind.fixed_width() {
            Some(width) if bytes.len() < width => {
                return Err(format!(
                    "the key ends inside {} ({} of {width} bytes)",
                    described(),
                    bytes.len()
                ));
            }
            Some(width) => {
                if field.kind == KeyPartKind::Bool && bytes[0] > 1 {
                    return Err(format!("{} holds {}, not 0 or 1", described(), bytes[0]));
                }
                bytes = &bytes[width..];
            }
            None => match take_str(bytes, None) {
                Ok(rest) => bytes = rest,
                Err(true) if prefix => return Ok(()),
                Err(true) => return Err(format!("the key ends inside {}", described())),
                Err(false) => return Err(format!("{} is not a valid string encoding", described())),
            },
        }
    }
    if bytes.is_empty() {
        Ok(())
    } else {
        Err(format!("{} bytes follow the last component of the layout", bytes.len()))
    }
}

/// Builds a key or a prefix component by component.
///
/// ```
/// use chunkdb_database::{Ident, KeyBuilder, SortKey};
/// let file = Ident::new("src/lib.rs");
/// let key = KeyBuilder::new().part(file).part("parse_item").key();
/// assert_eq!(key, SortKey::encode((file, "parse_item")));
/// let prefix = KeyBuilder::new().part(file).str_prefix("parse_");
/// assert!(key.starts_with(&prefix));
/// ```
#[derive(Clone, Debug)]
pub struct KeyBuilder {
    bytes: Vec<u8>,
    shape: Option<KeyShape>,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        KeyBuilder { bytes: Vec::new(), shape: Some(KeyShape::empty()) }
    }
}

impl KeyBuilder {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        KeyBuilder::default()
    }

    /// Appends a whole component.
    #[must_use]
    pub fn part<P: KeyPart>(mut self, part: P) -> Self {
        part.encode_key(&mut self.bytes);
        self.shape = self.shape.and_then(|shape| shape.push(P::KIND));
        self
    }

    /// The complete key.
    #[must_use]
    pub fn key(self) -> SortKey {
        SortKey::from_encoded(&self.bytes)
    }

    /// The components so far, as a prefix.
    #[must_use]
    pub fn prefix(self) -> KeyPrefix {
        KeyPrefix { bytes: self.bytes.into(), shape: self.shape }
    }

    /// The components so far followed by the start of a string component: matches
    /// every key whose next component starts with `start`.
    #[must_use]
    pub fn str_prefix(mut self, start: &str) -> KeyPrefix {
        escape_str(start, &mut self.bytes);
        KeyPrefix { bytes: self.bytes.into(), shape: self.shape.and_then(KeyShape::push_str_start) }
    }

    /// The component kinds so far, when known.
    #[must_use]
    pub fn shape(&self) -> Option<KeyShape> {
        self.shape
    }
}

/// Converts a value into a complete sort key: a [`SortKey`], a single component
/// (`u32`, `Ident`, `&str`, …) or a tuple of components.
pub trait IntoSortKey {
    /// Encodes `self`.
    fn into_sort_key(self) -> SortKey;

    /// The component kinds `self` is made of, when known (see [`KeyShape`]).
    fn key_shape(&self) -> Option<KeyShape> {
        None
    }

    /// Calls `f` with the encoded key, without allocating one where the encoding can
    /// go to a scratch buffer (lookups use this).
    fn with_encoded<R>(self, f: impl FnOnce(&[u8]) -> R) -> R
    where
        Self: Sized,
    {
        f(self.into_sort_key().as_bytes())
    }
}

/// Encodes into the per-thread scratch buffer and calls `f` with the bytes.
fn with_scratch<R>(encode: impl FnOnce(&mut Vec<u8>), f: impl FnOnce(&[u8]) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            encode(&mut buffer);
            f(&buffer)
        }
        // Re-entered (f encodes another key): use a buffer of its own.
        Err(_) => {
            let mut buffer = Vec::new();
            encode(&mut buffer);
            f(&buffer)
        }
    })
}

impl IntoSortKey for SortKey {
    fn into_sort_key(self) -> SortKey {
        self
    }
}

impl IntoSortKey for &SortKey {
    fn into_sort_key(self) -> SortKey {
        self.clone()
    }

    fn with_encoded<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.as_bytes())
    }
}

impl IntoSortKey for SortKeyRef<'_> {
    fn into_sort_key(self) -> SortKey {
        self.to_sort_key()
    }

    fn with_encoded<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.0)
    }
}

impl IntoSortKey for KeyBuilder {
    fn into_sort_key(self) -> SortKey {
        SortKey::from_encoded(&self.bytes)
    }

    fn key_shape(&self) -> Option<KeyShape> {
        self.shape
    }
}

impl<T: KeyPart> IntoSortKey for T {
    fn into_sort_key(self) -> SortKey {
        SortKey(encode_shared(|bytes| self.encode_key(bytes)))
    }

    fn key_shape(&self) -> Option<KeyShape> {
        KeyShape::empty().push(T::KIND)
    }

    fn with_encoded<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        with_scratch(|bytes| self.encode_key(bytes), f)
    }
}

/// A byte prefix of sort keys, used by `begins_with` and the range conditions.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix {
    bytes: Box<[u8]>,
    shape: Option<KeyShape>,
}

impl KeyPrefix {
    /// The prefix of whole components given by `parts`.
    pub fn new(parts: impl IntoKeyPrefix) -> Self {
        parts.into_key_prefix()
    }

    /// The empty prefix, which every key starts with.
    #[must_use]
    pub fn empty() -> Self {
        KeyPrefix { bytes: Box::default(), shape: Some(KeyShape::empty()) }
    }

    /// The start of a first string component: every key whose string starts with
    /// `start` (`str_start("file|")` for plain string keys `"file|..."`). Compare
    /// `KeyPrefix::new((start,))`, the whole string only.
    #[must_use]
    pub fn str_start(start: &str) -> Self {
        KeyPrefix::empty().str_prefix(start)
    }

    /// This prefix followed by the start of a string component.
    #[must_use]
    pub fn str_prefix(self, start: &str) -> Self {
        let mut bytes = self.bytes.into_vec();
        escape_str(start, &mut bytes);
        KeyPrefix { bytes: bytes.into(), shape: self.shape.and_then(KeyShape::push_str_start) }
    }

    /// A prefix from already-encoded bytes (checked by its encoding alone).
    #[must_use]
    pub fn from_encoded(bytes: &[u8]) -> Self {
        KeyPrefix { bytes: bytes.into(), shape: None }
    }

    /// The component kinds the prefix was built from, when known.
    #[must_use]
    pub fn shape(&self) -> Option<KeyShape> {
        self.shape
    }

    /// The encoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPrefix(")?;
        debug_encoded(&self.bytes, f)?;
        f.write_str(")")
    }
}

/// Converts a value into a [`KeyPrefix`].
///
/// A tuple or a single non-string component gives whole components: `("c",)` is the
/// whole string `"c"`, so `le(("c",))` excludes `"cat"`. The start of a string
/// component has its own spelling, [`KeyPrefix::str_start`] (or
/// [`KeyPrefix::str_prefix`] after whole components): `le(KeyPrefix::str_start("c"))`
/// includes `"cat"`. A bare string is neither, and does not compile, because the two
/// readings select different records.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a key prefix",
    label = "a bare string could mean a whole component or the start of one",
    note = "write `(\"c\",)` for the whole string component, or `KeyPrefix::str_start(\"c\")` for every string that starts with it"
)]
pub trait IntoKeyPrefix {
    /// Encodes `self` as a prefix.
    fn into_key_prefix(self) -> KeyPrefix;
}

impl IntoKeyPrefix for KeyPrefix {
    fn into_key_prefix(self) -> KeyPrefix {
        self
    }
}

impl IntoKeyPrefix for &KeyPrefix {
    fn into_key_prefix(self) -> KeyPrefix {
        self.clone()
    }
}

impl IntoKeyPrefix for SortKey {
    fn into_key_prefix(self) -> KeyPrefix {
        KeyPrefix::from_encoded(self.as_bytes())
    }
}

impl IntoKeyPrefix for &SortKey {
    fn into_key_prefix(self) -> KeyPrefix {
        KeyPrefix::from_encoded(self.as_bytes())
    }
}

impl IntoKeyPrefix for SortKeyRef<'_> {
    fn into_key_prefix(self) -> KeyPrefix {
        KeyPrefix::from_encoded(self.0)
    }
}

macro_rules! scalar_prefix {
    ($($ty:ty),*) => {$(
        impl IntoKeyPrefix for $ty {
            fn into_key_prefix(self) -> KeyPrefix {
                let mut bytes = Vec::new();
                self.encode_key(&mut bytes);
                KeyPrefix { bytes: bytes.into(), shape: KeyShape::empty().push(<$ty>::KIND) }
            }
        }
    )*};
}

scalar_prefix!(u8, u16, u32, u64, i8, i16, i32, i64, bool, Ident);

/// The shape of a tuple of components; a `const fn` so each tuple type's shape is
/// computed once, at compile time.
const fn tuple_shape(kinds: &[KeyPartKind]) -> Option<KeyShape> {
    let mut shape = KeyShape::empty();
    let mut at = 0;
    while at < kinds.len() {
        shape = match shape.push(kinds[at]) {
            Some(next) => next,
            None => return None,
        };
        at += 1;
    }
    Some(shape)
}

/// A tuple type's shape, as a constant.
trait TupleShape {
    const SHAPE: Option<KeyShape>;
}

macro_rules! tuple_keys {
    ($(($($name:ident),+)),* $(,)?) => {$(
        impl<$($name: KeyPart),+> TupleShape for ($($name,)+) {
            const SHAPE: Option<KeyShape> = tuple_shape(&[$($name::KIND),+]);
        }

        impl<$($name: KeyPart),+> IntoSortKey for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_sort_key(self) -> SortKey {
                let ($($name,)+) = self;
                SortKey(encode_shared(|bytes| { $($name.encode_key(bytes);)+ }))
            }

            fn key_shape(&self) -> Option<KeyShape> {
                <Self as TupleShape>::SHAPE
            }

            #[allow(non_snake_case)]
            fn with_encoded<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
                let ($($name,)+) = self;
                with_scratch(|bytes| { $($name.encode_key(bytes);)+ }, f)
            }
        }

        impl<$($name: KeyPart),+> IntoKeyPrefix for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_key_prefix(self) -> KeyPrefix {
                let ($($name,)+) = self;
                let mut bytes = Vec::with_capacity(24);
                $($name.encode_key(&mut bytes);)+
                KeyPrefix { bytes: bytes.into(), shape: <Self as TupleShape>::SHAPE }
            }
        }
    )*};
}

tuple_keys!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
);

/// The smallest byte string greater than every string that starts with `prefix`, or
/// `None` when no such string exists (the prefix is empty or all `0xFF`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Box<[u8]>> {
    let mut next = Vec::with_capacity(prefix.len());
    push_prefix_successor(prefix, &mut next).then(|| next.into())
}

/// Appends [`prefix_successor`]`(prefix)` to `out`; false (and nothing appended) when
/// there is none.
fn push_prefix_successor(prefix: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(last) = prefix.iter().rposition(|&byte| byte != 0xFF) else { return false };
    out.extend_from_slice(&prefix[..last]);
    out.push(prefix[last] + 1);
    true
}

/// Whether `candidate` is [`prefix_successor`]`(prefix)`, without building it.
fn is_prefix_successor(prefix: &[u8], candidate: Option<&[u8]>) -> bool {
    match (prefix.iter().rposition(|&byte| byte != 0xFF), candidate) {
        (Some(last), Some(next)) => {
            next.len() == last + 1 && next[..last] == prefix[..last] && next[last] == prefix[last] + 1
        }
        (None, None) => true,
        _ => false,
    }
}

/// Where a scan starts, borrowed from a query's condition.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start<'a> {
    /// At the first key `>= bytes` (the empty slice: the first key).
    At(&'a [u8]),
    /// After every key that starts with `prefix`.
    PastPrefix(&'a [u8]),
}

/// Where a scan ends, borrowed from a query's condition.
#[derive(Clone, Copy, Debug)]
pub(crate) enum End<'a> {
    /// After the last key.
    Unbounded,
    /// Before the first key `>= bytes`.
    Before(&'a [u8]),
    /// After `key` itself.
    Through(&'a [u8]),
    /// After every key that starts with `prefix`.
    ThroughPrefix(&'a [u8]),
}

/// A key range in borrowed, symbolic form: what a query scans, without computing (or
/// allocating) prefix successors. [`KeyRange`] is its owned form.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RangeRef<'a> {
    pub(crate) start: Start<'a>,
    pub(crate) end: End<'a>,
}

impl RangeRef<'_> {
    /// Whether `key`, which is at or after the start, is still inside the range.
    #[inline]
    pub(crate) fn admits_end(&self, key: &[u8]) -> bool {
        match self.end {
            End::Unbounded => true,
            End::Before(bound) => compare_keys(key, bound) == Ordering::Less,
            End::Through(last) => compare_keys(key, last) != Ordering::Greater,
            End::ThroughPrefix(prefix) => {
                key.starts_with(prefix) || compare_keys(key, prefix) == Ordering::Less
            }
        }
    }

    /// The owned, normalised `start..end` form.
    pub(crate) fn to_owned(self) -> KeyRange {
        let successor;
        let start = match self.start {
            Start::At(bytes) => bytes,
            Start::PastPrefix(prefix) => match prefix_successor(prefix) {
                Some(next) => {
                    successor = next;
                    &successor[..]
                }
                None => return KeyRange::nothing(),
            },
        };
        let end_room = match self.end {
            End::Unbounded => 0,
            End::Before(bytes) | End::ThroughPrefix(bytes) => bytes.len(),
            End::Through(last) => last.len() + 1,
        };
        let mut bytes = Vec::with_capacity(start.len() + end_room);
        bytes.extend_from_slice(start);
        let bounded = match self.end {
            End::Unbounded => false,
            End::Before(bound) => {
                bytes.extend_from_slice(bound);
                true
            }
            End::Through(last) => {
                // `last ++ [0]` is the byte string right after `last`.
                bytes.extend_from_slice(last);
                bytes.push(0);
                true
            }
            End::ThroughPrefix(prefix) => push_prefix_successor(prefix, &mut bytes),
        };
        KeyRange { bytes: bytes.into(), start_len: start.len(), bounded }
    }
}

/// A half-open range of encoded keys, `start..end`, that a query covered. Every query
/// condition normalises to one: an exact key is the range holding that key alone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// The start's bytes, then the end's: one allocation for both (every tracked read
    /// keeps a range, and a restart restores them all).
    bytes: Box<[u8]>,
    /// Where the start ends in `bytes`.
    start_len: usize,
    /// Whether the end follows (`false`: the range is unbounded).
    bounded: bool,
}

impl KeyRange {
    /// A range from its parts (see [`start`](Self::start) and [`end`](Self::end)), as
    /// persistence reads it back.
    pub(crate) fn from_parts(start: &[u8], end: Option<&[u8]>) -> Self {
        let bytes = [start, end.unwrap_or_default()].concat().into();
        KeyRange { bytes, start_len: start.len(), bounded: end.is_some() }
    }

    /// Every key.
    #[must_use]
    pub fn all() -> Self {
        KeyRange::from_parts(&[], None)
    }

    /// Exactly `key`.
    #[must_use]
    pub fn exact(key: &[u8]) -> Self {
        RangeRef { start: Start::At(key), end: End::Through(key) }.to_owned()
    }

    /// Keys starting with `prefix`.
    #[must_use]
    pub fn prefix(prefix: &[u8]) -> Self {
        RangeRef { start: Start::At(prefix), end: End::ThroughPrefix(prefix) }.to_owned()
    }

    /// Keys whose leading components are `>= bound`.
    #[must_use]
    pub fn at_least(bound: &[u8]) -> Self {
        RangeRef { start: Start::At(bound), end: End::Unbounded }.to_owned()
    }

    /// Keys whose leading components are `> bound`: past every extension of `bound`.
    #[must_use]
    pub fn greater_than(bound: &[u8]) -> Self {
        RangeRef { start: Start::PastPrefix(bound), end: End::Unbounded }.to_owned()
    }

    /// Keys whose leading components are `< bound`.
    #[must_use]
    pub fn less_than(bound: &[u8]) -> Self {
        RangeRef { start: Start::At(&[]), end: End::Before(bound) }.to_owned()
    }

    /// Keys whose leading components are `<= bound`: up to every extension of `bound`.
    #[must_use]
    pub fn at_most(bound: &[u8]) -> Self {
        RangeRef { start: Start::At(&[]), end: End::ThroughPrefix(bound) }.to_owned()
    }

    /// Keys whose leading components lie in `low..=high`.
    #[must_use]
    pub fn between(low: &[u8], high: &[u8]) -> Self {
        RangeRef { start: Start::At(low), end: End::ThroughPrefix(high) }.to_owned()
    }

    /// The empty range.
    #[must_use]
    pub fn nothing() -> Self {
        KeyRange::from_parts(&[], Some(&[]))
    }

    /// Inclusive start.
    #[must_use]
    pub fn start(&self) -> &[u8] {
        &self.bytes[..self.start_len]
    }

    /// Exclusive end; `None` means unbounded.
    #[must_use]
    pub fn end(&self) -> Option<&[u8]> {
        self.bounded.then(|| &self.bytes[self.start_len..])
    }

    /// The prefix this range is, if it is exactly "every key starting with" some bytes.
    #[must_use]
    pub fn as_prefix(&self) -> Option<&[u8]> {
        let start = self.start();
        (is_prefix_successor(start, self.end()) && !start.is_empty()).then_some(start)
    }

    /// Whether the range holds exactly one key (`start` itself): an exact lookup.
    #[must_use]
    pub fn is_exact(&self) -> bool {
        let start = self.start();
        self.end().is_some_and(|end| {
            end.len() == start.len() + 1 && end.starts_with(start) && end.last() == Some(&0)
        })
    }

    /// Whether the range can hold no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.end().is_some_and(|end| end <= self.start())
    }

    /// Whether `key` lies in the range.
    #[must_use]
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start() && self.end().is_none_or(|end| key < end)
    }
}

impl fmt::Debug for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyRange(")?;
        debug_encoded(self.start(), f)?;
        f.write_str(" .. ")?;
        match self.end() {
            Some(end) => debug_encoded(end, f)?,
            None => f.write_str("∞")?,
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn enc(part: impl KeyPart) -> Vec<u8> {
        let mut out = Vec::new();
        part.encode_key(&mut out);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]

        #[test]
        fn integer_order_is_byte_order(a: i64, b: i64, c: u32, d: u32, e: i8, f: i8) {
            prop_assert_eq!(a.cmp(&b), enc(a).cmp(&enc(b)));
            prop_assert_eq!(c.cmp(&d), enc(c).cmp(&enc(d)));
            prop_assert_eq!(e.cmp(&f), enc(e).cmp(&enc(f)));
        }

        #[test]
        fn string_tuple_order_is_byte_order(a in "[a\\x00b]{0,4}", b in "[a\\x00b]{0,4}", x: u8, y: u8) {
            let ka = SortKey::encode((a.as_str(), x));
            let kb = SortKey::encode((b.as_str(), y));
            prop_assert_eq!((a.as_str(), x).cmp(&(b.as_str(), y)), ka.cmp(&kb));
        }

        #[test]
        fn string_prefix_is_byte_prefix(a in "[a\\x00b]{0,5}", cut in 0usize..6) {
            let cut = cut.min(a.len());
            let key = SortKey::encode((7u16, a.as_str()));
            let prefix = KeyBuilder::new().part(7u16).str_prefix(&a[..cut]);
            prop_assert!(key.starts_with(&prefix));
            let layout = [KeyField { name: "n", kind: KeyPartKind::U16 }, KeyField { name: "s", kind: KeyPartKind::Str }];
            prop_assert!(check_key(key.as_bytes(), &layout).is_ok());
            prop_assert!(check_prefix(prefix.as_bytes(), &layout).is_ok());
        }

        #[test]
        fn prefix_range_holds_exactly_the_extensions(prefix in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xFE), Just(0xFF)], 0..4),
                                                     key in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xFE), Just(0xFF)], 0..5)) {
            prop_assert_eq!(KeyRange::prefix(&prefix).contains(&key), key.starts_with(&prefix));
            prop_assert_eq!(KeyRange::exact(&prefix).contains(&key), key == prefix);
        }

        #[test]
        fn a_range_gives_back_its_parts(start in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xFF)], 0..4),
                                        end in proptest::option::of(proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xFF)], 0..4))) {
            let range = KeyRange::from_parts(&start, end.as_deref());
            prop_assert_eq!(range.start(), &start[..]);
            prop_assert_eq!(range.end(), end.as_deref());
            prop_assert_eq!(is_prefix_successor(&start, end.as_deref()), prefix_successor(&start).as_deref() == end.as_deref());
            let prefix = KeyRange::prefix(&start);
            prop_assert_eq!(prefix.as_prefix(), (!start.is_empty()).then_some(&start[..]));
            let successor = prefix_successor(&start);
            prop_assert_eq!(prefix.end(), successor.as_deref());
            prop_assert!(KeyRange::exact(&start).is_exact());
        }
    }

    #[test]
    fn tuple_prefix_is_byte_prefix() {
        let file = Ident::new("a.rs");
        let key = SortKey::encode((file, 2u8, 17u32));
        assert!(key.starts_with(&KeyPrefix::new((file,))));
        assert!(key.starts_with(&KeyPrefix::new((file, 2u8))));
        assert!(!key.starts_with(&KeyPrefix::new((file, 3u8))));
    }

    #[test]
    fn plain_string_keys_are_one_component() {
        let key = SortKey::encode("file|0001");
        assert!(key.starts_with(&KeyPrefix::str_start("file|")));
        assert_eq!(format!("{key:?}"), "SortKey(\"file|0001\")");
        let layout = [KeyField { name: "key", kind: KeyPartKind::Str }];
        assert!(check_key(key.as_bytes(), &layout).is_ok());
    }

    #[test]
    fn layout_errors_name_the_component() {
        let layout = [
            KeyField { name: "file", kind: KeyPartKind::Ident },
            KeyField { name: "line", kind: KeyPartKind::U32 },
        ];
        let short = SortKey::encode((Ident::new("f"), 3u16));
        let error = check_key(short.as_bytes(), &layout).unwrap_err();
        assert!(error.contains("`line: u32`"), "{error}");
        let long = SortKey::encode((Ident::new("f"), 3u32, 1u8));
        assert!(check_key(long.as_bytes(), &layout).unwrap_err().contains("follow the last"));
        assert!(check_prefix(KeyPrefix::new((Ident::new("f"),)).as_bytes(), &layout).is_ok());
        assert!(check_key(SortKey::encode("x").as_bytes(), &layout).is_err());
        assert_eq!(describe_layout(&layout), "(file: Ident, line: u32)");
    }

    #[test]
    fn keys_decode_back_to_their_components() {
        let layout = [
            KeyField { name: "n", kind: KeyPartKind::I16 },
            KeyField { name: "b", kind: KeyPartKind::Bool },
            KeyField { name: "s", kind: KeyPartKind::Str },
            KeyField { name: "u", kind: KeyPartKind::U8 },
        ];
        let key = SortKey::encode((-300i16, true, "a\0b", 9u8));
        let decoded = decode_key(key.as_bytes(), &layout).expect("valid key");
        assert_eq!(
            decoded,
            [
                KeyValue::Signed(-300),
                KeyValue::Bool(true),
                KeyValue::Str { text: "a\0b".into(), partial: false },
                KeyValue::Unsigned(9)
            ]
        );
        let prefix = KeyPrefix::new((5i16, false)).str_prefix("ab");
        let decoded = decode_key(prefix.as_bytes(), &layout).expect("valid prefix");
        assert_eq!(decoded.last(), Some(&KeyValue::Str { text: "ab".into(), partial: true }));
        assert_eq!(decoded[0], KeyValue::Signed(5));
        assert!(decode_key(&[1], &layout).is_err());
    }

    #[test]
    fn shapes_are_checked_kind_by_kind() {
        let layout = [
            KeyField { name: "file", kind: KeyPartKind::Ident },
            KeyField { name: "line", kind: KeyPartKind::U32 },
        ];
        let good = (Ident::new("f"), 3u32).key_shape().expect("tuples have shapes");
        assert!(good.check(&layout, false).is_ok());
        let wrong = (7u64, 3u32).key_shape().expect("tuples have shapes");
        assert!(wrong.check(&layout, false).unwrap_err().contains("must be Ident, not u64"));
        let short = KeyPrefix::new((Ident::new("f"),)).shape().expect("shape");
        assert!(short.check(&layout, true).is_ok());
        assert!(short.check(&layout, false).unwrap_err().contains("`line: u32`) is missing"));
        let text = KeyPrefix::str_start("src/main.rs").shape().expect("shape");
        assert!(text.check(&layout, true).is_err(), "a bare string is not an Ident");
        assert_eq!(KeyBuilder::new().part(1u8).part("x").shape().map(|s| s.kinds().len()), Some(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

        #[test]
        fn fast_compare_matches_slice_order(a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0x80), Just(0xFF)], 0..20),
                                            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0x80), Just(0xFF)], 0..20)) {
            prop_assert_eq!(compare_keys(&a, &b), a.cmp(&b));
            let shared: Vec<u8> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(compare_keys(&shared, &a), shared.cmp(&a));
        }
    }

    #[test]
    fn successor_and_ranges() {
        assert_eq!(prefix_successor(b"ab").as_deref(), Some(&b"ac"[..]));
        assert_eq!(prefix_successor(&[1, 0xFF]).as_deref(), Some(&[2u8][..]));
        assert_eq!(prefix_successor(&[0xFF]), None);
        assert_eq!(prefix_successor(&[]), None);
        let range = KeyRange::between(&[2], &[4]);
        assert!(range.contains(&[2]) && range.contains(&[4, 9]) && !range.contains(&[5]));
        assert!(KeyRange::greater_than(&[0xFF]).is_empty());
        assert!(KeyRange::nothing().is_empty());
        assert!(!KeyRange::less_than(&[3]).contains(&[3, 0]));
        assert!(KeyRange::at_most(&[3]).contains(&[3, 0]));
        assert!(!KeyRange::greater_than(&[3]).contains(&[3, 0xFF]));
    }
}
