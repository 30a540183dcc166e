//! `archive` source: every record of one stream in an archive, optionally bounded.
//!
//! ```toml
//! [sources.archive]
//! type = "archive"
//! url = "file://./archive"
//! stream = "orders"
//! from = "2026-11-25T10:00:00Z"     # inclusive, arrival time
//! to = "2026-11-25T14:00:00Z"       # exclusive
//! ```
//!
//! Objects are chosen by their partition folders first (`dt=`/`hour=` against `from`/`to`,
//! `shard=` against `shards`), so a bounded read never opens an object outside its bounds; the
//! records inside are then filtered exactly (also by per-shard `sequences` ranges). Each shard's
//! objects are read in (hour, first sequence) order by a reader of its own, so each shard's
//! records come in sequence order, `prefetch` batches ahead. The output order is
//! `order = "arrival"` (default: all shards merged by arrival time, see [`super::ordered`]) or
//! `order = "shard"` (one shard after another, `concurrency` shards read ahead) or
//! `order = "interleaved"` (`concurrency` shards at once, batches sent as ready); `limit` stops
//! after that many records. A line that is not an envelope goes to the dead-letter route with its
//! object key and line number; an object that cannot be read (gzip, I/O) stops the run naming it.

mod bounds;
mod config;
mod reader;
pub use config::{ArchiveSourceConfig, Order, SequenceRange};

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::ordered::{Emitter, by_arrival, by_shard as by_shard_order, interleaved};
use crate::archive::layout::DataObject;
use crate::names::StreamName;
use crate::record::SequenceNumber;
use crate::stage::{Source, SourceContext};
use crate::store::{self, ObjectStore};
use crate::units::Timestamp;
use bounds::{Bounds, plan_objects};
use reader::ShardReader;

/// The running `archive` source.
pub struct ArchiveSource {
    store: Arc<dyn ObjectStore>,
    config: ArchiveSourceConfig,
    prefilter: Option<crate::expr::Prefilter>,
    /// The payload paths to note on every record (see [`crate::json::probe`]).
    probe: Option<crate::json::probe::PayloadProbe>,
}

/// A shard's inclusive sequence bounds.
type SeqBounds = (Option<SequenceNumber>, Option<SequenceNumber>);

#[async_trait]
impl Source for ArchiveSource {
    async fn run(&mut self, ctx: &mut SourceContext) -> anyhow::Result<()> {
        let mut sequences = std::collections::BTreeMap::new();
        for (shard, range) in &self.config.sequences {
            sequences.insert(
                shard.clone(),
                range.parse(shard).map_err(anyhow::Error::msg)?,
            );
        }
        let bounds = Bounds {
            from: self.config.from.map(|t| t.0),
            to: self.config.to.map(|t| t.0),
            shards: self.config.shards.clone(),
            sequences: Arc::new(sequences),
        };
        let stream = StreamName::parse(&self.config.stream).map_err(anyhow::Error::msg)?;
        self.store.check_root().await?;
        let (objects, total, sizes) = plan_objects(&self.store, &stream, &bounds).await?;
        let metrics = ctx.output.metrics().clone();
        metrics
            .objects
            .listed
            .store(total as u64, std::sync::atomic::Ordering::Relaxed);
        metrics.objects.pruned.store(
            (total - objects.len()) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if total == 0 {
            tracing::warn!(
                stage = ctx.output.stage(),
                "the archive {} holds no objects of stream {}: check the stream name and the archive root",
                self.store.url(),
                self.config.stream
            );
        } else if objects.is_empty() {
            tracing::warn!(
                stage = ctx.output.stage(),
                "none of the {total} archived objects of stream {} falls within the bounds (from, to, shards): this read finds no records",
                self.config.stream
            );
        }
        // One reader per shard (its objects in sequence order), in shard id order.
        let mut by_shard: std::collections::BTreeMap<String, Vec<DataObject>> =
            std::collections::BTreeMap::new();
        for obj in objects.iter() {
            by_shard
                .entry(obj.shard_id.to_string())
                .or_default()
                .push(obj.clone());
        }
        // Merging by arrival needs every shard's head at once; shard order reads
        // `concurrency` shards ahead (permits are granted in shard order, so the shard being
        // sent always holds one).
        let concurrency = match self.config.order {
            Order::Arrival => by_shard.len(),
            Order::Shard | Order::Interleaved => self.config.concurrency.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            }),
        };
        tracing::info!(
            stage = ctx.output.stage(),
            stream = %self.config.stream,
            objects = objects.len(),
            pruned = total - objects.len(),
            shards = by_shard.len(),
            order = ?self.config.order,
            "reading archive {}",
            self.store.url()
        );
        if self.config.order == Order::Arrival && by_shard.len() > MAX_ARRIVAL_SHARDS {
            anyhow::bail!(
                "order = \"arrival\" merges every shard at once, and this read has {} shards (at most {MAX_ARRIVAL_SHARDS}); use order = \"interleaved\" or \"shard\", or fewer `shards`",
                by_shard.len()
            );
        }
        let read_batch = reader_batch(
            self.config.order,
            by_shard.len(),
            self.config.prefetch,
            self.config.batch_records,
        );
        let mut streams = Vec::with_capacity(by_shard.len());
        let mut shard_readers = Vec::with_capacity(by_shard.len());
        // Readers stop when this source ends, however it ends: returning (below, where they
        // are also awaited) or dropped mid-run (the run failed elsewhere; the guard cancels).
        let stop_readers = tokio_util::sync::CancellationToken::new();
        let _stop_on_drop = stop_readers.clone().drop_guard();
        let fences_skipped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let skip_fences = self.config.skip_fences.then(|| {
            (
                Arc::from(self.config.under.as_str()),
                fences_skipped.clone(),
            )
        });
        // A reader inflates on a thread of its own when the shards read at once leave cores
        // idle (the end of an interleaved read, a single shard): each then holds two
        // threads of the blocking pool, which an arrival merge of thousands of shards would not
        // fit in (see [`MAX_ARRIVAL_SHARDS`]).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let read_ahead = concurrency.min(by_shard.len()) <= cores;
        let mut lists: Vec<Vec<DataObject>> = by_shard.into_values().collect();
        if self.config.order == Order::Interleaved {
            largest_first(&mut lists, &sizes);
        }
        for list in lists {
            let (tx, rx) = tokio::sync::mpsc::channel(self.config.prefetch);
            streams.push(rx);
            let reader = ShardReader {
                store: self.store.clone(),
                stream: stream.clone(),
                bounds: bounds.clone(),
                batch_records: read_batch,
                prefilter: self.prefilter.clone(),
                probe: self.probe.clone(),
                tx,
                stop: stop_readers.clone(),
                skip_fences: skip_fences.clone(),
                sizes: sizes.clone(),
                read_ahead,
                metrics: metrics.clone(),
            };
            shard_readers.push((reader, list));
        }
        // Readers start in shard order as permits free up, so the shard being sent (the
        // earliest unfinished one) always runs and later ones can only read ahead.
        let launch_stop = stop_readers.clone();
        let launcher = tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
            let mut readers = tokio::task::JoinSet::new();
            for (reader, list) in shard_readers {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => p,
                    _ = launch_stop.cancelled() => break,
                };
                let Ok(permit) = permit else { break };
                readers.spawn(async move {
                    reader.read(list).await;
                    drop(permit);
                });
            }
            // Not aborted: a reader's blocking half cannot be, so each is awaited to its end.
            while readers.join_next().await.is_some() {}
        });
        let mut out = Emitter::new(ctx, self.config.batch_records, self.config.limit);
        let result = match self.config.order {
            Order::Arrival => by_arrival(streams, &mut out).await,
            Order::Shard => by_shard_order(streams, &mut out).await,
            Order::Interleaved => interleaved(streams, &mut out).await,
        };
        // The merge is done (or failed, or hit `limit`) and its channels are closed: stop the
        // readers still reading and wait for them, so nothing of this source is left running
        // on the runtime after it returns (a reader thread using the runtime while it shuts
        // down panics).
        stop_readers.cancel();
        if tokio::time::timeout(READERS_STOP_WITHIN, launcher)
            .await
            .is_err()
        {
            tracing::warn!(
                stage = ctx.output.stage(),
                "archive readers did not stop within {READERS_STOP_WITHIN:?}"
            );
        }
        let fences = fences_skipped.load(std::sync::atomic::Ordering::Relaxed);
        if fences > 0 {
            tracing::info!(
                stage = ctx.output.stage(),
                fences,
                "left out {fences} fences of earlier replays (skip_fences = true; counted as skipped)"
            );
        }
        result
    }
}

/// Orders the shards of an interleaved read largest first (by the stored bytes of their
/// objects; equal sizes keep shard id order). Readers start in this order as permits free up,
/// so the largest shards are not left to be read alone at the end while other cores idle
/// (longest-first scheduling: on the 4 shards of the compaction benchmark, the last reader
/// finished 0.4 s after the other in shard id order).
fn largest_first(lists: &mut [Vec<DataObject>], sizes: &bounds::ObjectSizes) {
    let bytes = |list: &Vec<DataObject>| -> u64 {
        list.iter()
            .map(|o| sizes.get(&o.key).copied().unwrap_or(0))
            .sum()
    };
    lists.sort_by_cached_key(|list| std::cmp::Reverse(bytes(list)));
}

/// How long a source waits for its readers to stop once it has ended (each stops at its next
/// read or send; a read waiting on the network ends at once).
const READERS_STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Shards an arrival-order read may merge: each holds a reader thread while it waits for the
/// merge, so they must all fit in the runtime's blocking pool ([`BLOCKING_THREADS`]) with room
/// for the file reads and other blocking work.
pub const MAX_ARRIVAL_SHARDS: usize = 3072;

/// The blocking thread pool the engine's runtime needs for this source (declared by
/// [`crate::registry::StageConfig::resources`]; the engine's runtime sizes its pool from it).
pub const BLOCKING_THREADS: usize = 4096;

/// Records the read-ahead of an arrival-order merge may hold in all (about 64 MB of typical
/// records). Every shard is open in that order, each holding `prefetch + 2` batches (queued,
/// being filled, being merged); past this, each shard reads in smaller batches.
const MERGE_READ_AHEAD_RECORDS: usize = 64 * 1024;

/// The batch size of each shard's reader: `batch_records`, made smaller for an arrival-order
/// merge of many shards so that its read-ahead stays within [`MERGE_READ_AHEAD_RECORDS`]
/// (at least 16 records). The source's output batches keep `batch_records`.
fn reader_batch(order: Order, shards: usize, prefetch: usize, batch_records: usize) -> usize {
    match order {
        Order::Arrival => {
            let per_shard = MERGE_READ_AHEAD_RECORDS / (shards.max(1) * (prefetch + 2));
            batch_records.min(per_shard.max(16))
        }
        Order::Shard | Order::Interleaved => batch_records,
    }
}

#[cfg(test)]
mod tests;
