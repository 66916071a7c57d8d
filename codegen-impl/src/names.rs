//! The one place that names every item the macro generates, so names cannot drift
//! apart between the items and the code that refers to them, and collisions with the
//! user's names can be checked in one place.

use proc_macro2::Span;
use syn::Ident;

/// Names derived from the schema's name.
pub struct Names {
    schema: String,
    span: Span,
}

fn ident(name: &str, span: Span) -> Ident {
    Ident::new(name, span)
}

/// A user's name without its raw-identifier prefix (`r#type` → `type`): the name
/// every derived name and every comparison uses.
pub fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map_or(name.clone(), str::to_string)
}

/// `symbols_by_file` → `SymbolsByFile`.
pub fn camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// `FunctionDecl` → `function_decl`.
pub fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (at, ch) in camel.chars().enumerate() {
        if ch.is_uppercase() {
            if at > 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

impl Names {
    pub fn new(schema: &Ident) -> Self {
        Names { schema: unraw(schema), span: schema.span() }
    }

    /// The record enum: `MiniLangRecord`.
    pub fn record_enum(&self) -> Ident {
        ident(&format!("{}Record", self.schema), self.span)
    }

    /// The borrowed record enum: `MiniLangRecordRef`.
    pub fn record_ref(&self) -> Ident {
        ident(&format!("{}RecordRef", self.schema), self.span)
    }

    /// The columnar storage: `MiniLangStorage`.
    pub fn storage(&self) -> Ident {
        ident(&format!("{}Storage", self.schema), self.span)
    }

    /// The archived storage, which record views borrow from: `ArchivedMiniLangStorage`.
    pub fn archived_storage(&self) -> Ident {
        ident(&format!("Archived{}Storage", self.schema), self.span)
    }

    /// The archived form of a record kind, the view queries return: `ArchivedFunction`
    /// (rkyv's convention, named here so it is checked for collisions).
    pub fn archived(record: &Ident) -> Ident {
        ident(&format!("Archived{}", unraw(record)), record.span())
    }

    /// Its builder: `MiniLangStorageBuilder`.
    pub fn builder(&self) -> Ident {
        ident(&format!("{}StorageBuilder", self.schema), self.span)
    }

    /// The storage column of a record kind: `function_column`.
    pub fn column(record: &Ident) -> Ident {
        ident(&format!("{}_column", snake(&unraw(record))), record.span())
    }

    /// A partition's marker type: `SymbolsPartition`.
    pub fn partition_type(partition: &Ident) -> Ident {
        ident(&format!("{}Partition", camel(&unraw(partition))), partition.span())
    }

    /// A partition's handle on the schema type: `MiniLang::SYMBOLS`.
    pub fn partition_const(partition: &Ident) -> Ident {
        ident(&unraw(partition).to_uppercase(), partition.span())
    }

    /// A partition's key type: `SymbolsKey`.
    pub fn key_type(partition: &Ident) -> Ident {
        ident(&format!("{}Key", camel(&unraw(partition))), partition.span())
    }

    /// A partition's key prefix holding its first `len` components: `SymbolsKeyPrefix1`.
    pub fn prefix_type(partition: &Ident, len: usize) -> Ident {
        ident(&format!("{}KeyPrefix{len}", camel(&unraw(partition))), partition.span())
    }

    /// A partition's key prefix ending inside a string component.
    pub fn partial_prefix_type(partition: &Ident) -> Ident {
        ident(&format!("{}KeyPartialPrefix", camel(&unraw(partition))), partition.span())
    }

    /// The prefix builder method that starts a string component: `path_starts_with`.
    pub fn starts_with_method(field: &Ident) -> Ident {
        ident(&format!("{}_starts_with", unraw(field)), field.span())
    }

    /// An index's handle on the schema type: `MiniLang::BY_NAME`.
    pub fn index_const(index: &Ident) -> Ident {
        ident(&unraw(index).to_uppercase(), index.span())
    }

    /// The accessor on the borrowed record enum: `as_function`.
    pub fn accessor(record: &Ident) -> Ident {
        ident(&format!("as_{}", snake(&unraw(record))), record.span())
    }

    /// Every type name the macro generates for this schema (for collision checks).
    pub fn generated_types(
        &self,
        records: &[&Ident],
        partitions: &[(Ident, usize)],
    ) -> Vec<(String, String)> {
        let mut names = vec![
            (self.schema.clone(), "the schema type".to_string()),
            (self.record_enum().to_string(), "the record enum".to_string()),
            (self.record_ref().to_string(), "the borrowed record enum".to_string()),
            (self.storage().to_string(), "the columnar storage".to_string()),
            (self.archived_storage().to_string(), "the archived storage".to_string()),
            (self.builder().to_string(), "the storage builder".to_string()),
        ];
        for record in records {
            names.push((
                Self::archived(record).to_string(),
                format!("the archived form of record `{record}`"),
            ));
        }
        for (partition, key_len) in partitions {
            let owner = format!("partition `{partition}`");
            names.push((Self::partition_type(partition).to_string(), format!("the marker type of {owner}")));
            names.push((Self::key_type(partition).to_string(), format!("the key type of {owner}")));
            names.push((
                Self::partial_prefix_type(partition).to_string(),
                format!("a key prefix type of {owner}"),
            ));
            for len in 0..=*key_len {
                names.push((
                    Self::prefix_type(partition, len).to_string(),
                    format!("a key prefix type of {owner}"),
                ));
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(camel("symbols"), "Symbols");
        assert_eq!(camel("by_file_name"), "ByFileName");
        assert_eq!(snake("FunctionDecl"), "function_decl");
        assert_eq!(snake("Struct"), "struct");
    }
}
