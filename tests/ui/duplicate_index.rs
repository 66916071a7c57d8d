chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32, name: String },
        }
        indexes {
            lookup on Item.id,
            lookup on Item.name,
        }
    }
}

fn main() {}
