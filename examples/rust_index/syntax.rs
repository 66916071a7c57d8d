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
    /// Whether a `#[cfg]` attribute guards it (two such items may share a name).
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
    /// Its `#[path = "…"]` attribute, if any.
    pub path_attr: Option<String>,
    /// The span of its name.
    pub span: Span,
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
    /// hold a glob import or an item-level macro call.
    pub open: Vec<String>,
    /// The syntax error, if the file does not parse (then nothing else is known).
    pub error: Option<SyntaxError>,
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
        Err(error) => Summary {
            error: Some(SyntaxError { message: error.to_string(), span: Span::of(error.span()) }),
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
        for reference in &part.refs {
            refs.add(
                &reference.module,
                reference.path.clone(),
                reference.spans.iter().map(|&span| shift(span)),
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
    /// Adds occurrences of `path` written in `module`.
    fn add(&mut self, module: &str, path: Vec<String>, spans: impl IntoIterator<Item = Span>) {
        let refs = &mut self.refs;
        let at = *self.at.entry((module.to_owned(), path)).or_insert_with_key(|(module, path)| {
            refs.push(TypeRef { module: module.clone(), path: path.clone(), spans: Vec::new() });
            refs.len() - 1
        });
        refs[at].spans.extend(spans);
    }
}

#[derive(Default)]
struct Collector {
    summary: Summary,
    refs: RefTable,
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
            name: ident.to_string(),
            kind,
            container: None,
            public: !matches!(vis, syn::Visibility::Inherited),
            cfg: attrs.iter().any(|attr| attr.path().is_ident("cfg")),
            span: Span::of(ident.span()),
        });
    }

    fn item(&mut self, module: &str, item: &syn::Item) {
        match item {
            syn::Item::Fn(f) => {
                self.def(module, &f.sig.ident, Kind::Function, &f.vis, &f.attrs);
                self.signature(module, &f.sig);
            }
            syn::Item::Struct(s) => {
                self.def(module, &s.ident, Kind::Struct, &s.vis, &s.attrs);
                self.fields(module, &s.fields);
            }
            syn::Item::Enum(e) => {
                self.def(module, &e.ident, Kind::Enum, &e.vis, &e.attrs);
                for variant in &e.variants {
                    self.fields(module, &variant.fields);
                }
            }
            syn::Item::Union(u) => {
                self.def(module, &u.ident, Kind::Union, &u.vis, &u.attrs);
                for field in &u.fields.named {
                    self.types(module, &field.ty);
                }
            }
            syn::Item::Trait(t) => {
                self.def(module, &t.ident, Kind::Trait, &t.vis, &t.attrs);
                let container = format!("trait {}", t.ident);
                for inner in &t.items {
                    match inner {
                        syn::TraitItem::Fn(f) => {
                            self.associated(module, &container, &f.sig.ident, Kind::Method, &f.attrs);
                            self.signature(module, &f.sig);
                        }
                        syn::TraitItem::Const(c) => {
                            self.associated(module, &container, &c.ident, Kind::AssociatedConst, &c.attrs)
                        }
                        syn::TraitItem::Type(t) => {
                            self.associated(module, &container, &t.ident, Kind::AssociatedType, &t.attrs)
                        }
                        _ => {}
                    }
                }
            }
            syn::Item::Type(t) => {
                self.def(module, &t.ident, Kind::TypeAlias, &t.vis, &t.attrs);
                self.types(module, &t.ty);
            }
            syn::Item::Const(c) => {
                self.def(module, &c.ident, Kind::Const, &c.vis, &c.attrs);
                self.types(module, &c.ty);
            }
            syn::Item::Static(s) => {
                self.def(module, &s.ident, Kind::Static, &s.vis, &s.attrs);
                self.types(module, &s.ty);
            }
            syn::Item::ExternCrate(e) => {
                let name = e.rename.as_ref().map_or(&e.ident, |(_, rename)| rename);
                self.def(module, name, Kind::ExternCrate, &e.vis, &e.attrs);
            }
            syn::Item::Macro(m) => match &m.ident {
                Some(name) if m.mac.path.is_ident("macro_rules") => {
                    self.def(module, name, Kind::Macro, &syn::Visibility::Inherited, &m.attrs)
                }
                _ => self.open(module),
            },
            syn::Item::Impl(i) => {
                self.types(module, &i.self_ty);
                if let Some((_, path, _)) = &i.trait_ {
                    self.path(module, path);
                }
                let target = type_name(&i.self_ty);
                let container = match &i.trait_ {
                    Some((_, path, _)) => format!("impl {} for {target}", path_text(path)),
                    None => format!("impl {target}"),
                };
                for inner in &i.items {
                    match inner {
                        syn::ImplItem::Fn(f) => {
                            self.associated(module, &container, &f.sig.ident, Kind::Method, &f.attrs);
                            self.signature(module, &f.sig);
                        }
                        syn::ImplItem::Const(c) => {
                            self.associated(module, &container, &c.ident, Kind::AssociatedConst, &c.attrs)
                        }
                        syn::ImplItem::Type(t) => {
                            self.associated(module, &container, &t.ident, Kind::AssociatedType, &t.attrs)
                        }
                        _ => {}
                    }
                }
            }
            syn::Item::Mod(m) => {
                self.def(module, &m.ident, Kind::Module, &m.vis, &m.attrs);
                let path_attr = m.attrs.iter().find(|attr| attr.path().is_ident("path")).and_then(|attr| {
                    match &attr.meta {
                        syn::Meta::NameValue(syn::MetaNameValue {
                            value: syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(path), .. }),
                            ..
                        }) => Some(path.value()),
                        _ => None,
                    }
                });
                self.summary.mods.push(ModDecl {
                    module: module.to_owned(),
                    name: m.ident.to_string(),
                    inline: m.content.is_some(),
                    path_attr,
                    span: Span::of(m.ident.span()),
                });
                if let Some((_, items)) = &m.content {
                    let inner = join(module, &m.ident.to_string());
                    self.items(&inner, items);
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
            name: ident.to_string(),
            kind,
            container: Some(container.to_owned()),
            public: true,
            cfg: attrs.iter().any(|attr| attr.path().is_ident("cfg")),
            span: Span::of(ident.span()),
        });
    }

    fn open(&mut self, module: &str) {
        if !self.summary.open.iter().any(|open| open == module) {
            self.summary.open.push(module.to_owned());
        }
    }

    fn use_tree(&mut self, module: &str, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(module, prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let (path, binding) = if name.ident == "self" {
                    (prefix.clone(), prefix.last().cloned())
                } else {
                    let mut path = prefix.clone();
                    path.push(name.ident.to_string());
                    (path, Some(name.ident.to_string()))
                };
                self.push_use(module, path, binding, false, tree.span());
            }
            syn::UseTree::Rename(rename) => {
                let mut path = prefix.clone();
                if rename.ident != "self" {
                    path.push(rename.ident.to_string());
                }
                let binding = (rename.rename != "_").then(|| rename.rename.to_string());
                self.push_use(module, path, binding, false, tree.span());
            }
            syn::UseTree::Glob(glob) => {
                self.open(module);
                self.push_use(module, prefix.clone(), None, true, glob.span());
            }
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
        self.summary.uses.push(Use { module: module.to_owned(), path, binding, glob, span: Span::of(span) });
    }

    fn signature(&mut self, module: &str, sig: &syn::Signature) {
        for input in &sig.inputs {
            if let syn::FnArg::Typed(typed) = input {
                self.types(module, &typed.ty);
            }
        }
        if let syn::ReturnType::Type(_, ty) = &sig.output {
            self.types(module, ty);
        }
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
        let segments: Vec<String> = path.segments.iter().map(|segment| segment.ident.to_string()).collect();
        let primitive = segments.len() == 1 && PRIMITIVES.contains(&segments[0].as_str());
        if let (Some(last), false) = (path.segments.last(), primitive) {
            let mut full = segments;
            if path.leading_colon.is_some() {
                full.insert(0, "::".to_owned());
            }
            self.collector.refs.add(self.module, full, [Span::of(last.ident.span())]);
        }
        syn::visit::visit_path(self, path);
    }
}

/// `a::b` + `c` = `a::b::c`; `""` + `c` = `c`.
pub fn join(module: &str, name: &str) -> String {
    if module.is_empty() { name.to_owned() } else { format!("{module}::{name}") }
}

fn path_text(path: &syn::Path) -> String {
    path.segments.iter().map(|segment| segment.ident.to_string()).collect::<Vec<_>>().join("::")
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
        assert_eq!(summary.open, [""]);
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
