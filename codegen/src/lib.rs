//! The `chunk_schema!` procedural macro: one declaration of a language's records,
//! partitions, sort keys and indexes becomes typed Rust for the chunkdb runtime.
//!
//! Use it through the `chunkdb` crate, which re-exports it; its documentation
//! describes the syntax and what is generated. The macro is a pipeline: `ast.rs`
//! parses, `valid.rs` checks (collecting every mistake), `expand.rs` generates, and
//! `names.rs` names every generated item; `types.rs` knows which field types can be
//! hashed, ordered and indexed.

mod ast;
mod expand;
mod names;
mod types;
mod valid;

use proc_macro::TokenStream;

/// Declares a language for chunkdb. See the `chunkdb` crate's documentation.
#[proc_macro]
pub fn chunk_schema(input: TokenStream) -> TokenStream {
    let expanded = ast::parse(input.into())
        .and_then(|schema| valid::check(&schema).map(|checked| expand::expand(&checked)));
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}
