//! Arbitrary text, lexed as Rust tokens, through the `chunk_schema!` pipeline.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| chunkdb_fuzz_checks::check_text(data));
