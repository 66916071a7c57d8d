//! The language rules both pipelines share, written once over small traits so each
//! pipeline can answer the questions from its own storage (and so record what it
//! read): which files form a crate's module tree, what a path resolves to, and which
//! diagnostics a file gets.
//!
//! The rules are a language server's first approximation of Rust's: modules come from
//! `mod` declarations (with `#[path]`), paths resolve through `crate`, `self`,
//! `super`, workspace crates and the names items and imports define; a module with a
//! glob import or an item-level macro call may hold names nobody can list, so a name
//! missing there is not reported.

#![allow(dead_code)]

use super::syntax::{Def, Kind, ModDecl, Span, SyntaxError, Use};

/// The module path of a crate root's top: `crate` for `src/lib.rs`, `crate[path]`
/// for every other root (binaries, examples, tests, benches, build scripts), which
/// Cargo builds as crates of their own. `None` for a file that is not a root.
pub fn root_module(path: &str) -> Option<String> {
    if path == "src/lib.rs" {
        return Some("crate".to_owned());
    }
    let parts: Vec<&str> = path.split('/').collect();
    let root = match parts.as_slice() {
        ["src", "main.rs"] | ["build.rs"] => true,
        ["src", "bin", file] | ["examples", file] | ["tests", file] | ["benches", file] => {
            file.ends_with(".rs")
        }
        ["src", "bin", _, "main.rs"] | ["examples", _, "main.rs"] => true,
        _ => false,
    };
    root.then(|| format!("crate[{path}]"))
}

/// The root module of the module `path` (`crate::a::b` → `crate`).
pub fn root_of(path: &str) -> &str {
    path.split("::").next().unwrap_or(path)
}

/// The parent of module `path`, if it has one.
pub fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once("::").map(|(parent, _)| parent)
}

/// A crate's module tree.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ModuleTree {
    /// Each module: its path, the file it is in and its inline path in that file.
    pub modules: Vec<(String, u32, String)>,
    /// Each file reached: the module path of its top.
    pub files: Vec<(u32, String)>,
    /// Each `mod name;` whose file does not exist: (file, index among the file's
    /// `mods`, message).
    pub missing: Vec<(u32, u32, String)>,
}

/// Builds the module tree of one package from its files (relative path → file id,
/// sorted by path) and, for the files it reaches, their `mod` declarations.
pub fn module_tree(files: &[(String, u32)], mut mods_of: impl FnMut(u32) -> Vec<ModDecl>) -> ModuleTree {
    let id_of = |path: &str| files.binary_search_by(|(p, _)| p.as_str().cmp(path)).ok().map(|i| files[i].1);
    let mut tree = ModuleTree::default();
    let mut reached = std::collections::HashSet::new();
    let mut queue = std::collections::VecDeque::new();
    for (path, file) in files {
        if let Some(root) = root_module(path) {
            queue.push_back((path.clone(), *file, root, true));
        }
    }
    while let Some((path, file, module, is_root)) = queue.pop_front() {
        if !reached.insert(file) {
            continue;
        }
        tree.files.push((file, module.clone()));
        tree.modules.push((module.clone(), file, String::new()));
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        let stem = path.rsplit_once('/').map_or(path.as_str(), |(_, name)| name).trim_end_matches(".rs");
        let children = if is_root || stem == "mod" { dir.to_owned() } else { join_dir(dir, stem) };
        for (index, decl) in mods_of(file).iter().enumerate() {
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
            let candidates: Vec<Option<String>> = match &decl.path_attr {
                Some(attr) if decl.module.is_empty() => vec![normalize(&join_dir(dir, attr))],
                Some(attr) => vec![normalize(&join_dir(&base, attr))],
                None => vec![
                    normalize(&join_dir(&base, &format!("{}.rs", decl.name))),
                    normalize(&join_dir(&base, &format!("{}/mod.rs", decl.name))),
                ],
            };
            // A `#[path]` leaving the package names a file this package does not own.
            let Some(candidates) = candidates.into_iter().collect::<Option<Vec<String>>>() else { continue };
            match candidates.iter().find_map(|candidate| id_of(candidate).map(|id| (candidate, id))) {
                Some((candidate, child)) => queue.push_back((candidate.clone(), child, module_path, false)),
                // A `#[path]` may name a file of another package: not checked.
                None if decl.path_attr.is_some() => {}
                None => {
                    let message = format!(
                        "unresolved module `{}`: no file {}",
                        decl.name,
                        candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" or ")
                    );
                    tree.missing.push((file, index as u32, message));
                }
            }
        }
    }
    tree.modules.sort();
    tree.modules.dedup_by(|a, b| a.0 == b.0);
    tree.files.sort();
    tree
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

/// The questions resolution asks of a pipeline's storage.
pub trait Scopes {
    /// The file and inline path of module `path` of `package`.
    fn module(&mut self, package: u32, path: &str) -> Option<(u32, String)>;
    /// What `name` is in the scope of inline module `inline` of `file`.
    fn lookup(&mut self, file: u32, inline: &str, name: &str) -> Lookup;
    /// Whether that module may hold names nobody can list.
    fn is_open(&mut self, file: u32, inline: &str) -> bool;
    /// The workspace package whose crate is called `name`.
    fn package_named(&mut self, name: &str) -> Option<u32>;
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
    /// A crate outside the workspace (`std`, a dependency).
    External,
    /// Something this approximation cannot decide (a glob, a macro, a generic).
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
}

/// Resolves `path` written at `site`.
pub fn resolve(scopes: &mut impl Scopes, site: Site<'_>, path: &[String]) -> Resolution {
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
        "::" => match path.get(1).and_then(|name| scopes.package_named(name)) {
            Some(found) => {
                package = found;
                current = "crate".to_owned();
                next = 2;
            }
            None => return Resolution::External,
        },
        name => match scopes.lookup(site.file, site.inline, name) {
            Lookup::Def(Kind::Module) => current = format!("{}::{name}", site.module),
            Lookup::Def(_) => {
                return Resolution::Def {
                    file: site.file,
                    module: site.inline.to_owned(),
                    name: name.to_owned(),
                };
            }
            Lookup::Import => {
                return Resolution::Import {
                    file: site.file,
                    module: site.inline.to_owned(),
                    name: name.to_owned(),
                };
            }
            Lookup::Nothing => match scopes.package_named(name) {
                Some(found) => {
                    package = found;
                    current = "crate".to_owned();
                }
                None if scopes.is_open(site.file, site.inline) => return Resolution::Unknown,
                None => return Resolution::External,
            },
        },
    }
    for (index, segment) in path.iter().enumerate().skip(next) {
        if segment == "self" {
            break;
        }
        let Some((file, inline)) = scopes.module(package, &current) else { return Resolution::Unknown };
        match scopes.lookup(file, &inline, segment) {
            Lookup::Def(Kind::Module) => current = format!("{current}::{segment}"),
            Lookup::Def(_) => return Resolution::Def { file, module: inline, name: segment.clone() },
            Lookup::Import => return Resolution::Import { file, module: inline, name: segment.clone() },
            Lookup::Nothing if scopes.is_open(file, &inline) => return Resolution::Unknown,
            Lookup::Nothing => return Resolution::Unresolved { segment: index as u32 },
        }
    }
    match scopes.module(package, &current) {
        Some(_) => Resolution::Module { package, path: current },
        // A `mod` whose file is missing: reported on the `mod` itself.
        None => Resolution::Unknown,
    }
}

/// One diagnostic.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// Where.
    pub span: Span,
    /// A short code: `syntax-error`, `unresolved-import`, `unresolved-module`,
    /// `duplicate-definition`.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// The diagnostics of one file, sorted by position: its syntax error, its `use`
/// paths that resolve to nothing (`resolutions` holds one per use), its missing
/// module files, and names defined twice in one namespace of one module.
pub fn diagnostics(
    error: Option<&SyntaxError>,
    defs: &[Def],
    uses: &[Use],
    resolutions: &[Resolution],
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
    for (used, resolution) in uses.iter().zip(resolutions) {
        if let Resolution::Unresolved { segment } = resolution {
            let message = format!(
                "unresolved import `{}`: no `{}` in `{}`",
                used.path.join("::"),
                used.path[*segment as usize],
                used.path[..*segment as usize].join("::")
            );
            found.push(Diagnostic { span: used.span, code: "unresolved-import".into(), message });
        }
    }
    for (span, message) in missing {
        found.push(Diagnostic { span: *span, code: "unresolved-module".into(), message: message.clone() });
    }
    let mut seen = std::collections::HashSet::new();
    for def in defs.iter().filter(|def| def.container.is_none() && !def.cfg) {
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
    fn roots_and_normalized_paths() {
        assert_eq!(root_module("src/lib.rs").as_deref(), Some("crate"));
        assert_eq!(root_module("examples/x/main.rs").as_deref(), Some("crate[examples/x/main.rs]"));
        assert_eq!(root_module("src/a.rs"), None);
        assert_eq!(normalize("src/a/../b.rs").as_deref(), Some("src/b.rs"));
        assert_eq!(normalize("../b.rs"), None);
    }
}
