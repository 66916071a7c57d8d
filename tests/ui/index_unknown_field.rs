chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32, name: String },
        }
        indexes {
            by_title on Item.title,
        }
    }
}

fn main() {}
