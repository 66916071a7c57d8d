//! A tour of chunkdb on a toy language: parse tasks store each file's symbols, check
//! tasks read other files' symbols through a task context (so their reads are
//! recorded), and an editing session shows versions, early cut-off, snapshot
//! isolation and what each check read.
//!
//! `cargo run --release --example walkthrough`

use std::time::Instant;

use chunkdb::example::{
    Diagnostic, DiagnosticsKey, Function, MiniLang, MiniLangRecordRef, Module, Struct, SymbolsKey,
};
use chunkdb::{CommitReceipt, Database, Ident, KeyRange, Result, Schema, TaskId, decode_key};

/// The built-in workspace: one item per line, `struct Name`, or `fn name(Type, …) -> Type`.
const WORKSPACE: &[(&str, &str)] = &[
    ("geometry.toy", "struct Point\nstruct Line\nfn length(Line) -> Float\nfn midpoint(Line) -> Point"),
    ("numbers.toy", "struct Float\nfn sqrt(Float) -> Float"),
    ("render.toy", "fn draw(Line, Canvas) -> Unit\nfn plot(Point) -> Unit"),
];

fn main() -> Result<()> {
    let db = Database::<MiniLang>::new();
    let mut files: Vec<(String, String)> =
        WORKSPACE.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect();

    println!("== initial build");
    let started = Instant::now();
    for (path, source) in &files {
        report("parse", &parse(&db, path, source)?);
    }
    for (path, _) in &files {
        report("check", &check(&db, path)?);
    }
    println!("built in {:?}", started.elapsed());
    print_diagnostics(&db)?;

    println!("\n== edit numbers.toy: a comment-only change re-parses to the same symbols");
    let before = db.snapshot();
    files[1].1 = format!("{}\n", files[1].1);
    report("parse", &parse(&db, "numbers.toy", &files[1].1)?);

    println!("\n== edit render.toy: declare Canvas and Unit, so draw's types resolve");
    files[2].1.push_str("\nstruct Canvas\nstruct Unit");
    report("parse", &parse(&db, "render.toy", &files[2].1)?);
    for (path, _) in &files {
        report("check", &check(&db, path)?);
    }
    print_diagnostics(&db)?;
    let old = before.partition(MiniLang::DIAGNOSTICS).count()?;
    let new = db.snapshot().partition(MiniLang::DIAGNOSTICS).count()?;
    println!("a snapshot taken before the edit still sees {old} diagnostics; a new one sees {new}");

    println!("\n== what check:render.toy read (partition, key range, chunks, hits)");
    let snapshot = db.snapshot();
    if let Some(chunk) = snapshot.task_chunk(TaskId::new("check:render.toy")) {
        for read in chunk.reads() {
            println!(
                "  {} {} from {} chunk(s), {} hit(s){}",
                read.partition(),
                describe(read.partition(), read.range()),
                read.chunks().len(),
                read.hits(),
                if read.is_pending() { " (pending)" } else { "" }
            );
        }
    }

    println!("\n== workspace symbols starting with `mid` in geometry.toy");
    let prefix = SymbolsKey::prefix().file(Ident::new("geometry.toy")).path_starts_with("mid");
    for hit in &snapshot.partition(MiniLang::SYMBOLS).begins_with(prefix).execute()? {
        println!("  {:?} from {}", hit.record(), hit.task());
    }

    let stats = db.stats();
    println!(
        "\nstats: {} tasks, {} chunks, {} records, ~{} bytes, {} versions committed, clock {}",
        stats.tasks, stats.chunks, stats.records, stats.bytes, stats.versions_committed, stats.clock
    );
    Ok(())
}

/// Parses a file into one module record and a record per item, as the file's task.
fn parse(db: &Database<MiniLang>, path: &str, source: &str) -> Result<CommitReceipt> {
    let file = Ident::named(path);
    let mut writer = db.writer(format!("parse:{path}"));
    let mut names = Vec::new();
    for line in source.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if let Some(name) = line.strip_prefix("struct ") {
            writer.put(
                MiniLang::SYMBOLS,
                SymbolsKey::new(file, name),
                Struct { name: Ident::named(name), fields: Vec::new() },
            )?;
            names.push(name);
        } else if let Some(rest) = line.strip_prefix("fn ") {
            let (name, rest) = rest.split_once('(').unwrap_or((rest, ")"));
            let (params, ret) = rest.split_once(')').unwrap_or((rest, ""));
            let params: Vec<&str> = params.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
            let ret = ret.trim().strip_prefix("->").map(str::trim);
            let function = Function {
                name: Ident::named(name),
                params: params.iter().map(|p| Ident::named(p)).collect(),
                return_type: ret.map(Ident::named),
            };
            writer.put(MiniLang::SYMBOLS, SymbolsKey::new(file, name), function)?;
            names.push(name);
        }
    }
    let module = Module { name: file, exports: names.iter().map(|n| Ident::named(n)).collect() };
    writer.put(MiniLang::SYMBOLS, SymbolsKey::new(file, ""), module)?;
    writer.commit()
}

/// Checks that every type a file's functions mention is declared as a struct in some
/// file; reads go through a task context, so they are recorded.
fn check(db: &Database<MiniLang>, path: &str) -> Result<CommitReceipt> {
    let file = Ident::named(path);
    let ctx = db.task(format!("check:{path}"));
    ctx.set_parent(TaskId::new(&format!("parse:{path}")));
    let own = ctx.partition(MiniLang::SYMBOLS).begins_with(SymbolsKey::prefix().file(file)).execute()?;
    let mut wanted: Vec<Ident> = own
        .records()
        .filter_map(|record| match record {
            MiniLangRecordRef::Function(f) => Some(
                f.params.iter().map(|param| param.get()).chain(f.return_type.as_ref().map(|ty| ty.get())),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut seq = 0u32;
    for ty in wanted {
        let name = ty.to_string();
        let declared = WORKSPACE.iter().any(|(other, _)| {
            let key = SymbolsKey::new(Ident::new(other), name.as_str());
            ctx.partition(MiniLang::SYMBOLS)
                .exact(key)
                .execute()
                .is_ok_and(|hits| hits.records().any(|r| r.as_struct().is_some()))
        });
        if !declared {
            let diagnostic = Diagnostic { message: format!("unknown type `{name}`"), severity: 2, line: 0 };
            ctx.put(MiniLang::DIAGNOSTICS, DiagnosticsKey::new(file, 2, seq), diagnostic)?;
            seq += 1;
        }
    }
    drop(own);
    ctx.commit()
}

/// Renders a read range with the partition's key layout: `[start .. end)`.
fn describe(partition: Ident, range: &KeyRange) -> String {
    let Some(def) = MiniLang::partitions().iter().find(|def| def.key == partition) else {
        return format!("{range:?}");
    };
    let show = |bytes: &[u8]| match decode_key(bytes, def.layout) {
        Ok(parts) => format!("({})", parts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
        Err(_) => format!("{bytes:02x?}"),
    };
    if let Some(prefix) = range.as_prefix() {
        return format!("every key starting with {}", show(prefix));
    }
    match range.end() {
        Some(end) if end.len() == range.start().len() + 1 && end.starts_with(range.start()) => {
            format!("exactly {}", show(range.start()))
        }
        Some(end) => format!("[{} .. {})", show(range.start()), show(end)),
        None => format!("[{} ..)", show(range.start())),
    }
}

fn report(what: &str, receipt: &CommitReceipt) {
    let outcome = match (receipt.stored, receipt.output_changed, receipt.superseded) {
        (false, _, _) => "unchanged, stored once",
        (true, false, None) => "first version, no records",
        (true, false, Some(_)) => "recomputed, same output (early cut-off)",
        (true, true, _) => "new output",
    };
    let touched: Vec<String> = receipt.partitions_touched.iter().map(ToString::to_string).collect();
    println!(
        "  {what:5} {:<22} {outcome}; touched [{}]; clock {}",
        receipt.task.to_string(),
        touched.join(", "),
        receipt.clock
    );
}

fn print_diagnostics(db: &Database<MiniLang>) -> Result<()> {
    let snapshot = db.snapshot();
    let diagnostics = snapshot.partition(MiniLang::DIAGNOSTICS).execute()?;
    println!("diagnostics ({}):", diagnostics.len());
    for hit in &diagnostics {
        if let Some(d) = hit.record().as_diagnostic() {
            println!("  {}: {}", hit.task(), d.message);
        }
    }
    Ok(())
}
