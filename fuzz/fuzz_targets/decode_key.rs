//! Sort-key decoding on arbitrary bytes and layouts, and encode/decode round trips.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| chunkdb_fuzz_checks::check_key(data));
