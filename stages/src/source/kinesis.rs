//! `kinesis` source: reads a Kinesis stream's shards with GetRecords (aws-sdk-kinesis).
//!
//! ```toml
//! [sources.stream]
//! type = "kinesis"
//! stream = "orders"                 # name or ARN
//! start = "checkpoint"              # resume after the archive's checkpoints
//! checkpoints = "s3://acme-archive/kinesis"
//! stop = "caught_up"                # or "never"
//! ```
//!
//! - Shards come from ListShards (paginated); a selected list narrows them.
//! - A child shard is read only after all its parents (split and merge) were read to their end,
//!   so the records of a partition key keep their order across resharding.
//! - Each shard is read by its own task, at most one GetRecords call per `poll_interval`
//!   (default 200 ms: Kinesis allows 5 per second per shard) and no faster than 2 MB/s.
//!   Throttling and 5xx are retried by the SDK (adaptive, jittered); persistent throttling backs
//!   off further here; an expired iterator is renewed after the last record read.
//! - `stop = "caught_up"` ends the run when every open shard reported `MillisBehindLatest = 0`
//!   with nothing more to read and every closed shard was read to its end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::archive::state::read_checkpoints;
use crate::aws::{AwsSettings, describe, sdk_config};
use crate::record::{Record, SequenceNumber, kinesis_millis, ts_from_millis};
use crate::source::kpl;
use crate::stage::{Rejected, Source, SourceContext, StageMetrics};
use crate::store;
use crate::units::{Duration as Dur, Timestamp};

/// Where each shard starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// The oldest record still in the stream.
    #[default]
    TrimHorizon,
    /// Only records that arrive after the run starts.
    Latest,
    /// Records that arrived at or after `timestamp`.
    AtTimestamp,
    /// Just after the last archived record of each shard (from `checkpoints`); shards never
    /// archived start at the trim horizon.
    Checkpoint,
}

/// When the source ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopAt {
    /// When every open shard is caught up and every closed shard was read to its end.
    #[default]
    CaughtUp,
    /// Never (until Ctrl-C): a continuous archiver.
    Never,
}

/// Reads records from a Kinesis data stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KinesisSourceConfig {
    /// The stream's name or ARN.
    pub stream: String,
    /// Only these shards (and, after resharding, their descendants); all when absent.
    #[serde(default)]
    pub shards: Option<Vec<String>>,
    /// `trim_horizon` (default), `latest`, `at_timestamp` or `checkpoint`.
    #[serde(default)]
    pub start: StartAt,
    /// The time for `start = "at_timestamp"`.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    /// The archive whose checkpoints `start = "checkpoint"` resumes from (`s3://…`, `file://…`).
    #[serde(default)]
    pub checkpoints: Option<String>,
    /// `caught_up` (default) or `never`.
    #[serde(default)]
    pub stop: StopAt,
    /// Records per GetRecords call, at most 10000 (the default).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: i32,
    /// Least time between two GetRecords calls on one shard. Default "200ms".
    #[serde(default = "default_poll")]
    pub poll_interval: Dur,
    /// Time between calls on a shard that returned nothing. Default "1s".
    #[serde(default = "default_idle")]
    pub idle_interval: Dur,
    /// With `stop = "never"`: how often downstream stages checkpoint. Default "1m".
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: Dur,
    /// With `start = "checkpoint"`: archive what is left even when records expired between a
    /// shard's checkpoint and the oldest record still in the stream (a gap). The gap is recorded
    /// in the archive under `_flux/gaps/`. Default false: the run refuses to start.
    #[serde(default)]
    pub allow_gaps: bool,
    /// Split KPL-aggregated records into their user records (each with its own partition key
    /// and a `sub_sequence_number`), as the KCL does. A corrupt aggregate goes to the
    /// dead-letter route. Default true; false passes aggregates on as single records.
    #[serde(default = "default_true")]
    pub deaggregate: bool,
    /// Region, profile, endpoint.
    #[serde(default)]
    pub aws: AwsSettings,
}

fn default_true() -> bool {
    true
}
fn default_limit() -> i32 {
    10_000
}
fn default_poll() -> Dur {
    Dur(Duration::from_millis(200))
}
fn default_idle() -> Dur {
    Dur(Duration::from_secs(1))
}
fn default_checkpoint_interval() -> Dur {
    Dur(Duration::from_secs(60))
}

impl KinesisSourceConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        crate::names::check_configured_stream(&self.stream)
            .map_err(|e| format!("`stream`: {e}"))?;
        for shard in self.shards.iter().flatten() {
            crate::names::ShardId::parse(shard).map_err(|e| format!("`shards`: {e}"))?;
        }
        if !(1..=10_000).contains(&self.limit) {
            return Err("`limit` must be between 1 and 10000".into());
        }
        match self.start {
            StartAt::AtTimestamp if self.timestamp.is_none() => {
                return Err("`timestamp` is required with start = \"at_timestamp\"".into());
            }
            StartAt::Checkpoint if self.checkpoints.is_none() => {
                return Err(
                    "`checkpoints` (the archive URL) is required with start = \"checkpoint\""
                        .into(),
                );
            }
            _ => {}
        }
        if self.checkpoint_interval.0.is_zero() {
            return Err("`checkpoint_interval` must be longer than 0s".into());
        }
        if let Some(url) = &self.checkpoints {
            store::check_url(url).map_err(|e| format!("`checkpoints`: {e}"))?;
        }
        Ok(())
    }

    /// The stream's name (the last part of an ARN).
    pub fn stream_name(&self) -> &str {
        match self.stream.rsplit_once(":stream/") {
            Some((_, name)) => name,
            None => &self.stream,
        }
    }

    /// Builds the source.
    pub fn build(&self) -> Result<Box<dyn Source>, String> {
        self.validate()?;
        Ok(Box::new(KinesisSource {
            config: self.clone(),
        }))
    }
}

/// The running `kinesis` source.
pub struct KinesisSource {
    config: KinesisSourceConfig,
}

/// A shard as the scheduler knows it.
#[derive(Debug, Clone)]
struct ShardInfo {
    id: String,
    parents: Vec<String>,
    closed: bool,
}

enum Event {
    /// Records read, and aggregates that could not be split.
    Records(Vec<Record>, Vec<Rejected>),
    Done {
        shard: String,
        children: Vec<ShardInfo>,
    },
    /// A shard's `MillisBehindLatest` from its last GetRecords call.
    Behind {
        shard: String,
        millis: u64,
    },
    Failed(String),
}

/// Where the readers' time went, summed over shards (for the end-of-run log line and the
/// archive benchmark's "share of time waiting on Kinesis").
#[derive(Default)]
struct Timing {
    /// GetRecords calls made.
    calls: std::sync::atomic::AtomicU64,
    /// Nanoseconds spent inside GetRecords calls (waiting on the service).
    in_calls: std::sync::atomic::AtomicU64,
    /// Nanoseconds the readers existed.
    alive: std::sync::atomic::AtomicU64,
}

impl Timing {
    fn add(counter: &std::sync::atomic::AtomicU64, d: Duration) {
        counter.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    fn secs(counter: &std::sync::atomic::AtomicU64) -> f64 {
        counter.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    }
}

/// Adds the time from its creation to its drop to `alive`: also when the reader holding it is
/// aborted at the end of the run (its calls' time is counted as they end, so its life must be
/// too, or the waiting share could pass 100 %).
struct Alive {
    timing: Arc<Timing>,
    started: Instant,
}

impl Alive {
    fn new(timing: Arc<Timing>) -> Alive {
        Alive {
            timing,
            started: Instant::now(),
        }
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        Timing::add(&self.timing.alive, self.started.elapsed());
    }
}

struct Reader {
    timing: Arc<Timing>,
    client: Client,
    config: Arc<KinesisSourceConfig>,
    stream: Arc<str>,
    shard: ShardInfo,
    start: (ShardIteratorType, Option<String>),
    tx: mpsc::Sender<Event>,
}

impl KinesisSource {
    fn stream_param<T>(
        &self,
        builder: T,
        by_name: fn(T, String) -> T,
        by_arn: fn(T, String) -> T,
    ) -> T {
        if self.config.stream.starts_with("arn:") {
            by_arn(builder, self.config.stream.clone())
        } else {
            by_name(builder, self.config.stream.clone())
        }
    }

    /// A gap: a shard's checkpointed record is no longer in the stream and the oldest record
    /// that is comes after it, so records in between may have expired unarchived. Refuses to go
    /// on unless `allow_gaps`; then records each gap in the archive.
    async fn check_gaps(
        &self,
        client: &Client,
        archive: &Arc<dyn store::ObjectStore>,
        stream: &str,
        shards: &[ShardInfo],
        checkpoints: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeSet<String>> {
        let mut gaps = Vec::new();
        for shard in shards {
            let Some(cp) = checkpoints.get(&shard.id) else {
                continue;
            };
            let cp = SequenceNumber::parse(cp).map_err(anyhow::Error::msg)?;
            let Some((oldest, arrived)) = self.oldest_record(client, &shard.id).await? else {
                continue;
            };
            if oldest > cp {
                gaps.push(serde_json::json!({
                    "stream": stream,
                    "shard_id": shard.id,
                    "checkpoint": cp.as_str(),
                    "oldest_available": oldest.as_str(),
                    "oldest_arrival_ts": crate::record::format_ts(&arrived),
                    "found_at": crate::record::format_ts(&chrono::Utc::now()),
                }));
            }
        }
        if gaps.is_empty() {
            return Ok(BTreeSet::new());
        }
        let list: Vec<String> = gaps
            .iter()
            .map(|g| {
                format!(
                    "{} (checkpoint {}, oldest available {} from {})",
                    g["shard_id"].as_str().unwrap_or_default(),
                    g["checkpoint"].as_str().unwrap_or_default(),
                    g["oldest_available"].as_str().unwrap_or_default(),
                    g["oldest_arrival_ts"].as_str().unwrap_or_default()
                )
            })
            .collect();
        if !self.config.allow_gaps {
            anyhow::bail!(
                "GAP: records of stream {stream} expired before they were archived: the checkpointed record is gone from {}; \
                 the archive cannot be completed for that time. Set allow_gaps = true on this source to archive what is left (the gap is recorded under _flux/gaps/)",
                list.join(", ")
            );
        }
        let stream_name = crate::names::StreamName::parse(stream).map_err(anyhow::Error::msg)?;
        for g in &gaps {
            let key = crate::archive::layout::gap_key(
                &stream_name,
                &crate::names::ShardId::parse(g["shard_id"].as_str().unwrap_or_default())
                    .map_err(anyhow::Error::msg)?,
                &crate::record::SequenceNumber::parse(g["checkpoint"].as_str().unwrap_or_default())
                    .map_err(anyhow::Error::msg)?,
            );
            archive
                .put(&key, Bytes::from(serde_json::to_vec_pretty(g)?))
                .await?;
        }
        tracing::error!(
            stream,
            "GAP: records expired before they were archived: {}; archiving what is left (allow_gaps = true), recorded under _flux/gaps/",
            list.join(", ")
        );
        Ok(gaps
            .iter()
            .filter_map(|g| g["shard_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Warns when the archive was last advanced so long ago that, at this pace, records would
    /// expire before a run reads them: later than the stream's retention minus a quarter of it.
    /// A lookup failure only skips the warning (the gap check still catches real loss).
    async fn warn_if_retention_near(
        &self,
        client: &Client,
        stream: &str,
        last_run: chrono::DateTime<chrono::Utc>,
    ) {
        let req = self.stream_param(
            client.describe_stream_summary(),
            |b, s| b.stream_name(s),
            |b, s| b.stream_arn(s),
        );
        let hours = match req.send().await {
            Ok(out) => out
                .stream_description_summary()
                .map(|d| d.retention_period_hours()),
            Err(e) => {
                tracing::debug!(stream, "DescribeStreamSummary: {}", describe(&e));
                None
            }
        };
        let Some(hours) = hours.filter(|h| *h > 0) else {
            return;
        };
        let retention = chrono::Duration::hours(i64::from(hours));
        let age = chrono::Utc::now() - last_run;
        if let Some(message) = retention_warning(stream, age, retention) {
            tracing::warn!(stream, "{message}");
        }
    }

    /// The oldest record still in a shard: its sequence number and arrival time.
    async fn oldest_record(
        &self,
        client: &Client,
        shard: &str,
    ) -> anyhow::Result<Option<(SequenceNumber, chrono::DateTime<chrono::Utc>)>> {
        let req = self.stream_param(
            client
                .get_shard_iterator()
                .shard_id(shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon),
            |b, s| b.stream_name(s),
            |b, s| b.stream_arn(s),
        );
        let mut it = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetShardIterator on {shard}: {}", describe(&e)))?
            .shard_iterator()
            .map(str::to_owned);
        // GetRecords may answer empty before reaching data; stop at the tip.
        for _ in 0..50 {
            let Some(i) = it.take() else { return Ok(None) };
            let out = client
                .get_records()
                .shard_iterator(i)
                .limit(1)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("GetRecords on {shard}: {}", describe(&e)))?;
            if let Some(r) = out.records().first() {
                let seq = SequenceNumber::parse(r.sequence_number()).map_err(anyhow::Error::msg)?;
                let ts = ts_from_millis(
                    r.approximate_arrival_timestamp()
                        .map(kinesis_millis)
                        .unwrap_or_default(),
                );
                return Ok(Some((seq, ts)));
            }
            if out.millis_behind_latest() == Some(0) {
                return Ok(None);
            }
            it = out.next_shard_iterator().map(str::to_owned);
            tokio::time::sleep(self.config.poll_interval.0).await;
        }
        Ok(None)
    }

    async fn list_shards(&self, client: &Client) -> anyhow::Result<Vec<ShardInfo>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = match &token {
                // With a token, the stream must not be named again.
                Some(t) => client.list_shards().next_token(t),
                None => self.stream_param(
                    client.list_shards(),
                    |b, s| b.stream_name(s),
                    |b, s| b.stream_arn(s),
                ),
            };
            let page = req.send().await.map_err(|e| {
                anyhow::anyhow!(
                    "ListShards on stream {}: {}",
                    self.config.stream,
                    describe(&e)
                )
            })?;
            for s in page.shards() {
                let mut parents: Vec<String> = Vec::new();
                parents.extend(s.parent_shard_id().map(str::to_owned));
                parents.extend(s.adjacent_parent_shard_id().map(str::to_owned));
                out.push(ShardInfo {
                    id: s.shard_id().to_owned(),
                    parents,
                    closed: s
                        .sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                        .is_some(),
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

#[async_trait]
impl Source for KinesisSource {
    async fn run(&mut self, ctx: &mut SourceContext) -> anyhow::Result<()> {
        let shared = sdk_config(&self.config.aws).await;
        let client = Client::new(&shared);
        let stream: Arc<str> = Arc::from(self.config.stream_name());
        let mut shards = self.list_shards(&client).await?;
        if let Some(wanted) = &self.config.shards {
            let unknown: Vec<&String> = wanted
                .iter()
                .filter(|w| !shards.iter().any(|s| s.id == **w))
                .collect();
            if !unknown.is_empty() {
                anyhow::bail!("stream {} has no shard {:?}", self.config.stream, unknown);
            }
            shards.retain(|s| wanted.contains(&s.id));
        }
        let checkpoints: BTreeMap<String, String> =
            match (self.config.start, &self.config.checkpoints) {
                (StartAt::Checkpoint, Some(url)) => {
                    let archive = store::open_with(
                        url,
                        &store::StoreOptions {
                            aws: self.config.aws.clone(),
                            ..Default::default()
                        },
                    )
                    .map_err(anyhow::Error::msg)?;
                    let name =
                        crate::names::StreamName::parse(&stream).map_err(anyhow::Error::msg)?;
                    let stored = read_checkpoints(&archive, &name).await?;
                    let last_run = stored
                        .values()
                        .filter_map(|s| crate::record::parse_ts(&s.checkpoint.updated_at).ok())
                        .max();
                    if let Some(last_run) = last_run {
                        self.warn_if_retention_near(&client, &stream, last_run)
                            .await;
                    }
                    let cps: BTreeMap<String, String> = stored
                        .into_iter()
                        .map(|(shard, s)| (shard, s.checkpoint.sequence_number))
                        .collect();
                    let gaps = self
                        .check_gaps(&client, &archive, &stream, &shards, &cps)
                        .await?;
                    // A shard past a gap restarts at its oldest record: its checkpoint is gone.
                    cps.into_iter()
                        .filter(|(shard, _)| !gaps.contains(shard))
                        .collect()
                }
                _ => BTreeMap::new(),
            };
        tracing::info!(stage = ctx.output.stage(), stream = %stream, shards = shards.len(), start = ?self.config.start, "reading Kinesis");

        let config = Arc::new(self.config.clone());
        let timing = Arc::new(Timing::default());
        let known: BTreeSet<String> = shards.iter().map(|s| s.id.clone()).collect();
        let mut pending: BTreeMap<String, ShardInfo> =
            shards.into_iter().map(|s| (s.id.clone(), s)).collect();
        let mut done: BTreeSet<String> = BTreeSet::new();
        // Each open shard's last `MillisBehindLatest`; the largest is shown as the lag.
        let mut behind: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let mut started_here: BTreeSet<String> = BTreeSet::new();
        let mut known = known;
        let (tx, mut rx) = mpsc::channel::<Event>(4 * pending.len().max(1));
        let mut readers = tokio::task::JoinSet::new();
        let mut running = 0usize;
        let mut barrier = tokio::time::interval(self.config.checkpoint_interval.0);
        barrier.tick().await;
        let mut barrier_id = 0u64;

        loop {
            // Start every shard whose parents (those we know of) are finished.
            let ready: Vec<String> = pending
                .values()
                .filter(|s| {
                    s.parents
                        .iter()
                        .all(|p| done.contains(p) || !known.contains(p))
                })
                .map(|s| s.id.clone())
                .collect();
            for id in ready {
                let shard = pending.remove(&id).expect("listed as ready");
                // A shard whose parent was read in this run starts at its beginning.
                let child_of_this_run = shard.parents.iter().any(|p| started_here.contains(p));
                let start = match (self.config.start, child_of_this_run) {
                    (StartAt::Checkpoint, true) => match checkpoints.get(&shard.id) {
                        Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
                        None => (ShardIteratorType::TrimHorizon, None),
                    },
                    (_, true) => (ShardIteratorType::TrimHorizon, None),
                    (StartAt::TrimHorizon, _) => (ShardIteratorType::TrimHorizon, None),
                    (StartAt::Latest, _) if shard.closed => {
                        done.insert(shard.id.clone());
                        continue;
                    }
                    (StartAt::Latest, _) => (ShardIteratorType::Latest, None),
                    (StartAt::AtTimestamp, _) => (ShardIteratorType::AtTimestamp, None),
                    (StartAt::Checkpoint, _) => match checkpoints.get(&shard.id) {
                        Some(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
                        None => (ShardIteratorType::TrimHorizon, None),
                    },
                };
                started_here.insert(shard.id.clone());
                running += 1;
                let reader = Reader {
                    timing: timing.clone(),
                    client: client.clone(),
                    config: config.clone(),
                    stream: stream.clone(),
                    shard,
                    start,
                    tx: tx.clone(),
                };
                readers.spawn(reader.run());
            }
            if running == 0 && pending.is_empty() {
                break;
            }
            if running == 0 {
                anyhow::bail!(
                    "shards {:?} wait for parents that were never read",
                    pending.keys().collect::<Vec<_>>()
                );
            }
            let event = tokio::select! {
                biased;
                _ = ctx.stop.cancelled() => break,
                _ = barrier.tick(), if self.config.stop == StopAt::Never => {
                    barrier_id += 1;
                    ctx.output.barrier(barrier_id).await?;
                    continue;
                }
                e = rx.recv() => e,
            };
            match event {
                Some(Event::Records(records, rejected)) => {
                    StageMetrics::add(&ctx.output.metrics().records_in, records.len());
                    StageMetrics::add(
                        &ctx.output.metrics().bytes_in,
                        crate::record::batch_weight(&records),
                    );
                    ctx.output.send(records).await?;
                    if !rejected.is_empty() {
                        ctx.output.reject(rejected).await.map_err(|e| {
                            anyhow::anyhow!(
                                "{e}; route `{}.dead_letter` to a sink to keep them, or set deaggregate = false to archive aggregates whole",
                                ctx.output.stage()
                            )
                        })?;
                    }
                }
                Some(Event::Behind { shard, millis }) => {
                    behind.insert(shard, millis);
                    ctx.output
                        .metrics()
                        .set_behind_ms(lag_behind_tip(&behind, running));
                }
                Some(Event::Done { shard, children }) => {
                    running -= 1;
                    behind.remove(&shard);
                    ctx.output
                        .metrics()
                        .set_behind_ms(lag_behind_tip(&behind, running));
                    done.insert(shard);
                    for child in children {
                        if known.insert(child.id.clone()) {
                            pending.insert(child.id.clone(), child);
                        }
                    }
                }
                Some(Event::Failed(e)) => anyhow::bail!(e),
                None => break,
            }
        }
        readers.abort_all();
        let (in_calls, alive) = (Timing::secs(&timing.in_calls), Timing::secs(&timing.alive));
        tracing::info!(
            stage = ctx.output.stage(),
            "GetRecords: {} calls, {in_calls:.2}s waiting on Kinesis of {alive:.2}s of shard reading ({:.0}%), the rest paced or passing records on",
            timing.calls.load(std::sync::atomic::Ordering::Relaxed),
            if alive > 0.0 {
                100.0 * in_calls / alive
            } else {
                0.0
            }
        );
        Ok(())
    }
}

impl Reader {
    /// Tells the scheduler this shard is finished (and which children it found).
    async fn done(&self, children: Vec<ShardInfo>) {
        let _ = self
            .tx
            .send(Event::Done {
                shard: self.shard.id.clone(),
                children,
            })
            .await;
    }

    async fn run(self) {
        let tx = self.tx.clone();
        let alive = Alive::new(self.timing.clone());
        let result = self.read().await;
        drop(alive);
        if let Err(e) = result {
            let _ = tx.send(Event::Failed(e)).await;
        }
    }

    async fn iterator(
        &self,
        ty: ShardIteratorType,
        seq: Option<&str>,
    ) -> Result<Option<String>, String> {
        let mut req = self
            .client
            .get_shard_iterator()
            .shard_id(&self.shard.id)
            .shard_iterator_type(ty.clone());
        req = if self.config.stream.starts_with("arn:") {
            req.stream_arn(&self.config.stream)
        } else {
            req.stream_name(&self.config.stream)
        };
        if let Some(seq) = seq {
            req = req.starting_sequence_number(seq);
        }
        if ty == ShardIteratorType::AtTimestamp
            && let Some(ts) = self.config.timestamp
        {
            req = req.timestamp(aws_smithy_types::DateTime::from_millis(
                ts.0.timestamp_millis(),
            ));
        }
        let out = req.send().await.map_err(|e| {
            format!(
                "GetShardIterator on {} {}: {}",
                self.stream,
                self.shard.id,
                describe(&e)
            )
        })?;
        Ok(out.shard_iterator().map(str::to_owned))
    }

    async fn read(self) -> Result<(), String> {
        let (start_ty, start_seq) = self.start.clone();
        let mut iterator = self
            .iterator(start_ty.clone(), start_seq.as_deref())
            .await?;
        let mut last_seq: Option<String> = None;
        let mut throttled = 0u32;
        let mut next_call = Instant::now();
        while let Some(it) = iterator.take() {
            tokio::time::sleep_until(next_call.into()).await;
            let called = Instant::now();
            let answer = self
                .client
                .get_records()
                .shard_iterator(&it)
                .limit(self.config.limit)
                .send()
                .await;
            Timing::add(&self.timing.in_calls, called.elapsed());
            self.timing
                .calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let out = match answer {
                Ok(out) => {
                    throttled = 0;
                    out
                }
                Err(e) => {
                    let service = e.as_service_error();
                    if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                        tracing::debug!(shard = %self.shard.id, "iterator expired; renewing");
                        iterator = match &last_seq {
                            Some(seq) => {
                                self.iterator(ShardIteratorType::AfterSequenceNumber, Some(seq))
                                    .await?
                            }
                            None => {
                                self.iterator(start_ty.clone(), start_seq.as_deref())
                                    .await?
                            }
                        };
                        continue;
                    }
                    if service.is_some_and(|s| {
                        s.is_provisioned_throughput_exceeded_exception()
                            || s.is_kms_throttling_exception()
                    }) {
                        throttled += 1;
                        if throttled > 30 {
                            return Err(format!(
                                "GetRecords on {} {}: throttled {throttled} times in a row",
                                self.stream, self.shard.id
                            ));
                        }
                        // The SDK retried already; back off further, with jitter.
                        let base = Duration::from_millis(500) * throttled.min(10);
                        let jitter =
                            Duration::from_millis(u64::from(called.elapsed().subsec_nanos() % 250));
                        tracing::warn!(shard = %self.shard.id, "throttled; backing off {:?}", base + jitter);
                        next_call = Instant::now() + base + jitter;
                        iterator = Some(it);
                        continue;
                    }
                    return Err(format!(
                        "GetRecords on {} {}: {}",
                        self.stream,
                        self.shard.id,
                        describe(&e)
                    ));
                }
            };
            let mut bytes = 0usize;
            let records: Vec<Record> = out
                .records()
                .iter()
                .map(|r| -> Result<Record, String> {
                    let data = Bytes::copy_from_slice(r.data().as_ref());
                    bytes += data.len();
                    Ok(Record {
                        stream: self.stream.clone(),
                        shard_id: Arc::from(self.shard.id.as_str()),
                        sequence_number: SequenceNumber::parse(r.sequence_number()).map_err(
                            |e| format!("GetRecords on {} {}: {e}", self.stream, self.shard.id),
                        )?,
                        sub_sequence_number: None,
                        partition_key: r.partition_key().unwrap_or_default().to_owned(),
                        arrival_ts: ts_from_millis(
                            r.approximate_arrival_timestamp()
                                .map(kinesis_millis)
                                .unwrap_or_default(),
                        ),
                        data,
                        annotations: None,
                    })
                })
                .collect::<Result<_, _>>()?;
            let empty = records.is_empty();
            if let Some(r) = records.last() {
                last_seq = Some(r.sequence_number.to_string());
            }
            if let Some(millis) = out
                .millis_behind_latest()
                .and_then(|m| u64::try_from(m).ok())
                && self
                    .tx
                    .send(Event::Behind {
                        shard: self.shard.id.clone(),
                        millis,
                    })
                    .await
                    .is_err()
            {
                return Ok(());
            }
            let (records, rejected) = if self.config.deaggregate {
                split_aggregates(records)
            } else {
                (records, Vec::new())
            };
            if !empty
                && self
                    .tx
                    .send(Event::Records(records, rejected))
                    .await
                    .is_err()
            {
                return Ok(());
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
            if iterator.is_none() {
                // The shard is closed and read to its end; its children may start.
                let children = out
                    .child_shards()
                    .iter()
                    .map(|c| ShardInfo {
                        id: c.shard_id().to_owned(),
                        parents: c.parent_shards().to_vec(),
                        closed: false,
                    })
                    .collect();
                self.done(children).await;
                return Ok(());
            }
            // Caught up: at the tip of an open shard. Records that keep arriving are for the next
            // run; a busy shard must not keep a caught_up run going forever.
            let caught_up = out.millis_behind_latest() == Some(0);
            if caught_up && self.config.stop == StopAt::CaughtUp && !self.shard.closed {
                self.done(Vec::new()).await;
                return Ok(());
            }
            // 5 calls/s and 2 MB/s per shard.
            let pace = self
                .config
                .poll_interval
                .0
                .max(Duration::from_secs_f64(bytes as f64 / 2_000_000.0));
            let wait = if empty {
                self.config.idle_interval.0.max(pace)
            } else {
                pace
            };
            next_call = called + wait;
        }
        self.done(Vec::new()).await;
        Ok(())
    }
}

/// De-aggregates KPL records; the sub-records of one aggregate stay together and in order.
fn split_aggregates(records: Vec<Record>) -> (Vec<Record>, Vec<Rejected>) {
    if !records.iter().any(|r| kpl::is_aggregated(&r.data)) {
        return (records, Vec::new());
    }
    let mut out = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for r in records {
        match kpl::deaggregate(r) {
            Ok(users) => out.extend(users),
            Err(r) => rejected.push(*r),
        }
    }
    (out, rejected)
}

/// The warning for an archive last advanced `age` ago on a stream keeping records for
/// `retention`, when that is later than retention minus a quarter of it (the margin that leaves
/// room for one failed night and a retry).
fn retention_warning(
    stream: &str,
    age: chrono::Duration,
    retention: chrono::Duration,
) -> Option<String> {
    let margin = retention / 4;
    (age > retention - margin).then(|| {
        format!(
            "the archive of stream {stream} was last advanced {}h ago and the stream keeps records for {}h: \
             records are close to expiring unarchived; run the archive at least every {}h (or raise the stream's retention)",
            age.num_hours(),
            retention.num_hours(),
            (retention - margin).num_hours()
        )
    })
}

/// The source's lag behind the tip: the largest of its open shards', known only once every
/// shard being read has reported one (until then a shard not yet read could be far behind, and
/// "at the tip" would be premature).
fn lag_behind_tip(behind: &std::collections::HashMap<String, u64>, running: usize) -> Option<u64> {
    if behind.len() < running {
        return None;
    }
    behind.values().max().copied()
}

impl crate::registry::StageKind for KinesisSourceConfig {
    fn validate(&self) -> Result<(), String> {
        KinesisSourceConfig::validate(self)
    }

    fn build(
        &self,
        _: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        KinesisSourceConfig::build(self).map(crate::registry::BuiltStage::Source)
    }

    /// Also when configured by ARN.
    fn source_stream(&self) -> Option<&str> {
        Some(self.stream_name())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_lag_is_known_only_once_every_shard_being_read_reported() {
        let mut behind = std::collections::HashMap::new();
        behind.insert("shard-0".to_owned(), 0);
        assert_eq!(lag_behind_tip(&behind, 2), None, "shard-1 has not reported");
        behind.insert("shard-1".to_owned(), 1500);
        assert_eq!(lag_behind_tip(&behind, 2), Some(1500));
        behind.insert("shard-1".to_owned(), 0);
        assert_eq!(lag_behind_tip(&behind, 2), Some(0));
    }
    use super::*;

    #[test]
    fn warns_only_past_retention_minus_a_quarter() {
        let day = chrono::Duration::hours(24);
        assert_eq!(
            retention_warning("s", chrono::Duration::hours(17), day),
            None
        );
        assert_eq!(
            retention_warning("s", chrono::Duration::hours(18), day),
            None
        );
        let w = retention_warning("orders", chrono::Duration::hours(19), day).expect("warning");
        assert!(w.contains("stream orders was last advanced 19h ago"), "{w}");
        assert!(w.contains("keeps records for 24h"), "{w}");
        assert!(w.contains("at least every 18h"), "{w}");
    }

    /// A reader aborted at the end of the run (as `run` aborts those still waiting) still
    /// counts its life, so the waiting share is at most 100 %.
    #[tokio::test]
    async fn an_aborted_reader_counts_its_time_alive() {
        let timing = Arc::new(Timing::default());
        let t = timing.clone();
        let task = tokio::spawn(async move {
            let _alive = Alive::new(t.clone());
            let called = Instant::now();
            tokio::time::sleep(Duration::from_millis(20)).await;
            Timing::add(&t.in_calls, called.elapsed());
            std::future::pending::<()>().await;
        });
        while timing.in_calls.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        let _ = task.await;
        assert!(Timing::secs(&timing.alive) >= Timing::secs(&timing.in_calls));
    }
}
