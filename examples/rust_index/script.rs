//! The scripted editing session on the chunkdb pipeline: each step applies an edit,
//! drives the tasks to a fixed point and reports what ran and how the diagnostics
//! changed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::analysis::Diagnostic;
use super::chunk_index::{ChunkIndex, RustIndex};
use super::sample::Sample;
use super::session::{self, Edit, Pipeline};
use super::syntax::Span;

/// What one step did.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// What the edit was.
    pub label: String,
    /// Tasks made stale by the edit itself, before anything re-ran.
    pub stale: usize,
    /// Task runs, by stage (`parse`, `modules`, `resolve`, `diagnostics`).
    pub ran: BTreeMap<String, usize>,
    /// Runs whose output equalled the previous one (nothing downstream re-ran).
    pub cut_off: usize,
    /// Dependency waves.
    pub rounds: usize,
    /// Time from applying the edit to a fixed point.
    pub elapsed: Duration,
    /// Diagnostics that appeared.
    pub added: Vec<(String, Diagnostic)>,
    /// Diagnostics that went away.
    pub removed: Vec<(String, Diagnostic)>,
    /// The edits applied.
    pub edits: Vec<Edit>,
}

impl StepReport {
    /// Total task runs.
    pub fn runs(&self) -> usize {
        self.ran.values().sum()
    }
}

/// Where a rename happens: ((package, path, span of the name), old name, new name,
/// how many other files import it).
type RenameTarget = ((usize, String, Span), String, String, usize);

/// The chunkdb pipeline with the texts it was given, so edits can be derived from
/// the current state.
pub struct Session {
    /// The pipeline.
    pub index: ChunkIndex,
    /// The current texts.
    pub sample: Sample,
}

/// How a restart from a cache directory went.
#[derive(Clone, Copy, Debug)]
pub struct Restart {
    /// Whether the directory held an earlier run's index.
    pub warm: bool,
    /// Opening the directory.
    pub open: Duration,
    /// Opening and answering the probe query (only opening, without one).
    pub first_query: Duration,
    /// How many symbols that query found.
    pub symbols: usize,
    /// Re-submitting every file's text.
    pub resubmit: Duration,
    /// Driving to convergence after the re-submission.
    pub drive: Duration,
    /// The directory's segment bytes after the restart's flush.
    pub disk_bytes: u64,
}

impl Session {
    /// Loads `sample` and builds it from scratch; returns the session and the time.
    pub fn build(sample: Sample) -> (Session, StepReport) {
        Self::build_observed(sample, &|_| {})
    }

    /// As [`build`](Self::build), calling `each` with every task's name before it runs.
    pub fn build_observed(sample: Sample, each: &(dyn Fn(&str) + Sync)) -> (Session, StepReport) {
        let started = Instant::now();
        let mut index = ChunkIndex::load(&sample);
        let stale = index.db().stale().len();
        let report = index.drive_observed(each).expect("the pipeline's tasks do not fail");
        let elapsed = started.elapsed();
        let session = Session { index, sample };
        let added = session.index.diagnostics();
        let step = StepReport {
            label: "initial build".into(),
            stale,
            ran: by_stage(&report.ran),
            cut_off: report.cut_off.len(),
            rounds: report.rounds,
            elapsed,
            added,
            removed: Vec::new(),
            edits: Vec::new(),
        };
        (session, step)
    }

    /// Opens the index persisted in `dir` (empty the first time), answers the
    /// workspace-symbol query `probe` (if any) from what it holds, re-submits `sample`
    /// and drives: a warm restart when `dir` holds an earlier run's index.
    pub fn restart(
        sample: Sample,
        dir: &std::path::Path,
        probe: Option<&str>,
    ) -> chunkdb::Result<(Session, StepReport, Restart)> {
        let started = Instant::now();
        let db = chunkdb::Database::open(dir)?;
        let open = started.elapsed();
        let warm = db.clock() > 0;
        let symbols =
            probe.map_or(0, |query| ChunkIndex::reader(db.clone()).workspace_symbols(query, 5).len());
        let first_query = started.elapsed();
        let resubmitted = Instant::now();
        let mut index = ChunkIndex::resume(&sample, db)?;
        let resubmit = resubmitted.elapsed();
        let stale = index.db().stale().len();
        let report = index.drive().expect("the pipeline's tasks do not fail");
        let elapsed = started.elapsed();
        index.db().flush()?;
        let restart = Restart {
            warm,
            open,
            first_query,
            symbols,
            resubmit,
            drive: elapsed - first_query - resubmit,
            disk_bytes: index.db().disk_bytes(),
        };
        let session = Session { index, sample };
        let added = session.index.diagnostics();
        let step = StepReport {
            label: if warm { "warm restart" } else { "cold build into the cache" }.into(),
            stale,
            ran: by_stage(&report.ran),
            cut_off: report.cut_off.len(),
            rounds: report.rounds,
            elapsed,
            added,
            removed: Vec::new(),
            edits: Vec::new(),
        };
        Ok((session, step, restart))
    }

    /// Brings every file back to its text in `original` (and removes files it does
    /// not have), as one change: what a cache should hold for the next restart.
    pub fn revert(&mut self, original: &Sample) -> StepReport {
        let mut edits = Vec::new();
        for (package, files) in self.sample.packages.iter().enumerate() {
            for (path, text) in &files.files {
                match original.packages[package].files.iter().find(|(p, _)| p == path) {
                    Some((_, old)) if old != text => {
                        edits.push(Edit::Write { package, path: path.clone(), text: old.clone() });
                    }
                    Some(_) => {}
                    None => edits.push(Edit::Remove { package, path: path.clone() }),
                }
            }
            for (path, text) in &original.packages[package].files {
                if !files.files.iter().any(|(p, _)| p == path) {
                    edits.push(Edit::Write { package, path: path.clone(), text: text.clone() });
                }
            }
        }
        self.step("revert to the texts on disk", &edits)
    }

    /// Applies `edits` (as one change) and drives to a fixed point.
    pub fn step(&mut self, label: impl Into<String>, edits: &[Edit]) -> StepReport {
        let before = self.index.diagnostics();
        let started = Instant::now();
        for edit in edits {
            edit.apply(&mut self.index);
        }
        let stale = self.index.db().stale().len();
        let report = self.index.drive().expect("the pipeline's tasks do not fail");
        let elapsed = started.elapsed();
        for edit in edits {
            self.mirror(edit);
        }
        let after = self.index.diagnostics();
        let (added, removed) = difference(&before, &after);
        StepReport {
            label: label.into(),
            stale,
            ran: by_stage(&report.ran),
            cut_off: report.cut_off.len(),
            rounds: report.rounds,
            elapsed,
            added,
            removed,
            edits: edits.to_vec(),
        }
    }

    fn mirror(&mut self, edit: &Edit) {
        match edit {
            Edit::Write { package, path, text } => {
                let files = &mut self.sample.packages[*package].files;
                match files.iter_mut().find(|(p, _)| p == path) {
                    Some(file) => file.1 = text.clone(),
                    None => {
                        files.push((path.clone(), text.clone()));
                        files.sort();
                    }
                }
            }
            Edit::Remove { package, path } => self.sample.packages[*package].files.retain(|(p, _)| p != path),
        }
    }

    /// The text of a file now.
    pub fn text(&self, package: usize, path: &str) -> String {
        session::text_of(&self.sample, package, path).to_owned()
    }

    /// Plays the scripted session: a body edit, re-submitting a file unchanged,
    /// renaming a function other files import, adding a file (and its `mod` line),
    /// deleting that file, then a syntax error and its fix. Steps whose target the
    /// input lacks are skipped.
    pub fn play(&mut self) -> Vec<StepReport> {
        let mut steps = Vec::new();
        let Some((package, path, offset)) = session::body_edit_target(&self.sample) else { return steps };
        let name = format!("{}/{path}", self.sample.packages[package].name);
        let original = self.text(package, &path);

        let edited = session::insert_at(&original, offset, session::BODY_EDIT);
        let write = |text: &str| Edit::Write { package, path: path.clone(), text: text.to_owned() };
        steps.push(self.step(format!("edit a function body in {name}"), &[write(&edited)]));
        steps.push(self.step(format!("re-submit {name} unchanged"), &[write(&edited)]));

        if let Some((target, old, new, importers)) = self.rename_target() {
            let text = self.text(target.0, &target.1);
            let renamed = rename_at(&text, target.2, &old, &new);
            let label = format!(
                "rename `{old}` to `{new}` in {}/{} ({importers} other file(s) import it)",
                self.sample.packages[target.0].name, target.1
            );
            let edit = Edit::Write { package: target.0, path: target.1.clone(), text: renamed };
            steps.push(self.step(label, &[edit]));
        }

        if let Some((root, module)) = session::add_file_target(&self.sample, package) {
            let file = format!("src/{module}.rs");
            let root_text = format!("{}\nmod {module};\n", self.text(package, &root));
            let package_name = self.sample.packages[package].name.clone();
            let edits = [
                Edit::Write { package, path: file.clone(), text: session::ADDED_FILE.to_owned() },
                Edit::Write { package, path: root.clone(), text: root_text },
            ];
            steps.push(self.step(format!("add {package_name}/{file} and `mod {module};` in {root}"), &edits));
            let remove = Edit::Remove { package, path: file.clone() };
            steps.push(self.step(format!("delete {package_name}/{file}"), &[remove]));
        }

        let broken = session::insert_at(&edited, offset, session::SYNTAX_ERROR);
        steps.push(self.step(format!("type a syntax error in {name}"), &[write(&broken)]));
        steps.push(self.step(format!("fix the syntax error in {name}"), &[write(&edited)]));
        steps
    }

    /// The module-level function other files import most (ties: the first by file
    /// and name), as ((package, path, span of its name), old name, new name, how
    /// many other files import it).
    fn rename_target(&self) -> Option<RenameTarget> {
        let snapshot = self.index.db().snapshot();
        let mut importers: BTreeMap<(u32, String, String), std::collections::BTreeSet<u32>> = BTreeMap::new();
        let resolved = snapshot.partition(RustIndex::RESOLUTIONS).execute().ok()?;
        for hit in resolved.iter() {
            let (Some(key), Some(resolved)) =
                (super::chunk_index::ResolutionsKey::decode(hit.sort_key()), hit.record().as_resolved())
            else {
                continue;
            };
            if key.what == 0 && resolved.status == 0 && resolved.file.to_native() != key.file {
                importers
                    .entry((
                        resolved.file.to_native(),
                        resolved.module.to_string(),
                        resolved.name.to_string(),
                    ))
                    .or_default()
                    .insert(key.file);
            }
        }
        drop(resolved);
        // Renaming inside a module with globs or macro calls would be reported as
        // nothing: resolution cannot tell a missing name there.
        let closed = |file: u32, module: &str| {
            let key = super::chunk_index::OpenKey::new(file, module);
            snapshot.partition(RustIndex::OPEN).exact(key).count().is_ok_and(|n| n == 0)
        };
        let mut ranked: Vec<_> =
            importers.into_iter().filter(|((file, module, _), _)| closed(*file, module)).collect();
        ranked.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        for ((file, module, name), files) in ranked {
            let symbols = snapshot
                .partition(RustIndex::SYMBOLS)
                .begins_with(super::chunk_index::SymbolsKey::prefix().file(file))
                .execute()
                .ok()?;
            let function = symbols.records().filter_map(|r| r.as_symbol()).find(|s| {
                s.container.is_none()
                    && s.module == module
                    && s.name == name
                    && s.kind == super::syntax::Kind::Function.code()
            });
            if let Some(symbol) = function {
                let span = super::chunk_index::record_span!(symbol);
                let display = self.index.file_name(file)?;
                let (package, path) = display.split_once('/')?;
                let package = self.sample.package_named(package)?;
                return Some((
                    (package, path.to_owned(), span),
                    name.clone(),
                    format!("{name}_renamed"),
                    files.len(),
                ));
            }
        }
        None
    }
}

/// `text` with the identifier `old` at `span` replaced by `new`.
pub fn rename_at(text: &str, span: Span, old: &str, new: &str) -> String {
    let line_start: usize = text.split_inclusive('\n').take(span.line as usize - 1).map(str::len).sum();
    let column = text[line_start..].char_indices().nth(span.column as usize).map_or(0, |(at, _)| at);
    let at = line_start + column;
    if text[at..].starts_with(old) {
        format!("{}{new}{}", &text[..at], &text[at + old.len()..])
    } else {
        text.to_owned()
    }
}

/// Runs by stage (`parse:17` counts under `parse`).
pub fn by_stage(ran: &[chunkdb::TaskId]) -> BTreeMap<String, usize> {
    let mut stages = BTreeMap::new();
    for task in ran {
        let name = task.ident().name().unwrap_or_default();
        let stage = name.split_once(':').map_or(name.as_str(), |(stage, _)| stage);
        *stages.entry(stage.to_owned()).or_insert(0) += 1;
    }
    stages
}

/// What is in `after` but not `before`, and the reverse (both sorted).
pub fn difference<T: Ord + Clone>(before: &[T], after: &[T]) -> (Vec<T>, Vec<T>) {
    let added = after.iter().filter(|d| before.binary_search(d).is_err()).cloned().collect();
    let removed = before.iter().filter(|d| after.binary_search(d).is_err()).cloned().collect();
    (added, removed)
}
