chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32, id: f32 },
            Item { weight: usize },
        }
        partitions {
            items holds Item, Ghost key (),
        }
        indexes {
            by_id on Item.missing,
        }
    }
}

fn main() {}
