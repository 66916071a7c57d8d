//! The workspace as the indexing thread holds it: the pipeline of `rust_index`, the
//! current text of every file (the editor's for open files, the disk's for the
//! others), and the diagnostics last published for each file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lsp_types::{
    Diagnostic as LspDiagnostic, DiagnosticSeverity, FileChangeType, FileEvent, NumberOrString,
    PublishDiagnosticsParams, TextDocumentContentChangeEvent, Uri,
};

use super::analysis::Diagnostic;
use super::chunk_index::{ChunkIndex, RustIndex};
use super::handlers::{Files, Published};
use super::sample::{self, Sample};
use super::session::Pipeline;
use super::text;

/// A change the editor reported.
#[derive(Debug)]
pub enum Change {
    /// The editor opened a document with this text.
    Open { uri: Uri, text: String, version: i32 },
    /// The editor changed an open document.
    Edit { uri: Uri, changes: Vec<TextDocumentContentChangeEvent>, version: i32 },
    /// The editor closed a document: the file's text is the disk's again.
    Close { uri: Uri },
    /// Files changed on disk behind the editor's back.
    Watched(Vec<FileEvent>),
}

/// Why the workspace could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The workspace could not be read.
    #[error("cannot read the workspace at {}: {error}", root.display())]
    Read { root: PathBuf, error: std::io::Error },
    /// The cache directory could not be opened (the error says what to do).
    #[error("cannot open the cache {}: {error}", dir.display())]
    Cache { dir: PathBuf, error: chunkdb::Error },
}

/// The workspace on the indexing thread.
pub struct Host {
    index: ChunkIndex,
    /// Each package's directory (canonical), by package index.
    packages: Vec<PathBuf>,
    /// The current text of every file.
    texts: HashMap<u32, String>,
    /// The files the editor holds open, with the version of their text.
    open: HashMap<u32, i32>,
    files: Arc<Files>,
    /// Whether the index lives in a cache directory.
    cached: bool,
    /// The diagnostics last published, by file, with the file's URI (kept to clear
    /// them once the file is gone), as the client got them (positions in UTF-16, so
    /// an edit that moves them only in UTF-16 republishes them). Files without any
    /// are absent.
    published: HashMap<u32, (Uri, Vec<LspDiagnostic>)>,
}

impl Host {
    /// Reads the workspace at `root` and builds its index (warm from `cache` when it
    /// holds an earlier run's), calling `progress` after each task run with how many
    /// have run and about how many the build runs, and `log` with what the user
    /// should know (a cache that could not be used).
    pub fn start(
        root: &Path,
        cache: Option<&Path>,
        progress: &(dyn Fn(usize, usize) + Sync),
        log: &dyn Fn(String),
    ) -> Result<Host, StartError> {
        let sample =
            sample::load_tree(root).map_err(|error| StartError::Read { root: root.to_owned(), error })?;
        let (mut index, cached) = match cache {
            Some(dir) => match open_cache(dir, log) {
                Ok(db) => (
                    ChunkIndex::resume(&sample, db)
                        .map_err(|error| StartError::Cache { dir: dir.to_owned(), error })?,
                    true,
                ),
                Err(error) => {
                    // Another version's cache, or one another server holds: index without it.
                    log(format!("{}; indexing without it", StartError::Cache { dir: dir.to_owned(), error }));
                    (ChunkIndex::load(&sample), false)
                }
            },
            None => (ChunkIndex::load(&sample), false),
        };
        // Three tasks a file (parse, resolve, diagnostics) and one a package (modules).
        let expected = 3 * sample.file_count() + sample.packages.len();
        let run = std::sync::atomic::AtomicUsize::new(0);
        let each = |_: &str| progress(run.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, expected);
        index.drive_observed(&each).expect("the pipeline's tasks do not fail");
        let mut host = Host {
            index,
            packages: Vec::new(),
            texts: HashMap::new(),
            open: HashMap::new(),
            files: Arc::default(),
            cached,
            published: HashMap::new(),
        };
        host.adopt(&sample);
        let spelled = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
        if let Ok(canonical) = std::fs::canonicalize(root)
            && canonical != spelled
        {
            Arc::make_mut(&mut host.files).spelled = Some((canonical, spelled));
        }
        Ok(host)
    }

    /// Takes the package directories and file texts of `sample`, just loaded.
    fn adopt(&mut self, sample: &Sample) {
        let mut files = Files::default();
        for (index, package) in sample.packages.iter().enumerate() {
            let dir = std::fs::canonicalize(&package.dir).unwrap_or_else(|_| package.dir.clone());
            for (path, text) in &package.files {
                if let Some(file) = self.index.file_id(index, path) {
                    files.by_path.insert(dir.join(path), file);
                    files.paths.insert(file, dir.join(path));
                    self.texts.insert(file, text.clone());
                }
            }
            self.packages.push(dir);
        }
        self.files = Arc::new(files);
    }

    /// The state requests are answered from.
    pub fn published(&self) -> Published {
        Published {
            view: self.index.view(),
            files: Arc::clone(&self.files),
            versions: Arc::new(self.open.clone()),
        }
    }

    /// `path` as the index spells it (under the canonical root).
    fn canonical(&self, path: &Path) -> PathBuf {
        match &self.files.spelled {
            Some((canonical, client)) if path.starts_with(client) => {
                canonical.join(path.strip_prefix(client).expect("checked just above"))
            }
            _ => path.to_owned(),
        }
    }

    /// Whether the index lives in a cache directory (it may have been refused).
    pub fn cached(&self) -> bool {
        self.cached
    }

    /// How many files the workspace has.
    pub fn file_count(&self) -> usize {
        self.texts.len()
    }

    /// The package and package-relative path of `path` (which need not exist): the
    /// innermost package directory holding it.
    fn locate(&self, path: &Path) -> Option<(usize, String)> {
        let (dir, name) = (path.parent()?, path.file_name()?);
        let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()).join(name);
        sample::innermost_package(self.packages.iter().map(PathBuf::as_path), &absolute)
    }

    fn file_of(&self, uri: &Uri) -> Option<u32> {
        self.files.id_of(uri)
    }

    /// Applies `change`; returns what to tell the user, if anything.
    pub fn apply(&mut self, change: Change) -> Vec<String> {
        let mut log = Vec::new();
        match change {
            Change::Open { uri, text, version } => match self.file_of(&uri) {
                Some(file) => {
                    self.open.insert(file, version);
                    self.set(file, text);
                }
                None => match self.add(&uri, text) {
                    Some(file) => {
                        self.open.insert(file, version);
                    }
                    None => {
                        log.push(format!("{} is outside the workspace's packages: not indexed", uri.as_str()))
                    }
                },
            },
            Change::Edit { uri, changes, version } => {
                let Some(file) = self.file_of(&uri) else {
                    log.push(format!(
                        "a change to {}, which the workspace does not hold, was ignored",
                        uri.as_str()
                    ));
                    return log;
                };
                let mut text = self.texts.get(&file).cloned().unwrap_or_default();
                for change in changes {
                    if text::apply_change(&mut text, change) {
                        log.push(format!(
                            "a change to {} lay past the end of its text: applied at the end",
                            uri.as_str()
                        ));
                    }
                }
                self.open.insert(file, version);
                self.set(file, text);
            }
            Change::Close { uri } => {
                let Some(file) = self.file_of(&uri) else { return log };
                self.open.remove(&file);
                // The editor's unsaved text goes; what is on disk counts again.
                self.reload(&uri, file, &mut log);
            }
            Change::Watched(events) => {
                for event in events {
                    let Some(path) = text::path_of(&event.uri) else { continue };
                    // A folder deleted (or renamed away) is one event: its files go.
                    let under = self.canonical(&path);
                    let inside: Vec<u32> = (event.typ == FileChangeType::DELETED)
                        .then(|| {
                            self.files.paths.iter().filter(|(_, p)| p.starts_with(&under) && **p != under)
                        })
                        .into_iter()
                        .flatten()
                        .filter(|(file, _)| !self.open.contains_key(file))
                        .map(|(file, _)| *file)
                        .collect();
                    if !inside.is_empty() {
                        inside.into_iter().for_each(|file| self.remove(file));
                        continue;
                    }
                    if path.extension().is_none_or(|extension| extension != "rs") {
                        if path.file_name().is_some_and(|name| name == "Cargo.toml") {
                            log.push(format!(
                                "{} changed: restart the server to re-read the manifests",
                                path.display()
                            ));
                        }
                        continue;
                    }
                    let known = self.file_of(&event.uri);
                    // The editor's text of an open file wins over the disk's.
                    if known.is_some_and(|file| self.open.contains_key(&file)) {
                        continue;
                    }
                    match (event.typ, known) {
                        (FileChangeType::DELETED, Some(file)) => self.remove(file),
                        (FileChangeType::DELETED, None) => {}
                        (_, Some(file)) => self.reload(&event.uri, file, &mut log),
                        (_, None) => match read(&path) {
                            Ok(Some(text)) => {
                                if self.add(&event.uri, text).is_none() {
                                    log.push(format!(
                                        "{} is outside the workspace's packages: not indexed",
                                        path.display()
                                    ));
                                }
                            }
                            Ok(None) => {}
                            Err(message) => log.push(message),
                        },
                    }
                }
            }
        }
        log
    }

    /// Sets file `file`'s text to what is on disk (removing it if it is gone).
    fn reload(&mut self, uri: &Uri, file: u32, log: &mut Vec<String>) {
        let Some(path) = text::path_of(uri) else { return };
        match read(&path) {
            Ok(Some(text)) => self.set(file, text),
            Ok(None) => self.remove(file),
            Err(message) => log.push(message),
        }
    }

    fn set(&mut self, file: u32, text: String) {
        if self.texts.get(&file) == Some(&text) {
            return;
        }
        let Some(path) = self.files.paths.get(&file).cloned() else { return };
        let Some((package, relative)) = self.locate(&path) else { return };
        self.index.set_text(package, &relative, &text);
        self.texts.insert(file, text);
    }

    /// Adds the file at `uri` with `text`, if it lies in a package.
    fn add(&mut self, uri: &Uri, text: String) -> Option<u32> {
        let path = text::path_of(uri)?;
        let (package, relative) = self.locate(&path)?;
        self.index.set_text(package, &relative, &text);
        let file = self.index.file_id(package, &relative)?;
        let path = self.packages[package].join(&relative);
        let files = Arc::make_mut(&mut self.files);
        files.by_path.insert(path.clone(), file);
        files.paths.insert(file, path);
        self.texts.insert(file, text);
        Some(file)
    }

    fn remove(&mut self, file: u32) {
        let Some(path) = self.files.paths.get(&file).cloned() else { return };
        if let Some((package, relative)) = self.locate(&path) {
            self.index.remove_file(package, &relative);
        }
        let files = Arc::make_mut(&mut self.files);
        files.paths.remove(&file);
        files.by_path.remove(&path);
        self.texts.remove(&file);
        self.open.remove(&file);
    }

    /// Re-runs what the changes made stale; returns the diagnostics to publish: those
    /// of every file whose diagnostics differ from the last published (empty ones
    /// clear a file's).
    pub fn check(&mut self) -> Vec<PublishDiagnosticsParams> {
        let report = self.index.drive().expect("the pipeline's tasks do not fail");
        let mut candidates: HashSet<u32> = report
            .ran
            .iter()
            .filter_map(|task| task.ident().name()?.strip_prefix("diagnostics:")?.parse().ok())
            .collect();
        // Files removed take their diagnostics with them.
        candidates.extend(self.published.keys().filter(|file| !self.texts.contains_key(file)));
        self.publish(candidates)
    }

    /// The diagnostics of every file that has any: what to publish first.
    pub fn initial_diagnostics(&mut self) -> Vec<PublishDiagnosticsParams> {
        let all = self.texts.keys().copied().collect();
        self.publish(all)
    }

    fn publish(&mut self, candidates: HashSet<u32>) -> Vec<PublishDiagnosticsParams> {
        let view = self.index.view();
        let mut out = Vec::new();
        let mut candidates: Vec<u32> = candidates.into_iter().collect();
        candidates.sort_unstable();
        for file in candidates {
            let text = self.texts.get(&file).map_or("", String::as_str);
            let now: Vec<LspDiagnostic> = if self.texts.contains_key(&file) {
                view.diagnostics_of(file).iter().map(|diagnostic| lsp_diagnostic(text, diagnostic)).collect()
            } else {
                Vec::new()
            };
            let before = self.published.get(&file).map_or(&[][..], |(_, before)| before.as_slice());
            if now.as_slice() == before {
                continue;
            }
            let uri =
                self.files.uri_of(file).or_else(|| self.published.get(&file).map(|(uri, _)| uri.clone()));
            let Some(uri) = uri else { continue };
            out.push(PublishDiagnosticsParams {
                uri: uri.clone(),
                diagnostics: now.clone(),
                version: self.open.get(&file).copied(),
            });
            if now.is_empty() {
                self.published.remove(&file);
            } else {
                self.published.insert(file, (uri, now));
            }
        }
        out
    }

    /// Makes everything committed so far durable in the cache directory, if any.
    pub fn flush(&self) -> chunkdb::Result<()> {
        self.index.db().flush()
    }
}

/// Opens the cache in `dir`. A damaged one is opened again dropping what is damaged
/// (those tasks are recomputed): a cache is only ever a head start.
fn open_cache(dir: &Path, log: &dyn Fn(String)) -> chunkdb::Result<chunkdb::Database<RustIndex>> {
    match chunkdb::Database::open(dir) {
        Err(error @ (chunkdb::Error::Corrupt { .. } | chunkdb::Error::CorruptManifest { .. })) => {
            log(format!(
                "the cache in {} is damaged ({error}): what is damaged is recomputed",
                dir.display()
            ));
            chunkdb::OpenOptions::new().discard_damaged(true).check_at_open(true).open(dir)
        }
        opened => opened,
    }
}

fn lsp_diagnostic(text: &str, diagnostic: &Diagnostic) -> LspDiagnostic {
    LspDiagnostic {
        range: text::range_of(text, diagnostic.span),
        severity: Some(DiagnosticSeverity::ERROR),
        code: Some(NumberOrString::String(diagnostic.code.clone())),
        source: Some("chunkdb".into()),
        message: diagnostic.message.clone(),
        ..LspDiagnostic::default()
    }
}

/// The text of the file at `path`: `None` when it is gone, an error message when it
/// cannot be read or is not UTF-8.
fn read(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{} is not UTF-8: not indexed (Rust source must be UTF-8)", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}
