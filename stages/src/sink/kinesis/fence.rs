//! The replay protocol's fences (DESIGN §5, docs/replay-protocol.md): an opening fence on every
//! open shard before the first replayed record, its sequence number being the shard's `H`, and a
//! closing fence with the counts after the last one was acknowledged.

use std::collections::BTreeMap;

use super::shards::ShardRange;
use super::target::Target;
use crate::replay::{Fence, FenceCounts};

/// The partition key of fence records (the explicit hash key decides their shard).
pub const FENCE_KEY: &str = "_flux-fence";

/// How often the shards are listed again while fencing, until every open shard is fenced.
const MAX_ROUNDS: usize = 10;

/// The fences of one replay.
#[derive(Debug, Clone)]
pub struct Fences {
    /// The opening fence (the closing one is derived from it).
    pub open: Fence,
    /// The payload key (`_flux`).
    pub key: String,
    /// Shard id → sequence number of its opening fence (`H`).
    pub high_water: BTreeMap<String, String>,
}

impl Fences {
    /// Fences not yet written.
    pub fn new(open: Fence, key: String) -> Self {
        Fences {
            open,
            key,
            high_water: BTreeMap::new(),
        }
    }

    /// Writes the opening fence to every open shard, addressed by the shard's starting hash key,
    /// listing the shards again until every open shard has one (a shard split while fencing
    /// gets its own).
    pub async fn write_open(&mut self, target: &Target) -> anyhow::Result<Vec<ShardRange>> {
        for _ in 0..MAX_ROUNDS {
            let shards = target.open_shards().await?;
            let missing: Vec<&ShardRange> = shards
                .iter()
                .filter(|s| !self.high_water.contains_key(&s.id))
                .collect();
            if missing.is_empty() {
                return Ok(shards);
            }
            for s in missing {
                let (shard, seq) = target
                    .put_one(self.open.payload(&self.key), FENCE_KEY, s.start)
                    .await?;
                tracing::debug!(shard = %shard, sequence_number = %seq, "opening fence");
                // A fence written twice to one shard (it was split while fencing): the first
                // one is the shard's H.
                self.high_water.entry(shard).or_insert(seq);
            }
        }
        anyhow::bail!(
            "the target stream's shards kept changing while the opening fences were written"
        )
    }

    /// Writes the closing fence to every open shard with `records` in total and, per shard, what
    /// landed there. A shard that has no opening fence yet (created by a split or merge after the
    /// sink last listed the shards, so no replayed record was sent to it) gets its opening fence
    /// first: every shard with a closing fence has an opening fence before it. Lists the shards
    /// again until every open shard is closed. Returns (shard, records) per closed shard.
    pub async fn write_close(
        &mut self,
        target: &Target,
        records: u64,
        per_shard: &BTreeMap<String, u64>,
    ) -> anyhow::Result<Vec<(String, u64)>> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let shards = target.open_shards().await?;
            let missing: Vec<&ShardRange> = shards
                .iter()
                .filter(|s| !out.iter().any(|(id, _)| *id == s.id))
                .collect();
            if missing.is_empty() {
                return Ok(out);
            }
            for s in missing {
                if !self.high_water.contains_key(&s.id) {
                    let (shard, seq) = target
                        .put_one(self.open.payload(&self.key), FENCE_KEY, s.start)
                        .await?;
                    tracing::debug!(shard = %shard, sequence_number = %seq, "opening fence, before the closing one");
                    self.high_water.entry(shard).or_insert(seq);
                }
                let n = per_shard.get(&s.id).copied().unwrap_or(0);
                let close = self.open.close(FenceCounts {
                    records,
                    shard_records: n,
                });
                let (shard, _) = target
                    .put_one(close.payload(&self.key), FENCE_KEY, s.start)
                    .await?;
                if shard != s.id {
                    tracing::debug!(listed = %s.id, landed = %shard, "closing fence landed on a shard created since the listing");
                }
                out.push((shard, n));
            }
        }
        anyhow::bail!(
            "the target stream's shards kept changing while the closing fences were written"
        )
    }
}
