//! Compile-fail cases pin the message of every schema mistake (`tests/ui/*.rs` with
//! their `.stderr`); pass cases compile the full syntax (`tests/ui/pass/*.rs`).
//! Regenerate expectations after a deliberate change with `TRYBUILD=overwrite`.

#[test]
fn schema_mistakes_and_full_syntax() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
