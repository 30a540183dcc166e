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
//!
//! With `--dry-run` the sink lists the shards and checks every record, but sends nothing; its
//! report gives per target shard the records, bytes and the time they would take at the
//! configured rate, and a sample of records. Given the shards (`--shards N`, `--shards-file F`:
//! [`shards::even_shards`], [`shards::shards_from_json`]), a dry run makes no AWS call at all.

pub mod batch;
pub mod config;
pub mod fence;
pub mod rate;
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
        self.validate()?;
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
            plan: Plan::default(),
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

#[derive(Default)]
struct Stats {
    /// Records that reached the sink (sent, planned, rejected or left unsent).
    received: u64,
    sent: u64,
    bytes: u64,
    throttled: u64,
    retried: u64,
    calls: u64,
    per_shard: BTreeMap<String, u64>,
    /// Per shard: replayed records Kinesis put on it before its opening fence (revealing records).
    before_fence: BTreeMap<String, u64>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Records received but not sent because the run was asked to stop.
    not_sent: u64,
    /// Of those, the ones not yet reported to the runtime as skipped.
    unreported: crate::stage::Skipped,
}

#[derive(Default)]
struct Plan {
    /// Per shard index: records, bytes.
    per_shard: BTreeMap<usize, (u64, u64)>,
    samples: Vec<String>,
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
    plan: Plan,
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

    /// Checks one record and turns it into an entry; the error is the dead-letter reason.
    fn prepare(&self, r: &Record, map: &ShardMap) -> Result<Entry, String> {
        if self.config.fences {
            self.check_annotation(r)?;
        }
        let key = match &self.partition {
            None => r.partition_key.clone(),
            Some(e) => e
                .eval(r)
                .map_err(|e| format!("partition_key: {e}"))?
                .ok_or("partition_key: the path selects nothing in this record")?,
        };
        let explicit = match &self.explicit {
            None => None,
            Some(e) => {
                let text = e
                    .eval(r)
                    .map_err(|e| format!("explicit_hash_key: {e}"))?
                    .ok_or("explicit_hash_key: the path selects nothing in this record")?;
                Some(parse_hash_key(&text)?)
            }
        };
        batch::check(r.data.len(), &key)?;
        let shard = map.route(&key, explicit);
        Ok(Entry {
            record: r.clone(),
            key,
            explicit,
            shard,
        })
    }

    /// With fences, a record must carry this replay's annotation: one without it would look like
    /// a live write after the fence to every consumer (docs/replay-protocol.md, Limits).
    fn check_annotation(&self, r: &Record) -> Result<(), String> {
        let under = &self.config.under;
        let id = self.config.replay_id.as_deref().unwrap_or_default();
        match parse_marker(&r.data, under) {
            // The record's own id is payload content: not repeated.
            Ok(Marker::Replayed(m)) if m.replay.id != id => Err(format!(
                "the record is annotated for another replay than {id:?}, the one this sink writes"
            )),
            Ok(Marker::Replayed(m)) if Some(m.replay.mode) != self.config.mode => Err(format!(
                "the record's replay mode is {:?}, this sink's `mode` is {:?}",
                m.replay.mode,
                self.config.mode.unwrap_or(m.replay.mode)
            )),
            Ok(Marker::Replayed(_)) => Ok(()),
            Ok(Marker::Fence(_)) => {
                Err("the record is a fence of a replay; fences are not replayed".into())
            }
            Ok(Marker::Live) if !is_json_object(&r.data) => Err(format!(
                "the payload is not a JSON object, so it cannot carry `{under}.replay`; with fences = true every record must; binary records can be replayed only with fences = false"
            )),
            Ok(Marker::Live) => Err(format!(
                "the record has no `{under}.replay` annotation; with fences = true every record must carry it (put an `annotate` transform with `replay = {{ id = \"{id}\", mode = … }}` before this sink)"
            )),
            Err(e) => Err(format!("malformed replay annotation: {e}")),
        }
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

    /// Sleeps for `wait` unless the run is asked to stop first; false when it was.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.stop.cancelled() => false,
        }
    }

    /// Sends one batch, retrying its failed entries (and only those) until every entry is
    /// written; the next batch is built only afterwards. When the shards changed (a listing
    /// before the call, or a response naming a shard the sink did not know), the entries not yet
    /// written go back to the front of the queue, re-routed, and the call returns: the next batch
    /// is built for the new shards.
    async fn send_batch(&mut self) -> anyhow::Result<()> {
        let limits = self.limits();
        let state = self.state.as_mut().expect("started");
        // A call carries at most a second of each shard's current rate, so the rate holds
        // within each second (not only on average) and progress moves call by call.
        let now = Instant::now();
        let caps: Vec<ShardCap> = state.rates.iter_mut().map(|r| r.cap(now)).collect();
        let mut batch = next_batch_capped(&mut self.pending, limits, SCAN, &caps);
        let mut attempt = 0u32;
        while !batch.is_empty() {
            let state = self.state.as_mut().expect("started");
            attempt += 1;
            // Wait for every shard in the batch to have the budget, then take it.
            let mut demand: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
            for e in &batch {
                let d = demand.entry(e.shard).or_default();
                d.0 += 1;
                d.1 += e.size();
            }
            let now = Instant::now();
            let wait = demand
                .iter()
                .map(|(s, (n, b))| state.rates[*s].wait(*n, *b, now))
                .max()
                .unwrap_or_default();
            if !wait.is_zero() && !self.pause(wait).await {
                self.requeue(batch);
                return Ok(());
            }
            if self.stopped() {
                self.requeue(batch);
                return Ok(());
            }
            let state = self.state.as_mut().expect("started");
            // With fences, a shard created since the last listing gets its opening fence before
            // this call can put records on it.
            if state.fences.is_some()
                && state.listed.elapsed() >= RELIST_AFTER
                && self.relist(Relist::Stale).await?
            {
                self.requeue(batch);
                return Ok(());
            }
            let state = self.state.as_mut().expect("started");
            let now = Instant::now();
            for (s, (n, b)) in &demand {
                state.rates[*s].take(*n, *b, now);
            }
            self.stats.first.get_or_insert(now);
            self.stats.calls += 1;
            let outcomes = state.target.put_records(&batch).await?;
            let now = Instant::now();
            let mut failed = Vec::new();
            let mut throttled_shards = BTreeSet::new();
            let mut first_error = None;
            let mut throttled_n = 0usize;
            let mut written = 0usize;
            let mut resharded = false;
            let mut early: BTreeMap<String, u64> = BTreeMap::new();
            for (e, o) in batch.into_iter().zip(outcomes) {
                match o {
                    Outcome::Written { shard_id } => {
                        written += 1;
                        if state.map.shards().iter().all(|s| s.id != shard_id) {
                            resharded = true;
                        }
                        if state
                            .fences
                            .as_ref()
                            .is_some_and(|f| !f.high_water.contains_key(&shard_id))
                        {
                            *early.entry(shard_id.clone()).or_default() += 1;
                        }
                        self.stats.sent += 1;
                        self.stats.bytes += e.size() as u64;
                        *self.stats.per_shard.entry(shard_id).or_default() += 1;
                    }
                    Outcome::Failed { code, throttled } => {
                        if throttled {
                            throttled_n += 1;
                            throttled_shards.insert(e.shard);
                        }
                        first_error.get_or_insert_with(|| (code, e.record.clone()));
                        failed.push(e);
                    }
                }
            }
            self.stats.last = Some(now);
            for s in &throttled_shards {
                state.rates[*s].throttled(now);
            }
            StageMetrics::add(&self.metrics.throttled, throttled_n);
            StageMetrics::add(&self.metrics.retried, failed.len());
            StageMetrics::add(&self.metrics.delivered, written);
            self.stats.throttled += throttled_n as u64;
            self.stats.retried += failed.len() as u64;
            for (shard, n) in early {
                tracing::info!(shard = %shard, records = n, "replayed records landed on a shard created after the sink last listed the shards, before its opening fence");
                *self.stats.before_fence.entry(shard).or_default() += n;
            }
            if resharded {
                self.relist(Relist::Revealed).await?;
                self.requeue(failed);
                return Ok(());
            }
            if let Some((code, r)) = first_error {
                if attempt >= MAX_ATTEMPTS {
                    anyhow::bail!(
                        "PutRecords on stream {}: {} record(s) still failing after {attempt} attempts; first: {} {} sequence {} (key {:?}): {code}",
                        self.config.stream,
                        failed.len(),
                        r.stream,
                        r.shard_id,
                        r.sequence_number,
                        r.partition_key
                    );
                }
                tracing::debug!(failed = failed.len(), code = %code, attempt, "PutRecords: retrying failed entries");
                // Back off exponentially (50 ms to 3.2 s); throttled entries also wait for their
                // shard's now halved rate.
                if !self
                    .pause(Duration::from_millis(50 << attempt.min(6)))
                    .await
                {
                    self.requeue(failed);
                    return Ok(());
                }
            }
            batch = failed;
        }
        Ok(())
    }

    /// Puts entries not yet written back at the front of the queue, in their order, routed by
    /// the current shard map. Per-key order holds: a batch holds a key's first pending entry
    /// only, so each entry goes back ahead of its key's later entries.
    fn requeue(&mut self, entries: Vec<Entry>) {
        let map = &self.state.as_ref().expect("started").map;
        for mut e in entries.into_iter().rev() {
            e.shard = map.route(&e.key, e.explicit);
            self.pending.push_front(e);
        }
    }

    /// Lists the open shards again (with fences: writes the opening fence on each new one first,
    /// so every open shard has one before further replayed records). When they changed, re-routes
    /// the queue, keeps the rates of shards that stay open (new shards start at the configured
    /// rate) and returns true.
    async fn relist(&mut self, why: Relist) -> anyhow::Result<bool> {
        let state = self.state.as_mut().expect("started");
        let shards = match &mut state.fences {
            Some(f) => f.write_open(&state.target).await?,
            None => state.target.open_shards().await?,
        };
        state.listed = Instant::now();
        let before: Vec<String> = state.map.shards().iter().map(|s| s.id.clone()).collect();
        let same = shards.len() == before.len() && shards.iter().all(|s| before.contains(&s.id));
        if same {
            return Ok(false);
        }
        let map = ShardMap::new(shards)
            .map_err(|e| anyhow::anyhow!("stream {}: {e}", self.config.stream))?;
        let now = Instant::now();
        let mut old: BTreeMap<String, ShardRate> = before
            .iter()
            .cloned()
            .zip(std::mem::take(&mut state.rates))
            .collect();
        state.rates = map
            .shards()
            .iter()
            .map(|s| {
                old.remove(&s.id)
                    .unwrap_or_else(|| self.config.shard_rate(now))
            })
            .collect();
        let added: Vec<&str> = map
            .shards()
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| !before.iter().any(|b| b == id))
            .collect();
        tracing::info!(
            stream = %self.config.stream,
            shards = map.shards().len(),
            new = ?added,
            fenced = state.fences.is_some(),
            noticed = match why {
                Relist::Stale => "listing before a PutRecords call",
                Relist::Revealed => "a PutRecords response naming an unknown shard",
            },
            "the target stream was resharded; shards listed again"
        );
        for e in self.pending.iter_mut() {
            e.shard = map.route(&e.key, e.explicit);
        }
        state.map = map;
        Ok(true)
    }

    /// Sends everything pending.
    async fn drain(&mut self) -> anyhow::Result<()> {
        while !self.pending.is_empty() && !self.stopped() {
            self.send_batch().await?;
        }
        Ok(())
    }

    fn plan_add(&mut self, e: &Entry) {
        let p = self.plan.per_shard.entry(e.shard).or_default();
        p.0 += 1;
        p.1 += e.size() as u64;
        if self.plan.samples.len() < SAMPLE {
            // Whole and as sent: JSON shows as JSON (the `_flux` annotation visible); only a
            // payload with control characters is escaped, and bytes that are not UTF-8 are
            // shown in base64.
            let shown = match std::str::from_utf8(&e.record.data) {
                Ok(t) if !t.chars().any(char::is_control) => t.to_owned(),
                Ok(t) => format!("(escaped) {}", t.escape_debug()),
                Err(_) => {
                    use base64::Engine as _;
                    format!(
                        "(not UTF-8, base64) {}",
                        base64::engine::general_purpose::STANDARD.encode(&e.record.data)
                    )
                }
            };
            let shard = self
                .state
                .as_ref()
                .map(|s| s.map.shards()[e.shard].id.clone())
                .unwrap_or_default();
            self.plan.samples.push(format!(
                "sample: {shard} key {:?} ({} bytes): {}",
                e.key,
                e.record.data.len(),
                shown
            ));
        }
    }

    fn dry_run_report(&self) -> Vec<String> {
        let state = self.state.as_ref().expect("started");
        let rps = f64::from(self.config.records_per_second_per_shard);
        let bps = self.config.bytes_per_second_per_shard.bytes() as f64;
        let mut out = vec![format!(
            "dry run: nothing sent to stream {} ({} open shards, {} records/s and {}/s per shard)",
            self.config.stream,
            state.map.shards().len(),
            self.config.records_per_second_per_shard,
            self.config.bytes_per_second_per_shard
        )];
        let (mut records, mut bytes, mut longest) = (0u64, 0u64, 0f64);
        for (i, s) in state.map.shards().iter().enumerate() {
            let (n, b) = self.plan.per_shard.get(&i).copied().unwrap_or_default();
            let secs = (n as f64 / rps).max(b as f64 / bps);
            longest = longest.max(secs);
            records += n;
            bytes += b;
            out.push(format!(
                "shard {}: {n} records, {b} bytes, ~{secs:.1}s",
                s.id
            ));
        }
        out.push(format!(
            "total: {records} records, {bytes} bytes, ~{longest:.1}s at the configured rate{}",
            if self.config.fences {
                format!(
                    " (plus an opening and a closing fence on each of {} shards)",
                    state.map.shards().len()
                )
            } else {
                String::new()
            }
        ));
        out.extend(self.plan.samples.iter().cloned());
        out
    }

    /// The report of a run stopped by a signal: what was sent, what was not, and what that
    /// leaves in the stream.
    fn stopped_report(&self) -> Vec<String> {
        let mut out = self.report(None);
        out.push(format!(
            "stopped by a signal: sent {} records, did not send {}",
            self.stats.sent, self.stats.not_sent
        ));
        if let Some(f) = self.state.as_ref().and_then(|r| r.fences.as_ref()) {
            out.push(format!(
                "replay {} is incomplete: opening fences are in the stream, no closing fences were written; consumers apply what arrived by the rule, and running the replay again with the same id completes it (docs/replay-protocol.md, \"A replay run again\")",
                f.open.replay_id
            ));
        }
        out
    }

    fn report(&self, closed: Option<Vec<(String, u64)>>) -> Vec<String> {
        let s = &self.stats;
        let secs = match (s.first, s.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let shards = self
            .state
            .as_ref()
            .map(|r| r.map.shards().len())
            .unwrap_or(0);
        let mut out = vec![format!(
            "sent {} records ({} bytes) to stream {} in {secs:.2}s ({:.0} records/s; limit {} records/s on each of {shards} shards); {} PutRecords calls, {} throttled, {} retried",
            s.sent,
            s.bytes,
            self.config.stream,
            if secs > 0.0 {
                s.sent as f64 / secs
            } else {
                0.0
            },
            self.config.records_per_second_per_shard,
            s.calls,
            s.throttled,
            s.retried
        )];
        if let (Some(f), Some(closed)) =
            (self.state.as_ref().and_then(|r| r.fences.as_ref()), closed)
        {
            out.push(format!(
                "replay {} ({:?}): opening fences on {} shards, closing fences on {}",
                f.open.replay_id,
                f.open.mode,
                f.high_water.len(),
                closed.len()
            ));
            for (shard, n) in closed {
                let h = f.high_water.get(&shard).map(String::as_str).unwrap_or("-");
                out.push(format!("shard {shard}: {n} records, fence H = {h}"));
            }
            for (shard, n) in &s.before_fence {
                out.push(format!(
                    "shard {shard}: {n} records landed before its opening fence (created after the sink last listed the shards)"
                ));
            }
        }
        out
    }
}

fn is_json_object(data: &[u8]) -> bool {
    data.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
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
    fn validate(&self) -> Result<(), String> {
        KinesisSinkConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        KinesisSinkConfig::build(self, ctx).map(crate::registry::BuiltStage::Sink)
    }
}
