//! Expansion: the typed Rust a checked declaration stands for. Generated code names
//! the runtime only through absolute paths (`::chunkdb::__private::…`, or the path
//! given with `#[chunkdb(crate = …)]`), never through the user's imports.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, Ident, PathArguments, Type};

use crate::names::Names;
use crate::types::{IndexShape, Scalar};
use crate::valid::{Checked, IndexInfo, PartitionInfo, RecordInfo};

/// Expands a checked declaration.
pub fn expand(checked: &Checked<'_>) -> TokenStream {
    let schema = checked.schema;
    let rt = match &schema.krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::chunkdb::__private),
    };
    let cx = Context { checked, rt, names: Names::new(&schema.name) };
    let schema_type = cx.schema_type();
    let records = cx.records();
    let storage = cx.storage();
    let schema_impl = cx.schema_impl();
    let partitions = cx.partitions();
    let consts = cx.consts();
    quote! {
        #schema_type
        #records
        #storage
        #schema_impl
        #partitions
        #consts
    }
}

struct Context<'c, 'a> {
    checked: &'c Checked<'a>,
    rt: TokenStream,
    names: Names,
}

/// `#[doc = …]` lines: the user's own, then the macro's.
fn docs(user: &[String], generated: &str) -> TokenStream {
    let generated = if user.is_empty() { generated.to_string() } else { format!("\n{generated}") };
    quote! { #(#[doc = #user])* #[doc = #generated] }
}

/// A type as written, with the runtime's `Ident`, `TaskId` and `ChunkId` spelled by
/// absolute path.
fn runtime_type(ty: &Type, rt: &TokenStream) -> TokenStream {
    match ty {
        Type::Path(path) if path.qself.is_none() && path.path.segments.len() == 1 => {
            let segment = &path.path.segments[0];
            let name = segment.ident.to_string();
            match (&segment.arguments, name.as_str()) {
                (PathArguments::None, "Ident" | "TaskId" | "ChunkId") => {
                    let ident = &segment.ident;
                    quote!(#rt::#ident)
                }
                (PathArguments::None, "String") => quote!(::std::string::String),
                (PathArguments::AngleBracketed(args), _) => {
                    // The containers the macro classified are std's, whatever is in scope.
                    let ident = &segment.ident;
                    let path = match name.as_str() {
                        "Vec" => quote!(::std::vec::Vec),
                        "Option" => quote!(::core::option::Option),
                        "Box" => quote!(::std::boxed::Box),
                        _ => quote!(#ident),
                    };
                    let args = args.args.iter().map(|arg| match arg {
                        GenericArgument::Type(ty) => runtime_type(ty, rt),
                        other => quote!(#other),
                    });
                    quote!(#path<#(#args),*>)
                }
                _ => quote!(#ty),
            }
        }
        Type::Tuple(tuple) => {
            let elems = tuple.elems.iter().map(|ty| runtime_type(ty, rt));
            quote!((#(#elems,)*))
        }
        Type::Slice(slice) => {
            let elem = runtime_type(&slice.elem, rt);
            quote!([#elem])
        }
        Type::Paren(inner) => runtime_type(&inner.elem, rt),
        Type::Group(inner) => runtime_type(&inner.elem, rt),
        _ => quote!(#ty),
    }
}

/// The Rust type of a scalar (key component or index value).
fn scalar_type(scalar: Scalar, rt: &TokenStream) -> TokenStream {
    match scalar {
        Scalar::Ident => quote!(#rt::Ident),
        Scalar::TaskId => quote!(#rt::TaskId),
        Scalar::ChunkId => quote!(#rt::ChunkId),
        Scalar::String => quote!(::std::string::String),
        other => {
            let name = Ident::new(other.name(), Span::call_site());
            quote!(#name)
        }
    }
}

impl Context<'_, '_> {
    fn records_of(&self, partition: &PartitionInfo<'_>) -> Vec<&RecordInfo<'_>> {
        partition.holds.iter().map(|&at| &self.checked.records[at]).collect()
    }

    fn layout_text(partition: &PartitionInfo<'_>) -> String {
        let fields: Vec<String> = partition
            .key_fields
            .iter()
            .map(|(field, scalar)| format!("{}: {}", field.name, scalar.name()))
            .collect();
        format!("({})", fields.join(", "))
    }

    fn layout(&self, partition: &PartitionInfo<'_>) -> TokenStream {
        let rt = &self.rt;
        let fields = partition.key_fields.iter().map(|(field, scalar)| {
            let name = field.name.to_string();
            let kind = format_ident!("{}", scalar.key_kind().unwrap_or("Str"));
            quote!(#rt::KeyField { name: #name, kind: #rt::KeyPartKind::#kind })
        });
        quote!(&[#(#fields),*])
    }

    /// The schema type, with the overview page as its docs.
    fn schema_type(&self) -> TokenStream {
        let schema = self.checked.schema;
        let (vis, name) = (&schema.vis, &schema.name);
        let mut page = format!(
            "The `{name}` schema: its records are [`{record}`] (borrowed: [`{record_ref}`]), stored in [`{storage}`].\n\n",
            record = self.names.record_enum(),
            record_ref = self.names.record_ref(),
            storage = self.names.storage()
        );
        page.push_str("# Records\n\n| kind | fields | held by |\n|---|---|---|\n");
        for record in &self.checked.records {
            let fields: Vec<String> = record
                .fields
                .iter()
                .map(|(field, _)| format!("`{}: {}`", field.name, type_text(&field.ty)))
                .collect();
            let held: Vec<String> = record.held_by.iter().map(|p| format!("`{p}`")).collect();
            page.push_str(&format!(
                "| [`{}`] | {} | {} |\n",
                record.name,
                if fields.is_empty() { "—".to_string() } else { fields.join(", ") },
                if held.is_empty() { "—".to_string() } else { held.join(", ") }
            ));
        }
        if self.checked.partitions.is_empty() {
            page.push_str("\nNo partitions are declared: the schema is open, and records may be stored under any partition key and sort key.\n");
        } else {
            page.push_str(
                "\n# Partitions\n\n| partition | key string | holds | sort key |\n|---|---|---|---|\n",
            );
            for partition in &self.checked.partitions {
                let holds: Vec<String> =
                    self.records_of(partition).iter().map(|r| format!("[`{}`]", r.name)).collect();
                page.push_str(&format!(
                    "| [`{}`]({name}::{}) | `{:?}` | {} | [`{}`] `{}` |\n",
                    partition.name,
                    Names::partition_const(partition.name),
                    partition.key_string,
                    holds.join(", "),
                    Names::key_type(partition.name),
                    Self::layout_text(partition)
                ));
            }
        }
        if !self.checked.indexes.is_empty() {
            page.push_str("\n# Indexes\n\n| index | value | fields |\n|---|---|---|\n");
            for index in &self.checked.indexes {
                let fields: Vec<String> = index
                    .targets
                    .iter()
                    .map(|(at, field, _)| format!("`{}.{field}`", self.checked.records[*at].name))
                    .collect();
                page.push_str(&format!(
                    "| [`{name}::{}`] | `{}` | {} |\n",
                    Names::index_const(index.name),
                    index.value.name(),
                    fields.join(", ")
                ));
            }
        }
        page.push_str(&format!("\nSchema fingerprint: `{:#018x}`.", self.fingerprint()));
        let doc = docs(&schema.docs, &page);
        quote! {
            #doc
            #[derive(Debug)]
            #[allow(dead_code)]
            #vis enum #name {}
        }
    }

    /// A hash of the declaration's data-bearing parts (not its docs): it changes when
    /// stored data would change meaning.
    fn fingerprint(&self) -> u64 {
        let mut text = format!("schema {};", self.checked.schema.name);
        for record in &self.checked.records {
            text.push_str(&format!("record {}{{", record.name));
            for (field, _) in &record.fields {
                text.push_str(&format!("{}:{};", field.name, type_text(&field.ty)));
            }
            text.push('}');
        }
        for partition in &self.checked.partitions {
            let holds: Vec<String> = self.records_of(partition).iter().map(|r| r.name.to_string()).collect();
            text.push_str(&format!(
                "partition {}:{:?} holds {} key {};",
                partition.name,
                partition.key_string,
                holds.join(","),
                Self::layout_text(partition)
            ));
        }
        for index in &self.checked.indexes {
            let targets: Vec<String> = index
                .targets
                .iter()
                .map(|(at, field, _)| format!("{}.{field}", self.checked.records[*at].name))
                .collect();
            text.push_str(&format!("index {} on {};", index.name, targets.join(",")));
        }
        xxhash_rust::xxh3::xxh3_64(text.as_bytes())
    }

    /// Record structs, the record enums, and their conversions.
    fn records(&self) -> TokenStream {
        let rt = &self.rt;
        let schema = &self.checked.schema.name;
        let vis = &self.checked.schema.vis;
        let (record_enum, record_ref) = (self.names.record_enum(), self.names.record_ref());
        let mut out = TokenStream::new();
        for (kind, record) in self.checked.records.iter().enumerate() {
            let name = record.name;
            let held = if record.held_by.is_empty() {
                "It is not held by any declared partition.".to_string()
            } else {
                let list: Vec<String> = record.held_by.iter().map(|p| format!("`{p}`")).collect();
                format!("Held by partition{} {}.", if list.len() > 1 { "s" } else { "" }, list.join(", "))
            };
            let doc = docs(record.docs, &format!("A record kind of [`{schema}`] (kind {kind}). {held}"));
            let fields = record.fields.iter().map(|(field, _)| {
                let doc = docs(&field.docs, &format!("Field `{}: {}`.", field.name, type_text(&field.ty)));
                let (fname, ty) = (&field.name, runtime_type(&field.ty, rt));
                quote!(#doc pub #fname: #ty)
            });
            // Spanned on the field's type, so a type without `StableHash` is reported there.
            let hashes: Vec<TokenStream> = record
                .fields
                .iter()
                .map(|(field, _)| {
                    let fname = &field.name;
                    // Located at the type (so a type without `StableHash` is reported
                    // there), resolved at the call site like the rest of the generated code.
                    let span = Span::call_site().located_at(field.ty.span());
                    quote_spanned!(span=> #rt::StableHash::stable_hash(&self.#fname, hasher);)
                })
                .collect();
            let hasher = if record.fields.is_empty() { quote!(_hasher) } else { quote!(hasher) };
            let archived = Names::archived(name);
            let archived_doc = format!(
                "A [`{name}`] as queries read it: in place in its chunk's archive, in memory or in a mapped file. Strings are `ArchivedString` (`as_str()`), numbers rkyv's little-endian types (`to_native()`), vectors slices; `to_owned` on the record view gives the owned record."
            );
            out.extend(quote! {
                #doc
                #[derive(Clone, Debug, PartialEq, Eq)]
                #[derive(#rt::rkyv::Archive, #rt::rkyv::Serialize, #rt::rkyv::Deserialize)]
                #[rkyv(crate = #rt::rkyv, archived = #archived, derive(Debug, PartialEq, Eq))]
                #[rkyv(attr(doc = #archived_doc))]
                #[allow(dead_code)]
                #vis struct #name { #(#fields,)* }

                impl #rt::StableHash for #name {
                    fn stable_hash(&self, #hasher: &mut #rt::StableHasher) {
                        #(#hashes)*
                    }
                }

                impl #rt::StableHash for #archived {
                    /// The same bytes as the owned record's.
                    fn stable_hash(&self, #hasher: &mut #rt::StableHasher) {
                        #(#hashes)*
                    }
                }

                #[allow(dead_code)]
                impl #archived {
                    /// An owned copy of the record.
                    pub fn to_owned(&self) -> #name {
                        #rt::owned_record::<#name>(self)
                    }
                }

                impl ::core::convert::From<#name> for #record_enum {
                    fn from(record: #name) -> Self {
                        #record_enum::#name(record)
                    }
                }
            });
        }

        let names: Vec<&Ident> = self.checked.records.iter().map(|r| r.name).collect();
        let kinds: Vec<u16> = (0..names.len() as u16).collect();
        let variant_docs: Vec<String> = names.iter().map(|n| format!("A [`{n}`] record.")).collect();
        let archived: Vec<Ident> = names.iter().map(|name| Names::archived(name)).collect();
        let accessors = names.iter().zip(&archived).map(|(name, archived)| {
            let method = Names::accessor(name);
            let doc = format!("The record, if it is a [`{name}`].");
            quote! {
                #[doc = #doc]
                pub fn #method(self) -> ::core::option::Option<&'a #archived> {
                    match self {
                        #record_ref::#name(record) => ::core::option::Option::Some(record),
                        #[allow(unreachable_patterns)]
                        _ => ::core::option::Option::None,
                    }
                }
            }
        });
        let enum_doc = format!(
            "A record of [`{schema}`]: one variant per record kind. Every record kind converts into it with `From`."
        );
        let ref_doc = format!(
            "A borrowed record of [`{schema}`], as queries return it: the archived record, read in place in its chunk (in memory, or in the mapped file of a persisted database); no copy is made."
        );
        out.extend(quote! {
            #[doc = #enum_doc]
            #[derive(Clone, Debug, PartialEq, Eq)]
            #[allow(dead_code)]
            #vis enum #record_enum { #(#[doc = #variant_docs] #names(#names),)* }

            #[doc = #ref_doc]
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            #[allow(dead_code)]
            #vis enum #record_ref<'a> { #(#[doc = #variant_docs] #names(&'a #archived),)* }

            impl #rt::StableHash for #record_enum {
                /// The kind, then the record's fields: the same bytes the storage hashes.
                fn stable_hash(&self, hasher: &mut #rt::StableHasher) {
                    hasher.write_u16(self.kind().0);
                    match self { #(#record_enum::#names(record) => #rt::StableHash::stable_hash(record, hasher),)* }
                }
            }

            #[allow(dead_code)]
            impl #record_enum {
                /// The record's kind.
                pub fn kind(&self) -> #rt::RecordKind {
                    match self { #(#record_enum::#names(_) => #rt::RecordKind(#kinds),)* }
                }
            }

            #[allow(dead_code)]
            impl<'a> #record_ref<'a> {
                /// The record's kind.
                pub fn kind(self) -> #rt::RecordKind {
                    match self { #(#record_ref::#names(_) => #rt::RecordKind(#kinds),)* }
                }

                /// An owned copy of the record.
                pub fn to_owned(self) -> #record_enum {
                    match self { #(#record_ref::#names(record) => #record_enum::#names(#rt::owned_record::<#names>(record)),)* }
                }

                #(#accessors)*
            }
        });
        out
    }

    /// Columnar storage (one vector per record kind), its archived form and its builder.
    fn storage(&self) -> TokenStream {
        let rt = &self.rt;
        let schema = &self.checked.schema.name;
        let vis = &self.checked.schema.vis;
        let (record_enum, record_ref) = (self.names.record_enum(), self.names.record_ref());
        let (storage, builder) = (self.names.storage(), self.names.builder());
        let archived_storage = self.names.archived_storage();
        let names: Vec<&Ident> = self.checked.records.iter().map(|r| r.name).collect();
        let columns: Vec<Ident> = names.iter().map(|name| Names::column(name)).collect();
        let kinds: Vec<u16> = (0..names.len() as u16).collect();
        let column_docs: Vec<String> = names.iter().map(|n| format!("The [`{n}`] records.")).collect();
        let (last_column, last_name) = (columns.last(), names.last());
        let (init_columns, init_names, init_kinds) =
            (&columns[..columns.len() - 1], &names[..names.len() - 1], &kinds[..kinds.len() - 1]);
        let storage_doc = format!(
            "Columnar storage of one chunk's [`{schema}`] records: one column per record kind. A chunk keeps it archived ([`{archived_storage}`])."
        );
        let archived_doc = format!(
            "The archived [`{storage}`]: what a chunk keeps, built at commit or mapped from a persisted directory, and what record views point into."
        );
        let builder_doc = format!("Collects the records of one chunk of [`{schema}`] while a task writes.");
        quote! {
            #[doc = #storage_doc]
            #[derive(Debug, Default)]
            #[derive(#rt::rkyv::Archive, #rt::rkyv::Serialize)]
            #[rkyv(crate = #rt::rkyv, archived = #archived_storage)]
            #[rkyv(attr(doc = #archived_doc))]
            #[allow(dead_code)]
            #vis struct #storage { #(#[doc = #column_docs] #columns: ::std::vec::Vec<#names>,)* }

            #[doc = #builder_doc]
            #[derive(Debug, Default)]
            #[allow(dead_code)]
            #vis struct #builder(#storage);

            impl #rt::RecordStorage for #storage {
                type Schema = #schema;
                type Builder = #builder;
                type Archived = #archived_storage;

                fn get(archived: &#archived_storage, handle: #rt::RecordHandle) -> #record_ref<'_> {
                    let at = handle.index as usize;
                    match handle.kind.0 {
                        #(#init_kinds => #record_ref::#init_names(&archived.#init_columns[at]),)*
                        _ => #record_ref::#last_name(&archived.#last_column[at]),
                    }
                }

                fn hash_record(archived: &#archived_storage, handle: #rt::RecordHandle, hasher: &mut #rt::StableHasher) {
                    hasher.write_u16(handle.kind.0);
                    match Self::get(archived, handle) {
                        #(#record_ref::#names(record) => #rt::StableHash::stable_hash(record, hasher),)*
                    }
                }

                fn len(archived: &#archived_storage) -> usize {
                    0usize #(+ archived.#columns.len())*
                }

                fn contains(archived: &#archived_storage, handle: #rt::RecordHandle) -> bool {
                    let column = match handle.kind.0 {
                        #(#kinds => archived.#columns.len(),)*
                        _ => 0,
                    };
                    (handle.index as usize) < column
                }

                fn to_archive(&self) -> ::core::result::Result<#rt::ArchiveBytes, ::std::string::String> {
                    #rt::rkyv::to_bytes::<#rt::rkyv::rancor::Error>(self)
                        .map_err(|error| ::std::string::ToString::to_string(&error))
                }
            }

            impl #rt::StorageBuilder for #builder {
                type Storage = #storage;

                fn push(&mut self, record: #record_enum) -> #rt::RecordHandle {
                    // A chunk holds at most u32::MAX records; the writer checks that.
                    match record {
                        #(#record_enum::#names(record) => {
                            self.0.#columns.push(record);
                            #rt::RecordHandle { kind: #rt::RecordKind(#kinds), index: (self.0.#columns.len() - 1) as u32 }
                        })*
                    }
                }

                fn hash_record(&self, handle: #rt::RecordHandle, hasher: &mut #rt::StableHasher) {
                    let at = handle.index as usize;
                    hasher.write_u16(handle.kind.0);
                    match handle.kind.0 {
                        #(#init_kinds => #rt::StableHash::stable_hash(&self.0.#init_columns[at], hasher),)*
                        _ => #rt::StableHash::stable_hash(&self.0.#last_column[at], hasher),
                    }
                }

                fn finish(self) -> #storage {
                    self.0
                }
            }
        }
    }

    fn schema_impl(&self) -> TokenStream {
        let rt = &self.rt;
        let schema = &self.checked.schema.name;
        let schema_name = schema.to_string();
        let (record_enum, record_ref, storage) =
            (self.names.record_enum(), self.names.record_ref(), self.names.storage());
        let kind_names: Vec<String> = self.checked.records.iter().map(|r| r.name.to_string()).collect();
        let partitions = self.checked.partitions.iter().map(|partition| {
            let name = partition.name.to_string();
            let key = &partition.key_string;
            let kinds = partition.holds.iter().map(|&at| {
                let at = at as u16;
                quote!(#rt::RecordKind(#at))
            });
            let layout = self.layout(partition);
            quote!(#rt::PartitionDef { name: #name, key_string: #key, key: #rt::Ident::new(#key), kinds: &[#(#kinds),*], layout: #layout })
        });
        let index_defs = self.checked.indexes.iter().map(|index| {
            let name = index.name.to_string();
            let fields = index.targets.iter().map(|(at, field, _)| {
                let (kind, field) = (*at as u16, field.to_string());
                quote!((#rt::RecordKind(#kind), #field))
            });
            quote!(#rt::IndexDef { name: #name, id: #rt::Ident::new(#name), fields: &[#(#fields),*] })
        });
        let index_values = self.index_values();
        let fingerprint = self.fingerprint();
        quote! {
            impl #rt::Schema for #schema {
                type Record = #record_enum;
                type RecordRef<'a> = #record_ref<'a>;
                type Storage = #storage;

                const NAME: &'static str = #schema_name;

                fn record_kinds() -> &'static [&'static str] {
                    &[#(#kind_names),*]
                }

                fn kind_of(record: &#record_enum) -> #rt::RecordKind {
                    record.kind()
                }

                fn partitions() -> &'static [#rt::PartitionDef] {
                    const PARTITIONS: &[#rt::PartitionDef] = &[#(#partitions),*];
                    PARTITIONS
                }

                fn indexes() -> &'static [#rt::IndexDef] {
                    const INDEXES: &[#rt::IndexDef] = &[#(#index_defs),*];
                    INDEXES
                }

                #index_values

                fn fingerprint() -> u64 {
                    #fingerprint
                }
            }
        }
    }

    fn index_values(&self) -> TokenStream {
        let rt = &self.rt;
        let record_ref = self.names.record_ref();
        if self.checked.indexes.is_empty() {
            return TokenStream::new();
        }
        let mut arms = Vec::new();
        let mut covered = 0;
        for (at, record) in self.checked.records.iter().enumerate() {
            let emits: Vec<TokenStream> = self
                .checked
                .indexes
                .iter()
                .flat_map(|index: &IndexInfo<'_>| {
                    let id = index.name.to_string();
                    index.targets.iter().filter(move |(target, _, _)| *target == at).map(
                        move |(_, field, shape)| match shape {
                            IndexShape::One => quote!(emit(#rt::Ident::new(#id), &record.#field);),
                            IndexShape::Optional => quote! {
                                if let ::core::option::Option::Some(value) = record.#field.as_ref() {
                                    emit(#rt::Ident::new(#id), value);
                                }
                            },
                            IndexShape::Many => quote! {
                                for value in record.#field.iter() {
                                    emit(#rt::Ident::new(#id), value);
                                }
                            },
                        },
                    )
                })
                .collect();
            if !emits.is_empty() {
                covered += 1;
                let name = record.name;
                arms.push(quote!(#record_ref::#name(record) => { #(#emits)* }));
            }
        }
        let rest = (covered < self.checked.records.len()).then(|| quote!(_ => {}));
        quote! {
            fn index_values(record: #record_ref<'_>, emit: &mut dyn FnMut(#rt::Ident, &dyn #rt::IndexValue)) {
                match record {
                    #(#arms)*
                    #rest
                }
            }
        }
    }

    /// Partition marker types, key types and prefix builders.
    fn partitions(&self) -> TokenStream {
        let mut out = TokenStream::new();
        for partition in &self.checked.partitions {
            out.extend(self.partition(partition));
        }
        out
    }

    fn partition(&self, partition: &PartitionInfo<'_>) -> TokenStream {
        let rt = &self.rt;
        let schema = &self.checked.schema.name;
        let vis = &self.checked.schema.vis;
        let marker = Names::partition_type(partition.name);
        let key_type = Names::key_type(partition.name);
        let key_string = &partition.key_string;
        let layout_text = Self::layout_text(partition);
        let holds = self.records_of(partition);
        let hold_names: Vec<&Ident> = holds.iter().map(|r| r.name).collect();
        let hold_list: Vec<String> = hold_names.iter().map(|n| format!("[`{n}`]")).collect();
        let marker_doc = docs(
            partition.docs,
            &format!(
                "Partition `{}` of [`{schema}`] (partition key `\"{key_string}\"`). Holds {}; sorted by [`{key_type}`] `{layout_text}`.",
                partition.name,
                hold_list.join(", ")
            ),
        );
        let id_doc = format!("The partition key: `Ident::new(\"{key_string}\")`.");

        let fields: Vec<&Ident> = partition.key_fields.iter().map(|(field, _)| &field.name).collect();
        let types: Vec<TokenStream> =
            partition.key_fields.iter().map(|(_, scalar)| scalar_type(*scalar, rt)).collect();
        let field_docs: Vec<TokenStream> = partition
            .key_fields
            .iter()
            .enumerate()
            .map(|(at, (field, scalar))| {
                docs(&field.docs, &format!("Component {at} of the key: `{}: {}`.", field.name, scalar.name()))
            })
            .collect();
        let params = partition.key_fields.iter().map(|(field, scalar)| {
            let name = &field.name;
            match scalar {
                Scalar::String => quote!(#name: impl ::core::convert::Into<::std::string::String>),
                other => {
                    let ty = scalar_type(*other, rt);
                    quote!(#name: #ty)
                }
            }
        });
        let inits = partition.key_fields.iter().map(|(field, scalar)| {
            let name = &field.name;
            match scalar {
                Scalar::String => quote!(#name: ::core::convert::Into::into(#name)),
                _ => quote!(#name),
            }
        });
        let decodes = partition.key_fields.iter().map(|(field, scalar)| {
            let name = &field.name;
            let value = quote!(values.next()?);
            let conversion = match scalar {
                Scalar::Ident => quote!(#value.into_ident()?),
                Scalar::String => quote!(#value.into_string()?),
                Scalar::Bool => quote!(#value.into_bool()?),
                Scalar::U8 | Scalar::U16 | Scalar::U32 | Scalar::U64 => {
                    let ty = scalar_type(*scalar, rt);
                    quote!(<#ty as ::core::convert::TryFrom<u64>>::try_from(#value.into_u64()?).ok()?)
                }
                _ => {
                    let ty = scalar_type(*scalar, rt);
                    quote!(<#ty as ::core::convert::TryFrom<i64>>::try_from(#value.into_i64()?).ok()?)
                }
            };
            quote!(#name: #conversion)
        });
        // A key encodes through the tuple of its fields, by value or by reference alike.
        let into_sort_key = [quote!(#key_type), quote!(&#key_type)].map(|target| {
            quote! {
                impl #rt::IntoSortKey for #target {
                    fn into_sort_key(self) -> #rt::SortKey {
                        #rt::IntoSortKey::into_sort_key((#(&self.#fields,)*))
                    }

                    fn key_shape(&self) -> ::core::option::Option<#rt::KeyShape> {
                        #rt::IntoSortKey::key_shape(&(#(&self.#fields,)*))
                    }

                    fn with_encoded<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
                        #rt::IntoSortKey::with_encoded((#(&self.#fields,)*), f)
                    }
                }
            }
        });
        let layout = self.layout(partition);
        let key_doc = format!(
            "The sort key of partition [`{marker}`]: `{layout_text}`. Encoded so that byte order is field order and every leading run of fields is a byte prefix; build prefixes with [`{key_type}::prefix`]."
        );
        let prefix0 = Names::prefix_type(partition.name, 0);
        let partial = Names::partial_prefix_type(partition.name);
        let has_string = partition.key_fields.iter().any(|(_, scalar)| *scalar == Scalar::String);

        // Prefix stages: stage n holds the first n components.
        let mut stages = TokenStream::new();
        for len in 0..=fields.len() {
            let stage = Names::prefix_type(partition.name, len);
            let covered: Vec<String> = fields[..len].iter().map(|f| format!("`{f}`")).collect();
            let stage_doc = if len == 0 {
                format!(
                    "An empty prefix of [`{key_type}`] (matches every key); add components with its methods."
                )
            } else {
                format!(
                    "A prefix of [`{key_type}`] holding its first {len} component(s): {}.",
                    covered.join(", ")
                )
            };
            let methods = if len < fields.len() {
                let (field, scalar) = (&partition.key_fields[len].0.name, partition.key_fields[len].1);
                let next = Names::prefix_type(partition.name, len + 1);
                let method_doc = format!("Adds component `{field}`.");
                let param = match scalar {
                    Scalar::String => quote!(&str),
                    other => scalar_type(other, rt),
                };
                let starts_with = (scalar == Scalar::String).then(|| {
                    let method = Names::starts_with_method(field);
                    let doc = format!("Ends the prefix inside component `{field}`: matches keys whose `{field}` starts with `start`.");
                    quote! {
                        #[doc = #doc]
                        pub fn #method(self, start: &str) -> #partial {
                            #partial { prefix: self.builder.str_prefix(start) }
                        }
                    }
                });
                quote! {
                    #[allow(dead_code)]
                    impl #stage {
                        #[doc = #method_doc]
                        pub fn #field(self, #field: #param) -> #next {
                            #next { builder: self.builder.part(#field) }
                        }
                        #starts_with
                    }
                }
            } else {
                TokenStream::new()
            };
            stages.extend(quote! {
                #[doc = #stage_doc]
                #[derive(Clone, Debug)]
                #[allow(dead_code)]
                #vis struct #stage { builder: #rt::KeyBuilder }

                #methods

                impl #rt::IntoKeyPrefix for #stage {
                    fn into_key_prefix(self) -> #rt::KeyPrefix {
                        self.builder.prefix()
                    }
                }

                impl #rt::PrefixOf<#marker> for #stage {}
            });
        }
        let partial_type = has_string.then(|| {
            let doc = format!("A prefix of [`{key_type}`] that ends inside a string component.");
            quote! {
                #[doc = #doc]
                #[derive(Clone, Debug)]
                #[allow(dead_code)]
                #vis struct #partial { prefix: #rt::KeyPrefix }

                impl #rt::IntoKeyPrefix for #partial {
                    fn into_key_prefix(self) -> #rt::KeyPrefix {
                        self.prefix
                    }
                }

                impl #rt::PrefixOf<#marker> for #partial {}
            }
        });

        quote! {
            #marker_doc
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
            #[allow(dead_code)]
            #vis struct #marker;

            #[allow(dead_code)]
            impl #marker {
                #[doc = #id_doc]
                pub const ID: #rt::Ident = #rt::Ident::new(#key_string);
            }

            impl #rt::TypedPartition for #marker {
                type Schema = #schema;
                type Key = #key_type;
                const KEY: #rt::Ident = #rt::Ident::new(#key_string);
            }

            #(impl #rt::Holds<#hold_names> for #marker {})*

            impl ::core::convert::From<#marker> for #rt::Ident {
                fn from(_: #marker) -> Self {
                    #marker::ID
                }
            }

            #[doc = #key_doc]
            #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
            #[allow(dead_code)]
            #vis struct #key_type { #(#field_docs pub #fields: #types,)* }

            #[allow(dead_code)]
            impl #key_type {
                /// A key from its components.
                pub fn new(#(#params),*) -> Self {
                    #key_type { #(#inits),* }
                }

                /// An empty prefix of this partition's keys, to extend component by component.
                pub fn prefix() -> #prefix0 {
                    #prefix0 { builder: #rt::KeyBuilder::new() }
                }

                /// Decodes a stored sort key of this partition (a query result's
                /// `SortKeyRef`, or a `&SortKey`); `None` if it does not have this layout.
                pub fn decode<'k>(key: impl ::core::convert::Into<#rt::SortKeyRef<'k>>) -> ::core::option::Option<Self> {
                    const LAYOUT: &[#rt::KeyField] = #layout;
                    let mut values = #rt::decode_key(key.into().as_bytes(), LAYOUT).ok()?.into_iter();
                    ::core::option::Option::Some(#key_type { #(#decodes),* })
                }
            }

            #(#into_sort_key)*

            impl #rt::IntoKeyPrefix for #key_type {
                fn into_key_prefix(self) -> #rt::KeyPrefix {
                    #rt::IntoKeyPrefix::into_key_prefix((#(&self.#fields,)*))
                }
            }

            impl #rt::PrefixOf<#marker> for #key_type {}

            #stages
            #partial_type
        }
    }

    /// Handles on the schema type: `MiniLang::SYMBOLS`, `MiniLang::BY_NAME`.
    fn consts(&self) -> TokenStream {
        let rt = &self.rt;
        let schema = &self.checked.schema.name;
        let vis = &self.checked.schema.vis;
        let partitions = self.checked.partitions.iter().map(|partition| {
            let (name, marker) =
                (Names::partition_const(partition.name), Names::partition_type(partition.name));
            let doc = docs(partition.docs, &format!("Partition `{}`: see [`{marker}`].", partition.name));
            quote!(#doc #vis const #name: #marker = #marker;)
        });
        let indexes = self.checked.indexes.iter().map(|index| {
            let name = Names::index_const(index.name);
            let id = index.name.to_string();
            let value = scalar_type(index.value, rt);
            let fields: Vec<String> = index
                .targets
                .iter()
                .map(|(at, field, shape)| {
                    let each = if *shape == IndexShape::Many { " (each element)" } else { "" };
                    format!("`{}.{field}`{each}", self.checked.records[*at].name)
                })
                .collect();
            let doc = docs(
                index.docs,
                &format!(
                    "Index `{id}`: looks records up by {}, a `{}`. Use it with `snapshot.index({schema}::{name}).get(&value)`.",
                    fields.join(", "),
                    index.value.name()
                ),
            );
            quote!(#doc #vis const #name: #rt::IndexHandle<#schema, #value> = #rt::IndexHandle::new(#id);)
        });
        quote! {
            #[allow(dead_code)]
            impl #schema {
                #(#partitions)*
                #(#indexes)*
            }
        }
    }
}

/// A type as the user wrote it, without spaces, for docs and the fingerprint.
fn type_text(ty: &Type) -> String {
    quote!(#ty).to_string().replace(' ', "")
}
