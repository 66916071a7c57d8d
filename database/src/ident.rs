//! Identifiers: every name in chunkdb is a deterministic 64-bit hash of a string.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use parking_lot::RwLock;
use xxhash_rust::const_xxh3::xxh3_64 as const_xxh3_64;
use xxhash_rust::xxh3::xxh3_64;

/// A name (of a partition, a record, a field, a task…) as a deterministic `u64`:
/// the xxh3 hash of its string.
///
/// `Ident::new` is a `const fn`, so partition constants are compile-time values:
///
/// ```
/// use chunkdb_database::Ident;
/// const SYMBOLS: Ident = Ident::new("symbols");
/// assert_eq!(SYMBOLS, Ident::new("symbols"));
/// ```
///
/// The hash is the same on every platform, build and process, so identifiers can be
/// persisted and shared. `Debug` shows the original string when this process has seen
/// it through [`Ident::named`], `From<&str>`, or a schema declaration.
///
/// Idents order by their hash, not by their names, and so do sort-key components of
/// type `Ident`: a range over them selects hash intervals, and a scan lists names in
/// no alphabetical order. Use a `String` key component for names that must come out
/// in order or be searched by range or by their start.
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
pub struct Ident(u64);

impl Ident {
    /// Hashes `name` into an identifier. Usable in `const` context; it does not record
    /// the name for `Debug` (use [`Ident::named`] for that).
    #[must_use]
    pub const fn new(name: &str) -> Self {
        Ident(const_xxh3_64(name.as_bytes()))
    }

    /// Hashes `name` and remembers it, so `Debug` prints `name` instead of a number.
    pub fn named(name: &str) -> Self {
        // The same hash as `new`, by the runtime implementation: several times faster
        // than the one `const fn` can use, and names are hashed at run time.
        let ident = Ident(xxh3_64(name.as_bytes()));
        remember(ident.0, name);
        ident
    }

    /// Wraps a raw hash value (for example one read back from storage).
    #[must_use]
    pub const fn from_raw(raw: u64) -> Self {
        Ident(raw)
    }

    /// The raw 64-bit hash.
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The original string, if this process has recorded it.
    #[must_use]
    pub fn name(self) -> Option<String> {
        registry().read().get(&self.0).map(|name| name.to_string())
    }
}

impl From<&str> for Ident {
    fn from(name: &str) -> Self {
        Ident::named(name)
    }
}

impl From<&String> for Ident {
    fn from(name: &String) -> Self {
        Ident::named(name)
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match registry().read().get(&self.0) {
            Some(name) => write!(f, "{name:?}"),
            None => write!(f, "#{:016x}", self.0),
        }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match registry().read().get(&self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "#{:016x}", self.0),
        }
    }
}

/// Names seen by this process, for `Debug` and error messages only. Bounded by the
/// number of distinct names a program uses (partitions, kinds, task ids).
fn registry() -> &'static RwLock<HashMap<u64, Box<str>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<u64, Box<str>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Remembers, under one lock, each name that hashes to the id it comes with (a
/// restart's task names: the manifest that lists them may be forged).
pub(crate) fn remember_all<'n>(names: impl ExactSizeIterator<Item = (u64, &'n str)>) {
    let mut registry = registry().write();
    registry.reserve(names.len());
    for (raw, name) in names {
        if xxh3_64(name.as_bytes()) == raw {
            registry.entry(raw).or_insert_with(|| name.into());
        }
    }
}

fn remember(raw: u64, name: &str) {
    if registry().read().contains_key(&raw) {
        return;
    }
    registry().write().entry(raw).or_insert_with(|| name.into());
}

/// The stable identifier of a task: one unit of compiler work, such as
/// `parse:file:///src/main.rs`.
///
/// A task id must be *stable*: the same work on the same input always has the same
/// id, so it never contains timestamps, random values or output data. A task's new
/// chunk supersedes its previous one.
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
pub struct TaskId(Ident);

impl TaskId {
    /// A task id from its stable name; the name is remembered for `Debug` and errors.
    pub fn new(name: &str) -> Self {
        TaskId(Ident::named(name))
    }

    /// A task id from an identifier computed elsewhere.
    #[must_use]
    pub const fn from_ident(ident: Ident) -> Self {
        TaskId(ident)
    }

    /// The identifier behind this task id.
    #[must_use]
    pub const fn ident(self) -> Ident {
        self.0
    }
}

impl From<&str> for TaskId {
    fn from(name: &str) -> Self {
        TaskId::new(name)
    }
}

impl From<&String> for TaskId {
    fn from(name: &String) -> Self {
        TaskId::new(name)
    }
}

impl From<String> for TaskId {
    fn from(name: String) -> Self {
        TaskId::new(&name)
    }
}

impl From<Ident> for TaskId {
    fn from(ident: Ident) -> Self {
        TaskId(ident)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({:?})", self.0)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl ArchivedIdent {
    /// The identifier this archived one stands for.
    #[must_use]
    pub fn get(&self) -> Ident {
        Ident(self.0.to_native())
    }
}

impl ArchivedTaskId {
    /// The task id this archived one stands for.
    #[must_use]
    pub fn get(&self) -> TaskId {
        TaskId(self.0.get())
    }
}

impl fmt::Display for ArchivedIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

impl fmt::Display for ArchivedTaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYMBOLS: Ident = Ident::new("symbols");

    #[test]
    fn const_and_runtime_hashes_agree() {
        assert_eq!(SYMBOLS, Ident::named("symbols"));
        assert_eq!(SYMBOLS.raw(), xxhash_rust::xxh3::xxh3_64(b"symbols"));
    }

    #[test]
    fn named_hashes_as_new_does_at_every_length() {
        // xxh3 takes a different path for each band of lengths up to 240 and beyond.
        let text: String = (0..300u32).map(|at| char::from(b'a' + (at * 7 % 26) as u8)).collect();
        for len in 0..=text.len() {
            assert_eq!(Ident::named(&text[..len]), Ident::new(&text[..len]), "length {len}");
        }
    }

    #[test]
    fn only_names_that_hash_to_their_id_are_remembered() {
        let real = Ident::new("ident-remember-all-real");
        let forged = Ident::new("ident-remember-all-forged-id");
        remember_all([(real.raw(), "ident-remember-all-real"), (forged.raw(), "something else")].into_iter());
        assert_eq!(real.name().as_deref(), Some("ident-remember-all-real"));
        assert_eq!(forged.name(), None);
    }

    #[test]
    fn hash_is_pinned_across_builds() {
        // A persisted Ident must mean the same name forever: pin one value.
        assert_eq!(Ident::new("").raw(), 0x2d06_8005_38d3_94c2);
    }

    #[test]
    fn debug_shows_known_names_and_hex_otherwise() {
        let known = Ident::named("ident-debug-known");
        assert_eq!(format!("{known:?}"), "\"ident-debug-known\"");
        let unknown = Ident::new("ident-debug-never-registered");
        assert!(format!("{unknown:?}").starts_with('#'));
        assert_eq!(known.name().as_deref(), Some("ident-debug-known"));
        assert_eq!(unknown.name(), None);
    }

    #[test]
    fn task_ids_remember_their_names() {
        let task = TaskId::new("parse:file:///a.rs");
        assert_eq!(task.to_string(), "parse:file:///a.rs");
        assert_eq!(task, TaskId::from_ident(Ident::new("parse:file:///a.rs")));
    }
}
