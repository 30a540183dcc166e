//! Versions (positions of records in streams) and the order "newer" means across shards.
//!
//! Kinesis sequence numbers are comparable only within one shard. [`Lineage::compare`] orders any
//! two versions deterministically, as DESIGN §4 defines "last":
//!
//! 1. same stream and shard: by sequence number, then sub-sequence number (de-aggregated KPL
//!    records share their aggregate's sequence number; a missing one counts as lowest);
//! 2. same stream, one shard a (transitive) parent of the other: the ancestor's record is older,
//!    as every record of a parent precedes every record of its children;
//! 3. otherwise: by `arrival_ts`; on equal times the shard with more ancestors is newer (so that
//!    a child stays after its parent when all three share a millisecond with a third shard); then
//!    by stream, shard id, sequence number and sub-sequence number, so that no two distinct
//!    versions are equal.
//!
//! When arrival times never decrease along a shard and from a parent to its children (how Kinesis
//! stamps `ApproximateArrivalTimestamp`), rules 1 and 2 agree with rule 3, so the order is the
//! lexicographic order of (`arrival_ts`, ancestor count, stream, shard id, sequence number,
//! sub-sequence number): a total order. If they did decrease, rule 1 or 2 would disagree with
//! rule 3 and no order could satisfy all three; sequence numbers and lineage then take
//! precedence, and with a third shard in between the order can be cyclic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::{Record, SequenceNumber};

/// Where and when a record arrived: the version of the state a consumer derived from it.
///
/// Serialized as the `origin` member of the replay annotation:
/// `{"stream","shard_id","sequence_number","arrival_ts"}` (plus `sub_sequence_number` when set).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The stream the record arrived in.
    pub stream: String,
    /// The shard it arrived in.
    pub shard_id: String,
    /// Its sequence number in that shard.
    pub sequence_number: SequenceNumber,
    /// Its position inside an aggregated (KPL) record, when de-aggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_sequence_number: Option<u64>,
    /// When Kinesis accepted it (UTC, milliseconds).
    #[serde(with = "ts_millis")]
    pub arrival_ts: DateTime<Utc>,
}

impl Version {
    /// The version of a record read from a stream: its own position.
    pub fn of(record: &Record) -> Version {
        Version {
            stream: record.stream.to_string(),
            shard_id: record.shard_id.to_string(),
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number: record.sub_sequence_number,
            arrival_ts: record.arrival_ts,
        }
    }

    fn same_shard(&self, other: &Version) -> bool {
        self.stream == other.stream && self.shard_id == other.shard_id
    }

    fn position(&self) -> (&SequenceNumber, Option<u64>) {
        (&self.sequence_number, self.sub_sequence_number)
    }
}

/// The parent links of one stream's shards, learnt from `ListShards` (`ParentShardId`,
/// `AdjacentParentShardId`). It is what makes versions on different shards comparable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    stream: String,
    parents: BTreeMap<String, Vec<String>>,
}

impl Lineage {
    /// An empty lineage for `stream`; shards not added are taken to have no parents.
    pub fn new(stream: impl Into<String>) -> Self {
        Lineage {
            stream: stream.into(),
            parents: BTreeMap::new(),
        }
    }

    /// The stream whose shards this lineage knows.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Records `shard_id` and its parents (none, one for a split, two for a merge).
    pub fn add_shard(&mut self, shard_id: &str, parents: &[&str]) {
        let mut parents: Vec<String> = parents.iter().map(|p| (*p).to_owned()).collect();
        parents.sort();
        parents.dedup();
        self.parents.insert(shard_id.to_owned(), parents);
    }

    /// The parents of `shard_id` as added (empty when unknown).
    pub fn parents(&self, shard_id: &str) -> &[String] {
        self.parents.get(shard_id).map_or(&[], Vec::as_slice)
    }

    /// Every proper ancestor of `shard_id` (parents, their parents, …).
    pub fn ancestors(&self, shard_id: &str) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<&str> = self.parents(shard_id).iter().map(String::as_str).collect();
        while let Some(shard) = todo.pop() {
            if out.insert(shard) {
                todo.extend(self.parents(shard).iter().map(String::as_str));
            }
        }
        out
    }

    /// Whether `ancestor` is a proper ancestor of `shard_id` in this stream.
    pub fn is_ancestor(&self, ancestor: &str, shard_id: &str) -> bool {
        self.ancestors(shard_id).contains(ancestor)
    }

    /// Orders two versions as the module documentation describes; `Greater` means `a` is newer.
    pub fn compare(&self, a: &Version, b: &Version) -> Ordering {
        if a.same_shard(b) {
            return a.position().cmp(&b.position());
        }
        let ancestors = |v: &Version| {
            if v.stream == self.stream {
                self.ancestors(&v.shard_id)
            } else {
                BTreeSet::new()
            }
        };
        let (of_a, of_b) = (ancestors(a), ancestors(b));
        if a.stream == self.stream && of_b.contains(a.shard_id.as_str()) {
            return Ordering::Less;
        }
        if b.stream == self.stream && of_a.contains(b.shard_id.as_str()) {
            return Ordering::Greater;
        }
        (
            a.arrival_ts,
            of_a.len(),
            &a.stream,
            &a.shard_id,
            a.position(),
        )
            .cmp(&(
                b.arrival_ts,
                of_b.len(),
                &b.stream,
                &b.shard_id,
                b.position(),
            ))
    }
}

/// Serde for timestamps as the envelope writes them (RFC 3339, UTC, milliseconds).
pub(crate) mod ts_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::record::{format_ts, parse_ts};

    pub(crate) fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ts(ts))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        parse_ts(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ts_from_millis;

    fn v(stream: &str, shard: &str, seq: u64, ms: i64) -> Version {
        Version {
            stream: stream.into(),
            shard_id: shard.into(),
            sequence_number: SequenceNumber::from_u64(seq),
            sub_sequence_number: None,
            arrival_ts: ts_from_millis(ms),
        }
    }

    fn lineage() -> Lineage {
        let mut l = Lineage::new("orders");
        l.add_shard("s0", &[]);
        l.add_shard("s1", &[]);
        l.add_shard("s2", &["s0"]); // split of s0
        l.add_shard("s3", &["s2", "s1"]); // merge of s2 and s1
        l
    }

    #[test]
    fn within_a_shard_the_sequence_number_decides() {
        let l = lineage();
        // Later sequence number wins even with an earlier (skewed) arrival time.
        assert_eq!(
            l.compare(&v("orders", "s0", 10, 5), &v("orders", "s0", 9, 7)),
            Ordering::Greater
        );
        let mut sub = v("orders", "s0", 9, 7);
        sub.sub_sequence_number = Some(2);
        assert_eq!(l.compare(&sub, &v("orders", "s0", 9, 7)), Ordering::Greater);
        assert_eq!(
            l.compare(&v("orders", "s0", 9, 7), &v("orders", "s0", 9, 7)),
            Ordering::Equal
        );
    }

    #[test]
    fn parents_precede_children_whatever_the_ids_and_times() {
        let l = lineage();
        assert!(l.is_ancestor("s0", "s3"));
        assert!(!l.is_ancestor("s3", "s0"));
        // Same millisecond: the shard ids would put s3 after s0 anyway; s2 vs s0 too. Check a
        // child whose id sorts first: lineage, not the id, decides.
        let mut l2 = Lineage::new("orders");
        l2.add_shard("b-parent", &[]);
        l2.add_shard("a-child", &["b-parent"]);
        assert_eq!(
            l2.compare(
                &v("orders", "a-child", 1, 100),
                &v("orders", "b-parent", 9, 100)
            ),
            Ordering::Greater
        );
        assert_eq!(
            l.compare(&v("orders", "s0", 1, 100), &v("orders", "s3", 1, 100)),
            Ordering::Less
        );
    }

    #[test]
    fn unrelated_shards_and_streams_go_by_arrival_time_then_ids() {
        let l = lineage();
        assert_eq!(
            l.compare(&v("orders", "s1", 99, 5), &v("orders", "s2", 1, 6)),
            Ordering::Less
        );
        // A shard of another stream with the same id is not an ancestor.
        assert_eq!(
            l.compare(&v("other", "s0", 1, 6), &v("orders", "s3", 1, 5)),
            Ordering::Greater
        );
        assert_eq!(
            l.compare(&v("orders", "s3", 1, 5), &v("other", "s0", 1, 6)),
            Ordering::Less
        );
        // Equal times: ordered by stream, shard, sequence number; never equal.
        assert_eq!(
            l.compare(&v("orders", "s1", 1, 5), &v("orders", "s2", 1, 5)),
            Ordering::Less
        );
        assert_eq!(
            l.compare(&v("a", "s9", 1, 5), &v("orders", "s1", 1, 5)),
            Ordering::Less
        );
    }

    #[test]
    fn equal_times_keep_children_after_parents_against_a_third_shard() {
        // s2 is a child of s0; s1 is unrelated; all three in the same millisecond. Without the
        // ancestor count, the ids would order s0 < s1 (rule 3) and s1 < s2 would depend on ids
        // alone; "s2 after s0" (rule 2) must hold for the order to be transitive whatever the ids.
        let mut l = Lineage::new("orders");
        l.add_shard("z-parent", &[]);
        l.add_shard("m-other", &[]);
        l.add_shard("a-child", &["z-parent"]);
        let (parent, other, child) = (
            v("orders", "z-parent", 1, 5),
            v("orders", "m-other", 1, 5),
            v("orders", "a-child", 1, 5),
        );
        assert_eq!(l.compare(&child, &parent), Ordering::Greater);
        assert_eq!(l.compare(&parent, &other), Ordering::Greater);
        assert_eq!(l.compare(&child, &other), Ordering::Greater);
    }

    #[test]
    fn versions_serialize_as_the_origin_annotation() {
        let version = v("orders", "s0", 42, 1_764_064_800_123);
        let text = serde_json::to_string(&version).unwrap();
        assert_eq!(
            text,
            r#"{"stream":"orders","shard_id":"s0","sequence_number":"42","arrival_ts":"2025-11-25T10:00:00.123Z"}"#
        );
        assert_eq!(serde_json::from_str::<Version>(&text).unwrap(), version);
    }
}
