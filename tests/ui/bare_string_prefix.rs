//! A bare string as a key prefix is refused: `("c",)` (the whole string) and
//! `KeyPrefix::str_start("c")` (every string starting with it) select different
//! records, and the error says which to write.

use chunkdb::{Database, Ident};

chunkdb::chunk_schema! {
    pub schema Notes {
        records {
            Note { text: String },
        }
    }
}

fn main() {
    let db = Database::<Notes>::new();
    let snapshot = db.snapshot();
    let _ = snapshot.query(Ident::named("anywhere")).le("c").execute();
}
