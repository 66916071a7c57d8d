chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            #[derive(Hash)]
            Item { id: u32 },
        }
    }
}

fn main() {}
