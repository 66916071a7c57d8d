#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opaque;

chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Item { id: u32, extra: Opaque },
        }
    }
}

fn main() {}
