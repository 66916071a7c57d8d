chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            LangRecord { id: u32 },
            ItemsKey { id: u32 },
            Lang { id: u32 },
        }
        partitions {
            items holds LangRecord key (id: u32),
        }
    }
}

fn main() {}
