chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        partitions {
            items: "items" key (id: u32),
        }
    }
}

fn main() {}
