//! The persisted-directory loader on mutated directories (see `chunkdb_fuzz_checks::check_directory`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| chunkdb_fuzz_checks::check_directory(data));
