chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32, pairs: Vec<(Ident, Ident)>, nested: Option<Vec<u32>> },
        }
        indexes {
            by_pair on Item.pairs,
            by_nested on Item.nested,
        }
    }
}

fn main() {}
