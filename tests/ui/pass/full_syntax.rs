//! Every part of the syntax in one declaration, compiled with warnings denied.

#![deny(warnings)]

use chunkdb::{Database, Ident};

/// A user type with its own stable hash, used as a field: archivable (through
/// chunkdb's re-export of rkyv), since chunks keep their records archived, with
/// `Debug`, `PartialEq` and `Eq` on the archived form too (record views derive them),
/// and the same stable hash for both forms.
#[derive(Clone, Debug, PartialEq, Eq)]
#[derive(chunkdb::rkyv::Archive, chunkdb::rkyv::Serialize, chunkdb::rkyv::Deserialize)]
#[rkyv(crate = chunkdb::rkyv, derive(Debug, PartialEq, Eq))]
pub struct Span {
    start: u32,
    end: u32,
}

impl chunkdb::StableHash for Span {
    fn stable_hash(&self, hasher: &mut chunkdb::StableHasher) {
        hasher.write_u32(self.start);
        hasher.write_u32(self.end);
    }
}

impl chunkdb::StableHash for ArchivedSpan {
    fn stable_hash(&self, hasher: &mut chunkdb::StableHasher) {
        hasher.write_u32(self.start.to_native());
        hasher.write_u32(self.end.to_native());
    }
}

chunkdb::chunk_schema! {
    /// Docs on the schema.
    ///
    /// Several lines of them.
    pub schema Everything {
        records {
            /// Every scalar type.
            Scalars {
                /// Documented field.
                a: u8, b: u16, c: u32, d: u64, e: i8, f: i16, g: i32, h: i64,
                flag: bool, letter: char, name: Ident, text: String,
                task: TaskId, chunk: ChunkId,
            },
            /// Nested types.
            Nested {
                list: Vec<Ident>,
                maybe: Option<String>,
                boxed: Box<[u32]>,
                pairs: Vec<(Ident, Option<u8>)>,
                deep: Option<Vec<Box<[String]>>>,
                inner: Box<Scalars>,
                other: Vec<Scalars>,
                span: Span,
            },
            /// A record without fields.
            Marker {},
        }
        partitions {
            /// Key string given.
            scalars: "everything/scalars" holds Scalars key (a: u8, h: i64, flag: bool, name: Ident, text: String),
            /// Key string defaults to the name; trailing comma after the kinds.
            mixed holds Nested, Marker, key (id: u64,),
        }
        indexes {
            /// One field.
            by_name on Scalars.name,
            by_text on Scalars.text, Nested.maybe,
            by_list on Nested.list,
            by_boxed on Nested.boxed,
        }
    }
}

fn main() {
    let db = Database::<Everything>::new();
    let mut writer = db.writer("t");
    let scalars = Scalars {
        a: 1, b: 2, c: 3, d: 4, e: -1, f: -2, g: -3, h: -4,
        flag: true, letter: 'x', name: Ident::new("n"), text: "t".into(),
        task: chunkdb::TaskId::new("task"), chunk: chunkdb::ChunkId::from_raw(7),
    };
    let key = ScalarsKey::new(1, -4, true, Ident::new("n"), "t");
    writer.put(Everything::SCALARS, key.clone(), scalars.clone()).unwrap();
    let nested = Nested {
        list: vec![Ident::new("l")],
        maybe: Some("t".into()),
        boxed: vec![9].into(),
        pairs: vec![(Ident::new("p"), None)],
        deep: Some(vec![vec!["d".to_string()].into()]),
        inner: Box::new(scalars.clone()),
        other: vec![scalars],
        span: Span { start: 0, end: 1 },
    };
    writer.put(Everything::MIXED, MixedKey::new(1), nested).unwrap();
    writer.put(Everything::MIXED, MixedKey::new(2), Marker {}).unwrap();
    writer.commit().unwrap();

    let snapshot = db.snapshot();
    assert_eq!(snapshot.index(Everything::BY_TEXT).get("t").unwrap().len(), 2);
    assert_eq!(snapshot.index(Everything::BY_BOXED).get(&9u32).unwrap().len(), 1);
    assert_eq!(snapshot.partition(Everything::SCALARS).exact(key).count().unwrap(), 1);
    let prefix = ScalarsKey::prefix().a(1).h(-4).flag(true).name(Ident::new("n")).text_starts_with("");
    assert_eq!(snapshot.partition(Everything::SCALARS).begins_with(prefix).count().unwrap(), 1);
    let hit = snapshot.partition(Everything::MIXED).exact(MixedKey::new(2)).execute().unwrap();
    assert!(hit.first().unwrap().record().as_marker().is_some());
}
