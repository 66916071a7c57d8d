chunkdb::chunk_schema! {
    pub schema Lang {
        records {}
    }
}

fn main() {}
