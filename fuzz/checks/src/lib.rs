//! The properties chunkdb's fuzz targets check, one function per target. The
//! libFuzzer targets under `fuzz/fuzz_targets/` call these on what the fuzzer makes;
//! `tests/replay.rs` calls them on every committed corpus entry and every crash found,
//! so `cargo test` on the stable toolchain replays them without libFuzzer. Each
//! function panics exactly when the property fails.

mod key;
mod loader;
mod schema;

pub use key::check_key;
pub use loader::{check_directory, encode as encode_directory, files_of, seed as directory_seed};
pub use schema::{SchemaSpec, check_schema, check_text};
