//! The salsa twin of the chunkdb pipeline: the same incremental Rust indexer, written
//! on salsa 0.28 the way salsa's documentation teaches it.
//!
//! The database is a `#[salsa::db]` struct holding a `salsa::Storage`. Source files,
//! packages and the workspace are `#[salsa::input]`s; module paths are
//! `#[salsa::interned]`; every stage is a `#[salsa::tracked]` function whose result
//! derives `PartialEq`/`Eq`, so salsa backdates a result that re-executes to an equal
//! value and the edit stops there. The stages mirror the chunkdb pipeline:
//!
//! - [`parse`]: a file's [`Summary`], from the shared [`summarize`](super::syntax::summarize);
//! - [`file_mods`], [`file_scope`], [`file_uses`], [`file_refs`]: the parts of the
//!   summary later stages read, without the spans they do not need, so an edit that only
//!   moves code is cut off here;
//! - [`module_tree`]: a package's module tree, from the shared
//!   [`module_tree`](super::analysis::module_tree), with [`file_module`],
//!   [`module_location`] and [`missing_mods`] as narrow views of it;
//! - [`resolve`]: every `use` path and type path of a file, through the shared
//!   [`resolve`](super::analysis::resolve) over a [`Scopes`] answered by queries;
//! - [`diagnostics`]: a file's diagnostics, from the shared
//!   [`diagnostics`](super::analysis::diagnostics).
//!
//! Both pipelines run the same parser and the same rules, so comparing them measures
//! the incremental frameworks. It is single-threaded, the plain documented way.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use salsa::Setter;

use super::analysis::{self, Diagnostic, Lookup, ModuleTree, Resolution, Scopes, Site};
use super::sample::Sample;
use super::session::Pipeline;
use super::syntax::{self, ModDecl, Span, Summary, TypeRef, Use};

// ---------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------

/// The salsa database: just its storage.
#[salsa::db]
#[derive(Clone)]
struct IndexDatabase {
    storage: salsa::Storage<Self>,
}

#[salsa::db]
impl salsa::Database for IndexDatabase {}

// ---------------------------------------------------------------------------------
// Inputs and interned values
// ---------------------------------------------------------------------------------

/// One source file: set from outside (by the editing session).
#[salsa::input(persist)]
struct SourceFile {
    /// Its id in module trees and resolutions: assigned at creation, never reused.
    #[returns(copy)]
    id: u32,
    /// The index of its package in the workspace.
    #[returns(copy)]
    package: u32,
    /// Its path relative to the package directory.
    #[returns(deref)]
    path: String,
    /// Its text.
    #[returns(deref)]
    text: String,
}

/// One package: its crate name and its files, sorted by path.
#[salsa::input(persist)]
struct PackageInput {
    /// The crate name.
    #[returns(deref)]
    name: String,
    /// Its files, sorted by path.
    #[returns(deref)]
    files: Vec<SourceFile>,
}

/// The workspace: its packages, in order (the index is the package number).
#[salsa::input(persist, singleton)]
struct Workspace {
    /// The packages.
    #[returns(deref)]
    packages: Vec<PackageInput>,
}

/// A module path (`crate::a::b`), interned so it can key a query.
#[salsa::interned(persist)]
struct ModulePath<'db> {
    /// The path's text.
    #[returns(deref)]
    text: String,
}

// ---------------------------------------------------------------------------------
// Per-file queries
// ---------------------------------------------------------------------------------

/// A piece of a file's text (see [`syntax::pieces`]), interned so equal pieces of
/// any file or revision share one [`piece_summary`].
#[salsa::interned(persist)]
struct PieceText<'db> {
    /// The piece's text.
    #[returns(deref)]
    text: String,
}

/// Parses one piece of a file: memoized by salsa, so a piece whose text is
/// unchanged is not parsed again.
#[salsa::tracked(returns(ref), persist)]
fn piece_summary<'db>(db: &'db dyn salsa::Database, piece: PieceText<'db>) -> Arc<Summary> {
    Arc::new(syntax::summarize(piece.text(db)))
}

/// Parses a file (the only query that reads its text), piece by piece.
#[salsa::tracked(returns(ref), persist)]
fn parse(db: &dyn salsa::Database, file: SourceFile) -> Summary {
    syntax::summarize_in_pieces(file.text(db), |pieces| {
        pieces
            .iter()
            .map(|piece| Arc::clone(piece_summary(db, PieceText::new(db, piece.text.to_owned()))))
            .collect()
    })
}

/// The file's `mod` declarations, in the order of `summary.mods`, spans zeroed (the
/// module tree does not read them).
#[salsa::tracked(returns(ref), persist)]
fn file_mods(db: &dyn salsa::Database, file: SourceFile) -> Vec<ModDecl> {
    parse(db, file).mods.iter().map(|decl| ModDecl { span: Span::default(), ..decl.clone() }).collect()
}

/// The names each inline module of a file defines or imports, and which of its
/// inline modules are open.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
struct FileScope {
    /// Inline module → name → what the name is: a module-level definition if there is
    /// one (the first in source order), else an import if a `use` binds it.
    names: HashMap<String, HashMap<String, Lookup>>,
    /// The inline modules that may hold names nobody can list (`summary.open`).
    open: Vec<String>,
}

/// The file's scope table.
#[salsa::tracked(returns(ref), persist)]
fn file_scope(db: &dyn salsa::Database, file: SourceFile) -> FileScope {
    let summary = parse(db, file);
    let mut names: HashMap<String, HashMap<String, Lookup>> = HashMap::new();
    for def in summary.defs.iter().filter(|def| def.container.is_none()) {
        // A module is `Lookup::Def(Kind::Module)`, which resolution descends into.
        names.entry(def.module.clone()).or_default().entry(def.name.clone()).or_insert(Lookup::Def(def.kind));
    }
    for used in &summary.uses {
        if let Some(binding) = &used.binding {
            names.entry(used.module.clone()).or_default().entry(binding.clone()).or_insert(Lookup::Import);
        }
    }
    FileScope { names, open: summary.open.clone() }
}

/// The file's `use` paths, in source order, spans zeroed.
#[salsa::tracked(returns(ref), persist)]
fn file_uses(db: &dyn salsa::Database, file: SourceFile) -> Vec<Use> {
    parse(db, file).uses.iter().map(|used| Use { span: Span::default(), ..used.clone() }).collect()
}

/// The file's distinct type paths, in order of first occurrence, without spans.
#[salsa::tracked(returns(ref), persist)]
fn file_refs(db: &dyn salsa::Database, file: SourceFile) -> Vec<TypeRef> {
    parse(db, file).refs.iter().map(|reference| TypeRef { spans: Vec::new(), ..reference.clone() }).collect()
}

// ---------------------------------------------------------------------------------
// Per-package queries
// ---------------------------------------------------------------------------------

/// The package numbered `package`, if there is one.
fn package_input(db: &dyn salsa::Database, package: u32) -> Option<PackageInput> {
    Workspace::try_get(db)?.packages(db).get(package as usize).copied()
}

/// The package's files by id, sorted by id.
#[salsa::tracked(returns(ref), persist)]
fn file_handles(db: &dyn salsa::Database, package: PackageInput) -> Vec<(u32, SourceFile)> {
    let mut handles: Vec<(u32, SourceFile)> =
        package.files(db).iter().map(|file| (file.id(db), *file)).collect();
    handles.sort_unstable_by_key(|(id, _)| *id);
    handles
}

/// The package's module tree (reads file paths and `mod` declarations, never texts).
#[salsa::tracked(returns(ref), persist)]
fn module_tree(db: &dyn salsa::Database, package: PackageInput) -> ModuleTree {
    let files: Vec<(String, u32)> =
        package.files(db).iter().map(|file| (file.path(db).to_owned(), file.id(db))).collect();
    let handles = file_handles(db, package);
    analysis::module_tree(&files, |id| match handles.binary_search_by_key(&id, |(id, _)| *id) {
        Ok(index) => file_mods(db, handles[index].1).clone(),
        Err(_) => Vec::new(),
    })
}

/// The module path of the file's top in its package's module tree (`None` for a file
/// no tree reaches).
#[salsa::tracked(returns(ref), persist)]
fn file_module(db: &dyn salsa::Database, file: SourceFile) -> Option<String> {
    let package = package_input(db, file.package(db))?;
    let tree = module_tree(db, package);
    let id = file.id(db);
    let index = tree.files.binary_search_by_key(&id, |(file, _)| *file).ok()?;
    Some(tree.files[index].1.clone())
}

/// Where module `path` of `package` is: its file and inline path there.
#[salsa::tracked(returns(ref), persist)]
fn module_location<'db>(
    db: &'db dyn salsa::Database,
    package: PackageInput,
    path: ModulePath<'db>,
) -> Option<(SourceFile, String)> {
    let tree = module_tree(db, package);
    let index = tree.modules.binary_search_by(|(module, _, _)| module.as_str().cmp(path.text(db))).ok()?;
    let (_, id, inline) = &tree.modules[index];
    let handles = file_handles(db, package);
    let found = handles.binary_search_by_key(id, |(id, _)| *id).ok()?;
    Some((handles[found].1, inline.clone()))
}

/// The file's `mod name;` declarations whose file does not exist: (index among
/// `summary.mods`, message).
#[salsa::tracked(returns(ref), persist)]
fn missing_mods(db: &dyn salsa::Database, file: SourceFile) -> Vec<(u32, String)> {
    let Some(package) = package_input(db, file.package(db)) else { return Vec::new() };
    let id = file.id(db);
    let tree = module_tree(db, package);
    tree.missing
        .iter()
        .filter(|(file, _, _)| *file == id)
        .map(|(_, index, message)| (*index, message.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------
// Workspace queries
// ---------------------------------------------------------------------------------

/// Crate name → the smallest index of a package with that name.
#[salsa::tracked(returns(ref), persist)]
fn crate_map(db: &dyn salsa::Database, workspace: Workspace) -> HashMap<String, u32> {
    let mut map = HashMap::new();
    for (index, package) in workspace.packages(db).iter().enumerate() {
        map.entry(package.name(db).to_owned()).or_insert(index as u32);
    }
    map
}

// ---------------------------------------------------------------------------------
// Resolution and diagnostics
// ---------------------------------------------------------------------------------

/// What a file's paths resolve to.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Resolved {
    /// One per `use` path, in source order.
    uses: Vec<Resolution>,
    /// One per type path, in source order.
    refs: Vec<Resolution>,
}

/// [`Scopes`] answered by queries, so a resolution depends on exactly what it read.
struct QueryScopes<'db> {
    db: &'db dyn salsa::Database,
    /// The files met so far (the resolving file, and those `module` answered with).
    known: Vec<(u32, SourceFile)>,
    /// The crate-name map, once asked for.
    crates: Option<&'db HashMap<String, u32>>,
}

impl QueryScopes<'_> {
    fn file(&self, id: u32) -> Option<SourceFile> {
        self.known.iter().find(|(known, _)| *known == id).map(|(_, file)| *file)
    }
}

impl Scopes for QueryScopes<'_> {
    fn module(&mut self, package: u32, path: &str) -> Option<(u32, String)> {
        let input = package_input(self.db, package)?;
        let (file, inline) = module_location(self.db, input, ModulePath::new(self.db, path)).as_ref()?;
        let id = file.id(self.db);
        if self.file(id).is_none() {
            self.known.push((id, *file));
        }
        Some((id, inline.clone()))
    }

    fn lookup(&mut self, file: u32, inline: &str, name: &str) -> Lookup {
        let Some(file) = self.file(file) else { return Lookup::Nothing };
        let scope = file_scope(self.db, file);
        scope.names.get(inline).and_then(|names| names.get(name)).copied().unwrap_or(Lookup::Nothing)
    }

    fn is_open(&mut self, file: u32, inline: &str) -> bool {
        self.file(file).is_some_and(|file| file_scope(self.db, file).open.iter().any(|open| open == inline))
    }

    fn package_named(&mut self, name: &str) -> Option<u32> {
        let crates = match self.crates {
            Some(crates) => crates,
            None => {
                let crates = crate_map(self.db, Workspace::try_get(self.db)?);
                self.crates = Some(crates);
                crates
            }
        };
        crates.get(name).copied()
    }
}

/// Resolves every `use` path and type path of a file (nothing for an orphan file).
#[salsa::tracked(returns(ref), persist)]
fn resolve(db: &dyn salsa::Database, file: SourceFile) -> Resolved {
    let Some(module) = file_module(db, file) else { return Resolved::default() };
    let (package, id) = (file.package(db), file.id(db));
    let mut scopes = QueryScopes { db, known: vec![(id, file)], crates: None };
    let at = |scopes: &mut QueryScopes<'_>, inline: &str, path: &[String]| {
        let item_module = if inline.is_empty() { module.clone() } else { format!("{module}::{inline}") };
        analysis::resolve(scopes, Site { package, module: &item_module, file: id, inline }, path)
    };
    let uses = file_uses(db, file).iter().map(|used| at(&mut scopes, &used.module, &used.path)).collect();
    let refs = file_refs(db, file)
        .iter()
        .map(|reference| at(&mut scopes, &reference.module, &reference.path))
        .collect();
    Resolved { uses, refs }
}

/// A file's diagnostics, sorted by position.
#[salsa::tracked(returns(ref), persist)]
fn diagnostics(db: &dyn salsa::Database, file: SourceFile) -> Vec<Diagnostic> {
    let summary = parse(db, file);
    let resolved = resolve(db, file);
    let missing: Vec<(Span, String)> = missing_mods(db, file)
        .iter()
        .filter_map(|(index, message)| {
            summary.mods.get(*index as usize).map(|decl| (decl.span, message.clone()))
        })
        .collect();
    analysis::diagnostics(summary.error.as_ref(), &summary.defs, &summary.uses, &resolved.uses, &missing)
}

// ---------------------------------------------------------------------------------
// The host
// ---------------------------------------------------------------------------------

/// What the host remembers of a package, to find inputs by path.
struct HostPackage {
    name: String,
    input: PackageInput,
    files: BTreeMap<String, SourceFile>,
}

/// The salsa pipeline: a salsa database and the host's handles to its inputs.
pub struct SalsaIndex {
    db: IndexDatabase,
    packages: Vec<HostPackage>,
    next_id: u32,
    counting: Arc<AtomicBool>,
    executions: Arc<AtomicUsize>,
}

impl SalsaIndex {
    /// How many query executions (salsa `WillExecute` events) were seen while counting
    /// was on, in total since loading.
    pub fn executions(&self) -> usize {
        self.executions.load(Ordering::Relaxed)
    }

    /// Turns the counting of query executions on or off (off at first).
    pub fn count_executions(&mut self, on: bool) {
        self.counting.store(on, Ordering::Relaxed);
    }

    /// How many files there are.
    pub fn files(&self) -> usize {
        self.packages.iter().map(|package| package.files.len()).sum()
    }

    /// A new file input with a fresh id.
    fn new_file(&mut self, package: usize, path: &str, text: &str) -> SourceFile {
        let id = self.next_id;
        self.next_id += 1;
        SourceFile::new(&self.db, id, package as u32, path.to_owned(), text.to_owned())
    }

    /// Sets package `package`'s file list input from the host's map (sorted by path).
    fn update_file_list(&mut self, package: usize) {
        let Some(host) = self.packages.get(package) else { return };
        let files: Vec<SourceFile> = host.files.values().copied().collect();
        host.input.set_files(&mut self.db).to(files);
    }
}

impl SalsaIndex {
    /// salsa's persistence (its `persistence` feature, as its tests use it): the whole
    /// database serialized with serde, as JSON.
    pub fn save(&mut self) -> Vec<u8> {
        serde_json::to_vec(&<dyn salsa::Database>::as_serialize(&mut self.db))
            .expect("the database serializes")
    }

    /// A restart from [`save`](Self::save)'s bytes: deserializes the whole database,
    /// finds the host's handles through the workspace input, then re-submits
    /// `sample`: texts that differ are set, new files added, missing ones removed.
    pub fn restore(bytes: &[u8], sample: &Sample) -> Result<Self, String> {
        let mut index = Self::empty();
        <dyn salsa::Database>::deserialize(&mut index.db, &mut serde_json::Deserializer::from_slice(bytes))
            .map_err(|error| error.to_string())?;
        let workspace = Workspace::try_get(&index.db).ok_or("the saved database has no workspace")?;
        let packages: Vec<PackageInput> = workspace.packages(&index.db).to_vec();
        for input in packages {
            let files: BTreeMap<String, SourceFile> =
                input.files(&index.db).iter().map(|file| (file.path(&index.db).to_owned(), *file)).collect();
            index.next_id =
                index.next_id.max(files.values().map(|file| file.id(&index.db) + 1).max().unwrap_or(0));
            index.packages.push(HostPackage { name: input.name(&index.db).to_owned(), input, files });
        }
        if index.packages.len() != sample.packages.len() {
            return Err("the saved workspace has other packages".into());
        }
        for (number, package) in sample.packages.iter().enumerate() {
            for (path, text) in &package.files {
                let same =
                    index.packages[number].files.get(path).is_some_and(|file| file.text(&index.db) == text);
                if !same {
                    index.set_text(number, path, text);
                }
            }
            let gone: Vec<String> = index.packages[number]
                .files
                .keys()
                .filter(|path| !package.files.iter().any(|(p, _)| p == *path))
                .cloned()
                .collect();
            for path in gone {
                index.remove_file(number, &path);
            }
        }
        Ok(index)
    }

    /// A database with no inputs yet, counting executions when asked.
    fn empty() -> Self {
        let counting = Arc::new(AtomicBool::new(false));
        let executions = Arc::new(AtomicUsize::new(0));
        let callback = {
            let (counting, executions) = (Arc::clone(&counting), Arc::clone(&executions));
            move |event: salsa::Event| {
                if counting.load(Ordering::Relaxed)
                    && matches!(event.kind, salsa::EventKind::WillExecute { .. })
                {
                    executions.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let db = IndexDatabase { storage: salsa::Storage::new(Some(Box::new(callback))) };
        SalsaIndex { db, packages: Vec::new(), next_id: 0, counting, executions }
    }
}

impl Pipeline for SalsaIndex {
    fn load(sample: &Sample) -> Self {
        let mut index = Self::empty();
        for (number, package) in sample.packages.iter().enumerate() {
            let mut files = BTreeMap::new();
            for (path, text) in &package.files {
                let file = index.new_file(number, path, text);
                files.insert(path.clone(), file);
            }
            let input = PackageInput::new(&index.db, package.name.clone(), files.values().copied().collect());
            index.packages.push(HostPackage { name: package.name.clone(), input, files });
        }
        Workspace::new(&index.db, index.packages.iter().map(|package| package.input).collect());
        index
    }

    fn check(&mut self) -> usize {
        let db = &self.db;
        self.packages
            .iter()
            .flat_map(|package| package.files.values())
            .map(|file| diagnostics(db, *file).len())
            .sum()
    }

    fn set_text(&mut self, package: usize, path: &str, text: &str) {
        if package >= self.packages.len() {
            return;
        }
        if let Some(file) = self.packages[package].files.get(path).copied() {
            file.set_text(&mut self.db).to(text.to_owned());
            return;
        }
        let file = self.new_file(package, path, text);
        self.packages[package].files.insert(path.to_owned(), file);
        self.update_file_list(package);
    }

    fn remove_file(&mut self, package: usize, path: &str) {
        let Some(host) = self.packages.get_mut(package) else { return };
        if host.files.remove(path).is_some() {
            self.update_file_list(package);
        }
    }

    fn diagnostics(&self) -> Vec<(String, Diagnostic)> {
        let mut all = Vec::new();
        for package in &self.packages {
            for (path, file) in &package.files {
                let name = format!("{}/{path}", package.name);
                all.extend(
                    diagnostics(&self.db, *file).iter().map(|diagnostic| (name.clone(), diagnostic.clone())),
                );
            }
        }
        all.sort();
        all
    }
}
