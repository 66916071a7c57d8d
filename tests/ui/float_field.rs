chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            Point { x: f64, y: f32 },
        }
    }
}

fn main() {}
