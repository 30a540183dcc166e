//! `kinesis` sink: replays records into a Kinesis data stream with PutRecords.
//!
//! ```toml
//! [sinks.out]
//! type = "kinesis"
//! inputs = ["mark"]                  # an `annotate` transform with `replay = {…}`
//! stream = "orders"
//! replay_id = "{{ incident }}"
//! mode = "overwrite"
//! ```
//!
//! - [`batch`]: PutRecords batches within the API limits, at most one record per partition key
//!   per call, so per-key order survives partial failures (failed entries are retried before the
//!   next batch is built).
//! - [`shards`]: the target shard of each record (MD5 of the key, or the explicit hash key,
//!   within the open shards' hash key ranges from ListShards).
//! - [`rate`]: token buckets per target shard for records and bytes, halved on throttling and
//!   recovering additively (AIMD).
//! - [`fence`]: the replay protocol's opening and closing fences on every open shard. A shard
//!   that appears during the replay, by a split or merge, gets its opening fence before the sink
//!   sends it a record: with fences the sink lists the shards again before a PutRecords call
//!   when its listing is older than [`RELIST_AFTER`], and fences every new shard first. Kinesis
//!   routes by its own shards, so a shard created between that listing and the call can still
//!   receive the call's entries before its fence (the *revealing* records: at most one per
//!   partition key, as a call holds at most one); the response names the shard, and the sink then
//!   fences it before anything else is sent (see `KinesisSink::relist`). Its report counts them.
//! - [`target`]: the AWS calls.
//! - `check` (each record before it is sent), `send` (the batches, retries and relisting),
//!   `report` (counters, the dry-run plan, the summary lines): the sink's own work, by concern.
//!
//! With `--dry-run` the sink lists the shards and checks every record, but sends nothing; its
//! report gives per target shard the records, bytes and the time they would take at the
//! configured rate, and a sample of records. Given the shards (`--shards N`, `--shards-file F`:
//! [`shards::even_shards`], [`shards::shards_from_json`]), a dry run makes no AWS call at all.

pub mod batch;
mod check;
pub mod config;
pub mod fence;
pub mod rate;
mod report;
mod send;
pub mod shards;
pub mod target;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::aws::sdk_config;
use crate::record::{Batch, Record};
use crate::replay::{Fence, Marker, parse_marker};
use crate::stage::{Rejected, Sink, SinkReport, StageMetrics};
use batch::{Entry, Limits, ShardCap, next_batch_capped};
use config::KeyExpr;
pub use config::KinesisSinkConfig;
use fence::Fences;
use rate::ShardRate;
use report::{DryRunPlan, Stats};
use shards::{ShardMap, parse_hash_key};
use target::{Outcome, Target};

/// Attempts per entry before the run fails (throttled attempts wait for the shard's rate).
const MAX_ATTEMPTS: u32 = 30;
/// How far ahead the batcher looks for records of other keys.
const SCAN: usize = 20_000;
/// With fences, a listing of the target's shards older than this is refreshed before a
/// PutRecords call (at most ten ListShards per second; Kinesis allows 1000 per stream).
pub const RELIST_AFTER: Duration = Duration::from_millis(100);
/// Records shown in a dry run's sample, and how much of each payload.
const SAMPLE: usize = 3;

impl KinesisSinkConfig {
    /// Builds the sink. In a dry run (`ctx.dry_run`) it sends nothing (see the module
    /// documentation), and with `ctx.offline_shards` it plans against those shards instead of
    /// listing the stream's. It counts what it delivers, throttles and retries in
    /// `ctx.metrics`, and stops sending when `ctx.stop` fires.
    pub fn build(&self, ctx: &crate::registry::BuildContext) -> Result<Box<dyn Sink>, String> {
        crate::problems::Problems::first(|p| self.check(p))?;
        let dry_run = ctx.dry_run;
        let offline = match &ctx.offline_shards {
            Some(s) if dry_run => Some(ShardMap::new(s.clone())?),
            Some(_) => return Err("shards given on the command line are for a dry run only".into()),
            None => None,
        };
        // A dry run delivers nothing: its progress counts what it checked.
        ctx.metrics
            .counts_delivered
            .store(!dry_run, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(KinesisSink {
            config: self.clone(),
            dry_run,
            offline,
            partition: KeyExpr::compile("partition_key", self.partition_key.as_deref())?,
            explicit: KeyExpr::compile("explicit_hash_key", self.explicit_hash_key.as_deref())?,
            state: None,
            pending: VecDeque::new(),
            metrics: ctx.metrics.clone(),
            stats: Stats::default(),
            plan: DryRunPlan::default(),
            stop: ctx.stop.clone(),
        }))
    }
}

struct Running {
    target: Target,
    map: ShardMap,
    rates: Vec<ShardRate>,
    fences: Option<Fences>,
    /// When `map` was listed.
    listed: Instant,
}

impl Running {
    /// A dry run's state for shards given instead of listed. Its client is never called: it
    /// has a fixed region and no credentials, so building it reads no environment, profile or
    /// instance metadata.
    fn offline(map: ShardMap, stream: &str) -> Running {
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("offline"))
            .build();
        let now = Instant::now();
        Running {
            target: Target::new(
                aws_sdk_kinesis::Client::from_conf(config),
                stream.to_owned(),
            ),
            rates: Vec::new(),
            map,
            fences: None,
            listed: now,
        }
    }
}

/// Why the sink lists the shards again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relist {
    /// Its listing is older than [`RELIST_AFTER`] and a PutRecords call is next.
    Stale,
    /// A PutRecords response named a shard the listing lacks.
    Revealed,
}

/// The running `kinesis` sink.
pub struct KinesisSink {
    config: KinesisSinkConfig,
    dry_run: bool,
    /// A dry run's target shards, given instead of listed: no AWS call is made.
    offline: Option<ShardMap>,
    partition: Option<KeyExpr>,
    explicit: Option<KeyExpr>,
    state: Option<Running>,
    pending: VecDeque<Entry>,
    metrics: Arc<StageMetrics>,
    stats: Stats,
    plan: DryRunPlan,
    /// The run's stop signal: once it fires nothing more is sent (see [`KinesisSink::stopped`]).
    stop: CancellationToken,
}

impl KinesisSink {
    fn limits(&self) -> Limits {
        Limits {
            records: self.config.max_batch_records,
            bytes: self.config.max_batch_bytes.bytes() as usize,
        }
    }

    /// Connects, lists the shards and (for a real replay with fences) writes the opening fences.
    async fn start(&mut self) -> anyhow::Result<()> {
        if self.state.is_some() {
            return Ok(());
        }
        if let Some(map) = self.offline.clone() {
            self.state = Some(Running::offline(map, &self.config.stream));
            return Ok(());
        }
        let shared = sdk_config(&self.config.aws).await;
        let target = Target::new(
            aws_sdk_kinesis::Client::new(&shared),
            self.config.stream.clone(),
        );
        let mut fences = None;
        let shards = match (&self.config.replay_id, self.config.mode) {
            (Some(id), Some(mode)) if self.config.fences && !self.dry_run => {
                let mut f = Fences::new(
                    Fence::open(id.clone(), mode, chrono::Utc::now()),
                    self.config.under.clone(),
                );
                let shards = f.write_open(&target).await?;
                fences = Some(f);
                shards
            }
            _ => target.open_shards().await?,
        };
        let map = ShardMap::new(shards)
            .map_err(|e| anyhow::anyhow!("stream {}: {e}", self.config.stream))?;
        let now = Instant::now();
        let rates = map
            .shards()
            .iter()
            .map(|_| self.config.shard_rate(now))
            .collect();
        self.state = Some(Running {
            target,
            map,
            rates,
            fences,
            listed: now,
        });
        Ok(())
    }

    /// True once the run was asked to stop (Ctrl-C, SIGTERM): a replay then stops sending
    /// within the call in flight, writes no closing fence (it did not complete), and reports
    /// what it sent and what it did not.
    fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Counts `n` records as received but not sent (the run was stopped).
    fn leave(&mut self, n: usize, weight: usize) {
        self.stats.not_sent += n as u64;
        self.stats.unreported.add(n, weight);
    }
}

#[async_trait]
impl Sink for KinesisSink {
    async fn write(
        &mut self,
        batch: Arc<Batch>,
        rejected: &mut Vec<Rejected>,
    ) -> anyhow::Result<()> {
        self.stats.received += batch.len() as u64;
        if self.stopped() && !self.dry_run {
            // Asked to stop: what still arrives (a compaction's winners, flushed at the end of
            // its input) is not sent.
            self.leave(batch.len(), crate::record::batch_weight(&batch));
            return Ok(());
        }
        self.start().await?;
        let map = self.state.as_ref().expect("started").map.clone();
        for r in batch.iter() {
            match self.prepare(r, &map) {
                Ok(e) if self.dry_run => self.plan_add(&e),
                Ok(e) => self.pending.push_back(e),
                Err(reason) => rejected.push(Rejected {
                    record: r.clone(),
                    reason,
                }),
            }
        }
        // Keep a window of records so batches can fill with distinct keys.
        let window = 4 * self.config.max_batch_records;
        while self.pending.len() >= window && !self.stopped() {
            self.send_batch().await?;
        }
        Ok(())
    }

    fn take_skipped(&mut self) -> crate::stage::Skipped {
        std::mem::take(&mut self.stats.unreported)
    }

    async fn barrier(&mut self, _id: u64) -> anyhow::Result<()> {
        if self.state.is_some() {
            self.drain().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        if self.config.require_records && self.stats.received == 0 && !self.stopped() {
            anyhow::bail!(
                "received no records to send to stream {} (require_records = true): nothing was sent and no fence was written; check the bounds, the stream name and the filter upstream",
                self.config.stream_name()
            );
        }
        self.start().await?;
        if self.dry_run {
            return Ok(SinkReport {
                lines: vec![format!(
                    "dry run: nothing sent to stream {}; the plan is on standard output",
                    self.config.stream
                )],
                manifests: Vec::new(),
                plan: self.dry_run_report(),
            });
        }
        self.drain().await?;
        if self.stopped() {
            let left = self.pending.len();
            let weight = self.pending.iter().map(|e| e.record.weight()).sum();
            self.pending.clear();
            self.leave(left, weight);
            return Ok(self.stopped_report().into());
        }
        let state = self.state.as_mut().expect("started");
        let closed = match &mut state.fences {
            Some(f) => Some(
                f.write_close(&state.target, self.stats.sent, &self.stats.per_shard)
                    .await?,
            ),
            None => None,
        };
        Ok(self.report(closed).into())
    }
}

impl crate::registry::StageKind for KinesisSinkConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        KinesisSinkConfig::build(self, ctx).map(crate::registry::BuiltStage::Sink)
    }
}
