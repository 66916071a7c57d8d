chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Vec { id: u32 },
            Ident { id: u32 },
            Item { list: Vec<u32> },
        }
    }
}

fn main() {}
