//! Two languages declared with `chunk_schema!` in one crate, used with the runtime:
//! inserts through typed partitions, every query kind, typed keys and prefixes,
//! secondary indexes, and the generated docs and fingerprint.

#![deny(missing_docs, unused)]

use chunkdb::{Database, Ident, Schema, TaskId};

/// The languages under test.
pub mod langs {
    chunkdb::chunk_schema! {
        /// A small Algol-style language.
        pub schema MiniLang {
            records {
                /// A module and the names it exports.
                Module { name: Ident, exports: Vec<Ident> },
                /// A function signature.
                Function { name: Ident, params: Vec<Ident>, return_type: Option<Ident> },
                Struct { name: Ident, fields: Vec<(Ident, Ident)> },
                Diagnostic { message: String, severity: u8, line: u32 },
            }
            partitions {
                /// Every named item, by file and path.
                symbols: "symbols" holds Module, Function, Struct key (file: Ident, path: String),
                diagnostics: "diagnostics" holds Diagnostic key (file: Ident, severity: u8, seq: u32),
            }
            indexes {
                /// Items by name.
                by_name on Function.name, Struct.name,
                by_export on Module.exports,
            }
        }
    }

    chunkdb::chunk_schema! {
        /// A configuration language: settings and their uses.
        pub schema Conf {
            records {
                Setting { name: String, value: i64, secret: bool, tags: Box<[String]> },
                Use { setting: String, at: u32 },
            }
            partitions {
                settings holds Setting key (section: String, name: String),
                uses: "setting-uses" holds Use key (setting: String, line: i32),
            }
            indexes {
                by_setting on Use.setting, Setting.name,
            }
        }
    }
}

use langs::*;

fn file(name: &str) -> Ident {
    Ident::named(name)
}

#[test]
fn mini_lang_inserts_and_queries_every_kind() -> chunkdb::Result<()> {
    let db = Database::<MiniLang>::new();
    let a = file("a.rs");
    let mut parse = db.writer("parse:a.rs");
    parse.put(
        MiniLang::SYMBOLS,
        SymbolsKey::new(a, "a"),
        Module { name: file("a"), exports: vec![file("f")] },
    )?;
    for (path, name) in [("a::f", "f"), ("a::g", "g"), ("a::h", "h")] {
        let function = Function { name: file(name), params: vec![file("i32")], return_type: None };
        parse.put(MiniLang::SYMBOLS, SymbolsKey::new(a, path), function)?;
    }
    parse.put(
        MiniLang::SYMBOLS,
        SymbolsKey::new(a, "a::S"),
        Struct { name: file("S"), fields: vec![(file("x"), file("i32"))] },
    )?;
    parse.put(
        MiniLang::DIAGNOSTICS,
        DiagnosticsKey::new(a, 2, 0),
        Diagnostic { message: "unused".into(), severity: 2, line: 3 },
    )?;
    parse.commit()?;

    let snap = db.snapshot();
    let symbols = snap.partition(MiniLang::SYMBOLS);
    assert_eq!(symbols.execute()?.len(), 5);
    let exact = snap.partition(MiniLang::SYMBOLS).exact(SymbolsKey::new(a, "a::g")).execute()?;
    assert_eq!(
        exact.first().and_then(|hit| hit.record().as_function()).map(|f| f.name.get()),
        Some(file("g"))
    );
    let in_file = snap.partition(MiniLang::SYMBOLS).begins_with(SymbolsKey::prefix().file(a)).count()?;
    assert_eq!(in_file, 5);
    let functions = SymbolsKey::prefix().file(a).path_starts_with("a::");
    assert_eq!(snap.partition(MiniLang::SYMBOLS).begins_with(functions).count()?, 4);
    let range = snap
        .partition(MiniLang::SYMBOLS)
        .between(SymbolsKey::prefix().file(a).path("a::f"), SymbolsKey::prefix().file(a).path("a::g"))
        .count()?;
    assert_eq!(range, 2);
    assert_eq!(snap.partition(MiniLang::SYMBOLS).lt(SymbolsKey::new(a, "a::S")).count()?, 1);
    assert_eq!(snap.partition(MiniLang::SYMBOLS).le(SymbolsKey::new(a, "a::S")).count()?, 2);
    assert_eq!(snap.partition(MiniLang::SYMBOLS).gt(SymbolsKey::new(a, "a::g")).count()?, 1);
    assert_eq!(snap.partition(MiniLang::SYMBOLS).ge(SymbolsKey::new(a, "a::g")).count()?, 2);
    let errors = snap
        .partition(MiniLang::DIAGNOSTICS)
        .begins_with(DiagnosticsKey::prefix().file(a).severity(2))
        .execute()?;
    assert_eq!(errors.len(), 1);
    let key = DiagnosticsKey::decode(errors.first().expect("one error").sort_key()).expect("decodes");
    assert_eq!(key, DiagnosticsKey::new(a, 2, 0));
    assert_eq!(
        SymbolsKey::decode(errors.first().expect("one").sort_key()),
        None,
        "a diagnostics key is not a symbols key"
    );
    let batch = snap.batch_get([
        (MiniLang::SYMBOLS.into(), SymbolsKey::new(a, "a::h")),
        (MiniLang::SYMBOLS.into(), SymbolsKey::new(a, "zz")),
    ])?;
    assert_eq!(batch.iter().map(|r| r.len()).collect::<Vec<_>>(), [1, 0]);
    Ok(())
}

#[test]
fn secondary_indexes_follow_commits() -> chunkdb::Result<()> {
    let db = Database::<MiniLang>::new();
    let (a, b) = (file("a.rs"), file("b.rs"));
    let write = |task: &str, f: Ident, names: &[&str]| -> chunkdb::Result<()> {
        let mut writer = db.writer(task);
        for name in names {
            let function = Function { name: file(name), params: vec![], return_type: None };
            writer.put(MiniLang::SYMBOLS, SymbolsKey::new(f, *name), function)?;
        }
        writer.put(
            MiniLang::SYMBOLS,
            SymbolsKey::new(f, ""),
            Module { name: f, exports: names.iter().map(|n| file(n)).collect() },
        )?;
        writer.commit().map(|_| ())
    };
    write("parse:a", a, &["main", "helper"])?;
    write("parse:b", b, &["main"])?;
    let snap = db.snapshot();
    let mains = snap.index(MiniLang::BY_NAME).get(&file("main"))?;
    assert_eq!(mains.len(), 2);
    assert_eq!(mains.iter().map(|hit| hit.task()).collect::<Vec<_>>().len(), 2);
    assert_eq!(
        snap.index(MiniLang::BY_EXPORT).get(&file("helper"))?.len(),
        1,
        "each element of a Vec field is indexed"
    );

    write("parse:a", a, &["renamed"])?;
    let after = db.snapshot();
    assert_eq!(after.index(MiniLang::BY_NAME).get(&file("main"))?.len(), 1);
    assert_eq!(after.index(MiniLang::BY_NAME).get(&file("helper"))?.len(), 0);
    assert_eq!(after.index(MiniLang::BY_NAME).get(&file("renamed"))?.len(), 1);
    assert_eq!(snap.index(MiniLang::BY_NAME).get(&file("main"))?.len(), 2, "old snapshots keep their index");
    db.remove_task("parse:b");
    assert!(db.snapshot().index(MiniLang::BY_NAME).get(&file("main"))?.is_empty());

    let ctx = db.task("check");
    assert!(ctx.index(MiniLang::BY_NAME).get(&file("nowhere"))?.is_empty());
    assert_eq!(ctx.pending().len(), 1, "index lookups are recorded reads");
    assert_eq!(ctx.pending()[0].partition(), MiniLang::BY_NAME.id());
    Ok(())
}

#[test]
fn a_second_language_in_the_same_crate() -> chunkdb::Result<()> {
    let db = Database::<Conf>::new();
    let mut writer = db.writer("load:app.conf");
    writer.put(
        Conf::SETTINGS,
        SettingsKey::new("server", "port"),
        Setting { name: "port".into(), value: 8080, secret: false, tags: vec!["net".to_string()].into() },
    )?;
    writer.put(Conf::USES, UsesKey::new("port", -1), Use { setting: "port".into(), at: 12 })?;
    writer.commit()?;
    let snap = db.snapshot();
    let server =
        snap.partition(Conf::SETTINGS).begins_with(SettingsKey::prefix().section("server")).execute()?;
    assert_eq!(server.first().and_then(|h| h.record().as_setting()).map(|s| s.value.to_native()), Some(8080));
    assert_eq!(snap.index(Conf::BY_SETTING).get("port")?.len(), 2, "a String index is queried with &str");
    assert_eq!(
        UsesKey::decode(snap.partition(Conf::USES).execute()?.first().expect("a use").sort_key()),
        Some(UsesKey::new("port", -1))
    );
    assert_eq!(Ident::from(Conf::USES), Ident::new("setting-uses"));
    Ok(())
}

#[test]
fn schemas_describe_themselves() {
    assert_eq!(MiniLang::NAME, "MiniLang");
    assert_eq!(MiniLang::record_kinds(), ["Module", "Function", "Struct", "Diagnostic"]);
    assert_eq!(MiniLang::partitions().len(), 2);
    assert_eq!(MiniLang::indexes().len(), 2);
    assert_ne!(MiniLang::fingerprint(), Conf::fingerprint());
    assert_eq!(
        chunkdb::describe_layout(MiniLang::partitions()[1].layout),
        "(file: Ident, severity: u8, seq: u32)"
    );
    let _ = TaskId::new("unused-import-guard");
}

/// One declaration in variants (each in its own module, all named `Lang`), to see
/// what the fingerprint reacts to.
mod variants {
    /// The base.
    pub mod base {
        chunkdb::chunk_schema! {
            /// The base.
            pub schema Lang { records { Item { id: u32 } } partitions { items holds Item key (id: u32) } }
        }
    }
    /// Other docs, same data.
    pub mod redocumented {
        chunkdb::chunk_schema! {
            /// Other docs.
            pub schema Lang {
                records {
                    /// A documented record.
                    Item {
                        /// A documented field.
                        id: u32,
                    },
                }
                partitions {
                    /// A documented partition.
                    items holds Item key (id: u32),
                }
            }
        }
    }
    /// One more field.
    pub mod wider {
        chunkdb::chunk_schema! {
            /// One more field.
            pub schema Lang { records { Item { id: u32, name: String } } partitions { items holds Item key (id: u32) } }
        }
    }
    /// Another key type.
    pub mod rekeyed {
        chunkdb::chunk_schema! {
            /// Another key type.
            pub schema Lang { records { Item { id: u32 } } partitions { items holds Item key (id: u64) } }
        }
    }
}

#[test]
fn fingerprints_follow_the_data_not_the_docs() {
    use variants::{base, redocumented, rekeyed, wider};
    assert_eq!(base::Lang::fingerprint(), redocumented::Lang::fingerprint(), "docs do not change the data");
    assert_ne!(base::Lang::fingerprint(), wider::Lang::fingerprint(), "a new field does");
    assert_ne!(base::Lang::fingerprint(), rekeyed::Lang::fingerprint(), "a new key type does");
}

#[test]
fn record_hashes_are_pinned() {
    use chunkdb::StableHash;
    // A record's content hash is a function of its field values' canonical encoding
    // only: the same on every platform, in every process, in every build.
    let function = Function { name: Ident::new("main"), params: vec![Ident::new("i32")], return_type: None };
    let mut expected = chunkdb::StableHasher::new();
    expected.write_u64(Ident::new("main").raw());
    expected.write_u64(1);
    expected.write_u64(Ident::new("i32").raw());
    expected.write_u8(0);
    assert_eq!(function.stable_hash_value(), expected.finish());
    assert_eq!(
        format!("{:?}", function.stable_hash_value()),
        "ContentHash(cebdfc803b8f020f33fdab22d08847d1)",
        "the encoding of records is part of the storage format"
    );
}

#[test]
fn very_large_commits_index_every_record() -> chunkdb::Result<()> {
    use chunkdb::example::{Function as ExampleFunction, MiniLang as Example, SymbolsKey as ExampleKey};
    // Past 65,536 records a chunk sorts and computes its index entries on every core.
    let db = Database::<Example>::new();
    let file = file("generated.rs");
    let mut writer = db.writer("generate");
    for i in 0..70_000u32 {
        let name = Ident::new(&format!("g{}", i % 1_000));
        let record = ExampleFunction { name, params: Vec::new(), return_type: None };
        writer.put(Example::SYMBOLS, ExampleKey::new(file, format!("g{i:05}")), record)?;
    }
    writer.commit()?;
    let snapshot = db.snapshot();
    assert_eq!(snapshot.partition(Example::SYMBOLS).count()?, 70_000);
    for name in ["g0", "g7", "g999"] {
        assert_eq!(snapshot.index(Example::BY_NAME).get(&Ident::new(name))?.len(), 70, "{name}");
    }
    Ok(())
}

#[test]
fn typed_queries_filter_map_and_choose_execution() -> chunkdb::Result<()> {
    let db = Database::<MiniLang>::new();
    let a = file("a.rs");
    let mut writer = db.writer("parse:a.rs");
    for (path, arity) in [("a::f", 0), ("a::g", 2), ("a::h", 1)] {
        let function = Function { name: file(path), params: vec![file("i32"); arity], return_type: None };
        writer.put(MiniLang::SYMBOLS, SymbolsKey::new(a, path), function)?;
    }
    writer.commit()?;
    let snapshot = db.snapshot();
    let with_params = snapshot
        .partition(MiniLang::SYMBOLS)
        .filter(|hit| hit.record().as_function().is_some_and(|f| !f.params.is_empty()))
        .execution(chunkdb::Execution::Parallel)
        .count()?;
    assert_eq!(with_params, 2);
    let arities = snapshot
        .partition(MiniLang::SYMBOLS)
        .begins_with(SymbolsKey::prefix().file(a))
        .filter_map(|hit| hit.record().as_function().map(|f| f.params.len()))?;
    assert_eq!(arities, [0, 2, 1]);
    Ok(())
}

#[test]
fn index_lookups_with_many_hits_match_in_every_mode() -> chunkdb::Result<()> {
    let db = Database::<MiniLang>::new();
    for task in 0..10 {
        let f = file(&format!("f{task}.rs"));
        let mut writer = db.writer(format!("t{task}"));
        for i in 0..1_000u32 {
            let function = Function { name: file("shared"), params: Vec::new(), return_type: None };
            writer.put(MiniLang::SYMBOLS, SymbolsKey::new(f, format!("p{i:04}")), function)?;
        }
        writer.commit()?;
    }
    let snapshot = db.snapshot();
    let keys = |results: &chunkdb::QueryResults<'_, MiniLang>| -> Vec<(chunkdb::SortKey, TaskId)> {
        results.iter().map(|hit| (hit.sort_key().to_sort_key(), hit.task())).collect()
    };
    let first = keys(&snapshot.index(MiniLang::BY_NAME).get(&file("shared"))?);
    assert_eq!(first.len(), 10_000);
    // Mid-sized lookups are explored in both modes; every run must agree.
    for _ in 0..(4 * chunkdb::EXPLORE_RUNS) {
        assert_eq!(keys(&snapshot.index(MiniLang::BY_NAME).get(&file("shared"))?), first);
    }
    Ok(())
}

#[test]
fn typed_get_and_batch_get_take_the_partitions_own_keys() -> chunkdb::Result<()> {
    let db = Database::<MiniLang>::new();
    let a = file("a.rs");
    let mut parse = db.writer("parse:a.rs");
    for (path, name) in [("a::f", "f"), ("a::g", "g")] {
        let function = Function { name: file(name), params: vec![], return_type: None };
        parse.put(MiniLang::SYMBOLS, SymbolsKey::new(a, path), function)?;
    }
    parse.commit()?;
    let snapshot = db.snapshot();
    let found = snapshot.get_typed(MiniLang::SYMBOLS, SymbolsKey::new(a, "a::g"))?;
    assert_eq!(found.len(), 1);
    assert_eq!(found.first().expect("one hit").task(), TaskId::new("parse:a.rs"));
    let batch = snapshot.batch_get_typed(
        MiniLang::SYMBOLS,
        [SymbolsKey::new(a, "a::f"), SymbolsKey::new(a, "a::x"), SymbolsKey::new(a, "a::g")],
    )?;
    assert_eq!(batch.iter().map(|results| results.len()).collect::<Vec<_>>(), [1, 0, 1]);
    assert!(snapshot.task_chunk("parse:a.rs").is_some(), "task_chunk takes a task name");

    // Through a task context the lookups are recorded reads.
    let check = db.task("check");
    assert_eq!(check.get_typed(MiniLang::SYMBOLS, SymbolsKey::new(a, "a::f"))?.len(), 1);
    let batch = check.batch_get_typed(MiniLang::SYMBOLS, [SymbolsKey::new(a, "a::x")])?;
    assert!(batch[0].is_empty());
    drop(batch);
    assert_eq!(check.reads().len(), 2);
    assert_eq!(check.pending().len(), 1);
    Ok(())
}
