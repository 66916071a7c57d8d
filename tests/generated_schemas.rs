//! Random valid schemas compile: declarations built from parts (the fuzz target
//! `macro_schema`'s model: records, fields, partitions, keys, indexes) that the
//! macro's pipeline accepts are written out as trybuild pass cases and compiled
//! against the real `chunkdb`, so the generated code is known to type-check (without
//! a warning) beyond the hand-written declarations of `tests/ui/pass/`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;

use arbitrary::{Arbitrary, Unstructured};
use chunkdb_fuzz_checks::SchemaSpec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// How many accepted declarations are compiled (each costs a compiler run).
const COMPILED: usize = 4;

#[test]
fn random_valid_schemas_compile() {
    let mut runner = TestRunner::new(Config {
        rng_seed: RngSeed::Fixed(0x5C4E_3A11),
        failure_persistence: None,
        ..Config::default()
    });
    let bytes = prop::collection::vec(any::<u8>(), 8..256);
    let mut accepted = BTreeSet::new();
    let mut tried = 0;
    while tried < 5_000 {
        tried += 1;
        let data = bytes.new_tree(&mut runner).expect("a value").current();
        let Ok(spec) = SchemaSpec::arbitrary_take_rest(Unstructured::new(&data)) else { continue };
        let source = spec.render();
        let tokens = proc_macro2::TokenStream::from_str(&source).expect("a rendered declaration lexes");
        // With partitions, the cases exercise the generated keys too.
        if chunkdb_codegen_impl::expand(tokens).is_ok() && source.contains("partitions") {
            accepted.insert(source);
        }
    }
    assert!(accepted.len() >= COMPILED, "only {} of {tried} random declarations were valid", accepted.len());
    // The largest declarations exercise the most generated code.
    let mut largest: Vec<String> = accepted.into_iter().collect();
    largest.sort_by_key(|source| std::cmp::Reverse(source.len()));
    largest.truncate(COMPILED);

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("generated-schemas");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let cases = trybuild::TestCases::new();
    for (at, source) in largest.iter().enumerate() {
        let path = dir.join(format!("schema_{at}.rs"));
        let case = format!(
            "#![deny(warnings)]\n\nchunkdb::chunk_schema! {{\n{source}\n}}\n\nfn main() {{\n    let db = chunkdb::Database::<Fuzzed>::new();\n    assert_eq!(db.snapshot().tasks().count(), 0);\n}}\n"
        );
        std::fs::write(&path, case).expect("a written case");
        cases.pass(&path);
    }
}
