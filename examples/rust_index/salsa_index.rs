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
//! - [`file_outline`], [`file_scope`], [`file_uses`], [`file_refs`]: the parts of the
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
//! the incremental frameworks. [`Durabilities`] chooses how the inputs' durability is
//! set: salsa's default (every input LOW, the twin as first written), or as
//! rust-analyzer sets it, so that an edit of the workspace's texts lets salsa check the
//! memos that read only library inputs in constant time each. Edits are checked on one thread, the plain documented
//! way; [`SalsaIndex::check_parallel`] builds on every core, a handle per thread.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use salsa::{Durability, Setter};

use super::analysis::{
    self, Diagnostic, Lookup, ModuleTree, Outline, PackageFacts, Resolution, Scopes, Site,
};
use super::manifest::Manifest;
use super::sample::{Package as Layout, Sample};
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

/// One package: its display name, its files (sorted by path) and what its
/// manifest says.
#[salsa::input(persist)]
struct PackageInput {
    /// The display name.
    #[returns(deref)]
    name: String,
    /// Its files, sorted by path.
    #[returns(deref)]
    files: Vec<SourceFile>,
    /// Its crate roots: (path, root module).
    #[returns(deref)]
    roots: Vec<(String, String)>,
    /// The crates it may name, sorted by name: (name, workspace package, kinds).
    #[returns(deref)]
    deps: Vec<(String, Option<u32>, u8)>,
    /// Its edition and whether it has a manifest.
    #[returns(copy)]
    facts: PackageFacts,
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

/// What the module tree reads of the file: its `mod` declarations (in the order of
/// `summary.mods`, spans zeroed) and its exported macros.
#[salsa::tracked(returns(ref), persist)]
fn file_outline(db: &dyn salsa::Database, file: SourceFile) -> Outline {
    let summary = parse(db, file);
    Outline {
        mods: summary.mods.iter().map(|decl| ModDecl { span: Span::default(), ..decl.clone() }).collect(),
        exports: summary.exports.clone(),
        includes: summary.includes.clone(),
        templates: summary.templates.clone(),
        calls: summary.calls.clone(),
    }
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
    /// Inline module → the paths its glob imports import from.
    globs: HashMap<String, Vec<analysis::Glob>>,
}

/// The file's scope table.
#[salsa::tracked(returns(ref), persist)]
fn file_scope(db: &dyn salsa::Database, file: SourceFile) -> FileScope {
    let summary = parse(db, file);
    let mut names: HashMap<String, HashMap<String, Lookup>> = HashMap::new();
    for def in summary.defs.iter().filter(|def| def.container.is_none()) {
        // A module is `Lookup::Def(Kind::Module)`, which resolution descends into;
        // a macro answers only where no other item has its name.
        let entry = names.entry(def.module.clone()).or_default().entry(def.name.clone());
        let known = entry.or_insert(Lookup::Def(def.kind));
        if *known == Lookup::Def(super::syntax::Kind::Macro) {
            *known = Lookup::Def(def.kind);
        }
    }
    for used in &summary.uses {
        if let Some(binding) = &used.binding {
            names.entry(used.module.clone()).or_default().entry(binding.clone()).or_insert(Lookup::Import);
        }
    }
    let mut globs: HashMap<String, Vec<analysis::Glob>> = HashMap::new();
    for used in summary.uses.iter().filter(|used| used.glob) {
        globs.entry(used.module.clone()).or_default().push((used.path.clone(), used.cfg));
    }
    FileScope { names, open: summary.open.clone(), globs }
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
    analysis::module_tree(&files, package.roots(db), |id| {
        match handles.binary_search_by_key(&id, |(id, _)| *id) {
            Ok(index) => file_outline(db, handles[index].1).clone(),
            Err(_) => Outline::default(),
        }
    })
}

/// The module path of the file's top in its package's module tree, whether only
/// `#[cfg]`-guarded `mod`s reach it, and whether it is quiet (see
/// [`ModuleTree::files`]); `None` for a file no tree reaches.
#[salsa::tracked(returns(ref), persist)]
fn file_module(db: &dyn salsa::Database, file: SourceFile) -> Option<(String, bool, bool)> {
    let package = package_input(db, file.package(db))?;
    let tree = module_tree(db, package);
    let id = file.id(db);
    let index = tree.files.binary_search_by_key(&id, |(file, _, _, _)| *file).ok()?;
    let (_, module, cfg, quiet) = &tree.files[index];
    Some((module.clone(), *cfg, *quiet))
}

/// Where module `path` of `package` is: its file and inline path there (one per
/// file a `cfg` picks among).
#[salsa::tracked(returns(ref), persist)]
fn module_location<'db>(
    db: &'db dyn salsa::Database,
    package: PackageInput,
    path: ModulePath<'db>,
) -> Vec<(SourceFile, String)> {
    let tree = module_tree(db, package);
    let path = path.text(db);
    let start = tree.modules.partition_point(|(module, _, _)| module.as_str() < path);
    let handles = file_handles(db, package);
    tree.modules[start..]
        .iter()
        .take_while(|(module, _, _)| module == path)
        .filter_map(|(_, id, inline)| {
            let found = handles.binary_search_by_key(id, |(id, _)| *id).ok()?;
            Some((handles[found].1, inline.clone()))
        })
        .collect()
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

/// The file's inline modules holding an argument-less macro call that is no
/// template of its crate.
#[salsa::tracked(returns(ref), persist)]
fn unexpanded(db: &dyn salsa::Database, file: SourceFile) -> Vec<String> {
    let Some(package) = package_input(db, file.package(db)) else { return Vec::new() };
    let id = file.id(db);
    let tree = module_tree(db, package);
    tree.unexpanded.iter().filter(|(file, _)| *file == id).map(|(_, inline)| inline.clone()).collect()
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
    memo: analysis::ResolutionMemo,
}

impl QueryScopes<'_> {
    fn file(&self, id: u32) -> Option<SourceFile> {
        self.known.iter().find(|(known, _)| *known == id).map(|(_, file)| *file)
    }
}

impl Scopes for QueryScopes<'_> {
    fn module(&mut self, package: u32, path: &str) -> Vec<(u32, String)> {
        let Some(input) = package_input(self.db, package) else { return Vec::new() };
        let places = module_location(self.db, input, ModulePath::new(self.db, path));
        places
            .iter()
            .map(|(file, inline)| {
                let id = file.id(self.db);
                if self.file(id).is_none() {
                    self.known.push((id, *file));
                }
                (id, inline.clone())
            })
            .collect()
    }

    fn lookup(&mut self, file: u32, inline: &str, name: &str) -> Lookup {
        let Some(file) = self.file(file) else { return Lookup::Nothing };
        let scope = file_scope(self.db, file);
        scope.names.get(inline).and_then(|names| names.get(name)).copied().unwrap_or(Lookup::Nothing)
    }

    fn is_open(&mut self, file: u32, inline: &str) -> bool {
        self.file(file).is_some_and(|file| {
            file_scope(self.db, file).open.iter().any(|open| open == inline)
                || unexpanded(self.db, file).iter().any(|open| open == inline)
        })
    }

    fn globs(&mut self, file: u32, inline: &str) -> Vec<analysis::Glob> {
        let Some(file) = self.file(file) else { return Vec::new() };
        file_scope(self.db, file).globs.get(inline).cloned().unwrap_or_default()
    }

    fn dependency(&mut self, package: u32, name: &str) -> Option<analysis::Dependency> {
        let deps = package_input(self.db, package)?.deps(self.db);
        let index = deps.binary_search_by(|(known, _, _)| known.as_str().cmp(name)).ok()?;
        Some((deps[index].1, deps[index].2))
    }

    fn exported_macro(&mut self, package: u32, root: &str, name: &str) -> Option<(u32, String)> {
        let tree = module_tree(self.db, package_input(self.db, package)?);
        let index =
            tree.macros.binary_search_by(|(r, n, _, _)| (r.as_str(), n.as_str()).cmp(&(root, name))).ok()?;
        let (_, _, file, module) = &tree.macros[index];
        Some((*file, module.clone()))
    }

    fn memo(&mut self) -> &mut analysis::ResolutionMemo {
        &mut self.memo
    }

    fn facts(&mut self, package: u32) -> PackageFacts {
        package_input(self.db, package).map(|input| input.facts(self.db)).unwrap_or_default()
    }
}

/// Resolves every `use` path and type path of a file (nothing for an orphan file).
#[salsa::tracked(returns(ref), persist)]
fn resolve(db: &dyn salsa::Database, file: SourceFile) -> Resolved {
    let Some((module, file_cfg, quiet)) = file_module(db, file) else { return Resolved::default() };
    let (package, id) = (file.package(db), file.id(db));
    let mut scopes = QueryScopes { db, known: vec![(id, file)], memo: analysis::ResolutionMemo::default() };
    let at = |scopes: &mut QueryScopes<'_>, inline: &str, path: &[String], cfg: bool, ty: bool| {
        // A quiet file's names live in a scope this index cannot follow.
        let cfg = cfg || *quiet;
        let item_module = if inline.is_empty() { module.clone() } else { format!("{module}::{inline}") };
        let site = Site { package, module: &item_module, file: id, inline, cfg: cfg || *file_cfg, ty };
        analysis::resolve_path(scopes, site, path, cfg)
    };
    let uses = file_uses(db, file)
        .iter()
        .map(|used| at(&mut scopes, &used.module, &used.path, used.cfg, false))
        .collect();
    let refs = file_refs(db, file)
        .iter()
        .map(|reference| at(&mut scopes, &reference.module, &reference.path, reference.cfg, true))
        .collect();
    Resolved { uses, refs }
}

/// A file's diagnostics, sorted by position.
#[salsa::tracked(returns(ref), persist)]
fn diagnostics(db: &dyn salsa::Database, file: SourceFile) -> Vec<Diagnostic> {
    // A file no crate's module tree reaches is not compiled, and a quiet one's
    // scope cannot be followed: no diagnostics.
    if file_module(db, file).as_ref().is_none_or(|(_, _, quiet)| *quiet) {
        return Vec::new();
    }
    let summary = parse(db, file);
    let resolved = resolve(db, file);
    let missing: Vec<(Span, String)> = missing_mods(db, file)
        .iter()
        .filter_map(|(index, message)| {
            summary.mods.get(*index as usize).map(|decl| (decl.span, message.clone()))
        })
        .collect();
    let uses: Vec<analysis::Resolved<'_>> = summary
        .uses
        .iter()
        .zip(&resolved.uses)
        .map(|(used, resolution)| (used.path.as_slice(), std::slice::from_ref(&used.span), resolution))
        .collect();
    let types: Vec<analysis::Resolved<'_>> = summary
        .refs
        .iter()
        .zip(&resolved.refs)
        .map(|(used, resolution)| (used.path.as_slice(), used.spans.as_slice(), resolution))
        .collect();
    analysis::diagnostics(summary.error.as_ref(), &summary.defs, &uses, &types, &missing)
}

// ---------------------------------------------------------------------------------
// The host
// ---------------------------------------------------------------------------------

/// How the twin sets its inputs' durability (salsa skips the deep check of a memo
/// whose inputs all have a durability higher than the last change's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durabilities {
    /// Every input at salsa's default, LOW: the twin as salsa's tutorial writes it.
    Default,
    /// The workspace, packages and file paths HIGH, every file text LOW.
    TextsLow,
    /// rust-analyzer's practice (`file_text_durability` and `source_root_durability`
    /// by whether a source root is a library): package `workspace` is the edited
    /// workspace, its package input and texts LOW; every other package is treated as
    /// a library, its inputs and texts HIGH; the workspace list HIGH.
    Libraries {
        /// The index of the package being edited.
        workspace: usize,
    },
}

impl Durabilities {
    /// The durability of package `package`'s input.
    fn package(self, package: usize) -> Durability {
        match self {
            Durabilities::Default => Durability::default(),
            Durabilities::TextsLow => Durability::HIGH,
            Durabilities::Libraries { workspace } if workspace == package => Durability::LOW,
            Durabilities::Libraries { .. } => Durability::HIGH,
        }
    }

    /// The durability of the texts of package `package`'s files.
    fn text(self, package: usize) -> Durability {
        match self {
            Durabilities::Libraries { workspace } if workspace != package => Durability::HIGH,
            _ => Durability::LOW,
        }
    }

    /// The durability of the workspace list and of the files' ids and paths.
    fn structure(self) -> Durability {
        if self == Durabilities::Default { Durability::default() } else { Durability::HIGH }
    }
}

/// How much salsa did for one revision: what the `Event`s it reports count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoCounts {
    /// Queries executed (`WillExecute`).
    pub executed: usize,
    /// Memos whose inputs were checked and found unchanged (`DidValidateMemoizedValue`).
    pub validated: usize,
}

/// What the host remembers of a package, to find inputs by path.
struct HostPackage {
    name: String,
    input: PackageInput,
    files: BTreeMap<String, SourceFile>,
    /// Its manifest, to find the crate roots again when files come and go.
    manifest: Option<Manifest>,
}

/// The salsa pipeline: a salsa database and the host's handles to its inputs.
pub struct SalsaIndex {
    db: IndexDatabase,
    packages: Vec<HostPackage>,
    next_id: u32,
    durabilities: Durabilities,
    counting: Arc<AtomicBool>,
    executions: Arc<AtomicUsize>,
    validations: Arc<AtomicUsize>,
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

    /// What salsa does while `edit` runs: the queries it executes and the memos it
    /// validates. Counts only on a twin made by [`load_counting`](Self::load_counting)
    /// or [`restore`](Self::restore) (others have no event callback: it costs a call
    /// per query fetch).
    pub fn counted(&mut self, edit: impl FnOnce(&mut Self)) -> MemoCounts {
        let before = (self.executions.load(Ordering::Relaxed), self.validations.load(Ordering::Relaxed));
        self.count_executions(true);
        edit(self);
        self.count_executions(false);
        MemoCounts {
            executed: self.executions.load(Ordering::Relaxed) - before.0,
            validated: self.validations.load(Ordering::Relaxed) - before.1,
        }
    }

    /// As [`Pipeline::load`], with the inputs' durability set as `durabilities` says.
    pub fn load_with(sample: &Sample, durabilities: Durabilities) -> Self {
        Self::load_from(Self::empty(durabilities, false), sample)
    }

    /// As [`load_with`](Self::load_with), with salsa's events counted (see
    /// [`counted`](Self::counted)).
    pub fn load_counting(sample: &Sample, durabilities: Durabilities) -> Self {
        Self::load_from(Self::empty(durabilities, true), sample)
    }

    fn load_from(mut index: Self, sample: &Sample) -> Self {
        let durabilities = index.durabilities;
        for (number, package) in sample.packages.iter().enumerate() {
            let mut files = BTreeMap::new();
            for (path, text) in &package.files {
                let file = index.new_file(number, path, text);
                files.insert(path.clone(), file);
            }
            let input = PackageInput::builder(
                package.name.clone(),
                files.values().copied().collect(),
                package.roots.clone(),
                package.deps.clone(),
                package.facts(),
            )
            .durability(durabilities.package(number))
            .new(&index.db);
            let manifest = Some(package.manifest.clone());
            index.packages.push(HostPackage { name: package.name.clone(), input, files, manifest });
        }
        let _workspace = Workspace::builder(index.packages.iter().map(|package| package.input).collect())
            .durability(durabilities.structure())
            .new(&index.db);
        index
    }

    /// How many files there are.
    pub fn files(&self) -> usize {
        self.packages.iter().map(|package| package.files.len()).sum()
    }

    /// A new file input with a fresh id.
    fn new_file(&mut self, package: usize, path: &str, text: &str) -> SourceFile {
        let id = self.next_id;
        self.next_id += 1;
        SourceFile::builder(id, package as u32, path.to_owned(), text.to_owned())
            .durability(self.durabilities.structure())
            .text_durability(self.durabilities.text(package))
            .new(&self.db)
    }

    /// Sets package `package`'s file list input from the host's map (sorted by path).
    fn update_file_list(&mut self, package: usize) {
        let Some(host) = self.packages.get(package) else { return };
        let files: Vec<SourceFile> = host.files.values().copied().collect();
        let roots = host.manifest.as_ref().map(|manifest| {
            let paths: Vec<String> = host.files.keys().cloned().collect();
            Layout::roots_of(manifest, &paths)
        });
        let input = host.input;
        input.set_files(&mut self.db).to(files);
        if let Some(roots) = roots
            && roots != input.roots(&self.db)
        {
            input.set_roots(&mut self.db).to(roots);
        }
    }
}

impl SalsaIndex {
    /// salsa's persistence (its `persistence` feature, as its tests use it): the whole
    /// database serialized with serde, as JSON.
    pub fn save(&mut self) -> Vec<u8> {
        serde_json::to_vec(&<dyn salsa::Database>::as_serialize(&mut self.db))
            .expect("the database serializes")
    }

    /// A restart from [`save`](Self::save)'s bytes, saved from a twin loaded with
    /// `durabilities`: deserializes the whole database (salsa's persistence keeps each
    /// input's durability), finds the host's handles through the workspace input, then
    /// re-submits `sample`: texts that differ are set (with the same durabilities),
    /// new files added, missing ones removed.
    pub fn restore(bytes: &[u8], sample: &Sample, durabilities: Durabilities) -> Result<Self, String> {
        let mut index = Self::empty(durabilities, true);
        <dyn salsa::Database>::deserialize(&mut index.db, &mut serde_json::Deserializer::from_slice(bytes))
            .map_err(|error| error.to_string())?;
        let workspace = Workspace::try_get(&index.db).ok_or("the saved database has no workspace")?;
        let packages: Vec<PackageInput> = workspace.packages(&index.db).to_vec();
        for input in packages {
            let files: BTreeMap<String, SourceFile> =
                input.files(&index.db).iter().map(|file| (file.path(&index.db).to_owned(), *file)).collect();
            index.next_id =
                index.next_id.max(files.values().map(|file| file.id(&index.db) + 1).max().unwrap_or(0));
            let manifest = sample.packages.get(index.packages.len()).map(|package| package.manifest.clone());
            index.packages.push(HostPackage {
                name: input.name(&index.db).to_owned(),
                input,
                files,
                manifest,
            });
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

    /// A database with no inputs yet; with `events`, it counts executions and
    /// validations when asked.
    fn empty(durabilities: Durabilities, events: bool) -> Self {
        let counting = Arc::new(AtomicBool::new(false));
        let executions = Arc::new(AtomicUsize::new(0));
        let validations = Arc::new(AtomicUsize::new(0));
        let callback = {
            let (counting, executions, validations) =
                (Arc::clone(&counting), Arc::clone(&executions), Arc::clone(&validations));
            move |event: salsa::Event| {
                if !counting.load(Ordering::Relaxed) {
                    return;
                }
                match event.kind {
                    salsa::EventKind::WillExecute { .. } => executions.fetch_add(1, Ordering::Relaxed),
                    salsa::EventKind::DidValidateMemoizedValue { .. } => {
                        validations.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => 0,
                };
            }
        };
        let callback: Option<Box<dyn Fn(salsa::Event) + Send + Sync>> =
            if events { Some(Box::new(callback)) } else { None };
        let db = IndexDatabase { storage: salsa::Storage::new(callback) };
        SalsaIndex { db, packages: Vec::new(), next_id: 0, durabilities, counting, executions, validations }
    }
}

impl SalsaIndex {
    /// As [`Pipeline::check`], on every core the way salsa allows it (and
    /// rust-analyzer's cache priming does it): a database handle per worker thread
    /// (`db.clone()`, as salsa's own parallel benchmarks do), each computing the
    /// diagnostics of its share of the files, with salsa blocking a thread that needs
    /// a query another is computing. Then the totals, from the memos.
    pub fn check_parallel(&mut self) -> usize {
        use rayon::prelude::*;
        let files: Vec<SourceFile> =
            self.packages.iter().flat_map(|package| package.files.values().copied()).collect();
        files.par_iter().for_each_with(self.db.clone(), |db, file| {
            diagnostics(db, *file);
        });
        self.check()
    }
}

impl Pipeline for SalsaIndex {
    /// The twin as first written: every input at salsa's default durability.
    fn load(sample: &Sample) -> Self {
        Self::load_with(sample, Durabilities::Default)
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
