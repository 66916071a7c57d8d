chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        partitions {
            items holds Item, Item key (id: u32),
        }
    }
}

fn main() {}
