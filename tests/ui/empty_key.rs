chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        partitions {
            items holds Item key (),
        }
    }
}

fn main() {}
