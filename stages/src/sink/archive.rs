//! `archive` sink: writes records into the archive layout (DESIGN §4), exactly once.
//!
//! ```toml
//! [sinks.archive]
//! type = "archive"
//! inputs = ["orders"]
//! url = "file://./archive"
//! max_records = 500000
//! max_bytes = "128MiB"
//! ```
//!
//! Each shard has one open object at a time, holding records of one arrival hour in sequence
//! order; it is rolled at `max_records`, `max_bytes` (uncompressed), `max_age`, a new hour, a new
//! window (with `roll_per_window`), a checkpoint barrier, or the end. Each object is committed
//! in three steps (docs/archive-format.md, "Commit protocol"):
//! 1. it is staged under `_flux/staging/` (no reader looks there);
//! 2. the shard's checkpoint is moved past it with a conditional write naming it — the commit;
//!    a writer that lost its lease (paused, cut off) fails here, whatever it believes;
//! 3. it is promoted to its place among the data.
//!
//! So only committed objects ever become visible: records at or below a shard's checkpoint are
//! skipped (a rerun duplicates nothing), a run that stops before step 2 leaves only staging
//! debris, and one that stops between 2 and 3 is completed by the next run (which promotes what
//! the checkpoint names). Records whose stream name or shard id is not a legal Kinesis name, or
//! whose arrival time the layout cannot hold, are dead-lettered.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::archive::layout::{self, hour_of};
use crate::archive::lease::Lease;
use crate::archive::state::{
    Checkpoint, RunManifest, ShardSummary, Stored, WrittenObject, read_checkpoints,
    write_checkpoint, write_manifest,
};
use crate::names::{ShardId, StreamName};
use crate::record::{Batch, Record, SequenceNumber, format_ts};
use crate::stage::{Rejected, Sink, SinkReport};
use crate::store::{self, ObjectStore};
use crate::units::Size;

/// Writes records to an archive, one gzip JSON Lines object per shard and hour (or less).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSinkConfig {
    /// The archive root: `file:///abs/dir`, `file://./rel/dir` or a plain path.
    pub url: String,
    /// Roll an object after this many records. Default 500000.
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1))]
    pub max_records: u64,
    /// Roll an object after this many uncompressed bytes. Default "128MiB".
    #[serde(default = "default_max_bytes")]
    pub max_bytes: Size,
    /// Roll an object once it has been open this long (wall-clock time since its first record),
    /// so a quiet shard's records reach the archive within this delay. No limit by default;
    /// with `stop = "never"` objects are rolled at every checkpoint barrier anyway.
    #[serde(default)]
    pub max_age: Option<crate::units::Duration>,
    /// Roll an object whenever the `window` annotation (`{start, end}`, from a `window`
    /// transform upstream) changes, so each object holds the records of one window of one
    /// shard. Needs each shard's records in sequence order (tumbling windows on arrival time);
    /// a record going back stops the run. Default false.
    #[serde(default)]
    pub roll_per_window: bool,
    /// gzip level, 0 (none) to 9 (smallest). Default 6.
    #[serde(default = "default_level")]
    #[schemars(range(min = 0, max = 9))]
    pub gzip_level: u32,
    /// How to reach S3 (region, profile, endpoint) for `s3://` URLs.
    #[serde(default)]
    pub aws: crate::aws::AwsSettings,
    /// How long the archive lease (one archiver per stream) lasts without renewal; a run that
    /// died holds the stream this long. Default "5m".
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: crate::units::Duration,
    /// Server-side encryption of written objects: `aws:kms`, `aws:kms:dsse` or `AES256`
    /// (default: the bucket's default encryption).
    #[serde(default)]
    pub sse: Option<String>,
    /// The KMS key (id, alias or ARN) for `sse = "aws:kms"`.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// The largest `max_bytes`: objects are promoted with one CopyObject (5 GB at most), and gzip
/// can add a little to incompressible input.
const MAX_OBJECT_BYTES: u64 = 4 << 30;

fn default_max_records() -> u64 {
    500_000
}
fn default_max_bytes() -> Size {
    Size::mib(128)
}
fn default_level() -> u32 {
    6
}
fn default_lease_ttl() -> crate::units::Duration {
    crate::units::Duration(std::time::Duration::from_secs(300))
}

/// Who is writing: recorded in checkpoints and the run manifest.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// The pipeline name.
    pub pipeline: String,
    /// The sink's stage id.
    pub stage: String,
}

impl ArchiveSinkConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        store::check_url(&self.url).map_err(|e| format!("`url`: {e}"))?;
        if self.max_records == 0 {
            return Err("`max_records` must be at least 1".into());
        }
        if self.max_age.is_some_and(|a| a.0.is_zero()) {
            return Err("`max_age` must be longer than 0s".into());
        }
        if self.max_bytes.bytes() < 1024 {
            return Err("`max_bytes` must be at least 1KiB".into());
        }
        if self.gzip_level > 9 {
            return Err("`gzip_level` must be between 0 and 9".into());
        }
        if self.max_bytes.bytes() > MAX_OBJECT_BYTES {
            return Err("`max_bytes` must be at most 4GiB (objects are promoted with S3's CopyObject, which stops at 5 GB)".into());
        }
        if self.lease_ttl.0 < std::time::Duration::from_secs(1) {
            return Err("`lease_ttl` must be at least 1s".into());
        }
        if let Some(sse) = &self.sse
            && !["aws:kms", "aws:kms:dsse", "AES256"].contains(&sse.as_str())
        {
            return Err(format!(
                "`sse` must be \"aws:kms\", \"aws:kms:dsse\" or \"AES256\", not {sse:?}"
            ));
        }
        if self.kms_key_id.is_some()
            && !self
                .sse
                .as_deref()
                .is_some_and(|s| s.starts_with("aws:kms"))
        {
            return Err("`kms_key_id` needs `sse = \"aws:kms\"`".into());
        }
        Ok(())
    }

    /// Builds the sink. `expected` names the streams the upstream sources read (see
    /// [`crate::registry::BuildContext::upstream_streams`]): each gets a run manifest, records
    /// or not.
    pub fn build(&self, run: RunInfo, expected: Vec<String>) -> Result<Box<dyn Sink>, String> {
        self.validate()?;
        if let Some(why) = crate::names::name_problem(&run.run_id) {
            return Err(format!("the run id {why}"));
        }
        Ok(Box::new(ArchiveSink {
            store: store::open_with(
                &self.url,
                &store::StoreOptions {
                    aws: self.aws.clone(),
                    encryption: store::s3::Encryption {
                        sse: self.sse.clone(),
                        kms_key_id: self.kms_key_id.clone(),
                    },
                },
            )?,
            config: self.clone(),
            run,
            started_at: Utc::now(),
            streams: HashMap::new(),
            writers: HashMap::new(),
            skipped: crate::stage::Skipped::default(),
            written: HashMap::new(),
            expected,
        }))
    }
}

struct StreamState {
    name: StreamName,
    lease: Option<Lease>,
    checkpoints: BTreeMap<String, Stored>,
    manifest: RunManifest,
}

struct ObjectWriter {
    stream: StreamName,
    shard_id: ShardId,
    hour: DateTime<Utc>,
    first: SequenceNumber,
    first_arrival: DateTime<Utc>,
    last: SequenceNumber,
    last_sub: Option<u64>,
    last_arrival: DateTime<Utc>,
    opened: std::time::Instant,
    records: u64,
    raw_bytes: u64,
    gz: GzEncoder<Vec<u8>>,
    /// The `window` annotation of its records, with `roll_per_window`.
    window: Option<serde_json::Value>,
}

impl ObjectWriter {
    /// Whether the object reached `max_records` or `max_bytes`.
    fn is_full(&self, config: &ArchiveSinkConfig) -> bool {
        self.records >= config.max_records || self.raw_bytes >= config.max_bytes.bytes()
    }

    /// Whether the object has been open for `max_age`.
    fn is_aged(&self, config: &ArchiveSinkConfig) -> bool {
        config.max_age.is_some_and(|a| self.opened.elapsed() >= a.0)
    }
}

/// The running `archive` sink.
pub struct ArchiveSink {
    store: Arc<dyn ObjectStore>,
    config: ArchiveSinkConfig,
    run: RunInfo,
    started_at: DateTime<Utc>,
    streams: HashMap<Arc<str>, StreamState>,
    writers: HashMap<(Arc<str>, Arc<str>), ObjectWriter>,
    /// Records skipped as archived already, since the runtime last asked.
    skipped: crate::stage::Skipped,
    /// The streams the upstream sources read: each gets a run manifest, records or not.
    expected: Vec<String>,
    /// With `roll_per_window`: the last position this run wrote per (stream, shard).
    written: HashMap<ShardKey, Position>,
}

/// (stream, shard id).
type ShardKey = (Arc<str>, Arc<str>);
/// (sequence number, sub-sequence number).
type Position = (SequenceNumber, Option<u64>);

impl ArchiveSink {
    /// Takes a stream's lease, loads its checkpoints and finishes what an interrupted run left:
    /// promotes committed objects still staged, removes staged objects that can never be
    /// committed, and removes objects that an older version of this sink stored past a
    /// checkpoint.
    async fn open_stream(&mut self, stream: &StreamName) -> anyhow::Result<()> {
        if self.streams.contains_key(stream.as_arc()) {
            return Ok(());
        }
        // Take the stream before reading anything, so what is read cannot change under us.
        let lease = Lease::acquire(
            &self.store,
            stream,
            &self.run.run_id,
            &self.run.pipeline,
            self.config.lease_ttl.0,
        )
        .await?;
        let checkpoints = read_checkpoints(&self.store, stream).await?;
        for stored in checkpoints.values() {
            let cp = &stored.checkpoint;
            if let Some(staged) = &cp.staged {
                match self.store.promote(staged, &cp.object).await {
                    Ok(()) => {
                        tracing::warn!(object = %cp.object, "promoted an object its checkpoint had committed (the run that wrote it stopped before promoting it)")
                    }
                    Err(crate::store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let sequence_of = |shard: &str| -> anyhow::Result<Option<SequenceNumber>> {
            checkpoints
                .get(shard)
                .map(|s| s.checkpoint.sequence().map_err(anyhow::Error::msg))
                .transpose()
        };
        // Staged objects that start at or below their shard's checkpoint can never be committed
        // (a commit moves the checkpoint from just below an object's first record); others may
        // still be, by a writer that holds the checkpoint's current version, and stay.
        for meta in self.store.list(&layout::staging_prefix(stream)).await? {
            let Some(obj) = layout::parse_staged_key(stream, &meta.key) else {
                continue;
            };
            if sequence_of(&obj.shard_id)?.is_some_and(|cp| obj.range.0 <= cp) {
                self.store.delete(&meta.key).await?;
            }
        }
        let mut removed = Vec::new();
        for meta in self.store.list(&layout::stream_prefix(stream)).await? {
            let Some(obj) = layout::parse_data_key(stream, &meta.key) else {
                continue;
            };
            let (Some((first, _)), true) = (&obj.range, layout::written_by_sink(&obj)) else {
                continue; // not written by this sink
            };
            let orphan = match sequence_of(&obj.shard_id)? {
                Some(cp) => *first > cp,
                None => true,
            };
            if orphan {
                tracing::warn!(object = %meta.key, "removing an object past its shard's checkpoint (left by an interrupted run of an earlier version)");
                self.store.delete(&meta.key).await?;
                removed.push(meta.key);
            }
        }
        let manifest = RunManifest {
            run_id: self.run.run_id.clone(),
            pipeline: self.run.pipeline.clone(),
            stage: self.run.stage.clone(),
            stream: stream.to_string(),
            started_at: format_ts(&self.started_at),
            status: "running".into(),
            removed_orphans: removed,
            ..Default::default()
        };
        self.streams.insert(
            stream.as_arc().clone(),
            StreamState {
                name: stream.clone(),
                lease: Some(lease),
                checkpoints,
                manifest,
            },
        );
        Ok(())
    }

    /// Stages one object, commits it by moving its shard's checkpoint past it, then promotes it
    /// (see the module docs).
    async fn flush(&mut self, w: ObjectWriter) -> anyhow::Result<()> {
        let body = w.gz.finish().map_err(|e| anyhow::anyhow!("gzip: {e}"))?;
        let key = layout::data_key(&w.stream, w.hour, &w.shard_id, &w.first, &w.last);
        let staged = layout::staged_key(
            &w.stream,
            &w.shard_id,
            &self.run.run_id,
            &layout::object_file_name(&w.first, &w.last),
        );
        let size = body.len() as u64;
        if let Some(lease) = self
            .streams
            .get(w.stream.as_arc())
            .and_then(|s| s.lease.as_ref())
        {
            lease.check()?;
        }
        crate::fault::hit("before_object");
        self.store.put(&staged, Bytes::from(body)).await?;
        crate::fault::hit("after_object");
        let cp = Checkpoint {
            stream: w.stream.to_string(),
            shard_id: w.shard_id.to_string(),
            sequence_number: w.last.to_string(),
            arrival_ts: format_ts(&w.last_arrival),
            object: key.clone(),
            staged: Some(staged.clone()),
            run_id: self.run.run_id.clone(),
            updated_at: format_ts(&Utc::now()),
        };
        let state = self
            .streams
            .get_mut(w.stream.as_arc())
            .expect("stream opened before writing");
        if let Some(lease) = state.lease.as_ref() {
            lease.check()?;
        }
        let previous = state.checkpoints.get(&cp.shard_id).map(|s| s.etag.clone());
        let written = write_checkpoint(
            &self.store,
            &w.stream,
            &w.shard_id,
            &cp,
            previous.as_deref(),
        )
        .await;
        let etag = match written {
            Ok(etag) => etag,
            Err(crate::store::StoreError::Conflict(_) | crate::store::StoreError::NotFound(_)) => {
                anyhow::bail!(
                    "the checkpoint of stream {} shard {} was moved by another archiver while this run was writing; \
                     stopping without moving it (run one archiver per stream; the next run resumes cleanly)",
                    cp.stream,
                    cp.shard_id
                )
            }
            Err(e) => return Err(e.into()),
        };
        state.checkpoints.insert(
            cp.shard_id.clone(),
            Stored {
                checkpoint: cp,
                etag,
            },
        );
        crate::fault::hit("after_checkpoint");
        match self.store.promote(&staged, &key).await {
            Ok(()) => {}
            // Committed, and promoted already by a run that took the stream over meanwhile.
            Err(crate::store::StoreError::NotFound(_)) => anyhow::bail!(
                "stream {} shard {}: another archiver took the stream over while this run was writing (this run's lease lapsed); stopping",
                w.stream,
                w.shard_id
            ),
            Err(e) => return Err(e.into()),
        }
        crate::fault::hit("after_promote");
        state.manifest.records += w.records;
        let shard = state
            .manifest
            .shards
            .entry(w.shard_id.to_string())
            .or_insert_with(|| ShardSummary {
                first_sequence_number: w.first.to_string(),
                first_arrival_ts: format_ts(&w.first_arrival),
                ..Default::default()
            });
        shard.last_sequence_number = w.last.to_string();
        shard.last_arrival_ts = format_ts(&w.last_arrival);
        shard.records += w.records;
        shard.raw_bytes += w.raw_bytes;
        shard.bytes += size;
        shard.objects += 1;
        state.manifest.objects.push(WrittenObject {
            key,
            records: w.records,
            bytes: size,
        });
        Ok(())
    }

    async fn flush_all(&mut self) -> anyhow::Result<()> {
        self.flush_where(|_| true).await
    }

    /// Stores the open objects `pick` selects, in (stream, shard) order.
    async fn flush_where(&mut self, pick: impl Fn(&ObjectWriter) -> bool) -> anyhow::Result<()> {
        let mut keys: Vec<_> = self
            .writers
            .iter()
            .filter(|(_, w)| pick(w))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        for k in keys {
            if let Some(w) = self.writers.remove(&k) {
                self.flush(w).await?;
            }
        }
        Ok(())
    }

    async fn append(
        &mut self,
        r: &Record,
        stream: &StreamName,
        shard_id: &ShardId,
    ) -> anyhow::Result<()> {
        let hour = hour_of(r.arrival_ts);
        let key = (r.stream.clone(), r.shard_id.clone());
        let window = if self.config.roll_per_window {
            r.annotations
                .as_ref()
                .and_then(|a| a.get("window"))
                .cloned()
        } else {
            None
        };
        // Roll on a new hour, a new window, or when full, but never inside a KPL aggregate (its
        // user records share a sequence number): object names and checkpoints stay Kinesis
        // positions.
        if let Some(w) = self.writers.get(&key)
            && (w.hour != hour
                || ((w.window != window || w.is_full(&self.config) || w.is_aged(&self.config))
                    && w.last != r.sequence_number))
        {
            let w = self.writers.remove(&key).expect("just seen");
            self.flush(w).await?;
        }
        let level = self.config.gzip_level;
        let w = self.writers.entry(key).or_insert_with(|| ObjectWriter {
            stream: stream.clone(),
            shard_id: shard_id.clone(),
            hour,
            first: r.sequence_number.clone(),
            first_arrival: r.arrival_ts,
            last: r.sequence_number.clone(),
            last_sub: r.sub_sequence_number,
            last_arrival: r.arrival_ts,
            opened: std::time::Instant::now(),
            records: 0,
            raw_bytes: 0,
            gz: GzEncoder::new(Vec::new(), flate2::Compression::new(level)),
            window,
        });
        let mut line = Vec::with_capacity(r.data.len() + 256);
        r.write_envelope(&mut line);
        w.gz.write_all(&line)
            .map_err(|e| anyhow::anyhow!("gzip: {e}"))?;
        w.last = r.sequence_number.clone();
        w.last_sub = r.sub_sequence_number;
        w.last_arrival = r.arrival_ts;
        w.records += 1;
        w.raw_bytes += line.len() as u64;
        Ok(())
    }

    /// Opens the streams the upstream sources named, once.
    async fn open_expected(&mut self) -> anyhow::Result<()> {
        for stream in std::mem::take(&mut self.expected) {
            let name = StreamName::parse(&stream).map_err(anyhow::Error::msg)?;
            self.open_stream(&name).await?;
        }
        Ok(())
    }

    /// With `roll_per_window`, records must come in sequence order per shard: a record at or
    /// below one this run already wrote would otherwise be taken for archived and skipped. That
    /// happens with windows that overlap (sliding: a record in several windows) or that reorder
    /// a shard (session windows, event time), so it stops the run instead.
    fn check_sequence_order(&mut self, r: &Record) -> anyhow::Result<()> {
        let key = (r.stream.clone(), r.shard_id.clone());
        let at = (r.sequence_number.clone(), r.sub_sequence_number);
        if let Some(last) = self.written.get(&key)
            && at <= *last
        {
            anyhow::bail!(
                "{} {} sequence {}: with roll_per_window = true, each shard's records must come in sequence order, but this run already wrote sequence {} of that shard; use tumbling windows on arrival time (sliding windows put a record in several windows; session and event-time windows reorder a shard), on input that neither repeats nor reorders a shard's records",
                r.stream,
                r.shard_id,
                r.sequence_number,
                last.0
            );
        }
        self.written.insert(key, at);
        Ok(())
    }

    /// Whether a record was archived already: at or below its shard's checkpoint (which never
    /// falls inside a KPL aggregate), or at or below the last record of the shard's open object.
    fn already_archived(&self, r: &Record) -> bool {
        let committed = self
            .streams
            .get(&r.stream)
            .and_then(|s| s.checkpoints.get(&*r.shard_id))
            .and_then(|cp| cp.checkpoint.sequence().ok())
            .is_some_and(|cp| r.sequence_number <= cp);
        committed
            || self
                .writers
                .get(&(r.stream.clone(), r.shard_id.clone()))
                .is_some_and(|w| {
                    (&r.sequence_number, r.sub_sequence_number) <= (&w.last, w.last_sub)
                })
    }
}

/// A record's stream name and shard id as the layout's types, or why the archive cannot hold
/// the record (names that are not legal Kinesis names, a time outside the years 0000–9999).
fn storable(r: &Record) -> Result<(StreamName, ShardId), String> {
    let why = |e: String| format!("{e}; the archive cannot store the record under it");
    let stream = StreamName::from_arc(&r.stream).map_err(why)?;
    let shard_id = ShardId::from_arc(&r.shard_id).map_err(why)?;
    crate::record::check_ts(&r.arrival_ts).map_err(|e| format!("arrival time: {e}"))?;
    Ok((stream, shard_id))
}

/// The gaps recorded under `_flux/gaps/` for a stream since `since` (by this run's source).
async fn gaps_found_since(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for meta in store.list(&layout::gap_prefix(stream)).await? {
        let body = store.get(&meta.key).await?;
        let Ok(gap) = serde_json::from_slice::<serde_json::Value>(&body) else {
            tracing::warn!(object = %meta.key, "unreadable gap record");
            continue;
        };
        let found = gap["found_at"]
            .as_str()
            .and_then(|t| crate::record::parse_ts(t).ok());
        if found.is_some_and(|t| t.timestamp_millis() >= since.timestamp_millis()) {
            out.push(gap);
        }
    }
    Ok(out)
}

#[async_trait]
impl Sink for ArchiveSink {
    async fn write(
        &mut self,
        batch: Arc<Batch>,
        rejected: &mut Vec<Rejected>,
    ) -> anyhow::Result<()> {
        // The streams the sources name are opened (lease, checkpoints) before the first record,
        // also those no record will come from (they get a manifest all the same).
        self.open_expected().await?;
        for r in batch.iter() {
            let (stream, shard_id) = match storable(r) {
                Ok(names) => names,
                Err(reason) => {
                    rejected.push(Rejected {
                        record: r.clone(),
                        reason,
                    });
                    continue;
                }
            };
            self.open_stream(&stream).await?;
            if self.config.roll_per_window {
                self.check_sequence_order(r)?;
            }
            if self.already_archived(r) {
                // Archived already (by an earlier run, or a duplicate delivery in this one).
                if let Some(s) = self.streams.get_mut(&r.stream) {
                    s.manifest.skipped_already_archived += 1;
                }
                self.skipped.add(1, r.weight());
                continue;
            }
            self.append(r, &stream, &shard_id).await?;
        }
        // Aged objects close now, unless their last record is a KPL user record: only the
        // kinesis source ends batches at aggregate boundaries, so such an object closes with the
        // next record of another sequence number (or a barrier, or the end) instead, never
        // inside an aggregate.
        if let Some(max_age) = self.config.max_age {
            self.flush_where(|w| w.opened.elapsed() >= max_age.0 && w.last_sub.is_none())
                .await?;
        }
        Ok(())
    }

    fn take_skipped(&mut self) -> crate::stage::Skipped {
        std::mem::take(&mut self.skipped)
    }

    async fn barrier(&mut self, _id: u64) -> anyhow::Result<()> {
        self.flush_all().await
    }

    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        self.flush_all().await?;
        // A stream that brought no record this run still gets its manifest (0 records): a
        // nightly job on a quiet stream leaves a trace that it ran.
        self.open_expected().await?;
        let mut report = SinkReport::default();
        let mut streams: Vec<_> = self.streams.keys().cloned().collect();
        streams.sort();
        for stream in streams {
            let state = self.streams.get_mut(&stream).expect("listed");
            state.manifest.gaps =
                gaps_found_since(&self.store, &state.name, self.started_at).await?;
            crate::fault::hit("before_manifest");
            state.manifest.status = "completed".into();
            state.manifest.finished_at = format_ts(&Utc::now());
            write_manifest(&self.store, &state.name, &state.manifest).await?;
            if let Some(lease) = state.lease.take() {
                lease.release().await?;
            }
            let m = &state.manifest;
            let manifest = format!(
                "{}/{}",
                self.store.url(),
                layout::run_key(&state.name, &m.run_id)
            );
            report.lines.push(format!(
                "stream {stream}: archived {} records in {} objects, skipped {} already archived, removed {} orphaned objects; manifest {manifest}",
                m.records,
                m.objects.len(),
                m.skipped_already_archived,
                m.removed_orphans.len(),
            ));
            report.manifests.push(manifest);
        }
        Ok(report)
    }
}

impl crate::registry::StageKind for ArchiveSinkConfig {
    fn validate(&self) -> Result<(), String> {
        ArchiveSinkConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        if ctx.dry_run {
            return Err(
                "the archive sink has no dry run; --dry-run works with kinesis and file sinks"
                    .into(),
            );
        }
        let run = RunInfo {
            run_id: ctx.run_id.clone(),
            pipeline: ctx.pipeline.clone(),
            stage: ctx.stage.clone(),
        };
        ArchiveSinkConfig::build(self, run, ctx.upstream_streams.clone())
            .map(crate::registry::BuiltStage::Sink)
    }

    fn place(&self) -> Option<Result<crate::registry::Place, String>> {
        Some(
            crate::store::locate(&self.url, self.aws.endpoint.as_deref())
                .map(crate::registry::Place::Archive),
        )
    }
}
