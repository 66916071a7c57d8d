//! Indexes a tree of Rust source files as a language server would, on chunkdb, then
//! plays a scripted editing session and shows what each edit re-ran.
//!
//! ```text
//! cargo run --release --example rust_index                 # this repository
//! cargo run --release --example rust_index -- PATH         # any crate or workspace
//! cargo run --release --example rust_index -- PATH --json  # the same figures, as JSON
//! cargo run --release --example rust_index -- PATH --cache DIR  # persisted: run twice
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
mod json;
mod sample;
mod script;
mod session;
mod syntax;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::json::Json;
use indicatif::{ProgressBar, ProgressStyle};

use crate::chunk_index::ChunkIndex;
use crate::script::{Session, StepReport};
use crate::session::Pipeline;

struct Options {
    root: PathBuf,
    json: bool,
    cache: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut options = Options { root: PathBuf::from(env!("CARGO_MANIFEST_DIR")), json: false, cache: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--cache" => {
                let dir = args.next().ok_or("`--cache` needs a directory (try --help)")?;
                options.cache = Some(PathBuf::from(dir));
            }
            "-h" | "--help" => {
                return Err("usage: rust_index [PATH] [--json] [--cache DIR]\n\nIndexes the Rust packages under PATH (default: this repository), plays a scripted editing session and prints what each edit re-ran.\nWith --cache DIR, the index is persisted in DIR and the next run restarts warm from it.".into());
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}` (try --help)")),
            path => options.root = PathBuf::from(path),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let sample = match sample::load_tree(&options.root) {
        Ok(sample) if sample.file_count() > 0 => sample,
        Ok(_) => {
            eprintln!(
                "no `.rs` files under {}: give the path of a crate or a workspace",
                options.root.display()
            );
            return ExitCode::from(1);
        }
        Err(error) => {
            eprintln!("cannot read {}: {error}", options.root.display());
            return ExitCode::from(1);
        }
    };
    let mut out = Output { json: options.json, doc: Json::object() };
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
        Some(dir) => match Session::restart(sample.clone(), dir, "new") {
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

    let mut steps = session.play();
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
    out.queries(&session, &steps);
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

/// Prints for a person, or gathers the same figures into one JSON document.
struct Output {
    json: bool,
    doc: Json,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

impl Output {
    fn input(&mut self, root: &std::path::Path, sample: &sample::Sample) {
        let (files, lines, fingerprint) = (sample.file_count(), sample.line_count(), sample.fingerprint());
        if self.json {
            self.doc.set(
                "input",
                Json::object()
                    .with("root", root.display().to_string())
                    .with("packages", sample.packages.len())
                    .with("files", files)
                    .with("lines", lines)
                    .with("fingerprint", format!("{fingerprint:016x}")),
            );
        } else {
            println!(
                "indexing {}: {} package(s), {files} files, {lines} lines (fingerprint {fingerprint:016x})",
                root.display(),
                sample.packages.len()
            );
        }
    }

    fn restart(&mut self, dir: &std::path::Path, restart: &script::Restart, build: &StepReport) {
        if self.json {
            self.doc.set(
                "cache",
                Json::object()
                    .with("dir", dir.display().to_string())
                    .with("warm", restart.warm)
                    .with("open_ms", millis(restart.open))
                    .with("first_query_ms", millis(restart.first_query))
                    .with("first_query_symbols", restart.symbols)
                    .with("resubmit_ms", millis(restart.resubmit))
                    .with("drive_ms", millis(restart.drive))
                    .with("task_runs", build.runs())
                    .with("disk_bytes", restart.disk_bytes),
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
            self.doc.set("build", step_json(build).with("diagnostics_by_code", Json::counts(&codes)));
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
        for (file, diagnostic) in build.added.iter().take(8) {
            println!("  {}", line(file, diagnostic));
        }
        if build.added.len() > 8 {
            println!("  … and {} more", build.added.len() - 8);
        }
    }

    fn step(&mut self, step: &StepReport) {
        if self.json {
            self.doc.push("edits", step_json(step));
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
        for (sign, list) in [("+", &step.added), ("-", &step.removed)] {
            for (file, diagnostic) in list.iter().take(5) {
                println!("  {sign} {}", line(file, diagnostic));
            }
            if list.len() > 5 {
                println!("  {sign} … and {} more", list.len() - 5);
            }
        }
    }

    fn queries(&mut self, session: &Session, steps: &[StepReport]) {
        let query = steps
            .iter()
            .find_map(|s| s.label.strip_prefix("rename `"))
            .and_then(|rest| rest.split('`').next());
        let query = query.unwrap_or("parse").to_owned();
        let started = Instant::now();
        let symbols = session.index.workspace_symbols(&query, 5);
        let symbol_time = started.elapsed();
        // Go to definition from the first import that resolves to an item elsewhere.
        let started = Instant::now();
        let target = definition_probe(&session.index);
        let goto_time = started.elapsed();
        if self.json {
            let found = symbols.iter().map(|(file, s)| {
                Json::object().with("name", s.name.clone()).with("file", file.clone()).with("line", s.line)
            });
            self.doc.set(
                "workspace_symbols",
                Json::object()
                    .with("query", query)
                    .with("ms", millis(symbol_time))
                    .with("results", Json::array(found)),
            );
            let goto = match &target {
                Some((from, to)) => Json::object().with("from", from.clone()).with("to", to.clone()),
                None => Json::object(),
            };
            self.doc.set("goto_definition", goto.with("ms", millis(goto_time)));
            return;
        }
        println!("\n== workspace symbols matching `{query}` ({:.2} ms)", millis(symbol_time));
        for (file, symbol) in &symbols {
            let kind = syntax::Kind::from_code(symbol.kind).label();
            let container = symbol.container.as_deref().map(|c| format!(" in {c}")).unwrap_or_default();
            println!("  {kind} {}{container}  {file}:{}:{}", symbol.name, symbol.line, symbol.column + 1);
        }
        println!("\n== go to definition ({:.3} ms)", millis(goto_time));
        match target {
            Some((from, to)) => println!("  {from} → {to}"),
            None => println!("  no import in the workspace resolves to an item in another file"),
        }
    }

    fn stats(&mut self, session: &Session) {
        let stats = session.index.db().stats();
        if self.json {
            self.doc.set(
                "stats",
                Json::object()
                    .with("tasks", stats.tasks)
                    .with("chunks", stats.chunks)
                    .with("records", stats.records)
                    .with("bytes", stats.bytes)
                    .with("gc_cycles", stats.gc.cycles)
                    .with("gc_chunks_reclaimed", stats.gc.chunks_reclaimed)
                    .with("gc_bytes_reclaimed", stats.gc.bytes_reclaimed)
                    .with("gc_max_pause_ms", millis(stats.gc.max_pause)),
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
            self.doc.set(
                "incremental_vs_from_scratch",
                Json::object()
                    .with("mean_edit_ms", millis(mean))
                    .with("from_scratch_ms", millis(from_scratch))
                    .with("ratio", ratio)
                    .with("identical", identical),
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
            println!("{}", self.doc);
        }
    }
}

fn step_json(step: &StepReport) -> Json {
    let list = |list: &[(String, analysis::Diagnostic)]| {
        Json::array(list.iter().map(|(file, d)| {
            Json::object()
                .with("file", file.clone())
                .with("line", d.span.line)
                .with("column", d.span.column + 1)
                .with("code", d.code.clone())
                .with("message", d.message.clone())
        }))
    };
    Json::object()
        .with("label", step.label.clone())
        .with("stale", step.stale)
        .with("ran", step.runs())
        .with("ran_by_stage", Json::counts(&step.ran))
        .with("cut_off", step.cut_off)
        .with("rounds", step.rounds)
        .with("ms", millis(step.elapsed))
        .with("diagnostics_added", list(&step.added))
        .with("diagnostics_removed", list(&step.removed))
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

/// The first import (by file, then position) that resolves to an item in another
/// file, and where go-to-definition takes it, as (`file:line:col`, `file:line:col`).
fn definition_probe(index: &ChunkIndex) -> Option<(String, String)> {
    let snapshot = index.db().snapshot();
    let positions = snapshot.partition(chunk_index::RustIndex::POSITIONS).execute().ok()?;
    for hit in positions.iter() {
        let key = chunk_index::PositionsKey::decode(hit.sort_key())?;
        let (0, Some(position)) = (key.what, hit.record().as_position()) else { continue };
        if let Some((file, span)) = index.goto_definition(
            key.file,
            position.end_line.to_native(),
            position.end_column.to_native().saturating_sub(1),
        ) && file != key.file
        {
            let from = format!("{}:{}:{}", index.file_name(key.file)?, position.line, position.column + 1);
            let to = format!("{}:{}:{}", index.file_name(file)?, span.line, span.column + 1);
            return Some((from, to));
        }
    }
    None
}
