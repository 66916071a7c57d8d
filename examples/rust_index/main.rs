//! Indexes a tree of Rust source files as a language server would, on chunkdb, then
//! plays a scripted editing session and shows what each edit re-ran.
//!
//! ```text
//! cargo run --release --example rust_index                 # this repository
//! cargo run --release --example rust_index -- PATH         # any crate or workspace
//! cargo run --release --example rust_index -- PATH --json  # the same figures, as JSON
//! cargo run --release --example rust_index -- PATH --cache DIR  # persisted: run twice
//! cargo run --release --example rust_index -- --help       # edits and queries of your own
//! ```
//!
//! With `--cache DIR` the index lives in DIR: the first run builds it there, the
//! next ones restart warm from it (and print how long the open, the first query,
//! the re-submission of every file and the drive took). The scripted session's
//! edits are reverted at the end, so the cache holds the texts on disk.
//!
//! One task per file parses it with `syn` into records (items, imports, `mod`
//! declarations, type uses, each with its span); a task per package builds the
//! module tree; a task per file resolves its imports and signature types against the
//! workspace; a task per file produces its diagnostics. See `chunk_index.rs`.

mod analysis;
mod chunk_index;
mod manifest;
mod sample;
mod script;
mod session;
mod syntax;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::chunk_index::{ChunkIndex, Coverage};
use crate::script::{Session, StepReport};
use crate::session::{Edit, Pipeline};

const USAGE: &str = "usage: rust_index [PATH] [OPTIONS]

Indexes the Rust code under PATH (default: this repository) as a language server
would: a workspace (its members), a package, a directory of packages (every
directory holding a Cargo.toml), or a single .rs file. Prints the diagnostics, how
much of the code it could check, then either plays a scripted editing session or
applies your edits and answers your queries, showing what each edit re-ran.

Options:
  --json                  print one JSON document instead of text
  --list                  print every diagnostic (not only the first ones)
  --cache DIR             persist the index in DIR; the next run restarts warm
  --compiled TARGET_DIR   compare with the files cargo compiled (its dep-info
                          files under TARGET_DIR) and report those in no module tree
  --edit FILE:LINE:TEXT   replace line LINE (1-based) of FILE with TEXT
  --insert FILE:LINE:TEXT insert TEXT as a new line before line LINE (a FILE
                          that does not exist is created)
  --delete FILE           remove FILE
  --edits SCRIPT          apply the edits listed in SCRIPT, one per line:
                          `edit FILE:LINE:TEXT`, `insert FILE:LINE:TEXT`,
                          `delete FILE` (`#` starts a comment)
  --symbol NAME           list the workspace symbols matching NAME
  --definition FILE:LINE:COL  go to the definition of the path at that position
                          (1-based line and column)
  -h, --help              print this help

FILE is a path on disk (absolute, or relative to PATH) or a name as the
diagnostics print it (`crate/src/lib.rs`). In TEXT, `\\n` is a line break. With
edits or queries the scripted session does not run.";

/// An edit the user asked for, before it is located in the workspace.
#[derive(Clone, Debug)]
enum UserEdit {
    /// Replace a line.
    Replace { file: String, line: usize, text: String },
    /// Insert a line.
    Insert { file: String, line: usize, text: String },
    /// Remove a file.
    Delete { file: String },
}

struct Options {
    root: PathBuf,
    json: bool,
    list: bool,
    cache: Option<PathBuf>,
    compiled: Option<PathBuf>,
    edits: Vec<UserEdit>,
    symbols: Vec<String>,
    definitions: Vec<(String, u32, u32)>,
}

impl Options {
    /// Whether the user gave work of their own (then the script does not run).
    fn has_own_work(&self) -> bool {
        !self.edits.is_empty() || !self.symbols.is_empty() || !self.definitions.is_empty()
    }
}

/// What the command line asked for: options, or the help text.
enum Parsed {
    Run(Box<Options>),
    Help,
}

fn parse_edit(kind: &str, spec: &str) -> Result<UserEdit, String> {
    if kind == "delete" {
        return Ok(UserEdit::Delete { file: spec.to_owned() });
    }
    let mut parts = spec.splitn(3, ':');
    let (Some(file), Some(line), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`{kind} {spec}`: expected FILE:LINE:TEXT (try --help)"));
    };
    let line: usize = line
        .parse()
        .ok()
        .filter(|line| *line > 0)
        .ok_or_else(|| format!("`{kind} {spec}`: LINE must be a line number from 1 (got `{line}`)"))?;
    let (file, text) = (file.to_owned(), text.replace("\\n", "\n"));
    Ok(if kind == "edit" {
        UserEdit::Replace { file, line, text }
    } else {
        UserEdit::Insert { file, line, text }
    })
}

fn parse_position(spec: &str) -> Result<(String, u32, u32), String> {
    let mut parts = spec.rsplitn(3, ':');
    let (Some(column), Some(line), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`--definition {spec}`: expected FILE:LINE:COL (try --help)"));
    };
    let number = |text: &str| text.parse::<u32>().ok().filter(|n| *n > 0);
    match (number(line), number(column)) {
        (Some(line), Some(column)) => Ok((file.to_owned(), line, column)),
        _ => Err(format!("`--definition {spec}`: LINE and COL must be numbers from 1")),
    }
}

fn options() -> Result<Parsed, String> {
    let mut options = Options {
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        json: false,
        list: false,
        cache: None,
        compiled: None,
        edits: Vec::new(),
        symbols: Vec::new(),
        definitions: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("`{arg}` needs {what} (try --help)"));
        match arg.as_str() {
            "--json" => options.json = true,
            "--list" => options.list = true,
            "--cache" => options.cache = Some(PathBuf::from(value("a directory")?)),
            "--compiled" => options.compiled = Some(PathBuf::from(value("cargo's target directory")?)),
            "--edit" => options.edits.push(parse_edit("edit", &value("FILE:LINE:TEXT")?)?),
            "--insert" => options.edits.push(parse_edit("insert", &value("FILE:LINE:TEXT")?)?),
            "--delete" => options.edits.push(parse_edit("delete", &value("a file")?)?),
            "--edits" => {
                let script = value("a file")?;
                let text =
                    std::fs::read_to_string(&script).map_err(|e| format!("cannot read {script}: {e}"))?;
                for (number, line) in text.lines().enumerate() {
                    let line = line.trim_start();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (kind, spec) = line.split_once(' ').unwrap_or((line, ""));
                    if !matches!(kind, "edit" | "insert" | "delete") {
                        return Err(format!(
                            "{script}:{}: unknown edit `{kind}` (expected edit, insert or delete)",
                            number + 1
                        ));
                    }
                    options
                        .edits
                        .push(parse_edit(kind, spec).map_err(|e| format!("{script}:{}: {e}", number + 1))?);
                }
            }
            "--symbol" => options.symbols.push(value("a name")?),
            "--definition" => options.definitions.push(parse_position(&value("FILE:LINE:COL")?)?),
            "-h" | "--help" => return Ok(Parsed::Help),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}` (try --help)")),
            path => options.root = PathBuf::from(path),
        }
    }
    Ok(Parsed::Run(Box::new(options)))
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let sample = match sample::load_tree(&options.root) {
        Ok(sample) if sample.file_count() > 0 => sample,
        Ok(_) => {
            eprintln!(
                "no `.rs` files under {}: give the path of a crate, a workspace or a file",
                options.root.display()
            );
            return ExitCode::from(1);
        }
        Err(error) => {
            eprintln!("cannot read {}: {error}", options.root.display());
            return ExitCode::from(1);
        }
    };
    for warning in &sample.warnings {
        eprintln!("warning: {warning}");
    }
    let mut out = Output { json: options.json, list: options.list, doc: serde_json::Map::new() };
    out.input(&options.root, &sample);

    let progress =
        if options.json { ProgressBar::hidden() } else { ProgressBar::new(3 * sample.file_count() as u64) };
    progress.set_style(
        ProgressStyle::with_template("{spinner} indexing [{bar:30}] {pos}/{len} task runs, {elapsed}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let counted = AtomicUsize::new(0);
    let (mut session, build) = match &options.cache {
        Some(dir) => match Session::restart(sample.clone(), dir, Some("new")) {
            Ok((session, build, restart)) => {
                out.restart(dir, &restart, &build);
                (session, build)
            }
            Err(error) => {
                eprintln!("cannot use the cache {}: {error}", dir.display());
                return ExitCode::from(1);
            }
        },
        None => Session::build_observed(sample.clone(), &|_| {
            if counted.fetch_add(1, Ordering::Relaxed).is_multiple_of(64) {
                progress.set_position(counted.load(Ordering::Relaxed) as u64);
            }
        }),
    };
    progress.finish_and_clear();
    out.build(&build);
    out.coverage(&session.index.coverage(), &session.index.orphan_files());
    if let Some(target) = &options.compiled {
        match compiled_files(target, &options.root) {
            Ok(compiled) => out.compiled(&session, &compiled),
            Err(error) => {
                eprintln!("cannot read cargo's dep-info files under {}: {error}", target.display());
                return ExitCode::from(1);
            }
        }
    }

    let mut steps = Vec::new();
    if options.has_own_work() {
        for edit in &options.edits {
            match locate_edit(&session, &options.root, edit) {
                Ok((label, edit)) => steps.push(session.step(label, &[edit])),
                Err(message) => {
                    eprintln!("{message}");
                    return ExitCode::from(2);
                }
            }
        }
    } else {
        steps = session.play();
    }
    if options.cache.is_some() {
        steps.push(session.revert(&sample));
        if let Err(error) = session.index.db().flush() {
            eprintln!("cannot write the cache: {error}");
            return ExitCode::from(1);
        }
    }
    for step in &steps {
        out.step(step);
    }
    if options.has_own_work() {
        for name in &options.symbols {
            out.symbols(&session, name, 20);
        }
        for (file, line, column) in &options.definitions {
            match locate_file(&session, &options.root, file) {
                Some((package, path)) => out.definition(&session, package, &path, *line, *column),
                None => {
                    eprintln!("no file `{file}` in the workspace (try a name as the diagnostics print it)");
                    return ExitCode::from(2);
                }
            }
        }
    } else {
        out.queries(&session, &steps);
    }
    out.stats(&session);

    // The same final texts, from scratch: the incremental results must equal them.
    let started = Instant::now();
    let mut scratch = ChunkIndex::load(&session.sample);
    scratch.check();
    let from_scratch = started.elapsed();
    let identical = scratch.diagnostics() == session.index.diagnostics();
    out.scratch(&steps, from_scratch, identical);
    out.finish();
    if identical { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The package and relative path of `file`: a display name (`crate/src/lib.rs`),
/// or a path on disk (absolute or relative to `root`), under a package's
/// directory. The file need not exist yet.
fn locate_file(session: &Session, root: &Path, file: &str) -> Option<(usize, String)> {
    for (index, package) in session.sample.packages.iter().enumerate() {
        if let Some(path) = file.strip_prefix(&package.name).and_then(|rest| rest.strip_prefix('/'))
            && package.files.iter().any(|(p, _)| p == path)
        {
            return Some((index, path.to_owned()));
        }
    }
    let on_disk = if Path::new(file).is_absolute() { PathBuf::from(file) } else { root.join(file) };
    let (dir, name) = (on_disk.parent()?, on_disk.file_name()?);
    let absolute = std::fs::canonicalize(dir).ok()?.join(name);
    let dirs: Vec<PathBuf> = session
        .sample
        .packages
        .iter()
        .map(|package| std::fs::canonicalize(&package.dir).unwrap_or_else(|_| package.dir.clone()))
        .collect();
    sample::innermost_package(dirs.iter().map(PathBuf::as_path), &absolute)
}

/// The edit `edit` asks for, located in the workspace, with its label.
fn locate_edit(session: &Session, root: &Path, edit: &UserEdit) -> Result<(String, Edit), String> {
    let file = match edit {
        UserEdit::Replace { file, .. } | UserEdit::Insert { file, .. } | UserEdit::Delete { file } => file,
    };
    let Some((package, path)) = locate_file(session, root, file) else {
        return Err(format!("no file `{file}` in the workspace (try a name as the diagnostics print it)"));
    };
    let exists = session.sample.packages[package].files.iter().any(|(p, _)| *p == path);
    let name = format!("{}/{path}", session.sample.packages[package].name);
    let text = session.text(package, &path);
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    match edit {
        UserEdit::Delete { .. } if exists => Ok((format!("delete {name}"), Edit::Remove { package, path })),
        UserEdit::Delete { .. } => Err(format!("cannot delete `{file}`: the workspace has no such file")),
        UserEdit::Replace { .. } if !exists => {
            Err(format!("cannot edit `{file}`: the workspace has no such file"))
        }
        UserEdit::Replace { line, text: new, .. } | UserEdit::Insert { line, text: new, .. } => {
            let replace = matches!(edit, UserEdit::Replace { .. });
            let limit = if replace { lines.len() } else { lines.len() + 1 };
            if *line > limit {
                return Err(format!(
                    "`{file}` has {} line(s): there is no line {line} to {}",
                    lines.len(),
                    if replace { "replace" } else { "insert before" }
                ));
            }
            let ending = if replace { lines[*line - 1].ends_with('\n') } else { true };
            let new_line = format!("{new}{}", if ending { "\n" } else { "" });
            if replace {
                lines[*line - 1] = &new_line;
            } else {
                lines.insert(*line - 1, &new_line);
            }
            let verb = if replace { "replace line" } else { "insert before line" };
            Ok((format!("{verb} {line} of {name}"), Edit::Write { package, path, text: lines.concat() }))
        }
    }
}

/// The `.rs` files cargo's dep-info files (`*.d`) under `target` list: every file a
/// compilation read. Cargo writes a workspace member's paths relative to the
/// workspace root, taken to be `root`.
fn compiled_files(target: &Path, root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let root = std::fs::canonicalize(root)?;
    let mut found = std::collections::BTreeSet::new();
    let mut dirs = vec![target.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "d") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text.lines() {
                    let Some((_, deps)) = line.split_once(": ") else { continue };
                    // Paths are separated by spaces; a space inside one is escaped.
                    let deps = deps.replace("\\ ", "\u{0}");
                    for dep in deps.split(' ').map(|d| d.replace('\u{0}', " ")) {
                        if dep.ends_with(".rs") {
                            found.insert(root.join(dep));
                        }
                    }
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Prints for a person, or gathers the same figures into one JSON document.
struct Output {
    json: bool,
    /// Whether to print every diagnostic.
    list: bool,
    doc: serde_json::Map<String, Value>,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn percent(share: f64) -> f64 {
    (share * 1000.0).round() / 10.0
}

impl Output {
    fn set(&mut self, key: &str, value: Value) {
        self.doc.insert(key.to_owned(), value);
    }

    /// Appends `value` to the array under `key`.
    fn push(&mut self, key: &str, value: Value) {
        if let Value::Array(all) = self.doc.entry(key).or_insert_with(|| json!([])) {
            all.push(value);
        }
    }

    fn input(&mut self, root: &Path, sample: &sample::Sample) {
        let (files, lines, fingerprint) = (sample.file_count(), sample.line_count(), sample.fingerprint());
        if self.json {
            self.set(
                "input",
                json!({
                    "root": root.display().to_string(),
                    "packages": sample.packages.len(),
                    "files": files,
                    "lines": lines,
                    "fingerprint": format!("{fingerprint:016x}"),
                    "manifest_warnings": sample.warnings,
                }),
            );
        } else {
            println!(
                "indexing {}: {} package(s), {files} files, {lines} lines (fingerprint {fingerprint:016x})",
                root.display(),
                sample.packages.len()
            );
        }
    }

    fn restart(&mut self, dir: &Path, restart: &script::Restart, build: &StepReport) {
        if self.json {
            self.set(
                "cache",
                json!({
                    "dir": dir.display().to_string(),
                    "warm": restart.warm,
                    "open_ms": millis(restart.open),
                    "first_query_ms": millis(restart.first_query),
                    "first_query_symbols": restart.symbols,
                    "resubmit_ms": millis(restart.resubmit),
                    "drive_ms": millis(restart.drive),
                    "task_runs": build.runs(),
                    "disk_bytes": restart.disk_bytes,
                }),
            );
            return;
        }
        if restart.warm {
            println!(
                "\nwarm restart from {}: open {:.1} ms; first workspace-symbol query answered {:.1} ms after the start ({} found); re-submitting every file {:.1} ms; drive {:.1} ms ({} task runs); {:.1} MiB on disk",
                dir.display(),
                millis(restart.open),
                millis(restart.first_query),
                restart.symbols,
                millis(restart.resubmit),
                millis(restart.drive),
                build.runs(),
                restart.disk_bytes as f64 / (1 << 20) as f64
            );
        } else {
            println!(
                "\n{} held no index: building it there (run again to restart warm); {:.1} MiB on disk",
                dir.display(),
                restart.disk_bytes as f64 / (1 << 20) as f64
            );
        }
    }

    fn build(&mut self, build: &StepReport) {
        let mut codes = std::collections::BTreeMap::new();
        for (_, diagnostic) in &build.added {
            *codes.entry(diagnostic.code.clone()).or_insert(0usize) += 1;
        }
        if self.json {
            let mut step = step_json(build);
            step["diagnostics_by_code"] = json!(codes);
            self.set("build", step);
            return;
        }
        println!(
            "\ninitial build: {} task runs in {} rounds, {:.1} ms on {} thread(s); {} diagnostics",
            build.runs(),
            build.rounds,
            millis(build.elapsed),
            rayon::current_num_threads(),
            build.added.len()
        );
        println!("  runs by stage: {}", stages(build));
        for (code, count) in &codes {
            println!("  {count:>6} {code}");
        }
        let shown = if self.list { build.added.len() } else { 8 };
        for (file, diagnostic) in build.added.iter().take(shown) {
            println!("  {}", line(file, diagnostic));
        }
        if build.added.len() > shown {
            println!("  … and {} more (--list prints them all)", build.added.len() - shown);
        }
    }

    fn coverage(&mut self, coverage: &Coverage, orphans: &[String]) {
        let in_tree = coverage.in_tree as f64 / coverage.files.max(1) as f64;
        if self.json {
            self.set(
                "coverage",
                json!({
                    "files": coverage.files,
                    "files_in_module_tree": coverage.in_tree,
                    "files_in_module_tree_pct": percent(in_tree),
                    "files_in_no_module_tree": orphans,
                    "imports": coverage.imports,
                    "imports_checked_pct": percent(coverage.imports.checked()),
                    "types": coverage.types,
                    "types_checked_pct": percent(coverage.types.checked()),
                }),
            );
            return;
        }
        println!(
            "  files in a module tree: {} of {} ({:.1} %); the {} others (fixtures, `include!`d files, files no `mod` names) are indexed for symbols, without diagnostics",
            coverage.in_tree,
            coverage.files,
            percent(in_tree),
            coverage.files - coverage.in_tree
        );
        if self.list {
            for orphan in orphans {
                println!("    in no module tree: {orphan}");
            }
        }
        for (what, tally) in [("imports", &coverage.imports), ("signature type paths", &coverage.types)] {
            println!(
                "  {what} checked: {:.1} % of {} ({} in the workspace, {} in crates outside it, {} reported; {} unknown: a glob, a macro or a cfg may define the name)",
                percent(tally.checked()),
                tally.total,
                tally.inside,
                tally.external,
                tally.reported,
                tally.unknown
            );
        }
    }

    fn compiled(&mut self, session: &Session, compiled: &[PathBuf]) {
        let placed = session.index.placed_files();
        let dirs: Vec<Option<PathBuf>> =
            session.sample.packages.iter().map(|package| std::fs::canonicalize(&package.dir).ok()).collect();
        let mut under_root = 0;
        let mut missing = Vec::new();
        for path in compiled {
            // The innermost package holding it.
            let located = session
                .sample
                .packages
                .iter()
                .zip(&dirs)
                .filter_map(|(package, dir)| {
                    let dir = dir.as_ref()?;
                    let relative = path.strip_prefix(dir).ok()?.to_string_lossy().into_owned();
                    package
                        .files
                        .iter()
                        .any(|(p, _)| *p == relative)
                        .then(|| (dir.components().count(), package, relative))
                })
                .max_by_key(|(depth, _, _)| *depth);
            let Some((_, package, relative)) = located else { continue };
            under_root += 1;
            let name = format!("{}/{relative}", package.name);
            if !placed.contains(&name) {
                missing.push(name);
            }
        }
        let share = (under_root - missing.len()) as f64 / under_root.max(1) as f64;
        if self.json {
            self.set(
                "compiled",
                json!({
                    "compiled_files": under_root,
                    "in_module_tree_pct": percent(share),
                    "not_in_module_tree": missing,
                }),
            );
            return;
        }
        println!(
            "  files cargo compiled (its dep-info): {under_root}, of which {:.1} % in a module tree{}",
            percent(share),
            if missing.is_empty() { String::new() } else { format!("; not: {}", missing.join(", ")) }
        );
    }

    fn step(&mut self, step: &StepReport) {
        if self.json {
            self.push("edits", step_json(step));
            return;
        }
        println!("\n== {}", step.label);
        println!(
            "  stale at first: {}; ran: {} ({}); cut off early: {}; rounds: {}; time: {:.2} ms",
            step.stale,
            step.runs(),
            stages(step),
            step.cut_off,
            step.rounds,
            millis(step.elapsed)
        );
        if step.added.is_empty() && step.removed.is_empty() {
            println!("  diagnostics: unchanged");
        }
        let shown = if self.list { usize::MAX } else { 5 };
        for (sign, list) in [("+", &step.added), ("-", &step.removed)] {
            for (file, diagnostic) in list.iter().take(shown) {
                println!("  {sign} {}", line(file, diagnostic));
            }
            if list.len() > shown {
                println!("  {sign} … and {} more", list.len() - shown);
            }
        }
    }

    /// The workspace symbols matching `query`.
    fn symbols(&mut self, session: &Session, query: &str, limit: usize) {
        let started = Instant::now();
        let symbols = session.index.workspace_symbols(query, limit);
        let elapsed = started.elapsed();
        if self.json {
            let found: Vec<Value> = symbols
                .iter()
                .map(|(file, s)| {
                    json!({
                        "name": s.name.as_str(),
                        "kind": syntax::Kind::from_code(s.kind).label(),
                        "container": s.container.as_deref(),
                        "file": file,
                        "line": s.line,
                        "column": s.column + 1,
                    })
                })
                .collect();
            self.push("workspace_symbols", json!({"query": query, "ms": millis(elapsed), "results": found}));
            return;
        }
        println!("\n== workspace symbols matching `{query}` ({:.2} ms)", millis(elapsed));
        if symbols.is_empty() {
            println!("  none");
        }
        for (file, symbol) in &symbols {
            let kind = syntax::Kind::from_code(symbol.kind).label();
            let container = symbol.container.as_deref().map(|c| format!(" in {c}")).unwrap_or_default();
            println!("  {kind} {}{container}  {file}:{}:{}", symbol.name, symbol.line, symbol.column + 1);
        }
    }

    /// Where the path at (`line`, `column`), 1-based, of a file leads.
    fn definition(&mut self, session: &Session, package: usize, path: &str, line: u32, column: u32) {
        let from = format!("{}/{path}:{line}:{column}", session.sample.packages[package].name);
        let started = Instant::now();
        let target = session
            .index
            .file_id(package, path)
            .and_then(|file| session.index.goto_definition(file, line, column - 1));
        let target = target.and_then(|(file, span)| {
            Some(format!("{}:{}:{}", session.index.file_name(file)?, span.line, span.column + 1))
        });
        let elapsed = started.elapsed();
        if self.json {
            self.push("definitions", json!({"from": from, "to": target, "ms": millis(elapsed)}));
            return;
        }
        println!("\n== go to definition from {from} ({:.3} ms)", millis(elapsed));
        match target {
            Some(to) => println!("  → {to}"),
            None => println!(
                "  nothing there leads into the workspace (no import or signature type path there, or it names something outside)"
            ),
        }
    }

    fn queries(&mut self, session: &Session, steps: &[StepReport]) {
        let query = steps
            .iter()
            .find_map(|s| s.label.strip_prefix("rename `"))
            .and_then(|rest| rest.split('`').next());
        self.symbols(session, query.unwrap_or("parse"), 5);
        // Go to definition from the first import that resolves to an item elsewhere.
        let started = Instant::now();
        let target = definition_probe(&session.index);
        let elapsed = started.elapsed();
        if self.json {
            let goto = match &target {
                Some((from, to)) => json!({"from": from, "to": to, "ms": millis(elapsed)}),
                None => json!({"from": null, "to": null, "ms": millis(elapsed)}),
            };
            self.push("definitions", goto);
            return;
        }
        println!("\n== go to definition ({:.3} ms)", millis(elapsed));
        match target {
            Some((from, to)) => println!("  {from} → {to}"),
            None => println!("  no import in the workspace resolves to an item in another file"),
        }
    }

    fn stats(&mut self, session: &Session) {
        let stats = session.index.db().stats();
        if self.json {
            self.set(
                "stats",
                json!({
                    "tasks": stats.tasks,
                    "chunks": stats.chunks,
                    "records": stats.records,
                    "bytes": stats.bytes,
                    "gc_cycles": stats.gc.cycles,
                    "gc_chunks_reclaimed": stats.gc.chunks_reclaimed,
                    "gc_bytes_reclaimed": stats.gc.bytes_reclaimed,
                    "gc_max_pause_ms": millis(stats.gc.max_pause),
                }),
            );
            return;
        }
        println!(
            "\nstats: {} tasks, {} chunks, {} records, {:.1} MiB held; GC: {} cycles, {} chunks ({:.1} MiB) reclaimed, longest pause {:.2} ms",
            stats.tasks,
            stats.chunks,
            stats.records,
            stats.bytes as f64 / (1 << 20) as f64,
            stats.gc.cycles,
            stats.gc.chunks_reclaimed,
            stats.gc.bytes_reclaimed as f64 / (1 << 20) as f64,
            millis(stats.gc.max_pause)
        );
    }

    fn scratch(&mut self, steps: &[StepReport], from_scratch: Duration, identical: bool) {
        let mean = steps.iter().map(|s| s.elapsed).sum::<Duration>() / steps.len().max(1) as u32;
        let ratio = mean.as_secs_f64() / from_scratch.as_secs_f64();
        if self.json {
            self.set(
                "incremental_vs_from_scratch",
                json!({
                    "mean_edit_ms": millis(mean),
                    "from_scratch_ms": millis(from_scratch),
                    "ratio": ratio,
                    "identical": identical,
                }),
            );
            return;
        }
        println!(
            "incremental vs from scratch: a mean edit took {:.2} ms, rebuilding the final state from scratch {:.1} ms (ratio {ratio:.4}); results {}",
            millis(mean),
            millis(from_scratch),
            if identical { "identical" } else { "DIFFER (a bug: please report it)" }
        );
    }

    fn finish(self) {
        if self.json {
            println!("{}", Value::Object(self.doc));
        }
    }
}

fn step_json(step: &StepReport) -> Value {
    let list = |list: &[(String, analysis::Diagnostic)]| -> Vec<Value> {
        list.iter()
            .map(|(file, d)| {
                json!({
                    "file": file,
                    "line": d.span.line,
                    "column": d.span.column + 1,
                    "code": d.code,
                    "message": d.message,
                })
            })
            .collect()
    };
    json!({
        "label": step.label,
        "stale": step.stale,
        "ran": step.runs(),
        "ran_by_stage": step.ran,
        "cut_off": step.cut_off,
        "rounds": step.rounds,
        "ms": millis(step.elapsed),
        "diagnostics_added": list(&step.added),
        "diagnostics_removed": list(&step.removed),
    })
}

fn stages(step: &StepReport) -> String {
    let parts: Vec<String> = step.ran.iter().map(|(stage, n)| format!("{stage} {n}")).collect();
    if parts.is_empty() { "nothing".into() } else { parts.join(", ") }
}

fn line(file: &str, diagnostic: &analysis::Diagnostic) -> String {
    format!(
        "{file}:{}:{}: {}: {}",
        diagnostic.span.line,
        diagnostic.span.column + 1,
        diagnostic.code,
        diagnostic.message
    )
}

/// An import of the workspace whose definition is in another file, as display
/// positions (`crate/path:line:column`, 1-based): from, to.
fn definition_probe(index: &ChunkIndex) -> Option<(String, String)> {
    let ((file, line, column), (target, span)) = index.view().definition_probe()?;
    let from = format!("{}:{line}:{}", index.file_name(file)?, column + 1);
    let to = format!("{}:{}:{}", index.file_name(target)?, span.line, span.column + 1);
    Some((from, to))
}
