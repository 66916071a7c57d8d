chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
            Named { id: String },
        }
        indexes {
            by_id on Item.id, Named.id,
        }
    }
}

fn main() {}
