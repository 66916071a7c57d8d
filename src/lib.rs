pub use chunkdb_database::*;
