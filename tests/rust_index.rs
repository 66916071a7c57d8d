//! The `rust_index` example's pipeline on a small built-in workspace: the diagnostics
//! and the re-run counts of each scripted edit, chunkdb against a from-scratch build
//! and against the salsa twin after every step.

// The example's modules, as siblings (they name each other through `super::`).
#[path = "../examples/rust_index/analysis.rs"]
mod analysis;
#[path = "../examples/rust_index/chunk_index.rs"]
mod chunk_index;
#[path = "../examples/rust_index/manifest.rs"]
mod manifest;
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
use crate::salsa_index::{Durabilities, SalsaIndex};
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
    let package = |name: &str, files: &[(&str, &str)]| {
        let files = files.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect();
        Package::new(name, PathBuf::from(name), files)
    };
    Sample::of(vec![
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
    ])
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
fn the_salsa_twins_with_durability_agree_after_every_step() {
    // Durability only lets salsa skip checks: every twin must still see every edit,
    // those of the packages it takes for libraries (HIGH texts) included.
    let steps = Session::build(workspace()).0.play();
    let packages = workspace().packages.len();
    let mut twins = vec![Durabilities::TextsLow];
    twins.extend((0..packages).map(|workspace| Durabilities::Libraries { workspace }));
    for durabilities in twins {
        let (mut session, build) = Session::build(workspace());
        let mut salsa = SalsaIndex::load_with(&session.sample, durabilities);
        salsa.check();
        check_against_references(&session, &mut salsa, &build);
        for played in &steps {
            let step = session.step(&played.label, &played.edits);
            check_against_references(&session, &mut salsa, &step);
        }
    }
    // The script's first step edits a body: with the other packages' texts HIGH,
    // salsa checks fewer memos for it than with every text LOW, and executes the same.
    let Some(Edit::Write { package, .. }) = steps[0].edits.first() else {
        panic!("the first step writes a file")
    };
    let counts =
        [Durabilities::TextsLow, Durabilities::Libraries { workspace: *package }].map(|durabilities| {
            let mut salsa = SalsaIndex::load_counting(&workspace(), durabilities);
            salsa.check();
            salsa.counted(|salsa| {
                for edit in &steps[0].edits {
                    edit.apply(salsa);
                }
                salsa.check();
            })
        });
    assert_eq!(counts[0].executed, counts[1].executed, "{counts:?}");
    assert!(counts[1].validated < counts[0].validated, "{counts:?}");
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
fn a_view_answers_from_its_state_while_edits_commit() {
    fn shared<T: Send + Sync>(_: &T) {}
    let (mut session, _) = Session::build(workspace());
    let (_, lib) = session.index.locate("app/src/lib.rs").expect("the lib exists");
    let (util, _) = session.index.locate("util/src/strings.rs").expect("the file exists");
    let before = session.index.view();
    shared(&before);
    let strings = |view: &chunk_index::View| {
        let (file, _) = view.goto_definition(lib, 6, 20)?;
        view.file_name(file)
    };
    // A reader on another thread keeps its answer while `shout` is renamed and
    // the edit commits.
    std::thread::scope(|scope| {
        let reader =
            scope.spawn(|| (0..200).all(|_| strings(&before).as_deref() == Some("util/src/strings.rs")));
        session.index.set_text(util, "src/strings.rs", &UTIL_STRINGS.replace("shout", "yell"));
        session.index.check();
        assert!(reader.join().expect("the reader does not panic"));
    });
    assert_eq!(strings(&before).as_deref(), Some("util/src/strings.rs"));
    assert_eq!(strings(&session.index.view()), None, "the new state no longer has `shout`");
    // The importer's new diagnostic is in the new state only.
    let unresolved = |view: &chunk_index::View| {
        view.diagnostics_of(lib).iter().filter(|d| d.message.contains("shout")).count()
    };
    assert_eq!((unresolved(&before), unresolved(&session.index.view())), (0, 1));
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
    let (cold, build, restart) = Session::restart(workspace(), dir.path(), Some("parse")).unwrap();
    assert!(!restart.warm && build.runs() > 0);
    let expected = cold.index.diagnostics();
    drop(cold);

    let (warm, build, restart) = Session::restart(workspace(), dir.path(), Some("parse")).unwrap();
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
    let (session, build, _) = Session::restart(patched.clone(), dir.path(), Some("parse")).unwrap();
    assert_eq!(ran(&build).get("parse"), Some(&1), "only {path} is parsed again: {:?}", build.ran);
    let mut scratch = ChunkIndex::load(&patched);
    scratch.check();
    assert_eq!(session.index.diagnostics(), scratch.diagnostics());
}

#[test]
fn the_salsa_twin_restores_from_its_persistence_without_re_executing() {
    for durabilities in [Durabilities::Default, Durabilities::Libraries { workspace: 0 }] {
        let mut salsa = SalsaIndex::load_with(&workspace(), durabilities);
        salsa.check();
        let expected = salsa.diagnostics();
        let saved = salsa.save();
        drop(salsa);
        let mut restored = SalsaIndex::restore(&saved, &workspace(), durabilities).unwrap();
        restored.count_executions(true);
        restored.check();
        assert_eq!(restored.executions(), 0, "{durabilities:?}: an unchanged workspace re-executes nothing");
        assert_eq!(restored.diagnostics(), expected, "{durabilities:?}");
    }
}

/// A fixture workspace of `tests/fixtures/`.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Every diagnostic of `sample` as (file, line, column, code), once both pipelines
/// agree on them all; and the chunkdb index, to ask more.
fn diagnose(sample: &Sample) -> (Vec<(String, u32, u32, String)>, ChunkIndex) {
    let mut chunk = ChunkIndex::load(sample);
    chunk.check();
    let mut salsa = SalsaIndex::load(sample);
    salsa.check();
    assert_eq!(chunk.diagnostics(), salsa.diagnostics(), "the pipelines agree");
    let found =
        chunk.diagnostics().into_iter().map(|(f, d)| (f, d.span.line, d.span.column + 1, d.code)).collect();
    (found, chunk)
}

fn roots_of<'s>(sample: &'s Sample, package: &str) -> Vec<&'s str> {
    let package = &sample.packages[sample.package_named(package).expect("the package exists")];
    package.roots.iter().map(|(path, _)| path.as_str()).collect()
}

#[test]
fn a_workspace_that_compiles_gets_no_diagnostic() {
    // `tests/fixtures/workspace` passes `cargo check --workspace --all-targets`: each
    // crate there holds one of the cases that used to give false diagnostics.
    let sample = sample::load_tree(&fixture("workspace")).expect("the fixture reads");
    let names: Vec<&str> = sample.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["facade", "layout", "old", "procs", "renamed_impl", "stdx", "app"],
        "members, in order"
    );
    let (found, index) = diagnose(&sample);
    assert_eq!(found, []);
    // Targets come from Cargo.toml: declared paths, `autobins`/`autotests = false`.
    assert_eq!(roots_of(&sample, "layout"), ["lib/root.rs", "tools/main.rs", "checks/it.rs"]);
    assert_eq!(
        roots_of(&sample, "app"),
        ["src/main.rs", "src/bin/extra/main.rs", "examples/demo.rs", "build.rs"]
    );
    // Files no crate compiles are indexed for symbols, without diagnostics.
    assert_eq!(
        index.orphan_files(),
        ["layout/src/main.rs", "layout/tests/ignored.rs", "stdx/tests/data/input.rs"]
    );
    let coverage = index.coverage();
    assert_eq!((coverage.files, coverage.in_tree), (33, 30));
    // Every path is decided but `facade::open::Extra`, which a macro call given
    // arguments defines (the glob beside it is followed).
    assert_eq!((coverage.imports.total, coverage.imports.reported, coverage.imports.unknown), (48, 0, 1));
    assert_eq!((coverage.types.total, coverage.types.reported), (11, 0));
    // Symbols of every kind of module are found: a raw identifier, `#[path]` under
    // `cfg_attr` (both files), a `cfg_if!` branch, an `include!`d file.
    for (name, file) in [
        ("helper", "stdx/src/type.rs"),
        ("name", "stdx/src/sys/other.rs"),
        ("name", "stdx/src/sys/unix.rs"),
        ("flavour", "stdx/src/elsewhere.rs"),
        ("GENERATED", "stdx/src/generated.rs"),
        ("Triple", "stdx/src/target/mod.rs"),
    ] {
        let found = index.workspace_symbols(name, 20);
        assert!(found.iter().any(|(f, s)| f == file && s.name == name), "{name} in {file}: {found:?}");
    }
    // Go to definition through a renamed dependency and a macro at a crate root.
    let (_, root) = index.locate("layout/lib/root.rs").expect("the file exists");
    let (file, _) = index.goto_definition(root, 7, 12).expect("`renamed_fn` resolves");
    assert_eq!(index.file_name(file).as_deref(), Some("renamed_impl/src/lib.rs"));
    let (file, span) = index.goto_definition(root, 6, 11).expect("`never` resolves");
    assert_eq!((index.file_name(file).as_deref(), span.line), (Some("stdx/src/macros.rs"), 3));
    // Into a template's items, a foreign function, a macro a macro call exports.
    let (_, user) = index.locate("facade/src/user.rs").expect("the file exists");
    let (file, span) = index.goto_definition(user, 3, 21).expect("`prelude::Num` resolves");
    assert_eq!((index.file_name(file).as_deref(), span.line), (Some("facade/src/macros.rs"), 6));
    let (file, span) = index.goto_definition(user, 5, 12).expect("`crate::Word` resolves");
    assert_eq!((index.file_name(file).as_deref(), span.line), (Some("facade/src/macros.rs"), 8));
    let (file, span) = index.goto_definition(user, 1, 17).expect("`ffi::abs` resolves");
    assert_eq!((index.file_name(file).as_deref(), span.line), (Some("facade/src/ffi.rs"), 3));
    let (_, test) = index.locate("facade/tests/it.rs").expect("the file exists");
    let (file, span) = index.goto_definition(test, 1, 13).expect("`facade::shout` resolves");
    assert_eq!((index.file_name(file).as_deref(), span.line), (Some("facade/src/lib.rs"), 28));
}

#[test]
fn deliberate_mistakes_are_reported() {
    let sample = sample::load_tree(&fixture("mistakes")).expect("the fixture reads");
    let (found, index) = diagnose(&sample);
    let at = |line, column, code: &str| ("mistakes/src/lib.rs".to_owned(), line, column, code.to_owned());
    assert_eq!(
        found,
        [
            ("mistakes/src/broken.rs".to_owned(), 1, 20, "syntax-error".to_owned()),
            at(2, 5, "unresolved-module"),
            at(5, 13, "unresolved-import"), // helper::missing_fn
            at(6, 10, "unresolved-import"), // stx::never: no such crate
            at(7, 12, "unresolved-import"), // serde: not a dependency
            at(8, 21, "unresolved-import"), // crate::nothing
            at(10, 21, "unresolved-type"),  // Undefined
            at(10, 53, "unresolved-type"),  // AlsoMissing
            at(31, 4, "duplicate-definition"),
            at(42, 18, "unresolved-import"), // crate::base::Unknown: the template's module lacks it
        ]
    );
    let messages: Vec<String> = index.diagnostics().into_iter().map(|(_, d)| d.message).collect();
    assert!(messages[3].contains("no crate `stx` among the package's dependencies"), "{}", messages[3]);
    // `Read` from a glob of `std::io` is unknown, not an error.
    let coverage = index.coverage();
    assert_eq!((coverage.types.reported, coverage.types.unknown), (2, 1));
    assert_eq!(coverage.imports.reported, 5);
}

#[test]
fn a_dependency_resolves_to_the_version_it_asks_for() {
    // Two versions of `dup` side by side, as in the cargo registry.
    let sample = sample::load_tree(&fixture("registry")).expect("the fixture reads");
    let names: Vec<&str> = sample.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dup@1.0.0", "dup@2.0.0", "user"]);
    let (found, index) = diagnose(&sample);
    assert_eq!(found, [("user/src/lib.rs".to_owned(), 2, 14, "unresolved-import".to_owned())]);
    let (_, user) = index.locate("user/src/lib.rs").expect("the file exists");
    let (file, _) = index.goto_definition(user, 1, 14).expect("`only_in_one` resolves");
    assert_eq!(index.file_name(file).as_deref(), Some("dup@1.0.0/src/lib.rs"));
}

/// Copies the directory `from` into `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("a directory");
    for entry in std::fs::read_dir(from).expect("readable").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copied");
        }
    }
}

#[test]
fn a_build_directory_is_skipped_but_a_module_named_target_is_not() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_tree(&fixture("workspace"), dir.path());
    // What cargo leaves: a tagged build directory, with Rust files inside.
    let build = dir.path().join("target");
    std::fs::create_dir_all(build.join("debug/build/out")).expect("a directory");
    std::fs::write(build.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n")
        .expect("written");
    std::fs::write(build.join("debug/build/out/generated.rs"), "fn broken( {\n").expect("written");
    let sample = sample::load_tree(dir.path()).expect("the copy reads");
    assert_eq!(sample.file_count(), 33, "nothing of target/ is indexed");
    assert_eq!(diagnose(&sample).0, []);
}

#[test]
fn a_nested_crate_or_a_lone_file_can_be_the_path() {
    // A member of a workspace, on its own: inherited fields come from the workspace.
    let sample = sample::load_tree(&fixture("workspace/crates/layout")).expect("the crate reads");
    assert_eq!(sample.packages.len(), 1);
    assert_eq!(sample.packages[0].edition(), 2021);
    let (found, index) = diagnose(&sample);
    assert_eq!(found, []);
    // Its dependencies are outside: named by their library names, resolved no further.
    assert_eq!(index.coverage().imports.reported, 0);
    // A lone file is a crate of its own.
    let sample =
        sample::load_tree(&fixture("workspace/crates/stdx/src/sys/unix.rs")).expect("the file reads");
    let (found, index) = diagnose(&sample);
    assert_eq!((found.len(), index.coverage().in_tree), (0, 1));
}

#[test]
fn the_scripted_session_agrees_with_salsa_on_the_fixture_workspace() {
    let sample = sample::load_tree(&fixture("workspace")).expect("the fixture reads");
    let (mut session, _) = Session::build(sample);
    let mut salsa = SalsaIndex::load(&session.sample);
    salsa.check();
    let steps = session.play();
    assert!(steps.len() >= 5, "{:?}", steps.iter().map(|s| &s.label).collect::<Vec<_>>());
    let all_edits =
        StepReport { edits: steps.iter().flat_map(|s| s.edits.clone()).collect(), ..steps[0].clone() };
    check_against_references(&session, &mut salsa, &all_edits);
}
