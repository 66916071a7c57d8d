//! The server's threads and its message loop.
//!
//! - The reading thread (the caller's) reads each message from the client and hands
//!   it on: document changes to the indexing thread, requests that may take long
//!   (workspace symbols, references) to the workers. It answers the quick ones
//!   (definition, hover, document symbols) itself, from the newest published state:
//!   a hand-off to another thread costs a wake-up, and on a core busy with an edit
//!   the scheduler may let that wait for up to a time slice.
//! - The indexing thread owns the workspace ([`Host`]): it applies every change that
//!   has arrived (a burst of typing is one batch), drives the pipeline, publishes the
//!   new state for the workers and then the diagnostics that changed.
//! - Workers answer requests from the newest published state: a snapshot, so a
//!   request never waits for an edit being committed, and none is cancelled by one.
//! - Every thread writes its own messages to the client, one whole message at a time.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};
use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CancelParams, DidChangeTextDocumentParams, DidChangeWatchedFilesParams,
    DidChangeWatchedFilesRegistrationOptions, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    FileSystemWatcher, GlobPattern, InitializeParams, InitializeResult, LogMessageParams, MessageType,
    NumberOrString, ProgressParams, ProgressParamsValue, Registration, RegistrationParams, ServerInfo,
    WorkDoneProgress, WorkDoneProgressBegin, WorkDoneProgressCreateParams, WorkDoneProgressEnd,
    WorkDoneProgressReport,
};

use super::handlers::{self, Latest, Published};
use super::host::{Change, Host};
use super::text;

/// How the server runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The workspace to index (default: the client's first workspace folder).
    pub root: Option<PathBuf>,
    /// Where the index persists between runs (default: nowhere, a cold start).
    pub cache: Option<PathBuf>,
    /// Threads answering the requests that may take long.
    pub workers: usize,
    /// Index at the priority of everything else instead of in the background (see
    /// `run_in_background`).
    pub normal_priority: bool,
}

/// Where messages to the client are written: one whole message at a time.
type Output = Arc<Mutex<Box<dyn Write + Send>>>;

/// Sends messages to the client.
#[derive(Clone)]
struct Client {
    out: Output,
    /// For the indexing thread, which runs in the background: its messages go
    /// through a writing thread of normal priority, so that it never holds the
    /// output while preempted (the reading thread would wait behind it).
    queue: Option<Sender<Message>>,
    next_id: Arc<AtomicI32>,
}

impl Client {
    fn send(&self, message: Message) {
        match &self.queue {
            Some(queue) => {
                let _ = queue.send(message);
            }
            // A client that stopped reading is gone; reading will end too.
            None => write_message(&self.out, &message),
        }
    }

    /// A client for a background thread: its messages are written by a thread of
    /// normal priority, which ends once every such client is dropped.
    fn queued(&self) -> Client {
        let (queue, queued) = unbounded::<Message>();
        let out = Arc::clone(&self.out);
        thread::spawn(move || {
            for message in queued {
                write_message(&out, &message);
            }
        });
        Client { out: Arc::clone(&self.out), queue: Some(queue), next_id: Arc::clone(&self.next_id) }
    }

    fn notify<N: lsp_types::notification::Notification>(&self, params: N::Params) {
        self.send(Notification::new(N::METHOD.to_owned(), params).into());
    }

    fn request<R: lsp_types::request::Request>(&self, params: R::Params) {
        let id = RequestId::from(format!("chunkdb/{}", self.next_id.fetch_add(1, Ordering::Relaxed)));
        self.send(Request::new(id, R::METHOD.to_owned(), params).into());
    }

    fn log(&self, typ: MessageType, message: impl Into<String>) {
        self.notify::<note::LogMessage>(LogMessageParams { typ, message: message.into() });
    }

    fn respond(&self, response: Response) {
        self.send(response.into());
    }

    fn progress(&self, token: &str, value: WorkDoneProgress) {
        self.notify::<note::Progress>(ProgressParams {
            token: NumberOrString::String(token.to_owned()),
            value: ProgressParamsValue::WorkDone(value),
        });
    }
}

fn write_message(out: &Output, message: &Message) {
    let _ = message.write(&mut *out.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
}

/// Requests being answered, and whether the client cancelled each.
type Pending = Arc<Mutex<HashMap<RequestId, bool>>>;

/// Serves one client on `input` and `output` until it sends `exit` (or closes the
/// input). Returns the process's exit code: 0 after `shutdown` then `exit`, 1
/// otherwise, as the protocol asks.
pub fn serve(mut input: impl BufRead, output: impl Write + Send + 'static, options: Options) -> i32 {
    let client = Client { out: Arc::new(Mutex::new(Box::new(output))), queue: None, next_id: Arc::default() };
    match initialize(&mut input, &client) {
        Some(params) => run(&mut input, &client, &options, &params),
        None => 1,
    }
}

/// Reads until the `initialize` request and answers it; `None` if the client went
/// away (or exited) first.
fn initialize(input: &mut impl BufRead, client: &Client) -> Option<InitializeParams> {
    loop {
        match Message::read(input) {
            Ok(Some(Message::Request(request))) if request.method == req::Initialize::METHOD => {
                match serde_json::from_value::<InitializeParams>(request.params) {
                    Ok(params) => {
                        let result = InitializeResult {
                            capabilities: handlers::capabilities(),
                            server_info: Some(ServerInfo {
                                name: "chunkdb-rust-lsp".into(),
                                version: Some(env!("CARGO_PKG_VERSION").into()),
                            }),
                        };
                        client.respond(Response::new_ok(request.id, result));
                        return Some(params);
                    }
                    Err(error) => client.respond(Response::new_err(
                        request.id,
                        ErrorCode::InvalidParams as i32,
                        format!("invalid initialize parameters: {error}"),
                    )),
                }
            }
            Ok(Some(Message::Request(request))) => client.respond(Response::new_err(
                request.id,
                ErrorCode::ServerNotInitialized as i32,
                format!("`{}` before `initialize`: initialize first", request.method),
            )),
            Ok(Some(Message::Notification(notification))) if notification.method == note::Exit::METHOD => {
                return None;
            }
            Ok(Some(_)) => {}
            Ok(None) => return None,
            // The protocol allows no notification before `initialize`: stderr it is.
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                eprintln!("rust_lsp: a malformed message was ignored: {error}");
            }
            Err(_) => return None,
        }
    }
}

/// The workspace root: the option, else the client's first folder, else its root URI.
fn root_of(options: &Options, params: &InitializeParams) -> PathBuf {
    #[allow(deprecated)] // Older clients send only `rootUri` (or `rootPath`).
    let from_client = params
        .workspace_folders
        .iter()
        .flatten()
        .find_map(|folder| text::path_of(&folder.uri))
        .or_else(|| params.root_uri.as_ref().and_then(text::path_of))
        .or_else(|| params.root_path.as_ref().map(PathBuf::from));
    options.root.clone().or(from_client).unwrap_or_else(|| PathBuf::from("."))
}

fn run(input: &mut impl BufRead, client: &Client, options: &Options, params: &InitializeParams) -> i32 {
    let published: Arc<RwLock<Option<Published>>> = Arc::default();
    let pending: Pending = Arc::default();
    let latest: Arc<RwLock<Latest>> = Arc::default();
    let (changes, changed) = unbounded::<Change>();
    let (requests, requested) = unbounded::<Request>();
    let progress = params.capabilities.window.as_ref().and_then(|w| w.work_done_progress).unwrap_or(false);
    let indexer = {
        let (client, published, root, cache) =
            (client.queued(), Arc::clone(&published), root_of(options, params), options.cache.clone());
        let background = !options.normal_priority;
        thread::spawn(move || index(&client, &published, root, cache, progress, background, changed))
    };
    let workers: Vec<_> = (0..options.workers.max(1))
        .map(|_| {
            let (client, published, pending, latest, requested) = (
                client.clone(),
                Arc::clone(&published),
                Arc::clone(&pending),
                Arc::clone(&latest),
                requested.clone(),
            );
            thread::spawn(move || answer(&client, &published, &pending, &latest, requested))
        })
        .collect();
    let watch = params
        .capabilities
        .workspace
        .as_ref()
        .and_then(|w| w.did_change_watched_files.as_ref())
        .and_then(|w| w.dynamic_registration)
        .unwrap_or(false);
    let mut shutdown = false;
    loop {
        let message = match Message::read(input) {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                client.log(MessageType::ERROR, format!("a malformed message was ignored: {error}"));
                continue;
            }
            Err(error) => {
                client.log(MessageType::ERROR, format!("cannot read from the client: {error}"));
                break;
            }
        };
        match message {
            Message::Request(request) if shutdown => client.respond(Response::new_err(
                request.id,
                ErrorCode::InvalidRequest as i32,
                format!("`{}` after `shutdown`: only `exit` is expected now", request.method),
            )),
            Message::Request(request) if request.method == req::Shutdown::METHOD => {
                shutdown = true;
                client.respond(Response::new_ok(request.id, ()));
            }
            Message::Request(request) if request.method == req::Initialize::METHOD => {
                client.respond(Response::new_err(
                    request.id,
                    ErrorCode::InvalidRequest as i32,
                    "`initialize` was already received".into(),
                ))
            }
            Message::Request(request) if answered_inline(&request.method) => {
                client.respond(answer_one(request, &published, &latest));
            }
            Message::Request(request) => {
                pending.lock().expect("no thread panics holding it").insert(request.id.clone(), false);
                let _ = requests.send(request);
            }
            Message::Notification(notification) if notification.method == note::Exit::METHOD => break,
            Message::Notification(notification) => {
                if notification.method == note::Initialized::METHOD && watch {
                    register_watchers(client);
                }
                notice(client, &pending, &latest, &changes, notification);
            }
            Message::Response(_) => {}
        }
    }
    drop((changes, requests));
    for worker in workers {
        let _ = worker.join();
    }
    // The indexing thread finishes the batch it is driving and flushes the cache; it
    // is not waited for past a bound (a first build cannot be interrupted, and in the
    // background it may crawl): the cache is crash-safe, an unflushed batch is redone.
    let deadline = Instant::now() + EXIT_PATIENCE;
    while !indexer.is_finished() && Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(5));
    }
    if indexer.is_finished() {
        let _ = indexer.join();
    }
    if shutdown { 0 } else { 1 }
}

/// How long `exit` waits for the indexing thread to finish its batch and flush.
const EXIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks the client to report `.rs` files created, changed or deleted on disk (and
/// folders deleted).
fn register_watchers(client: &Client) {
    let options = DidChangeWatchedFilesRegistrationOptions {
        watchers: vec![
            FileSystemWatcher { glob_pattern: GlobPattern::String("**/*.rs".into()), kind: None },
            // A folder deleted is one event for the folder.
            FileSystemWatcher {
                glob_pattern: GlobPattern::String("**/*".into()),
                kind: Some(lsp_types::WatchKind::Delete),
            },
        ],
    };
    client.request::<req::RegisterCapability>(RegistrationParams {
        registrations: vec![Registration {
            id: "chunkdb/watched-files".into(),
            method: note::DidChangeWatchedFiles::METHOD.into(),
            register_options: Some(serde_json::to_value(options).expect("LSP types serialise")),
        }],
    });
}

/// Handles a notification from the client.
fn notice(
    client: &Client,
    pending: &Pending,
    latest: &RwLock<Latest>,
    changes: &Sender<Change>,
    notification: Notification,
) {
    let method = notification.method.clone();
    let versions = || latest.write().expect("no thread panics holding it");
    let change = match method.as_str() {
        note::DidOpenTextDocument::METHOD => {
            notification.extract::<DidOpenTextDocumentParams>(&method).map(|p| {
                versions().insert(p.text_document.uri.as_str().to_owned(), p.text_document.version);
                Some(Change::Open {
                    uri: p.text_document.uri,
                    text: p.text_document.text,
                    version: p.text_document.version,
                })
            })
        }
        note::DidChangeTextDocument::METHOD => {
            notification.extract::<DidChangeTextDocumentParams>(&method).map(|p| {
                versions().insert(p.text_document.uri.as_str().to_owned(), p.text_document.version);
                Some(Change::Edit {
                    uri: p.text_document.uri,
                    changes: p.content_changes,
                    version: p.text_document.version,
                })
            })
        }
        note::DidCloseTextDocument::METHOD => {
            notification.extract::<DidCloseTextDocumentParams>(&method).map(|p| {
                versions().remove(p.text_document.uri.as_str());
                Some(Change::Close { uri: p.text_document.uri })
            })
        }
        note::DidChangeWatchedFiles::METHOD => notification
            .extract::<DidChangeWatchedFilesParams>(&method)
            .map(|p| Some(Change::Watched(p.changes))),
        note::Cancel::METHOD => notification.extract::<CancelParams>(&method).map(|p| {
            let id = match p.id {
                NumberOrString::Number(id) => RequestId::from(id),
                NumberOrString::String(id) => RequestId::from(id),
            };
            if let Some(cancelled) = pending.lock().expect("no thread panics holding it").get_mut(&id) {
                *cancelled = true;
            }
            None
        }),
        // The text is already known from the changes.
        note::DidSaveTextDocument::METHOD | note::Initialized::METHOD | note::SetTrace::METHOD => Ok(None),
        _ if method.starts_with("$/") => Ok(None),
        _ => {
            client.log(MessageType::LOG, format!("the notification `{method}` is not handled: ignored"));
            Ok(None)
        }
    };
    match change {
        Ok(Some(change)) => {
            let _ = changes.send(change);
        }
        Ok(None) => {}
        Err(error) => client.log(MessageType::ERROR, format!("`{method}` was ignored: {error}")),
    }
}

/// Whether the reading thread answers `method` itself: requests that take well
/// under a millisecond whatever the workspace's size.
fn answered_inline(method: &str) -> bool {
    [req::GotoDefinition::METHOD, req::HoverRequest::METHOD, req::DocumentSymbolRequest::METHOD]
        .contains(&method)
}

/// The answer to `request` from the newest published state (an internal error
/// instead of a panic, should the handler have a bug).
fn answer_one(request: Request, published: &RwLock<Option<Published>>, latest: &RwLock<Latest>) -> Response {
    let (id, method) = (request.id.clone(), request.method.clone());
    let state = published.read().expect("no thread panics holding it").clone();
    let latest = latest.read().expect("no thread panics holding it").clone();
    std::panic::catch_unwind(AssertUnwindSafe(|| handlers::respond(request, state.as_ref(), &latest)))
        .unwrap_or_else(|_| {
            Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                format!("the server failed answering `{method}` (a bug: please report it)"),
            )
        })
}

/// A worker: answers requests from the newest published state, unless the client
/// cancelled them before they were taken up.
fn answer(
    client: &Client,
    published: &RwLock<Option<Published>>,
    pending: &Pending,
    latest: &RwLock<Latest>,
    requested: Receiver<Request>,
) {
    for request in requested {
        let id = request.id.clone();
        let cancelled =
            pending.lock().expect("no thread panics holding it").get(&id).copied().unwrap_or(false);
        let response = if cancelled {
            Response::new_err(id.clone(), ErrorCode::RequestCanceled as i32, "cancelled by the client".into())
        } else {
            answer_one(request, published, latest)
        };
        pending.lock().expect("no thread panics holding it").remove(&id);
        client.respond(response);
    }
}

/// The indexing thread: builds the workspace's index, then applies changes as they
/// come, publishing each new state and the diagnostics that changed.
fn index(
    client: &Client,
    published: &RwLock<Option<Published>>,
    root: PathBuf,
    cache: Option<PathBuf>,
    progress: bool,
    background: bool,
    changed: Receiver<Change>,
) {
    const TOKEN: &str = "chunkdb/indexing";
    if background {
        run_in_background();
    }
    if progress {
        client.request::<req::WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
            token: NumberOrString::String(TOKEN.into()),
        });
        client.progress(
            TOKEN,
            WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: "Indexing".into(),
                message: Some(root.display().to_string()),
                percentage: Some(0),
                ..WorkDoneProgressBegin::default()
            }),
        );
    }
    let started = Instant::now();
    let reported = AtomicUsize::new(0);
    let report = |done: usize, total: usize| {
        let percent = (done * 100 / total.max(1)).min(99);
        let last = reported.load(Ordering::Relaxed);
        // One report per 5 %, by whichever pool thread gets there first.
        if progress
            && percent >= last + 5
            && reported.compare_exchange(last, percent, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            client.progress(
                TOKEN,
                WorkDoneProgress::Report(WorkDoneProgressReport {
                    message: Some(format!("{done} tasks run")),
                    percentage: Some(percent as u32),
                    ..WorkDoneProgressReport::default()
                }),
            );
        }
    };
    let warn = |message: String| client.log(MessageType::WARNING, message);
    let host = Host::start(&root, cache.as_deref(), &report, &warn);
    let mut host = match host {
        Ok(host) => host,
        Err(error) => {
            client.log(MessageType::ERROR, error.to_string());
            client.notify::<note::ShowMessage>(lsp_types::ShowMessageParams {
                typ: MessageType::ERROR,
                message: format!("chunkdb: {error}"),
            });
            if progress {
                client.progress(
                    TOKEN,
                    WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(error.to_string()) }),
                );
            }
            // Changes are still read (and dropped) until the client exits.
            for _ in changed {}
            return;
        }
    };
    let summary = format!(
        "{} files of {} indexed in {:.0} ms{}",
        host.file_count(),
        root.display(),
        started.elapsed().as_secs_f64() * 1e3,
        if host.cached() { " (with a cache)" } else { "" }
    );
    *published.write().expect("no thread panics holding it") = Some(host.published());
    if progress {
        client.progress(TOKEN, WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(summary.clone()) }));
    }
    client.log(MessageType::INFO, summary);
    for diagnostics in host.initial_diagnostics() {
        client.notify::<note::PublishDiagnostics>(diagnostics);
    }
    while let Ok(first) = changed.recv() {
        // Everything that arrived meanwhile is one batch: typing is not driven key by key.
        let batch: Vec<Change> = std::iter::once(first).chain(changed.try_iter()).collect();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            for change in batch {
                for line in host.apply(change) {
                    client.log(MessageType::WARNING, line);
                }
            }
            host.check()
        }));
        let Ok(diagnostics) = outcome else {
            client.log(
                MessageType::ERROR,
                "indexing an edit failed (a bug: please report it); restart the server",
            );
            continue;
        };
        // The state replaced is dropped after the lock is released: readers never
        // wait for what it frees.
        let next = host.published();
        let replaced = published.write().expect("no thread panics holding it").replace(next);
        drop(replaced);
        for diagnostics in diagnostics {
            client.notify::<note::PublishDiagnostics>(diagnostics);
        }
    }
    if host.cached()
        && let Err(error) = host.flush()
    {
        client.log(MessageType::ERROR, format!("the cache could not be written: {error}"));
    }
}

/// Indexing is background work: the indexing thread (and the pool threads it starts
/// for parallel drives, which inherit its policy) is scheduled as `SCHED_IDLE` on
/// Linux, so a request arriving while an edit is driven preempts it at once instead
/// of waiting up to a time slice for a core (measured: p99 of definition/hover under
/// a burst of edits 2.4× idle with a nice of 19, 1.1× with this). The price: while
/// other programs keep every core busy, indexing waits for them.
fn run_in_background() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` only reads `param`, a valid initialised value
        // that outlives the call, and changes the scheduling of the calling thread
        // (pid 0); it writes no memory of this process.
        let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if result != 0 {
            eprintln!("rust_lsp: indexing keeps its priority ({})", std::io::Error::last_os_error());
        }
    }
}
