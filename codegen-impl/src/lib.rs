//! The pipeline behind chunkdb's `chunk_schema!` macro, on [`proc_macro2`] tokens so
//! that it runs outside the compiler too (in tests and under a fuzzer). The proc-macro
//! crate `chunkdb-codegen` is a thin wrapper around [`expand`].
//!
//! The pipeline: `ast.rs` parses, `valid.rs` checks (collecting every mistake),
//! `expand.rs` generates, and `names.rs` names every generated item; `types.rs` knows
//! which field types can be hashed, ordered and indexed.

mod ast;
mod expand;
mod names;
mod types;
mod valid;

use proc_macro2::TokenStream;

/// Runs the whole pipeline on the tokens inside `chunk_schema! { ... }`: the
/// generated items, or every mistake found, each spanned on the input's tokens and
/// combined into one [`syn::Error`].
///
/// # Errors
/// The declaration does not parse, or the validator found mistakes in it.
pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    ast::parse(input).and_then(|schema| valid::check(&schema).map(|checked| expand::expand(&checked)))
}

/// Like [`expand`], with the errors turned into `compile_error!` invocations: what
/// the macro emits.
#[must_use]
pub fn expand_or_errors(input: TokenStream) -> TokenStream {
    expand(input).unwrap_or_else(|error| error.to_compile_error())
}
