//! Targets `macro_text` and `macro_schema`: the `chunk_schema!` pipeline on any input
//! never panics; what it accepts expands to tokens that parse as Rust items; what it
//! refuses gets errors spanned on the input's own tokens; and declarations built
//! from parts (records, fields, partitions, keys, indexes) with the mistakes the
//! validator knows get the errors it promises.

use std::fmt::Write as _;
use std::str::FromStr;

use arbitrary::Arbitrary;
use proc_macro2::TokenStream;

/// Runs the pipeline on `tokens` (lexed from `source`) and checks its answer; returns
/// the error messages when it refused the input. Every error lies within the input;
/// with `on_tokens`, each is on a token of it, not on the macro's call site (where a
/// parse error at the end of the input goes).
fn run(source: &str, tokens: TokenStream, on_tokens: bool) -> Result<(), Vec<String>> {
    match chunkdb_codegen_impl::expand(tokens) {
        Ok(expanded) => {
            if let Err(error) = syn::parse2::<syn::File>(expanded.clone()) {
                panic!("the expansion of\n{source}\ndoes not parse as Rust items: {error}\n{expanded}");
            }
            Ok(())
        }
        Err(errors) => {
            let mut messages = Vec::new();
            for error in errors {
                let range = error.span().byte_range();
                let call_site = range.start == 0 && range.end == 0;
                // Built for libFuzzer (`cfg(fuzzing)`), proc-macro2 keeps no source
                // locations, so every span reads as the call site: spans are checked
                // when `cargo test` replays the corpus.
                assert!(
                    cfg!(fuzzing) || (range.end <= source.len() && !(on_tokens && call_site)),
                    "error `{error}` on\n{source}\nis not spanned on the input ({range:?})"
                );
                messages.push(error.to_string());
            }
            assert!(!messages.is_empty(), "a refusal without an error on\n{source}");
            Err(messages)
        }
    }
}

/// Target `macro_text`: arbitrary text, lexed as Rust tokens, through the pipeline.
///
/// # Panics
/// When the pipeline panics, expands to tokens that are not Rust items, or reports
/// an error not spanned on the input.
pub fn check_text(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let Ok(tokens) = TokenStream::from_str(source) else { return };
    let _ = run(source, tokens, false);
}

const RECORDS: [&str; 5] = ["Item", "Module", "Use", "r#Type", "Schema"];
const FIELDS: [&str; 6] = ["name", "path", "line", "kind", "r#type", "items"];
const PARTITIONS: [&str; 4] = ["symbols", "uses", "r#mod", "items"];
const KEYS: [&str; 4] = ["sym", "use", "", "sym"];
const TYPES: [&str; 16] = [
    "String",
    "u32",
    "i64",
    "bool",
    "u8",
    "Ident",
    "Vec<String>",
    "Option<u32>",
    "Vec<Ident>",
    "f64",
    "&'static str",
    "Box<str>",
    "Option<Vec<u8>>",
    "(u32, u32)",
    "std::string::String",
    "Unknown",
];

/// A declaration built from parts, rendered as text (see [`SchemaSpec::render`]).
#[derive(Arbitrary, Debug)]
pub struct SchemaSpec {
    records: Vec<RecordSpec>,
    partitions: Vec<PartitionSpec>,
    indexes: Vec<IndexSpec>,
}

#[derive(Arbitrary, Debug)]
struct RecordSpec {
    name: u8,
    fields: Vec<FieldSpec>,
}

#[derive(Arbitrary, Debug)]
struct FieldSpec {
    name: u8,
    ty: u8,
}

#[derive(Arbitrary, Debug)]
struct PartitionSpec {
    name: u8,
    key: Option<u8>,
    holds: Vec<u8>,
    key_fields: Vec<FieldSpec>,
}

#[derive(Arbitrary, Debug)]
struct IndexSpec {
    name: u8,
    targets: Vec<(u8, u8)>,
}

fn pick<'a>(names: &[&'a str], at: u8) -> &'a str {
    names[usize::from(at) % names.len()]
}

fn unraw(name: &str) -> &str {
    name.trim_start_matches("r#")
}

impl SchemaSpec {
    /// The declaration as a user would write it.
    #[must_use]
    pub fn render(&self) -> String {
        let fields = |fields: &[FieldSpec]| -> String {
            let rendered: Vec<String> =
                fields.iter().map(|f| format!("{}: {}", pick(&FIELDS, f.name), pick(&TYPES, f.ty))).collect();
            rendered.join(", ")
        };
        let mut out = String::from("pub schema Fuzzed {\n    records {\n");
        for record in &self.records {
            let _ =
                writeln!(out, "        {} {{ {} }},", pick(&RECORDS, record.name), fields(&record.fields));
        }
        out.push_str("    }\n");
        if !self.partitions.is_empty() {
            out.push_str("    partitions {\n");
            for partition in &self.partitions {
                let key = partition.key.map_or(String::new(), |key| format!(": {:?}", pick(&KEYS, key)));
                // The grammar needs a kind to hold: an empty list would be a parse error.
                let holds: Vec<&str> = if partition.holds.is_empty() {
                    vec![RECORDS[0]]
                } else {
                    partition.holds.iter().map(|at| pick(&RECORDS, *at)).collect()
                };
                let _ = writeln!(
                    out,
                    "        {}{key} holds {} key ({}),",
                    pick(&PARTITIONS, partition.name),
                    holds.join(", "),
                    fields(&partition.key_fields)
                );
            }
            out.push_str("    }\n");
        }
        if !self.indexes.is_empty() {
            out.push_str("    indexes {\n");
            for index in &self.indexes {
                let targets: Vec<String> = index
                    .targets
                    .iter()
                    .chain(index.targets.is_empty().then_some(&(0, 0)))
                    .map(|(record, field)| format!("{}.{}", pick(&RECORDS, *record), pick(&FIELDS, *field)))
                    .collect();
                let _ = writeln!(out, "        by_{} on {},", index.name % 4, targets.join(", "));
            }
            out.push_str("    }\n");
        }
        out.push('}');
        out
    }

    /// The errors the validator promises for this declaration (a part of each
    /// message): a subset of what it must report, for the mistakes this model knows.
    fn promised(&self) -> Vec<String> {
        let mut promised = Vec::new();
        if self.records.is_empty() {
            promised.push("declares no records".to_owned());
        }
        let records = self.records.iter().map(|record| pick(&RECORDS, record.name));
        declared_twice(&mut promised, "record", records);
        for record in &self.records {
            declared_twice(
                &mut promised,
                "field",
                record.fields.iter().map(|field| pick(&FIELDS, field.name)),
            );
        }
        let partitions = self.partitions.iter().map(|partition| pick(&PARTITIONS, partition.name));
        declared_twice(&mut promised, "partition", partitions);
        for partition in &self.partitions {
            if partition.key_fields.is_empty() {
                promised.push(format!("partition `{}` has an empty key", pick(&PARTITIONS, partition.name)));
            }
        }
        promised
    }
}

/// Promises "`what` `name` is declared twice" for each repeat among `names` (compared,
/// and named in the message, without `r#`).
fn declared_twice<'a>(promised: &mut Vec<String>, what: &str, names: impl Iterator<Item = &'a str>) {
    let mut seen: Vec<&str> = Vec::new();
    for name in names.map(unraw) {
        if seen.contains(&name) {
            promised.push(format!("{what} `{name}` is declared twice"));
        }
        seen.push(name);
    }
}

/// Target `macro_schema`: a declaration built from parts through the pipeline.
///
/// # Panics
/// As [`check_text`], and when a mistake the model knows is not reported, or a
/// declaration with one is accepted.
pub fn check_schema(spec: &SchemaSpec) {
    let source = spec.render();
    let tokens = TokenStream::from_str(&source).expect("a rendered declaration lexes");
    let promised = spec.promised();
    match run(&source, tokens, true) {
        Ok(()) => {
            assert!(promised.is_empty(), "accepted\n{source}\nthough it has these mistakes: {promised:?}")
        }
        Err(messages) => {
            for promise in &promised {
                assert!(
                    messages.iter().any(|message| message.contains(promise.as_str())),
                    "refused\n{source}\nwithout the promised error `{promise}`: {messages:?}"
                );
            }
        }
    }
}
