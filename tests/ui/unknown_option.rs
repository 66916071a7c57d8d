chunkdb::chunk_schema! {
    #[chunkdb(krate = chunkdb)]
    pub schema Lang {
        records {
            Item { id: u32 },
        }
    }
}

fn main() {}
