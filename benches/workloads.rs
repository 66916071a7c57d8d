//! Workloads shared by `examples/perf_report.rs` and the criterion benches, so both
//! measure exactly the same thing.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chunkdb::{Database, Ident, KeyPrefix, SortKey, StableHash, StableHasher};

chunkdb::chunk_schema! {
    /// The benchmark language: `chunkdb::example::MiniLang`'s records and partitions
    /// without its secondary index, so the core figures compare the store itself with a
    /// `BTreeMap` (which has no index either). The index's own cost is measured apart.
    pub schema BenchLang {
        records {
            Module { name: Ident, exports: Vec<Ident> },
            Function { name: Ident, params: Vec<Ident>, return_type: Option<Ident> },
            Struct { name: Ident, fields: Vec<(Ident, Ident)> },
            Diagnostic { message: String, severity: u8, line: u32 },
        }
        partitions {
            symbols: "symbols" holds Module, Function, Struct key (file: Ident, path: String),
            diagnostics: "diagnostics" holds Diagnostic key (file: Ident, severity: u8, seq: u32),
        }
    }
}

/// The benchmark schema under the name the rest of the workloads use.
pub type MiniLang = BenchLang;
/// Its record enum.
pub type MiniLangRecord = BenchLangRecord;

/// A function record from names.
pub fn function(name: &str, params: &[&str], return_type: Option<&str>) -> Function {
    Function {
        name: Ident::named(name),
        params: params.iter().map(|p| Ident::named(p)).collect(),
        return_type: return_type.map(Ident::named),
    }
}

/// Records per file in the `symbols` partition (one module, ten functions, four
/// structs); each file also gets one diagnostic in `diagnostics`.
pub const SYMBOLS_PER_FILE: usize = 15;

/// One file's parse output.
pub struct FileOutput {
    pub file: Ident,
    pub task: String,
    pub symbols: Vec<((Ident, String), MiniLangRecord)>,
    pub diagnostic: ((Ident, u8, u32), MiniLangRecord),
}

/// A deterministic corpus of `files` files that look like a real crate's symbols.
pub fn corpus(files: usize) -> Vec<FileOutput> {
    (0..files).map(|i| file_output(i, 0)).collect()
}

/// File `i`'s output; `variant` changes every record's content (an edit).
pub fn file_output(i: usize, variant: usize) -> FileOutput {
    let path = format!("src/module_{i:05}.rs");
    let file = Ident::named(&path);
    let module = format!("crate::module_{i:05}");
    let mut symbols = Vec::with_capacity(SYMBOLS_PER_FILE);
    let exports = (0..10).map(|f| Ident::named(&format!("function_{f:02}_{variant}"))).collect();
    symbols.push(((file, module.clone()), Module { name: Ident::named(&module), exports }.into()));
    for f in 0..10 {
        let name = format!("function_{f:02}_{variant}");
        let record = function(&name, &["usize", "Context"], Some("Result"));
        symbols.push(((file, format!("{module}::{name}")), record.into()));
    }
    for s in 0..4 {
        let name = format!("Struct{s}V{variant}");
        let fields = [("id", "u64"), ("name", "String"), ("span", "Span")];
        let fields = fields.iter().map(|(n, t)| (Ident::named(n), Ident::named(t))).collect();
        symbols
            .push(((file, format!("{module}::{name}")), Struct { name: Ident::named(&name), fields }.into()));
    }
    let message = format!("unused import in {path} ({variant})");
    let diagnostic = ((file, 1u8, 0u32), Diagnostic { message, severity: 1, line: 3 }.into());
    FileOutput { file, task: format!("parse:{path}"), symbols, diagnostic }
}

/// Commits one file's output as its task's new version.
pub fn commit_file(db: &Database<MiniLang>, output: &FileOutput) {
    let mut writer = db.writer(output.task.as_str());
    for ((file, path), record) in &output.symbols {
        writer
            .insert(SymbolsPartition::ID, SymbolsKey::new(*file, path.as_str()), record.clone())
            .expect("valid insert");
    }
    let ((file, severity, seq), record) = &output.diagnostic;
    let key = DiagnosticsKey::new(*file, *severity, *seq);
    writer.insert(DiagnosticsPartition::ID, key, record.clone()).expect("valid insert");
    writer.commit().expect("valid commit");
}

/// A database holding the corpus, one chunk per file.
pub fn load(corpus: &[FileOutput]) -> Database<MiniLang> {
    let db = Database::new();
    load_into(&db, corpus);
    db
}

/// Commits the corpus into `db` (a persisted one, say), one chunk per file.
pub fn load_into(db: &Database<MiniLang>, corpus: &[FileOutput]) {
    for output in corpus {
        commit_file(db, output);
    }
}

/// The baseline: one `BTreeMap` of the `symbols` records, keyed by the same encoded keys.
pub fn symbols_btree(corpus: &[FileOutput]) -> BTreeMap<Vec<u8>, MiniLangRecord> {
    corpus
        .iter()
        .flat_map(|output| output.symbols.iter())
        .map(|((file, path), record)| {
            (SortKey::encode((*file, path.as_str())).as_bytes().to_vec(), record.clone())
        })
        .collect()
}

/// Every `symbols` key of the corpus, encoded, in a scrambled but fixed order.
pub fn lookup_keys(corpus: &[FileOutput], count: usize) -> Vec<SortKey> {
    let all: Vec<SortKey> = corpus
        .iter()
        .flat_map(|output| output.symbols.iter())
        .map(|((file, path), _)| SortKey::encode((*file, path.as_str())))
        .collect();
    scramble(count, all.len()).map(|at| all[at].clone()).collect()
}

/// File prefixes of the corpus in a scrambled but fixed order.
pub fn lookup_prefixes(corpus: &[FileOutput], count: usize) -> Vec<KeyPrefix> {
    scramble(count, corpus.len()).map(|at| KeyPrefix::new((corpus[at].file,))).collect()
}

/// `count` indexes below `len`, spread by a fixed multiplicative walk (no RNG needed).
fn scramble(count: usize, len: usize) -> impl Iterator<Item = usize> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count).map(move |_| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % len
    })
}

/// Bytes of the canonical encoding of every record of the corpus: partition key,
/// sort key and record content, as `StableHash` defines them.
pub fn raw_encoded_bytes(corpus: &[FileOutput]) -> u64 {
    let mut hasher = StableHasher::new();
    for output in corpus {
        for ((file, path), record) in &output.symbols {
            hasher.write_u64(SymbolsPartition::ID.raw());
            hasher.write_raw(SortKey::encode((*file, path.as_str())).as_bytes());
            record.stable_hash(&mut hasher);
        }
        let ((file, severity, seq), record) = &output.diagnostic;
        hasher.write_u64(DiagnosticsPartition::ID.raw());
        hasher.write_raw(SortKey::encode((*file, *severity, *seq)).as_bytes());
        record.stable_hash(&mut hasher);
    }
    hasher.bytes_written()
}

/// Records of the corpus (both partitions).
pub fn record_count(corpus: &[FileOutput]) -> usize {
    corpus.len() * (SYMBOLS_PER_FILE + 1)
}
