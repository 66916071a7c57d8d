//! The language rules both pipelines share, written once over small traits so each
//! pipeline can answer the questions from its own storage (and so record what it
//! read): which files form a crate's module tree, what a path resolves to, and which
//! diagnostics a file gets.
//!
//! The rules are a language server's first approximation of Rust's: modules come from
//! the crate roots Cargo builds and their `mod` declarations (with `#[path]`, also
//! under `cfg_attr`); paths resolve through `crate`, `self`, `super`, the package's
//! dependencies, the names items and imports define, glob imports into workspace
//! modules, `#[macro_export]` macros at crate roots and the standard prelude. The
//! index is cfg-blind (it keeps the items of every configuration), so a name missing
//! where a macro may define names, or in code under a `cfg`, is unknown, not an error.

#![allow(dead_code)]

use super::syntax::{Def, Kind, ModDecl, Span, SyntaxError, Template};

/// The root module of the module `path` (`crate::a::b` → `crate`).
pub fn root_of(path: &str) -> &str {
    path.split("::").next().unwrap_or(path)
}

/// The parent of module `path`, if it has one.
pub fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once("::").map(|(parent, _)| parent)
}

/// What the module tree reads of a file: its `mod` declarations and its
/// `#[macro_export]` macros (as (inline module, name)).
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Outline {
    /// Its `mod` declarations, in source order.
    pub mods: Vec<ModDecl>,
    /// Its exported macros.
    pub exports: Vec<(String, String)>,
    /// The files it `include!`s: (inline module, path as written).
    pub includes: Vec<(String, String)>,
    /// Its argument-less `macro_rules!` templates.
    pub templates: Vec<Template>,
    /// Its argument-less item-level macro calls: (inline module, name).
    pub calls: Vec<(String, String)>,
}

/// A crate's module tree.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ModuleTree {
    /// Each module: its path, the file it is in and its inline path in that file;
    /// a module a `cfg` picks among several files has one entry per file, and a
    /// module that calls a template has one for the template's body too.
    pub modules: Vec<(String, u32, String)>,
    /// Each file reached: the module path of its top, whether it is reached only
    /// through `#[cfg]`-guarded `mod`s (then Cargo may never build it), and whether
    /// it is quiet: `include!`d, or declared by a macro call this indexer cannot
    /// see through (its names live in a scope it cannot follow: no diagnostics).
    pub files: Vec<(u32, String, bool, bool)>,
    /// Each `mod name;` whose file does not exist: (file, index among the file's
    /// `mods`, message).
    pub missing: Vec<(u32, u32, String)>,
    /// Each `#[macro_export]` macro, at its crate's root: (root module, name, file,
    /// inline module), sorted.
    pub macros: Vec<(String, String, u32, String)>,
    /// Each (file, inline module) holding an argument-less macro call that is no
    /// template of the crate: its names cannot all be listed. Sorted.
    pub unexpanded: Vec<(u32, String)>,
}

/// Builds the module tree of one package from its files (relative path → file id,
/// sorted by path), its crate roots ((path, root module)) and, for the files it
/// reaches, their outlines.
pub fn module_tree(
    files: &[(String, u32)],
    roots: &[(String, String)],
    mut outline_of: impl FnMut(u32) -> Outline,
) -> ModuleTree {
    let id_of = |path: &str| files.binary_search_by(|(p, _)| p.as_str().cmp(path)).ok().map(|i| files[i].1);
    let mut tree = ModuleTree::default();
    let mut reached = std::collections::HashSet::new();
    let mut queue = std::collections::VecDeque::new();
    for (path, root) in roots {
        if let Some(file) = id_of(path) {
            queue.push_back((path.clone(), file, root.clone(), true, false, false));
        }
    }
    // Argument-less macro calls waiting for their template (a `macro_rules!` of the
    // crate, perhaps in a file not reached yet): (file, its path, its module, whether
    // it owns its directory, guarded, quiet, inline module, macro name).
    type Call = (u32, String, String, bool, bool, bool, String, String);
    let mut calls: Vec<Call> = Vec::new();
    let mut templates: std::collections::HashMap<(String, String), (u32, Template)> = Default::default();
    // `owns_dir`: a crate root, a `mod.rs` or a file a `#[path]` names, whose child
    // modules live beside it rather than in a directory named after it.
    loop {
        while let Some((path, file, module, owns_dir, guarded, quiet)) = queue.pop_front() {
            if !reached.insert(file) {
                continue;
            }
            tree.files.push((file, module.clone(), guarded, quiet));
            tree.modules.push((module.clone(), file, String::new()));
            let (dir, children) = dirs_of(&path, owns_dir);
            let outline = outline_of(file);
            let root = root_of(&module).to_owned();
            for template in outline.templates {
                templates.entry((root.clone(), template.name.clone())).or_insert((file, template));
            }
            for (inline, name) in outline.calls {
                calls.push((file, path.clone(), module.clone(), owns_dir, guarded, quiet, inline, name));
            }
            for (inline, name) in outline.exports {
                tree.macros.push((root.clone(), name, file, inline));
            }
            for (inline, included) in &outline.includes {
                let module_path =
                    if inline.is_empty() { module.clone() } else { format!("{module}::{inline}") };
                if let Some(candidate) = normalize(&join_dir(dir, included))
                    && let Some(child) = id_of(&candidate)
                {
                    queue.push_back((candidate, child, module_path, true, guarded, true));
                }
            }
            for (index, decl) in outline.mods.iter().enumerate() {
                let inline_path = super::syntax::join(&decl.module, &decl.name);
                let module_path = format!("{module}::{inline_path}");
                if decl.inline {
                    tree.modules.push((module_path, file, inline_path));
                    continue;
                }
                let base = decl
                    .module
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .fold(children.clone(), |d, s| join_dir(&d, s));
                let attr_base = if decl.module.is_empty() { dir } else { base.as_str() };
                // A `#[path]` leaving the package names a file this package does not own.
                let mut found: Vec<(String, u32, bool)> = decl
                    .paths
                    .iter()
                    .filter_map(|attr| normalize(&join_dir(attr_base, attr)))
                    .filter_map(|candidate| id_of(&candidate).map(|id| (candidate, id, true)))
                    .collect();
                if !decl.conditional_paths {
                    found.truncate(1);
                }
                let defaults = [format!("{}.rs", decl.name), format!("{}/mod.rs", decl.name)]
                    .map(|name| normalize(&join_dir(&base, &name)).unwrap_or_default());
                if decl.paths.is_empty() || decl.conditional_paths {
                    found.extend(defaults.iter().find_map(|c| id_of(c).map(|id| (c.clone(), id, false))));
                }
                if found.is_empty() && decl.paths.is_empty() && !decl.cfg {
                    let message = format!(
                        "unresolved module `{}`: no file {}",
                        decl.name,
                        defaults.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" or ")
                    );
                    tree.missing.push((file, index as u32, message));
                }
                for (candidate, child, by_attr) in found {
                    queue.push_back((
                        candidate,
                        child,
                        module_path.clone(),
                        by_attr,
                        guarded || decl.cfg,
                        quiet || decl.opaque,
                    ));
                }
            }
        }
        // A call puts its template's items in the calling module's scope, and
        // declares its `mod`s as if the calling file did.
        let mut expanded = false;
        for (file, path, module, owns_dir, guarded, quiet, inline, name) in std::mem::take(&mut calls) {
            let Some((defined_in, template)) = templates.get(&(root_of(&module).to_owned(), name.clone()))
            else {
                calls.push((file, path, module, owns_dir, guarded, quiet, inline, name));
                continue;
            };
            let calling_module =
                if inline.is_empty() { module.clone() } else { format!("{module}::{inline}") };
            tree.modules.push((calling_module, *defined_in, template.body.clone()));
            let (_, children) = dirs_of(&path, owns_dir);
            for decl in &template.mods {
                let decl_module = super::syntax::join(&inline, &decl.module);
                let inline_path = super::syntax::join(&decl_module, &decl.name);
                let module_path = format!("{module}::{inline_path}");
                if decl.inline {
                    // Its items are in the template's body.
                    let in_body = super::syntax::join(&decl.module, &decl.name);
                    let in_body = super::syntax::join(&template.body, &in_body);
                    tree.modules.push((module_path, *defined_in, in_body));
                    continue;
                }
                let base = decl_module
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .fold(children.clone(), |d, s| join_dir(&d, s));
                let candidates = [format!("{}.rs", decl.name), format!("{}/mod.rs", decl.name)];
                if let Some((candidate, child)) = candidates
                    .iter()
                    .filter_map(|name| normalize(&join_dir(&base, name)))
                    .find_map(|candidate| id_of(&candidate).map(|id| (candidate, id)))
                {
                    // The macro is the crate's own and declares the `mod` as written.
                    queue.push_back((candidate, child, module_path, false, guarded || decl.cfg, quiet));
                    expanded = true;
                }
            }
        }
        if !expanded {
            break;
        }
    }
    tree.unexpanded = calls.into_iter().map(|(file, .., inline, _)| (file, inline)).collect();
    tree.unexpanded.sort();
    tree.unexpanded.dedup();
    tree.modules.sort();
    tree.modules.dedup();
    tree.files.sort();
    tree.macros.sort();
    // A macro defined twice (under different `cfg`s): the first answers.
    tree.macros.dedup_by(|a, b| (&a.0, &a.1) == (&b.0, &b.1));
    tree
}

/// The directory of the module file at `path`, and the directory its child modules'
/// files are in: the same for a file that owns its directory (a crate root, a
/// `mod.rs`, a file a `#[path]` names), else the one named after the file.
fn dirs_of(path: &str, owns_dir: bool) -> (&str, String) {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let stem = name.trim_end_matches(".rs");
    let children = if owns_dir || stem == "mod" { dir.to_owned() } else { join_dir(dir, stem) };
    (dir, children)
}

fn join_dir(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

/// Resolves `.` and `..` components; `None` if the path leaves the package.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// What a name in a module's scope is, as far as resolution cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub enum Lookup {
    /// An item of this kind.
    Def(Kind),
    /// A name a `use` binds.
    Import,
    /// Nothing of that name.
    #[default]
    Nothing,
}

/// What a package's manifest says that resolution needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PackageFacts {
    /// The edition (2015 resolves `use` paths from the crate root).
    pub edition: u16,
    /// Whether it has a manifest (without one, any crate name is accepted).
    pub declared: bool,
    /// Whether a dependency's library name is not known (then a name that is no
    /// known crate may still be that dependency's).
    pub unverified: bool,
}

/// A crate a package's code may name: the workspace package it is (`None` when the
/// workspace does not hold it) and the tables declaring it
/// ([`dep_kind`](super::manifest::dep_kind) bits).
pub type Dependency = (Option<u32>, u8);

/// A glob import (`use a::b::*`): the path it imports from, and whether a `#[cfg]`
/// guards it (then what it brings may be one configuration's item of a name that
/// another configuration's glob brings too).
pub type Glob = (Vec<String>, bool);

/// The questions resolution asks of a pipeline's storage.
pub trait Scopes {
    /// The file and inline path of module `path` of `package`: several when a
    /// `cfg` picks among files, none when there is no such module.
    fn module(&mut self, package: u32, path: &str) -> Vec<(u32, String)>;
    /// What `name` is in the scope of inline module `inline` of `file`.
    fn lookup(&mut self, file: u32, inline: &str, name: &str) -> Lookup;
    /// Whether that module may hold names nobody can list (a macro call, an
    /// attribute macro or derive that may define names, a syntax error).
    fn is_open(&mut self, file: u32, inline: &str) -> bool;
    /// The paths that module's glob imports (`use a::b::*`) import from.
    fn globs(&mut self, file: u32, inline: &str) -> Vec<Glob>;
    /// The crate `package`'s code names `name`, if its manifest declares one.
    fn dependency(&mut self, package: u32, name: &str) -> Option<Dependency>;
    /// Where the `#[macro_export]` macro `name` of the crate rooted at `root` of
    /// `package` is defined: (file, inline module).
    fn exported_macro(&mut self, package: u32, root: &str, name: &str) -> Option<(u32, String)>;
    /// What `package`'s manifest says.
    fn facts(&mut self, package: u32) -> PackageFacts;
    /// The memo of the resolution pass these scopes serve (one file's paths):
    /// a pass asks the same questions again and again, and the answers depend
    /// only on what it read.
    fn memo(&mut self) -> &mut ResolutionMemo;
}

/// What a resolution pass has worked out already: what each glob import names and
/// what a module holds under a name (libc's platform modules import each other's
/// items by globs, many deep, and every path of a file walks them again).
#[derive(Default)]
pub struct ResolutionMemo {
    /// (package, module, file, inline module, glob path) → what the path resolves
    /// to there. Depth is not part of the key: a walk cut short ends open
    /// (unknown), never in an error, so an answer found at any depth is safe.
    globs: std::collections::HashMap<(u32, String, u32, String, Vec<String>), Resolution>,
    /// (package, module, name) → what the name is in that module.
    names: std::collections::HashMap<(u32, String, String), Found>,
}

/// What a path resolved to.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum Resolution {
    /// An item: its file, inline module and name.
    Def { file: u32, module: String, name: String },
    /// A module of a workspace package.
    Module { package: u32, path: String },
    /// A name another `use` binds (re-exports are followed on demand).
    Import { file: u32, module: String, name: String },
    /// A crate outside the workspace that the package may name (`std`, a
    /// dependency the workspace does not hold), or a name of the standard prelude.
    External,
    /// Something this approximation cannot decide (a glob, a macro, `Self`).
    Unknown,
    /// Segment `segment` of the path names nothing.
    Unresolved { segment: u32 },
}

/// Where a path is written: its package, module path, file and inline path.
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    /// The package.
    pub package: u32,
    /// The module path (`crate::a::b`).
    pub module: &'a str,
    /// The file.
    pub file: u32,
    /// The inline path inside the file.
    pub inline: &'a str,
    /// Whether a `#[cfg]` guards the path (on its item, an enclosing module, or a
    /// `mod` on the way to its file): it is compiled only in a configuration this
    /// cfg-blind index does not model.
    pub cfg: bool,
    /// Whether it is a type path (a single segment there is never a crate).
    pub ty: bool,
}

/// The names of the standard prelude (edition 2024's, which holds the earlier
/// ones) that a path may start with.
pub const PRELUDE: &[&str] = &[
    "Copy",
    "Send",
    "Sized",
    "Sync",
    "Unpin",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "AsyncFn",
    "AsyncFnMut",
    "AsyncFnOnce",
    "Box",
    "ToOwned",
    "Clone",
    "PartialEq",
    "PartialOrd",
    "Eq",
    "Ord",
    "AsRef",
    "AsMut",
    "Into",
    "From",
    "Default",
    "Iterator",
    "Extend",
    "IntoIterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "Option",
    "Some",
    "None",
    "Result",
    "Ok",
    "Err",
    "String",
    "ToString",
    "Vec",
    "TryFrom",
    "TryInto",
    "FromIterator",
    "Future",
    "IntoFuture",
];

/// A crate name, as the code of `site` may use it.
enum Extern {
    /// A workspace package.
    Package(u32),
    /// A crate outside the workspace.
    Outside,
    /// No crate of that name.
    Missing,
    /// No known crate of that name, but a dependency's name is not known.
    Unknown,
}

fn extern_crate(scopes: &mut impl Scopes, site: Site<'_>, name: &str) -> Extern {
    let library = root_of(site.module) == "crate";
    if let Some((target, kinds)) = scopes.dependency(site.package, name) {
        // A library names itself only through `crate` (or an `extern crate self`).
        let own_only = kinds == super::manifest::dep_kind::OWN_LIB;
        if !(library && own_only) {
            return target.map_or(Extern::Outside, Extern::Package);
        }
    }
    if super::manifest::BUILTIN_CRATES.contains(&name) {
        return Extern::Outside;
    }
    // `extern crate name;` at the root puts `name` in the extern prelude.
    for (file, inline) in scopes.module(site.package, root_of(site.module)) {
        if scopes.lookup(file, &inline, name) == Lookup::Def(Kind::ExternCrate) {
            return Extern::Outside;
        }
    }
    let facts = scopes.facts(site.package);
    if !facts.declared {
        return Extern::Outside;
    }
    // Platform code (under a `cfg`) may name a platform dependency whose library
    // name is not known.
    if facts.unverified && site.cfg { Extern::Unknown } else { Extern::Missing }
}

/// Resolves `path` written at `site`.
pub fn resolve(scopes: &mut impl Scopes, site: Site<'_>, path: &[String]) -> Resolution {
    resolve_within(scopes, site, path, GLOB_DEPTH)
}

/// How many glob imports deep resolution follows a name.
const GLOB_DEPTH: u32 = 4;

/// What a name is in a module: found (as what, in which file and inline module, in
/// which module of which package), maybe defined where nobody can list names (a
/// macro, a glob from outside the workspace), or nowhere. A name found `tentative`ly
/// came through a glob under a `#[cfg]` or in a module a macro may add names to:
/// what the glob brings may be another configuration's item of that name.
#[derive(Clone)]
enum Found {
    At { lookup: Lookup, file: u32, inline: String, package: u32, module: String, tentative: bool },
    Open,
    Nothing,
}

/// Where resolution goes after looking a segment up.
enum Next {
    /// Into a module: its package and path, and whether it was found tentatively
    /// (then a name missing inside it is unknown, not an error).
    Into(u32, String, bool),
    /// Nowhere further: the path names this.
    Done(Resolution),
    /// The name is not there (`open`: but something may define it there).
    Missing { open: bool },
}

impl Found {
    /// Where resolution goes once segment `name` is found (or not) like this.
    fn next(self, name: &str) -> Next {
        match self {
            Found::At { lookup: Lookup::Def(Kind::Module), package, module, tentative, .. } => {
                Next::Into(package, format!("{module}::{name}"), tentative)
            }
            Found::At { lookup: Lookup::Def(_), file, inline, .. } => {
                Next::Done(Resolution::Def { file, module: inline, name: name.to_owned() })
            }
            Found::At { file, inline, .. } => {
                Next::Done(Resolution::Import { file, module: inline, name: name.to_owned() })
            }
            Found::Open => Next::Missing { open: true },
            Found::Nothing => Next::Missing { open: false },
        }
    }
}

/// Looks `name` up in module `module` of `package` (at `places`: the file and inline
/// path of each file a `cfg` may pick), then through its glob imports into
/// workspace modules, `depth` globs deep.
fn find(
    scopes: &mut impl Scopes,
    package: u32,
    module: &str,
    places: &[(u32, String)],
    name: &str,
    visited: &mut std::collections::HashSet<(u32, String)>,
    depth: u32,
) -> Found {
    // A macro answers only where no other item has its name (macros are a
    // namespace of their own: `crate::base::Item` with a `macro_rules! base`).
    let mut macro_at = None;
    for (file, inline) in places {
        let lookup = scopes.lookup(*file, inline, name);
        let at = || Found::At {
            lookup,
            file: *file,
            inline: inline.clone(),
            package,
            module: module.to_owned(),
            tentative: false,
        };
        match lookup {
            Lookup::Nothing => {}
            Lookup::Def(Kind::Macro) => {
                macro_at.get_or_insert_with(at);
            }
            _ => return at(),
        }
    }
    if let Some(found) = macro_at {
        return found;
    }
    // A crate root also holds the crate's `#[macro_export]` macros.
    if !module.contains("::")
        && let Some((file, inline)) = scopes.exported_macro(package, module, name)
    {
        let lookup = Lookup::Def(Kind::Macro);
        return Found::At { lookup, file, inline, package, module: module.to_owned(), tentative: false };
    }
    let mut open = false;
    for (file, inline) in places {
        if !visited.insert((*file, inline.clone())) {
            continue;
        }
        // Globs are followed in an open module too: a name they bring is there,
        // whatever the module's macros add.
        open |= scopes.is_open(*file, inline);
        for (glob, guarded) in scopes.globs(*file, inline) {
            if depth == 0 {
                open = true;
                continue;
            }
            let key = (package, module.to_owned(), *file, inline.clone(), glob);
            let target = match scopes.memo().globs.get(&key) {
                Some(target) => target.clone(),
                None => {
                    let site = Site { package, module, file: *file, inline, cfg: false, ty: false };
                    let target = resolve_within(scopes, site, &key.4, depth - 1);
                    scopes.memo().globs.insert(key, target.clone());
                    target
                }
            };
            match target {
                Resolution::Module { package: target, path } => {
                    let places = scopes.module(target, &path);
                    match find(scopes, target, &path, &places, name, visited, depth - 1) {
                        Found::Nothing => {}
                        Found::Open => open = true,
                        Found::At { lookup, file, inline, package, module, tentative } => {
                            let tentative = tentative || open || guarded;
                            return Found::At { lookup, file, inline, package, module, tentative };
                        }
                    }
                }
                // Reported where it is written.
                Resolution::Unresolved { .. } => {}
                // An enum's variants, a crate outside the workspace, anything unknown.
                _ => open = true,
            }
        }
    }
    if open { Found::Open } else { Found::Nothing }
}

fn resolve_within(scopes: &mut impl Scopes, site: Site<'_>, path: &[String], depth: u32) -> Resolution {
    let Some(first) = path.first() else { return Resolution::Unknown };
    let mut package = site.package;
    let mut current: String;
    let mut next = 1;
    match first.as_str() {
        "crate" => current = root_of(site.module).to_owned(),
        "self" => current = site.module.to_owned(),
        "super" => {
            current = site.module.to_owned();
            next = 0;
            while path.get(next).is_some_and(|segment| segment == "super") {
                match parent_of(&current) {
                    Some(parent) => current = parent.to_owned(),
                    None => return Resolution::Unresolved { segment: next as u32 },
                }
                next += 1;
            }
        }
        "Self" => return Resolution::Unknown,
        "::" => {
            let Some(name) = path.get(1) else { return Resolution::Unknown };
            match extern_crate(scopes, site, name) {
                Extern::Package(found) => {
                    package = found;
                    current = "crate".to_owned();
                    next = 2;
                }
                Extern::Outside => return Resolution::External,
                Extern::Unknown => return Resolution::Unknown,
                // Edition 2015: `::a` is the crate root's `a`.
                Extern::Missing if scopes.facts(site.package).edition <= 2015 => {
                    current = root_of(site.module).to_owned();
                    next = 1;
                }
                Extern::Missing => return Resolution::Unresolved { segment: 1 },
            }
        }
        name => {
            let mut here = vec![(site.file, site.inline.to_owned())];
            let mut direct = scopes.lookup(site.file, site.inline, name);
            if matches!(direct, Lookup::Nothing | Lookup::Def(Kind::Macro)) {
                // The items of the templates the module calls are in its scope too
                // (and a macro answers only where no other item has its name).
                let bodies = scopes.module(site.package, site.module);
                here.extend(bodies.into_iter().filter(|(_, inline)| inline.ends_with('!')));
                for index in 1..here.len() {
                    let lookup = scopes.lookup(here[index].0, &here[index].1, name);
                    let better = lookup != Lookup::Nothing
                        && (direct == Lookup::Nothing || lookup != Lookup::Def(Kind::Macro));
                    if better {
                        direct = lookup;
                        here.swap(0, index);
                        if lookup != Lookup::Def(Kind::Macro) {
                            break;
                        }
                    }
                }
            }
            let found = if direct != Lookup::Nothing {
                Found::At {
                    lookup: direct,
                    file: here[0].0,
                    inline: here[0].1.clone(),
                    package,
                    module: site.module.to_owned(),
                    tentative: false,
                }
            } else {
                if !site.module.contains("::")
                    && let Some((file, module)) = scopes.exported_macro(package, site.module, name)
                {
                    return Resolution::Def { file, module, name: name.to_owned() };
                }
                let lone_type = site.ty && path.len() == 1;
                match if lone_type { Extern::Missing } else { extern_crate(scopes, site, name) } {
                    Extern::Package(found) => {
                        package = found;
                        current = "crate".to_owned();
                        return continue_in(scopes, package, current, path, next, depth, false);
                    }
                    Extern::Outside => return Resolution::External,
                    Extern::Unknown => return Resolution::Unknown,
                    Extern::Missing if PRELUDE.contains(&name) => return Resolution::External,
                    Extern::Missing => {
                        find(scopes, package, site.module, &here, name, &mut Default::default(), depth)
                    }
                }
            };
            match found.next(name) {
                Next::Into(at, module, tentative) => {
                    return continue_in(scopes, at, module, path, next, depth, tentative);
                }
                Next::Done(resolution) => return resolution,
                Next::Missing { open: true } => return Resolution::Unknown,
                // Edition 2015: paths are the crate root's.
                Next::Missing { .. } if scopes.facts(site.package).edition <= 2015 => {
                    current = root_of(site.module).to_owned();
                    next = 0;
                }
                Next::Missing { .. } => return Resolution::Unresolved { segment: 0 },
            }
        }
    }
    continue_in(scopes, package, current, path, next, depth, false)
}

/// Resolves the segments of `path` from `next` on, starting in module `current`
/// of `package` (`tentative`: a module on the way was found through a glob that
/// may bring another configuration's item, so a missing name is unknown).
fn continue_in(
    scopes: &mut impl Scopes,
    mut package: u32,
    mut current: String,
    path: &[String],
    next: usize,
    depth: u32,
    mut tentative: bool,
) -> Resolution {
    for (index, segment) in path.iter().enumerate().skip(next) {
        if segment == "self" {
            break;
        }
        let places = scopes.module(package, &current);
        if places.is_empty() {
            return Resolution::Unknown;
        }
        let key = (package, current.clone(), segment.clone());
        let found = match scopes.memo().names.get(&key) {
            Some(found) => found.clone(),
            None => {
                let found = find(scopes, package, &current, &places, segment, &mut Default::default(), depth);
                scopes.memo().names.insert(key, found.clone());
                found
            }
        };
        match found.next(segment) {
            Next::Into(at, module, found_tentatively) => {
                (package, current) = (at, module);
                tentative |= found_tentatively;
            }
            Next::Done(resolution) => return resolution,
            Next::Missing { open } => {
                return if open || tentative {
                    Resolution::Unknown
                } else {
                    Resolution::Unresolved { segment: index as u32 }
                };
            }
        }
    }
    if scopes.module(package, &current).is_empty() {
        // A `mod` whose file is missing: reported on the `mod` itself.
        Resolution::Unknown
    } else {
        Resolution::Module { package, path: current }
    }
}

/// [`resolve`] for a path written under a `#[cfg]` (`cfg`): such a path is compiled
/// only in a configuration this cfg-blind index does not model, so a path that does
/// not resolve is unknown there, not an error.
pub fn resolve_path(scopes: &mut impl Scopes, site: Site<'_>, path: &[String], cfg: bool) -> Resolution {
    match resolve(scopes, site, path) {
        Resolution::Unresolved { .. } if cfg => Resolution::Unknown,
        resolution => resolution,
    }
}

/// Whether a resolution was decided (resolved or reported), for the share of paths
/// checked.
pub fn is_checked(resolution: &Resolution) -> bool {
    !matches!(resolution, Resolution::Unknown)
}

/// One diagnostic.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// Where.
    pub span: Span,
    /// A short code: `syntax-error`, `unresolved-import`, `unresolved-type`,
    /// `unresolved-module`, `duplicate-definition`.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// A path and what it resolved to, for diagnostics: its segments, where it is
/// written (every occurrence) and its resolution.
pub type Resolved<'a> = (&'a [String], &'a [Span], &'a Resolution);

/// The diagnostics of one file in a module tree, sorted by position: its syntax
/// error, its `use` paths and signature type paths that resolve to nothing, its
/// missing module files, and names defined twice in one namespace of one module
/// (items under `#[cfg]` may share a name, `const _` and `macro_rules!` may repeat).
pub fn diagnostics(
    error: Option<&SyntaxError>,
    defs: &[Def],
    uses: &[Resolved<'_>],
    types: &[Resolved<'_>],
    missing: &[(Span, String)],
) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    if let Some(error) = error {
        found.push(Diagnostic {
            span: error.span,
            code: "syntax-error".into(),
            message: error.message.clone(),
        });
    }
    for (what, list) in [("import", uses), ("type", types)] {
        for (path, spans, resolution) in list {
            let Resolution::Unresolved { segment } = resolution else { continue };
            let segment = (*segment as usize).min(path.len().saturating_sub(1));
            let missing = &path[segment];
            let message = match (segment, path.first().map(String::as_str)) {
                (0, _) if what == "type" && path.len() == 1 => {
                    format!("unresolved type `{missing}`: no `{missing}` in scope (is an import missing?)")
                }
                (0, _) | (1, Some("::")) => format!(
                    "unresolved {what} `{}`: no `{missing}` in scope, and no crate `{missing}` among the package's dependencies",
                    path.join("::").replace("::::", "::")
                ),
                _ => format!(
                    "unresolved {what} `{}`: no `{missing}` in `{}`",
                    path.join("::").replace("::::", "::"),
                    path[..segment].join("::")
                ),
            };
            for span in *spans {
                found.push(Diagnostic {
                    span: *span,
                    code: format!("unresolved-{what}"),
                    message: message.clone(),
                });
            }
        }
    }
    for (span, message) in missing {
        found.push(Diagnostic { span: *span, code: "unresolved-module".into(), message: message.clone() });
    }
    let mut seen = std::collections::HashSet::new();
    let counted =
        |def: &&Def| def.container.is_none() && !def.cfg && def.name != "_" && def.kind != Kind::Macro;
    for def in defs.iter().filter(counted) {
        if !seen.insert((def.module.as_str(), def.kind.namespace(), def.name.as_str())) {
            let message = format!("the name `{}` is defined more than once in this module", def.name);
            found.push(Diagnostic { span: def.span, code: "duplicate-definition".into(), message });
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_paths() {
        assert_eq!(normalize("src/a/../b.rs").as_deref(), Some("src/b.rs"));
        assert_eq!(normalize("../b.rs"), None);
    }
}
