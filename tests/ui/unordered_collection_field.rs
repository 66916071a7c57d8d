chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Scope { names: std::collections::HashMap<String, u32>, seen: HashSet<u32>, sorted: BTreeMap<u32, u32> },
        }
    }
}

fn main() {}
