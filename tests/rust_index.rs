//! The `rust_index` example's pipeline on a small built-in workspace: the diagnostics
//! and the re-run counts of each scripted edit, chunkdb against a from-scratch build
//! and against the salsa twin after every step.

// The example's modules, as siblings (they name each other through `super::`).
#[path = "../examples/rust_index/analysis.rs"]
mod analysis;
#[path = "../examples/rust_index/chunk_index.rs"]
mod chunk_index;
#[path = "../examples/rust_index/salsa_index.rs"]
mod salsa_index;
#[path = "../examples/rust_index/sample.rs"]
mod sample;
#[path = "../examples/rust_index/script.rs"]
mod script;
#[path = "../examples/rust_index/session.rs"]
mod session;
#[path = "../examples/rust_index/syntax.rs"]
mod syntax;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::chunk_index::ChunkIndex;
use crate::salsa_index::SalsaIndex;
use crate::sample::{Package, Sample};
use crate::script::{Session, StepReport};
use crate::session::{Edit, Pipeline};

const APP_LIB: &str = "//! The app.
mod parser;
pub mod ast;
mod missing;
use crate::parser::parse;
use util::strings::shout;
use crate::ast::Nope;

pub fn run(input: &str) -> ast::Tree {
    let _ = shout(input);
    parse(input)
}
";

const APP_PARSER: &str = "use crate::ast::{Node, Tree};

pub fn parse(text: &str) -> Tree {
    let node = Node { len: text.len() };
    Tree { nodes: vec![node] }
}

pub fn helper() -> usize {
    1
}

fn twice() {}
fn twice() {}
";

const APP_AST: &str = "pub struct Tree {
    pub nodes: Vec<Node>,
}

pub struct Node {
    pub len: usize,
}

pub mod inner {
    pub fn deep() {}
}
";

const APP_TOOL: &str = "use app::run;
use app::ast::inner::deep;

fn main() {
    deep();
    run(\"x\");
}
";

const UTIL_LIB: &str = "pub mod strings;\n";
const UTIL_STRINGS: &str = "pub fn shout(text: &str) -> String {\n    text.to_uppercase()\n}\n";

fn workspace() -> Sample {
    let package = |name: &str, files: &[(&str, &str)]| Package {
        name: name.to_owned(),
        dir: PathBuf::from(name),
        files: files.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect(),
    };
    Sample {
        packages: vec![
            package(
                "app",
                &[
                    ("src/ast.rs", APP_AST),
                    ("src/bin/tool.rs", APP_TOOL),
                    ("src/lib.rs", APP_LIB),
                    ("src/parser.rs", APP_PARSER),
                ],
            ),
            package("util", &[("src/lib.rs", UTIL_LIB), ("src/strings.rs", UTIL_STRINGS)]),
        ],
    }
}

/// (file, code) of each diagnostic.
fn codes(list: &[(String, analysis::Diagnostic)]) -> Vec<(String, String)> {
    list.iter().map(|(file, d)| (file.clone(), d.code.clone())).collect()
}

fn ran(step: &StepReport) -> BTreeMap<&str, usize> {
    step.ran.iter().map(|(stage, n)| (stage.as_str(), *n)).collect()
}

fn stages(pairs: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    pairs.iter().copied().collect()
}

/// After every step: the incremental state equals a from-scratch build of the same
/// texts, and the salsa twin (given the same edits) agrees.
fn check_against_references(session: &Session, salsa: &mut SalsaIndex, step: &StepReport) {
    for edit in &step.edits {
        edit.apply(salsa);
    }
    salsa.check();
    let mut scratch = ChunkIndex::load(&session.sample);
    scratch.check();
    let incremental = session.index.diagnostics();
    assert_eq!(
        incremental,
        scratch.diagnostics(),
        "after `{}`: incremental differs from scratch",
        step.label
    );
    assert_eq!(incremental, salsa.diagnostics(), "after `{}`: chunkdb differs from salsa", step.label);
}

fn write(package: usize, path: &str, text: &str) -> Edit {
    Edit::Write { package, path: path.to_owned(), text: text.to_owned() }
}

#[test]
fn scripted_edits_rerun_only_what_they_invalidate() {
    let (mut session, build) = Session::build(workspace());
    let mut salsa = SalsaIndex::load(&session.sample);
    salsa.check();
    assert_eq!(
        codes(&build.added),
        [
            ("app/src/lib.rs".to_owned(), "unresolved-module".to_owned()),
            ("app/src/lib.rs".to_owned(), "unresolved-import".to_owned()),
            ("app/src/parser.rs".to_owned(), "duplicate-definition".to_owned()),
        ]
    );
    assert!(build.added[1].1.message.contains("no `Nope` in `crate::ast`"), "{:?}", build.added[1]);
    check_against_references(&session, &mut salsa, &build);
    // Every file is parsed, resolved and diagnosed once; each package's module tree
    // runs once more after its files' `mod` declarations appear.
    assert_eq!(ran(&build)["parse"], 6);
    assert_eq!(ran(&build)["diagnostics"], 6);

    // An edit inside a body that changes no line: the parse is cut off, nothing else runs.
    let same_lines = APP_PARSER.replace("text.len()", "text.len() + 0");
    let step = session.step("same-line body edit", &[write(0, "src/parser.rs", &same_lines)]);
    assert_eq!((ran(&step), step.cut_off, step.stale), (stages(&[("parse", 1)]), 1, 1));
    assert!(step.added.is_empty() && step.removed.is_empty());
    check_against_references(&session, &mut salsa, &step);

    // A new line in a body moves the spans below it: only the file's diagnostics re-run.
    let new_line = same_lines.replace("let node", "let _extra = 1;\n    let node");
    let step = session.step("body edit adding a line", &[write(0, "src/parser.rs", &new_line)]);
    assert_eq!(ran(&step), stages(&[("diagnostics", 1), ("parse", 1)]));
    assert_eq!(codes(&step.added), [("app/src/parser.rs".to_owned(), "duplicate-definition".to_owned())]);
    assert_eq!(step.added[0].1.span.line, step.removed[0].1.span.line + 1, "the duplicate moved down a line");
    check_against_references(&session, &mut salsa, &step);

    // The identical text again: nothing is stale, nothing runs.
    let step = session.step("re-submit unchanged", &[write(0, "src/parser.rs", &new_line)]);
    assert_eq!((step.runs(), step.stale), (0, 0));
    check_against_references(&session, &mut salsa, &step);

    // Renaming a function another file imports: its importer re-resolves.
    let renamed = new_line.replace("pub fn parse(", "pub fn parse_text(");
    let step = session.step("rename parse", &[write(0, "src/parser.rs", &renamed)]);
    assert_eq!(ran(&step), stages(&[("diagnostics", 2), ("parse", 1), ("resolve", 1)]));
    assert_eq!(codes(&step.added), [("app/src/lib.rs".to_owned(), "unresolved-import".to_owned())]);
    assert!(step.added[0].1.message.contains("no `parse` in `crate::parser`"));
    check_against_references(&session, &mut salsa, &step);

    // Adding a file and its `mod` line: the module tree re-runs once.
    let with_mod = format!("{APP_LIB}mod extra;\n");
    let step = session.step(
        "add a file",
        &[write(0, "src/extra.rs", "pub fn extra() {}\n"), write(0, "src/lib.rs", &with_mod)],
    );
    assert_eq!(ran(&step)["modules"], 1);
    assert_eq!(ran(&step)["parse"], 2);
    assert!(step.added.is_empty() && step.removed.is_empty());
    check_against_references(&session, &mut salsa, &step);

    // Deleting it: its `mod` line is now unresolved.
    let step =
        session.step("delete the file", &[Edit::Remove { package: 0, path: "src/extra.rs".to_owned() }]);
    assert_eq!(codes(&step.added), [("app/src/lib.rs".to_owned(), "unresolved-module".to_owned())]);
    assert_eq!(ran(&step), stages(&[("diagnostics", 1), ("modules", 1)]));
    check_against_references(&session, &mut salsa, &step);

    // A syntax error empties the file's summary; the fix brings everything back.
    let broken = renamed.replace("let _extra = 1;", "let = ;");
    let step = session.step("syntax error", &[write(0, "src/parser.rs", &broken)]);
    let added = codes(&step.added);
    assert!(added.contains(&("app/src/parser.rs".to_owned(), "syntax-error".to_owned())), "{added:?}");
    check_against_references(&session, &mut salsa, &step);
    let step = session.step("fix", &[write(0, "src/parser.rs", &renamed)]);
    assert!(codes(&step.removed).contains(&("app/src/parser.rs".to_owned(), "syntax-error".to_owned())));
    check_against_references(&session, &mut salsa, &step);
}

#[test]
fn the_example_script_plays_on_the_built_in_workspace() {
    let (mut session, _) = Session::build(workspace());
    let mut salsa = SalsaIndex::load(&session.sample);
    salsa.check();
    let steps = session.play();
    let labels: Vec<&str> = steps.iter().map(|s| s.label.split(' ').next().unwrap_or("")).collect();
    assert_eq!(labels, ["edit", "re-submit", "rename", "add", "delete", "type", "fix"]);
    // Re-submitting identical text runs nothing.
    assert_eq!(steps[1].runs(), 0);
    // The rename picks the function imported most (`deep`, by the binary).
    assert_eq!(codes(&steps[2].added), [("app/src/bin/tool.rs".to_owned(), "unresolved-import".to_owned())]);
    // Deleting the added file leaves its `mod` line unresolved.
    assert_eq!(codes(&steps[4].added), [("app/src/lib.rs".to_owned(), "unresolved-module".to_owned())]);
    let all_edits =
        StepReport { edits: steps.iter().flat_map(|s| s.edits.clone()).collect(), ..steps[0].clone() };
    check_against_references(&session, &mut salsa, &all_edits);
}

#[test]
fn queries_find_symbols_and_definitions() {
    let (session, _) = Session::build(workspace());
    let found = session.index.workspace_symbols("node", 5);
    assert_eq!(
        found.first().map(|(file, s)| (file.as_str(), s.name.as_str())),
        Some(("app/src/ast.rs", "Node"))
    );
    // `deep` in `use app::ast::inner::deep;` of the binary goes to the inline module.
    let (_, tool) = session.index.locate("app/src/bin/tool.rs").expect("the tool exists");
    let (file, span) = session.index.goto_definition(tool, 2, 22).expect("deep resolves");
    assert_eq!(session.index.file_name(file).as_deref(), Some("app/src/ast.rs"));
    assert_eq!((span.line, span.column), (10, 11));
    // `shout` in lib.rs goes across packages.
    let (_, lib) = session.index.locate("app/src/lib.rs").expect("the lib exists");
    let (file, _) = session.index.goto_definition(lib, 6, 20).expect("shout resolves");
    assert_eq!(session.index.file_name(file).as_deref(), Some("util/src/strings.rs"));
}

#[test]
fn an_edit_parses_only_the_pieces_it_changed() {
    let memo = chunk_index::PieceMemo::default();
    let text = "use a::b;\n\n/// F.\nfn f() -> b::T {\n    1\n}\n\nstruct S { t: b::T }\n";
    assert_eq!(memo.summarize(0, text), syntax::summarize(text));
    assert_eq!(memo.parsed(), 3);
    // Another file holding the same text parses nothing.
    assert_eq!(memo.summarize(1, text), syntax::summarize(text));
    assert_eq!((memo.parsed(), memo.len()), (3, 3));
    // A `mod` line added at the end and a line added inside `f`: two new pieces; the
    // others are reused with their spans moved.
    let edited =
        "use a::b;\n\n/// F.\nfn f() -> b::T {\n    let x = 1;\n    x\n}\n\nstruct S { t: b::T }\nmod m;\n";
    assert_eq!(memo.summarize(0, edited), syntax::summarize(edited));
    assert_eq!((memo.parsed(), memo.len()), (5, 5));
    // Pieces no current text holds are released: the old `f` went with file 1.
    memo.forget(1);
    assert_eq!(memo.len(), 4);
    memo.forget(0);
    assert_eq!(memo.len(), 0);
}

#[test]
fn a_warm_restart_from_the_cache_reruns_nothing_and_an_edit_made_while_down_reruns_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cold, build, restart) = Session::restart(workspace(), dir.path(), "parse").unwrap();
    assert!(!restart.warm && build.runs() > 0);
    let expected = cold.index.diagnostics();
    drop(cold);

    let (warm, build, restart) = Session::restart(workspace(), dir.path(), "parse").unwrap();
    assert!(restart.warm, "the second open finds the index");
    assert_eq!(build.runs(), 0, "nothing changed while down: {:?}", build.ran);
    assert!(restart.symbols > 0, "the first query is answered from disk before the re-submission");
    assert_eq!(warm.index.diagnostics(), expected);
    warm.index.db().check_consistency().unwrap();
    drop(warm);

    // A file changed while the server was down: exactly its work re-runs.
    let mut patched = workspace();
    let (path, text) = patched.packages[0].files[0].clone();
    patched.packages[0].files[0].1 = format!("{text}\nfn added_while_down() {{}}\n");
    let (session, build, _) = Session::restart(patched.clone(), dir.path(), "parse").unwrap();
    assert_eq!(ran(&build).get("parse"), Some(&1), "only {path} is parsed again: {:?}", build.ran);
    let mut scratch = ChunkIndex::load(&patched);
    scratch.check();
    assert_eq!(session.index.diagnostics(), scratch.diagnostics());
}

#[test]
fn the_salsa_twin_restores_from_its_persistence_without_re_executing() {
    let mut salsa = SalsaIndex::load(&workspace());
    salsa.check();
    let expected = salsa.diagnostics();
    let saved = salsa.save();
    drop(salsa);
    let mut restored = SalsaIndex::restore(&saved, &workspace()).unwrap();
    restored.count_executions(true);
    restored.check();
    assert_eq!(restored.executions(), 0, "an unchanged workspace re-executes nothing");
    assert_eq!(restored.diagnostics(), expected);
}
