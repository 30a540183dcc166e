//! The health of an archive, as data: per stream and shard the checkpoint, the last runs, gaps,
//! the lease, staged, orphaned and temporary objects, and (optionally) the lag behind Kinesis
//! and the time left before unarchived records expire. `flux-engine status` prints it; a server
//! can serve the same report.
//!
//! Everything is read through the archive's own code ([`super::layout`], [`super::state`],
//! [`super::lease`]); nothing is written. [`inspect`] gathers the report, [`health`] decides
//! what needs action.

pub mod health;
pub mod live;
mod scan;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::names::StreamName;
use crate::store::{self, StoreOptions};

/// The version of the report's JSON shape (docs/running.md, "status"). Raised when a field
/// changes meaning or goes away; new fields may appear without it.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveStatus {
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// The archive root.
    pub archive: String,
    /// When the report was made (UTC, RFC 3339).
    pub checked_at: String,
    /// True when no stream has a problem (see [`Problem`]).
    pub healthy: bool,
    /// One entry per stream, in name order.
    pub streams: Vec<StreamStatus>,
}

/// One stream of the archive.
#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    /// The stream.
    pub stream: String,
    /// True when this stream has no problem.
    pub healthy: bool,
    /// The stream's lease.
    pub lease: LeaseStatus,
    /// With several workers on the stream (`workers = "shared"`): each worker that has a
    /// heartbeat or holds a shard lease, by name.
    pub workers: Vec<WorkerStatus>,
    /// Per shard (every shard with a checkpoint or data, and with `--kinesis` every shard of the
    /// stream), in shard id order.
    pub shards: Vec<ShardStatus>,
    /// The last run manifests, newest first.
    pub runs: Vec<RunStatus>,
    /// How many run manifests the stream has in all.
    pub runs_total: usize,
    /// Recorded gaps (`_flux/gaps/`), oldest first.
    pub gaps: Vec<GapStatus>,
    /// Objects under `_flux/staging/` (see docs/archive-format.md, "Commit protocol").
    pub staged: Vec<StagedStatus>,
    /// Data objects past their shard's checkpoint (or of a shard without one), which the next
    /// archival run removes.
    pub orphans: Vec<String>,
    /// Temporary files (local) or incomplete multipart uploads (S3) below the stream's folders.
    pub temporary: Vec<TemporaryStatus>,
    /// What Kinesis says about the stream (with `--kinesis`).
    pub kinesis: Option<live::StreamLive>,
    /// What needs action.
    pub problems: Vec<Problem>,
}

/// One shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    /// The shard id.
    pub shard_id: String,
    /// Its checkpoint, when it has one.
    pub checkpoint: Option<CheckpointStatus>,
    /// Data objects of the shard (committed and promoted).
    pub objects: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Whether the shard is closed (split or merged); `None` without `--kinesis`.
    pub closed: Option<bool>,
    /// What Kinesis says about the shard (with `--kinesis`).
    pub kinesis: Option<live::ShardLive>,
}

/// A shard's checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointStatus {
    /// The last archived sequence number.
    pub sequence_number: String,
    /// That record's arrival time.
    pub arrival_ts: String,
    /// Seconds between that arrival and the report.
    pub age_seconds: i64,
    /// When the checkpoint was written.
    pub updated_at: String,
    /// The run that wrote it.
    pub run_id: String,
    /// The data object holding the record.
    pub object: String,
    /// True when the object it commits still waits under `_flux/staging/` (the next run
    /// promotes it).
    pub awaiting_promotion: bool,
}

/// One run manifest.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// The run id.
    pub run_id: String,
    /// The pipeline.
    pub pipeline: String,
    /// When it started and finished.
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// Its outcome, as the manifest says (`completed`).
    pub status: String,
    /// Records archived.
    pub records: u64,
    /// Records skipped as already archived.
    pub skipped_already_archived: u64,
    /// Objects written.
    pub objects: usize,
    /// Gaps it recorded.
    pub gaps: usize,
    /// Orphans it removed.
    pub removed_orphans: usize,
}

/// A recorded gap (docs/archive-format.md, "Gaps").
#[derive(Debug, Clone, Serialize)]
pub struct GapStatus {
    /// Its key.
    pub key: String,
    /// The shard.
    pub shard_id: String,
    /// The checkpoint when it was found.
    pub checkpoint: String,
    /// The oldest sequence number still in the shard then.
    pub oldest_available: String,
    /// When it was found.
    pub found_at: String,
    /// True when it was found at or before the acknowledgement time (`--ack-gaps-until`): it
    /// is listed but needs no action.
    pub acknowledged: bool,
}

/// A stream's lease.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseStatus {
    /// `none` (no lease object), `held` (not expired), `released` (released by hand, see
    /// `lease release`), `lapsed` (expired without being released: its run died).
    pub state: LeaseState,
    /// The run holding (or last holding) it.
    pub run_id: Option<String>,
    /// That run's pipeline.
    pub pipeline: Option<String>,
    /// When it expires or expired.
    pub expires_at: Option<String>,
    /// Seconds until it expires (negative: since it expired).
    pub expires_in_seconds: Option<i64>,
}

/// A worker sharing a stream (see docs/archive-format.md, "Shard leases").
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    /// The worker (its run id).
    pub worker: String,
    /// Its pipeline (from its heartbeat, else from a lease).
    pub pipeline: Option<String>,
    /// When its heartbeat lapses (or lapsed); none when it has none.
    pub expires_at: Option<String>,
    /// True while its heartbeat has not lapsed: its shard leases hold.
    pub live: bool,
    /// The shards whose lease names it.
    pub shards: Vec<String>,
}

/// The state of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// No lease: nobody archives the stream.
    None,
    /// A run holds it.
    Held,
    /// It was released by hand and not taken since.
    Released,
    /// It expired without being released (its run was killed).
    Lapsed,
}

/// A staged object and what becomes of it.
#[derive(Debug, Clone, Serialize)]
pub struct StagedStatus {
    /// Its key.
    pub key: String,
    /// The shard.
    pub shard_id: String,
    /// `awaiting_promotion` (its checkpoint commits it; the next run promotes it), `dead` (at
    /// or below the checkpoint but not committed: the next run deletes it) or `pending` (above
    /// the checkpoint: a run is writing it, or an interrupted run left it; cleared once the
    /// checkpoint passes it).
    pub state: &'static str,
    /// Size in bytes.
    pub bytes: u64,
}

/// A temporary object.
#[derive(Debug, Clone, Serialize)]
pub struct TemporaryStatus {
    /// Its key (a `~tmp-` file, or the key of an incomplete multipart upload).
    pub key: String,
    /// Size in bytes (0 for uploads).
    pub bytes: u64,
    /// When it was started.
    pub since: Option<String>,
}

/// Something that needs action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind: `gap`, `gap_pending`, `lease_lapsed`, `expiry`, `orphans`, `corrupt`,
    /// `stream_missing`.
    pub kind: &'static str,
    /// The shard it is about, if one.
    pub shard_id: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

/// What to inspect and how.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// The streams to report (empty: every stream of the archive).
    pub streams: Vec<StreamName>,
    /// How many run manifests to show per stream.
    pub runs: usize,
    /// Gaps found at or before this time need no action.
    pub gaps_acknowledged_until: Option<DateTime<Utc>>,
    /// Ask Kinesis about each stream (lag, closed shards, expiry).
    pub kinesis: Option<live::LiveOptions>,
}

/// Why no report could be made.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The store could not be opened or read.
    #[error("{0}")]
    Store(String),
    /// The root holds no archive.
    #[error("{0}")]
    NotAnArchive(String),
    /// A stream asked for has nothing in the archive.
    #[error("{0}")]
    UnknownStream(String),
    /// Kinesis could not be reached.
    #[error("{0}")]
    Kinesis(String),
}

/// Inspects the archive at `url` (reached with `store_options`).
pub async fn inspect(
    url: &str,
    store_options: &StoreOptions,
    options: &StatusOptions,
) -> Result<ArchiveStatus, StatusError> {
    let bad_url = |e: store::UrlError| StatusError::Store(format!("the archive URL: {e}"));
    let store = store::open_with(url, store_options).map_err(bad_url)?;
    if let store::StoreLocation::Local(dir) = store::locate(url, None).map_err(bad_url)?
        && !dir.is_dir()
    {
        return Err(StatusError::NotAnArchive(format!(
            "{url}: no archive there ({} is not a directory)",
            dir.display()
        )));
    }
    let now = Utc::now();
    let found = scan::streams(&store).await?;
    let streams = if options.streams.is_empty() {
        if found.is_empty() {
            return Err(StatusError::NotAnArchive(format!(
                "{}: no archive there (nothing under _flux/: no checkpoint, run manifest or lease of any stream)",
                store.url()
            )));
        }
        found.into_iter().collect::<Vec<_>>()
    } else {
        for s in &options.streams {
            if !found.contains(s) && !scan::has_data(&store, s).await? {
                let known: Vec<&str> = found.iter().map(StreamName::as_str).collect();
                return Err(StatusError::UnknownStream(format!(
                    "--stream {s}: the archive {} holds nothing of that stream (streams there: {})",
                    store.url(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        options.streams.clone()
    };
    let client = match &options.kinesis {
        Some(o) => Some(live::client(o).await),
        None => None,
    };
    let mut out = Vec::new();
    for stream in &streams {
        let mut status = scan::stream(&store, stream, options, now).await?;
        if let (Some(client), Some(o)) = (&client, &options.kinesis) {
            live::probe(client, o, &mut status, now).await?;
        }
        health::judge(&mut status);
        out.push(status);
    }
    Ok(ArchiveStatus {
        version: SCHEMA_VERSION,
        archive: store.url(),
        checked_at: crate::record::format_ts(&now),
        healthy: out.iter().all(|s| s.healthy),
        streams: out,
    })
}
