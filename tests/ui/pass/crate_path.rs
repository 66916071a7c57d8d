//! `#[chunkdb(crate = …)]`: generated code reaches the runtime through another path,
//! for crates that re-export chunkdb or rename the dependency.

#![deny(warnings)]

/// A facade of the user's own that re-exports chunkdb.
pub mod facade {
    pub use chunkdb::*;
}

facade::chunk_schema! {
    #[chunkdb(crate = crate::facade)]
    /// Reached through `crate::facade`.
    pub schema Tiny {
        records {
            Item { id: u32 },
        }
        partitions {
            items holds Item key (id: u32),
        }
    }
}

fn main() {
    let db = facade::Database::<Tiny>::new();
    let mut writer = db.writer("t");
    writer.put(Tiny::ITEMS, ItemsKey::new(1), Item { id: 1 }).unwrap();
    writer.commit().unwrap();
    assert_eq!(db.snapshot().partition(Tiny::ITEMS).count().unwrap(), 1);
}
