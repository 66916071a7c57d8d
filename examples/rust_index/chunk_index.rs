//! The pipeline on chunkdb: the schema, one task per stage, and the host that writes
//! inputs and drives the tasks.
//!
//! Inputs are entry tasks the host writes: `package:P` (the package's name, its files
//! by path, its crate name) and `source:F` (a file's text). Derived tasks:
//!
//! - `parse:F` (spawned by `source:F`): the file's scope entries, imports, `mod`
//!   declarations, type uses, symbols and syntax error, with every span kept apart in
//!   `positions`/`symbols` so that moving code around invalidates only what shows
//!   positions; spawns `resolve:F`;
//! - `modules:P` (spawned by `package:P`): the package's module tree, reading the
//!   `mod` declarations of the files it reaches;
//! - `resolve:F`: each import and type use of the file resolved against the
//!   workspace, reading exactly the scope entries, modules and crate names it looks
//!   at; spawns `diagnostics:F`;
//! - `diagnostics:F`: syntax errors, unresolved imports and modules, duplicates.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chunkdb::{ContentHash, Database, DriveError, DriveReport, Driver, Snapshot, StableHasher, TaskContext};

use super::analysis::{
    self, Dependency as Dep, Diagnostic, Lookup, Outline, PackageFacts, Resolution, Scopes, Site,
};
use super::manifest::{Manifest, dep_kind};
use super::sample::{Package as Layout, Sample};
use super::session::Pipeline;
use super::syntax::{self, Def, Kind, ModDecl, Span, Summary, SyntaxError};

chunkdb::chunk_schema! {
    /// Rust workspaces, as a language server indexes them.
    pub schema RustIndex {
        records {
            /// A Cargo package: its display name and what its manifest says.
            Package { name: String, edition: u16, declared: bool, unverified: bool },
            /// A file of a package.
            PackageFile { file: u32 },
            /// A crate root of a package: the module path of its top.
            CrateRoot { module: String },
            /// A crate a package may name: the workspace package it is (`u32::MAX`
            /// when outside) and the tables declaring it.
            Dependency { target: u32, kinds: u8 },
            /// A file's text.
            Source { text: String },
            /// A name in a module's scope: an item (`kind`) or an import.
            ScopeEntry { kind: u8 },
            /// A module that may hold names nobody can list (a macro call, an
            /// attribute macro, a derive that may define names, a syntax error).
            OpenModule { macros: bool },
            /// A glob import (`use a::b::*`): the path it imports from.
            GlobImport { path: Vec<String>, cfg: bool },
            /// One path a `use` imports.
            Import { module: String, path: Vec<String>, glob: bool, cfg: bool },
            /// A `mod` declaration.
            ModuleDecl {
                module: String,
                name: String,
                inline: bool,
                paths: Vec<String>,
                conditional_paths: bool,
                cfg: bool,
                opaque: bool,
            },
            /// An item-level `include!("…")`: its inline module and the path.
            Include { module: String, path: String },
            /// An argument-less `macro_rules!` template: its name and the inline
            /// module its items are collected under.
            Template { name: String, body: String },
            /// A `mod` in the body of the template before it.
            TemplateMod { module: String, name: String, inline: bool, cfg: bool },
            /// An argument-less item-level macro call: its inline module and name.
            MacroCall { module: String, name: String },
            /// A `#[macro_export]` macro: its inline module and name.
            ExportedMacro { module: String, name: String },
            /// A `#[macro_export]` macro at its crate's root: where it is defined.
            CrateMacro { file: u32, module: String },
            /// A type path in signatures, once per distinct (module, path) of a file.
            TypeUse { module: String, path: Vec<String>, cfg: bool },
            /// Where an import or `mod` is.
            Position { line: u32, column: u32, end_line: u32, end_column: u32 },
            /// Where a type use is written: line, column, end line and end column of
            /// each occurrence, one after the other.
            Occurrences { spans: Vec<u32> },
            /// An item, for workspace symbols and go-to-definition.
            Symbol {
                name: String,
                kind: u8,
                module: String,
                container: Option<String>,
                public: bool,
                cfg: bool,
                line: u32,
                column: u32,
                end_line: u32,
                end_column: u32,
            },
            /// Why a file does not parse.
            ParseError { message: String, line: u32, column: u32, end_line: u32, end_column: u32 },
            /// A module: the file it is in and its inline path there.
            Module { file: u32, inline: String },
            /// The module path of a file's top, and whether only `#[cfg]`-guarded
            /// `mod`s reach it.
            FileModule { package: u32, path: String, cfg: bool, quiet: bool },
            /// A `mod name;` without a file.
            MissingModule { message: String },
            /// How many imports and type uses of a file resolution could not decide.
            UnknownPaths { imports: u32, types: u32 },
            /// What a path resolved to (see `analysis::Resolution`; `status` is its variant).
            Resolved { status: u8, file: u32, module: String, name: String, segment: u32 },
            /// A diagnostic.
            Problem { code: String, message: String, line: u32, column: u32, end_line: u32, end_column: u32 },
        }
        partitions {
            packages holds Package key (package: u32),
            files holds PackageFile key (package: u32, path: String),
            roots holds CrateRoot key (package: u32, path: String),
            deps holds Dependency key (package: u32, name: String),
            sources holds Source key (file: u32),
            /// Module-level names by file, inline module and name: what resolution reads.
            scope holds ScopeEntry key (file: u32, module: String, name: String, seq: u32),
            open holds OpenModule key (file: u32, module: String),
            /// Modules the module tree found calling a macro that is no template.
            unexpanded holds OpenModule key (file: u32, module: String),
            /// Glob imports by file and inline module: what resolution follows.
            globs holds GlobImport key (file: u32, module: String, seq: u32),
            imports holds Import key (file: u32, seq: u32),
            mods holds ModuleDecl key (file: u32, seq: u32),
            exports holds ExportedMacro key (file: u32, seq: u32),
            includes holds Include key (file: u32, seq: u32),
            /// Each template, followed by its `mod`s.
            templates holds Template, TemplateMod key (file: u32, seq: u32),
            calls holds MacroCall key (file: u32, seq: u32),
            crate_macros holds CrateMacro key (package: u32, root: String, name: String),
            type_uses holds TypeUse key (file: u32, seq: u32),
            /// Spans of imports (`what` 0), `mod`s (1) and type uses (2).
            positions holds Position, Occurrences key (file: u32, what: u8, seq: u32),
            symbols holds Symbol key (file: u32, seq: u32),
            parse_errors holds ParseError key (file: u32),
            /// Modules by path; a module a `cfg` picks among files has one per file.
            modules holds Module key (package: u32, path: String, alt: u32),
            file_modules holds FileModule key (file: u32),
            missing holds MissingModule key (file: u32, seq: u32),
            unknown_paths holds UnknownPaths key (file: u32),
            /// Resolutions of imports (`what` 0) and type uses (2).
            resolutions holds Resolved key (file: u32, what: u8, seq: u32),
            diagnostics holds Problem key (file: u32, seq: u32),
        }
    }
}

/// The [`Span`] of a record with `line`, `column`, `end_line` and `end_column`
/// fields (positions, symbols, parse errors, problems). Used from sibling modules of
/// `syntax`, which `super::` names.
macro_rules! record_span {
    ($record:expr) => {{
        let record = $record;
        super::syntax::Span {
            line: record.line.to_native(),
            column: record.column.to_native(),
            end_line: record.end_line.to_native(),
            end_column: record.end_column.to_native(),
        }
    }};
}
#[allow(unused_imports)] // Not every program that includes this file uses it.
pub(crate) use record_span;

const IMPORT: u8 = 0;
/// The `status` of a [`Resolved`] for `Resolution::Unresolved`.
const UNRESOLVED: u8 = 5;
const MOD: u8 = 1;
const TYPE_USE: u8 = 2;

/// What a task failed on.
pub type TaskError = chunkdb::Error;

/// The chunkdb pipeline and its host.
pub struct ChunkIndex {
    db: Database<RustIndex>,
    pieces: PieceMemo,
    packages: Vec<PackageState>,
    /// Every file's display name (`package/path`) by id, shared with the views
    /// (copied on write while a view holds it).
    names: Arc<HashMap<u32, String>>,
    next_file: u32,
    parallel: bool,
    /// The last drive's report.
    pub last: DriveReport,
}

struct PackageState {
    name: String,
    files: BTreeMap<String, u32>,
    manifest: Manifest,
    deps: Vec<(String, Option<u32>, u8)>,
}

impl ChunkIndex {
    /// The database.
    pub fn db(&self) -> &Database<RustIndex> {
        &self.db
    }

    /// Drives on one thread instead of all.
    pub fn sequential(mut self) -> Self {
        self.parallel = false;
        self
    }

    /// Runs every stale task until nothing is stale.
    pub fn drive(&mut self) -> Result<DriveReport, DriveError<TaskError>> {
        self.drive_observed(&|_| {})
    }

    /// As [`drive`](Self::drive), calling `each` with every task's name before it runs
    /// (for progress).
    pub fn drive_observed(
        &mut self,
        each: &(dyn Fn(&str) + Sync),
    ) -> Result<DriveReport, DriveError<TaskError>> {
        let run = |ctx: &TaskContext<RustIndex>| {
            each(&ctx.task().ident().name().unwrap_or_default());
            run_task(ctx, &self.pieces)
        };
        let report = Driver::new(&self.db).parallel(self.parallel).run(run)?;
        self.last = report.clone();
        Ok(report)
    }

    /// The file id and package name of `path` in `package`.
    pub fn file_id(&self, package: usize, path: &str) -> Option<u32> {
        self.packages.get(package)?.files.get(path).copied()
    }

    /// The display name (`package/path`) of file `file`.
    pub fn file_name(&self, file: u32) -> Option<String> {
        self.names.get(&file).cloned()
    }

    /// The index as it is now, for queries: a view keeps answering from this state
    /// while later edits commit (it is `Send` and `Sync`: a language server answers
    /// requests from it on other threads).
    pub fn view(&self) -> View {
        View { snapshot: self.db.snapshot(), names: Arc::clone(&self.names) }
    }

    /// Adds file `file` at `path` of `package`.
    fn add_file(&mut self, package: usize, path: &str, file: u32) {
        let state = &mut self.packages[package];
        state.files.insert(path.to_owned(), file);
        Arc::make_mut(&mut self.names).insert(file, format!("{}/{path}", state.name));
    }

    /// The package and path of a display name.
    pub fn locate(&self, name: &str) -> Option<(usize, u32)> {
        self.packages.iter().enumerate().find_map(|(index, package)| {
            let path = name.strip_prefix(&package.name)?.strip_prefix('/')?;
            package.files.get(path).map(|file| (index, *file))
        })
    }

    fn write_package(&self, package: usize) {
        let state = &self.packages[package];
        let id = package as u32;
        let mut writer = self.db.writer(format!("package:{id}"));
        let put = |writer: &mut chunkdb::ChunkWriter<RustIndex>| -> chunkdb::Result<()> {
            let record = Package {
                name: state.name.clone(),
                edition: state.manifest.edition,
                declared: state.manifest.declared,
                unverified: state.deps.iter().any(|(_, _, kinds)| kinds & dep_kind::UNVERIFIED != 0),
            };
            writer.put(RustIndex::PACKAGES, PackagesKey::new(id), record)?;
            for (name, target, kinds) in &state.deps {
                let dependency = Dependency { target: target.unwrap_or(u32::MAX), kinds: *kinds };
                writer.put(RustIndex::DEPS, DepsKey::new(id, name), dependency)?;
            }
            let paths: Vec<String> = state.files.keys().cloned().collect();
            let layout = Layout::roots_of(&state.manifest, &paths);
            for (path, module) in layout {
                writer.put(RustIndex::ROOTS, RootsKey::new(id, &path), CrateRoot { module })?;
            }
            for (path, file) in &state.files {
                writer.put(RustIndex::FILES, FilesKey::new(id, path), PackageFile { file: *file })?;
            }
            Ok(())
        };
        put(&mut writer).expect("package records fit the schema");
        writer.spawn(format!("modules:{id}"));
        writer.commit().expect("a package entry commits");
    }

    fn write_source(&self, file: u32, text: &str) {
        let mut writer = self.db.writer(format!("source:{file}"));
        writer
            .put(RustIndex::SOURCES, SourcesKey::new(file), Source { text: text.to_owned() })
            .expect("a source fits the schema");
        writer.spawn(format!("parse:{file}"));
        writer.commit().expect("a source entry commits");
    }

    /// Workspace symbols whose name contains `query` (case-insensitive), as
    /// (file name, symbol), at most `limit`, best first (see [`View::workspace_symbols`]).
    pub fn workspace_symbols(&self, query: &str, limit: usize) -> Vec<(String, Symbol)> {
        self.view().workspace_symbols(query, limit)
    }

    /// Go to definition (see [`View::goto_definition`]).
    pub fn goto_definition(&self, file: u32, line: u32, column: u32) -> Option<(u32, Span)> {
        self.view().goto_definition(file, line, column)
    }

    /// The diagnostics of one file, in order.
    pub fn diagnostics_of(&self, file: u32) -> Vec<Diagnostic> {
        self.view().diagnostics_of(file)
    }

    /// How many files the index holds.
    pub fn files(&self) -> usize {
        self.packages.iter().map(|package| package.files.len()).sum()
    }

    /// The display names (`crate/path`) of the files a module tree reaches.
    pub fn placed_files(&self) -> std::collections::HashSet<String> {
        let snapshot = self.db.snapshot();
        let Ok(found) = snapshot.partition(RustIndex::FILE_MODULES).execute() else {
            return Default::default();
        };
        found.iter().filter_map(|hit| self.file_name(FileModulesKey::decode(hit.sort_key())?.file)).collect()
    }

    /// The display names of the files no module tree reaches, sorted.
    pub fn orphan_files(&self) -> Vec<String> {
        let placed = self.placed_files();
        let mut orphans: Vec<String> = self
            .packages
            .iter()
            .flat_map(|package| package.files.keys().map(move |path| format!("{}/{path}", package.name)))
            .filter(|name| !placed.contains(name))
            .collect();
        orphans.sort();
        orphans
    }

    /// How much of the workspace the index could check: files in a module tree,
    /// and how the imports and type paths of those files resolved.
    pub fn coverage(&self) -> Coverage {
        let snapshot = self.db.snapshot();
        let mut coverage = Coverage { files: self.files(), ..Coverage::default() };
        let placed: std::collections::HashSet<u32> = snapshot
            .partition(RustIndex::FILE_MODULES)
            .execute()
            .map(|found| {
                found
                    .iter()
                    .filter_map(|hit| FileModulesKey::decode(hit.sort_key()).map(|k| k.file))
                    .collect()
            })
            .unwrap_or_default();
        coverage.in_tree = placed.len();
        let mut imports = HashMap::new();
        for hit in snapshot.partition(RustIndex::IMPORTS).execute().iter().flat_map(|found| found.iter()) {
            if let Some(file) =
                ImportsKey::decode(hit.sort_key()).map(|k| k.file).filter(|f| placed.contains(f))
            {
                *imports.entry(file).or_insert(0usize) += 1;
            }
        }
        let mut types = HashMap::new();
        for hit in snapshot.partition(RustIndex::TYPE_USES).execute().iter().flat_map(|found| found.iter()) {
            if let Some(file) =
                TypeUsesKey::decode(hit.sort_key()).map(|k| k.file).filter(|f| placed.contains(f))
            {
                *types.entry(file).or_insert(0usize) += 1;
            }
        }
        coverage.imports.total = imports.values().sum();
        coverage.types.total = types.values().sum();
        if let Ok(found) = snapshot.partition(RustIndex::RESOLUTIONS).execute() {
            for hit in found.iter() {
                let (Some(key), Some(resolved)) =
                    (ResolutionsKey::decode(hit.sort_key()), hit.record().as_resolved())
                else {
                    continue;
                };
                if !placed.contains(&key.file) {
                    continue;
                }
                let tally = if key.what == IMPORT { &mut coverage.imports } else { &mut coverage.types };
                match decode_resolution(resolved) {
                    Resolution::Unresolved { .. } => tally.reported += 1,
                    _ => tally.inside += 1,
                }
            }
        }
        for hit in
            snapshot.partition(RustIndex::UNKNOWN_PATHS).execute().iter().flat_map(|found| found.iter())
        {
            let (Some(key), Some(counts)) =
                (UnknownPathsKey::decode(hit.sort_key()), hit.record().as_unknown_paths())
            else {
                continue;
            };
            if placed.contains(&key.file) {
                coverage.imports.unknown += counts.imports.to_native() as usize;
                coverage.types.unknown += counts.types.to_native() as usize;
            }
        }
        for tally in [&mut coverage.imports, &mut coverage.types] {
            tally.external = tally.total - tally.inside - tally.unknown - tally.reported;
        }
        coverage
    }
}

/// What the index could check (see [`ChunkIndex::coverage`]).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Coverage {
    /// Files indexed.
    pub files: usize,
    /// Files a crate's module tree reaches (the others get no diagnostics).
    pub in_tree: usize,
    /// The `use` paths of files in a module tree.
    pub imports: Tally,
    /// The distinct signature type paths of files in a module tree.
    pub types: Tally,
}

/// How a kind of path resolved.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Tally {
    /// Paths.
    pub total: usize,
    /// Resolved to an item, module or import of the workspace.
    pub inside: usize,
    /// Resolved to a crate outside the workspace that the package depends on (or
    /// the standard library, or a prelude name).
    pub external: usize,
    /// Not decided (a glob or macro may define the name, a `cfg` picks code this
    /// index does not model, `Self`).
    pub unknown: usize,
    /// Reported as unresolved.
    pub reported: usize,
}

impl Tally {
    /// The share of paths checked: resolved or reported.
    pub fn checked(&self) -> f64 {
        if self.total == 0 { 1.0 } else { (self.total - self.unknown) as f64 / self.total as f64 }
    }
}

impl ChunkIndex {
    /// Loads `sample` into `db`, a database opened from a directory: a warm restart
    /// when the directory holds an earlier run's index. Files keep their ids (they are numbered in the
    /// sample's order), so the unchanged ones re-submit identical chunks and nothing
    /// of theirs re-runs; files and packages the sample no longer has are removed.
    pub fn resume(sample: &Sample, db: Database<RustIndex>) -> chunkdb::Result<Self> {
        let index = Self::load_into(sample, db);
        let snapshot = index.db.snapshot();
        let known = |file: u32| index.names.contains_key(&file);
        let gone: Vec<u32> = snapshot
            .partition(RustIndex::SOURCES)
            .execute()?
            .iter()
            .filter_map(|hit| SourcesKey::decode(hit.sort_key()).map(|key| key.file))
            .filter(|file| !known(*file))
            .collect();
        let packages = index.packages.len() as u32;
        let gone_packages: Vec<u32> = snapshot
            .partition(RustIndex::PACKAGES)
            .execute()?
            .iter()
            .filter_map(|hit| PackagesKey::decode(hit.sort_key()).map(|key| key.package))
            .filter(|package| *package >= packages)
            .collect();
        drop(snapshot);
        for file in gone {
            index.db.remove_task(format!("source:{file}"));
        }
        for package in gone_packages {
            index.db.remove_task(format!("package:{package}"));
        }
        Ok(index)
    }

    /// An index over `db` as it is, loading nothing: for queries right after a
    /// restart, before the workspace is re-submitted (file names are not known yet).
    pub fn reader(db: Database<RustIndex>) -> Self {
        Self::load_into(&Sample::default(), db)
    }

    fn load_into(sample: &Sample, db: Database<RustIndex>) -> Self {
        let mut index = ChunkIndex {
            db,
            pieces: PieceMemo::default(),
            packages: Vec::new(),
            names: Arc::default(),
            next_file: 0,
            parallel: true,
            last: DriveReport::default(),
        };
        for package in &sample.packages {
            index.packages.push(PackageState {
                name: package.name.clone(),
                files: BTreeMap::new(),
                manifest: package.manifest.clone(),
                deps: package.deps.clone(),
            });
            for (path, text) in &package.files {
                let file = index.next_file;
                index.next_file += 1;
                index.add_file(index.packages.len() - 1, path, file);
                index.write_source(file, text);
            }
        }
        for package in 0..index.packages.len() {
            index.write_package(package);
        }
        index
    }
}

impl Pipeline for ChunkIndex {
    fn load(sample: &Sample) -> Self {
        Self::load_into(sample, Database::new())
    }

    fn check(&mut self) -> usize {
        self.drive().expect("the pipeline's tasks do not fail");
        self.db.snapshot().partition(RustIndex::DIAGNOSTICS).count().unwrap_or(0)
    }

    fn set_text(&mut self, package: usize, path: &str, text: &str) {
        match self.file_id(package, path) {
            Some(file) => self.write_source(file, text),
            None => {
                let file = self.next_file;
                self.next_file += 1;
                self.add_file(package, path, file);
                self.write_source(file, text);
                self.write_package(package);
            }
        }
    }

    fn remove_file(&mut self, package: usize, path: &str) {
        if let Some(file) = self.packages[package].files.remove(path) {
            Arc::make_mut(&mut self.names).remove(&file);
            self.db.remove_task(format!("source:{file}"));
            self.pieces.forget(file);
            self.write_package(package);
        }
    }

    fn diagnostics(&self) -> Vec<(String, Diagnostic)> {
        let snapshot = self.db.snapshot();
        let names = &self.names;
        let mut found: Vec<(String, Diagnostic)> = snapshot
            .partition(RustIndex::DIAGNOSTICS)
            .execute()
            .map(|found| {
                found
                    .iter()
                    .filter_map(|hit| {
                        let file = DiagnosticsKey::decode(hit.sort_key())?.file;
                        Some((names.get(&file)?.clone(), diagnostic_of(hit.record().as_problem()?)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }
}

/// A position in the workspace: (file, 1-based line, character column).
pub type Place = (u32, u32, u32);

/// One state of the index, for queries: a snapshot and the file names of that
/// moment. Every answer of a view is of the same state, however many edits commit
/// meanwhile, and taking one costs two reference counts.
#[derive(Clone)]
pub struct View {
    snapshot: Snapshot<RustIndex>,
    names: Arc<HashMap<u32, String>>,
}

impl View {
    /// The display name (`package/path`) of file `file`.
    pub fn file_name(&self, file: u32) -> Option<String> {
        self.names.get(&file).cloned()
    }

    /// Workspace symbols whose name contains `query` (case-insensitive), as
    /// (file name, symbol), at most `limit`, best first (exact, prefix, then
    /// substring; shorter names first).
    pub fn workspace_symbols(&self, query: &str, limit: usize) -> Vec<(String, Symbol)> {
        let found = self.symbols_matching(query, limit).into_iter();
        found.map(|(file, symbol)| (self.file_name(file).unwrap_or_default(), symbol)).collect()
    }

    /// As [`workspace_symbols`](Self::workspace_symbols), with file ids.
    pub fn symbols_matching(&self, query: &str, limit: usize) -> Vec<(u32, Symbol)> {
        let needle = query.to_lowercase();
        let snapshot = &self.snapshot;
        let found = snapshot
            .partition(RustIndex::SYMBOLS)
            .filter_map(|hit| {
                let symbol = hit.record().as_symbol()?;
                let rank = match_rank(symbol.name.as_str(), &needle)?;
                let file = SymbolsKey::decode(hit.sort_key())?.file;
                Some((rank, symbol.name.len(), file, symbol.to_owned()))
            })
            .unwrap_or_default();
        let mut found = found;
        found.sort_by_key(|a| (a.0, a.1, a.2, a.3.line));
        found.into_iter().take(limit).map(|(_, _, file, symbol)| (file, symbol)).collect()
    }

    /// Go to definition: the import or type use at (`line`, `column`) of `file`,
    /// followed through re-exports, to the item (or module) it names, as (file,
    /// span). `None` when nothing resolvable is there.
    pub fn goto_definition(&self, file: u32, line: u32, column: u32) -> Option<(u32, Span)> {
        let (what, seq) = self.path_at(file, line, column)?;
        self.definition_of(file, what, seq)
    }

    /// The import (`what` = [`IMPORT`], its `seq`) or type use whose span holds
    /// (`line`, `column`) of `file`.
    fn path_at(&self, file: u32, line: u32, column: u32) -> Option<(u8, u32)> {
        self.snapshot
            .partition(RustIndex::POSITIONS)
            .begins_with(PositionsKey::prefix().file(file))
            .execute()
            .ok()?
            .iter()
            .find_map(|hit| {
                let key = PositionsKey::decode(hit.sort_key())?;
                let found = match hit.record() {
                    RustIndexRecordRef::Position(position) => {
                        key.what == IMPORT && record_span!(position).contains(line, column)
                    }
                    RustIndexRecordRef::Occurrences(occurrences) => {
                        spans_of(occurrences).any(|span| span.contains(line, column))
                    }
                    _ => false,
                };
                found.then_some((key.what, key.seq))
            })
    }

    /// Where the path (`what`, `seq`) of `file` leads, followed through re-exports.
    fn definition_of(&self, file: u32, what: u8, seq: u32) -> Option<(u32, Span)> {
        let snapshot = &self.snapshot;
        let resolved = snapshot
            .partition(RustIndex::RESOLUTIONS)
            .exact(ResolutionsKey::new(file, what, seq))
            .execute()
            .ok()?;
        self.follow(decode_resolution(resolved.records().next()?.as_resolved()?))
    }

    /// The definition `resolution` leads to, following re-exports (at most eight).
    fn follow(&self, mut resolution: Resolution) -> Option<(u32, Span)> {
        let snapshot = &self.snapshot;
        for _ in 0..8 {
            match resolution {
                Resolution::Def { file, module, name } => return self.definition_span(file, &module, &name),
                Resolution::Module { package, path } => {
                    let module = snapshot
                        .partition(RustIndex::MODULES)
                        .begins_with(ModulesKey::prefix().package(package).path(&path))
                        .execute()
                        .ok()?;
                    let module = module.records().next()?.as_module()?.to_owned();
                    if module.inline.is_empty() {
                        return Some((module.file, Span { line: 1, column: 0, end_line: 1, end_column: 0 }));
                    }
                    let (parent, name) =
                        module.inline.rsplit_once("::").unwrap_or(("", module.inline.as_str()));
                    return self.definition_span(module.file, parent, name);
                }
                Resolution::Import { file, module, name } => {
                    // A re-export: follow the import that binds `name` there.
                    let imports = snapshot
                        .partition(RustIndex::IMPORTS)
                        .begins_with(ImportsKey::prefix().file(file))
                        .execute()
                        .ok()?;
                    let seq = imports.iter().find_map(|hit| {
                        let import = hit.record().as_import()?;
                        let binds =
                            import.path.last().is_some_and(|last| *last == name) && import.module == module;
                        binds.then(|| ImportsKey::decode(hit.sort_key()).map(|key| key.seq)).flatten()
                    })?;
                    let next = snapshot
                        .partition(RustIndex::RESOLUTIONS)
                        .exact(ResolutionsKey::new(file, IMPORT, seq))
                        .execute()
                        .ok()?;
                    resolution = decode_resolution(next.records().next()?.as_resolved()?);
                }
                _ => return None,
            }
        }
        None
    }

    /// The definition at (`line`, `column`) of `file`: where the path there leads,
    /// or the item whose name is there. As (file, span of the name).
    pub fn definition_at(&self, file: u32, line: u32, column: u32) -> Option<(u32, Span)> {
        self.goto_definition(file, line, column).or_else(|| {
            let span =
                self.symbols_of(file).iter().map(symbol_span).find(|span| span.contains(line, column))?;
            Some((file, span))
        })
    }

    /// The symbol whose name is at `span` of `file` (a span [`definition_at`]
    /// returned).
    ///
    /// [`definition_at`]: Self::definition_at
    pub fn symbol_named_at(&self, file: u32, span: Span) -> Option<Symbol> {
        self.symbols_of(file)
            .into_iter()
            .find(|symbol| (symbol.line, symbol.column) == (span.line, span.column))
    }

    /// Every place whose import or signature type path leads to the definition at
    /// `target` (as [`definition_at`](Self::definition_at) gives it), as (file,
    /// span), in file order.
    pub fn references(&self, target: (u32, Span)) -> Vec<(u32, Span)> {
        let snapshot = &self.snapshot;
        // A whole file (a module's definition) has no name to filter on.
        let name = self.symbol_named_at(target.0, target.1).map(|symbol| symbol.name);
        let Ok(found) = snapshot.partition(RustIndex::RESOLUTIONS).execute() else {
            return Vec::new();
        };
        let mut places = Vec::new();
        for hit in found.iter() {
            let (Some(key), Some(resolved)) =
                (ResolutionsKey::decode(hit.sort_key()), hit.record().as_resolved())
            else {
                continue;
            };
            // Cheap filter before following re-exports: the last segment names the item.
            let status = resolved.status;
            if matches!(status, 3 | 5)
                || name.as_deref().is_some_and(|name| resolved.name.as_str() != name && status != 1)
            {
                continue;
            }
            if self.follow(decode_resolution(resolved)) != Some(target) {
                continue;
            }
            let spans = snapshot
                .partition(RustIndex::POSITIONS)
                .exact(PositionsKey::new(key.file, key.what, key.seq))
                .execute();
            for record in spans.iter().flat_map(|found| found.records()) {
                match record {
                    RustIndexRecordRef::Position(position) => places.push((key.file, record_span!(position))),
                    RustIndexRecordRef::Occurrences(occurrences) => {
                        places.extend(spans_of(occurrences).map(|span| (key.file, span)))
                    }
                    _ => {}
                }
            }
        }
        places.sort_by_key(|(file, span)| (*file, span.line, span.column));
        places.dedup();
        places
    }

    /// The first import (in key order) whose definition is in another file: where
    /// its last segment is, as (file, line, column), and the definition. For probes
    /// and benchmarks that need a definition that resolves.
    pub fn definition_probe(&self) -> Option<(Place, (u32, Span))> {
        let positions = self.snapshot.partition(RustIndex::POSITIONS).execute().ok()?;
        positions.iter().find_map(|hit| {
            let key = PositionsKey::decode(hit.sort_key())?;
            let (IMPORT, Some(position)) = (key.what, hit.record().as_position()) else { return None };
            let (line, column) =
                (position.end_line.to_native(), position.end_column.to_native().saturating_sub(1));
            let target =
                self.goto_definition(key.file, line, column).filter(|(file, _)| *file != key.file)?;
            Some(((key.file, line, column), target))
        })
    }

    /// The symbols of `file`, in order.
    pub fn symbols_of(&self, file: u32) -> Vec<Symbol> {
        self.snapshot
            .partition(RustIndex::SYMBOLS)
            .begins_with(SymbolsKey::prefix().file(file))
            .execute()
            .map(|found| found.records().filter_map(|r| r.as_symbol().map(|s| s.to_owned())).collect())
            .unwrap_or_default()
    }

    /// The text of `file` in this state.
    pub fn text_of(&self, file: u32) -> Option<String> {
        let found =
            self.snapshot.partition(RustIndex::SOURCES).exact(SourcesKey::new(file)).execute().ok()?;
        found.records().find_map(|record| record.as_source().map(|source| source.text.to_string()))
    }

    fn definition_span(&self, file: u32, module: &str, name: &str) -> Option<(u32, Span)> {
        let snapshot = &self.snapshot;
        let symbols = snapshot
            .partition(RustIndex::SYMBOLS)
            .begins_with(SymbolsKey::prefix().file(file))
            .execute()
            .ok()?;
        symbols.records().filter_map(|record| record.as_symbol()).find_map(|symbol| {
            (symbol.container.is_none() && symbol.module == module && symbol.name == name)
                .then_some((file, record_span!(symbol)))
        })
    }

    /// The diagnostics of one file, in order.
    pub fn diagnostics_of(&self, file: u32) -> Vec<Diagnostic> {
        let snapshot = &self.snapshot;
        let found = snapshot
            .partition(RustIndex::DIAGNOSTICS)
            .begins_with(DiagnosticsKey::prefix().file(file))
            .execute();
        found
            .map(|found| found.records().filter_map(|r| r.as_problem().map(diagnostic_of)).collect())
            .unwrap_or_default()
    }
}

/// Where a symbol's name is.
pub fn symbol_span(symbol: &Symbol) -> Span {
    Span {
        line: symbol.line,
        column: symbol.column,
        end_line: symbol.end_line,
        end_column: symbol.end_column,
    }
}

fn diagnostic_of(problem: &ArchivedProblem) -> Diagnostic {
    Diagnostic {
        span: record_span!(problem),
        code: problem.code.to_string(),
        message: problem.message.to_string(),
    }
}

/// Summaries of file pieces by the hash of their text (see
/// [`syntax::summarize_in_pieces`]): results of a pure function, so any run may reuse
/// them. A piece is kept while some file's current text holds it, so memory follows
/// the workspace (as salsa's memos do), and an edit to any file finds its unchanged
/// pieces.
#[derive(Default)]
pub struct PieceMemo {
    memo: Mutex<Memo>,
    /// Pieces parsed (not found in the memo) so far.
    parsed: AtomicUsize,
}

#[derive(Default)]
struct Memo {
    /// Each piece's summary and how many current file texts hold it.
    summaries: HashMap<ContentHash, (Arc<Summary>, usize)>,
    /// The pieces of each file's current text.
    files: HashMap<u32, Vec<ContentHash>>,
}

impl Memo {
    /// Makes `pieces` file `file`'s pieces, releasing those it held before.
    fn hold(&mut self, file: u32, pieces: Vec<ContentHash>) {
        for key in &pieces {
            if let Some((_, holders)) = self.summaries.get_mut(key) {
                *holders += 1;
            }
        }
        for key in self.files.insert(file, pieces).unwrap_or_default() {
            if let Some((_, holders)) = self.summaries.get_mut(&key) {
                *holders -= 1;
                if *holders == 0 {
                    self.summaries.remove(&key);
                }
            }
        }
    }
}

impl PieceMemo {
    /// `summarize(text)` for file `file`'s new text, parsing only the pieces no
    /// current text holds. The memo is locked twice per file: to look every piece up,
    /// and to store the new ones and hold the file's.
    pub fn summarize(&self, file: u32, text: &str) -> Summary {
        let mut in_pieces = false;
        let summary = syntax::summarize_in_pieces(text, |pieces| {
            in_pieces = true;
            let held: Vec<ContentHash> = pieces
                .iter()
                .map(|piece| {
                    let mut hasher = StableHasher::new();
                    hasher.write_bytes(piece.text.as_bytes());
                    hasher.finish()
                })
                .collect();
            let found: Vec<Option<Arc<Summary>>> = {
                let memo = self.lock();
                held.iter()
                    .map(|key| memo.summaries.get(key).map(|(summary, _)| Arc::clone(summary)))
                    .collect()
            };
            let mut parsed = Vec::new();
            let summaries = pieces
                .iter()
                .zip(&held)
                .zip(found)
                .map(|((piece, key), found)| {
                    found.unwrap_or_else(|| {
                        let summary = Arc::new(syntax::summarize(piece.text));
                        parsed.push((*key, Arc::clone(&summary)));
                        summary
                    })
                })
                .collect();
            self.parsed.fetch_add(parsed.len(), Ordering::Relaxed);
            let mut memo = self.lock();
            for (key, summary) in parsed {
                memo.summaries.entry(key).or_insert((summary, 0));
            }
            memo.hold(file, held);
            summaries
        });
        if !in_pieces {
            // Summarized whole: the file holds no piece.
            self.lock().hold(file, Vec::new());
        }
        summary
    }

    /// Releases the pieces of a removed file.
    pub fn forget(&self, file: u32) {
        let mut memo = self.lock();
        memo.hold(file, Vec::new());
        memo.files.remove(&file);
    }

    /// How many pieces were parsed rather than found in the memo, so far.
    pub fn parsed(&self) -> usize {
        self.parsed.load(Ordering::Relaxed)
    }

    /// How many pieces the memo holds.
    pub fn len(&self) -> usize {
        self.lock().summaries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().expect("no task panics while holding the memo")
    }
}

/// Runs one task, chosen by its name (`stage:id`), with the memo of file pieces.
pub fn run_task(ctx: &TaskContext<RustIndex>, pieces: &PieceMemo) -> Result<(), TaskError> {
    let name = ctx.task().ident().name().expect("pipeline task names are registered");
    let (stage, id) = name.split_once(':').expect("pipeline task names are stage:id");
    let id: u32 = id.parse().expect("pipeline task ids are numbers");
    match stage {
        "parse" => parse(ctx, id, pieces),
        "modules" => modules(ctx, id),
        "resolve" => resolve(ctx, id),
        "diagnostics" => diagnostics(ctx, id),
        other => unreachable!("no pipeline stage {other}"),
    }
}

/// The spans an [`Occurrences`] record lists.
pub fn spans_of(occurrences: &ArchivedOccurrences) -> impl Iterator<Item = Span> + '_ {
    occurrences.spans.chunks_exact(4).map(|at| Span {
        line: at[0].to_native(),
        column: at[1].to_native(),
        end_line: at[2].to_native(),
        end_column: at[3].to_native(),
    })
}

fn position(span: Span) -> Position {
    Position { line: span.line, column: span.column, end_line: span.end_line, end_column: span.end_column }
}

fn parse(ctx: &TaskContext<RustIndex>, file: u32, pieces: &PieceMemo) -> Result<(), TaskError> {
    let source = ctx.partition(RustIndex::SOURCES).exact(SourcesKey::new(file)).execute()?;
    let Some(text) = source.records().find_map(|record| record.as_source().map(|s| s.text.to_string()))
    else {
        return Ok(());
    };
    drop(source);
    let summary = pieces.summarize(file, &text);
    if let Some(error) = &summary.error {
        let span = error.span;
        ctx.put(
            RustIndex::PARSE_ERRORS,
            ParseErrorsKey::new(file),
            ParseError {
                message: error.message.clone(),
                line: span.line,
                column: span.column,
                end_line: span.end_line,
                end_column: span.end_column,
            },
        )?;
    }
    // Scope entries: items before imports, each name numbered in source order.
    fn number<'s>(counts: &mut HashMap<(&'s str, &'s str), u32>, module: &'s str, name: &'s str) -> u32 {
        let count = counts.entry((module, name)).or_insert(0);
        *count += 1;
        *count - 1
    }
    let mut counts = HashMap::new();
    for def in summary.defs.iter().filter(|def| def.container.is_none()) {
        let n = number(&mut counts, &def.module, &def.name);
        ctx.put(
            RustIndex::SCOPE,
            ScopeKey::new(file, &def.module, &def.name, n),
            ScopeEntry { kind: def.kind.code() },
        )?;
    }
    for used in &summary.uses {
        if let Some(binding) = &used.binding {
            let n = number(&mut counts, &used.module, binding);
            ctx.put(
                RustIndex::SCOPE,
                ScopeKey::new(file, &used.module, binding, n),
                ScopeEntry { kind: Kind::Import.code() },
            )?;
        }
    }
    for module in &summary.open {
        ctx.put(RustIndex::OPEN, OpenKey::new(file, module), OpenModule { macros: true })?;
    }
    for (seq, used) in summary.uses.iter().filter(|used| used.glob).enumerate() {
        let glob = GlobImport { path: used.path.clone(), cfg: used.cfg };
        ctx.put(RustIndex::GLOBS, GlobsKey::new(file, &used.module, seq as u32), glob)?;
    }
    for (seq, used) in summary.uses.iter().enumerate() {
        let seq = seq as u32;
        let import =
            Import { module: used.module.clone(), path: used.path.clone(), glob: used.glob, cfg: used.cfg };
        ctx.put(RustIndex::IMPORTS, ImportsKey::new(file, seq), import)?;
        ctx.put(RustIndex::POSITIONS, PositionsKey::new(file, IMPORT, seq), position(used.span))?;
    }
    for (seq, decl) in summary.mods.iter().enumerate() {
        let seq = seq as u32;
        let module = ModuleDecl {
            module: decl.module.clone(),
            name: decl.name.clone(),
            inline: decl.inline,
            paths: decl.paths.clone(),
            conditional_paths: decl.conditional_paths,
            cfg: decl.cfg,
            opaque: decl.opaque,
        };
        ctx.put(RustIndex::MODS, ModsKey::new(file, seq), module)?;
        ctx.put(RustIndex::POSITIONS, PositionsKey::new(file, MOD, seq), position(decl.span))?;
    }
    let mut seq = 0;
    for template in &summary.templates {
        let record = Template { name: template.name.clone(), body: template.body.clone() };
        ctx.put(RustIndex::TEMPLATES, TemplatesKey::new(file, seq), record)?;
        seq += 1;
        for decl in &template.mods {
            let record = TemplateMod {
                module: decl.module.clone(),
                name: decl.name.clone(),
                inline: decl.inline,
                cfg: decl.cfg,
            };
            ctx.put(RustIndex::TEMPLATES, TemplatesKey::new(file, seq), record)?;
            seq += 1;
        }
    }
    for (seq, (module, name)) in summary.calls.iter().enumerate() {
        let call = MacroCall { module: module.clone(), name: name.clone() };
        ctx.put(RustIndex::CALLS, CallsKey::new(file, seq as u32), call)?;
    }
    for (seq, (module, path)) in summary.includes.iter().enumerate() {
        let include = Include { module: module.clone(), path: path.clone() };
        ctx.put(RustIndex::INCLUDES, IncludesKey::new(file, seq as u32), include)?;
    }
    for (seq, (module, name)) in summary.exports.iter().enumerate() {
        let export = ExportedMacro { module: module.clone(), name: name.clone() };
        ctx.put(RustIndex::EXPORTS, ExportsKey::new(file, seq as u32), export)?;
    }
    for (seq, used) in summary.refs.iter().enumerate() {
        let seq = seq as u32;
        ctx.put(
            RustIndex::TYPE_USES,
            TypeUsesKey::new(file, seq),
            TypeUse { module: used.module.clone(), path: used.path.clone(), cfg: used.cfg },
        )?;
        let spans = used.spans.iter().flat_map(|s| [s.line, s.column, s.end_line, s.end_column]).collect();
        ctx.put(RustIndex::POSITIONS, PositionsKey::new(file, TYPE_USE, seq), Occurrences { spans })?;
    }
    for (seq, def) in summary.defs.iter().enumerate() {
        let symbol = Symbol {
            name: def.name.clone(),
            kind: def.kind.code(),
            module: def.module.clone(),
            container: def.container.clone(),
            public: def.public,
            cfg: def.cfg,
            line: def.span.line,
            column: def.span.column,
            end_line: def.span.end_line,
            end_column: def.span.end_column,
        };
        ctx.put(RustIndex::SYMBOLS, SymbolsKey::new(file, seq as u32), symbol)?;
    }
    ctx.spawn(format!("resolve:{file}"));
    Ok(())
}

fn modules(ctx: &TaskContext<RustIndex>, package: u32) -> Result<(), TaskError> {
    let listed =
        ctx.partition(RustIndex::FILES).begins_with(FilesKey::prefix().package(package)).execute()?;
    let files: Vec<(String, u32)> = listed
        .iter()
        .filter_map(|hit| {
            Some((FilesKey::decode(hit.sort_key())?.path, hit.record().as_package_file()?.file.to_native()))
        })
        .collect();
    drop(listed);
    let roots: Vec<(String, String)> = ctx
        .partition(RustIndex::ROOTS)
        .begins_with(RootsKey::prefix().package(package))
        .execute()?
        .iter()
        .filter_map(|hit| {
            Some((RootsKey::decode(hit.sort_key())?.path, hit.record().as_crate_root()?.module.to_string()))
        })
        .collect();
    let mut failed = None;
    let tree = analysis::module_tree(&files, &roots, |file| match outline_of(ctx, file) {
        Ok(outline) => outline,
        Err(error) => {
            failed.get_or_insert(error);
            Outline::default()
        }
    });
    if let Some(error) = failed {
        return Err(error);
    }
    let mut alt = 0;
    for (at, (path, file, inline)) in tree.modules.iter().enumerate() {
        alt = if at > 0 && tree.modules[at - 1].0 == *path { alt + 1 } else { 0 };
        ctx.put(
            RustIndex::MODULES,
            ModulesKey::new(package, path, alt),
            Module { file: *file, inline: inline.clone() },
        )?;
    }
    for (file, path, cfg, quiet) in &tree.files {
        ctx.put(
            RustIndex::FILE_MODULES,
            FileModulesKey::new(*file),
            FileModule { package, path: path.clone(), cfg: *cfg, quiet: *quiet },
        )?;
    }
    for (file, seq, message) in &tree.missing {
        ctx.put(
            RustIndex::MISSING,
            MissingKey::new(*file, *seq),
            MissingModule { message: message.clone() },
        )?;
    }
    for (file, module) in &tree.unexpanded {
        ctx.put(RustIndex::UNEXPANDED, UnexpandedKey::new(*file, module), OpenModule { macros: true })?;
    }
    for (root, name, file, module) in &tree.macros {
        ctx.put(
            RustIndex::CRATE_MACROS,
            CrateMacrosKey::new(package, root, name),
            CrateMacro { file: *file, module: module.clone() },
        )?;
    }
    Ok(())
}

fn outline_of(ctx: &TaskContext<RustIndex>, file: u32) -> Result<Outline, TaskError> {
    let found = ctx.partition(RustIndex::MODS).begins_with(ModsKey::prefix().file(file)).execute()?;
    let mods = found
        .records()
        .filter_map(|record| record.as_module_decl())
        .map(|decl| ModDecl {
            module: decl.module.to_string(),
            name: decl.name.to_string(),
            inline: decl.inline,
            paths: decl.paths.iter().map(ToString::to_string).collect(),
            conditional_paths: decl.conditional_paths,
            cfg: decl.cfg,
            opaque: decl.opaque,
            span: Span::default(),
        })
        .collect();
    let found = ctx.partition(RustIndex::EXPORTS).begins_with(ExportsKey::prefix().file(file)).execute()?;
    let exports = found
        .records()
        .filter_map(|record| record.as_exported_macro())
        .map(|export| (export.module.to_string(), export.name.to_string()))
        .collect();
    let found = ctx.partition(RustIndex::INCLUDES).begins_with(IncludesKey::prefix().file(file)).execute()?;
    let includes = found
        .records()
        .filter_map(|record| record.as_include())
        .map(|include| (include.module.to_string(), include.path.to_string()))
        .collect();
    let found =
        ctx.partition(RustIndex::TEMPLATES).begins_with(TemplatesKey::prefix().file(file)).execute()?;
    let mut templates: Vec<syntax::Template> = Vec::new();
    for record in found.records() {
        if let Some(template) = record.as_template() {
            let (name, body) = (template.name.to_string(), template.body.to_string());
            templates.push(syntax::Template { name, body, mods: Vec::new() });
        }
        let (Some(record), Some(template)) = (record.as_template_mod(), templates.last_mut()) else {
            continue;
        };
        template.mods.push(ModDecl {
            module: record.module.to_string(),
            name: record.name.to_string(),
            inline: record.inline,
            paths: Vec::new(),
            conditional_paths: false,
            cfg: record.cfg,
            opaque: false,
            span: Span::default(),
        });
    }
    let found = ctx.partition(RustIndex::CALLS).begins_with(CallsKey::prefix().file(file)).execute()?;
    let calls = found
        .records()
        .filter_map(|record| record.as_macro_call())
        .map(|call| (call.module.to_string(), call.name.to_string()))
        .collect();
    Ok(Outline { mods, exports, includes, templates, calls })
}

/// `Scopes` answered by reading through a task's context (so every answer is a
/// recorded read), each question asked of the database once per run.
struct ContextScopes<'c> {
    ctx: &'c TaskContext<RustIndex>,
    modules: HashMap<(u32, String), Vec<(u32, String)>>,
    lookups: HashMap<(u32, String, String), Lookup>,
    open: HashMap<(u32, String), bool>,
    globs: HashMap<(u32, String), Vec<analysis::Glob>>,
    deps: HashMap<(u32, String), Option<Dep>>,
    macros: HashMap<(u32, String, String), Option<(u32, String)>>,
    facts: HashMap<u32, PackageFacts>,
    memo: analysis::ResolutionMemo,
    failed: Option<TaskError>,
}

impl ContextScopes<'_> {
    fn note<T: Default>(&mut self, result: Result<T, TaskError>) -> T {
        result.unwrap_or_else(|error| {
            self.failed.get_or_insert(error);
            T::default()
        })
    }
}

impl Scopes for ContextScopes<'_> {
    fn module(&mut self, package: u32, path: &str) -> Vec<(u32, String)> {
        if let Some(found) = self.modules.get(&(package, path.to_owned())) {
            return found.clone();
        }
        let ctx = self.ctx;
        let found: Vec<(u32, String)> = self.note((|| {
            let prefix = ModulesKey::prefix().package(package).path(path);
            let found = ctx.partition(RustIndex::MODULES).begins_with(prefix).execute()?;
            Ok(found
                .records()
                .filter_map(|r| r.as_module().map(|m| (m.file.to_native(), m.inline.to_string())))
                .collect())
        })());
        self.modules.insert((package, path.to_owned()), found.clone());
        found
    }

    fn lookup(&mut self, file: u32, inline: &str, name: &str) -> Lookup {
        let key = (file, inline.to_owned(), name.to_owned());
        if let Some(found) = self.lookups.get(&key) {
            return *found;
        }
        let ctx = self.ctx;
        let found = self.note((|| {
            let prefix = ScopeKey::prefix().file(file).module(inline).name(name);
            let found = ctx.partition(RustIndex::SCOPE).begins_with(prefix).execute()?;
            let kinds: Vec<Kind> =
                found.records().filter_map(|r| r.as_scope_entry().map(|e| Kind::from_code(e.kind))).collect();
            Ok(lookup_of(&kinds))
        })());
        self.lookups.insert(key, found);
        found
    }

    fn is_open(&mut self, file: u32, inline: &str) -> bool {
        if let Some(found) = self.open.get(&(file, inline.to_owned())) {
            return *found;
        }
        let ctx = self.ctx;
        let found = ctx.partition(RustIndex::OPEN).exact(OpenKey::new(file, inline)).count().and_then(|n| {
            Ok(n > 0
                || ctx.partition(RustIndex::UNEXPANDED).exact(UnexpandedKey::new(file, inline)).count()? > 0)
        });
        let found = self.note(found);
        self.open.insert((file, inline.to_owned()), found);
        found
    }

    fn globs(&mut self, file: u32, inline: &str) -> Vec<analysis::Glob> {
        let key = (file, inline.to_owned());
        if let Some(found) = self.globs.get(&key) {
            return found.clone();
        }
        let ctx = self.ctx;
        let found: Vec<analysis::Glob> = self.note((|| {
            let found = ctx
                .partition(RustIndex::GLOBS)
                .begins_with(GlobsKey::prefix().file(file).module(inline))
                .execute()?;
            Ok(found
                .records()
                .filter_map(|r| r.as_glob_import())
                .map(|glob| (glob.path.iter().map(ToString::to_string).collect(), glob.cfg))
                .collect())
        })());
        self.globs.insert(key, found.clone());
        found
    }

    fn dependency(&mut self, package: u32, name: &str) -> Option<Dep> {
        let key = (package, name.to_owned());
        if let Some(found) = self.deps.get(&key) {
            return *found;
        }
        let ctx = self.ctx;
        let found = self.note((|| {
            let found = ctx.partition(RustIndex::DEPS).exact(DepsKey::new(package, name)).execute()?;
            Ok(found.records().find_map(|r| {
                let dep = r.as_dependency()?;
                let target = dep.target.to_native();
                Some(((target != u32::MAX).then_some(target), dep.kinds))
            }))
        })());
        self.deps.insert(key, found);
        found
    }

    fn exported_macro(&mut self, package: u32, root: &str, name: &str) -> Option<(u32, String)> {
        let key = (package, root.to_owned(), name.to_owned());
        if let Some(found) = self.macros.get(&key) {
            return found.clone();
        }
        let ctx = self.ctx;
        let found = self.note((|| {
            let found = ctx
                .partition(RustIndex::CRATE_MACROS)
                .exact(CrateMacrosKey::new(package, root, name))
                .execute()?;
            Ok(found
                .records()
                .find_map(|r| r.as_crate_macro().map(|m| (m.file.to_native(), m.module.to_string()))))
        })());
        self.macros.insert(key, found.clone());
        found
    }

    fn memo(&mut self) -> &mut analysis::ResolutionMemo {
        &mut self.memo
    }

    fn facts(&mut self, package: u32) -> PackageFacts {
        if let Some(found) = self.facts.get(&package) {
            return *found;
        }
        let ctx = self.ctx;
        let found = self.note((|| {
            let found = ctx.partition(RustIndex::PACKAGES).exact(PackagesKey::new(package)).execute()?;
            Ok(found
                .records()
                .find_map(|r| {
                    r.as_package().map(|p| PackageFacts {
                        edition: p.edition.to_native(),
                        declared: p.declared,
                        unverified: p.unverified,
                    })
                })
                .unwrap_or_default())
        })());
        self.facts.insert(package, found);
        found
    }
}

/// Items win over imports; the first item in source order wins among items.
pub fn lookup_of(kinds: &[Kind]) -> Lookup {
    let first = |wanted: fn(&Kind) -> bool| kinds.iter().copied().find(wanted);
    match first(|kind| !matches!(kind, Kind::Import | Kind::Macro)).or(first(|kind| *kind == Kind::Macro)) {
        Some(kind) => Lookup::Def(kind),
        None if kinds.is_empty() => Lookup::Nothing,
        None => Lookup::Import,
    }
}

fn encode_resolution(resolution: &Resolution) -> Resolved {
    let (status, file, module, name, segment) = match resolution {
        Resolution::Def { file, module, name } => (0, *file, module.clone(), name.clone(), 0),
        Resolution::Module { package, path } => (1, *package, path.clone(), String::new(), 0),
        Resolution::Import { file, module, name } => (2, *file, module.clone(), name.clone(), 0),
        Resolution::External => (3, 0, String::new(), String::new(), 0),
        Resolution::Unknown => (4, 0, String::new(), String::new(), 0),
        Resolution::Unresolved { segment } => (UNRESOLVED, 0, String::new(), String::new(), *segment),
    };
    Resolved { status, file, module, name, segment }
}

fn decode_resolution(resolved: &ArchivedResolved) -> Resolution {
    let resolved = resolved.to_owned();
    match resolved.status {
        0 => Resolution::Def {
            file: resolved.file,
            module: resolved.module.clone(),
            name: resolved.name.clone(),
        },
        1 => Resolution::Module { package: resolved.file, path: resolved.module.clone() },
        2 => Resolution::Import {
            file: resolved.file,
            module: resolved.module.clone(),
            name: resolved.name.clone(),
        },
        3 => Resolution::External,
        5 => Resolution::Unresolved { segment: resolved.segment },
        _ => Resolution::Unknown,
    }
}

fn resolve(ctx: &TaskContext<RustIndex>, file: u32) -> Result<(), TaskError> {
    ctx.spawn(format!("diagnostics:{file}"));
    let home = ctx.partition(RustIndex::FILE_MODULES).exact(FileModulesKey::new(file)).execute()?;
    let Some(home) = home.records().find_map(|r| r.as_file_module().map(|home| home.to_owned())) else {
        return Ok(());
    };
    let imports: Vec<(u32, String, Vec<String>, bool)> = ctx
        .partition(RustIndex::IMPORTS)
        .begins_with(ImportsKey::prefix().file(file))
        .execute()?
        .iter()
        .filter_map(|hit| {
            let import = hit.record().as_import()?;
            Some((
                ImportsKey::decode(hit.sort_key())?.seq,
                import.module.to_string(),
                import.path.iter().map(ToString::to_string).collect(),
                import.cfg,
            ))
        })
        .collect();
    let type_uses: Vec<(u32, String, Vec<String>, bool)> = ctx
        .partition(RustIndex::TYPE_USES)
        .begins_with(TypeUsesKey::prefix().file(file))
        .execute()?
        .iter()
        .filter_map(|hit| {
            let used = hit.record().as_type_use()?;
            Some((
                TypeUsesKey::decode(hit.sort_key())?.seq,
                used.module.to_string(),
                used.path.iter().map(ToString::to_string).collect(),
                used.cfg,
            ))
        })
        .collect();
    let mut scopes = ContextScopes {
        ctx,
        modules: HashMap::new(),
        lookups: HashMap::new(),
        open: HashMap::new(),
        globs: HashMap::new(),
        deps: HashMap::new(),
        macros: HashMap::new(),
        facts: HashMap::new(),
        memo: analysis::ResolutionMemo::default(),
        failed: None,
    };
    let mut unknown = [0u32; 2];
    for (what, list) in [(IMPORT, &imports), (TYPE_USE, &type_uses)] {
        for (seq, inline, path, item_cfg) in list {
            let module =
                if inline.is_empty() { home.path.to_string() } else { format!("{}::{inline}", home.path) };
            // A quiet file's names live in a scope this index cannot follow.
            let item_cfg = *item_cfg || home.quiet;
            let (cfg, ty) = (item_cfg || home.cfg, what == TYPE_USE);
            let site = Site { package: home.package, module: &module, file, inline, cfg, ty };
            let resolution = analysis::resolve_path(&mut scopes, site, path, item_cfg);
            if let Some(error) = scopes.failed.take() {
                return Err(error);
            }
            // Most paths name things outside the workspace (`Vec`, `std::fmt`): an
            // absent resolution says so, and the commit stays small; undecided ones
            // are only counted.
            match resolution {
                Resolution::External => continue,
                Resolution::Unknown => {
                    unknown[usize::from(what == TYPE_USE)] += 1;
                    continue;
                }
                _ => {}
            }
            ctx.put(
                RustIndex::RESOLUTIONS,
                ResolutionsKey::new(file, what, *seq),
                encode_resolution(&resolution),
            )?;
        }
    }
    if unknown != [0, 0] {
        let tally = UnknownPaths { imports: unknown[0], types: unknown[1] };
        ctx.put(RustIndex::UNKNOWN_PATHS, UnknownPathsKey::new(file), tally)?;
    }
    Ok(())
}

fn diagnostics(ctx: &TaskContext<RustIndex>, file: u32) -> Result<(), TaskError> {
    // A file no crate's module tree reaches is not compiled, and a quiet one's
    // scope cannot be followed: no diagnostics.
    let home = ctx.partition(RustIndex::FILE_MODULES).exact(FileModulesKey::new(file)).execute()?;
    if !home.records().any(|r| r.as_file_module().is_some_and(|home| !home.quiet)) {
        return Ok(());
    }
    drop(home);
    let error = ctx.partition(RustIndex::PARSE_ERRORS).exact(ParseErrorsKey::new(file)).execute()?;
    let error = error
        .records()
        .find_map(|r| r.as_parse_error())
        .map(|e| SyntaxError { message: e.message.to_string(), span: record_span!(e) });
    let defs: Vec<Def> = ctx
        .partition(RustIndex::SYMBOLS)
        .begins_with(SymbolsKey::prefix().file(file))
        .execute()?
        .records()
        .filter_map(|r| r.as_symbol())
        .map(|s| Def {
            module: s.module.to_string(),
            name: s.name.to_string(),
            kind: Kind::from_code(s.kind),
            container: s.container.as_ref().map(ToString::to_string),
            public: s.public,
            cfg: s.cfg,
            span: record_span!(s),
        })
        .collect();
    // Only the positions diagnostics point at: imports and `mod`s, and the type uses
    // that do not resolve.
    let mut spans: HashMap<(u8, u32), Vec<Span>> = HashMap::new();
    for what in [IMPORT, MOD] {
        let prefix = PositionsKey::prefix().file(file).what(what);
        for hit in ctx.partition(RustIndex::POSITIONS).begins_with(prefix).execute()?.iter() {
            if let (Some(key), Some(position)) =
                (PositionsKey::decode(hit.sort_key()), hit.record().as_position())
            {
                spans.insert((key.what, key.seq), vec![record_span!(position)]);
            }
        }
    }
    let resolved =
        ctx.partition(RustIndex::RESOLUTIONS).begins_with(ResolutionsKey::prefix().file(file)).execute()?;
    // Every import's resolution (a diagnostic shows the import's path), and only the
    // unresolved ones of type uses (most resolve: decoding them would be waste).
    let by_seq: HashMap<(u8, u32), Resolution> = resolved
        .iter()
        .filter_map(|hit| {
            let key = ResolutionsKey::decode(hit.sort_key())?;
            let resolved = hit.record().as_resolved()?;
            let needed = key.what == IMPORT || resolved.status == UNRESOLVED;
            needed.then(|| ((key.what, key.seq), decode_resolution(resolved)))
        })
        .collect();
    let mut paths: Vec<(u8, u32, Vec<String>)> = Vec::new();
    let imports = ctx.partition(RustIndex::IMPORTS).begins_with(ImportsKey::prefix().file(file)).execute()?;
    for hit in imports.iter() {
        let (Some(key), Some(import)) = (ImportsKey::decode(hit.sort_key()), hit.record().as_import()) else {
            continue;
        };
        if by_seq.contains_key(&(IMPORT, key.seq)) {
            paths.push((IMPORT, key.seq, import.path.iter().map(ToString::to_string).collect()));
        }
    }
    for (&(what, seq), resolution) in &by_seq {
        if what != TYPE_USE || !matches!(resolution, Resolution::Unresolved { .. }) {
            continue;
        }
        let used = ctx.partition(RustIndex::TYPE_USES).exact(TypeUsesKey::new(file, seq)).execute()?;
        let Some(used) = used.records().find_map(|r| r.as_type_use().map(|u| u.to_owned())) else { continue };
        let at =
            ctx.partition(RustIndex::POSITIONS).exact(PositionsKey::new(file, TYPE_USE, seq)).execute()?;
        let occurrences = at.records().find_map(|r| r.as_occurrences().map(|o| spans_of(o).collect()));
        spans.insert((TYPE_USE, seq), occurrences.unwrap_or_default());
        paths.push((TYPE_USE, seq, used.path));
    }
    paths.sort();
    let no_spans = Vec::new();
    let listed: Vec<(u8, analysis::Resolved<'_>)> = paths
        .iter()
        .map(|(what, seq, path)| {
            let spans = spans.get(&(*what, *seq)).unwrap_or(&no_spans);
            (*what, (path.as_slice(), spans.as_slice(), &by_seq[&(*what, *seq)]))
        })
        .collect();
    let uses: Vec<analysis::Resolved<'_>> =
        listed.iter().filter(|(w, _)| *w == IMPORT).map(|(_, r)| *r).collect();
    let types: Vec<analysis::Resolved<'_>> =
        listed.iter().filter(|(w, _)| *w == TYPE_USE).map(|(_, r)| *r).collect();
    let missing: Vec<(Span, String)> = ctx
        .partition(RustIndex::MISSING)
        .begins_with(MissingKey::prefix().file(file))
        .execute()?
        .iter()
        .filter_map(|hit| {
            let seq = MissingKey::decode(hit.sort_key())?.seq;
            Some((
                spans.get(&(MOD, seq)).and_then(|s| s.first()).copied().unwrap_or_default(),
                hit.record().as_missing_module()?.message.to_string(),
            ))
        })
        .collect();
    let found = analysis::diagnostics(error.as_ref(), &defs, &uses, &types, &missing);
    for (seq, diagnostic) in found.into_iter().enumerate() {
        let span = diagnostic.span;
        let problem = Problem {
            code: diagnostic.code,
            message: diagnostic.message,
            line: span.line,
            column: span.column,
            end_line: span.end_line,
            end_column: span.end_column,
        };
        ctx.put(RustIndex::DIAGNOSTICS, DiagnosticsKey::new(file, seq as u32), problem)?;
    }
    Ok(())
}

/// How well `name` matches `needle` (lower case) ignoring case: 0 equal, 1 a prefix,
/// 2 inside it; `None` when it does not hold it. An ASCII name (nearly every one) is
/// compared in place: lower-casing each name into a new string was a tenth of the
/// first query after a restart.
fn match_rank(name: &str, needle: &str) -> Option<u8> {
    if !name.is_ascii() {
        let name = name.to_lowercase();
        return if name == needle {
            Some(0)
        } else if name.starts_with(needle) {
            Some(1)
        } else {
            name.contains(needle).then_some(2)
        };
    }
    let (name, needle) = (name.as_bytes(), needle.as_bytes());
    if name.len() < needle.len() {
        None
    } else if name[..needle.len()].eq_ignore_ascii_case(needle) {
        Some(if name.len() == needle.len() { 0 } else { 1 })
    } else {
        name.windows(needle.len().max(1)).any(|window| window.eq_ignore_ascii_case(needle)).then_some(2)
    }
}
