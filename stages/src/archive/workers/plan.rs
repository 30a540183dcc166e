//! Which shards a worker takes and which it gives up, from one look at the stream: its shards,
//! which of them are finished, the live shard leases and the live workers. Pure: the caller
//! reads the store and Kinesis, then carries the plan out with conditional writes (two workers
//! acting on stale looks cannot both win a shard).

use std::collections::{BTreeMap, BTreeSet};

/// A shard as ListShards shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    /// The shard id.
    pub id: String,
    /// Its parent and adjacent parent (after a split or a merge).
    pub parents: Vec<String>,
}

/// One look at a stream shared by several workers.
#[derive(Debug, Clone, Default)]
pub struct Look {
    /// The shards ListShards returned (narrowed to the configured ones).
    pub shards: Vec<ShardView>,
    /// Shards read to their end whose last record is archived: nobody reads them again.
    pub done: BTreeSet<String>,
    /// Live (not lapsed) shard leases: shard → the worker holding it.
    pub leases: BTreeMap<String, String>,
    /// Live workers (this one included).
    pub workers: BTreeSet<String>,
}

/// What one worker does after a [`Look`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Free shards to take, in this order (stop at the first lost race if you like).
    pub take: Vec<String>,
    /// Shards of this worker to give up (after what it read of them is archived).
    pub release: Vec<String>,
    /// How many shards this worker should hold: the fair share.
    pub share: usize,
}

/// Shards that may be read now: not done, with every parent that the stream still lists done
/// (a child is read only after its parents, so a key's records keep their order; a parent that
/// expired from the stream is no longer listed and does not hold its children back).
pub fn readable(look: &Look) -> Vec<&ShardView> {
    let listed: BTreeSet<&str> = look.shards.iter().map(|s| s.id.as_str()).collect();
    look.shards
        .iter()
        .filter(|s| !look.done.contains(&s.id))
        .filter(|s| {
            s.parents
                .iter()
                .all(|p| look.done.contains(p) || !listed.contains(p.as_str()))
        })
        .collect()
}

/// The plan of worker `me`. `giving_up` are shards `me` is releasing already (they count
/// neither as its own nor as free).
///
/// With `n` readable shards and `w` live workers the fair share is `ceil(n / w)`: a worker
/// below it takes free shards up to it; a worker above it gives up the excess; and a worker
/// above `floor(n / w)` gives up one shard when another worker is below the floor and no shard
/// is free for it (so 13 shards on 4 workers settle as 4, 3, 3, 3).
pub fn plan(me: &str, look: &Look, giving_up: &BTreeSet<String>) -> Plan {
    let readable = readable(look);
    let n = readable.len();
    let mut workers = look.workers.clone();
    workers.insert(me.to_owned());
    let w = workers.len();
    let ceil = n.div_ceil(w);
    let floor = n / w;
    let mut held: BTreeMap<&str, usize> = workers.iter().map(|x| (x.as_str(), 0)).collect();
    let mut mine: Vec<&str> = Vec::new();
    let mut free: Vec<&str> = Vec::new();
    for s in &readable {
        match look.leases.get(&s.id) {
            Some(holder) if holder == me => {
                if !giving_up.contains(&s.id) {
                    mine.push(&s.id);
                    *held.entry(me).or_default() += 1;
                }
            }
            Some(holder) => *held.entry(holder.as_str()).or_default() += 1,
            None => free.push(&s.id),
        }
    }
    let mut out = Plan {
        share: ceil,
        ..Plan::default()
    };
    if mine.len() < ceil {
        // Start where this worker's name points, so that workers starting together try
        // different shards first instead of all racing for the first one.
        let start = spread(me, free.len());
        out.take = free
            .iter()
            .cycle()
            .skip(start)
            .take(free.len())
            .take(ceil - mine.len())
            .map(|s| (*s).to_owned())
            .collect();
        return out;
    }
    let excess = if mine.len() > ceil {
        mine.len() - ceil
    } else {
        let starved = held
            .iter()
            .any(|(worker, count)| *worker != me && *count < floor);
        usize::from(mine.len() > floor && starved && free.is_empty())
    };
    // Give up the last ones by id: children after parents, so long-lived shards stay.
    out.release = mine
        .iter()
        .rev()
        .take(excess)
        .map(|s| (*s).to_owned())
        .collect();
    out
}

/// A stable position in `0..len` from a worker's name (FNV-1a).
fn spread(me: &str, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in me.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % len as u64) as usize
}

#[cfg(test)]
mod tests;
