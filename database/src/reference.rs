//! Hand-written reference schemas: what `chunk_schema!` generates, written out.
//!
//! [`RefLang`] is a small Algol-style language (modules, functions, structs,
//! diagnostics) with two declared partitions; [`TextLang`] is an open schema whose
//! records are plain strings, accepted in any partition. Tests, benchmarks and the
//! docs use them; they also show how to implement the storage traits by hand.

use crate::hash::{StableHash, StableHasher};
use crate::ident::Ident;
use crate::key::{KeyField, KeyPartKind};
use crate::schema::{
    ArchiveBytes, PartitionDef, RecordHandle, RecordKind, RecordStorage, Schema, StorageBuilder,
    owned_record as owned,
};

/// The `symbols` partition: modules, functions and structs under `(file: Ident, path: String)`.
pub const SYMBOLS: Ident = Ident::new("symbols");
/// The `diagnostics` partition: diagnostics under `(file: Ident, severity: u8, seq: u32)`.
pub const DIAGNOSTICS: Ident = Ident::new("diagnostics");

/// A module and the names it exports.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub struct Module {
    /// The module's name.
    pub name: Ident,
    /// Exported names.
    pub exports: Vec<Ident>,
}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub struct Function {
    /// The function's name.
    pub name: Ident,
    /// Parameter type names.
    pub params: Vec<Ident>,
    /// Return type name, if any.
    pub return_type: Option<Ident>,
}

/// A struct and its fields.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub struct Struct {
    /// The struct's name.
    pub name: Ident,
    /// (field name, field type) pairs.
    pub fields: Vec<(Ident, Ident)>,
}

/// A diagnostic message.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub struct Diagnostic {
    /// The message.
    pub message: String,
    /// 0 = hint, 1 = warning, 2 = error.
    pub severity: u8,
    /// The line it points at.
    pub line: u32,
}

impl Module {
    /// A module from names.
    #[must_use]
    pub fn new(name: &str, exports: &[&str]) -> Self {
        Module { name: Ident::named(name), exports: exports.iter().map(|e| Ident::named(e)).collect() }
    }
}

impl Function {
    /// A function from names.
    #[must_use]
    pub fn new(name: &str, params: &[&str], return_type: Option<&str>) -> Self {
        Function {
            name: Ident::named(name),
            params: params.iter().map(|p| Ident::named(p)).collect(),
            return_type: return_type.map(Ident::named),
        }
    }
}

impl Struct {
    /// A struct from names.
    #[must_use]
    pub fn new(name: &str, fields: &[(&str, &str)]) -> Self {
        Struct {
            name: Ident::named(name),
            fields: fields.iter().map(|(n, t)| (Ident::named(n), Ident::named(t))).collect(),
        }
    }
}

impl Diagnostic {
    /// A diagnostic.
    #[must_use]
    pub fn new(message: &str, severity: u8, line: u32) -> Self {
        Diagnostic { message: message.to_string(), severity, line }
    }
}

/// A record of [`RefLang`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefRecord {
    /// A module.
    Module(Module),
    /// A function.
    Function(Function),
    /// A struct.
    Struct(Struct),
    /// A diagnostic.
    Diagnostic(Diagnostic),
}

/// A borrowed record of [`RefLang`]: the archived record, read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefRecordRef<'a> {
    /// A module.
    Module(&'a ArchivedModule),
    /// A function.
    Function(&'a ArchivedFunction),
    /// A struct.
    Struct(&'a ArchivedStruct),
    /// A diagnostic.
    Diagnostic(&'a ArchivedDiagnostic),
}

impl RefRecordRef<'_> {
    /// An owned copy.
    #[must_use]
    pub fn to_owned(self) -> RefRecord {
        match self {
            RefRecordRef::Module(r) => RefRecord::Module(owned(r)),
            RefRecordRef::Function(r) => RefRecord::Function(owned(r)),
            RefRecordRef::Struct(r) => RefRecord::Struct(owned(r)),
            RefRecordRef::Diagnostic(r) => RefRecord::Diagnostic(owned(r)),
        }
    }
}

macro_rules! from_variants {
    ($($variant:ident),*) => {$(
        impl From<$variant> for RefRecord {
            fn from(record: $variant) -> Self {
                RefRecord::$variant(record)
            }
        }
    )*};
}

from_variants!(Module, Function, Struct, Diagnostic);

const MODULE: RecordKind = RecordKind(0);
const FUNCTION: RecordKind = RecordKind(1);
const STRUCT: RecordKind = RecordKind(2);
const DIAGNOSTIC: RecordKind = RecordKind(3);

/// The same canonical encoding for a record kind and its archived form.
macro_rules! stable_hash_fields {
    ($($owned:ident / $archived:ident { $($field:ident),* }),* $(,)?) => {$(
        impl StableHash for $owned {
            fn stable_hash(&self, hasher: &mut StableHasher) {
                $(self.$field.stable_hash(hasher);)*
            }
        }

        impl StableHash for $archived {
            fn stable_hash(&self, hasher: &mut StableHasher) {
                $(self.$field.stable_hash(hasher);)*
            }
        }
    )*};
}

stable_hash_fields!(
    Module / ArchivedModule { name, exports },
    Function / ArchivedFunction { name, params, return_type },
    Struct / ArchivedStruct { name, fields },
    Diagnostic / ArchivedDiagnostic { message, severity, line },
);

impl StableHash for RefRecord {
    fn stable_hash(&self, hasher: &mut StableHasher) {
        match self {
            RefRecord::Module(r) => (MODULE.0, r).stable_hash(hasher),
            RefRecord::Function(r) => (FUNCTION.0, r).stable_hash(hasher),
            RefRecord::Struct(r) => (STRUCT.0, r).stable_hash(hasher),
            RefRecord::Diagnostic(r) => (DIAGNOSTIC.0, r).stable_hash(hasher),
        }
    }
}

/// The reference language: modules, functions, structs and diagnostics.
#[derive(Debug)]
pub enum RefLang {}

const SYMBOL_KEY: &[KeyField] =
    &[KeyField { name: "file", kind: KeyPartKind::Ident }, KeyField { name: "path", kind: KeyPartKind::Str }];
const DIAGNOSTIC_KEY: &[KeyField] = &[
    KeyField { name: "file", kind: KeyPartKind::Ident },
    KeyField { name: "severity", kind: KeyPartKind::U8 },
    KeyField { name: "seq", kind: KeyPartKind::U32 },
];

impl Schema for RefLang {
    type Record = RefRecord;
    type RecordRef<'a> = RefRecordRef<'a>;
    type Storage = RefStorage;

    const NAME: &'static str = "RefLang";

    fn record_kinds() -> &'static [&'static str] {
        &["Module", "Function", "Struct", "Diagnostic"]
    }

    fn kind_of(record: &RefRecord) -> RecordKind {
        match record {
            RefRecord::Module(_) => MODULE,
            RefRecord::Function(_) => FUNCTION,
            RefRecord::Struct(_) => STRUCT,
            RefRecord::Diagnostic(_) => DIAGNOSTIC,
        }
    }

    fn partitions() -> &'static [PartitionDef] {
        &[
            PartitionDef {
                name: "symbols",
                key_string: "symbols",
                key: SYMBOLS,
                kinds: &[MODULE, FUNCTION, STRUCT],
                layout: SYMBOL_KEY,
            },
            PartitionDef {
                name: "diagnostics",
                key_string: "diagnostics",
                key: DIAGNOSTICS,
                kinds: &[DIAGNOSTIC],
                layout: DIAGNOSTIC_KEY,
            },
        ]
    }

    fn fingerprint() -> u64 {
        Ident::new("RefLang v1: Module{name,exports} Function{name,params,return_type} Struct{name,fields} Diagnostic{message,severity,line}; symbols(file,path); diagnostics(file,severity,seq)").raw()
    }
}

/// Columnar storage of [`RefLang`] records: one vector per record kind.
#[derive(Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct RefStorage {
    modules: Vec<Module>,
    functions: Vec<Function>,
    structs: Vec<Struct>,
    diagnostics: Vec<Diagnostic>,
}

/// Builds a [`RefStorage`].
#[derive(Debug, Default)]
pub struct RefStorageBuilder(RefStorage);

impl RecordStorage for RefStorage {
    type Schema = RefLang;
    type Builder = RefStorageBuilder;
    type Archived = ArchivedRefStorage;

    fn get(archived: &ArchivedRefStorage, handle: RecordHandle) -> RefRecordRef<'_> {
        let at = handle.index as usize;
        match handle.kind {
            MODULE => RefRecordRef::Module(&archived.modules[at]),
            FUNCTION => RefRecordRef::Function(&archived.functions[at]),
            STRUCT => RefRecordRef::Struct(&archived.structs[at]),
            _ => RefRecordRef::Diagnostic(&archived.diagnostics[at]),
        }
    }

    fn hash_record(archived: &ArchivedRefStorage, handle: RecordHandle, hasher: &mut StableHasher) {
        hasher.write_u16(handle.kind.0);
        match Self::get(archived, handle) {
            RefRecordRef::Module(r) => r.stable_hash(hasher),
            RefRecordRef::Function(r) => r.stable_hash(hasher),
            RefRecordRef::Struct(r) => r.stable_hash(hasher),
            RefRecordRef::Diagnostic(r) => r.stable_hash(hasher),
        }
    }

    fn len(archived: &ArchivedRefStorage) -> usize {
        archived.modules.len()
            + archived.functions.len()
            + archived.structs.len()
            + archived.diagnostics.len()
    }

    fn contains(archived: &ArchivedRefStorage, handle: RecordHandle) -> bool {
        let column = match handle.kind {
            MODULE => archived.modules.len(),
            FUNCTION => archived.functions.len(),
            STRUCT => archived.structs.len(),
            DIAGNOSTIC => archived.diagnostics.len(),
            _ => 0,
        };
        (handle.index as usize) < column
    }

    fn to_archive(&self) -> Result<ArchiveBytes, String> {
        rkyv::to_bytes::<rkyv::rancor::Error>(self).map_err(|error| error.to_string())
    }
}

fn push_to<T>(column: &mut Vec<T>, kind: RecordKind, record: T) -> RecordHandle {
    column.push(record);
    // The writer rejects chunks of more than u32::MAX records before they are stored.
    RecordHandle { kind, index: (column.len() - 1) as u32 }
}

impl StorageBuilder for RefStorageBuilder {
    type Storage = RefStorage;

    fn push(&mut self, record: RefRecord) -> RecordHandle {
        let storage = &mut self.0;
        match record {
            RefRecord::Module(r) => push_to(&mut storage.modules, MODULE, r),
            RefRecord::Function(r) => push_to(&mut storage.functions, FUNCTION, r),
            RefRecord::Struct(r) => push_to(&mut storage.structs, STRUCT, r),
            RefRecord::Diagnostic(r) => push_to(&mut storage.diagnostics, DIAGNOSTIC, r),
        }
    }

    fn hash_record(&self, handle: RecordHandle, hasher: &mut StableHasher) {
        let (storage, at) = (&self.0, handle.index as usize);
        hasher.write_u16(handle.kind.0);
        match handle.kind {
            MODULE => storage.modules[at].stable_hash(hasher),
            FUNCTION => storage.functions[at].stable_hash(hasher),
            STRUCT => storage.structs[at].stable_hash(hasher),
            _ => storage.diagnostics[at].stable_hash(hasher),
        }
    }

    fn finish(self) -> RefStorage {
        self.0
    }
}

/// An open schema whose records are strings: any partition, any sort key.
#[derive(Debug)]
pub enum TextLang {}

/// Storage of [`TextLang`] records.
#[derive(Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TextStorage(Vec<String>);

/// Builds a [`TextStorage`].
#[derive(Debug, Default)]
pub struct TextStorageBuilder(Vec<String>);

const TEXT: RecordKind = RecordKind(0);

impl Schema for TextLang {
    type Record = String;
    type RecordRef<'a> = &'a str;
    type Storage = TextStorage;

    const NAME: &'static str = "TextLang";

    fn record_kinds() -> &'static [&'static str] {
        &["Text"]
    }

    fn kind_of(_: &String) -> RecordKind {
        TEXT
    }

    fn fingerprint() -> u64 {
        Ident::new("TextLang v1: String").raw()
    }
}

impl RecordStorage for TextStorage {
    type Schema = TextLang;
    type Builder = TextStorageBuilder;
    type Archived = ArchivedTextStorage;

    fn get(archived: &ArchivedTextStorage, handle: RecordHandle) -> &str {
        archived.0[handle.index as usize].as_str()
    }

    fn hash_record(archived: &ArchivedTextStorage, handle: RecordHandle, hasher: &mut StableHasher) {
        hasher.write_str(Self::get(archived, handle));
    }

    fn len(archived: &ArchivedTextStorage) -> usize {
        archived.0.len()
    }

    fn contains(archived: &ArchivedTextStorage, handle: RecordHandle) -> bool {
        handle.kind == TEXT && (handle.index as usize) < archived.0.len()
    }

    fn to_archive(&self) -> Result<ArchiveBytes, String> {
        rkyv::to_bytes::<rkyv::rancor::Error>(self).map_err(|error| error.to_string())
    }
}

impl StorageBuilder for TextStorageBuilder {
    type Storage = TextStorage;

    fn push(&mut self, record: String) -> RecordHandle {
        push_to(&mut self.0, TEXT, record)
    }

    fn hash_record(&self, handle: RecordHandle, hasher: &mut StableHasher) {
        hasher.write_str(&self.0[handle.index as usize]);
    }

    fn finish(self) -> TextStorage {
        TextStorage(self.0)
    }
}
