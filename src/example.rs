//! A language declared with [`chunk_schema!`](crate::chunk_schema): everything in this
//! module was generated from the declaration below, so these pages show what the macro
//! produces for a language (and the crate's `#![deny(missing_docs)]` checks that every
//! generated item is documented).
//!
//! ```text
//! chunk_schema! {
//!     /// A small Algol-style language: modules, functions, structs and diagnostics.
//!     pub schema MiniLang {
//!         records {
//!             /// A module and the names it exports.
//!             Module { name: Ident, exports: Vec<Ident> },
//!             /// A function signature.
//!             Function { name: Ident, params: Vec<Ident>, return_type: Option<Ident> },
//!             /// A struct and its (field, type) pairs.
//!             Struct { name: Ident, fields: Vec<(Ident, Ident)> },
//!             /// A message about a line of a file.
//!             Diagnostic { message: String, severity: u8, line: u32 },
//!         }
//!         partitions {
//!             /// Every named item, by file and path.
//!             symbols: "symbols" holds Module, Function, Struct key (file: Ident, path: String),
//!             /// Diagnostics by file, then severity.
//!             diagnostics: "diagnostics" holds Diagnostic key (file: Ident, severity: u8, seq: u32),
//!         }
//!         indexes {
//!             /// Functions and structs by name.
//!             by_name on Function.name, Struct.name,
//!         }
//!     }
//! }
//! ```

crate::chunk_schema! {
    /// A small Algol-style language: modules, functions, structs and diagnostics.
    pub schema MiniLang {
        records {
            /// A module and the names it exports.
            Module { name: Ident, exports: Vec<Ident> },
            /// A function signature.
            Function { name: Ident, params: Vec<Ident>, return_type: Option<Ident> },
            /// A struct and its (field, type) pairs.
            Struct { name: Ident, fields: Vec<(Ident, Ident)> },
            /// A message about a line of a file.
            Diagnostic { message: String, severity: u8, line: u32 },
        }
        partitions {
            /// Every named item, by file and path.
            symbols: "symbols" holds Module, Function, Struct key (file: Ident, path: String),
            /// Diagnostics by file, then severity.
            diagnostics: "diagnostics" holds Diagnostic key (file: Ident, severity: u8, seq: u32),
        }
        indexes {
            /// Functions and structs by name.
            by_name on Function.name, Struct.name,
        }
    }
}
