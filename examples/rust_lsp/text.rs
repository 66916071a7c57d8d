//! Between the editor's coordinates and the index's: LSP positions count UTF-16 code
//! units from 0 on 0-based lines, the index's spans count characters from 0 on
//! 1-based lines (as `proc_macro2` reports them); file URIs against paths; the
//! text edits of incremental sync; the signature and docs a hover shows.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lsp_types::{Position, Range, TextDocumentContentChangeEvent, Uri};

use super::syntax::Span;

/// Why a position could not be placed in a text.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    /// The line is past the end.
    #[error(
        "line {line} is past the end of the file ({lines} lines): the editor and the server disagree on its text"
    )]
    PastEnd {
        /// The 0-based line asked for.
        line: u32,
        /// How many lines the text has.
        lines: usize,
    },
}

/// Line `line` (0-based) of `text`, without its line break, if there is one.
fn line_of(text: &str, line: u32) -> Option<&str> {
    text.split('\n').nth(line as usize).map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// The index's (1-based line, character column) of an LSP position in `text`. A
/// column past the end of its line is clamped to the end, as the protocol asks.
pub fn to_index(text: &str, position: Position) -> Result<(u32, u32), PositionError> {
    let line = line_of(text, position.line)
        .ok_or(PositionError::PastEnd { line: position.line, lines: text.split('\n').count() })?;
    let mut units = 0;
    let mut column = 0;
    for c in line.chars() {
        if units >= position.character {
            break;
        }
        units += c.len_utf16() as u32;
        column += 1;
    }
    Ok((position.line + 1, column))
}

/// The LSP position of the index's (1-based `line`, character `column`) in `text`.
pub fn to_lsp(text: &str, line: u32, column: u32) -> Position {
    let units = line_of(text, line.saturating_sub(1))
        .map_or(0, |text| text.chars().take(column as usize).map(|c| c.len_utf16() as u32).sum());
    Position { line: line.saturating_sub(1), character: units }
}

/// The LSP range of an index span in `text`.
pub fn range_of(text: &str, span: Span) -> Range {
    Range { start: to_lsp(text, span.line, span.column), end: to_lsp(text, span.end_line, span.end_column) }
}

/// The byte offset of an LSP position in `text`, clamped to the text (a line past the
/// end is its end; a column past a line's end is that line's end).
fn offset_of(text: &str, position: Position) -> usize {
    let mut start = 0;
    for _ in 0..position.line {
        match text[start..].find('\n') {
            Some(at) => start += at + 1,
            None => return text.len(),
        }
    }
    let line = &text[start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut units = 0;
    for (at, c) in line.char_indices() {
        if units >= position.character {
            return start + at;
        }
        units += c.len_utf16() as u32;
    }
    start + line.len()
}

/// Applies one change of incremental sync (or a whole new text) to `text`. Returns
/// whether its range had to be clamped to the text.
pub fn apply_change(text: &mut String, change: TextDocumentContentChangeEvent) -> bool {
    let Some(range) = change.range else {
        *text = change.text;
        return false;
    };
    let (start, end) = (offset_of(text, range.start), offset_of(text, range.end));
    let clamped = to_index(text, range.start).is_err() || to_index(text, range.end).is_err();
    let (start, end) = (start.min(end), start.max(end));
    text.replace_range(start..end, &change.text);
    clamped
}

/// What a URI's path escapes: everything but unreserved characters and `/`
/// (RFC 3986, as VS Code writes file URIs).
const PATH_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The path of a `file:` URI.
pub fn path_of(uri: &Uri) -> Option<PathBuf> {
    let path = uri.as_str().strip_prefix("file://")?;
    // `file://host/path` names another machine's file.
    let path = path.strip_prefix("localhost").unwrap_or(path);
    if !path.starts_with('/') {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    Some(PathBuf::from(percent_encoding::percent_decode_str(path).decode_utf8().ok()?.into_owned()))
}

/// The `file:` URI of an absolute path.
pub fn uri_of(path: &Path) -> Uri {
    let encoded = percent_encoding::utf8_percent_encode(&path.to_string_lossy(), PATH_ESCAPES).to_string();
    format!("file://{encoded}").parse().expect("an encoded absolute path is a valid URI")
}

/// What a hover shows of the item whose name is on (1-based) `line` of `text`:
/// its signature (from its keyword to its body or its end, at most 12 lines) and
/// the doc comments above it, as Markdown.
pub fn hover_text(text: &str, line: u32) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).collect();
    let first = line.checked_sub(1)? as usize;
    lines.get(first)?;
    let mut signature = String::new();
    'lines: for (n, text) in lines[first..].iter().take(12).enumerate() {
        let text = if n == 0 { text.trim_start() } else { text.trim() };
        if !signature.is_empty() {
            signature.push(' ');
        }
        for c in text.chars() {
            if c == '{' || c == ';' {
                break 'lines;
            }
            signature.push(c);
        }
    }
    let signature = signature.trim_end().trim_end_matches('=').trim_end();
    let mut docs = Vec::new();
    for text in lines[..first].iter().rev() {
        let text = text.trim();
        if let Some(doc) = text.strip_prefix("///") {
            docs.push(doc.strip_prefix(' ').unwrap_or(doc));
        } else if !(text.starts_with("#[") || text.starts_with("//") && !text.starts_with("///")) {
            break;
        }
    }
    docs.reverse();
    let mut markdown = format!("```rust\n{signature}\n```");
    if !docs.is_empty() {
        markdown.push_str("\n\n");
        markdown.push_str(&docs.join("\n"));
    }
    Some(markdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units_one_way_and_characters_the_other() {
        // `é` is one UTF-16 unit, `🦀` two; the index counts each as one character.
        let text = "fn é() {}\nlet 🦀x = 1;\n";
        assert_eq!(to_index(text, Position { line: 1, character: 6 }).unwrap(), (2, 5));
        assert_eq!(to_lsp(text, 2, 5), Position { line: 1, character: 6 });
        assert_eq!(to_lsp(text, 1, 4), Position { line: 0, character: 4 });
        assert!(to_index(text, Position { line: 9, character: 0 }).is_err());
        // Past the end of a line: clamped.
        assert_eq!(to_index(text, Position { line: 0, character: 99 }).unwrap(), (1, 9));
    }

    #[test]
    fn incremental_changes_replace_their_range() {
        let mut text = "let 🦀 = 1;\nfn main() {}\n".to_owned();
        let range =
            Range { start: Position { line: 0, character: 4 }, end: Position { line: 0, character: 6 } };
        let clamped = apply_change(
            &mut text,
            TextDocumentContentChangeEvent { range: Some(range), range_length: None, text: "crab".into() },
        );
        assert!(!clamped);
        assert_eq!(text, "let crab = 1;\nfn main() {}\n");
        let past =
            Range { start: Position { line: 7, character: 0 }, end: Position { line: 7, character: 0 } };
        assert!(apply_change(
            &mut text,
            TextDocumentContentChangeEvent { range: Some(past), range_length: None, text: "// end\n".into() }
        ));
        assert_eq!(text, "let crab = 1;\nfn main() {}\n// end\n");
    }

    #[test]
    fn file_uris_round_trip_through_paths_with_spaces_and_non_ascii() {
        let path = Path::new("/tmp/a dir/é.rs");
        let uri = uri_of(path);
        assert_eq!(uri.as_str(), "file:///tmp/a%20dir/%C3%A9.rs");
        assert_eq!(path_of(&uri).unwrap(), path);
        assert_eq!(path_of(&"untitled:Untitled-1".parse().unwrap()), None);
    }

    #[test]
    fn a_hover_shows_the_signature_and_the_docs_above_it() {
        let text =
            "/// Adds.\n///\n/// Twice.\n#[inline]\npub fn add(a: u32,\n    b: u32) -> u32 {\n    a + b\n}\n";
        assert_eq!(
            hover_text(text, 5).unwrap(),
            "```rust\npub fn add(a: u32, b: u32) -> u32\n```\n\nAdds.\n\nTwice."
        );
        assert_eq!(hover_text("pub const N: u32 = 3;\n", 1).unwrap(), "```rust\npub const N: u32 = 3\n```");
    }
}
