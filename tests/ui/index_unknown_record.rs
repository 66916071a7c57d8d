chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        indexes {
            by_id on Thing.id,
        }
    }
}

fn main() {}
