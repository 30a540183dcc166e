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
//!
//! Files: `config` (the settings), this module (the sink: routing records to their shard's
//! object, rerun and order checks), `writer` (one open object), `compress` (its gzip stream,
//! compressed on the blocking pool, objects in parallel), `commit` (leases and
//! checkpoints: opening a stream, committing an object, the run manifest's gaps).

mod commit;
mod compress;
mod config;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
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

use commit::gaps_found_since;
pub use config::{ArchiveSinkConfig, RunInfo};
use writer::ObjectWriter;

struct StreamState {
    name: StreamName,
    lease: Option<Lease>,
    checkpoints: BTreeMap<String, Stored>,
    manifest: RunManifest,
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
    /// The room for uncompressed bytes in flight to the open objects' compressors.
    compress: compress::CompressBudget,
    /// Streams several processes archive at once (`workers = "shared"` on their source): no
    /// stream lease; a shard's checkpoint is read again before the sink opens an object for it
    /// (another worker may have moved it since), at most once per checkpoint barrier.
    shared: std::collections::HashSet<Arc<str>>,
    /// Shards of shared streams whose checkpoint was read since the last barrier.
    fresh: std::collections::HashSet<ShardKey>,
}

/// (stream, shard id).
type ShardKey = (Arc<str>, Arc<str>);
/// (sequence number, sub-sequence number).
type Position = (SequenceNumber, Option<u64>);

impl ArchiveSink {
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
            gz: compress::Compressor::new(level, self.compress.clone()),
            window,
        });
        let written = w.gz.write_with(|buf| r.write_envelope(buf)).await?;
        w.last = r.sequence_number.clone();
        w.last_sub = r.sub_sequence_number;
        w.last_arrival = r.arrival_ts;
        w.records += 1;
        w.raw_bytes += written as u64;
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
    let why =
        |e: crate::names::NameError| format!("{e}; the archive cannot store the record under it");
    let stream = StreamName::from_arc(&r.stream).map_err(why)?;
    let shard_id = ShardId::from_arc(&r.shard_id).map_err(why)?;
    crate::record::check_ts(&r.arrival_ts).map_err(|e| format!("arrival time: {e}"))?;
    Ok((stream, shard_id))
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
            self.refresh_if_shared(r, &stream, &shard_id).await?;
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
        self.flush_all().await?;
        self.fresh.clear();
        Ok(())
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
