//! The answers to requests, each computed from one published state of the index (a
//! [`View`] and the files of that moment), on whichever thread takes the request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lsp_server::{ErrorCode, Request, Response};
use lsp_types::{
    GotoDefinitionParams, GotoDefinitionResponse, Hover, HoverContents, HoverParams, Location, MarkupContent,
    MarkupKind, OneOf, ReferenceParams, SymbolInformation, SymbolKind, TextDocumentPositionParams, Uri,
    WorkspaceSymbolParams, WorkspaceSymbolResponse, request::Request as _,
};

use super::chunk_index::{Symbol, View, symbol_span};
use super::syntax::{Kind, Span};
use super::text::{self, PositionError};

/// Most workspace symbols one query returns.
const WORKSPACE_SYMBOLS: usize = 128;

/// The workspace's files at one moment: their ids and paths, both ways.
#[derive(Clone, Debug, Default)]
pub struct Files {
    /// File id by absolute path.
    pub by_path: HashMap<PathBuf, u32>,
    /// Absolute path by file id.
    pub paths: HashMap<u32, PathBuf>,
    /// The workspace root as the index spells it (canonical) and as the client does,
    /// when they differ (a root reached through a symbolic link): URIs sent to the
    /// client use its spelling, so its open buffers get their diagnostics.
    pub spelled: Option<(PathBuf, PathBuf)>,
}

impl Files {
    /// The id of the file at `uri` (its path as the client spells it, or through
    /// symbolic links: the index keeps package directories canonical).
    pub fn id_of(&self, uri: &Uri) -> Option<u32> {
        let path = text::path_of(uri)?;
        self.by_path.get(&path).copied().or_else(|| {
            let (dir, name) = (path.parent()?, path.file_name()?);
            self.by_path.get(&std::fs::canonicalize(dir).ok()?.join(name)).copied()
        })
    }

    /// The URI of file `file`, as the client spells it.
    pub fn uri_of(&self, file: u32) -> Option<Uri> {
        self.paths.get(&file).map(|path| self.uri_of_path(path))
    }

    /// The URI of `path` (as the index spells it), as the client spells it.
    pub fn uri_of_path(&self, path: &Path) -> Uri {
        match &self.spelled {
            Some((canonical, client)) if path.starts_with(canonical) => {
                let relative = path.strip_prefix(canonical).expect("checked just above");
                text::uri_of(&client.join(relative))
            }
            _ => text::uri_of(path),
        }
    }
}

/// What requests are answered from: the newest state the indexing thread published.
#[derive(Clone)]
pub struct Published {
    /// The index.
    pub view: View,
    /// Its files.
    pub files: Arc<Files>,
    /// The version of each open file's text in this state.
    pub versions: Arc<HashMap<u32, i32>>,
}

/// The version of each open document's text the client sent last, by URI: a state
/// that holds an older one answers about the text before the newest edits (the
/// protocol allows that), and a position past its end finds nothing.
pub type Latest = HashMap<String, i32>;

/// Why a request got an error instead of a result.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("invalid parameters for {method}: {error}")]
    Params { method: String, error: serde_json::Error },
    #[error(transparent)]
    Position(#[from] PositionError),
}

/// The response to `request`, from `state` (`None` while the workspace is being
/// indexed for the first time: the answers are empty then). Unknown methods get
/// `MethodNotFound`; bad parameters and positions `InvalidParams`.
pub fn respond(request: Request, state: Option<&Published>, latest: &Latest) -> Response {
    let id = request.id.clone();
    let method = request.method.clone();
    let answer = match method.as_str() {
        lsp_types::request::DocumentSymbolRequest::METHOD => {
            with_params(request, |p: lsp_types::DocumentSymbolParams| {
                Ok(document_symbols(state, &p.text_document.uri))
            })
        }
        lsp_types::request::WorkspaceSymbolRequest::METHOD => {
            with_params(request, |p: WorkspaceSymbolParams| Ok(workspace_symbols(state, &p.query)))
        }
        lsp_types::request::GotoDefinition::METHOD => with_params(request, |p: GotoDefinitionParams| {
            definition(state, latest, &p.text_document_position_params)
        }),
        lsp_types::request::References::METHOD => {
            with_params(request, |p: ReferenceParams| references(state, latest, &p))
        }
        lsp_types::request::HoverRequest::METHOD => {
            with_params(request, |p: HoverParams| hover(state, latest, &p.text_document_position_params))
        }
        _ => {
            return Response::new_err(
                id,
                ErrorCode::MethodNotFound as i32,
                format!("this server does not handle `{method}`"),
            );
        }
    };
    match answer {
        Ok(value) => Response { id, response_result: Ok(value) },
        Err(failure) => Response::new_err(id, ErrorCode::InvalidParams as i32, failure.to_string()),
    }
}

fn with_params<P: serde::de::DeserializeOwned, R: serde::Serialize>(
    request: Request,
    answer: impl FnOnce(P) -> Result<R, Failure>,
) -> Result<serde_json::Value, Failure> {
    let params = serde_json::from_value(request.params)
        .map_err(|error| Failure::Params { method: request.method.clone(), error })?;
    Ok(serde_json::to_value(answer(params)?).expect("LSP types serialise"))
}

fn symbol_kind(code: u8) -> SymbolKind {
    match Kind::from_code(code) {
        Kind::Module => SymbolKind::MODULE,
        Kind::Function => SymbolKind::FUNCTION,
        Kind::Struct | Kind::Union => SymbolKind::STRUCT,
        Kind::Enum => SymbolKind::ENUM,
        Kind::Trait => SymbolKind::INTERFACE,
        Kind::TypeAlias | Kind::AssociatedType => SymbolKind::TYPE_PARAMETER,
        Kind::Const | Kind::AssociatedConst => SymbolKind::CONSTANT,
        Kind::Static => SymbolKind::VARIABLE,
        Kind::Macro => SymbolKind::FUNCTION,
        Kind::ExternCrate => SymbolKind::PACKAGE,
        Kind::Method => SymbolKind::METHOD,
        Kind::Import => SymbolKind::NULL,
    }
}

/// The texts of the files one answer places locations in, read once each.
struct Texts<'a> {
    view: &'a View,
    texts: HashMap<u32, Option<String>>,
}

impl<'a> Texts<'a> {
    fn new(view: &'a View) -> Self {
        Texts { view, texts: HashMap::new() }
    }

    fn get(&mut self, file: u32) -> Option<&str> {
        self.texts.entry(file).or_insert_with(|| self.view.text_of(file)).as_deref()
    }

    fn location(&mut self, files: &Files, file: u32, span: Span) -> Option<Location> {
        let range = text::range_of(self.get(file)?, span);
        Some(Location { uri: files.uri_of(file)?, range })
    }
}

#[allow(deprecated)] // `SymbolInformation::deprecated` must be spelt out.
fn information(texts: &mut Texts, files: &Files, file: u32, symbol: &Symbol) -> Option<SymbolInformation> {
    Some(SymbolInformation {
        name: symbol.name.clone(),
        kind: symbol_kind(symbol.kind),
        tags: None,
        deprecated: None,
        location: texts.location(files, file, symbol_span(symbol))?,
        container_name: symbol
            .container
            .clone()
            .or_else(|| Some(symbol.module.clone()).filter(|m| !m.is_empty())),
    })
}

fn document_symbols(state: Option<&Published>, uri: &Uri) -> Option<lsp_types::DocumentSymbolResponse> {
    let state = state?;
    let file = state.files.id_of(uri)?;
    let mut texts = Texts::new(&state.view);
    let symbols = state.view.symbols_of(file);
    let found = symbols.iter().filter_map(|symbol| information(&mut texts, &state.files, file, symbol));
    Some(lsp_types::DocumentSymbolResponse::Flat(found.collect()))
}

fn workspace_symbols(state: Option<&Published>, query: &str) -> Option<WorkspaceSymbolResponse> {
    let state = state?;
    let mut texts = Texts::new(&state.view);
    let found = state.view.symbols_matching(query, WORKSPACE_SYMBOLS);
    let found =
        found.iter().filter_map(|(file, symbol)| information(&mut texts, &state.files, *file, symbol));
    Some(WorkspaceSymbolResponse::Flat(found.collect()))
}

/// The file and index position of a request's position, from the text of the state
/// answering it. `Ok(None)` for a file the workspace does not hold, or a position
/// past the end of a text the client has changed since this state.
fn place(
    state: &Published,
    latest: &Latest,
    at: &TextDocumentPositionParams,
) -> Result<Option<(u32, u32, u32)>, Failure> {
    let Some(file) = state.files.id_of(&at.text_document.uri) else { return Ok(None) };
    let Some(text) = state.view.text_of(file) else { return Ok(None) };
    match text::to_index(&text, at.position) {
        Ok((line, column)) => Ok(Some((file, line, column))),
        Err(_) if latest.get(at.text_document.uri.as_str()) != state.versions.get(&file) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn definition(
    state: Option<&Published>,
    latest: &Latest,
    at: &TextDocumentPositionParams,
) -> Result<Option<GotoDefinitionResponse>, Failure> {
    let Some(state) = state else { return Ok(None) };
    let Some((file, line, column)) = place(state, latest, at)? else { return Ok(None) };
    let Some((target, span)) = state.view.goto_definition(file, line, column) else { return Ok(None) };
    let location = Texts::new(&state.view).location(&state.files, target, span);
    Ok(location.map(GotoDefinitionResponse::Scalar))
}

fn references(
    state: Option<&Published>,
    latest: &Latest,
    params: &ReferenceParams,
) -> Result<Option<Vec<Location>>, Failure> {
    let Some(state) = state else { return Ok(None) };
    let Some((file, line, column)) = place(state, latest, &params.text_document_position)? else {
        return Ok(None);
    };
    let Some(target) = state.view.definition_at(file, line, column) else { return Ok(Some(Vec::new())) };
    let mut texts = Texts::new(&state.view);
    let mut places = Vec::new();
    if params.context.include_declaration {
        places.extend(texts.location(&state.files, target.0, target.1));
    }
    for (file, span) in state.view.references(target) {
        places.extend(texts.location(&state.files, file, span));
    }
    Ok(Some(places))
}

fn hover(
    state: Option<&Published>,
    latest: &Latest,
    at: &TextDocumentPositionParams,
) -> Result<Option<Hover>, Failure> {
    let Some(state) = state else { return Ok(None) };
    let Some((file, line, column)) = place(state, latest, at)? else { return Ok(None) };
    let Some((target, span)) = state.view.definition_at(file, line, column) else { return Ok(None) };
    let Some(text) = state.view.text_of(target) else { return Ok(None) };
    let Some(markdown) = text::hover_text(&text, span.line) else { return Ok(None) };
    Ok(Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: markdown }),
        range: None,
    }))
}

/// What the server tells the client it can do.
pub fn capabilities() -> lsp_types::ServerCapabilities {
    use lsp_types::{
        SaveOptions, ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind,
        TextDocumentSyncOptions, TextDocumentSyncSaveOptions,
    };
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::INCREMENTAL),
            save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions { include_text: Some(false) })),
            ..TextDocumentSyncOptions::default()
        })),
        document_symbol_provider: Some(OneOf::Left(true)),
        workspace_symbol_provider: Some(OneOf::Left(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        hover_provider: Some(lsp_types::HoverProviderCapability::Simple(true)),
        ..ServerCapabilities::default()
    }
}
