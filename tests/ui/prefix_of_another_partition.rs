use chunkdb::Database;

chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Symbol { name: Ident },
            Alias { target: Ident },
            Diagnostic { message: String },
        }
        partitions {
            symbols holds Symbol, Alias key (file: Ident, path: String),
            diagnostics holds Diagnostic key (file: Ident, seq: u32),
        }
    }
}

fn main() {
    let db = Database::<Lang>::new();
    let file = chunkdb::Ident::new("a.rs");
    let mut writer = db.writer("t");
    drop(writer);
    let snapshot = db.snapshot();
    let _ = snapshot.partition(Lang::SYMBOLS).begins_with(DiagnosticsKey::prefix().file(file)).execute();
}
