chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
            Item { name: String },
        }
    }
}

fn main() {}
