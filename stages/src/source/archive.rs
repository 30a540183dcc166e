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

/// Reads the records of one stream from an archive (a local directory or, later, S3).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSourceConfig {
    /// The archive root: `file:///abs/dir`, `file://./rel/dir` or a plain path.
    pub url: String,
    /// The stream to read.
    pub stream: String,
    /// Only records that arrived at or after this time (RFC 3339).
    #[serde(default)]
    pub from: Option<Timestamp>,
    /// Only records that arrived before this time (RFC 3339, exclusive).
    #[serde(default)]
    pub to: Option<Timestamp>,
    /// Only these shards (e.g. `["shardId-000000000001"]`); all when absent.
    #[serde(default)]
    pub shards: Option<Vec<String>>,
    /// Per-shard sequence bounds, inclusive at both ends, e.g.
    /// `sequences = { "shardId-000000000001" = { from = "4959…", to = "4960…" } }`. Shards not
    /// named are not bounded by sequence (use `shards` to read only some shards).
    #[serde(default)]
    pub sequences: std::collections::BTreeMap<String, SequenceRange>,
    /// Output order: `arrival` (default; shards merged by arrival time), `shard` (one shard
    /// after another) or `interleaved` (shards read at once, batches sent as ready). Each
    /// shard's records are in sequence order in every case.
    #[serde(default)]
    pub order: Order,
    /// Stop after this many records (after bounds, in output order).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u64>,
    /// Batches read ahead per shard. Default 2.
    #[serde(default = "default_prefetch")]
    #[schemars(range(min = 1))]
    pub prefetch: usize,
    /// Records per batch. Default 1024.
    #[serde(default = "default_batch")]
    #[schemars(range(min = 1))]
    pub batch_records: usize,
    /// How to reach S3 (region, profile, endpoint) for `s3://` URLs.
    #[serde(default)]
    pub aws: crate::aws::AwsSettings,
    /// Shards read at the same time (each shard's objects in order). Default: the number of
    /// CPUs.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub concurrency: Option<usize>,
    /// Leave out the fences earlier replays wrote into the stream (and so into its archive;
    /// docs/replay-protocol.md), counted as skipped. Default false: the archive as it is. The
    /// replay template sets it: a fence is not a record to replay.
    #[serde(default)]
    pub skip_fences: bool,
    /// The payload member the replay protocol uses. Default `_flux` (as `annotate`'s `under`).
    #[serde(default = "default_under")]
    pub under: String,
}

fn default_under() -> String {
    crate::replay::DEFAULT_KEY.into()
}

fn default_batch() -> usize {
    1024
}
fn default_prefetch() -> usize {
    2
}

/// The order records leave the `archive` source in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// All shards merged by arrival time (ties: shard id order).
    #[default]
    Arrival,
    /// One shard after another, in shard id order.
    Shard,
    /// Shards read at the same time (`concurrency` at once), their batches sent as they are
    /// ready: each shard's records in sequence order, shards interleaved in no set order. The
    /// fastest order, for stages that need no cross-shard order (`compact`, `filter` into a
    /// file).
    Interleaved,
}

/// An inclusive range of sequence numbers of one shard.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceRange {
    /// The first sequence number to read (inclusive); from the shard's start when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// The last sequence number to read (inclusive); to the shard's end when absent.
    #[serde(default)]
    pub to: Option<String>,
}

impl SequenceRange {
    fn parse(&self, shard: &str) -> Result<SeqBounds, String> {
        let one = |v: &Option<String>, key: &str| {
            v.as_deref()
                .map(SequenceNumber::parse)
                .transpose()
                .map_err(|e| format!("`sequences.{shard}.{key}`: {e}"))
        };
        let (from, to) = (one(&self.from, "from")?, one(&self.to, "to")?);
        if let (Some(f), Some(t)) = (&from, &to)
            && f > t
        {
            return Err(format!(
                "`sequences.{shard}`: `from` ({f}) is after `to` ({t})"
            ));
        }
        Ok((from, to))
    }
}

impl ArchiveSourceConfig {
    /// Checks bounds and the URL.
    pub fn validate(&self) -> Result<(), String> {
        store::check_url(&self.url).map_err(|e| format!("`url`: {e}"))?;
        StreamName::parse(&self.stream).map_err(|e| format!("`stream`: {e}"))?;
        for shard in self.shards.iter().flatten() {
            crate::names::ShardId::parse(shard).map_err(|e| format!("`shards`: {e}"))?;
        }
        for shard in self.sequences.keys() {
            crate::names::ShardId::parse(shard).map_err(|e| format!("`sequences`: {e}"))?;
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(format!(
                "`from` ({}) must be before `to` ({})",
                crate::record::format_ts(&from.0),
                crate::record::format_ts(&to.0)
            ));
        }
        if self.batch_records == 0 {
            return Err("`batch_records` must be at least 1".into());
        }
        if self.under.is_empty() {
            return Err(
                "`under` must name the replay protocol's payload member, e.g. \"_flux\"".into(),
            );
        }
        if self.concurrency == Some(0) {
            return Err("`concurrency` must be at least 1".into());
        }
        if self.prefetch == 0 {
            return Err("`prefetch` must be at least 1".into());
        }
        if self.limit == Some(0) {
            return Err("`limit` must be at least 1 (leave it out to read everything)".into());
        }
        for (shard, range) in &self.sequences {
            range.parse(shard)?;
        }
        Ok(())
    }

    /// Builds the source; `prefilter` is a pushed-down filter's raw-bytes pre-check (see
    /// [`crate::registry::BuildContext::pushdown`]).
    pub fn build(
        &self,
        prefilter: Option<crate::expr::Prefilter>,
    ) -> Result<Box<dyn Source>, String> {
        self.validate()?;
        Ok(Box::new(ArchiveSource {
            store: store::open_with(
                &self.url,
                &store::StoreOptions {
                    aws: self.aws.clone(),
                    ..Default::default()
                },
            )?,
            config: self.clone(),
            prefilter: prefilter.filter(crate::expr::Prefilter::is_useful),
        }))
    }
}

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

impl crate::registry::StageKind for ArchiveSourceConfig {
    fn validate(&self) -> Result<(), String> {
        ArchiveSourceConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        ArchiveSourceConfig::build(self, ctx.pushdown.clone())
            .map(crate::registry::BuiltStage::Source)
    }

    fn source_stream(&self) -> Option<&str> {
        Some(&self.stream)
    }

    fn place(&self) -> Option<Result<crate::registry::Place, String>> {
        Some(
            store::locate(&self.url, self.aws.endpoint.as_deref())
                .map(crate::registry::Place::Archive),
        )
    }

    fn accepts_pushdown(&self) -> bool {
        true
    }

    /// An arrival-order read keeps one reader thread per shard open at once.
    fn resources(&self) -> crate::registry::Resources {
        crate::registry::Resources {
            blocking_threads: BLOCKING_THREADS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arrival_merge_of_many_shards_reads_in_smaller_batches() {
        // 4 shards: 4 × 4 × 1024 records, within the read-ahead.
        assert_eq!(reader_batch(Order::Arrival, 4, 2, 1024), 1024);
        // 200 shards: 65536 / (200 × 4) = 81 records per batch.
        assert_eq!(reader_batch(Order::Arrival, 200, 2, 1024), 81);
        assert_eq!(reader_batch(Order::Arrival, 5000, 2, 1024), 16);
        assert_eq!(reader_batch(Order::Shard, 200, 2, 1024), 1024);
        assert_eq!(reader_batch(Order::Interleaved, 200, 2, 1024), 1024);
    }
}
