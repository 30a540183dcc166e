//! KPL de-aggregation (`flux_stages::source::kpl::deaggregate`).
//!
//! The input is tried as a Kinesis payload as it is (magic, checksum and body as they come) and
//! as the protobuf body of an aggregate with a correct magic and checksum. Either way the record
//! comes back unchanged (no magic), split into user records that share its position, or rejected
//! with a reason and the record as received; and the user records, aggregated again, split into
//! the same keys and payloads.
#![no_main]

use flux_stages::record::Record;
use flux_stages::source::kpl::{MAGIC, aggregate, deaggregate, is_aggregated};
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};

fuzz_target!(|data: &[u8]| {
    check(flux_fuzz::record(data));
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(data);
    framed.extend_from_slice(&Md5::digest(data));
    check(flux_fuzz::record(&framed));
});

fn check(record: Record) {
    let original = record.clone();
    match deaggregate(record) {
        Ok(users) if !is_aggregated(&original.data) => assert_eq!(users, vec![original]),
        Ok(users) => {
            assert!(!users.is_empty());
            for (i, u) in users.iter().enumerate() {
                assert_eq!(u.sub_sequence_number, Some(i as u64));
                assert_eq!(u.stream, original.stream);
                assert_eq!(u.shard_id, original.shard_id);
                assert_eq!(u.sequence_number, original.sequence_number);
                assert_eq!(u.arrival_ts, original.arrival_ts);
            }
            let pairs: Vec<(&str, &[u8])> = users
                .iter()
                .map(|u| (u.partition_key.as_str(), u.data.as_ref()))
                .collect();
            let again = deaggregate(flux_fuzz::record(&aggregate(&pairs)))
                .unwrap_or_else(|r| panic!("a built aggregate is rejected: {}", r.reason));
            let again: Vec<(&str, &[u8])> = again
                .iter()
                .map(|u| (u.partition_key.as_str(), u.data.as_ref()))
                .collect();
            assert_eq!(
                again, pairs,
                "aggregate → deaggregate changed the user records"
            );
        }
        Err(rejected) => {
            assert!(
                is_aggregated(&original.data),
                "only aggregates are rejected"
            );
            assert!(!rejected.reason.is_empty());
            assert_eq!(
                rejected.record, original,
                "a rejected record comes back as received"
            );
        }
    }
}
