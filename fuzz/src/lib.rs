//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use bytes::Bytes;
use flux_stages::record::{Record, SequenceNumber, ts_from_millis};

/// A record of stream `orders`, shard `shardId-000000000000`, carrying `data`.
pub fn record(data: &[u8]) -> Record {
    Record {
        stream: "orders".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: SequenceNumber::parse("49590338271490256608559692538361571095")
            .expect("a legal sequence number"),
        sub_sequence_number: None,
        partition_key: "c-17".into(),
        arrival_ts: ts_from_millis(1_764_064_800_123),
        data: Bytes::copy_from_slice(data),
        annotations: None,
        probed: None,
    }
}

/// Splits an input at its first NUL byte: `(head, Some(tail))`, or `(input, None)` without one.
/// Seeds stay plain files (a pipeline, a payload), and the fuzzer can add a second part.
pub fn split_nul(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}
