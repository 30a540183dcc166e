//! PutRecords batches within the API limits, built so that per-key order survives partial
//! failures.
//!
//! Kinesis processes the entries of one PutRecords call independently: an early entry can fail
//! (throttled, internal error) while a later one succeeds. Two records of one partition key in
//! the same call could therefore land out of order, and no retry can undo that. So a batch holds
//! **at most one record per partition key**: [`next_batch`] takes pending entries in order and,
//! once a key is in the batch (or was passed over), leaves that key's later entries pending, in
//! order, for a later batch. The sink retries a batch's failed entries until they succeed before
//! it builds the next batch, so for two records `a` before `b` of one key, `a` is acknowledged
//! before `b` is sent, and Kinesis numbers `b` after `a` on their shard.

use std::collections::{HashSet, VecDeque};

use crate::record::Record;

/// Largest record Kinesis accepts: data plus partition key, 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Most entries in one PutRecords call.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Largest PutRecords call: data plus partition keys of all entries, 5 MiB.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Longest partition key, in Unicode characters.
pub const MAX_KEY_CHARS: usize = 256;

/// One record on its way to Kinesis.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record (its payload is what is sent).
    pub record: Record,
    /// The partition key sent.
    pub key: String,
    /// The explicit hash key sent, if any.
    pub explicit: Option<u128>,
    /// Index of the target shard in the sink's shard map.
    pub shard: usize,
}

impl Entry {
    /// What the entry counts against the size limits: data plus partition key.
    pub fn size(&self) -> usize {
        self.record.data.len() + self.key.len()
    }
}

/// Checks one record against the API's limits; the message says which limit.
pub fn check(data_len: usize, key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the partition key is empty".into());
    }
    let chars = key.chars().count();
    if chars > MAX_KEY_CHARS {
        return Err(format!(
            "the partition key has {chars} characters; Kinesis allows {MAX_KEY_CHARS}"
        ));
    }
    let size = data_len + key.len();
    if size > MAX_RECORD_BYTES {
        return Err(format!(
            "record too large for Kinesis: {size} bytes of data and partition key; the limit is {MAX_RECORD_BYTES} (1 MiB)"
        ));
    }
    Ok(())
}

/// Batch limits (already validated against the API's).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries per call.
    pub records: usize,
    /// Most bytes (data plus keys) per call.
    pub bytes: usize,
}

/// Takes the next batch from the front of `pending`: entries in order, at most one per partition
/// key, within `limits`. Looks at no more than `scan` entries. Entries left behind keep their
/// order. A pending queue that is not empty always yields at least one entry.
pub fn next_batch(pending: &mut VecDeque<Entry>, limits: Limits, scan: usize) -> Vec<Entry> {
    next_batch_capped(pending, limits, scan, &[])
}

/// What one call may carry for one shard: a second of its current rate.
#[derive(Debug, Clone, Copy)]
pub struct ShardCap {
    /// Most entries for the shard.
    pub records: usize,
    /// Most bytes for the shard.
    pub bytes: usize,
}

/// [`next_batch`], also keeping each shard's entries within `caps[shard]` (shards without a
/// cap are not limited), so a call never carries more than a second of a shard's rate.
pub fn next_batch_capped(
    pending: &mut VecDeque<Entry>,
    limits: Limits,
    scan: usize,
    caps: &[ShardCap],
) -> Vec<Entry> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    let mut per_shard: Vec<(usize, usize)> = vec![(0, 0); caps.len()];
    let mut keys: HashSet<String> = HashSet::new();
    let mut left = VecDeque::new();
    let mut looked = 0usize;
    while let Some(e) = pending.pop_front() {
        looked += 1;
        let shard_fits = caps.get(e.shard).is_none_or(|cap| {
            let (n, b) = per_shard[e.shard];
            n < cap.records && (n == 0 || b + e.size() <= cap.bytes)
        });
        let fits = shard_fits && batch.len() < limits.records && bytes + e.size() <= limits.bytes;
        // A key seen before in this scan keeps its later entries pending, taken or not.
        let fresh = keys.insert(e.key.clone());
        if fresh && (fits || batch.is_empty()) {
            bytes += e.size();
            if let Some(used) = per_shard.get_mut(e.shard) {
                used.0 += 1;
                used.1 += e.size();
            }
            batch.push(e);
        } else {
            left.push_back(e);
        }
        if batch.len() >= limits.records || looked >= scan {
            break;
        }
    }
    left.append(pending);
    *pending = left;
    batch
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::SequenceNumber;
    use bytes::Bytes;

    /// A record of `size` payload bytes, numbered `n`, with key `key`.
    pub(crate) fn record(n: u64, key: &str, data: Vec<u8>) -> Record {
        Record {
            stream: "orders".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: SequenceNumber::from_u64(n),
            sub_sequence_number: None,
            partition_key: key.into(),
            arrival_ts: crate::record::ts_from_millis(1_000 * n as i64),
            data: Bytes::from(data),
            annotations: None,
            probed: None,
        }
    }

    fn entry(key: &str, n: usize, size: usize) -> Entry {
        let record = record(n as u64, key, vec![b'x'; size]);
        Entry {
            record,
            key: key.into(),
            explicit: None,
            shard: 0,
        }
    }

    fn seqs(batch: &[Entry]) -> Vec<String> {
        batch
            .iter()
            .map(|e| e.record.sequence_number.as_str().to_owned())
            .collect()
    }

    const API: Limits = Limits {
        records: MAX_BATCH_RECORDS,
        bytes: MAX_BATCH_BYTES,
    };

    #[test]
    fn records_over_one_mib_with_their_key_are_refused() {
        assert!(check(MAX_RECORD_BYTES - 3, "abc").is_ok());
        let e = check(MAX_RECORD_BYTES - 2, "abc").unwrap_err();
        assert!(e.contains("1048577 bytes"), "{e}");
        assert!(check(10, "").is_err());
        assert!(check(10, &"k".repeat(257)).is_err());
        assert!(check(10, &"é".repeat(256)).is_ok());
    }

    #[test]
    fn batches_hold_at_most_500_records_and_5_mib() {
        let mut pending: VecDeque<Entry> =
            (0..1200).map(|i| entry(&format!("k{i}"), i, 10)).collect();
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let b = next_batch(&mut pending, API, usize::MAX);
            (!b.is_empty()).then_some(b.len())
        })
        .collect();
        assert_eq!(sizes, vec![500, 500, 200]);

        // Records of exactly 1 MiB with their keys: five fill 5 MiB exactly.
        let mut pending: VecDeque<Entry> = (0..9)
            .map(|i| entry(&format!("k{i}"), i, MAX_RECORD_BYTES - 2))
            .collect();
        let sizes: Vec<(usize, usize)> = std::iter::from_fn(|| {
            let b = next_batch(&mut pending, API, usize::MAX);
            (!b.is_empty()).then(|| (b.len(), b.iter().map(Entry::size).sum()))
        })
        .collect();
        assert_eq!(sizes, vec![(5, MAX_BATCH_BYTES), (4, 4 * MAX_RECORD_BYTES)]);
        // One byte more each: only four fit.
        let mut pending: VecDeque<Entry> = (0..5)
            .map(|i| entry(&format!("k{i}"), i, MAX_RECORD_BYTES - 1))
            .collect();
        assert_eq!(next_batch(&mut pending, API, usize::MAX).len(), 4);
    }

    #[test]
    fn one_record_per_key_per_batch_and_order_is_kept() {
        // a1 b1 a2 c1 a3 b2
        let mut pending: VecDeque<Entry> =
            [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("a", 5), ("b", 6)]
                .into_iter()
                .map(|(k, n)| entry(k, n, 5))
                .collect();
        assert_eq!(
            seqs(&next_batch(&mut pending, API, usize::MAX)),
            ["1", "2", "4"]
        );
        assert_eq!(seqs(&next_batch(&mut pending, API, usize::MAX)), ["3", "6"]);
        assert_eq!(seqs(&next_batch(&mut pending, API, usize::MAX)), ["5"]);
        assert!(pending.is_empty());
    }

    #[test]
    fn an_entry_that_does_not_fit_blocks_its_key() {
        let limits = Limits {
            records: 10,
            bytes: 100,
        };
        // x1 (60) y1 (60: does not fit) x2 y2 (10) z1 (10)
        let mut pending: VecDeque<Entry> = vec![
            entry("x", 1, 59),
            entry("y", 2, 59),
            entry("x", 3, 9),
            entry("y", 4, 9),
            entry("z", 5, 9),
        ]
        .into();
        // y2 must not overtake y1, x2 not x1.
        assert_eq!(
            seqs(&next_batch(&mut pending, limits, usize::MAX)),
            ["1", "5"]
        );
        assert_eq!(
            seqs(&next_batch(&mut pending, limits, usize::MAX)),
            ["2", "3"]
        );
        assert_eq!(seqs(&next_batch(&mut pending, limits, usize::MAX)), ["4"]);
    }

    #[test]
    fn the_scan_window_bounds_the_work() {
        let mut pending: VecDeque<Entry> = (0..10).map(|i| entry("same", i, 1)).collect();
        pending.push_back(entry("other", 10, 1));
        assert_eq!(seqs(&next_batch(&mut pending, API, 4)), ["0"]);
        assert_eq!(pending.len(), 10);
        assert_eq!(pending[0].record.sequence_number.as_str(), "1");
    }

    #[test]
    fn shard_caps_keep_a_call_within_a_second_of_each_shard() {
        // Entries 0..10 with distinct keys; even ones on shard 0, odd ones on shard 1.
        let mut pending: VecDeque<Entry> = (0..10)
            .map(|n| {
                let mut e = entry(&format!("k{n}"), n, 10);
                e.shard = n % 2;
                e
            })
            .collect();
        let caps = [
            ShardCap {
                records: 2,
                bytes: usize::MAX,
            },
            ShardCap {
                records: 3,
                bytes: usize::MAX,
            },
        ];
        assert_eq!(
            seqs(&next_batch_capped(&mut pending, API, usize::MAX, &caps)),
            ["0", "1", "2", "3", "5"]
        );
        // Bytes: a shard takes one entry even over its byte cap, then no more.
        let tiny = [ShardCap {
            records: 100,
            bytes: 1,
        }; 2];
        assert_eq!(
            seqs(&next_batch_capped(&mut pending, API, usize::MAX, &tiny)),
            ["4", "7"]
        );
        assert_eq!(pending.len(), 3);
    }
}
