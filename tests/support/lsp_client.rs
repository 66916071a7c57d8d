//! A scripted Language Server Protocol client: runs a server as a child process and
//! talks JSON-RPC to it over its stdin and stdout. Used by the end-to-end tests and
//! by `perf_report`.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lsp_server::{Message, Notification, Request, RequestId, Response};
use serde_json::{Value, json};

/// How long a reply or notification may take before the client gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A server process and the client's side of the conversation.
pub struct LspClient {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    incoming: Receiver<Message>,
    /// Notifications received and not yet taken, oldest first.
    pub notifications: VecDeque<Notification>,
    /// Every notification received, in order (taken or not).
    pub log: Vec<Notification>,
    next_id: i32,
}

impl LspClient {
    /// Starts `command` (its stdin and stdout become the connection).
    pub fn spawn(mut command: Command) -> LspClient {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let stdin = Arc::new(Mutex::new(child.stdin.take().expect("piped")));
        let stdout = child.stdout.take().expect("piped");
        let (send, incoming) = channel();
        let answer_to = Arc::clone(&stdin);
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            while let Ok(Some(message)) = Message::read(&mut stdout) {
                // Requests from the server (progress tokens, registrations) get an empty success.
                if let Message::Request(request) = &message {
                    let reply = Message::Response(Response::new_ok(request.id.clone(), Value::Null));
                    let _ = reply.write(&mut *answer_to.lock().unwrap());
                }
                if send.send(message).is_err() {
                    return;
                }
            }
        });
        LspClient { child, stdin, incoming, notifications: VecDeque::new(), log: Vec::new(), next_id: 1 }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes raw bytes to the server (for malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut stdin = self.stdin.lock().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: Message) {
        message.write(&mut *self.stdin.lock().unwrap()).expect("the server reads its stdin");
    }

    /// A handle that sends notifications from another thread.
    pub fn notifier(&self) -> Notifier {
        Notifier { stdin: Arc::clone(&self.stdin) }
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(Message::Notification(Notification::new(method.to_owned(), params)));
    }

    /// Sends a request and returns its id, without waiting for the reply.
    pub fn send_request(&mut self, method: &str, params: Value) -> RequestId {
        let id = RequestId::from(self.next_id);
        self.next_id += 1;
        self.send(Message::Request(Request::new(id.clone(), method.to_owned(), params)));
        id
    }

    fn receive(&mut self, deadline: Instant) -> Option<Message> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(left) {
            Ok(Message::Notification(notification)) => {
                self.log.push(notification.clone());
                self.notifications.push_back(notification.clone());
                Some(Message::Notification(notification))
            }
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for the reply to request `id`: `Ok(result)` or `Err(error object)`.
    pub fn reply(&mut self, id: &RequestId) -> Result<Value, Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.receive(deadline) {
                Some(Message::Response(response)) if &response.id == id => {
                    return response.response_result.map_err(|error| serde_json::to_value(error).unwrap());
                }
                Some(_) => {}
                None => panic!("no reply to request {id} within {PATIENCE:?}"),
            }
        }
    }

    /// Sends a request and waits for its reply.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send_request(method, params);
        self.reply(&id)
    }

    /// Takes the first notification (received or still to come) that `wanted`
    /// accepts, leaving the others queued; `None` after `patience`.
    pub fn wait_for(
        &mut self,
        patience: Duration,
        wanted: impl Fn(&Notification) -> bool,
    ) -> Option<Notification> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(at) = self.notifications.iter().position(&wanted) {
                return self.notifications.remove(at);
            }
            self.receive(deadline)?;
        }
    }

    /// Waits for the diagnostics published for the file at `uri` that `wanted` accepts.
    pub fn diagnostics_for(&mut self, uri: &str, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let found = self.wait_for(PATIENCE, |n| {
            n.method == "textDocument/publishDiagnostics"
                && n.params["uri"] == uri
                && wanted(n.params["diagnostics"].as_array().map_or(&[][..], Vec::as_slice))
        });
        let found = found.unwrap_or_else(|| {
            let seen: Vec<String> = self.log.iter().map(|n| format!("{} {}", n.method, n.params)).collect();
            panic!(
                "no matching diagnostics for {uri} within {PATIENCE:?}; notifications seen:\n{}",
                seen.join("\n")
            )
        });
        found.params["diagnostics"].as_array().cloned().unwrap_or_default()
    }

    /// `initialize` (advertising work-done progress and watched-file registration)
    /// then `initialized`; returns the server's capabilities.
    pub fn initialize(&mut self, root: &Path) -> Value {
        let root_uri = spelled_uri(root);
        let result = self
            .request(
                "initialize",
                json!({
                    "processId": std::process::id(),
                    "rootUri": root_uri,
                    "workspaceFolders": [{"uri": root_uri, "name": "fixture"}],
                    "capabilities": {
                        "window": {"workDoneProgress": true},
                        "workspace": {"didChangeWatchedFiles": {"dynamicRegistration": true}},
                        "textDocument": {"synchronization": {"dynamicRegistration": false}}
                    }
                }),
            )
            .expect("initialize succeeds");
        self.notify("initialized", json!({}));
        result
    }

    /// Waits until the server has indexed the workspace (its progress ends).
    pub fn wait_indexed(&mut self) -> Notification {
        self.wait_for(PATIENCE, |n| n.method == "$/progress" && n.params["value"]["kind"] == "end")
            .expect("indexing ends")
    }

    /// `shutdown` then `exit`; returns the process's exit code.
    pub fn shut_down(mut self) -> Option<i32> {
        let result = self.request("shutdown", Value::Null);
        assert_eq!(result, Ok(Value::Null), "shutdown succeeds");
        self.notify("exit", Value::Null);
        self.wait_exit()
    }

    /// Waits for the process to end; its exit code.
    pub fn wait_exit(mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the server did not exit within {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends notifications to the server of an [`LspClient`], from any thread.
#[derive(Clone)]
pub struct Notifier {
    stdin: Arc<Mutex<ChildStdin>>,
}

impl Notifier {
    /// Sends a notification.
    pub fn notify(&self, method: &str, params: Value) {
        let message = Message::Notification(Notification::new(method.to_owned(), params));
        message.write(&mut *self.stdin.lock().unwrap()).expect("the server reads its stdin");
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `file:` URI of `path` (made canonical), encoded as the server encodes it.
pub fn file_uri(path: &Path) -> String {
    spelled_uri(&std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()))
}

/// The `file:` URI of the absolute `path` as it is spelled (through symbolic links).
pub fn spelled_uri(path: &Path) -> String {
    const ESCAPES: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    format!("file://{}", percent_encoding::utf8_percent_encode(&path.to_string_lossy(), ESCAPES))
}
