//! What the macro knows about field types: which can be hashed stably, which can be
//! sort-key components, and which can be indexed.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, Type};

/// A single-valued type the runtime knows how to hash (and maybe to order).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scalar {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    Bool,
    Char,
    Ident,
    String,
    TaskId,
    ChunkId,
}

impl Scalar {
    fn from_name(name: &str) -> Option<Scalar> {
        Some(match name {
            "u8" => Scalar::U8,
            "u16" => Scalar::U16,
            "u32" => Scalar::U32,
            "u64" => Scalar::U64,
            "i8" => Scalar::I8,
            "i16" => Scalar::I16,
            "i32" => Scalar::I32,
            "i64" => Scalar::I64,
            "bool" => Scalar::Bool,
            "char" => Scalar::Char,
            "Ident" => Scalar::Ident,
            "String" => Scalar::String,
            "TaskId" => Scalar::TaskId,
            "ChunkId" => Scalar::ChunkId,
            _ => return None,
        })
    }

    /// The runtime's `KeyPartKind` variant, for types that can be key components.
    pub fn key_kind(self) -> Option<&'static str> {
        Some(match self {
            Scalar::U8 => "U8",
            Scalar::U16 => "U16",
            Scalar::U32 => "U32",
            Scalar::U64 => "U64",
            Scalar::I8 => "I8",
            Scalar::I16 => "I16",
            Scalar::I32 => "I32",
            Scalar::I64 => "I64",
            Scalar::Bool => "Bool",
            Scalar::Ident => "Ident",
            Scalar::String => "Str",
            Scalar::Char | Scalar::TaskId | Scalar::ChunkId => return None,
        })
    }

    /// The type as written in docs and generated code.
    pub fn name(self) -> &'static str {
        match self {
            Scalar::U8 => "u8",
            Scalar::U16 => "u16",
            Scalar::U32 => "u32",
            Scalar::U64 => "u64",
            Scalar::I8 => "i8",
            Scalar::I16 => "i16",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::Bool => "bool",
            Scalar::Char => "char",
            Scalar::Ident => "Ident",
            Scalar::String => "String",
            Scalar::TaskId => "TaskId",
            Scalar::ChunkId => "ChunkId",
        }
    }
}

/// A field type, as far as the macro needs to know it.
#[derive(Clone, Debug)]
pub enum FieldType {
    Scalar(Scalar),
    Vec(Box<FieldType>),
    BoxSlice(Box<FieldType>),
    Option(Box<FieldType>),
    /// A box or a tuple: hashable when what it holds is (checked when classified).
    Composite,
    /// Another type (another record, or a user type implementing `StableHash`).
    Other,
}

/// How a field is indexed: by a single value, or by each of several.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IndexShape {
    One,
    Optional,
    Many,
}

impl FieldType {
    /// The index value type and shape, for fields that can be indexed.
    pub fn index_value(&self) -> Option<(Scalar, IndexShape)> {
        match self {
            FieldType::Scalar(scalar) if scalar.key_kind().is_some() => Some((*scalar, IndexShape::One)),
            FieldType::Option(inner) => match **inner {
                FieldType::Scalar(scalar) if scalar.key_kind().is_some() => {
                    Some((scalar, IndexShape::Optional))
                }
                _ => None,
            },
            FieldType::Vec(inner) | FieldType::BoxSlice(inner) => match **inner {
                FieldType::Scalar(scalar) if scalar.key_kind().is_some() => Some((scalar, IndexShape::Many)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The scalar, for single-valued key types.
    pub fn key_scalar(&self) -> Option<Scalar> {
        match self {
            FieldType::Scalar(scalar) if scalar.key_kind().is_some() => Some(*scalar),
            _ => None,
        }
    }
}

/// The last segment's name and generic arguments of a path type.
fn last_segment(ty: &Type) -> Option<(String, Vec<&Type>)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let segment = path.path.segments.last()?;
    let args = match &segment.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((segment.ident.to_string(), args))
}

/// Classifies a field type, or explains why it cannot be stored: it must have one
/// canonical byte encoding, the same on every platform and in every process.
pub fn classify(ty: &Type) -> Result<FieldType, syn::Error> {
    let error = |message: String| Err(syn::Error::new(ty.span(), message));
    match ty {
        Type::Paren(inner) => classify(&inner.elem),
        Type::Group(inner) => classify(&inner.elem),
        Type::Tuple(tuple) if tuple.elems.is_empty() => {
            error("`()` holds no data: remove the field".into())
        }
        Type::Tuple(tuple) => {
            for elem in &tuple.elems {
                classify(elem)?;
            }
            Ok(FieldType::Composite)
        }
        Type::Reference(_) => error(
            "a record cannot borrow: records are stored in the database and outlive the task that made them; use an owned type (`String` for `&str`, `Vec<T>` or `Box<[T]>` for `&[T]`)".into(),
        ),
        Type::Array(_) => error("fixed-size arrays are not supported as fields: use `Box<[T]>` or `Vec<T>`".into()),
        Type::Slice(_) => error("a bare slice has no size: use `Box<[T]>` or `Vec<T>`".into()),
        Type::Path(_) => {
            let Some((name, args)) = last_segment(ty) else {
                return error("unsupported field type: use a plain type path such as `u32`, `String` or `Vec<Ident>`".into());
            };
            if let Some(scalar) = Scalar::from_name(&name) {
                return Ok(FieldType::Scalar(scalar));
            }
            match (name.as_str(), args.as_slice()) {
                ("f32" | "f64", _) => error(format!(
                    "`{name}` cannot be hashed stably or ordered (NaN, -0.0 and rounding make equal values differ); store the bits (`{}::to_bits`, as `{}`) or a fixed-point integer",
                    name,
                    if name == "f32" { "u32" } else { "u64" }
                )),
                ("usize" | "isize", _) => error(format!(
                    "`{name}` has a platform-dependent width, so its hash would differ between machines; use `{}`",
                    if name == "usize" { "u32` or `u64" } else { "i32` or `i64" }
                )),
                ("HashMap" | "HashSet", _) => error(format!(
                    "`{name}` iterates in a different order in every process, so it cannot be hashed stably; use a `Vec` of entries sorted by key"
                )),
                ("BTreeMap" | "BTreeSet", _) => {
                    error(format!("`{name}` is not supported as a field: use a `Vec` of entries sorted by key"))
                }
                ("Vec", [inner]) => Ok(FieldType::Vec(Box::new(classify(inner)?))),
                ("Option", [inner]) => Ok(FieldType::Option(Box::new(classify(inner)?))),
                ("Box", [Type::Slice(slice)]) => Ok(FieldType::BoxSlice(Box::new(classify(&slice.elem)?))),
                ("Box", [inner]) => classify(inner).map(|_| FieldType::Composite),
                _ => Ok(FieldType::Other),
            }
        }
        _ => error(
            "unsupported field type: use integers, `bool`, `char`, `Ident`, `String`, `TaskId`, `ChunkId`, other records, `Vec<T>`, `Option<T>`, `Box<[T]>` or tuples of these".into(),
        ),
    }
}

/// A span for "this type" in messages.
pub fn span_of(ty: &Type) -> Span {
    ty.span()
}
