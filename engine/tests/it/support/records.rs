//! Records the tests write and put, in one place: the sample data, envelope lines as the
//! archive stores them, and the small JSON payloads put into streams.

use std::path::PathBuf;

use super::repo_root;

/// The sample orders (`examples/orders.jsonl`): 2995 JSON lines and 5 that are not JSON.
pub(crate) fn sample_orders() -> PathBuf {
    repo_root().join("examples/orders.jsonl")
}

/// The quickstart pipeline (`pipelines/quickstart.toml`).
pub(crate) fn quickstart() -> PathBuf {
    repo_root().join("pipelines/quickstart.toml")
}

/// The payload `{"n":N}`.
pub(crate) fn n_payload(n: impl std::fmt::Display) -> Vec<u8> {
    format!(r#"{{"n":{n}}}"#).into_bytes()
}

/// One envelope line with any payload as `data_b64`, partition key `k`.
pub(crate) fn envelope_b64(stream: &str, shard: &str, seq: &str, at: &str, data: &[u8]) -> String {
    use base64::Engine as _;
    serde_json::json!({
        "stream": stream,
        "shard_id": shard,
        "sequence_number": seq,
        "partition_key": "k",
        "arrival_ts": at,
        "data_b64": base64::engine::general_purpose::STANDARD.encode(data),
    })
    .to_string()
}

/// One envelope line with a JSON payload embedded as `data`, byte for byte.
pub(crate) fn envelope_json(
    stream: &str,
    shard: &str,
    seq: impl std::fmt::Display,
    key: &str,
    at: &str,
    data: &str,
) -> String {
    format!(
        r#"{{"stream":"{stream}","shard_id":"{shard}","sequence_number":"{seq}","partition_key":"{key}","arrival_ts":"{at}","data":{data}}}"#
    )
}
