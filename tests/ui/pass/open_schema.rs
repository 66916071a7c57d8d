//! A schema without partitions is open: any partition key, any sort key.

#![deny(warnings)]

use chunkdb::{Database, Ident, KeyPrefix};

chunkdb::chunk_schema! {
    pub schema Notes {
        records {
            Note { text: String },
        }
    }
}

fn main() {
    let db = Database::<Notes>::new();
    let mut writer = db.writer("t");
    let anywhere = Ident::named("anywhere");
    writer.insert(anywhere, "file|0001", Note { text: "hello".into() }).unwrap();
    writer.insert(anywhere, (7u32, "x"), Note { text: "typed".into() }).unwrap();
    writer.commit().unwrap();
    assert_eq!(db.snapshot().query(anywhere).begins_with(KeyPrefix::str_start("file|")).count().unwrap(), 1);
}
