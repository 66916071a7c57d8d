//! Target `decode_key`: sort-key decoding on arbitrary bytes and layouts never
//! panics, and what is encoded decodes to itself.

use arbitrary::{Arbitrary, Unstructured};
use chunkdb_database::{Ident, KeyBuilder, KeyField, KeyPartKind, KeyValue, decode_key, describe_layout};

const KINDS: [KeyPartKind; 11] = [
    KeyPartKind::U8,
    KeyPartKind::U16,
    KeyPartKind::U32,
    KeyPartKind::U64,
    KeyPartKind::I8,
    KeyPartKind::I16,
    KeyPartKind::I32,
    KeyPartKind::I64,
    KeyPartKind::Bool,
    KeyPartKind::Ident,
    KeyPartKind::Str,
];

const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

/// One component value of a layout's kind, as the fuzzer chose it.
fn value(kind: KeyPartKind, u: &mut Unstructured<'_>) -> arbitrary::Result<KeyValue> {
    Ok(match kind {
        KeyPartKind::U8 => KeyValue::Unsigned(u64::from(u8::arbitrary(u)?)),
        KeyPartKind::U16 => KeyValue::Unsigned(u64::from(u16::arbitrary(u)?)),
        KeyPartKind::U32 => KeyValue::Unsigned(u64::from(u32::arbitrary(u)?)),
        KeyPartKind::U64 => KeyValue::Unsigned(u64::arbitrary(u)?),
        KeyPartKind::I8 => KeyValue::Signed(i64::from(i8::arbitrary(u)?)),
        KeyPartKind::I16 => KeyValue::Signed(i64::from(i16::arbitrary(u)?)),
        KeyPartKind::I32 => KeyValue::Signed(i64::from(i32::arbitrary(u)?)),
        KeyPartKind::I64 => KeyValue::Signed(i64::arbitrary(u)?),
        KeyPartKind::Bool => KeyValue::Bool(bool::arbitrary(u)?),
        KeyPartKind::Ident => KeyValue::Ident(Ident::from_raw(u64::arbitrary(u)?)),
        KeyPartKind::Str => KeyValue::Str { text: String::arbitrary(u)?, partial: false },
    })
}

/// Appends `value` (of `kind`) to a key being built.
fn push(builder: KeyBuilder, kind: KeyPartKind, value: &KeyValue) -> KeyBuilder {
    let unsigned = || value.clone().into_u64().expect("an unsigned value");
    let signed = || value.clone().into_i64().expect("a signed value");
    match kind {
        KeyPartKind::U8 => builder.part(u8::try_from(unsigned()).expect("in range")),
        KeyPartKind::U16 => builder.part(u16::try_from(unsigned()).expect("in range")),
        KeyPartKind::U32 => builder.part(u32::try_from(unsigned()).expect("in range")),
        KeyPartKind::U64 => builder.part(unsigned()),
        KeyPartKind::I8 => builder.part(i8::try_from(signed()).expect("in range")),
        KeyPartKind::I16 => builder.part(i16::try_from(signed()).expect("in range")),
        KeyPartKind::I32 => builder.part(i32::try_from(signed()).expect("in range")),
        KeyPartKind::I64 => builder.part(signed()),
        KeyPartKind::Bool => builder.part(value.clone().into_bool().expect("a bool")),
        KeyPartKind::Ident => builder.part(value.clone().into_ident().expect("an ident")),
        KeyPartKind::Str => builder.part(value.clone().into_string().expect("a string")),
    }
}

/// The fuzzer's input is a layout (up to eight components), then either raw key
/// bytes to decode against it, or values to encode and decode again.
///
/// # Panics
/// When decoding panics, when a decoded key does not re-encode to its bytes, or when
/// an encoded key does not decode to its values.
pub fn check_key(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(len) = u.int_in_range(0..=8usize) else { return };
    let mut layout = Vec::with_capacity(len);
    for name in &NAMES[..len] {
        let Ok(kind) = u.choose(&KINDS) else { return };
        layout.push(KeyField { name, kind: *kind });
    }
    let _ = describe_layout(&layout);
    let Ok(raw) = bool::arbitrary(&mut u) else { return };
    if raw {
        let bytes = u.take_rest();
        let Ok(values) = decode_key(bytes, &layout) else { return };
        // What decodes is a prefix of the layout, which encodes back to the bytes
        // (unless a string was not UTF-8 and was decoded lossily).
        let lossy = values
            .iter()
            .any(|value| matches!(value, KeyValue::Str { text, .. } if text.contains('\u{FFFD}')));
        if lossy {
            return;
        }
        let mut builder = KeyBuilder::new();
        let mut prefix = None;
        for (field, value) in layout.iter().zip(&values) {
            match value {
                KeyValue::Str { text, partial: true } => prefix = Some(builder.clone().str_prefix(text)),
                _ => builder = push(builder, field.kind, value),
            }
        }
        let ends_in_escape = prefix.is_some() && bytes.last() == Some(&0);
        let prefix = prefix.unwrap_or_else(|| builder.prefix());
        // A prefix ending between an escape's two bytes decodes without the lone 0x00.
        let expected = if ends_in_escape && prefix.as_bytes().len() < bytes.len() {
            &bytes[..bytes.len() - 1]
        } else {
            bytes
        };
        assert_eq!(prefix.as_bytes(), expected, "{values:?} decoded from {bytes:?} re-encodes differently");
        return;
    }
    let mut values = Vec::with_capacity(len);
    for field in &layout {
        let Ok(value) = value(field.kind, &mut u) else { return };
        values.push(value);
    }
    let mut builder = KeyBuilder::new();
    for (field, value) in layout.iter().zip(&values) {
        builder = push(builder, field.kind, value);
    }
    let key = builder.key();
    let decoded = decode_key(key.as_bytes(), &layout)
        .unwrap_or_else(|error| panic!("{values:?} encoded does not decode: {error}"));
    assert_eq!(decoded, values, "a key does not decode to what was encoded");
}
