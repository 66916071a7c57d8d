//! From a Rust source file's text to the facts a language server's index keeps about
//! it: the items it defines (with spans), its `use` imports flattened to one path
//! each, its `mod` declarations, and the type paths in its signatures.
//!
//! Both pipelines (chunkdb's and salsa's) call [`summarize`], so the comparison
//! between them measures the incremental framework, not two parsers. Both also cut
//! a file into [`pieces`] (runs of whole top-level items) and reuse the summary of
//! every piece whose text did not change ([`summarize_in_pieces`]), as language
//! servers do: adding a `mod` line to a 1,500-line crate root then parses one line,
//! not the whole file.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use syn::spanned::Spanned;
use syn::visit::Visit;

/// A region of a file: 1-based lines, 0-based columns (in characters).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Span {
    /// Line of the first character.
    pub line: u32,
    /// Column of the first character.
    pub column: u32,
    /// Line of the last character.
    pub end_line: u32,
    /// Column just past the last character.
    pub end_column: u32,
}

impl Span {
    fn of(span: proc_macro2::Span) -> Span {
        let (start, end) = (span.start(), span.end());
        Span {
            line: start.line as u32,
            column: start.column as u32,
            end_line: end.line as u32,
            end_column: end.column as u32,
        }
    }

    /// Whether the position (`line`, `column`) lies inside.
    pub fn contains(&self, line: u32, column: u32) -> bool {
        (line, column) >= (self.line, self.column) && (line, column) < (self.end_line, self.end_column)
    }
}

/// What an item is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Kind {
    Module = 0,
    Function,
    Struct,
    Enum,
    Union,
    Trait,
    TypeAlias,
    Const,
    Static,
    Macro,
    ExternCrate,
    Method,
    AssociatedConst,
    AssociatedType,
    /// A name a `use` brings into scope (only in scope tables, never a symbol).
    Import,
}

impl Kind {
    const ALL: [Kind; 15] = [
        Kind::Module,
        Kind::Function,
        Kind::Struct,
        Kind::Enum,
        Kind::Union,
        Kind::Trait,
        Kind::TypeAlias,
        Kind::Const,
        Kind::Static,
        Kind::Macro,
        Kind::ExternCrate,
        Kind::Method,
        Kind::AssociatedConst,
        Kind::AssociatedType,
        Kind::Import,
    ];

    /// The kind stored as `code` (records keep kinds as `u8`).
    pub fn from_code(code: u8) -> Kind {
        Kind::ALL.get(code as usize).copied().unwrap_or(Kind::Import)
    }

    /// Its code, for records.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The namespace a module-level item of this kind defines its name in: items of
    /// different namespaces may share a name (`struct S;` and `fn S()` may not, but
    /// `mod m` and `fn m` may).
    pub fn namespace(self) -> u8 {
        match self {
            Kind::Module | Kind::Struct | Kind::Enum | Kind::Union | Kind::Trait | Kind::TypeAlias => 0,
            Kind::ExternCrate | Kind::AssociatedType => 0,
            Kind::Function | Kind::Const | Kind::Static | Kind::Method | Kind::AssociatedConst => 1,
            Kind::Macro => 2,
            Kind::Import => 3,
        }
    }

    /// How a person would call it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Function => "function",
            Kind::Struct => "struct",
            Kind::Enum => "enum",
            Kind::Union => "union",
            Kind::Trait => "trait",
            Kind::TypeAlias => "type alias",
            Kind::Const => "constant",
            Kind::Static => "static",
            Kind::Macro => "macro",
            Kind::ExternCrate => "extern crate",
            Kind::Method => "method",
            Kind::AssociatedConst => "associated constant",
            Kind::AssociatedType => "associated type",
            Kind::Import => "import",
        }
    }
}

/// An item the file defines.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct Def {
    /// The inline module it sits in, relative to the file (`""` at the file's top,
    /// `"a::b"` inside `mod a { mod b { … } }`).
    pub module: String,
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// For associated items, what they belong to (`impl Parser`, `trait Visit`).
    pub container: Option<String>,
    /// Whether it is `pub` (in any form).
    pub public: bool,
    /// Whether a `#[cfg]` guards it, on the item or on an enclosing inline module
    /// (or a `cfg_if!` branch holds it, or an attribute macro may remove it): two
    /// such items may share a name.
    pub cfg: bool,
    /// The span of its name.
    pub span: Span,
}

/// One path a `use` item imports (a `use a::{b, c::*}` gives two).
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct Use {
    /// The inline module it sits in.
    pub module: String,
    /// The path's segments; a leading `::` is the segment `"::"`.
    pub path: Vec<String>,
    /// The name it binds (`None` for a glob or `as _`).
    pub binding: Option<String>,
    /// Whether it is a glob (`a::*`).
    pub glob: bool,
    /// Whether a `#[cfg]` guards it (or an enclosing module, or a `cfg_if!` branch).
    pub cfg: bool,
    /// The span of the path.
    pub span: Span,
}

/// A `mod name;` or `mod name { … }` declaration.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct ModDecl {
    /// The inline module it sits in.
    pub module: String,
    /// The declared module's name.
    pub name: String,
    /// Whether its body is inline (`mod name { … }`).
    pub inline: bool,
    /// Its `#[path = "…"]` attributes, plain or under `cfg_attr` (a plain one
    /// first).
    pub paths: Vec<String>,
    /// Whether its paths come only from `cfg_attr` (then the default files are
    /// candidates too).
    pub conditional_paths: bool,
    /// Whether a `#[cfg]` guards it (then a missing file is not an error: Cargo
    /// may never build it).
    pub cfg: bool,
    /// Whether the body of a macro call this indexer cannot see through declares
    /// it (the macro decides what becomes of it).
    pub opaque: bool,
    /// The span of its name.
    pub span: Span,
}

/// A `macro_rules!` whose one rule takes nothing and gives items: a call of it puts
/// those items where it is written. Its items other than `mod`s are collected in
/// the defining file under the inline module `body` (the macro's name and a `!`,
/// which no real module has), under a `cfg` (their paths are the caller's, so they
/// are never reported where the macro is defined); the module tree adds that body
/// to each calling module's scope.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct Template {
    /// The macro's name.
    pub name: String,
    /// The inline module its items are collected under.
    pub body: String,
    /// Its `mod` declarations (their `module` relative to the body, no spans): a
    /// call declares them as if written there.
    pub mods: Vec<ModDecl>,
}

/// A type path in signatures (parameters, return types, fields, impl headers): one
/// per distinct (module, path) of a file, since each resolves the same wherever it
/// is written, with every place it is written.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct TypeRef {
    /// The inline module it sits in.
    pub module: String,
    /// The path's segments.
    pub path: Vec<String>,
    /// The span of its last segment at each occurrence, in source order.
    pub spans: Vec<Span>,
    /// Whether every occurrence is under a `#[cfg]`.
    pub cfg: bool,
}

/// A file that does not parse.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct SyntaxError {
    /// The parser's message.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// Everything the index keeps about one file.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Items, in source order (module-level ones and associated ones).
    pub defs: Vec<Def>,
    /// Imports, in source order.
    pub uses: Vec<Use>,
    /// Module declarations, in source order.
    pub mods: Vec<ModDecl>,
    /// Type paths in signatures, in order of first occurrence.
    pub refs: Vec<TypeRef>,
    /// Inline modules (relative to the file) whose names cannot all be listed: they
    /// hold an item-level macro call (but an argument-less one, see `calls`) or an
    /// item a macro attribute or derive may add names beside (`""` for a file that
    /// does not parse). Glob imports are
    /// followed instead (see `uses`).
    pub open: Vec<String>,
    /// The syntax error, if the file does not parse (then nothing else is known).
    pub error: Option<SyntaxError>,
    /// The `#[macro_export]` macros it defines, as (inline module, name): they live
    /// at its crate's root.
    pub exports: Vec<(String, String)>,
    /// The files its item-level `include!("…")` calls pull in: (inline module,
    /// path as written).
    pub includes: Vec<(String, String)>,
    /// Its `macro_rules!` with one rule taking nothing (`() => { items }`, serde's
    /// `crate_root!`, libc's `prelude!`).
    pub templates: Vec<Template>,
    /// Its item-level macro calls without arguments: (inline module, name). Such a
    /// call opens its module unless it calls a template of the crate.
    pub calls: Vec<(String, String)>,
}

/// Parses `text` and extracts its [`Summary`]. A syntax error is part of the result,
/// never a panic.
pub fn summarize(text: &str) -> Summary {
    let summary = match syn::parse_file(text) {
        Ok(file) => {
            let mut collector = Collector::default();
            collector.items("", &file.items);
            Summary { refs: collector.refs.refs, ..collector.summary }
        }
        // Nothing of the file is known: its names cannot be listed.
        Err(error) => Summary {
            error: Some(SyntaxError { message: error.to_string(), span: Span::of(error.span()) }),
            open: vec![String::new()],
            ..Summary::default()
        },
    };
    // Spans are kept as numbers: free the thread's source map, or it grows with
    // every file this thread ever parsed.
    proc_macro2::extra::invalidate_current_thread_spans();
    summary
}

/// A piece of a file: whole lines holding whole top-level items (each with its
/// attributes and doc comments), so it parses on its own, and its spans are the
/// file's once shifted down by `first_line - 1`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Piece<'t> {
    /// The file's line the piece starts on (1-based).
    pub first_line: u32,
    /// Its text.
    pub text: &'t str,
}

/// Cuts `text` into pieces at each line end where a top-level item has just ended
/// (after a `}` or `;` at bracket depth 0, outside comments and literals). A light
/// lexer decides: it knows comments (nested), strings (escaped, raw, byte, C),
/// character literals and lifetimes. Text it cannot follow (unbalanced brackets) is
/// one piece, the whole file.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let whole = || vec![Piece { first_line: 1, text }];
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let mut pieces = Vec::new();
    let (mut depth, mut start, mut start_line, mut ended) = (0i64, 0usize, 1u32, false);
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let ident_before = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        match byte {
            b'\n' if depth == 0 && ended => {
                let piece = &text[start..=i];
                pieces.push(Piece { first_line: start_line, text: piece });
                start_line += piece.bytes().filter(|&b| b == b'\n').count() as u32;
                (start, ended) = (i + 1, false);
            }
            b'/' if at(i + 1) == b'/' => {
                while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'/' if at(i + 1) == b'*' => {
                let mut nested = 0usize;
                loop {
                    match (at(i), at(i + 1)) {
                        (0, _) => return whole(),
                        (b'/', b'*') => (nested, i) = (nested + 1, i + 2),
                        (b'*', b'/') => {
                            (nested, i) = (nested - 1, i + 2);
                            if nested == 0 {
                                break;
                            }
                        }
                        _ => i += 1,
                    }
                }
                continue;
            }
            b'"' => {
                let Some(end) = string_end(bytes, i + 1) else { return whole() };
                (i, ended) = (end, false);
            }
            b'r' | b'b' | b'c' if !ident_before => {
                // A literal's prefix: b"..", b'.', r"..", r#".."#, br#".."#, c"..", cr"..".
                let mut j = i + 1;
                if byte != b'r' && at(j) == b'r' {
                    j += 1;
                }
                let raw = at(j - 1) == b'r';
                let hashes = if raw { bytes[j..].iter().take_while(|&&b| b == b'#').count() } else { 0 };
                if at(j + hashes) == b'"' {
                    let end =
                        if raw { raw_end(bytes, j + hashes + 1, hashes) } else { string_end(bytes, j + 1) };
                    let Some(end) = end else { return whole() };
                    (i, ended) = (end, false);
                } else if byte == b'b' && at(j) == b'\'' && j == i + 1 {
                    i = char_end(bytes, j);
                    ended = false;
                } else {
                    ended = false;
                }
            }
            b'\'' => {
                i = char_end(bytes, i);
                ended = false;
            }
            b'{' | b'(' | b'[' => (depth, ended) = (depth + 1, false),
            b'}' | b')' | b']' => {
                depth -= 1;
                if depth < 0 {
                    return whole();
                }
                ended = byte == b'}' && depth == 0;
            }
            b';' => ended = depth == 0,
            b' ' | b'\t' | b'\r' => {}
            _ => ended = false,
        }
        i += 1;
    }
    if depth != 0 {
        return whole();
    }
    if start < text.len() {
        pieces.push(Piece { first_line: start_line, text: &text[start..] });
    }
    pieces
}

/// The index of the `"` closing a string whose text starts at `from` (escapes with
/// `\`).
fn string_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the last `#` closing a raw string (`"` then `hashes` `#`s) whose
/// text starts at `from`.
fn raw_end(bytes: &[u8], from: usize, hashes: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' if bytes[i + 1..].iter().take(hashes).filter(|&&b| b == b'#').count() == hashes => {
                return Some(i + hashes);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// At a `'` (index `at`): the index of the `'` closing a character literal, or `at`
/// itself for a lifetime or label.
fn char_end(bytes: &[u8], at: usize) -> usize {
    let next = bytes.get(at + 1).copied().unwrap_or(0);
    if next == b'\\' {
        // An escape: skip the escaped character, then find the closing quote.
        let mut i = at + 3;
        while i < bytes.len() && bytes[i] != b'\'' && bytes[i] != b'\n' {
            i += 1;
        }
        return if bytes.get(i) == Some(&b'\'') { i } else { at };
    }
    // One character (of up to four UTF-8 bytes), then the closing quote.
    let width = match next {
        0..0x80 => 1,
        0xC0..0xE0 => 2,
        0xE0..0xF0 => 3,
        _ => 4,
    };
    if next != b'\n' && bytes.get(at + 1 + width) == Some(&b'\'') { at + 1 + width } else { at }
}

/// [`summarize`], piece by piece: `summaries` gives the summary of each piece, in
/// order (from the caller's memo, or [`summarize`] on each), and they are put
/// together with their spans shifted to the file's lines. Equal to `summarize(text)`;
/// a file with a piece that does not parse is summarized whole, so its syntax error
/// is the whole file's.
pub fn summarize_in_pieces(text: &str, summaries: impl FnOnce(&[Piece<'_>]) -> Vec<Arc<Summary>>) -> Summary {
    let pieces = pieces(text);
    if pieces.len() < 2 {
        return summarize(text);
    }
    let parts = summaries(&pieces);
    if parts.iter().any(|part| part.error.is_some()) {
        return summarize(text);
    }
    let mut whole = Summary::default();
    let mut refs = RefTable::default();
    for (Piece { first_line, .. }, part) in pieces.iter().zip(&parts) {
        let shift = |span: Span| Span {
            line: span.line + first_line - 1,
            end_line: span.end_line + first_line - 1,
            ..span
        };
        whole.defs.extend(part.defs.iter().map(|def| Def { span: shift(def.span), ..def.clone() }));
        whole.uses.extend(part.uses.iter().map(|used| Use { span: shift(used.span), ..used.clone() }));
        whole.mods.extend(part.mods.iter().map(|decl| ModDecl { span: shift(decl.span), ..decl.clone() }));
        for module in &part.open {
            if !whole.open.contains(module) {
                whole.open.push(module.clone());
            }
        }
        whole.exports.extend(part.exports.iter().cloned());
        whole.includes.extend(part.includes.iter().cloned());
        whole.templates.extend(part.templates.iter().cloned());
        whole.calls.extend(part.calls.iter().cloned());
        for reference in &part.refs {
            refs.add(
                &reference.module,
                reference.path.clone(),
                reference.spans.iter().map(|&span| shift(span)),
                reference.cfg,
            );
        }
    }
    whole.refs = refs.refs;
    whole
}

/// Type references, one per distinct (module, path), in order of first occurrence.
#[derive(Default)]
struct RefTable {
    refs: Vec<TypeRef>,
    /// Where each (module, path) is in `refs`.
    at: HashMap<(String, Vec<String>), usize>,
}

impl RefTable {
    /// Adds occurrences of `path` written in `module` (under a `#[cfg]`: `cfg`).
    fn add(&mut self, module: &str, path: Vec<String>, spans: impl IntoIterator<Item = Span>, cfg: bool) {
        let refs = &mut self.refs;
        let at = *self.at.entry((module.to_owned(), path)).or_insert_with_key(|(module, path)| {
            refs.push(TypeRef { module: module.clone(), path: path.clone(), spans: Vec::new(), cfg: true });
            refs.len() - 1
        });
        refs[at].spans.extend(spans);
        refs[at].cfg &= cfg;
    }
}

#[derive(Default)]
struct Collector {
    summary: Summary,
    refs: RefTable,
    /// Whether the items being collected sit under a `#[cfg]` (an enclosing inline
    /// module's, or a `cfg_if!` branch).
    cfg: bool,
    /// The generic parameters in scope (type and const), innermost last: type paths
    /// starting with one name no item.
    generics: Vec<String>,
    /// Whether the items being collected are the body of a macro call this
    /// indexer cannot see through.
    opaque: bool,
}

/// An identifier's name without its `r#` (`r#type` is `type`).
fn name_of(ident: &syn::Ident) -> String {
    use syn::ext::IdentExt;
    ident.unraw().to_string()
}

/// Whether `attrs` hold a `#[cfg(…)]`, also as `#[cfg_attr(…, cfg(…))]`.
fn has_cfg(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            || cfg_attr_metas(&attr.meta).iter().any(|meta| meta.path().is_ident("cfg"))
    })
}

/// The attributes a `#[cfg_attr(predicate, a, b, …)]` applies (`a`, `b`, …),
/// through nested `cfg_attr`s; nothing for any other attribute.
fn cfg_attr_metas(meta: &syn::Meta) -> Vec<syn::Meta> {
    fn nested(meta: &syn::Meta, out: &mut Vec<syn::Meta>) {
        let syn::Meta::List(list) = meta else { return };
        if !list.path.is_ident("cfg_attr") {
            return;
        }
        let parser = syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated;
        let Ok(metas) = syn::parse::Parser::parse2(parser, list.tokens.clone()) else { return };
        for meta in metas.into_iter().skip(1) {
            if meta.path().is_ident("cfg_attr") {
                nested(&meta, out);
            } else {
                out.push(meta);
            }
        }
    }
    let mut out = Vec::new();
    nested(meta, &mut out);
    out
}

/// The attributes of an item.
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The derives known to add no names to the module (they write `impl`s only).
const PLAIN_DERIVES: &[&str] = &[
    "Debug",
    "Clone",
    "Copy",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "Hash",
    "Default",
    "Serialize",
    "Deserialize",
    "Error",
];

/// The attributes the compiler itself defines (none adds names), and the tool
/// namespaces (`rustfmt::`, `clippy::`, `diagnostic::`).
const BUILTIN_ATTRIBUTES: &[&str] = &[
    "cfg",
    "cfg_attr",
    "derive",
    "allow",
    "warn",
    "deny",
    "forbid",
    "expect",
    "doc",
    "inline",
    "cold",
    "must_use",
    "deprecated",
    "repr",
    "non_exhaustive",
    "path",
    "macro_export",
    "macro_use",
    "test",
    "ignore",
    "should_panic",
    "bench",
    "automatically_derived",
    "no_mangle",
    "export_name",
    "link_section",
    "link",
    "link_name",
    "used",
    "track_caller",
    "target_feature",
    "proc_macro",
    "proc_macro_derive",
    "proc_macro_attribute",
    "global_allocator",
    "no_implicit_prelude",
    "unsafe",
    "naked",
    "instruction_set",
    "collapse_debuginfo",
    "debugger_visualizer",
    "windows_subsystem",
    "no_link",
    "crate_name",
    "type_length_limit",
    "recursion_limit",
    "rustfmt",
    "clippy",
    "diagnostic",
    "stable",
    "unstable",
    "rustc_const_stable",
    "rustc_const_unstable",
    "coverage",
    "optimize",
    "feature",
    "no_std",
    "no_main",
    "doc_cfg",
];

/// Whether an attribute may add names to the module its item is in: an attribute
/// macro (`#[tokio::main]`, `#[pin_project]`) or a derive this indexer does not know
/// (`#[derive(rkyv::Archive)]` defines `ArchivedT`). Such a module's names cannot
/// all be listed.
fn may_define_names(attr: &syn::Attribute) -> bool {
    meta_may_define_names(&attr.meta)
}

fn meta_may_define_names(meta: &syn::Meta) -> bool {
    let path = meta.path();
    if path.is_ident("derive") {
        let syn::Meta::List(list) = meta else { return true };
        let parser = syn::punctuated::Punctuated::<syn::Path, syn::Token![,]>::parse_terminated;
        let Ok(derives) = syn::parse::Parser::parse2(parser, list.tokens.clone()) else { return true };
        return derives.iter().any(|derive| {
            derive
                .segments
                .last()
                .is_none_or(|last| !PLAIN_DERIVES.contains(&last.ident.to_string().as_str()))
        });
    }
    if path.is_ident("cfg_attr") {
        return cfg_attr_metas(meta).iter().any(meta_may_define_names);
    }
    is_attribute_macro(path)
}

/// Whether an attribute is an attribute macro, which may remove or replace the item
/// it is on: of two items `#[rustversion::beta]` and `#[rustversion::not(beta)]`,
/// one is left, as of two `#[cfg]` twins. (A derive only adds items.)
fn may_replace_item(meta: &syn::Meta) -> bool {
    let path = meta.path();
    if path.is_ident("cfg_attr") {
        return cfg_attr_metas(meta).iter().any(may_replace_item);
    }
    !path.is_ident("derive") && is_attribute_macro(path)
}

/// Whether an attribute's path names a macro rather than a built-in attribute.
fn is_attribute_macro(path: &syn::Path) -> bool {
    let first = path.segments.first().map(|s| s.ident.to_string()).unwrap_or_default();
    !BUILTIN_ATTRIBUTES.contains(&first.as_str())
}

/// The string of a `name = "…"` attribute.
fn string_value(meta: &syn::Meta, name: &str) -> Option<String> {
    match meta {
        syn::Meta::NameValue(syn::MetaNameValue {
            path,
            value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(value), .. }),
            ..
        }) if path.is_ident(name) => Some(value.value()),
        _ => None,
    }
}

/// The generic parameters (types and consts) `generics` declares.
fn generic_names(generics: &syn::Generics) -> Vec<String> {
    generics
        .params
        .iter()
        .filter_map(|param| match param {
            syn::GenericParam::Type(t) => Some(name_of(&t.ident)),
            syn::GenericParam::Const(c) => Some(name_of(&c.ident)),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect()
}

/// The body of a macro call, when it is a sequence of items (`cfg_rt! { mod rt; }`).
fn macro_items(tokens: &proc_macro2::TokenStream) -> Option<Vec<syn::Item>> {
    // `cfg_x!({ items })`: the items are in the one braced group.
    let mut trees = tokens.clone().into_iter();
    if let (Some(proc_macro2::TokenTree::Group(group)), None) = (trees.next(), trees.next())
        && group.delimiter() == proc_macro2::Delimiter::Brace
    {
        return macro_items(&group.stream());
    }
    let parser = |input: syn::parse::ParseStream<'_>| {
        // Inner attributes first (`feature! { #![unix] … }`).
        syn::Attribute::parse_inner(input)?;
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(input.parse::<syn::Item>()?);
        }
        Ok(items)
    };
    syn::parse::Parser::parse2(parser, tokens.clone()).ok().filter(|items| !items.is_empty())
}

/// The body of a `macro_rules!` whose only rule takes nothing: `() => { body }`.
fn empty_rule_body(tokens: &proc_macro2::TokenStream) -> Option<proc_macro2::TokenStream> {
    use proc_macro2::{Delimiter, TokenTree};
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    match trees.as_slice() {
        [
            TokenTree::Group(matcher),
            TokenTree::Punct(eq),
            TokenTree::Punct(gt),
            TokenTree::Group(body),
            rest @ ..,
        ] if matcher.stream().is_empty()
            && matcher.delimiter() != Delimiter::None
            && eq.as_char() == '='
            && gt.as_char() == '>'
            && matches!(rest, [] | [TokenTree::Punct(_)]) =>
        {
            Some(body.stream())
        }
        _ => None,
    }
}

/// The items of a `cfg_if! { if #[cfg(…)] { items } else if … { items } else {
/// items } }` call, every branch's; `None` if a branch does not parse as items.
fn cfg_if_items(tokens: &proc_macro2::TokenStream) -> Option<Vec<syn::Item>> {
    let mut items = Vec::new();
    for tree in tokens.clone() {
        if let proc_macro2::TokenTree::Group(group) = tree
            && group.delimiter() == proc_macro2::Delimiter::Brace
            && !group.stream().is_empty()
        {
            items.extend(macro_items(&group.stream())?);
        }
    }
    Some(items)
}

const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128",
    "usize", "f32", "f64", "Self",
];

impl Collector {
    fn items(&mut self, module: &str, items: &[syn::Item]) {
        for item in items {
            self.item(module, item);
        }
    }

    fn def(
        &mut self,
        module: &str,
        ident: &syn::Ident,
        kind: Kind,
        vis: &syn::Visibility,
        attrs: &[syn::Attribute],
    ) {
        self.summary.defs.push(Def {
            module: module.to_owned(),
            name: name_of(ident),
            kind,
            container: None,
            public: !matches!(vis, syn::Visibility::Inherited),
            cfg: self.conditional(attrs),
            span: Span::of(ident.span()),
        });
    }

    /// Runs `f` with `generics`' parameters in scope.
    fn with_generics(&mut self, generics: &syn::Generics, f: impl FnOnce(&mut Self)) {
        let names = generic_names(generics);
        let depth = self.generics.len();
        self.generics.extend(names);
        f(self);
        self.generics.truncate(depth);
    }

    fn item(&mut self, module: &str, item: &syn::Item) {
        let attrs = item_attrs(item);
        if attrs.iter().any(may_define_names) {
            self.open(module);
        }
        let outer = self.cfg;
        self.cfg |= has_cfg(attrs);
        self.item_inner(module, item);
        self.cfg = outer;
    }

    /// Runs `f` with the `#[cfg]` of an associated item's `attrs` in force.
    fn with_cfg(&mut self, attrs: &[syn::Attribute], f: impl FnOnce(&mut Self)) {
        let outer = self.cfg;
        self.cfg |= has_cfg(attrs);
        f(self);
        self.cfg = outer;
    }

    fn item_inner(&mut self, module: &str, item: &syn::Item) {
        match item {
            syn::Item::Fn(f) => {
                self.def(module, &f.sig.ident, Kind::Function, &f.vis, &f.attrs);
                self.proc_macro(module, &f.sig.ident, &f.attrs);
                self.signature(module, &f.sig);
            }
            syn::Item::Struct(s) => {
                self.def(module, &s.ident, Kind::Struct, &s.vis, &s.attrs);
                self.with_generics(&s.generics, |this| this.fields(module, &s.fields));
            }
            syn::Item::Enum(e) => {
                self.def(module, &e.ident, Kind::Enum, &e.vis, &e.attrs);
                self.with_generics(&e.generics, |this| {
                    for variant in &e.variants {
                        this.fields(module, &variant.fields);
                    }
                });
            }
            syn::Item::Union(u) => {
                self.def(module, &u.ident, Kind::Union, &u.vis, &u.attrs);
                self.with_generics(&u.generics, |this| {
                    for field in &u.fields.named {
                        this.types(module, &field.ty);
                    }
                });
            }
            syn::Item::Trait(t) => {
                self.def(module, &t.ident, Kind::Trait, &t.vis, &t.attrs);
                let container = format!("trait {}", name_of(&t.ident));
                self.with_generics(&t.generics, |this| {
                    for inner in &t.items {
                        match inner {
                            syn::TraitItem::Fn(f) => {
                                this.associated(module, &container, &f.sig.ident, Kind::Method, &f.attrs);
                                this.with_cfg(&f.attrs, |this| this.signature(module, &f.sig));
                            }
                            syn::TraitItem::Const(c) => {
                                this.associated(module, &container, &c.ident, Kind::AssociatedConst, &c.attrs)
                            }
                            syn::TraitItem::Type(t) => {
                                this.associated(module, &container, &t.ident, Kind::AssociatedType, &t.attrs)
                            }
                            _ => {}
                        }
                    }
                });
            }
            syn::Item::Type(t) => {
                self.def(module, &t.ident, Kind::TypeAlias, &t.vis, &t.attrs);
                self.with_generics(&t.generics, |this| this.types(module, &t.ty));
            }
            syn::Item::Const(c) => {
                self.def(module, &c.ident, Kind::Const, &c.vis, &c.attrs);
                self.with_generics(&c.generics, |this| this.types(module, &c.ty));
            }
            syn::Item::Static(s) => {
                self.def(module, &s.ident, Kind::Static, &s.vis, &s.attrs);
                self.types(module, &s.ty);
            }
            // `extern "C" { fn f(); static S: T; type T; }` declares items of the
            // enclosing module.
            syn::Item::ForeignMod(foreign) => {
                for inner in &foreign.items {
                    match inner {
                        syn::ForeignItem::Fn(f) => {
                            self.def(module, &f.sig.ident, Kind::Function, &f.vis, &f.attrs);
                            self.with_cfg(&f.attrs, |this| this.signature(module, &f.sig));
                        }
                        syn::ForeignItem::Static(s) => {
                            self.def(module, &s.ident, Kind::Static, &s.vis, &s.attrs);
                            self.with_cfg(&s.attrs, |this| this.types(module, &s.ty));
                        }
                        syn::ForeignItem::Type(t) => {
                            self.def(module, &t.ident, Kind::TypeAlias, &t.vis, &t.attrs)
                        }
                        // A macro among foreign items may declare anything.
                        _ => self.open(module),
                    }
                }
            }
            syn::Item::ExternCrate(e) => {
                let name = e.rename.as_ref().map_or(&e.ident, |(_, rename)| rename);
                self.def(module, name, Kind::ExternCrate, &e.vis, &e.attrs);
            }
            syn::Item::Macro(m) => match &m.ident {
                Some(name) if m.mac.path.is_ident("macro_rules") => {
                    self.def(module, name, Kind::Macro, &syn::Visibility::Inherited, &m.attrs);
                    let exported = m.attrs.iter().any(|attr| {
                        attr.path().is_ident("macro_export")
                            || cfg_attr_metas(&attr.meta)
                                .iter()
                                .any(|meta| meta.path().is_ident("macro_export"))
                    });
                    // A macro the items of a macro call define may be exported by it
                    // (tokio's `doc! { macro_rules! try_join { … } }`).
                    if exported || self.opaque {
                        self.summary.exports.push((module.to_owned(), name_of(name)));
                    }
                    if let Some(items) = empty_rule_body(&m.mac.tokens).as_ref().and_then(macro_items) {
                        let body = join(module, &format!("{}!", name_of(name)));
                        let first_mod = self.summary.mods.len();
                        let outer = std::mem::replace(&mut self.cfg, true);
                        self.items(&body, &items);
                        self.cfg = outer;
                        let mods = self.summary.mods.split_off(first_mod);
                        let mods = mods
                            .into_iter()
                            .map(|decl| {
                                let inner = decl.module.strip_prefix(body.as_str()).unwrap_or_default();
                                let module = inner.trim_start_matches("::").to_owned();
                                ModDecl { module, span: Span::default(), ..decl }
                            })
                            .collect();
                        self.summary.templates.push(Template { name: name_of(name), body, mods });
                    }
                }
                _ => {
                    let name =
                        m.mac.path.segments.last().map(|last| last.ident.to_string()).unwrap_or_default();
                    if m.mac.tokens.is_empty() && m.mac.path.segments.len() == 1 {
                        self.summary.calls.push((module.to_owned(), name.clone()));
                    }
                    if name == "include"
                        && let Ok(path) = syn::parse2::<syn::LitStr>(m.mac.tokens.clone())
                    {
                        self.summary.includes.push((module.to_owned(), path.value()));
                    }
                    // `compile_error!` and `global_asm!` define no names.
                    if matches!(name.as_str(), "compile_error" | "global_asm") {
                        return;
                    }
                    let items = if name == "cfg_if" {
                        cfg_if_items(&m.mac.tokens)
                    } else {
                        macro_items(&m.mac.tokens)
                    };
                    // `cfg_if!` and `cfg_*!` wrappers (tokio's `cfg_rt!`) only put a
                    // `cfg` on the items they are given, `thread_local!` defines the
                    // statics it is given; any other macro may add names, or do
                    // anything with the items it is given.
                    let transparent = name == "cfg_if" || name.starts_with("cfg_") || name == "thread_local";
                    // An argument-less call opens its module only if it is no template
                    // of the crate: the module tree decides.
                    let call = m.mac.tokens.is_empty() && m.mac.path.segments.len() == 1;
                    if !call && (items.is_none() || !transparent) {
                        self.open(module);
                    }
                    // Items the call is given, under a `cfg` (the macro may drop them).
                    if let Some(items) = items {
                        let outer = (self.cfg, self.opaque);
                        self.cfg = true;
                        self.opaque |= !transparent;
                        self.items(module, &items);
                        (self.cfg, self.opaque) = outer;
                    }
                }
            },
            syn::Item::Impl(i) => self.with_generics(&i.generics, |this| {
                this.types(module, &i.self_ty);
                if let Some((_, path, _)) = &i.trait_ {
                    this.path(module, path);
                }
                let target = type_name(&i.self_ty);
                let container = match &i.trait_ {
                    Some((_, path, _)) => format!("impl {} for {target}", path_text(path)),
                    None => format!("impl {target}"),
                };
                for inner in &i.items {
                    match inner {
                        syn::ImplItem::Fn(f) => {
                            this.associated(module, &container, &f.sig.ident, Kind::Method, &f.attrs);
                            this.with_cfg(&f.attrs, |this| this.signature(module, &f.sig));
                        }
                        syn::ImplItem::Const(c) => {
                            this.associated(module, &container, &c.ident, Kind::AssociatedConst, &c.attrs)
                        }
                        syn::ImplItem::Type(t) => {
                            this.associated(module, &container, &t.ident, Kind::AssociatedType, &t.attrs)
                        }
                        _ => {}
                    }
                }
            }),
            syn::Item::Mod(m) => {
                self.def(module, &m.ident, Kind::Module, &m.vis, &m.attrs);
                let mut paths = Vec::new();
                let mut conditional = Vec::new();
                for attr in &m.attrs {
                    paths.extend(string_value(&attr.meta, "path"));
                    conditional.extend(
                        cfg_attr_metas(&attr.meta).iter().filter_map(|meta| string_value(meta, "path")),
                    );
                }
                let conditional_paths = paths.is_empty() && !conditional.is_empty();
                paths.extend(conditional);
                let cfg = self.cfg || has_cfg(&m.attrs);
                self.summary.mods.push(ModDecl {
                    module: module.to_owned(),
                    name: name_of(&m.ident),
                    inline: m.content.is_some(),
                    paths,
                    conditional_paths,
                    cfg,
                    opaque: self.opaque,
                    span: Span::of(m.ident.span()),
                });
                if let Some((_, items)) = &m.content {
                    let inner = join(module, &name_of(&m.ident));
                    let outer = std::mem::replace(&mut self.cfg, cfg);
                    // Generic parameters do not reach into a module.
                    let generics = std::mem::take(&mut self.generics);
                    self.items(&inner, items);
                    self.generics = generics;
                    self.cfg = outer;
                }
            }
            syn::Item::Use(u) => {
                let mut prefix = Vec::new();
                if u.leading_colon.is_some() {
                    prefix.push("::".to_owned());
                }
                self.use_tree(module, &mut prefix, &u.tree);
            }
            _ => {}
        }
    }

    /// A `#[proc_macro]`, `#[proc_macro_attribute]` or `#[proc_macro_derive(Name)]`
    /// function defines a macro of that name (at its crate's root, where Rust
    /// requires it).
    fn proc_macro(&mut self, module: &str, ident: &syn::Ident, attrs: &[syn::Attribute]) {
        for attr in attrs {
            let name = if attr.path().is_ident("proc_macro") || attr.path().is_ident("proc_macro_attribute") {
                Some(ident.clone())
            } else if attr.path().is_ident("proc_macro_derive") {
                attr.parse_args_with(|input: syn::parse::ParseStream<'_>| {
                    let name: syn::Ident = syn::ext::IdentExt::parse_any(input)?;
                    let _: proc_macro2::TokenStream = input.parse()?;
                    Ok(name)
                })
                .ok()
            } else {
                None
            };
            if let Some(name) = name {
                self.def(module, &name, Kind::Macro, &syn::Visibility::Public(Default::default()), &[]);
            }
        }
    }

    fn associated(
        &mut self,
        module: &str,
        container: &str,
        ident: &syn::Ident,
        kind: Kind,
        attrs: &[syn::Attribute],
    ) {
        self.summary.defs.push(Def {
            module: module.to_owned(),
            name: name_of(ident),
            kind,
            container: Some(container.to_owned()),
            public: true,
            cfg: self.conditional(attrs),
            span: Span::of(ident.span()),
        });
    }

    /// Whether an item with `attrs`, here, may be left out of the build (see
    /// [`Def::cfg`]).
    fn conditional(&self, attrs: &[syn::Attribute]) -> bool {
        self.cfg || has_cfg(attrs) || attrs.iter().any(|attr| may_replace_item(&attr.meta))
    }

    fn open(&mut self, module: &str) {
        if !self.summary.open.iter().any(|open| open == module) {
            self.summary.open.push(module.to_owned());
        }
    }

    fn use_tree(&mut self, module: &str, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(name_of(&path.ident));
                self.use_tree(module, prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let (path, binding) = if name.ident == "self" {
                    (prefix.clone(), prefix.last().cloned())
                } else {
                    let mut path = prefix.clone();
                    path.push(name_of(&name.ident));
                    (path, Some(name_of(&name.ident)))
                };
                self.push_use(module, path, binding, false, tree.span());
            }
            syn::UseTree::Rename(rename) => {
                let mut path = prefix.clone();
                if rename.ident != "self" {
                    path.push(name_of(&rename.ident));
                }
                let binding = (rename.rename != "_").then(|| name_of(&rename.rename));
                self.push_use(module, path, binding, false, tree.span());
            }
            syn::UseTree::Glob(glob) => self.push_use(module, prefix.clone(), None, true, glob.span()),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(module, prefix, tree);
                }
            }
        }
    }

    fn push_use(
        &mut self,
        module: &str,
        path: Vec<String>,
        binding: Option<String>,
        glob: bool,
        span: proc_macro2::Span,
    ) {
        if path.is_empty() {
            return;
        }
        let cfg = self.cfg;
        self.summary.uses.push(Use {
            module: module.to_owned(),
            path,
            binding,
            glob,
            cfg,
            span: Span::of(span),
        });
    }

    fn signature(&mut self, module: &str, sig: &syn::Signature) {
        self.with_generics(&sig.generics, |this| {
            for input in &sig.inputs {
                if let syn::FnArg::Typed(typed) = input {
                    this.types(module, &typed.ty);
                }
            }
            if let syn::ReturnType::Type(_, ty) = &sig.output {
                this.types(module, ty);
            }
        });
    }

    fn fields(&mut self, module: &str, fields: &syn::Fields) {
        for field in fields {
            self.types(module, &field.ty);
        }
    }

    fn types(&mut self, module: &str, ty: &syn::Type) {
        TypePaths { collector: self, module }.visit_type(ty);
    }

    fn path(&mut self, module: &str, path: &syn::Path) {
        TypePaths { collector: self, module }.visit_path(path);
    }
}

/// Collects every type path inside a type, generic arguments included.
struct TypePaths<'c> {
    collector: &'c mut Collector,
    module: &'c str,
}

impl<'ast> Visit<'ast> for TypePaths<'_> {
    fn visit_type_path(&mut self, ty: &'ast syn::TypePath) {
        if ty.qself.is_none() {
            self.visit_path(&ty.path);
        } else {
            syn::visit::visit_type_path(self, ty);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|segment| name_of(&segment.ident)).collect();
        let primitive = segments.len() == 1 && PRIMITIVES.contains(&segments[0].as_str());
        let generic = path.leading_colon.is_none()
            && segments.first().is_some_and(|first| self.collector.generics.contains(first));
        if let (Some(last), false, false) = (path.segments.last(), primitive, generic) {
            let mut full = segments;
            if path.leading_colon.is_some() {
                full.insert(0, "::".to_owned());
            }
            let cfg = self.collector.cfg;
            self.collector.refs.add(self.module, full, [Span::of(last.ident.span())], cfg);
        }
        syn::visit::visit_path(self, path);
    }

    // Array lengths and const arguments are expressions, not type paths.
    fn visit_expr(&mut self, _: &'ast syn::Expr) {}

    // A macro in type position names a macro, not a type.
    fn visit_macro(&mut self, _: &'ast syn::Macro) {}
}

/// `a::b` + `c` = `a::b::c`; `""` + `c` = `c`.
pub fn join(module: &str, name: &str) -> String {
    if module.is_empty() { name.to_owned() } else { format!("{module}::{name}") }
}

fn path_text(path: &syn::Path) -> String {
    path.segments.iter().map(|segment| name_of(&segment.ident)).collect::<Vec<_>>().join("::")
}

fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(path) => path_text(&path.path),
        syn::Type::Reference(reference) => type_name(&reference.elem),
        _ => "_".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_items_uses_mods_and_refs() {
        let summary = summarize(
            "use std::{fmt, io::*};\nmod a;\npub mod b { pub struct S(T); }\nfn f(x: b::S) -> Vec<Q> { 1 }\n",
        );
        assert_eq!(summary.error, None);
        let names: Vec<_> = summary.defs.iter().map(|d| (d.module.as_str(), d.name.as_str())).collect();
        assert_eq!(names, [("", "a"), ("", "b"), ("b", "S"), ("", "f")]);
        assert_eq!(summary.uses.len(), 2);
        // A glob import is followed, not a module left open.
        assert!(summary.open.is_empty());
        assert_eq!(summary.mods.len(), 2);
        assert!(summary.refs.iter().any(|r| r.path == ["b", "S"]));
    }

    #[test]
    fn repeated_type_paths_are_one_ref_with_every_span() {
        let summary = summarize("fn f(a: T, b: Vec<T>) -> T { a }\nmod m { fn g(c: T) {} }\n");
        let refs: Vec<_> =
            summary.refs.iter().map(|r| (r.module.as_str(), r.path.join("::"), r.spans.len())).collect();
        assert_eq!(refs, [("", "T".to_owned(), 3), ("", "Vec".to_owned(), 1), ("m", "T".to_owned(), 1)]);
        let columns: Vec<u32> = summary.refs[0].spans.iter().map(|span| span.column).collect();
        assert_eq!(columns, [8, 18, 25]);
    }

    #[test]
    fn pieces_are_whole_items_with_their_attributes() {
        let text = "//! Crate docs.\n#![allow(x)]\nuse a::{b,\n  c};\n/// Docs.\n#[derive(Debug)]\nstruct S { x: u8 }\nfn f() -> &'static str { let c = '}'; \"}\" } // }\n/* { */ const N: [u8; 2] = [1, 2];\nmacro_rules! m { () => { r#\"}\"# } }\nfn g<'a>(x: &'a u8) -> u8 { b'{' + *x }\n";
        let cut: Vec<(u32, &str)> = pieces(text).iter().map(|p| (p.first_line, p.text)).collect();
        assert_eq!(
            cut,
            [
                (1, "//! Crate docs.\n#![allow(x)]\nuse a::{b,\n  c};\n"),
                (5, "/// Docs.\n#[derive(Debug)]\nstruct S { x: u8 }\n"),
                (8, "fn f() -> &'static str { let c = '}'; \"}\" } // }\n"),
                (9, "/* { */ const N: [u8; 2] = [1, 2];\n"),
                (10, "macro_rules! m { () => { r#\"}\"# } }\n"),
                (11, "fn g<'a>(x: &'a u8) -> u8 { b'{' + *x }\n"),
            ]
        );
        // Unbalanced text is one piece.
        assert_eq!(pieces("fn f() {\n}\n}\nfn g() {}\n").len(), 1);
    }

    #[test]
    fn summaries_in_pieces_equal_whole_file_summaries() {
        let plain = |pieces: &[Piece<'_>]| pieces.iter().map(|p| Arc::new(summarize(p.text))).collect();
        let broken = "fn f() {}\nfn g( {}\nfn h() {}\n";
        assert_eq!(summarize_in_pieces(broken, plain), summarize(broken));
        // Every Rust file of this repository.
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
        let mut files = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable directory").flatten() {
                let path = entry.path();
                let name = entry.file_name();
                if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
                    dirs.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    let text = std::fs::read_to_string(&path).expect("readable file");
                    assert_eq!(summarize_in_pieces(&text, plain), summarize(&text), "{}", path.display());
                    files += 1;
                }
            }
        }
        assert!(files > 50, "only {files} files found");
    }
}
