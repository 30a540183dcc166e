//! `flux-engine schema`: the JSON Schema of the pipeline format.

use super::EXIT_OK;

pub(crate) fn schema() -> i32 {
    let schema = crate::config::schema::pipeline_schema();
    outln!(
        "{}",
        serde_json::to_string_pretty(&schema).expect("a JSON value serializes")
    );
    EXIT_OK
}
