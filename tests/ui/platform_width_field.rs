chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Span { start: usize, delta: isize },
        }
    }
}

fn main() {}
