chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32, id: u64 },
        }
    }
}

fn main() {}
