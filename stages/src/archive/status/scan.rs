//! Reading one stream's state out of the archive: checkpoints, data objects, staged objects,
//! run manifests, gap records, the lease and temporary objects. Read only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    CheckpointStatus, GapStatus, LeaseState, LeaseStatus, Problem, RunStatus, ShardStatus,
    StagedStatus, StatusError, StatusOptions, StreamStatus, TemporaryStatus, WorkerStatus,
};
use crate::archive::layout;
use crate::archive::lease::{LeaseBody, lease_key};
use crate::archive::state::{RunManifest, read_checkpoints};
use crate::names::{ShardId, StreamName};
use crate::record::{SequenceNumber, format_ts, parse_ts};
use crate::store::{ObjectStore, StoreError};

fn store_err(e: StoreError) -> StatusError {
    StatusError::Store(e.to_string())
}

/// Every stream named under `_flux/` (checkpoints, runs, leases, gaps, staging).
pub(super) async fn streams(
    store: &Arc<dyn ObjectStore>,
) -> Result<BTreeSet<StreamName>, StatusError> {
    let mut out = BTreeSet::new();
    let listed = match store.list("_flux/").await {
        Ok(l) => l,
        // A listing answers "not found" only when the bucket itself is missing.
        Err(StoreError::NotFound(_)) => {
            return Err(StatusError::NotAnArchive(format!(
                "{}: no archive there (NoSuchBucket: the bucket does not exist)",
                store.url()
            )));
        }
        Err(e) => return Err(store_err(e)),
    };
    for meta in listed {
        let Some(rest) = meta.key.strip_prefix("_flux/") else {
            continue;
        };
        let Some((_, after)) = rest.split_once("stream=") else {
            continue;
        };
        let name = match after.split_once('/') {
            Some((name, _)) => name,
            // `_flux/leases/stream=<stream>.json`
            None => after.strip_suffix(".json").unwrap_or(after),
        };
        if let Ok(stream) = StreamName::parse(name) {
            out.insert(stream);
        }
    }
    Ok(out)
}

/// True when the stream has any data object.
pub(super) async fn has_data(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
) -> Result<bool, StatusError> {
    Ok(store
        .list(&layout::stream_prefix(stream))
        .await
        .map_err(store_err)?
        .iter()
        .any(|o| layout::parse_data_key(stream, &o.key).is_some()))
}

fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> i64 {
    (later - earlier).num_seconds()
}

/// Everything the archive says about one stream (problems found while reading included).
pub(super) async fn stream(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    options: &StatusOptions,
    now: DateTime<Utc>,
) -> Result<StreamStatus, StatusError> {
    let mut problems = Vec::new();
    let checkpoints = match read_checkpoints(store, stream).await {
        Ok(c) => c,
        Err(e) if e.downcast_ref::<StoreError>().is_some() => {
            return Err(StatusError::Store(e.to_string()));
        }
        Err(e) => {
            problems.push(Problem {
                kind: "corrupt",
                shard_id: None,
                message: format!(
                    "{e}; archival runs of this stream stop on it until it is repaired"
                ),
            });
            BTreeMap::new()
        }
    };
    let staged_keys: Vec<_> = store
        .list(&layout::staging_prefix(stream))
        .await
        .map_err(store_err)?;
    let mut shards: BTreeMap<String, ShardStatus> = BTreeMap::new();
    let shard_entry = |shards: &mut BTreeMap<String, ShardStatus>, id: &str| {
        shards
            .entry(id.to_owned())
            .or_insert_with(|| ShardStatus {
                shard_id: id.to_owned(),
                checkpoint: None,
                objects: 0,
                bytes: 0,
                closed: None,
                kinesis: None,
            })
            .shard_id
            .clone()
    };
    let mut positions: BTreeMap<String, SequenceNumber> = BTreeMap::new();
    for (id, stored) in &checkpoints {
        let cp = &stored.checkpoint;
        shard_entry(&mut shards, id);
        let age = parse_ts(&cp.arrival_ts)
            .map(|t| seconds_between(t, now))
            .unwrap_or_default();
        let awaiting = cp
            .staged
            .as_ref()
            .is_some_and(|s| staged_keys.iter().any(|m| &m.key == s));
        if let Ok(seq) = cp.sequence() {
            positions.insert(id.clone(), seq);
        }
        if let Some(s) = shards.get_mut(id) {
            s.checkpoint = Some(CheckpointStatus {
                sequence_number: cp.sequence_number.clone(),
                arrival_ts: cp.arrival_ts.clone(),
                age_seconds: age,
                updated_at: cp.updated_at.clone(),
                run_id: cp.run_id.clone(),
                object: cp.object.clone(),
                awaiting_promotion: awaiting,
            });
        }
    }
    let mut orphans = Vec::new();
    for meta in store
        .list(&layout::stream_prefix(stream))
        .await
        .map_err(store_err)?
    {
        let Some(obj) = layout::parse_data_key(stream, &meta.key) else {
            continue;
        };
        shard_entry(&mut shards, obj.shard_id.as_str());
        if let Some(s) = shards.get_mut(obj.shard_id.as_str()) {
            s.objects += 1;
            s.bytes += meta.size;
        }
        // The sink's own rule (docs/archive-format.md, "Commit protocol"): its objects past the
        // checkpoint, or of a shard without one, are removed by the next run.
        if layout::written_by_sink(&obj) {
            let first = obj.range.as_ref().map(|r| &r.0);
            let past = match (positions.get(obj.shard_id.as_str()), first) {
                (Some(cp), Some(first)) => first > cp,
                (None, _) => !checkpoints.contains_key(obj.shard_id.as_str()),
                _ => false,
            };
            if past {
                orphans.push(meta.key.clone());
            }
        }
    }
    let staged = staged_keys
        .iter()
        .filter_map(|m| {
            let obj = layout::parse_staged_key(stream, &m.key)?;
            let cp = checkpoints.get(obj.shard_id.as_str());
            let state = match (cp, positions.get(obj.shard_id.as_str())) {
                (Some(c), _) if c.checkpoint.staged.as_deref() == Some(m.key.as_str()) => {
                    "awaiting_promotion"
                }
                (_, Some(pos)) if obj.range.0 <= *pos => "dead",
                _ => "pending",
            };
            Some(StagedStatus {
                key: m.key.clone(),
                shard_id: obj.shard_id.to_string(),
                state,
                bytes: m.size,
            })
        })
        .collect();
    let (runs, runs_total) = runs(store, stream, options.runs, &mut problems).await?;
    let gaps = gaps(store, stream, options, &mut problems).await?;
    let lease = lease(store, stream, now, &mut problems).await?;
    let workers = workers(store, stream, now).await?;
    let mut temporary = Vec::new();
    for prefix in [
        layout::stream_prefix(stream),
        layout::checkpoint_prefix(stream),
        layout::staging_prefix(stream),
        format!("_flux/runs/stream={stream}/"),
        "_flux/leases/".to_owned(),
    ] {
        for t in store.list_temporary(&prefix).await.map_err(store_err)? {
            // The leases folder is shared by every stream: a temporary file there (a local
            // write of a lease) belongs to no stream in particular; it is shown under each.
            temporary.push(TemporaryStatus {
                key: t.key,
                bytes: t.size,
                since: t.since.map(|s| format_ts(&s)),
            });
        }
    }
    Ok(StreamStatus {
        stream: stream.to_string(),
        healthy: true,
        lease,
        workers,
        shards: shards.into_values().collect(),
        runs,
        runs_total,
        gaps,
        staged,
        orphans,
        temporary,
        kinesis: None,
        problems,
    })
}

/// The newest `keep` run manifests (run ids sort by start time), newest first.
async fn runs(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    keep: usize,
    problems: &mut Vec<Problem>,
) -> Result<(Vec<RunStatus>, usize), StatusError> {
    let prefix = format!("_flux/runs/stream={stream}/");
    let keys: Vec<String> = store
        .list(&prefix)
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|m| {
            m.key
                .strip_prefix(&prefix)
                .is_some_and(|n| !n.contains('/') && n.ends_with(".json"))
        })
        .map(|m| m.key)
        .collect();
    let mut out = Vec::new();
    for key in keys.iter().rev().take(keep) {
        let body = store.get(key).await.map_err(store_err)?;
        match serde_json::from_slice::<RunManifest>(&body) {
            Ok(m) => out.push(RunStatus {
                run_id: m.run_id,
                pipeline: m.pipeline,
                started_at: m.started_at,
                finished_at: m.finished_at,
                status: m.status,
                records: m.records,
                skipped_already_archived: m.skipped_already_archived,
                objects: m.objects.len(),
                gaps: m.gaps.len(),
                removed_orphans: m.removed_orphans.len(),
            }),
            Err(e) => problems.push(Problem {
                kind: "corrupt",
                shard_id: None,
                message: format!("{}/{key}: corrupt run manifest: {e}", store.url()),
            }),
        }
    }
    Ok((out, keys.len()))
}

/// The gap records of the stream, in both layouts (`shard=<id>/<checkpoint>.json` and the
/// earlier `<shard_id>-<checkpoint>.json`), oldest first.
async fn gaps(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    options: &StatusOptions,
    problems: &mut Vec<Problem>,
) -> Result<Vec<GapStatus>, StatusError> {
    #[derive(serde::Deserialize)]
    struct Gap {
        shard_id: String,
        checkpoint: String,
        oldest_available: String,
        found_at: String,
    }
    let mut out = Vec::new();
    for meta in store
        .list(&layout::gap_prefix(stream))
        .await
        .map_err(store_err)?
    {
        if !meta.key.ends_with(".json") {
            continue;
        }
        let body = store.get(&meta.key).await.map_err(store_err)?;
        match serde_json::from_slice::<Gap>(&body) {
            Ok(g) if ShardId::parse(&g.shard_id).is_ok() => {
                let acknowledged = match (options.gaps_acknowledged_until, parse_ts(&g.found_at)) {
                    (Some(until), Ok(found)) => found <= until,
                    _ => false,
                };
                out.push(GapStatus {
                    key: meta.key,
                    shard_id: g.shard_id,
                    checkpoint: g.checkpoint,
                    oldest_available: g.oldest_available,
                    found_at: g.found_at,
                    acknowledged,
                });
            }
            Ok(_) | Err(_) => problems.push(Problem {
                kind: "corrupt",
                shard_id: None,
                message: format!(
                    "{}/{}: unreadable gap record (not the JSON object of docs/archive-format.md, \"Gaps\")",
                    store.url(),
                    meta.key
                ),
            }),
        }
    }
    out.sort_by(|a, b| a.found_at.cmp(&b.found_at));
    Ok(out)
}

/// The workers sharing the stream: their heartbeats and the shard leases naming them.
async fn workers(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    now: DateTime<Utc>,
) -> Result<Vec<WorkerStatus>, StatusError> {
    let (beats, leases) = crate::archive::workers::read_all(store, stream)
        .await
        .map_err(|e| StatusError::Store(e.to_string()))?;
    let mut out: std::collections::BTreeMap<String, WorkerStatus> = beats
        .into_iter()
        .map(|b| {
            let live = b.live_at(now);
            let status = WorkerStatus {
                worker: b.worker.clone(),
                pipeline: Some(b.pipeline),
                expires_at: Some(b.expires_at),
                live,
                shards: Vec::new(),
            };
            (b.worker, status)
        })
        .collect();
    for (shard, lease) in leases {
        out.entry(lease.worker.clone())
            .or_insert_with(|| WorkerStatus {
                worker: lease.worker.clone(),
                pipeline: Some(lease.pipeline.clone()),
                expires_at: None,
                live: false,
                shards: Vec::new(),
            })
            .shards
            .push(shard);
    }
    Ok(out.into_values().collect())
}

async fn lease(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    now: DateTime<Utc>,
    problems: &mut Vec<Problem>,
) -> Result<LeaseStatus, StatusError> {
    let none = LeaseStatus {
        state: LeaseState::None,
        run_id: None,
        pipeline: None,
        expires_at: None,
        expires_in_seconds: None,
    };
    let key = lease_key(stream);
    let Some(body) = store.get_opt(&key).await.map_err(store_err)? else {
        return Ok(none);
    };
    let parsed = serde_json::from_slice::<LeaseBody>(&body)
        .map_err(|e| e.to_string())
        .and_then(|b| parse_ts(&b.expires_at).map(|t| (b, t)));
    let (body, expires) = match parsed {
        Ok(x) => x,
        Err(e) => {
            problems.push(Problem {
                kind: "corrupt",
                shard_id: None,
                message: format!(
                    "{}/{key}: corrupt lease ({e}); archival runs of this stream stop on it: `flux-engine lease release --force` replaces it",
                    store.url()
                ),
            });
            return Ok(none);
        }
    };
    // `lease release` leaves a lapsed lease whose run id says so (see lease::release_manually).
    let state = if body.run_id.starts_with("released:") {
        LeaseState::Released
    } else if expires > now {
        LeaseState::Held
    } else {
        LeaseState::Lapsed
    };
    Ok(LeaseStatus {
        state,
        run_id: Some(
            body.run_id
                .strip_prefix("released:")
                .unwrap_or(&body.run_id)
                .to_owned(),
        ),
        pipeline: Some(body.pipeline),
        expires_at: Some(body.expires_at),
        expires_in_seconds: Some(seconds_between(now, expires)),
    })
}
