chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32 },
        }
        partitions {
            items holds Item key (tags: Vec<Ident>),
            measures holds Item key (weight: f64),
            chars holds Item key (initial: char),
        }
    }
}

fn main() {}
