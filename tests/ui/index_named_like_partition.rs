chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        partitions {
            items: "by_id" holds Item key (id: u32),
        }
        indexes {
            by_id on Item.id,
        }
    }
}

fn main() {}
