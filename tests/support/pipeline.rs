//! A small multi-stage pipeline over a toy language, used by the pipeline property
//! test, the soak test and the soak figure of the performance report.
//!
//! A file is lines: `fn NAME` defines a function, `use FILE::NAME` imports one from
//! another file, anything else is a syntax error. Per file `f`, five tasks:
//!
//! - `source:f` (entry): the text; spawns `parse:f`;
//! - `parse:f`: items, imports and syntax errors; spawns `symbols:f` and `resolve:f`;
//! - `symbols:f`: the file's definitions in the workspace symbol table (by name);
//! - `resolve:f`: each import looked up in the symbol table of its target file;
//!   spawns `diagnostics:f`;
//! - `diagnostics:f`: unresolved imports and names defined in more than one file.

#![allow(dead_code)]

use chunkdb::{Database, DriveError, DriveReport, Driver, TaskContext};

chunkdb::chunk_schema! {
    /// The toy language of the pipeline tests.
    pub schema Toy {
        records {
            /// A file's text.
            Source { text: String },
            /// A function definition.
            Item { name: String, line: u32 },
            /// An import of `name` from `target`.
            Import { target: String, name: String },
            /// A definition, in the workspace symbol table.
            Symbol { line: u32 },
            /// An import and the line of the definition it resolved to.
            Resolved { target: String, name: String, found: Option<u32> },
            /// A problem in a file.
            Diagnostic { message: String },
        }
        partitions {
            sources holds Source key (file: String),
            items holds Item key (file: String, name: String),
            imports holds Import key (file: String, line: u32),
            symbols holds Symbol key (name: String, file: String),
            resolved holds Resolved key (file: String, line: u32),
            diagnostics holds Diagnostic key (file: String, line: u32, kind: u8),
        }
    }
}

/// Errors of the pipeline's tasks.
pub type TaskError = chunkdb::Error;

/// Writes (or rewrites) a file's source and asks for its parse.
pub fn write_source(db: &Database<Toy>, file: &str, text: &str) -> chunkdb::Result<chunkdb::CommitReceipt> {
    let mut writer = db.writer(format!("source:{file}"));
    writer.put(Toy::SOURCES, SourcesKey::new(file), Source { text: text.to_owned() })?;
    writer.spawn(format!("parse:{file}"));
    writer.commit()
}

/// Removes a file: its source, and (once collected) everything derived from it.
pub fn remove_source(db: &Database<Toy>, file: &str) -> chunkdb::CommitReceipt {
    db.remove_task(format!("source:{file}"))
}

/// Re-runs every stale task of the pipeline until nothing is stale.
pub fn drive(db: &Database<Toy>, parallel: bool) -> Result<DriveReport, DriveError<TaskError>> {
    Driver::new(db).parallel(parallel).run(run_task)
}

/// Runs one pipeline task, chosen by the task's name.
pub fn run_task(ctx: &TaskContext<Toy>) -> Result<(), TaskError> {
    let name = ctx.task().ident().name().expect("pipeline task names are registered");
    let (stage, file) = name.split_once(':').expect("pipeline task names are stage:file");
    match stage {
        "parse" => parse(ctx, file),
        "symbols" => symbols(ctx, file),
        "resolve" => resolve(ctx, file),
        "diagnostics" => diagnostics(ctx, file),
        other => panic!("no pipeline stage {other}"),
    }
}

fn parse(ctx: &TaskContext<Toy>, file: &str) -> Result<(), TaskError> {
    let source = ctx.partition(Toy::SOURCES).exact(SourcesKey::new(file)).execute()?;
    let Some(text) = source.records().find_map(|record| record.as_source().map(|s| s.text.to_string()))
    else {
        return Ok(());
    };
    for (line, content) in text.lines().enumerate() {
        let line = line as u32;
        let words: Vec<&str> = content.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["fn", name] => {
                // A second definition in one file keeps the first.
                if !defined_before(&text, line, name) {
                    ctx.put(Toy::ITEMS, ItemsKey::new(file, *name), Item { name: (*name).to_owned(), line })?;
                }
            }
            ["use", path] if path.contains("::") => {
                let (target, name) = path.split_once("::").expect("checked");
                ctx.put(
                    Toy::IMPORTS,
                    ImportsKey::new(file, line),
                    Import { target: target.to_owned(), name: name.to_owned() },
                )?;
            }
            _ => ctx.put(
                Toy::DIAGNOSTICS,
                DiagnosticsKey::new(file, line, 0),
                Diagnostic { message: format!("syntax error: `{content}`") },
            )?,
        }
    }
    ctx.spawn(format!("symbols:{file}"));
    ctx.spawn(format!("resolve:{file}"));
    Ok(())
}

/// Whether `name` is defined on a line before `line`.
fn defined_before(text: &str, line: u32, name: &str) -> bool {
    text.lines()
        .take(line as usize)
        .any(|content| content.split_whitespace().collect::<Vec<_>>() == ["fn", name])
}

fn symbols(ctx: &TaskContext<Toy>, file: &str) -> Result<(), TaskError> {
    let items = ctx.partition(Toy::ITEMS).begins_with(ItemsKey::prefix().file(file)).execute()?;
    for item in items.records().filter_map(|record| record.as_item()) {
        ctx.put(
            Toy::SYMBOLS,
            SymbolsKey::new(item.name.as_str(), file),
            Symbol { line: item.line.to_native() },
        )?;
    }
    Ok(())
}

fn resolve(ctx: &TaskContext<Toy>, file: &str) -> Result<(), TaskError> {
    let imports = ctx.partition(Toy::IMPORTS).begins_with(ImportsKey::prefix().file(file)).execute()?;
    for hit in imports.iter() {
        let Some(import) = hit.record().as_import() else { continue };
        let line = ImportsKey::decode(hit.sort_key()).expect("keys of this partition decode").line;
        let found = ctx
            .partition(Toy::SYMBOLS)
            .exact(SymbolsKey::new(import.name.as_str(), import.target.as_str()))
            .execute()?;
        let found =
            found.records().find_map(|record| record.as_symbol().map(|symbol| symbol.line.to_native()));
        ctx.put(
            Toy::RESOLVED,
            ResolvedKey::new(file, line),
            Resolved { target: import.target.to_string(), name: import.name.to_string(), found },
        )?;
    }
    ctx.spawn(format!("diagnostics:{file}"));
    Ok(())
}

fn diagnostics(ctx: &TaskContext<Toy>, file: &str) -> Result<(), TaskError> {
    let resolved = ctx.partition(Toy::RESOLVED).begins_with(ResolvedKey::prefix().file(file)).execute()?;
    for hit in resolved.iter() {
        let Some(resolved) = hit.record().as_resolved() else { continue };
        if resolved.found.is_none() {
            let line = ResolvedKey::decode(hit.sort_key()).expect("keys of this partition decode").line;
            let message = format!("unresolved import `{}::{}`", resolved.target, resolved.name);
            ctx.put(Toy::DIAGNOSTICS, DiagnosticsKey::new(file, line, 1), Diagnostic { message })?;
        }
    }
    let items = ctx.partition(Toy::ITEMS).begins_with(ItemsKey::prefix().file(file)).execute()?;
    for item in items.records().filter_map(|record| record.as_item()) {
        let definitions = ctx
            .partition(Toy::SYMBOLS)
            .begins_with(SymbolsKey::prefix().name(item.name.as_str()))
            .execute()?;
        if definitions.len() > 1 {
            let message = format!("`{}` is defined in {} files", item.name, definitions.len());
            ctx.put(
                Toy::DIAGNOSTICS,
                DiagnosticsKey::new(file, item.line.to_native(), 2),
                Diagnostic { message },
            )?;
        }
    }
    Ok(())
}

/// Everything the pipeline's partitions hold, as (partition, key, task, record)
/// lines in order: what "query by query" equality compares.
pub fn contents(db: &Database<Toy>) -> Vec<String> {
    let snapshot = db.snapshot();
    let mut lines = Vec::new();
    for partition in snapshot.partitions() {
        for hit in snapshot.query(partition).execute().expect("whole-partition queries succeed").iter() {
            lines.push(format!("{partition} {:?} {} {:?}", hit.sort_key(), hit.task(), hit.record()));
        }
    }
    lines
}

/// A deterministic editing session over `files` files for the soak run: each cycle
/// edits one file's body, re-submits one unchanged, or (every 50th cycle) deletes a
/// file that the next cycle writes back, then drives the pipeline to a fixed point
/// with garbage collection on its default policy. `sample(cycle, db)` is called
/// after every cycle. Returns the number of task runs the driver made.
pub fn soak(files: usize, cycles: usize, sample: impl FnMut(usize, &Database<Toy>)) -> usize {
    soak_in(&Database::<Toy>::new(), files, cycles, sample)
}

/// [`soak`] on a database of the caller's (a persisted one, say).
pub fn soak_in(
    db: &Database<Toy>,
    files: usize,
    cycles: usize,
    mut sample: impl FnMut(usize, &Database<Toy>),
) -> usize {
    let db = db.clone();
    let name = |file: usize| format!("m{file}");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    let text = |file: usize, variant: usize| {
        let other = (file + 1 + variant % 3) % files;
        format!("fn f{file}\nfn g{}\nuse m{other}::f{other}\nuse m{other}::g{variant}\n", variant % 4)
    };
    for file in 0..files {
        write_source(&db, &name(file), &text(file, 0)).expect("sources fit the schema");
    }
    drive(&db, true).expect("the pipeline's tasks do not fail");
    let mut removed: Option<usize> = None;
    let mut runs = 0;
    for cycle in 0..cycles {
        if let Some(file) = removed.take() {
            write_source(&db, &name(file), &text(file, next(8))).expect("sources fit the schema");
        } else if cycle % 50 == 49 {
            let file = next(files);
            remove_source(&db, &name(file));
            removed = Some(file);
        } else {
            let file = next(files);
            write_source(&db, &name(file), &text(file, next(8))).expect("sources fit the schema");
        }
        runs += drive(&db, true).expect("the pipeline's tasks do not fail").ran.len();
        sample(cycle, &db);
    }
    runs
}
