//! The `chunk_schema!` procedural macro (see the `chunkdb` crate).
