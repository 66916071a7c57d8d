//! The `rust_lsp` example end to end: the server as a child process on stdio, driven
//! by a scripted client over a copy of `tests/fixtures/lsp` (and, in
//! `a_real_editor_*`, by headless Neovim's own LSP client).

#[path = "../examples/rust_index/syntax.rs"]
mod syntax;
#[path = "../examples/rust_lsp/text.rs"]
mod text;

mod support {
    pub mod lsp_client;
}

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, file_uri, spelled_uri};

/// The example's binary, beside this test's. It is built here (up to date: cargo
/// builds examples for `cargo test --workspace`, but not for `--test rust_lsp`).
fn server_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(Path::parent).unwrap();
            let mut build = Command::new(env!("CARGO"));
            build.args(["build", "--quiet", "--example", "rust_lsp"]).current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "`cargo build --example rust_lsp` failed");
            profile_dir.join("examples").join(format!("rust_lsp{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// A copy of the fixture workspace the test may change.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lsp");
    std::fs::copy(from.join("Cargo.toml"), dir.path().join("Cargo.toml")).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for entry in std::fs::read_dir(from.join("src")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join("src").join(entry.file_name())).unwrap();
    }
    dir
}

fn start(root: &Path, args: &[&str]) -> LspClient {
    let mut command = Command::new(server_binary());
    command.args(args).current_dir(root);
    LspClient::spawn(command)
}

fn position(uri: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
}

fn open(client: &mut LspClient, uri: &str, text: &str) {
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1, "text": text}}),
    );
}

/// An incremental change replacing (line, from)..(line, to) with `text`.
fn change(client: &mut LspClient, uri: &str, version: i32, (line, from, to): (u32, u32, u32), text: &str) {
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{
                "range": {"start": {"line": line, "character": from}, "end": {"line": line, "character": to}},
                "text": text
            }]
        }),
    );
}

fn range(value: &Value) -> (u64, u64, u64, u64) {
    let at = |point: &str, field: &str| value[point][field].as_u64().unwrap();
    (at("start", "line"), at("start", "character"), at("end", "line"), at("end", "character"))
}

/// The UTF-16 column of the first `needle` on `line` of `text`.
fn column_of(text: &str, line: usize, needle: &str) -> u32 {
    let line = text.lines().nth(line).unwrap();
    line[..line.find(needle).unwrap()].encode_utf16().count() as u32
}

#[test]
fn a_scripted_session_over_stdio_gets_every_answer_right() {
    let dir = fixture();
    let root = dir.path();
    let uri = |path: &str| file_uri(&root.join(path));
    let (shapes, report, lib) = (uri("src/shapes.rs"), uri("src/report.rs"), uri("src/lib.rs"));
    let report_text = std::fs::read_to_string(root.join("src/report.rs")).unwrap();
    let shapes_text = std::fs::read_to_string(root.join("src/shapes.rs")).unwrap();

    let mut client = start(root, &[]);
    // A request before `initialize` is refused, and the server goes on.
    let early = client.request("textDocument/hover", position(&report, 0, 0)).unwrap_err();
    assert_eq!(early["code"], -32002, "{early}");
    let init = client.initialize(root);
    let capabilities = &init["capabilities"];
    for provider in ["definitionProvider", "referencesProvider", "hoverProvider", "documentSymbolProvider"] {
        assert_eq!(capabilities[provider], true, "{provider} in {capabilities}");
    }
    assert_eq!(capabilities["textDocumentSync"]["change"], 2, "incremental sync");
    let begin = client.wait_for(support::lsp_client::PATIENCE, |n| n.method == "$/progress").unwrap();
    assert_eq!(begin.params["value"]["kind"], "begin", "{:?}", begin.params);
    let end = client.wait_indexed();
    assert!(end.params["value"]["message"].as_str().unwrap().starts_with("3 files of"), "{:?}", end.params);

    open(&mut client, &report, &report_text);

    // Definition of `Point` in a signature, after a crab that is two UTF-16 units.
    let at_point = column_of(&report_text, 3, "Point");
    let chars = report_text.lines().nth(3).unwrap().split("Point").next().unwrap().chars().count() as u32;
    assert_eq!(at_point, chars + 1, "the fixture puts `Point` after a character of two UTF-16 units");
    let definition = client.request("textDocument/definition", position(&report, 3, at_point + 2)).unwrap();
    assert_eq!(definition["uri"], shapes.as_str(), "{definition}");
    let point_column = column_of(&shapes_text, 3, "Point") as u64;
    assert_eq!(range(&definition["range"]), (3, point_column, 3, point_column + 5), "{definition}");
    // Through the import on line 0.
    let definition = client.request("textDocument/definition", position(&report, 0, 21)).unwrap();
    assert_eq!(definition["uri"], shapes.as_str());
    assert_eq!(range(&definition["range"]).0, 9, "`area` is defined on line 9: {definition}");
    // Nothing to go to in a comment.
    assert_eq!(client.request("textDocument/definition", position(&report, 2, 4)).unwrap(), Value::Null);

    // Hover: signature and docs of the item a path names.
    let hover = client.request("textDocument/hover", position(&report, 3, at_point)).unwrap();
    let shown = hover["contents"]["value"].as_str().unwrap();
    assert_eq!(shown, "```rust\npub struct Point\n```\n\nA point in the plane.", "{hover}");

    // References to `area`, asked at its definition.
    let references = client
        .request(
            "textDocument/references",
            json!({
                "textDocument": {"uri": shapes}, "position": {"line": 9, "character": 8},
                "context": {"includeDeclaration": true}
            }),
        )
        .unwrap();
    let places: Vec<(String, u64)> = references
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["uri"].as_str().unwrap().to_owned(), l["range"]["start"]["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(places, vec![(shapes.clone(), 9), (report.clone(), 0)], "{references}");

    // Symbols of a file, and of the workspace.
    let symbols =
        client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": shapes}})).unwrap();
    let names: Vec<&str> = symbols.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Point") && names.contains(&"area"), "{symbols}");
    let found = client.request("workspace/symbol", json!({"query": "poi"})).unwrap();
    assert_eq!(found[0]["name"], "Point", "{found}");
    assert_eq!(found[0]["kind"], 23, "a struct: {found}");
    assert_eq!(found[0]["location"]["uri"], shapes.as_str());

    // Edit a body: nothing to publish. Then rename the imported function: the
    // importer gets a diagnostic; rename it back: it clears.
    change(&mut client, &report, 2, (4, 4, 4), "let _typed = 1; ");
    open(&mut client, &shapes, &shapes_text);
    change(&mut client, &shapes, 2, (9, 7, 11), "surface");
    let appeared = client.diagnostics_for(&report, |d| !d.is_empty());
    assert_eq!(appeared.len(), 1, "{appeared:?}");
    assert_eq!(appeared[0]["code"], "unresolved-import");
    assert!(appeared[0]["message"].as_str().unwrap().contains("`area`"), "{appeared:?}");
    assert_eq!(range(&appeared[0]["range"]), (0, 20, 0, 24), "on `area` of the import: {appeared:?}");
    change(&mut client, &shapes, 3, (9, 7, 14), "area");
    client.diagnostics_for(&report, <[Value]>::is_empty);
    let published: Vec<&str> = client
        .log
        .iter()
        .filter(|n| n.method == "textDocument/publishDiagnostics")
        .map(|n| n.params["uri"].as_str().unwrap())
        .collect();
    assert_eq!(published, vec![report.as_str(), report.as_str()], "only the importer's changed, twice");

    // Files created, changed and deleted behind the editor's back.
    std::fs::write(root.join("src/extra.rs"), "use crate::nowhere::Thing;\n\npub fn extra_help() {}\n")
        .unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "//! Edited on disk.\n\npub mod extra;\npub mod report;\npub mod shapes;\n",
    )
    .unwrap();
    let extra = uri("src/extra.rs");
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": extra, "type": 1}, {"uri": lib, "type": 2}]}),
    );
    let unresolved = client.diagnostics_for(&extra, |d| !d.is_empty());
    assert!(unresolved[0]["message"].as_str().unwrap().contains("nowhere"), "{unresolved:?}");
    let found = client.request("workspace/symbol", json!({"query": "extra_help"})).unwrap();
    assert_eq!(found[0]["location"]["uri"], extra.as_str(), "{found}");
    std::fs::remove_file(root.join("src/extra.rs")).unwrap();
    client.notify("workspace/didChangeWatchedFiles", json!({"changes": [{"uri": extra, "type": 3}]}));
    client.diagnostics_for(&extra, <[Value]>::is_empty);
    let missing = client.diagnostics_for(&lib, |d| !d.is_empty());
    assert_eq!(missing[0]["code"], "unresolved-module", "{missing:?}");
    assert_eq!(client.request("workspace/symbol", json!({"query": "extra_help"})).unwrap(), json!([]));

    // Bad input: each gets an error or a log line, and the server goes on.
    client.send_raw(b"Content-Length: 9\r\n\r\n{\"jsonrp\"");
    let logged = client.wait_for(Duration::from_secs(60), |n| {
        n.method == "window/logMessage" && n.params["message"].as_str().unwrap().contains("malformed")
    });
    assert!(logged.is_some(), "malformed JSON is reported in the log");
    let unknown = client.request("textDocument/prepareTypeHierarchy", position(&report, 0, 0)).unwrap_err();
    assert_eq!(unknown["code"], -32601, "MethodNotFound: {unknown}");
    let past_end = client.request("textDocument/definition", position(&report, 999, 0)).unwrap_err();
    assert_eq!(past_end["code"], -32602, "InvalidParams: {past_end}");
    assert!(past_end["message"].as_str().unwrap().contains("line 999"), "{past_end}");
    let bad_params = client.request("textDocument/hover", json!({"textDocument": 3})).unwrap_err();
    assert_eq!(bad_params["code"], -32602, "{bad_params}");
    let elsewhere =
        client.request("textDocument/definition", position("file:///nowhere/x.rs", 0, 0)).unwrap();
    assert_eq!(elsewhere, Value::Null);
    std::fs::write(root.join("src/latin1.rs"), b"// caf\xe9\n").unwrap();
    let latin1 = uri("src/latin1.rs");
    let vanished = uri("src/vanished.rs");
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": latin1, "type": 1}, {"uri": vanished, "type": 1}]}),
    );
    let not_utf8 = client.wait_for(Duration::from_secs(60), |n| {
        n.method == "window/logMessage" && n.params["message"].as_str().unwrap().contains("not UTF-8")
    });
    assert!(not_utf8.is_some(), "a file that is not UTF-8 is reported");
    client.notify("textDocument/didChange", json!({"textDocument": {"uri": report}}));
    // A cancelled request gets an answer all the same: its result or RequestCancelled.
    let id = client.send_request("workspace/symbol", json!({"query": "a"}));
    client.notify("$/cancelRequest", json!({"id": id}));
    match client.reply(&id) {
        Ok(found) => assert!(found.is_array()),
        Err(error) => assert_eq!(error["code"], -32800, "{error}"),
    }
    // Still answering, from the newest state.
    let definition = client.request("textDocument/definition", position(&report, 0, 21)).unwrap();
    assert_eq!(definition["uri"], shapes.as_str());

    assert_eq!(client.shut_down(), Some(0), "exit after shutdown is a clean exit");
}

#[test]
fn with_a_cache_the_second_start_is_warm_and_answers_the_same() {
    let dir = fixture();
    let root = dir.path();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let report = file_uri(&root.join("src/report.rs"));
    let at_point = column_of(&std::fs::read_to_string(root.join("src/report.rs")).unwrap(), 3, "Point");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut client = start(root, &["--cache", cache_arg]);
        client.initialize(root);
        let end = client.wait_indexed();
        assert!(
            end.params["value"]["message"].as_str().unwrap().ends_with("(with a cache)"),
            "{:?}",
            end.params
        );
        answers.push(client.request("textDocument/definition", position(&report, 3, at_point)).unwrap());
        assert_eq!(client.shut_down(), Some(0));
    }
    assert!(answers[0]["uri"].as_str().unwrap().ends_with("shapes.rs"), "{answers:?}");
    assert_eq!(answers[0], answers[1]);
    // The second start found the first one's index: a manifest is there.
    assert!(std::fs::read_dir(cache.path()).unwrap().count() > 1);

    // A cache another server holds: the second server says so and indexes without it.
    let mut holder = start(root, &["--cache", cache_arg]);
    holder.initialize(root);
    holder.wait_indexed();
    let mut second = start(root, &["--cache", cache_arg]);
    second.initialize(root);
    let end = second.wait_indexed();
    assert!(!end.params["value"]["message"].as_str().unwrap().contains("with a cache"), "{:?}", end.params);
    let warned = second.log.iter().any(|n| {
        n.method == "window/logMessage"
            && n.params["message"].as_str().unwrap().contains("indexing without it")
    });
    assert!(warned, "the user is told why the cache was not used: {:?}", second.log);
    assert_eq!(
        second.request("textDocument/definition", position(&report, 3, at_point)).unwrap(),
        answers[0]
    );
    assert_eq!(second.shut_down(), Some(0));
    assert_eq!(holder.shut_down(), Some(0));

    // A damaged cache: what is damaged is recomputed, and the answers are the same.
    std::fs::write(cache.path().join("MANIFEST"), b"not a manifest").unwrap();
    let mut client = start(root, &["--cache", cache_arg]);
    client.initialize(root);
    client.wait_indexed();
    let warned =
        client.log.iter().any(|n| n.params["message"].as_str().is_some_and(|m| m.contains("damaged")));
    assert!(warned, "the damage is reported: {:?}", client.log);
    assert_eq!(
        client.request("textDocument/definition", position(&report, 3, at_point)).unwrap(),
        answers[0]
    );
    assert_eq!(client.shut_down(), Some(0));
}

#[test]
fn exit_without_shutdown_and_a_closed_input_end_the_server_with_code_1() {
    let dir = fixture();
    let mut client = start(dir.path(), &[]);
    client.initialize(dir.path());
    client.notify("exit", Value::Null);
    assert_eq!(client.wait_exit(), Some(1));
}

/// Neovim's own LSP client (Debian's `neovim`, 0.7 or later) drives the server
/// (`tests/nvim/lsp_session.lua`): definition, a diagnostic that appears and clears
/// as the buffer is edited, hover. Without `nvim` on the PATH the test says so and
/// passes, unless `CHUNKDB_REQUIRE_NVIM` is set (`.ci/run` installs Neovim and sets it).
#[test]
fn a_real_editor_neovim_sees_definitions_diagnostics_and_hovers() {
    let nvim = Command::new("nvim").arg("--version").output();
    if nvim.is_err() {
        assert!(
            std::env::var_os("CHUNKDB_REQUIRE_NVIM").is_none(),
            "CHUNKDB_REQUIRE_NVIM is set but `nvim` is not on the PATH (apt-get install neovim)"
        );
        eprintln!("skipped: `nvim` is not on the PATH (apt-get install neovim to run this test)");
        return;
    }
    let dir = fixture();
    let out = dir.path().join("nvim-results.txt");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nvim/lsp_session.lua");
    let mut child = Command::new("nvim")
        .args(["--headless", "--clean", "-c"])
        .arg(format!("luafile {}", script.display()))
        .env("CHUNKDB_LSP_SERVER", server_binary())
        .env("CHUNKDB_LSP_ROOT", dir.path())
        .env("CHUNKDB_LSP_OUT", &out)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("nvim starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Neovim did not finish its session within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let results = std::fs::read_to_string(&out).expect("the Lua script writes its results");
    let checks: Vec<&str> = results.lines().collect();
    assert_eq!(
        checks,
        [
            "ok start the server",
            "ok initialize",
            "ok definition",
            "ok diagnostic appears",
            "ok diagnostic clears",
            "ok hover",
            "ok shut down"
        ],
        "what Neovim saw"
    );
}

/// The scheduling policy of each thread of process `pid` (Linux's `/proc`).
#[cfg(target_os = "linux")]
fn thread_policies(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name (in parentheses) start at field 3; the policy is field 41.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split(' ').nth(41 - 3)?.parse().ok()
        })
        .collect()
}

/// Indexing runs in the background (`SCHED_IDLE`, policy 5) unless
/// `--normal-priority` says otherwise; the request-answering threads never do.
#[cfg(target_os = "linux")]
#[test]
fn indexing_runs_in_the_background_unless_asked_not_to() {
    const SCHED_IDLE: u32 = 5;
    let dir = fixture();
    for (args, background) in [(&[][..], true), (&["--normal-priority"][..], false)] {
        let mut client = start(dir.path(), args);
        client.initialize(dir.path());
        client.wait_indexed();
        let policies = thread_policies(client.pid());
        assert!(
            policies.iter().any(|p| *p != SCHED_IDLE),
            "the reading thread is not in the background: {policies:?}"
        );
        assert_eq!(policies.contains(&SCHED_IDLE), background, "{args:?}: {policies:?}");
        assert_eq!(client.shut_down(), Some(0));
    }
}

/// A workspace opened through a symbolic link gets its answers and diagnostics under
/// the URIs the client uses; a folder deleted on disk takes its files with it.
#[cfg(unix)]
#[test]
fn a_linked_workspace_is_answered_in_its_own_spelling_and_a_deleted_folder_goes() {
    let dir = fixture();
    let links = tempfile::tempdir().unwrap();
    let root = links.path().join("linked");
    std::os::unix::fs::symlink(dir.path(), &root).unwrap();
    let uri = |path: &str| spelled_uri(&root.join(path));
    let (report, shapes, lib) = (uri("src/report.rs"), uri("src/shapes.rs"), uri("src/lib.rs"));
    let text = std::fs::read_to_string(root.join("src/report.rs")).unwrap();
    let mut client = start(&root, &[]);
    client.initialize(&root);
    client.wait_indexed();
    open(&mut client, &report, &text);
    let definition = client.request("textDocument/definition", position(&report, 0, 21)).unwrap();
    assert_eq!(definition["uri"], shapes.as_str(), "in the client's spelling: {definition}");
    change(&mut client, &report, 2, (0, 20, 24), "areaa");
    let appeared = client.diagnostics_for(&report, |d| !d.is_empty());
    assert_eq!(appeared[0]["code"], "unresolved-import");

    // A folder of modules, created, then deleted as one event.
    std::fs::create_dir(root.join("src/extra")).unwrap();
    std::fs::write(root.join("src/extra/mod.rs"), "use crate::nowhere::Thing;\npub fn extra_help() {}\n")
        .unwrap();
    std::fs::write(root.join("src/lib.rs"), "pub mod extra;\npub mod report;\npub mod shapes;\n").unwrap();
    let module = uri("src/extra/mod.rs");
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": module, "type": 1}, {"uri": lib, "type": 2}]}),
    );
    client.diagnostics_for(&module, |d| !d.is_empty());
    let found = client.request("workspace/symbol", json!({"query": "extra_help"})).unwrap();
    assert_eq!(found[0]["location"]["uri"], module.as_str(), "{found}");
    std::fs::remove_dir_all(root.join("src/extra")).unwrap();
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": uri("src/extra"), "type": 3}]}),
    );
    client.diagnostics_for(&module, <[Value]>::is_empty);
    let missing = client.diagnostics_for(&lib, |d| !d.is_empty());
    assert_eq!(missing[0]["code"], "unresolved-module", "{missing:?}");
    assert_eq!(client.request("workspace/symbol", json!({"query": "extra_help"})).unwrap(), json!([]));
    assert_eq!(client.shut_down(), Some(0));
}
