//! Parsing: the `chunk_schema!` declaration as written, every name and type keeping
//! its span so later stages can point at the user's own tokens.
//!
//! ```text
//! /// docs
//! #[chunkdb(crate = path)]          // optional
//! pub schema Name {
//!     records { /// docs
//!               Kind { /// docs
//!                      field: Type, … }, … }
//!     partitions { /// docs
//!                  name: "key" holds Kind, Kind key (field: Type, …), … }   // optional
//!     indexes { /// docs
//!               name on Kind.field, Kind.field, … }                          // optional
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitStr, Path, Token, Type, Visibility, braced, parenthesized};

/// The whole declaration.
pub struct Schema {
    pub docs: Vec<String>,
    pub krate: Option<Path>,
    pub vis: Visibility,
    pub name: Ident,
    pub records: Vec<Record>,
    pub partitions: Vec<Partition>,
    pub indexes: Vec<Index>,
    /// Where the `records` section is (for "no records" errors), else the name.
    pub records_span: Span,
}

/// A record kind: a struct with named fields.
pub struct Record {
    pub docs: Vec<String>,
    pub name: Ident,
    pub fields: Vec<Field>,
}

/// A named, typed field (of a record or of a partition key).
pub struct Field {
    pub docs: Vec<String>,
    pub name: Ident,
    pub ty: Type,
}

/// A partition: which record kinds it holds and the typed components of its key.
pub struct Partition {
    pub docs: Vec<String>,
    pub name: Ident,
    /// The key string; `None` means the partition's name.
    pub key: Option<LitStr>,
    pub holds: Vec<Ident>,
    /// The `key` keyword, for errors about the key as a whole.
    pub key_span: Span,
    pub key_fields: Vec<Field>,
}

/// A secondary index: records looked up by one field per record kind.
pub struct Index {
    pub docs: Vec<String>,
    pub name: Ident,
    pub targets: Vec<IndexTarget>,
}

/// `Kind.field` in an index declaration.
pub struct IndexTarget {
    pub record: Ident,
    pub field: Ident,
}

mod kw {
    syn::custom_keyword!(schema);
    syn::custom_keyword!(records);
    syn::custom_keyword!(partitions);
    syn::custom_keyword!(indexes);
    syn::custom_keyword!(holds);
    syn::custom_keyword!(key);
    syn::custom_keyword!(on);
    syn::custom_keyword!(chunkdb);
}

/// The text of the `///` comments among `attrs`; any other attribute is an error
/// (generated items get their attributes from the macro).
fn docs(attrs: &[Attribute]) -> syn::Result<Vec<String>> {
    let mut docs = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            return Err(syn::Error::new_spanned(
                attr,
                "only doc comments are allowed here; the macro derives what generated items need",
            ));
        }
        if let syn::Meta::NameValue(meta) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(text), .. }) = &meta.value
        {
            docs.push(text.value());
        }
    }
    Ok(docs)
}

impl Parse for Schema {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let mut krate = None;
        let mut doc_attrs = Vec::new();
        for attr in attrs {
            if attr.path().is_ident("chunkdb") {
                attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("crate") {
                        krate = Some(meta.value()?.parse::<Path>()?);
                        Ok(())
                    } else {
                        Err(meta.error(
                            "unknown option: the only option is `#[chunkdb(crate = path::to::chunkdb)]`",
                        ))
                    }
                })?;
            } else {
                doc_attrs.push(attr);
            }
        }
        let docs = docs(&doc_attrs)?;
        let vis: Visibility = input.parse()?;
        input.parse::<kw::schema>().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected `schema Name { … }`, as in `pub schema MiniLang { records { … } }`",
            )
        })?;
        let name: Ident = input.parse()?;
        let body;
        braced!(body in input);

        let mut schema = Schema {
            docs,
            krate,
            vis,
            records_span: name.span(),
            name,
            records: Vec::new(),
            partitions: Vec::new(),
            indexes: Vec::new(),
        };
        let mut seen = Vec::<(String, Span)>::new();
        while !body.is_empty() {
            let lookahead = body.lookahead1();
            let section: Ident = if lookahead.peek(kw::records)
                || lookahead.peek(kw::partitions)
                || lookahead.peek(kw::indexes)
            {
                body.parse()?
            } else {
                return Err(lookahead.error());
            };
            if let Some((_, first)) = seen.iter().find(|(name, _)| section == name) {
                let mut error = syn::Error::new(
                    section.span(),
                    format!("`{section}` is declared twice: merge the two sections"),
                );
                error.combine(syn::Error::new(*first, "first declared here"));
                return Err(error);
            }
            seen.push((section.to_string(), section.span()));
            let content;
            braced!(content in body);
            match section.to_string().as_str() {
                "records" => {
                    schema.records_span = section.span();
                    schema.records = parse_list(&content)?;
                }
                "partitions" => schema.partitions = parse_list(&content)?,
                _ => schema.indexes = parse_list(&content)?,
            }
        }
        Ok(schema)
    }
}

/// A comma-separated list of items, trailing comma allowed.
fn parse_list<T: Parse>(input: ParseStream) -> syn::Result<Vec<T>> {
    Ok(Punctuated::<T, Token![,]>::parse_terminated(input)?.into_iter().collect())
}

impl Parse for Record {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let docs = docs(&input.call(Attribute::parse_outer)?)?;
        let name: Ident = input.parse()?;
        let content;
        braced!(content in input);
        let fields = parse_list(&content)?;
        Ok(Record { docs, name, fields })
    }
}

impl Parse for Field {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let docs = docs(&input.call(Attribute::parse_outer)?)?;
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty: Type = input.parse()?;
        Ok(Field { docs, name, ty })
    }
}

impl Parse for Partition {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let docs = docs(&input.call(Attribute::parse_outer)?)?;
        let name: Ident = input.parse()?;
        let key = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            Some(input.parse::<LitStr>()?)
        } else {
            None
        };
        input.parse::<kw::holds>().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected `holds`: a partition is `name: \"key\" holds Kind, … key (field: Type, …)`",
            )
        })?;
        let mut holds = vec![input.parse::<Ident>()?];
        while input.peek(Token![,]) && !input.peek2(kw::key) {
            input.parse::<Token![,]>()?;
            holds.push(input.parse()?);
        }
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        let key_token = input.parse::<kw::key>().map_err(|error| {
            syn::Error::new(
                error.span(),
                "expected `key (field: Type, …)` after the record kinds the partition holds",
            )
        })?;
        let content;
        parenthesized!(content in input);
        let key_fields = parse_list(&content)?;
        Ok(Partition { docs, name, key, holds, key_span: key_token.span, key_fields })
    }
}

impl Parse for Index {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let docs = docs(&input.call(Attribute::parse_outer)?)?;
        let name: Ident = input.parse()?;
        input.parse::<kw::on>().map_err(|error| {
            syn::Error::new(error.span(), "expected `on`: an index is `name on Kind.field, Kind.field`")
        })?;
        let mut targets = vec![input.parse::<IndexTarget>()?];
        // Targets are comma-separated like indexes are: one continues while the next
        // two tokens are `Ident .`.
        while input.peek(Token![,]) && input.peek2(Ident) && is_target_next(input) {
            input.parse::<Token![,]>()?;
            targets.push(input.parse()?);
        }
        Ok(Index { docs, name, targets })
    }
}

/// Whether the tokens after the comma are `Kind . field` (another target) rather than
/// the next index (`name on …`).
fn is_target_next(input: ParseStream) -> bool {
    let fork = input.fork();
    fork.parse::<Token![,]>().is_ok() && fork.parse::<Ident>().is_ok() && fork.peek(Token![.])
}

impl Parse for IndexTarget {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let record: Ident = input.parse()?;
        input.parse::<Token![.]>()?;
        let field: Ident = input.parse()?;
        Ok(IndexTarget { record, field })
    }
}

/// How deep a declaration may nest groups and generic arguments. Parsing (syn's and
/// ours) recurses once per level, and a proc macro that overflows its stack takes the
/// whole compiler down with it: past this, the input is refused before it is parsed.
/// Real declarations nest a few levels (`Option<Vec<(Ident, String)>>` is four).
pub const MAX_NESTING: usize = 64;

/// Parses the macro input.
pub fn parse(input: TokenStream) -> syn::Result<Schema> {
    check_nesting(input.clone())?;
    syn::parse2(input)
}

/// Refuses input nested deeper than [`MAX_NESTING`] levels of groups (`()`, `[]`,
/// `{}`) and generic arguments (`<…>`), spanned on the token where the limit is
/// passed. Iterative, so it cannot overflow the stack itself.
fn check_nesting(input: TokenStream) -> syn::Result<()> {
    use proc_macro2::TokenTree;
    // Each group being read: its remaining tokens, the depth it starts at, and the
    // generic arguments (`<` not yet closed) open inside it so far.
    let mut stack: Vec<(proc_macro2::token_stream::IntoIter, usize, usize)> = vec![(input.into_iter(), 0, 0)];
    while let Some((tokens, base, angles)) = stack.last_mut() {
        let Some(token) = tokens.next() else {
            stack.pop();
            continue;
        };
        let depth = *base + *angles;
        match token {
            TokenTree::Group(group) => {
                if depth + 1 > MAX_NESTING {
                    return Err(too_deep(group.span_open()));
                }
                stack.push((group.stream().into_iter(), depth + 1, 0));
            }
            TokenTree::Punct(punct) if punct.as_char() == '<' => {
                if depth + 1 > MAX_NESTING {
                    return Err(too_deep(punct.span()));
                }
                *angles += 1;
            }
            TokenTree::Punct(punct) if punct.as_char() == '>' => *angles = angles.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn too_deep(span: proc_macro2::Span) -> syn::Error {
    syn::Error::new(
        span,
        format!(
            "this declaration nests more than {MAX_NESTING} levels of brackets and generic arguments here; \
             chunkdb's declarations nest a few: declare deep structures as records of their own"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> TokenStream {
        let text = format!(
            "pub schema S {{ records {{ R {{ f: {}u8{} }} }} }}",
            "Vec<".repeat(depth),
            ">".repeat(depth)
        );
        text.parse().expect("valid tokens")
    }

    #[test]
    fn nesting_is_refused_past_the_limit_and_only_there() {
        // The field's type sits three groups deep (`{ records { R {`).
        assert!(check_nesting(nested(MAX_NESTING - 3)).is_ok());
        let error = check_nesting(nested(MAX_NESTING - 2)).expect_err("one level too deep");
        assert!(error.to_string().contains("more than 64 levels"), "{error}");
        assert!(check_nesting(nested(10_000)).is_err(), "refused without recursing");
    }
}
