//! Raw identifiers and a private schema (whose unused generated items must not warn).

#![deny(warnings)]

mod private {
    chunkdb::chunk_schema! {
        schema Hidden {
            records {
                r#Item { r#type: String, r#ref: u32 },
            }
            partitions {
                r#items holds r#Item key (r#type: String, r#ref: u32),
            }
            indexes {
                r#by_type on r#Item.r#type,
            }
        }
    }

    pub fn used() -> usize {
        let db = chunkdb::Database::<Hidden>::new();
        let mut writer = db.writer("t");
        writer.put(Hidden::ITEMS, ItemsKey::new("fn", 1), Item { r#type: "fn".into(), r#ref: 1 }).unwrap();
        writer.commit().unwrap();
        let snapshot = db.snapshot();
        let by_prefix = snapshot.partition(Hidden::ITEMS).begins_with(ItemsKey::prefix().type_starts_with("f")).count();
        by_prefix.unwrap() + snapshot.index(Hidden::BY_TYPE).get("fn").unwrap().len()
    }
}

fn main() {
    assert_eq!(private::used(), 2);
}
