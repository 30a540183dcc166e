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

mod config;
pub use config::{ArchiveSourceConfig, Order, SequenceRange};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::io::SyncIoBridge;

use super::file::unparsed_line;
use super::lines::{buffered, read_lines_into};
use super::ordered::{Emitter, by_arrival, by_shard as by_shard_order, interleaved};
use crate::archive::layout::{self, DataObject};
use crate::names::StreamName;
use crate::record::{Interner, Record, SequenceNumber};
use crate::stage::{Rejected, Source, SourceContext};
use crate::store::{self, ObjectStore};
use crate::units::Timestamp;

/// The running `archive` source.
pub struct ArchiveSource {
    store: Arc<dyn ObjectStore>,
    config: ArchiveSourceConfig,
    prefilter: Option<crate::expr::Prefilter>,
}

/// A shard's inclusive sequence bounds.
type SeqBounds = (Option<SequenceNumber>, Option<SequenceNumber>);

/// The bounds a record must fall in.
#[derive(Clone)]
struct Bounds {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    shards: Option<Vec<String>>,
    sequences: Arc<std::collections::BTreeMap<String, SeqBounds>>,
}

impl Bounds {
    fn object_may_hold(&self, obj: &DataObject) -> bool {
        let hour_end = obj.hour + Duration::hours(1);
        let in_range = match (self.sequences.get(obj.shard_id.as_str()), &obj.range) {
            (Some((from, to)), Some((first, last))) => {
                from.as_ref().is_none_or(|f| last >= f) && to.as_ref().is_none_or(|t| first <= t)
            }
            _ => true,
        };
        in_range
            && self.from.is_none_or(|f| hour_end > f)
            && self.to.is_none_or(|t| obj.hour < t)
            && self
                .shards
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == obj.shard_id.as_str()))
    }

    fn holds(&self, r: &Record) -> bool {
        let in_range = self.sequences.is_empty()
            || self.sequences.get(&*r.shard_id).is_none_or(|(from, to)| {
                from.as_ref().is_none_or(|f| r.sequence_number >= *f)
                    && to.as_ref().is_none_or(|t| r.sequence_number <= *t)
            });
        in_range
            && self.from.is_none_or(|f| r.arrival_ts >= f)
            && self.to.is_none_or(|t| r.arrival_ts < t)
            && self
                .shards
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| **x == *r.shard_id))
    }
}

/// Lists the data objects of `stream` that may hold records within the bounds, in read order.
async fn plan_objects(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    bounds: &Bounds,
) -> anyhow::Result<(Vec<DataObject>, usize, ObjectSizes)> {
    let listed = store.list(&layout::stream_prefix(stream)).await?;
    let sizes: ObjectSizes = Arc::new(listed.iter().map(|m| (m.key.clone(), m.size)).collect());
    let all: Vec<DataObject> = listed
        .iter()
        .filter_map(|m| layout::parse_data_key(stream, &m.key))
        .collect();
    let total = all.len();
    let mut chosen: Vec<DataObject> = all
        .into_iter()
        .filter(|o| bounds.object_may_hold(o))
        .collect();
    chosen.sort_by(|a, b| {
        (a.hour, &a.shard_id, a.range.as_ref().map(|r| &r.0))
            .cmp(&(b.hour, &b.shard_id, b.range.as_ref().map(|r| &r.0)))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok((chosen, total, sizes))
}

/// The stored size of each listed object, by key.
type ObjectSizes = Arc<std::collections::HashMap<String, u64>>;

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
        for (_, list) in by_shard {
            let (tx, rx) = tokio::sync::mpsc::channel(self.config.prefetch);
            streams.push(rx);
            let reader = ShardReader {
                store: self.store.clone(),
                stream: stream.clone(),
                bounds: bounds.clone(),
                batch_records: read_batch,
                prefilter: self.prefilter.clone(),
                tx,
                stop: stop_readers.clone(),
                skip_fences: skip_fences.clone(),
                sizes: sizes.clone(),
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

/// Reads the objects of one shard in order into the source's shared channel.
struct ShardReader {
    store: Arc<dyn ObjectStore>,
    stream: StreamName,
    bounds: Bounds,
    batch_records: usize,
    prefilter: Option<crate::expr::Prefilter>,
    tx: tokio::sync::mpsc::Sender<Result<super::lines::Parsed, String>>,
    /// Cancelled when the source ends: the reader stops at once.
    stop: tokio_util::sync::CancellationToken,
    /// With `skip_fences`: the protocol member, and the fences left out so far (all shards).
    skip_fences: Option<(Arc<str>, Arc<std::sync::atomic::AtomicU64>)>,
    /// Stored sizes of the listed objects.
    sizes: ObjectSizes,
    /// The source's counters (objects read and their bytes).
    metrics: Arc<crate::stage::StageMetrics>,
}

impl ShardReader {
    async fn read(self, objects: Vec<DataObject>) {
        for obj in objects {
            if self.stop.is_cancelled() {
                return;
            }
            // Objects are streamed and decompressed on a blocking thread, never held whole.
            let opened = tokio::select! {
                r = self.store.get_stream(&obj.key) => r,
                _ = self.stop.cancelled() => return,
            };
            let stream = match opened {
                Ok(s) => {
                    let objects = &self.metrics.objects;
                    objects
                        .read
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    objects.bytes.fetch_add(
                        self.sizes.get(&obj.key).copied().unwrap_or(0),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    store::stop_reading_on(s, self.stop.clone())
                }
                Err(e) => {
                    let _ = self
                        .tx
                        .send(Err(format!("{}: {e}", self.store.url())))
                        .await;
                    return;
                }
            };
            let reader = SyncIoBridge::new(stream);
            let what = format!("{}/{}", self.store.url(), obj.key);
            let gzip = obj.gzip;
            let bounds = self.bounds.clone();
            let mut interner = Interner::default();
            let key = obj.key.clone();
            let stream_name = self.stream.clone();
            let shard = obj.shard_id.clone();
            let prefilter = self.prefilter.clone();
            let tx = self.tx.clone();
            let batch_records = self.batch_records;
            let skip_fences = self.skip_fences.clone();
            // Batches go straight into the shard's channel (its `prefetch` is the read-ahead).
            let more = tokio::task::spawn_blocking(move || {
                read_lines_into(
                    what,
                    move || Ok(buffered(Box::new(reader), gzip)),
                    batch_records,
                    false,
                    move |line_no, text, out| match prefilter
                        .as_ref()
                        .is_some_and(|p| !p.may_match_envelope(text))
                    {
                        // The line cannot hold a payload the filter downstream keeps.
                        true => out.skipped += 1,
                        false => match Record::parse_envelope(text, &mut interner) {
                            // Every record of an object belongs to the stream and shard its
                            // folders name; anything else is not this stream's record.
                            Ok(r) if *r.stream != *stream_name || *r.shard_id != *shard => {
                                out.rejected.push(Rejected {
                                    reason: format!(
                                        "{key}: line {line_no}: the record names another stream or shard than the folders it lies in (stream={stream_name}/…/shard={shard}/)"
                                    ),
                                    record: r,
                                })
                            }
                            Ok(r) if skip_fences.as_ref().is_some_and(|(under, _)| {
                                matches!(
                                    crate::replay::parse_marker(&r.data, under),
                                    Ok(crate::replay::Marker::Fence(_))
                                )
                            }) =>
                            {
                                out.skipped += 1;
                                if let Some((_, n)) = &skip_fences {
                                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            Ok(r) if bounds.holds(&r) => out.records.push(r),
                            Ok(_) => out.skipped += 1,
                            Err(e) => out.rejected.push(Rejected {
                                record: unparsed_line(&key, line_no, text),
                                reason: format!("{key}: line {line_no}: {e}"),
                            }),
                        },
                    },
                    &tx,
                )
            })
            .await;
            match more {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = self
                        .tx
                        .send(Err(format!(
                            "{}/{}: reader failed: {e}",
                            self.store.url(),
                            obj.key
                        )))
                        .await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
