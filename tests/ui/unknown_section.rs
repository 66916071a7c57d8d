chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        partition {
            items holds Item key (id: u32),
        }
    }
}

fn main() {}
