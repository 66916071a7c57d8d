//! The `chunk_schema!` procedural macro: one declaration of a language's records,
//! partitions, sort keys and indexes becomes typed Rust for the chunkdb runtime.
//!
//! Use it through the `chunkdb` crate, which re-exports it; its documentation
//! describes the syntax and what is generated. This crate is the compiler's entry
//! point only: the pipeline (parse, validate, expand) lives in
//! `chunkdb-codegen-impl`, on `proc_macro2` tokens, so it can be tested and fuzzed
//! outside the compiler.

use proc_macro::TokenStream;

/// Declares a language for chunkdb. See the `chunkdb` crate's documentation.
#[proc_macro]
pub fn chunk_schema(input: TokenStream) -> TokenStream {
    chunkdb_codegen_impl::expand_or_errors(input.into()).into()
}
