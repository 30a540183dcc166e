//! The consumer side of the replay protocol: stamps every record with a rank, and a record is
//! applied to a key when its stamp outranks the stamp stored with the key's state.
//!
//! A [`Stamp`] is ordered by three parts, in this order:
//!
//! 1. `epoch`: how many replays' opening fences precede the record in its shard's lineage (a
//!    fence earlier in the same shard, or any fence in an ancestor shard). For a record of replay
//!    `R`, `R`'s own fence is not counted, so it ranks before every live record that arrived after
//!    `R`'s fence; and a `fill` record counts only the earlier replays that had opened by its
//!    origin's arrival time, so it keeps its origin's place in time.
//! 2. `overwrite`: within an epoch, an `overwrite` record ranks after live and `fill` records:
//!    the replay replaces the state as it was at its fence.
//! 3. `version`: the origin of a replayed record, the position of a live one, ordered by
//!    [`Lineage::compare`].
//!
//! This is a total order, and a record's stamp depends only on its position and on fences that
//! precede it in its shard's lineage, which a consumer reading each shard in order (parents first)
//! has always seen by then. So the stamp does not depend on when the record is delivered, and a
//! key ends up holding its highest-ranked record whatever the interleaving of shards, however
//! often records are delivered again, and across restarts, provided the reconciler's state (the
//! fences, see [`Reconciler`]'s serde) and the stamps are persisted no later than the checkpoint.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::version::{Lineage, Version};
use super::wire::{
    DEFAULT_KEY, Fence, FencePhase, Marker, MarkerError, ReplayMode, ReplayTag, parse_marker,
};
use crate::record::{Record, SequenceNumber};

/// The rank of the state a record would set: persist it with the state, per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Opening fences that precede the record (see the module documentation).
    pub epoch: u32,
    /// The replay that sent the record; `None` for a live record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayTag>,
    /// The record's origin when replayed, else its own position.
    pub version: Version,
}

impl Stamp {
    /// Whether the record came from a replay in `overwrite` mode.
    pub fn is_overwrite(&self) -> bool {
        self.replay
            .as_ref()
            .is_some_and(|r| r.mode == ReplayMode::Overwrite)
    }
}

/// What [`Reconciler::observe`] found in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A fence, now recorded; it carries no state for any key.
    Fence(Fence),
    /// A live or replayed record and its stamp: apply it when [`Reconciler::should_apply`].
    Record(Stamp),
}

/// An opening fence seen in a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OpenFence {
    replay_id: String,
    mode: ReplayMode,
    #[serde(with = "super::version::ts_millis")]
    opened_at: DateTime<Utc>,
    /// The fence's sequence number: the shard's high-water mark `H` for this replay.
    at: SequenceNumber,
}

/// The reference consumer of the replay protocol, for one stream.
///
/// It knows the stream's shard lineage ([`Reconciler::add_shard`]) and the opening fences seen
/// per shard. Both must survive restarts: serialize the reconciler (serde) and store it
/// atomically with the consumer's checkpoint, or ahead of it (records delivered again are then
/// stamped exactly as before). Per key the consumer keeps the [`Stamp`] of the state it applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciler {
    key: String,
    lineage: Lineage,
    fences: BTreeMap<String, Vec<OpenFence>>,
}

impl Reconciler {
    /// A reconciler for `stream` whose annotations live under [`DEFAULT_KEY`].
    pub fn new(stream: &str) -> Self {
        Reconciler {
            key: DEFAULT_KEY.to_owned(),
            lineage: Lineage::new(stream),
            fences: BTreeMap::new(),
        }
    }

    /// Reads annotations and fences under `key` instead of [`DEFAULT_KEY`].
    pub fn with_key(mut self, key: &str) -> Self {
        self.key = key.to_owned();
        self
    }

    /// Records a shard and its parents (from `ListShards`). Add a child before reading it; a shard
    /// never added has no parents. Read every parent to its end before its children.
    pub fn add_shard(&mut self, shard_id: &str, parents: &[&str]) {
        self.lineage.add_shard(shard_id, parents);
    }

    /// The shard lineage, which orders versions across shards.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// The high-water mark `H` of `replay_id` in `shard_id`: its opening fence's sequence number.
    pub fn fence(&self, shard_id: &str, replay_id: &str) -> Option<&SequenceNumber> {
        self.fences
            .get(shard_id)?
            .iter()
            .find(|f| f.replay_id == replay_id)
            .map(|f| &f.at)
    }

    /// Reads one record of the stream (shard, sequence number, arrival time, payload bytes):
    /// records a fence, or stamps a live or replayed record. Records of one shard must be given in
    /// order, except that records already given may be given again.
    ///
    /// `arrival_ts` is the record's `ApproximateArrivalTimestamp` at any precision: it is rounded
    /// to the nearest millisecond, the precision of origins (Kinesis sends epoch seconds with a
    /// fraction, e.g. `1764064800.123`, which binary floating point holds as `…800.12299990…`:
    /// truncating would make it a millisecond early).
    pub fn observe(
        &mut self,
        shard_id: &str,
        sequence_number: &SequenceNumber,
        arrival_ts: DateTime<Utc>,
        data: &[u8],
    ) -> Result<Observed, MarkerError> {
        let at = Version {
            stream: self.lineage.stream().to_owned(),
            shard_id: shard_id.to_owned(),
            sequence_number: sequence_number.clone(),
            sub_sequence_number: None,
            arrival_ts,
        };
        self.observe_at(at, data)
    }

    /// [`Reconciler::observe`] for a [`Record`] of this stream (keeps its sub-sequence number).
    pub fn observe_record(&mut self, record: &Record) -> Result<Observed, MarkerError> {
        let mut at = Version::of(record);
        at.stream = self.lineage.stream().to_owned();
        self.observe_at(at, &record.data)
    }

    fn observe_at(&mut self, mut at: Version, data: &[u8]) -> Result<Observed, MarkerError> {
        at.arrival_ts = nearest_millisecond(at.arrival_ts);
        match parse_marker(data, &self.key)? {
            Marker::Fence(fence) => {
                if fence.phase == FencePhase::Open {
                    self.record_fence(&at, &fence);
                }
                Ok(Observed::Fence(fence))
            }
            Marker::Live => {
                let epoch = count(self.fences_before(&at).len());
                Ok(Observed::Record(Stamp {
                    epoch,
                    replay: None,
                    version: at,
                }))
            }
            Marker::Replayed(replayed) => {
                let mut before = self.fences_before(&at);
                if before.remove(replayed.replay.id.as_str()).is_none() {
                    tracing::warn!(
                        replay = %replayed.replay.id,
                        shard = %at.shard_id,
                        sequence_number = %at.sequence_number,
                        "replayed record without its replay's opening fence before it in the shard: \
                         live records in this shard cannot be told apart around the replay"
                    );
                }
                let epoch = match replayed.replay.mode {
                    ReplayMode::Overwrite => before.len(),
                    ReplayMode::Fill => before
                        .values()
                        .filter(|f| f.opened_at <= replayed.origin.arrival_ts)
                        .count(),
                };
                Ok(Observed::Record(Stamp {
                    epoch: count(epoch),
                    replay: Some(replayed.replay),
                    version: replayed.origin,
                }))
            }
        }
    }

    fn record_fence(&mut self, at: &Version, fence: &Fence) {
        let fences = self.fences.entry(at.shard_id.clone()).or_default();
        match fences.iter_mut().find(|f| f.replay_id == fence.replay_id) {
            // A retried write can leave the fence twice in a shard: the first one counts.
            Some(seen) => {
                if at.sequence_number < seen.at {
                    seen.at = at.sequence_number.clone();
                }
            }
            None => fences.push(OpenFence {
                replay_id: fence.replay_id.clone(),
                mode: fence.mode,
                opened_at: fence.opened_at,
                at: at.sequence_number.clone(),
            }),
        }
    }

    /// The opening fences, by replay id, that precede position `at` in its shard's lineage.
    fn fences_before(&self, at: &Version) -> BTreeMap<&str, &OpenFence> {
        let mut out = BTreeMap::new();
        for shard in self.lineage.ancestors(&at.shard_id) {
            for f in self.fences.get(shard).into_iter().flatten() {
                out.insert(f.replay_id.as_str(), f);
            }
        }
        for f in self.fences.get(&at.shard_id).into_iter().flatten() {
            if f.at < at.sequence_number {
                out.insert(f.replay_id.as_str(), f);
            }
        }
        out
    }

    /// Orders two stamps (module documentation); `Greater` means `a` outranks `b`.
    pub fn compare(&self, a: &Stamp, b: &Stamp) -> Ordering {
        (a.epoch, a.is_overwrite())
            .cmp(&(b.epoch, b.is_overwrite()))
            .then_with(|| self.lineage.compare(&a.version, &b.version))
    }

    /// Whether a record stamped `incoming` replaces state stamped `stored` (`None`: no state yet).
    /// Equal stamps (a record delivered again) do not replace.
    pub fn should_apply(&self, incoming: &Stamp, stored: Option<&Stamp>) -> bool {
        stored.is_none_or(|stored| self.compare(incoming, stored) == Ordering::Greater)
    }
}

/// `ts` rounded to the nearest millisecond (half a millisecond rounds up), as
/// docs/replay-protocol.md asks of every consumer: `round(seconds * 1000)`.
fn nearest_millisecond(ts: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = i64::from(ts.timestamp_subsec_nanos());
    if nanos % 1_000_000 == 0 {
        return ts;
    }
    crate::record::ts_from_millis(ts.timestamp() * 1000 + (nanos + 500_000) / 1_000_000)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ts_from_millis;
    use crate::replay::wire::{FenceCounts, Replayed};
    use crate::transform::annotate::add_to_object;

    const S0: &str = "shardId-000000000000";
    const S1: &str = "shardId-000000000001";

    fn seq(n: u64) -> SequenceNumber {
        SequenceNumber::from_u64(n)
    }

    fn origin(shard: &str, n: u64, ms: i64) -> Version {
        Version {
            stream: "orders".into(),
            shard_id: shard.into(),
            sequence_number: seq(n),
            sub_sequence_number: None,
            arrival_ts: ts_from_millis(ms),
        }
    }

    fn replayed(id: &str, mode: ReplayMode, origin: Version) -> Vec<u8> {
        let r = Replayed {
            replay: ReplayTag {
                id: id.into(),
                mode,
            },
            origin,
        };
        add_to_object(br#"{"k":"a"}"#, DEFAULT_KEY, r.members()).unwrap()
    }

    fn fence(id: &str, mode: ReplayMode, opened_ms: i64) -> Vec<u8> {
        Fence::open(id, mode, ts_from_millis(opened_ms)).payload(DEFAULT_KEY)
    }

    fn stamp(r: &mut Reconciler, shard: &str, n: u64, ms: i64, data: &[u8]) -> Stamp {
        match r.observe(shard, &seq(n), ts_from_millis(ms), data).unwrap() {
            Observed::Record(s) => s,
            Observed::Fence(f) => panic!("unexpected fence {f:?}"),
        }
    }

    fn reconciler() -> Reconciler {
        let mut r = Reconciler::new("orders");
        r.add_shard(S0, &[]);
        r.add_shard(S1, &[]);
        r
    }

    #[test]
    fn live_records_after_a_fence_outrank_everything_before_it() {
        let mut r = reconciler();
        let pre = stamp(&mut r, S0, 10, 1_000, b"{}");
        assert!(matches!(
            r.observe(
                S1,
                &seq(5),
                ts_from_millis(900),
                &fence("R", ReplayMode::Overwrite, 900)
            )
            .unwrap(),
            Observed::Fence(_)
        ));
        assert_eq!(r.fence(S1, "R"), Some(&seq(5)));
        // Arrived earlier than `pre` by the clock, but after the fence of its shard.
        let post = stamp(&mut r, S1, 6, 950, b"{}");
        assert_eq!((pre.epoch, post.epoch), (0, 1));
        assert!(r.should_apply(&post, Some(&pre)));
        assert!(!r.should_apply(&pre, Some(&post)));
        // Delivered again after the fence was seen: still before it.
        assert_eq!(stamp(&mut r, S1, 4, 800, b"{}").epoch, 0);
        assert!(!r.should_apply(&post, Some(&post)));
    }

    #[test]
    fn overwrite_beats_live_before_its_fence_and_loses_to_live_after() {
        let mut r = reconciler();
        r.observe(
            S0,
            &seq(5),
            ts_from_millis(500),
            &fence("R", ReplayMode::Overwrite, 500),
        )
        .unwrap();
        let rep = stamp(
            &mut r,
            S0,
            7,
            600,
            &replayed("R", ReplayMode::Overwrite, origin(S0, 1, 100)),
        );
        assert_eq!(rep.epoch, 0);
        let pre = stamp(&mut r, S0, 3, 400, b"{}");
        let post = stamp(&mut r, S0, 8, 700, b"{}");
        assert!(r.should_apply(&rep, Some(&pre)));
        assert!(!r.should_apply(&pre, Some(&rep)));
        assert!(r.should_apply(&post, Some(&rep)));
        assert!(!r.should_apply(&rep, Some(&post)));
    }

    #[test]
    fn fill_goes_by_version_before_the_fence() {
        let mut r = reconciler();
        r.observe(
            S0,
            &seq(5),
            ts_from_millis(500),
            &fence("R", ReplayMode::Fill, 500),
        )
        .unwrap();
        let old = stamp(
            &mut r,
            S0,
            7,
            600,
            &replayed("R", ReplayMode::Fill, origin(S0, 1, 100)),
        );
        let new = stamp(
            &mut r,
            S0,
            8,
            600,
            &replayed("R", ReplayMode::Fill, origin(S0, 4, 450)),
        );
        let pre = stamp(&mut r, S0, 3, 400, b"{}");
        assert!(r.should_apply(&pre, Some(&old)));
        assert!(!r.should_apply(&old, Some(&pre)));
        assert!(r.should_apply(&new, Some(&pre)));
        let post = stamp(&mut r, S1, 9, 300, b"{}");
        assert_eq!(post.epoch, 0, "S1 has no fence yet");
    }

    #[test]
    fn children_inherit_their_parents_fences() {
        let mut r = reconciler();
        r.add_shard("child", &[S0, S1]);
        r.observe(
            S0,
            &seq(5),
            ts_from_millis(500),
            &fence("R", ReplayMode::Overwrite, 500),
        )
        .unwrap();
        let in_child = stamp(&mut r, "child", 1, 400, b"{}");
        assert_eq!(in_child.epoch, 1);
        let rep = stamp(
            &mut r,
            "child",
            2,
            600,
            &replayed("R", ReplayMode::Overwrite, origin(S0, 1, 100)),
        );
        assert_eq!(rep.epoch, 0);
    }

    #[test]
    fn a_fill_after_an_earlier_replay_keeps_its_origins_place_in_time() {
        let mut r = reconciler();
        r.observe(
            S0,
            &seq(5),
            ts_from_millis(500),
            &fence("R0", ReplayMode::Overwrite, 500),
        )
        .unwrap();
        let r0 = stamp(
            &mut r,
            S0,
            6,
            510,
            &replayed("R0", ReplayMode::Overwrite, origin(S0, 1, 100)),
        );
        r.observe(
            S0,
            &seq(9),
            ts_from_millis(900),
            &fence("R1", ReplayMode::Fill, 900),
        )
        .unwrap();
        // Origin older than R0: it does not undo R0's overwrite.
        let older = stamp(
            &mut r,
            S0,
            10,
            910,
            &replayed("R1", ReplayMode::Fill, origin(S0, 2, 200)),
        );
        assert_eq!(older.epoch, 0);
        assert!(!r.should_apply(&older, Some(&r0)));
        // Origin after R0 opened: newer than R0's state, older than what follows R1's fence.
        let newer = stamp(
            &mut r,
            S0,
            11,
            920,
            &replayed("R1", ReplayMode::Fill, origin(S0, 7, 700)),
        );
        assert_eq!(newer.epoch, 1);
        assert!(r.should_apply(&newer, Some(&r0)));
        let post = stamp(&mut r, S0, 12, 930, b"{}");
        assert_eq!(post.epoch, 2);
        assert!(r.should_apply(&post, Some(&newer)));
    }

    #[test]
    fn fences_are_idempotent_and_close_fences_change_nothing() {
        let mut r = reconciler();
        let open = fence("R", ReplayMode::Fill, 500);
        r.observe(S0, &seq(5), ts_from_millis(500), &open).unwrap();
        r.observe(S0, &seq(6), ts_from_millis(501), &open).unwrap();
        r.observe(S0, &seq(5), ts_from_millis(500), &open).unwrap();
        assert_eq!(r.fence(S0, "R"), Some(&seq(5)));
        let close = Fence::open("R", ReplayMode::Fill, ts_from_millis(500)).close(FenceCounts {
            records: 3,
            shard_records: 1,
        });
        let before = r.clone();
        let seen = r
            .observe(
                S1,
                &seq(9),
                ts_from_millis(900),
                &close.payload(DEFAULT_KEY),
            )
            .unwrap();
        assert_eq!(seen, Observed::Fence(close));
        assert_eq!(r, before);
    }

    #[test]
    fn arrival_times_are_rounded_to_the_nearest_millisecond() {
        let mut r = reconciler();
        // Kinesis sends 1764064800.123; as binary floating point it is 1764064800.12299990654…
        let secs = 1_764_064_800.123_f64;
        let sent = DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
            .expect("in range");
        assert_eq!(
            sent.timestamp_subsec_millis(),
            122,
            "truncated: a millisecond early"
        );
        let at = |r: &mut Reconciler, n: u64, ts: DateTime<Utc>| match r
            .observe(S0, &seq(n), ts, b"{}")
            .unwrap()
        {
            Observed::Record(s) => s.version.arrival_ts,
            Observed::Fence(_) => unreachable!(),
        };
        assert_eq!(at(&mut r, 1, sent), ts_from_millis(1_764_064_800_123));
        let ms = |n: i64| ts_from_millis(n);
        let plus_nanos = |base: i64, nanos: i64| ms(base) + chrono::Duration::nanoseconds(nanos);
        assert_eq!(at(&mut r, 2, plus_nanos(5, 499_999)), ms(5));
        assert_eq!(at(&mut r, 3, plus_nanos(5, 500_000)), ms(6));
        assert_eq!(at(&mut r, 4, plus_nanos(5, 999_999)), ms(6));
        assert_eq!(at(&mut r, 5, ms(7)), ms(7));
        // Before 1970 too.
        assert_eq!(at(&mut r, 6, plus_nanos(-2, 600_000)), ms(-1));
    }

    #[test]
    fn state_survives_serialization() {
        let mut r = reconciler().with_key("meta");
        r.add_shard("child", &[S0]);
        r.observe(
            S0,
            &seq(5),
            ts_from_millis(500),
            &Fence::open("R", ReplayMode::Fill, ts_from_millis(500)).payload("meta"),
        )
        .unwrap();
        let text = serde_json::to_string(&r).unwrap();
        let back: Reconciler = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let s = stamp(&mut r.clone(), "child", 1, 1, b"{}");
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Stamp>(&text).unwrap(), s);
        assert_eq!(s.epoch, 1);
    }

    #[test]
    fn records_from_the_record_type_keep_their_sub_sequence() {
        let mut r = reconciler();
        let mut record = Record {
            stream: "ignored".into(),
            shard_id: S0.into(),
            sequence_number: seq(3),
            sub_sequence_number: Some(1),
            partition_key: "k".into(),
            arrival_ts: ts_from_millis(1),
            data: bytes::Bytes::from_static(b"{}"),
            annotations: None,
        };
        let Observed::Record(first) = r.observe_record(&record).unwrap() else {
            panic!()
        };
        record.sub_sequence_number = Some(2);
        let Observed::Record(second) = r.observe_record(&record).unwrap() else {
            panic!()
        };
        assert_eq!(second.version.stream, "orders");
        assert!(r.should_apply(&second, Some(&first)));
    }
}
