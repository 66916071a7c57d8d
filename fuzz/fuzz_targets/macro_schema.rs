//! Declarations built from records, fields, partitions, keys and indexes, with the
//! mistakes the validator knows, through the `chunk_schema!` pipeline.
#![no_main]
libfuzzer_sys::fuzz_target!(|spec: chunkdb_fuzz_checks::SchemaSpec| chunkdb_fuzz_checks::check_schema(&spec));
