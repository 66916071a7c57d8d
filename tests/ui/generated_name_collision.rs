chunkdb::chunk_schema! {
    pub schema Lang {
        records {
            FooBar { id: u32 },
            Foo_bar { id: u32 },
        }
        partitions {
            a_b holds FooBar key (id: u32),
            aB holds FooBar key (id: u32),
        }
    }
}

fn main() {}
