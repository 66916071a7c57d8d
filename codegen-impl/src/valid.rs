//! Validation: every mistake in the declaration, each spanned on the user's tokens
//! with a message that says how to fix it, all reported together.

use std::collections::{HashMap, HashSet};

use proc_macro2::Span;
use syn::Ident;

use crate::ast::{Field, Schema};
use crate::names::{Names, unraw};
use crate::types::{self, FieldType, IndexShape, Scalar};

/// The most components a sort key may have (the runtime's `KeyShape` limit).
const MAX_KEY_FIELDS: usize = 8;

/// Names a generated item would take from the runtime's traits.
const RESERVED_CONSTS: &[&str] = &["NAME"];

/// Record names the macro reads as field types of its own (so a record of that name
/// could never be used as a field, and would shadow the type for other fields).
const RESERVED_RECORDS: &[&str] = &[
    "Ident", "TaskId", "ChunkId", "String", "Vec", "Option", "Box", "HashMap", "HashSet", "BTreeMap",
    "BTreeSet", "u8", "u16", "u32", "u64", "u128", "i8", "i16", "i32", "i64", "i128", "usize", "isize",
    "f32", "f64", "bool", "char", "str", "Self",
];

/// A record kind, checked.
pub struct RecordInfo<'a> {
    pub name: &'a Ident,
    pub docs: &'a [String],
    pub fields: Vec<(&'a Field, FieldType)>,
    /// The partitions holding it, by name.
    pub held_by: Vec<String>,
}

/// A partition, checked.
pub struct PartitionInfo<'a> {
    pub name: &'a Ident,
    pub docs: &'a [String],
    pub key_string: String,
    /// Indexes into the schema's records.
    pub holds: Vec<usize>,
    pub key_fields: Vec<(&'a Field, Scalar)>,
}

/// An index, checked.
pub struct IndexInfo<'a> {
    pub name: &'a Ident,
    pub docs: &'a [String],
    pub value: Scalar,
    /// (record index, field name, shape)
    pub targets: Vec<(usize, &'a Ident, IndexShape)>,
}

/// The declaration, checked and resolved.
pub struct Checked<'a> {
    pub schema: &'a Schema,
    pub records: Vec<RecordInfo<'a>>,
    pub partitions: Vec<PartitionInfo<'a>>,
    pub indexes: Vec<IndexInfo<'a>>,
}

/// Collects errors, to report them all at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.add(syn::Error::new(span, message));
    }

    fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Reports `ident` if an earlier one had the same name.
    fn unique<'a>(&mut self, seen: &mut HashMap<String, &'a Ident>, ident: &'a Ident, what: &str) {
        let name = unraw(ident);
        if let Some(first) = seen.get(&name) {
            self.push(ident.span(), format!("{what} `{name}` is declared twice: rename or remove one"));
            self.push(first.span(), format!("first declaration of {what} `{name}`"));
        } else {
            seen.insert(name, ident);
        }
    }
}

/// Checks the whole declaration.
pub fn check(schema: &Schema) -> syn::Result<Checked<'_>> {
    let mut errors = Errors::default();
    let names = Names::new(&schema.name);

    if schema.records.is_empty() {
        errors.push(
            schema.records_span,
            format!(
                "schema `{}` declares no records: add a `records {{ Kind {{ field: Type }} }}` section with at least one record kind",
                schema.name
            ),
        );
    }

    // Records and their fields.
    let mut record_names = HashMap::new();
    let mut columns: HashMap<String, &Ident> = HashMap::new();
    let mut records = Vec::new();
    let mut rejected_fields: HashSet<(String, String)> = HashSet::new();
    for record in &schema.records {
        errors.unique(&mut record_names, &record.name, "record");
        let column = Names::column(&record.name).to_string();
        match columns.get(&column) {
            Some(first) if unraw(first) != unraw(&record.name) => errors.push(
                record.name.span(),
                format!(
                    "records `{}` and `{first}` would share the generated names `{column}` and `{}`: rename one",
                    record.name,
                    Names::accessor(&record.name)
                ),
            ),
            _ => {
                columns.insert(column, &record.name);
            }
        }
        if RESERVED_RECORDS.contains(&unraw(&record.name).as_str()) {
            errors.push(
                record.name.span(),
                format!(
                    "record name `{}` is reserved: the macro reads it as a field type of its own, so a record of that name could not be used; rename the record",
                    record.name
                ),
            );
        }
        let mut field_names = HashMap::new();
        let mut fields = Vec::new();
        for field in &record.fields {
            errors.unique(&mut field_names, &field.name, "field");
            match types::classify(&field.ty) {
                Ok(ty) => fields.push((field, ty)),
                Err(error) => {
                    rejected_fields.insert((unraw(&record.name), unraw(&field.name)));
                    errors.add(error);
                }
            }
        }
        records.push(RecordInfo { name: &record.name, docs: &record.docs, fields, held_by: Vec::new() });
    }
    let record_at =
        |name: &Ident| schema.records.iter().position(|record| unraw(&record.name) == unraw(name));

    // Partitions.
    let mut partition_names = HashMap::new();
    let mut key_strings: HashMap<String, Span> = HashMap::new();
    let mut partitions = Vec::new();
    for partition in &schema.partitions {
        errors.unique(&mut partition_names, &partition.name, "partition");
        let key_string = partition.key.as_ref().map_or_else(|| partition.name.to_string(), |key| key.value());
        let key_span = partition.key.as_ref().map_or_else(|| partition.name.span(), |key| key.span());
        if let Some(first) = key_strings.get(&key_string) {
            errors.push(
                key_span,
                format!("partition key \"{key_string}\" is used by two partitions: each partition needs its own key string"),
            );
            errors.push(*first, format!("partition key \"{key_string}\" first used here"));
        } else {
            key_strings.insert(key_string.clone(), key_span);
        }

        let mut holds = Vec::new();
        let mut held_names = HashMap::new();
        for kind in &partition.holds {
            errors.unique(&mut held_names, kind, "held record kind");
            match record_at(kind) {
                Some(at) => holds.push(at),
                None => errors.push(
                    kind.span(),
                    format!(
                        "partition `{}` holds `{kind}`, which is not a record of this schema; declare `{kind}` in `records` or hold one of: {}",
                        partition.name,
                        list(schema.records.iter().map(|record| record.name.to_string()))
                    ),
                ),
            }
        }

        if partition.key_fields.is_empty() {
            errors.push(
                partition.key_span,
                format!("partition `{}` has an empty key: declare at least one component, as in `key (file: Ident, path: String)`", partition.name),
            );
        }
        if partition.key_fields.len() > MAX_KEY_FIELDS {
            errors.push(
                partition.key_span,
                format!(
                    "partition `{}` has {} key components, more than the {MAX_KEY_FIELDS} a key may have",
                    partition.name,
                    partition.key_fields.len()
                ),
            );
        }
        let mut key_names = HashMap::new();
        let mut key_fields = Vec::new();
        for field in &partition.key_fields {
            errors.unique(&mut key_names, &field.name, "key component");
            match types::classify(&field.ty) {
                Ok(ty) => match ty.key_scalar() {
                    Some(scalar) => key_fields.push((field, scalar)),
                    None => errors.push(
                        types::span_of(&field.ty),
                        format!(
                            "key component `{}` cannot be ordered as part of a sort key: use one of u8, u16, u32, u64, i8, i16, i32, i64, bool, Ident or String",
                            field.name
                        ),
                    ),
                },
                Err(error) => errors.add(error),
            }
        }
        for &at in &holds {
            records[at].held_by.push(partition.name.to_string());
        }
        partitions.push(PartitionInfo {
            name: &partition.name,
            docs: &partition.docs,
            key_string,
            holds,
            key_fields,
        });
    }

    // Indexes.
    let mut index_names = HashMap::new();
    let mut indexes = Vec::new();
    for index in &schema.indexes {
        errors.unique(&mut index_names, &index.name, "index");
        let mut targets = Vec::new();
        let mut value: Option<(Scalar, String)> = None;
        for target in &index.targets {
            let Some(at) = record_at(&target.record) else {
                errors.push(
                    target.record.span(),
                    format!(
                        "index `{}` names `{}`, which is not a record of this schema",
                        index.name, target.record
                    ),
                );
                continue;
            };
            let Some((field, ty)) =
                records[at].fields.iter().find(|(field, _)| unraw(&field.name) == unraw(&target.field))
            else {
                if rejected_fields.contains(&(unraw(&target.record), unraw(&target.field))) {
                    // The field's type was already reported.
                    continue;
                }
                errors.push(
                    target.field.span(),
                    format!(
                        "record `{}` has no field `{}`; its fields are: {}",
                        target.record,
                        target.field,
                        list(schema.records[at].fields.iter().map(|field| field.name.to_string()))
                    ),
                );
                continue;
            };
            let Some((scalar, shape)) = ty.index_value() else {
                errors.push(
                    target.field.span(),
                    format!(
                        "field `{}.{}` cannot be indexed: index a field of type u8…u64, i8…i64, bool, Ident or String, or an Option, Vec or Box<[T]> of one",
                        target.record, field.name
                    ),
                );
                continue;
            };
            match &value {
                Some((first, first_at)) if *first != scalar => {
                    errors.push(
                        target.field.span(),
                        format!(
                            "index `{}` mixes value types: `{}.{}` is {} but `{first_at}` is {}; an index looks records up by one type of value",
                            index.name,
                            target.record,
                            target.field,
                            scalar.name(),
                            first.name()
                        ),
                    );
                }
                Some(_) => {}
                None => value = Some((scalar, format!("{}.{}", target.record, target.field))),
            }
            targets.push((at, &target.field, shape));
        }
        if let Some((value, _)) = value {
            indexes.push(IndexInfo { name: &index.name, docs: &index.docs, value, targets });
        }
    }

    // Index ids share the identifier space of partition keys (read-sets name either).
    for index in &schema.indexes {
        if let Some(partition) = partitions.iter().find(|p| p.key_string == unraw(&index.name)) {
            errors.push(
                index.name.span(),
                format!(
                    "index `{}` has the same id as partition `{}` (key \"{}\"): reads of the two could not be told apart; rename the index",
                    index.name, partition.name, partition.key_string
                ),
            );
        }
    }

    // Names the macro generates must not collide with each other or with the user's.
    let generated = names.generated_types(
        &schema.records.iter().map(|r| &r.name).collect::<Vec<_>>(),
        &schema.partitions.iter().map(|p| (p.name.clone(), p.key_fields.len())).collect::<Vec<_>>(),
    );
    let mut first_owner: HashMap<&str, &str> = HashMap::new();
    let mut reported = HashSet::new();
    for (name, what) in &generated {
        match first_owner.get(name.as_str()) {
            Some(first) if first != what => {
                let owner = schema.partitions.iter().rev().find(|p| what.contains(&format!("`{}`", p.name)));
                // One report per colliding declaration, not one per generated name.
                if reported.insert(owner.map(|p| unraw(&p.name))) {
                    let span = owner.map_or(schema.name.span(), |p| p.name.span());
                    errors.push(span, format!("the macro would generate `{name}` twice, as {first} and as {what}: rename one of them"));
                }
            }
            Some(_) => {}
            None => {
                first_owner.insert(name, what);
            }
        }
    }
    for record in &schema.records {
        if let Some((_, what)) = generated.iter().find(|(name, _)| unraw(&record.name) == *name) {
            errors.push(
                record.name.span(),
                format!("record name `{}` is reserved: the macro generates {what} under that name; rename the record", record.name),
            );
        }
    }
    // Partition and index handles share the schema type's namespace.
    let mut consts: HashMap<String, (&Ident, &str)> = HashMap::new();
    let handles = schema
        .partitions
        .iter()
        .map(|p| (&p.name, "partition"))
        .chain(schema.indexes.iter().map(|i| (&i.name, "index")));
    for (name, what) in handles {
        let upper = name.to_string().to_uppercase();
        if RESERVED_CONSTS.contains(&upper.as_str()) {
            errors.push(
                name.span(),
                format!(
                    "`{name}` is reserved: `{}::{upper}` is a constant of the runtime's `Schema` trait",
                    schema.name
                ),
            );
        } else if let Some((first, first_what)) = consts.get(&upper) {
            // Two of one kind with one name are already reported as declared twice.
            if *first != name || *first_what != what {
                errors.push(
                    name.span(),
                    format!(
                        "{what} `{name}` and {first_what} `{first}` would both become `{}::{upper}`: rename one",
                        schema.name
                    ),
                );
            }
        } else {
            consts.insert(upper, (name, what));
        }
    }

    match errors.0 {
        Some(error) => Err(error),
        None => Ok(Checked { schema, records, partitions, indexes }),
    }
}

fn list(names: impl Iterator<Item = String>) -> String {
    let mut names: Vec<String> = names.map(|name| format!("`{name}`")).collect();
    names.dedup();
    if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
}
