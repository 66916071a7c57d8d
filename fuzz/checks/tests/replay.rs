//! Replays every committed corpus entry of every fuzz target (`fuzz/corpus/TARGET/`),
//! so `cargo test` checks on the stable toolchain, without libFuzzer, what the
//! fuzzers found; crashes found are named tests at the end.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use chunkdb_fuzz_checks::{SchemaSpec, check_directory, check_key, check_schema, check_text, directory_seed};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus").join(target);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("the corpus {} cannot be read: {error}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "the corpus {} is empty", dir.display());
    entries
}

/// The stack rustc runs a proc macro on (its compiler thread's, 8 MiB): deeply nested
/// input recurses in syn's parser, and a test thread's default 2 MiB is not what the
/// macro gets in a real build.
const MACRO_STACK: usize = 8 << 20;

fn replay(target: &str, check: impl Fn(&[u8]) + Sync) {
    let entries = corpus(target);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(MACRO_STACK)
            .spawn_scoped(scope, || {
                for path in &entries {
                    let data = std::fs::read(path).expect("a readable corpus entry");
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
                    assert!(outcome.is_ok(), "{} fails its target's check", path.display());
                }
            })
            .expect("a replay thread")
            .join()
            .expect("the replay passes");
    });
}

fn schema_of(data: &[u8]) {
    if let Ok(spec) = SchemaSpec::arbitrary_take_rest(Unstructured::new(data)) {
        check_schema(&spec);
    }
}

#[test]
fn macro_text_corpus() {
    replay("macro_text", check_text);
}

#[test]
fn macro_schema_corpus() {
    replay("macro_schema", schema_of);
}

#[test]
fn decode_key_corpus() {
    replay("decode_key", check_key);
}

#[test]
fn loader_corpus() {
    replay("loader", check_directory);
}

/// The seed the loader's corpus grew from is a real directory, and it opens: the
/// check is not vacuous (a mutation that breaks nothing opens too).
#[test]
fn loader_seed_is_a_directory_that_opens() {
    let seed = directory_seed();
    assert!(chunkdb_fuzz_checks::files_of(&seed).len() >= 2, "a manifest and a segment");
    check_directory(&seed);
    if let Some(dir) = std::env::var_os("CHUNKDB_WRITE_LOADER_SEED") {
        std::fs::write(Path::new(&dir).join("seed"), &seed).expect("the seed is written");
    }
}

/// Found by `decode_key`: a prefix ending in a lone `0x00` inside a string (the first
/// byte of an escape or of the terminator) decodes to the text before it.
#[test]
fn crash_decode_key_prefix_ending_inside_an_escape() {
    check_key(&[2, 0, 87, 215, 130, 0]);
}

/// Found by `macro_schema` on its first input, a declaration with an empty `records`
/// section: not a bug of the macro (its error is on the `records` keyword), but of the
/// check, which read spans that proc-macro2 does not keep under `cfg(fuzzing)`.
#[test]
fn crash_macro_schema_empty_records_section() {
    schema_of(&[]);
}

/// Found by `macro_schema`: a duplicate raw-identifier record is reported under its
/// name without `r#` (a mistake of the check's model, not of the macro).
#[test]
fn crash_macro_schema_duplicate_raw_record() {
    schema_of(&[0xff, 0x17, 0x24, 0x17, 0x2b]);
}

/// Found by `macro_text` (a SIGSEGV without an artifact: the stack overflowed):
/// generic arguments or brackets nested a thousand levels deep recursed through
/// syn's parser until the stack ran out. The macro now refuses declarations nested
/// deeper than 64 levels before parsing them, with an error on the token where the
/// limit is passed.
#[test]
fn crash_macro_text_deep_nesting() {
    let shapes: [(&str, &str); 5] =
        [("Vec<", ">"), ("(", ",)"), ("[", "; 1]"), ("Option<(", ",)>"), ("{", "}")];
    for (open, close) in shapes {
        for depth in [63, 64, 65, 2000] {
            let text = format!(
                "pub schema S {{ records {{ R {{ f: {}u8{} }} }} }}",
                open.repeat(depth),
                close.repeat(depth)
            );
            replay_one(text.as_bytes(), check_text);
        }
    }
}

/// Runs `check` on `data` on the stack a proc macro gets.
fn replay_one(data: &[u8], check: impl Fn(&[u8]) + Sync) {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(MACRO_STACK)
            .spawn_scoped(scope, || check(data))
            .expect("a replay thread")
            .join()
            .expect("the check passes");
    });
}
