//! `compact` transform: keeps the last record of each key, in version order.
//!
//! ```toml
//! [transforms.latest]
//! type = "compact"
//! inputs = ["archive"]
//! key = "$.data.customer_id"             # or "partition_key", or any JSONPath into the record view
//! tombstone = "@.data.deleted == true"   # optional: a last record that matches deletes its key
//! memory_limit = "512MiB"                # past it, sorted runs are spilled to a temporary folder
//! ```
//!
//! **Last.** The newest version per key: within a shard by sequence number (then sub-sequence
//! number), across shards by arrival time, then stream, shard id and sequence number (module
//! [`order`]). That is [`Lineage::compare`](crate::replay::Lineage::compare) without a lineage,
//! the order of DESIGN §4/§5. Parent shards before children: the archive does not record shard
//! lineage, and Kinesis only accepts a child's records after its parents' last one, so arrival
//! time already orders parents first; only a child record stamped in its parent's last
//! millisecond is ordered by shard id instead.
//!
//! **Tombstones.** Only a key's last record matters, so `tombstone` is evaluated on winners only:
//! when it matches, the key is deleted (nothing is written), or with `keep_tombstones = true` the
//! tombstone itself is written (as Kafka's compaction keeps delete markers).
//!
//! **Output.** Every surviving record once, ordered by version across all keys, so a replay keeps
//! the records' original relative order. The output is known only when the input has ended:
//! compaction emits at the end of its input (in batches of 1024, paced by downstream). Checkpoint
//! barriers are forwarded without flushing: flushing per barrier would write a key again each
//! time it changes, and the output would no longer hold one record per key. Compaction is meant
//! for bounded inputs (an archive replay); a restarted replay recomputes it from the archive.
//!
//! **Memory.** State is one entry per key (its key bytes and the record, whose payload bytes are
//! shared with the input). Its estimated size, including the hash table, is kept under
//! `memory_limit`. Past it the design is an external sort in two phases, so that the result is
//! identical with or without spilling:
//!
//! 1. *By key*: the table is written as a run sorted by key (records in a binary form, with the
//!    key and the effective arrival time; see [`spill`]) to a temporary folder, and emptied.
//!    At the end, the runs are merged by key with a binary heap ([`merge`]); per key the newest
//!    version wins, exactly as in the table.
//! 2. *By version*: winners are collected up to a quarter of the limit, sorted by version and
//!    written as runs (when all winners fit, they are sorted in memory instead); a second heap
//!    merge by version produces the output.
//!
//! More than 64 runs are merged in groups first, so files stay few. The folder (under
//! `spill_dir`, default the system's temporary folder) is removed at the end and when the stage
//! fails.
//!
//! **Keys.** `key` selects one value from the record view; see [`key`]. Simple dotted paths into
//! the payload and `partition_key` take a fast path that parses only the key. Strings are keys as
//! they are; other values by their JSON text. A record with no value there (or null) is an error
//! naming it, or with `on_missing_key = "dead_letter"` goes to `<id>.dead_letter`: never silently
//! one bucket.
//!
//! **Replays.** An archive of a stream that received replays also holds the replay protocol's
//! records (docs/replay-protocol.md), found under `under` (default `_flux`): *fences* are left
//! out, counted as skipped (they belong to no key); a *replayed copy* is ranked by its origin,
//! the version of the record it copies, so a copy never outranks newer original writes of its
//! key (see [`order::compare`]).
//!
//! **Windows.** With `per_window = true`, the key is (window, key), the window being the
//! annotation `window = {start, end}` that a `window` transform upstream adds; a record without it
//! is treated like a record without a key.

pub mod key;
pub mod merge;
pub mod order;
pub mod spill;

mod config;
mod output;
pub use config::{CompactConfig, KeyExpr, MIN_MEMORY_LIMIT, OnMissingKey};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::Predicate;
use crate::record::{Batch, Record};
use crate::replay::Marker;
use crate::stage::{Drain, Emit, Rejected, StatefulTransform};
use crate::transform::filter::FilterExpr;
use crate::units::Size;
use key::KeyPath;
use order::Ranked;
use output::Out;
use spill::SpillDir;

/// Records per batch emitted at the end.
const OUT_BATCH: usize = 1024;

/// The hash table's bytes per slot (key, value and control byte).
const SLOT: usize = std::mem::size_of::<(Box<[u8]>, Ranked)>() + 1;

/// Heap bytes a kept record and its key hold, estimated: payload, strings, and allocator
/// overhead of the allocations behind them.
fn heap_bytes(key_len: usize, r: &Record) -> usize {
    const PER_ALLOCATION: usize = 24;
    let annotations = r
        .annotations
        .as_ref()
        .map_or(0, |a| 64 + 2 * serde_json::to_vec(a).map_or(0, |v| v.len()));
    // A partition key of up to 24 bytes is held in place, as a sequence number of up to 62.
    let partition_key = if r.partition_key.is_heap_allocated() {
        r.partition_key.capacity() + PER_ALLOCATION
    } else {
        0
    };
    key_len
        + r.data.len()
        + partition_key
        + r.sequence_number.heap_bytes()
        + annotations
        + 2 * PER_ALLOCATION
}

/// [`heap_bytes`] of a kept record, its origin included.
fn ranked_bytes(key_len: usize, r: &Ranked) -> usize {
    heap_bytes(key_len, &r.record)
        + r.origin.as_ref().map_or(0, |o| {
            std::mem::size_of::<crate::replay::Version>()
                + o.stream.len()
                + o.shard_id.len()
                + o.sequence_number.heap_bytes()
                + 4 * 24
        })
}

/// The running `compact` transform.
pub struct Compact {
    key: KeyPath,
    tombstone: Option<Predicate>,
    keep_tombstones: bool,
    limit: usize,
    on_missing: OnMissingKey,
    per_window: bool,
    spill_parent: Option<PathBuf>,
    under: String,
    /// `under` as a path of one name.
    under_path: Vec<String>,
    /// The key of the record being added (kept to reuse its allocation).
    key_buf: Vec<u8>,
    /// The key's and `under`'s paths, which an `archive` source read by this stage alone notes
    /// on each record (see [`crate::json::probe`]).
    probe: Option<crate::json::probe::PayloadProbe>,
    clocks: order::ShardClocks,
    table: HashMap<Box<[u8]>, Ranked>,
    /// Heap bytes of the table's keys and records (see [`heap_bytes`]).
    held: usize,
    spill: Option<SpillDir>,
    runs: Vec<PathBuf>,
    out: Option<Out>,
    /// Runs and bytes spilled, kept after the folder is removed.
    spilled: (u64, u64),
    /// The stage's counters: the number of winners is announced as the expected output.
    metrics: Arc<crate::stage::StageMetrics>,
}

impl Compact {
    fn new(cfg: &CompactConfig, metrics: Arc<crate::stage::StageMetrics>) -> Compact {
        Compact {
            key: cfg.key.0.clone(),
            tombstone: cfg.tombstone.as_ref().map(|t| t.0.clone()),
            keep_tombstones: cfg.keep_tombstones,
            limit: usize::try_from(cfg.memory_limit.bytes()).unwrap_or(usize::MAX),
            on_missing: cfg.on_missing_key,
            per_window: cfg.per_window,
            spill_parent: cfg.spill_dir.as_ref().map(PathBuf::from),
            under: cfg.under.clone(),
            under_path: vec![cfg.under.clone()],
            key_buf: Vec::new(),
            probe: cfg.probe(),
            clocks: order::ShardClocks::default(),
            table: HashMap::new(),
            held: 0,
            spill: None,
            runs: Vec::new(),
            out: None,
            spilled: (0, 0),
            metrics,
        }
    }

    /// The runs and bytes spilled so far (for tests and the log).
    pub fn spilled(&self) -> (u64, u64) {
        self.spill
            .as_ref()
            .map_or(self.spilled, |d| (d.runs, d.written))
    }

    fn table_bytes(&self, capacity: usize) -> usize {
        self.held + capacity * SLOT
    }

    /// Adds one record to the state; `Err((record, reason))` when it has no key. Fences of the
    /// replay protocol are left out and counted as skipped.
    fn add(&mut self, record: Record) -> anyhow::Result<Result<(), (Record, String)>> {
        // A record that claims the protocol but breaks its format ranks as a live record; the
        // `annotate` of a replay sends it to its dead-letter port with the reason.
        // One scan of the payload finds the key and the protocol's member (where the key is
        // a path into the payload).
        let found = self
            .key
            .extract_with_member(&record, &self.under_path, self.probe.as_ref());
        let marker = match found.member {
            Some(None) => Ok(Marker::Live),
            Some(Some(member)) => crate::replay::marker_of_member(member, &self.under),
            None => crate::replay::parse_marker(&record.data, &self.under),
        };
        let origin = match marker {
            Ok(Marker::Fence(_)) => {
                crate::stage::StageMetrics::add(&self.metrics.skipped, 1);
                return Ok(Ok(()));
            }
            Ok(Marker::Replayed(copy)) => Some(Box::new(copy.origin)),
            Ok(Marker::Live) | Err(_) => None,
        };
        let Some(key) = found.key else {
            let reason = format!("key path `{}` selects no value", self.key.source());
            return Ok(Err((record, reason)));
        };
        // The key is copied out, so the record can move into the state.
        let mut key_buf = std::mem::take(&mut self.key_buf);
        key_buf.clear();
        if self.per_window {
            let Some(prefix) = window_prefix(&record) else {
                let reason = "no `window` annotation {start, end} (per_window = true needs a `window` transform upstream)";
                return Ok(Err((record, reason.into())));
            };
            key_buf.extend_from_slice(&prefix);
        }
        key_buf.extend_from_slice(&key);
        let item = Ranked {
            ms: self.clocks.effective_ms(&record),
            origin,
            record,
        };
        let result = self.keep(&key_buf, item);
        self.key_buf = key_buf;
        result.map(Ok)
    }

    /// Keeps `item` as the winner of `key` if it outranks the one kept.
    fn keep(&mut self, key: &[u8], item: Ranked) -> anyhow::Result<()> {
        if let Some(kept) = self.table.get_mut(key) {
            if order::compare(&item, kept) == std::cmp::Ordering::Greater {
                let old = ranked_bytes(key.len(), kept);
                let new = ranked_bytes(key.len(), &item);
                *kept = item;
                self.held = self.held - old + new;
            }
        } else {
            // A full table doubles: old and new tables live at once while it grows.
            if self.table.len() == self.table.capacity()
                && self.table_bytes(3 * self.table.capacity().max(3)) > self.limit
                && !self.table.is_empty()
            {
                self.spill_table()?;
            }
            let key: Box<[u8]> = key.into();
            self.held += ranked_bytes(key.len(), &item);
            self.table.insert(key, item);
        }
        if self.table_bytes(self.table.capacity()) > self.limit {
            self.spill_table()?;
        }
        Ok(())
    }

    /// Writes the table as a run sorted by key and empties it.
    fn spill_table(&mut self) -> anyhow::Result<()> {
        if self.table.is_empty() {
            return Ok(());
        }
        if self.spill.is_none() {
            let dir = SpillDir::new(self.spill_parent.as_deref())?;
            tracing::info!(
                "compact: state passed memory_limit ({} bytes); spilling sorted runs to {}",
                self.limit,
                dir.path().display()
            );
            self.spill = Some(dir);
        }
        let dir = self.spill.as_mut().expect("created above");
        let mut entries: Vec<(&Box<[u8]>, &Ranked)> = self.table.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut run = dir.create()?;
        for (key, kept) in entries {
            run.write(key, kept)?;
        }
        self.runs.push(run.finish(dir)?);
        // Emptied, its slots kept (they count against the limit all along): a table grown
        // anew through every doubling left each smaller one behind in the allocator.
        self.table.clear();
        self.held = 0;
        Ok(())
    }

    fn is_tombstone(&self, record: &Record) -> bool {
        let Some(p) = &self.tombstone else {
            return false;
        };
        if !p.needs_data() {
            p.matches(record.view(serde_json::Value::Null))
        } else {
            p.may_match(&record.data) && p.matches(record.view(record.data_view()))
        }
    }

    /// Whether a winner is written.
    fn survives(&self, record: &Record) -> bool {
        self.keep_tombstones || !self.is_tombstone(record)
    }
}

/// The key prefix of a record's window: both bounds as JSON text, length-prefixed.
fn window_prefix(r: &Record) -> Option<Vec<u8>> {
    let window = r.annotations.as_ref()?.get("window")?;
    let mut out = Vec::with_capacity(64);
    for bound in ["start", "end"] {
        let text = serde_json::to_vec(window.get(bound)?).ok()?;
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(&text);
    }
    Some(out)
}

impl StatefulTransform for Compact {
    fn process(&mut self, batch: Arc<Batch>, emit: &mut Emit) -> anyhow::Result<()> {
        // Records of a batch no other stage reads are moved into the state, not cloned.
        let records = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
        for record in records {
            if let Err((record, reason)) = self.add(record)? {
                match self.on_missing {
                    OnMissingKey::DeadLetter => emit.rejected.push(Rejected { record, reason }),
                    OnMissingKey::Error => anyhow::bail!(
                        "{} {} sequence {}: {reason} (on_missing_key = \"dead_letter\" sends such records to the dead-letter port)",
                        record.stream,
                        record.shard_id,
                        record.sequence_number
                    ),
                }
            }
        }
        Ok(())
    }

    /// Barriers pass without flushing: the output is only known at the end (module doc).
    fn barrier(&mut self, _id: u64, _emit: &mut Emit) -> anyhow::Result<()> {
        Ok(())
    }

    fn finish(&mut self, emit: &mut Emit) -> anyhow::Result<Drain> {
        if self.out.is_none() {
            let out = self.prepare_output()?;
            if let Some(dir) = &self.spill {
                tracing::info!(
                    runs = dir.runs,
                    bytes = dir.written,
                    "compact: merged spilled runs"
                );
            }
            self.out = Some(out);
        }
        let mut out = self.out.take().expect("set above");
        while emit.records.len() < OUT_BATCH {
            let next = match &mut out {
                Out::Memory(it) => it.next().map(|k| k.record),
                Out::Runs(m) => m.next_entry()?.map(|e| e.item.record),
            };
            let Some(record) = next else {
                // Done: the spill folder goes now.
                self.spilled = self.spilled();
                self.spill = None;
                return Ok(Drain::Done);
            };
            if self.survives(&record) {
                emit.records.push(record);
            } else {
                // Progress expected the winner; a dropped tombstone lowers the count.
                self.metrics.expect_one_less();
            }
        }
        self.out = Some(out);
        Ok(Drain::More)
    }
}

#[cfg(test)]
mod tests;
