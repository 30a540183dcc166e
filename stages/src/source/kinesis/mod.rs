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

//!
//! Files: `config` (the settings), `resume` (where each shard starts: checkpoints, gaps,
//! retention), this module (the shard scheduler: parents before children, the end of the run),
//! `reader` (one shard's GetRecords loop, KPL de-aggregation, timing).

mod config;
mod reader;
mod resume;
mod shared;
#[cfg(test)]
mod tests;

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
use crate::units::{HumanDuration, Timestamp};

pub use config::{KinesisSourceConfig, StartAt, StopAt, WorkersMode};
use reader::{Reader, Timing};

/// The running `kinesis` source.
pub struct KinesisSource {
    config: KinesisSourceConfig,
    /// The run's id: with `workers = "shared"`, this worker's name.
    run_id: String,
    /// The run's pipeline, named in the shard leases.
    pipeline: String,
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
        /// True when the shard is closed and was read to its end; false when the reader
        /// stopped at the tip of an open shard (`stop = "caught_up"`).
        closed: bool,
    },
    /// A reader asked to stop ([`Reader::stop`]) has stopped: it sends nothing more.
    Stopped {
        shard: String,
    },
    /// A shard's `MillisBehindLatest` from its last GetRecords call.
    Behind {
        shard: String,
        millis: u64,
    },
    Failed(String),
}

impl KinesisSource {
    /// Names the stream on an SDK request builder: by ARN when configured by one.
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
        if self.config.workers == WorkersMode::Shared {
            return self.run_shared(ctx, client, stream).await;
        }
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
                    stop: Default::default(),
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
                    forward(ctx, records, rejected).await?;
                }
                Some(Event::Behind { shard, millis }) => {
                    behind.insert(shard, millis);
                    ctx.output
                        .metrics()
                        .set_behind_ms(lag_behind_tip(&behind, running));
                }
                Some(Event::Done {
                    shard, children, ..
                }) => {
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
                Some(Event::Stopped { .. }) => {}
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

/// Passes records read on, and the aggregates that could not be split to the dead-letter
/// port.
async fn forward(
    ctx: &mut SourceContext,
    records: Vec<Record>,
    rejected: Vec<Rejected>,
) -> anyhow::Result<()> {
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
    Ok(())
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
