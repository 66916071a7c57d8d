//! The reference-model test on the runtime's hand-written open schema.

#[path = "support/model_core.rs"]
mod model_core;

use chunkdb_database::reference::TextLang;
use model_core::{ModelLang, check_against_model, check_against_model_persisted};

impl ModelLang for TextLang {
    fn record(value: String) -> String {
        value
    }

    fn value(record: &str) -> String {
        record.to_string()
    }
}

#[test]
fn database_matches_reference_model() {
    let total = check_against_model::<TextLang>(256, 0x00C0_FFEE);
    // Every case has at least 400 operations: 256 * 400 = 102,400.
    assert!(total >= 100_000, "ran {total} operations");
}

#[test]
fn persisted_database_matches_reference_model_across_reopens() {
    let total = check_against_model_persisted::<TextLang>(24, 0x0D15_C0DE);
    assert!(total >= 24 * 400, "ran {total} operations");
}
