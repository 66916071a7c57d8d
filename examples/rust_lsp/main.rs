//! The Rust indexer of `examples/rust_index/` as a language server, on stdio.
//!
//! ```text
//! cargo run --release --example rust_lsp                    # index the client's workspace
//! cargo run --release --example rust_lsp -- --cache DIR     # and restart warm from DIR
//! cargo run --release --example rust_lsp -- --help
//! ```
//!
//! It shares the pipeline of `rust_index` (the same files, compiled in): diagnostics
//! (syntax errors, unresolved imports and modules, duplicates) published as files
//! change, document and workspace symbols, go to definition, references and hover.
//! Requests are answered from the newest published snapshot while the next edit is
//! committed and driven on another thread, so typing never makes a request wait.

#[path = "../rust_index/analysis.rs"]
mod analysis;
#[path = "../rust_index/chunk_index.rs"]
mod chunk_index;
mod handlers;
mod host;
#[path = "../rust_index/manifest.rs"]
mod manifest;
#[path = "../rust_index/sample.rs"]
mod sample;
mod server;
#[path = "../rust_index/session.rs"]
mod session;
#[path = "../rust_index/syntax.rs"]
mod syntax;
mod text;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: rust_lsp [PATH] [--cache DIR] [--threads N] [--normal-priority]

A language server for Rust on chunkdb, speaking the Language Server Protocol on
stdin and stdout. It indexes PATH (default: the client's first workspace folder):
a workspace, a package, a directory of packages or a single file.

Options:
  --cache DIR    persist the index in DIR: the next start restarts warm from it
  --threads N    threads answering workspace-symbol and references requests
                 (default 2; definition, hover and document symbols are
                 answered at once by the thread reading the requests)
  --normal-priority
                 index at the priority of other programs; by default indexing
                 runs in the background (SCHED_IDLE on Linux): a request never
                 waits for a core behind it, but while other programs keep
                 every core busy, indexing waits for them
  -h, --help     print this help";

fn options() -> Result<Option<server::Options>, String> {
    let mut options = server::Options { workers: 2, ..server::Options::default() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value (try --help)"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--cache" => options.cache = Some(PathBuf::from(value("--cache")?)),
            "--normal-priority" => options.normal_priority = true,
            "--threads" => {
                let threads = value("--threads")?;
                options.workers = threads
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--threads {threads}: expected a number from 1"))?;
            }
            // `--stdio` is what VS Code-like clients pass; stdio is the only transport.
            "--stdio" => {}
            other if other.starts_with('-') => return Err(format!("unknown option `{other}` (try --help)")),
            path => options.root = Some(PathBuf::from(path)),
        }
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("rust_lsp: {message}");
            return ExitCode::from(2);
        }
    };
    let code = server::serve(std::io::stdin().lock(), std::io::stdout(), options);
    ExitCode::from(code as u8)
}
