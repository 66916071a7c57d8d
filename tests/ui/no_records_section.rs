chunkdb::chunk_schema! {
    pub schema Lang {
        partitions {
            items holds Item key (id: u32),
        }
    }
}

fn main() {}
