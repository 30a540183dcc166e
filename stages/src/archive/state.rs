//! Checkpoints and run manifests: the archive's memory, kept in the object store beside the data.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::layout;
use crate::names::{ShardId, StreamName};
use crate::record::SequenceNumber;
use crate::store::{ObjectStore, PutCondition, StoreError};

/// The last archived position of one shard. Written only after the data object holding that
/// position is in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The stream.
    pub stream: String,
    /// The shard.
    pub shard_id: String,
    /// The last archived sequence number (decimal string).
    pub sequence_number: String,
    /// The arrival time of that record.
    pub arrival_ts: String,
    /// The data object that holds it (its key among the data).
    pub object: String,
    /// Where that object was staged before this checkpoint committed it. Set while the object
    /// may still wait to be promoted to `object` (a crash between commit and promotion); the
    /// next run promotes it. See docs/archive-format.md, "Commit protocol".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
    /// The run that wrote this checkpoint.
    pub run_id: String,
    /// When it was written.
    pub updated_at: String,
}

impl Checkpoint {
    /// The checkpoint's sequence number, parsed.
    pub fn sequence(&self) -> Result<SequenceNumber, String> {
        SequenceNumber::parse(&self.sequence_number)
    }
}

/// A checkpoint as read, with the entity tag that a later update must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Its entity tag in the store.
    pub etag: String,
}

/// Reads every checkpoint of exactly one stream, by shard id: the `<shard_id>.json` objects
/// directly under the stream's checkpoint folder, each naming that stream and shard.
pub async fn read_checkpoints(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
) -> anyhow::Result<BTreeMap<String, Stored>> {
    let mut out = BTreeMap::new();
    for meta in store.list(&layout::checkpoint_prefix(stream)).await? {
        let Some(shard) = layout::parse_checkpoint_key(stream, &meta.key) else {
            continue;
        };
        let (body, etag) = store.get_with_etag(&meta.key).await?;
        let cp: Checkpoint = serde_json::from_slice(&body).map_err(|e| {
            anyhow::anyhow!("{}/{}: corrupt checkpoint: {e}", store.url(), meta.key)
        })?;
        if cp.stream != stream.as_str() || cp.shard_id != shard.as_str() {
            anyhow::bail!(
                "{}/{}: corrupt checkpoint: it names stream {:?} shard {:?}, but lies where stream {stream} shard {shard} keeps its checkpoint",
                store.url(),
                meta.key,
                cp.stream,
                cp.shard_id
            );
        }
        out.insert(
            cp.shard_id.clone(),
            Stored {
                checkpoint: cp,
                etag,
            },
        );
    }
    Ok(out)
}

/// Reads one shard's checkpoint, if it has one.
pub async fn read_checkpoint(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    shard: &ShardId,
) -> anyhow::Result<Option<Stored>> {
    let key = layout::checkpoint_key(stream, shard);
    let (body, etag) = match store.get_with_etag(&key).await {
        Ok(x) => x,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let checkpoint: Checkpoint = serde_json::from_slice(&body)
        .map_err(|e| anyhow::anyhow!("{}/{key}: corrupt checkpoint: {e}", store.url()))?;
    if checkpoint.stream != stream.as_str() || checkpoint.shard_id != shard.as_str() {
        anyhow::bail!(
            "{}/{key}: corrupt checkpoint: it names stream {:?} shard {:?}, but lies where stream {stream} shard {shard} keeps its checkpoint",
            store.url(),
            checkpoint.stream,
            checkpoint.shard_id
        );
    }
    Ok(Some(Stored { checkpoint, etag }))
}

/// Moves one shard's checkpoint, only if nobody else moved it since `previous` was read (or,
/// without `previous`, only if it does not exist yet). Two archivers racing on one stream can
/// therefore not both advance a checkpoint: the loser gets [`StoreError::Conflict`].
pub async fn write_checkpoint(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    shard: &ShardId,
    cp: &Checkpoint,
    previous: Option<&str>,
) -> Result<String, StoreError> {
    let body = serde_json::to_vec_pretty(cp).unwrap_or_default();
    let condition = match previous {
        Some(etag) => PutCondition::IfMatch(etag.to_owned()),
        None => PutCondition::IfAbsent,
    };
    store
        .put_if(
            &layout::checkpoint_key(stream, shard),
            Bytes::from(body),
            condition,
        )
        .await
}

/// One data object a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenObject {
    /// Its key.
    pub key: String,
    /// Records in it.
    pub records: u64,
    /// Compressed size.
    pub bytes: u64,
}

/// What one run did to one stream of the archive: `_flux/runs/stream=<stream>/<run_id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RunManifest {
    /// The run's id (UTC start time plus a random suffix).
    pub run_id: String,
    /// The pipeline name.
    pub pipeline: String,
    /// The sink stage id that wrote it.
    pub stage: String,
    /// The stream archived.
    pub stream: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub finished_at: String,
    /// "completed" or "failed".
    pub status: String,
    /// Records written.
    pub records: u64,
    /// Records skipped because an earlier run had archived them already.
    pub skipped_already_archived: u64,
    /// Objects found past a checkpoint at start (left by a crashed run) and removed.
    pub removed_orphans: Vec<String>,
    /// Objects written.
    pub objects: Vec<WrittenObject>,
    /// What was archived per shard, by shard id.
    #[serde(default)]
    pub shards: BTreeMap<String, ShardSummary>,
    /// Gaps found at the start of this run (records that expired before they were archived),
    /// as recorded under `_flux/gaps/`.
    #[serde(default)]
    pub gaps: Vec<serde_json::Value>,
}

/// What one run archived from one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShardSummary {
    /// The first sequence number archived.
    pub first_sequence_number: String,
    /// The last sequence number archived (the shard's checkpoint after the run).
    pub last_sequence_number: String,
    /// Arrival time of the first record archived.
    pub first_arrival_ts: String,
    /// Arrival time of the last record archived.
    pub last_arrival_ts: String,
    /// Records archived.
    pub records: u64,
    /// Uncompressed envelope bytes archived.
    pub raw_bytes: u64,
    /// Compressed bytes stored.
    pub bytes: u64,
    /// Objects written.
    pub objects: u64,
}

/// Writes a run manifest.
pub async fn write_manifest(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    manifest: &RunManifest,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    store
        .put(
            &layout::run_key(stream, &manifest.run_id),
            Bytes::from(body),
        )
        .await
}
