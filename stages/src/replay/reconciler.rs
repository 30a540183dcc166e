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
mod tests;
