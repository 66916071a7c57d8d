//! What both pipelines offer the scripted editing session and the benchmarks, and the
//! edits themselves, chosen deterministically from the input.

#![allow(dead_code)]

use super::analysis::Diagnostic;
use super::sample::Sample;

/// An incremental Rust indexer: chunkdb's or salsa's.
pub trait Pipeline {
    /// Loads `sample`'s packages and files as inputs (computes nothing yet).
    fn load(sample: &Sample) -> Self
    where
        Self: Sized;
    /// Brings every file's diagnostics up to date (the initial build, or the
    /// re-analysis after edits) and returns how many diagnostics there are.
    fn check(&mut self) -> usize;
    /// Sets the text of file `path` of package `package` (adding the file if new).
    fn set_text(&mut self, package: usize, path: &str, text: &str);
    /// Removes file `path` of package `package`.
    fn remove_file(&mut self, package: usize, path: &str);
    /// Every diagnostic, as (`package name/path`, diagnostic), sorted.
    fn diagnostics(&self) -> Vec<(String, Diagnostic)>;
}

/// A scripted edit.
#[derive(Clone, Debug)]
pub enum Edit {
    /// Set a file's text (new or changed).
    Write { package: usize, path: String, text: String },
    /// Remove a file.
    Remove { package: usize, path: String },
}

impl Edit {
    /// Applies it to `pipeline`.
    pub fn apply(&self, pipeline: &mut impl Pipeline) {
        match self {
            Edit::Write { package, path, text } => pipeline.set_text(*package, path, text),
            Edit::Remove { package, path } => pipeline.remove_file(*package, path),
        }
    }
}

/// The file a body edit touches: among files whose first function with a non-empty
/// body is found, the one whose size is closest to the median (ties: first in
/// order), and the byte offset just inside that body's `{`.
pub fn body_edit_target(sample: &Sample) -> Option<(usize, String, usize)> {
    let mut candidates: Vec<(usize, usize, &str, usize)> = Vec::new();
    for (package, p) in sample.packages.iter().enumerate() {
        for (path, text) in &p.files {
            if let Some(offset) = first_body(text) {
                candidates.push((text.len(), package, path, offset));
            }
        }
    }
    let mut sizes: Vec<usize> = candidates.iter().map(|c| c.0).collect();
    sizes.sort_unstable();
    let median = *sizes.get(sizes.len() / 2)?;
    let best = candidates.iter().min_by_key(|c| c.0.abs_diff(median))?;
    Some((best.1, best.2.to_owned(), best.3))
}

/// The byte offset just after the `{` of the first free function with a non-empty
/// body, if the file parses and has one.
fn first_body(text: &str) -> Option<usize> {
    let file = syn::parse_file(text).ok()?;
    let brace = file.items.iter().find_map(|item| match item {
        syn::Item::Fn(f) if !f.block.stmts.is_empty() => Some(f.block.brace_token.span.open().start()),
        _ => None,
    });
    proc_macro2::extra::invalidate_current_thread_spans();
    let brace = brace?;
    let line_start: usize = text.split_inclusive('\n').take(brace.line - 1).map(str::len).sum();
    let line = &text[line_start..];
    let column = line.char_indices().nth(brace.column)?.0;
    Some(line_start + column + 1)
}

/// `text` with `insert` put at byte `offset`.
pub fn insert_at(text: &str, offset: usize, insert: &str) -> String {
    format!("{}{insert}{}", &text[..offset], &text[offset..])
}

/// The statement a body edit inserts (a new line, so later spans move).
pub const BODY_EDIT: &str = "\n    let _edited_by_the_session = 1;";

/// A statement that does not parse.
pub const SYNTAX_ERROR: &str = "\n    let = ;";

/// The text of the file the add-file edit creates.
pub const ADDED_FILE: &str =
    "//! Added by the scripted session.\n\npub struct Added;\n\npub fn added() -> Added {\n    Added\n}\n";

/// Where the add-file edit puts its new file, and the root file whose text gains its
/// `mod` line: the package's `src/lib.rs` (else `src/main.rs`), with the new file
/// next to it.
pub fn add_file_target(sample: &Sample, package: usize) -> Option<(String, String)> {
    let files = &sample.packages[package].files;
    let root =
        ["src/lib.rs", "src/main.rs"].into_iter().find(|root| files.iter().any(|(path, _)| path == root))?;
    let mut name = "session_added".to_owned();
    while files.iter().any(|(path, _)| path == &format!("src/{name}.rs")) {
        name.push('_');
    }
    Some((root.to_owned(), name))
}

/// The text of `path` in `package` of `sample`.
pub fn text_of<'s>(sample: &'s Sample, package: usize, path: &str) -> &'s str {
    sample.packages[package].files.iter().find(|(p, _)| p == path).map_or("", |(_, text)| text)
}
