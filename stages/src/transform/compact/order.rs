//! The version order compaction uses: which record of a key is the last one, and the order the
//! output is written in.
//!
//! Each kept record carries an *effective arrival time*: its `arrival_ts` in milliseconds, raised
//! to the latest arrival time seen earlier in its own shard (shards come in sequence order from
//! the `archive` and `kinesis` sources, and `filter` keeps that order). Versions are then ordered
//! by `(effective arrival, stream, shard id, sequence number, sub-sequence number)`:
//!
//! - a total order, so sorting, heaps and the spilled path all agree;
//! - equal to [`Lineage::compare`](crate::replay::Lineage::compare) (DESIGN §4, §5) without a
//!   lineage whenever arrival times do not decrease along a shard, which is how Kinesis stamps
//!   them: within a shard by sequence number, across shards by arrival time, then ids;
//! - within a shard always by sequence number, even when arrival times were skewed backwards
//!   (the effective time never decreases along a shard).
//!
//! Parent before child across resharding: Kinesis accepts a child shard's first record after
//! its parents' last, so arrival times already put parents first; only a child record stamped in
//! the very millisecond of its parent's last record falls back to shard ids. The archive does not
//! record shard lineage, so this is the best any archive reader can do; see the module doc of
//! [`compact`](super).
//!
//! A record that comes out of sequence order within its shard (not from the shipped sources)
//! keeps its own arrival time.
//!
//! A replayed copy (a record a replay wrote, archived since: `_flux.replay` and `_flux.origin`)
//! is ranked by its origin instead, as the replay protocol defines its version
//! (docs/replay-protocol.md); see [`compare`].

use std::cmp::Ordering;
use std::sync::Arc;

use crate::record::{Record, SequenceNumber};
use crate::replay::Version;

/// A record kept by compaction, with what places it in the version order.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// The record's effective arrival time in milliseconds (see the module doc).
    pub ms: i64,
    /// For a replayed copy (a record a replay wrote into the stream, archived since): the
    /// version of the record it copies (`_flux.origin`), which is its version here.
    pub origin: Option<Box<Version>>,
    /// The record.
    pub record: Record,
}

impl Ranked {
    /// The version compared first: the origin's for a replayed copy, else the record's own.
    fn version(&self) -> (i64, &str, &str, &SequenceNumber, Option<u64>) {
        match &self.origin {
            Some(o) => (
                o.arrival_ts.timestamp_millis(),
                &o.stream,
                &o.shard_id,
                &o.sequence_number,
                o.sub_sequence_number,
            ),
            None => self.own(),
        }
    }

    fn own(&self) -> (i64, &str, &str, &SequenceNumber, Option<u64>) {
        let r = &self.record;
        (
            self.ms,
            &r.stream,
            &r.shard_id,
            &r.sequence_number,
            r.sub_sequence_number,
        )
    }
}

/// Compares two kept records by version; `Greater` means `a` is newer.
///
/// A replayed copy counts as the record it copies (docs/replay-protocol.md: a replayed
/// record's version is its origin), so compacting an archive that received replays keeps each
/// key's newest *original* state, not whichever copy a replay wrote last. A copy and its
/// original (the same version) rank the original newer; copies of one origin rank by their own
/// position, so the order stays total.
pub fn compare(a: &Ranked, b: &Ranked) -> Ordering {
    a.version()
        .cmp(&b.version())
        .then_with(|| b.origin.is_some().cmp(&a.origin.is_some()))
        .then_with(|| a.own().cmp(&b.own()))
}

struct Clock {
    stream: Arc<str>,
    shard: Arc<str>,
    /// The position of the shard's latest record: its sequence number (held in place, so
    /// following the shard costs no allocation) and sub-sequence number.
    last: (SequenceNumber, Option<u64>),
    max_ms: i64,
}

/// Per shard, the latest arrival time seen so far in sequence order.
#[derive(Default)]
pub struct ShardClocks {
    clocks: Vec<Clock>,
    last_hit: usize,
}

impl ShardClocks {
    /// The record's effective arrival time in milliseconds (see the module doc).
    pub fn effective_ms(&mut self, r: &Record) -> i64 {
        let ms = r.arrival_ts.timestamp_millis();
        let same = |c: &Clock| {
            (Arc::ptr_eq(&c.shard, &r.shard_id) || c.shard == r.shard_id)
                && (Arc::ptr_eq(&c.stream, &r.stream) || c.stream == r.stream)
        };
        let idx = if self.clocks.get(self.last_hit).is_some_and(same) {
            Some(self.last_hit)
        } else {
            self.clocks.iter().position(same)
        };
        let Some(idx) = idx else {
            self.clocks.push(Clock {
                stream: r.stream.clone(),
                shard: r.shard_id.clone(),
                last: (r.sequence_number.clone(), r.sub_sequence_number),
                max_ms: ms,
            });
            self.last_hit = self.clocks.len() - 1;
            return ms;
        };
        self.last_hit = idx;
        let clock = &mut self.clocks[idx];
        let later = r
            .sequence_number
            .cmp(&clock.last.0)
            .then(r.sub_sequence_number.cmp(&clock.last.1))
            .is_gt();
        if later {
            clock.last = (r.sequence_number.clone(), r.sub_sequence_number);
            clock.max_ms = clock.max_ms.max(ms);
            clock.max_ms
        } else {
            ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ts_from_millis;
    use crate::replay::{Lineage, Version};

    fn rec(shard: &str, seq: u64, sub: Option<u64>, ms: i64) -> Record {
        Record {
            stream: "orders".into(),
            shard_id: shard.into(),
            sequence_number: SequenceNumber::from_u64(seq),
            sub_sequence_number: sub,
            partition_key: "k".into(),
            arrival_ts: ts_from_millis(ms),
            data: bytes::Bytes::new(),
            annotations: None,
            probed: None,
        }
    }

    fn live(ms: i64, r: &Record) -> Ranked {
        Ranked {
            ms,
            origin: None,
            record: r.clone(),
        }
    }

    fn copy_of(original: &Record, copy: Record) -> Ranked {
        Ranked {
            ms: copy.arrival_ts.timestamp_millis(),
            origin: Some(Box::new(Version::of(original))),
            record: copy,
        }
    }

    #[test]
    fn a_replayed_copy_ranks_as_its_origin() {
        // Live records of one key at 1000 (s0) and 2000 (s1); a replay at 5000 wrote a copy of
        // the older one into s2. The copy is older than the newer original.
        let older = rec("s0", 1, None, 1000);
        let newer = rec("s1", 1, None, 2000);
        let copy = copy_of(&older, rec("s2", 9, None, 5000));
        assert_eq!(compare(&copy, &live(2000, &newer)), Ordering::Less);
        assert_eq!(compare(&live(2000, &newer), &copy), Ordering::Greater);
        // …and newer than what preceded its origin.
        let oldest = rec("s1", 0, None, 500);
        assert_eq!(compare(&copy, &live(500, &oldest)), Ordering::Greater);
        // The original outranks its own copy; two copies of one origin rank by position.
        assert_eq!(compare(&live(1000, &older), &copy), Ordering::Greater);
        let later_copy = copy_of(&older, rec("s2", 12, None, 6000));
        assert_eq!(compare(&later_copy, &copy), Ordering::Greater);
        assert_eq!(compare(&copy, &copy.clone()), Ordering::Equal);
    }

    #[test]
    fn agrees_with_the_lineage_order_when_times_are_monotone() {
        // Three shards, monotone times per shard with many equal milliseconds.
        let mut records = Vec::new();
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for (s, shard) in ["s0", "s1", "s2"].iter().enumerate() {
            let mut ms = 1000;
            for i in 0..40u64 {
                ms += (next() % 3) as i64;
                let sub = (next() % 4 == 0).then_some(next() % 3);
                records.push(rec(shard, 100 * s as u64 + i, sub, ms));
            }
        }
        let mut clocks = ShardClocks::default();
        let eff: Vec<i64> = records.iter().map(|r| clocks.effective_ms(r)).collect();
        let lineage = Lineage::new("orders");
        for (i, a) in records.iter().enumerate() {
            for (j, b) in records.iter().enumerate() {
                assert_eq!(
                    compare(&live(eff[i], a), &live(eff[j], b)),
                    lineage.compare(&Version::of(a), &Version::of(b)),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn sequence_order_wins_over_skewed_times_in_a_shard() {
        let mut clocks = ShardClocks::default();
        let (a, b) = (rec("s0", 1, None, 500), rec("s0", 2, None, 400));
        let (ea, eb) = (clocks.effective_ms(&a), clocks.effective_ms(&b));
        assert_eq!((ea, eb), (500, 500));
        assert_eq!(compare(&live(eb, &b), &live(ea, &a)), Ordering::Greater);
        // Out of sequence order: its own time.
        assert_eq!(clocks.effective_ms(&rec("s0", 1, None, 300)), 300);
        // Another shard starts its own clock.
        assert_eq!(clocks.effective_ms(&rec("s1", 1, None, 100)), 100);
    }
}
