//! KPL aggregation: the Kinesis Producer Library packs many user records into one Kinesis record.
//!
//! An aggregated record is the 4-byte magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, and the
//! 16-byte MD5 of that protobuf body. Each user record inside carries its own partition key and
//! data; after de-aggregation they share the Kinesis record's sequence number and arrival time and
//! are told apart by `sub_sequence_number` (their index in the aggregate), as the KCL does.
//!
//! A record without the magic prefix is an ordinary record and passes unchanged. A record with
//! the prefix whose checksum or body does not decode is corrupt: [`deaggregate`] returns it with
//! the reason, for the stage's dead-letter route.

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use crate::record::Record;
use crate::stage::Rejected;

/// The 4 bytes every KPL aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// The protobuf body of an aggregated record (KPL's `messages.proto`).
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    /// Partition keys, referenced by index from the user records.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Explicit hash keys, referenced by index from the user records.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records, in the order they were put.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<UserRecord>,
}

/// One user record inside an aggregate.
#[derive(Clone, PartialEq, Message)]
pub struct UserRecord {
    /// Index into [`AggregatedRecord::partition_key_table`].
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index into [`AggregatedRecord::explicit_hash_key_table`].
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// The payload.
    #[prost(bytes = "bytes", required, tag = "3")]
    pub data: Bytes,
    /// KPL tags (unused by the KPL itself; kept for compatibility).
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A KPL tag.
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    /// The tag's key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// The tag's value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// Whether a payload is (meant to be) a KPL aggregate.
pub fn is_aggregated(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Splits an aggregated record into its user records (sub-sequence numbers 0, 1, …); an ordinary
/// record comes back alone and unchanged. A corrupt aggregate comes back rejected, with the reason.
pub fn deaggregate(record: Record) -> Result<Vec<Record>, Box<Rejected>> {
    if !is_aggregated(&record.data) {
        return Ok(vec![record]);
    }
    match decode(&record.data) {
        Ok(agg) => split(record, agg),
        Err(reason) => Err(Box::new(Rejected { record, reason })),
    }
}

fn decode(data: &[u8]) -> Result<AggregatedRecord, String> {
    if data.len() < MAGIC.len() + DIGEST_LEN {
        return Err(format!(
            "KPL aggregate of {} bytes is shorter than its magic and checksum",
            data.len()
        ));
    }
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return Err("KPL aggregate checksum (MD5) does not match its body".into());
    }
    AggregatedRecord::decode(body).map_err(|e| format!("KPL aggregate body does not decode: {e}"))
}

fn split(record: Record, agg: AggregatedRecord) -> Result<Vec<Record>, Box<Rejected>> {
    let mut out = Vec::with_capacity(agg.records.len());
    for (i, user) in agg.records.into_iter().enumerate() {
        let Some(key) = usize::try_from(user.partition_key_index)
            .ok()
            .and_then(|k| agg.partition_key_table.get(k))
        else {
            let reason = format!(
                "KPL aggregate user record {i} refers to partition key {} of {}",
                user.partition_key_index,
                agg.partition_key_table.len()
            );
            return Err(Box::new(Rejected { record, reason }));
        };
        out.push(Record {
            stream: record.stream.clone(),
            shard_id: record.shard_id.clone(),
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number: Some(i as u64),
            partition_key: key.as_str().into(),
            arrival_ts: record.arrival_ts,
            data: user.data,
            annotations: record.annotations.clone(),
            probed: None,
        });
    }
    if out.is_empty() {
        return Err(Box::new(Rejected {
            record,
            reason: "KPL aggregate holds no user records".into(),
        }));
    }
    Ok(out)
}

/// Builds a KPL aggregated payload from `(partition key, data)` pairs, as the KPL would (used by
/// tests and tools that need aggregates; the engine itself only reads them).
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut keys: Vec<String> = Vec::new();
    let mut users = Vec::with_capacity(records.len());
    for (key, data) in records {
        let index = match keys.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                keys.push((*key).to_owned());
                keys.len() - 1
            }
        };
        users.push(UserRecord {
            partition_key_index: index as u64,
            explicit_hash_key_index: None,
            data: Bytes::copy_from_slice(data),
            tags: Vec::new(),
        });
    }
    let body = AggregatedRecord {
        partition_key_table: keys,
        explicit_hash_key_table: Vec::new(),
        records: users,
    }
    .encode_to_vec();
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SequenceNumber, ts_from_millis};
    use std::sync::Arc;

    fn record(data: Vec<u8>) -> Record {
        Record {
            stream: Arc::from("s"),
            shard_id: Arc::from("shardId-000000000000"),
            sequence_number: SequenceNumber::from_u64(42),
            sub_sequence_number: None,
            partition_key: "aggregate-key".into(),
            arrival_ts: ts_from_millis(1_700_000_000_000),
            data: Bytes::from(data),
            annotations: None,
            probed: None,
        }
    }

    #[test]
    fn splits_an_aggregate_into_user_records_in_order() {
        let agg = aggregate(&[("a", b"{\"n\":1}"), ("b", b"\x00\xff"), ("a", b"")]);
        let out = deaggregate(record(agg)).expect("valid aggregate");
        let got: Vec<_> = out
            .iter()
            .map(|r| {
                (
                    r.partition_key.as_str(),
                    r.data.as_ref(),
                    r.sub_sequence_number,
                    r.sequence_number.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", &b"{\"n\":1}"[..], Some(0), "42"),
                ("b", &b"\x00\xff"[..], Some(1), "42"),
                ("a", &b""[..], Some(2), "42"),
            ]
        );
    }

    #[test]
    fn ordinary_records_pass_unchanged() {
        let out = deaggregate(record(b"{\"plain\":true}".to_vec())).expect("ordinary");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sub_sequence_number, None);
        assert_eq!(out[0].partition_key, "aggregate-key");
    }

    #[test]
    fn corrupt_aggregates_are_refused_with_the_reason() {
        let mut agg = aggregate(&[("a", b"x")]);
        let last = agg.len() - 1;
        agg[last] ^= 1;
        let reason = deaggregate(record(agg)).expect_err("bad checksum").reason;
        assert!(reason.contains("checksum"), "{reason}");

        let reason = deaggregate(record(MAGIC.to_vec()))
            .expect_err("too short")
            .reason;
        assert!(reason.contains("shorter"), "{reason}");

        // A body that passes the checksum but is not protobuf.
        let body = [0xFFu8, 0xFF, 0xFF];
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&body);
        bad.extend_from_slice(&Md5::digest(body));
        let reason = deaggregate(record(bad)).expect_err("not protobuf").reason;
        assert!(reason.contains("does not decode"), "{reason}");

        // A user record pointing past the key table.
        let body = AggregatedRecord {
            partition_key_table: vec!["k".into()],
            explicit_hash_key_table: vec![],
            records: vec![UserRecord {
                partition_key_index: 3,
                explicit_hash_key_index: None,
                data: Bytes::from_static(b"x"),
                tags: vec![],
            }],
        }
        .encode_to_vec();
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&body);
        bad.extend_from_slice(&Md5::digest(&body));
        let reason = deaggregate(record(bad)).expect_err("bad index").reason;
        assert!(reason.contains("partition key 3"), "{reason}");
    }
}
