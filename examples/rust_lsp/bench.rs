//! The language server's figures for the performance report: the server as a child
//! process on stdio, driven by the scripted client of the end-to-end tests, against
//! the same work done in process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::bench::Figure;
use super::lsp_client::{LspClient, file_uri};
use super::sample::{self, Sample};
use super::script::Session;
use super::session::{self, Edit};

/// The figures this module measures, with their targets (SPEC, wave 2).
pub const NAMES: &[(&str, &str, f64)] =
    &[("lsp_change_to_diagnostics_vs_edit_body", "<=", 2.0), ("lsp_request_under_edits_vs_idle", "<=", 1.5)];

/// The version of the next `didChange` the measurements send (versions only grow).
static VERSION: AtomicI32 = AtomicI32::new(2);

fn next_version() -> i32 {
    VERSION.fetch_add(1, Ordering::Relaxed)
}

/// Blocks of requests the idle and busy measurements alternate in.
const BLOCKS: usize = 10;

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Files of the sample (the SPEC's 1,000).
    pub files: usize,
    /// Edit trials (each one edit that adds a diagnostic and one that removes it).
    pub edit_trials: usize,
    /// Requests timed, idle and under edits.
    pub requests: usize,
}

/// A workspace on disk for the server, the same texts loaded in process, and the
/// places the measurements edit and query.
struct Workspace {
    sample: Sample,
    /// The file the edits change: its path on disk, text, package, path in its
    /// package, and the byte offset just inside a function body.
    edited: (PathBuf, String, usize, String, usize),
    /// Where definition and hover are asked: file on disk, 0-based line, UTF-16 column.
    probe: (PathBuf, u32, u32),
}

impl Workspace {
    fn new(sample: Sample) -> Result<Workspace, String> {
        let (package, path, offset) =
            session::body_edit_target(&sample).ok_or("the sample has no function with a body to edit")?;
        let text = session::text_of(&sample, package, &path).to_owned();
        let edited = (sample.packages[package].dir.join(&path), text, package, path, offset);
        let (session, _) = Session::build(sample.clone());
        let ((file, line, column), _) = session
            .index
            .view()
            .definition_probe()
            .ok_or("no import of the sample resolves into another file")?;
        let name = session.index.file_name(file).ok_or("the probe's file has no name")?;
        let (dir, relative) = sample
            .packages
            .iter()
            .find_map(|p| Some((&p.dir, name.strip_prefix(&p.name)?.strip_prefix('/')?)))
            .ok_or("the probe's file is in no package")?;
        let on_disk = dir.join(relative);
        let probe_text = std::fs::read_to_string(&on_disk).map_err(|e| e.to_string())?;
        let at = super::text::to_lsp(&probe_text, line, column);
        Ok(Workspace { sample, edited, probe: (on_disk, at.line, at.character) })
    }

    /// The LSP position of byte `offset` of the edited file.
    fn position(&self, offset: usize) -> Value {
        let before = &self.edited.1[..offset];
        let line = before.matches('\n').count();
        let column = before.rsplit('\n').next().unwrap_or("").encode_utf16().count();
        json!({"line": line, "character": column})
    }
}

/// Copies `sample`'s packages (their manifests and Rust files) under `dir`, one
/// directory each, and loads them back from there as the server will.
fn materialise(sample: &Sample, dir: &Path) -> std::io::Result<Sample> {
    for package in &sample.packages {
        let name = package.dir.file_name().map_or_else(|| package.name.clone().into(), |n| n.to_owned());
        let to = dir.join(name);
        std::fs::create_dir_all(&to)?;
        std::fs::copy(package.dir.join("Cargo.toml"), to.join("Cargo.toml"))?;
        for (path, text) in &package.files {
            let file = to.join(path);
            std::fs::create_dir_all(file.parent().expect("a file is in a directory"))?;
            std::fs::write(file, text)?;
        }
    }
    sample::load_tree(dir)
}

fn percentile(times: &[Duration], share: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    let mut times = times.to_vec();
    times.sort_unstable();
    times[((times.len() as f64 * share) as usize).min(times.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The server started on `root` and done indexing.
fn server(serve: &dyn Fn(&Path) -> Command, root: &Path) -> LspClient {
    let mut client = LspClient::spawn(serve(root));
    client.initialize(root);
    client.wait_indexed();
    client
}

/// Whether `diagnostics` hold a syntax error.
fn has_syntax_error(diagnostics: &[Value]) -> bool {
    diagnostics.iter().any(|d| d["code"] == "syntax-error")
}

/// One edit over stdio that adds a syntax error to the edited file's body, and the
/// one that takes it out: the time from each `didChange` to the diagnostics that
/// show it.
fn lsp_syntax_toggle(client: &mut LspClient, workspace: &Workspace) -> [Duration; 2] {
    let uri = file_uri(&workspace.edited.0);
    let offset = workspace.edited.4;
    let start = workspace.position(offset);
    let inserted_lines: Vec<&str> = session::SYNTAX_ERROR.split('\n').collect();
    let end = json!({
        "line": start["line"].as_u64().unwrap() + inserted_lines.len() as u64 - 1,
        "character": inserted_lines.last().unwrap().encode_utf16().count(),
    });
    let mut timed = |range: Value, text: &str, wanted: fn(&[Value]) -> bool| {
        let version = next_version();
        client.notifications.clear();
        let started = Instant::now();
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": range, "text": text}]}),
        );
        client.diagnostics_for(&uri, wanted);
        started.elapsed()
    };
    let add = timed(json!({"start": start, "end": start}), session::SYNTAX_ERROR, has_syntax_error);
    let remove = timed(json!({"start": start, "end": end}), "", |d| !has_syntax_error(d));
    [add, remove]
}

/// The same two edits in process.
fn in_process_syntax_toggle(session: &mut Session, workspace: &Workspace) -> Result<[Duration; 2], String> {
    let (_, text, package, path, offset) = &workspace.edited;
    let broken = session::insert_at(text, *offset, session::SYNTAX_ERROR);
    let add =
        session.step("syntax error", &[Edit::Write { package: *package, path: path.clone(), text: broken }]);
    if !add.added.iter().any(|(_, d)| d.code == "syntax-error") {
        return Err("the edited file gets no syntax-error diagnostic (is it in a module tree?)".into());
    }
    let remove =
        session.step("fixed", &[Edit::Write { package: *package, path: path.clone(), text: text.clone() }]);
    Ok([add.elapsed, remove.elapsed])
}

/// Definition and hover at the probe, alternately, `count` times: each round trip.
fn requests(client: &mut LspClient, workspace: &Workspace, count: usize) -> Result<Vec<Duration>, String> {
    let (path, line, character) = &workspace.probe;
    let params =
        json!({"textDocument": {"uri": file_uri(path)}, "position": {"line": line, "character": character}});
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let method = if i % 2 == 0 { "textDocument/definition" } else { "textDocument/hover" };
        let started = Instant::now();
        let reply = client.request(method, params.clone());
        times.push(started.elapsed());
        match reply {
            Ok(Value::Null) => return Err(format!("{method} at the probe found nothing")),
            Ok(_) => {}
            Err(error) => return Err(format!("{method} failed: {error}")),
        }
        // Notifications published meanwhile are not needed.
        client.notifications.clear();
    }
    Ok(times)
}

/// `requests` while another thread types into a function body (a body edit, then
/// its undo, every 2 ms), so the server commits and drives throughout.
fn requests_under_edits(
    client: &mut LspClient,
    workspace: &Workspace,
    count: usize,
) -> Result<Vec<Duration>, String> {
    let notifier = client.notifier();
    let uri = file_uri(&workspace.edited.0);
    let start = workspace.position(workspace.edited.4);
    let inserted: Vec<&str> = session::BODY_EDIT.split('\n').collect();
    let end = json!({
        "line": start["line"].as_u64().unwrap() + inserted.len() as u64 - 1,
        "character": inserted.last().unwrap().encode_utf16().count(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let typing = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (range, text) in [
                    (json!({"start": start, "end": start}), session::BODY_EDIT),
                    (json!({"start": start, "end": end}), ""),
                ] {
                    let version = next_version();
                    notifier.notify(
                        "textDocument/didChange",
                        json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": range, "text": text}]}),
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    // Let the edits get going first.
    std::thread::sleep(Duration::from_millis(50));
    let times = requests(client, workspace, count);
    stop.store(true, Ordering::Relaxed);
    typing.join().expect("the typing thread ends");
    times
}

fn open(client: &mut LspClient, path: &Path, text: &str) {
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": file_uri(path), "languageId": "rust", "version": 1, "text": text}}),
    );
}

/// The two figures on the registry sample of `sizes.files` files.
pub fn figures(sizes: Sizes, serve: &dyn Fn(&Path) -> Command) -> Vec<Figure> {
    let missing = |why: String| -> Vec<Figure> {
        NAMES.iter().map(|(name, op, bound)| (*name, Err(why.clone()), *op, *bound, String::new())).collect()
    };
    let Some(registry) = sample::registry_sample(sizes.files) else {
        return missing("the cargo registry holds too few .rs files; build the project first".into());
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => return missing(format!("no temporary directory: {error}")),
    };
    let workspace =
        match materialise(&registry, dir.path()).map_err(|e| e.to_string()).and_then(Workspace::new) {
            Ok(workspace) => workspace,
            Err(why) => return missing(why),
        };
    match measure(sizes, serve, &workspace, dir.path()) {
        Ok(figures) => figures,
        Err(why) => missing(why),
    }
}

fn measure(
    sizes: Sizes,
    serve: &dyn Fn(&Path) -> Command,
    workspace: &Workspace,
    root: &Path,
) -> Result<Vec<Figure>, String> {
    let files = workspace.sample.file_count();
    let (mut session, _) = Session::build(workspace.sample.clone());
    let mut client = server(serve, root);
    open(&mut client, &workspace.edited.0, &workspace.edited.1);
    let (mut over_stdio, mut in_process) = (Vec::new(), Vec::new());
    // Interleaved; the first trial of each warms up.
    for trial in 0..=sizes.edit_trials {
        let lsp = lsp_syntax_toggle(&mut client, workspace);
        let local = in_process_syntax_toggle(&mut session, workspace)?;
        if trial > 0 {
            over_stdio.extend(lsp);
            in_process.extend(local);
        }
    }
    drop(session);
    let (lsp, local) = (percentile(&over_stdio, 0.5), percentile(&in_process, 0.5));
    let change = (
        NAMES[0].0,
        Ok(lsp.as_secs_f64() / local.as_secs_f64()),
        NAMES[0].1,
        NAMES[0].2,
        format!(
            "{files} files: didChange → publishDiagnostics over stdio {:.2} ms (p99 {:.2}) / the same edit in process {:.2} ms (median of {} edits each: a syntax error typed into a body and taken out)",
            ms(lsp),
            ms(percentile(&over_stdio, 0.99)),
            ms(local),
            over_stdio.len()
        ),
    );
    requests(&mut client, workspace, sizes.requests.min(20))?;
    // Idle and busy in alternating blocks; the figure is the median over block pairs
    // of their p99s' ratio, so that a noisy moment of the (shared) machine, which
    // makes one block's tail, does not make the figure.
    let (mut idle, mut busy, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let block = sizes.requests.div_ceil(BLOCKS);
    for _ in 0..BLOCKS {
        let quiet = requests(&mut client, workspace, block)?;
        let typing = requests_under_edits(&mut client, workspace, block)?;
        ratios.push(percentile(&typing, 0.99).as_secs_f64() / percentile(&quiet, 0.99).as_secs_f64());
        idle.extend(quiet);
        busy.extend(typing);
    }
    ratios.sort_unstable_by(f64::total_cmp);
    let under_edits = (
        NAMES[1].0,
        Ok(ratios[ratios.len() / 2]),
        NAMES[1].1,
        NAMES[1].2,
        format!(
            "{files} files: definition/hover while edits commit every 2 ms p99 {:.2} ms (p50 {:.2}) / idle p99 {:.2} ms (p50 {:.2}); {} requests each, median of {BLOCKS} blocks' p99 ratios (they ranged {:.2}–{:.2})",
            ms(percentile(&busy, 0.99)),
            ms(percentile(&busy, 0.5)),
            ms(percentile(&idle, 0.99)),
            ms(percentile(&idle, 0.5)),
            idle.len(),
            ratios[0],
            ratios[ratios.len() - 1]
        ),
    );
    client.shut_down();
    Ok(vec![change, under_edits])
}

/// Latencies on the registry's whole sources (every package unpacked there): p50 and
/// p99 of didChange → publishDiagnostics and of definition/hover, as one line.
pub fn registry_latencies(sizes: Sizes, serve: &dyn Fn(&Path) -> Command) -> Result<String, String> {
    let root = sample::registry_dirs().into_iter().next().ok_or("no cargo registry sources")?;
    let loaded = sample::load_tree(&root).map_err(|e| e.to_string())?;
    let workspace = Workspace::new(loaded)?;
    let started = Instant::now();
    let mut client = server(serve, &root);
    let indexed = started.elapsed();
    open(&mut client, &workspace.edited.0, &workspace.edited.1);
    let mut changes = Vec::new();
    for trial in 0..=sizes.edit_trials {
        let toggle = lsp_syntax_toggle(&mut client, &workspace);
        if trial > 0 {
            changes.extend(toggle);
        }
    }
    let asked = requests(&mut client, &workspace, sizes.requests)?;
    client.shut_down();
    Ok(format!(
        "{} files ({} packages, indexed in {:.1} s over stdio): didChange → publishDiagnostics p50 {:.2} ms, p99 {:.2} ms ({} edits in {}/{}); definition/hover p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        workspace.sample.file_count(),
        workspace.sample.packages.len(),
        indexed.as_secs_f64(),
        ms(percentile(&changes, 0.5)),
        ms(percentile(&changes, 0.99)),
        changes.len(),
        workspace.sample.packages[workspace.edited.2].name,
        workspace.edited.3,
        ms(percentile(&asked, 0.5)),
        ms(percentile(&asked, 0.99)),
        asked.len()
    ))
}
