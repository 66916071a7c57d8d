chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        partitions {
            items: "items" holds Item key (id: u32),
            items: "more-items" holds Item key (id: u32),
        }
    }
}

fn main() {}
