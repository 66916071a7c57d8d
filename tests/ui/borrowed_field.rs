chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { name: &'static str, parts: [u8; 4], all: (), },
        }
    }
}

fn main() {}
