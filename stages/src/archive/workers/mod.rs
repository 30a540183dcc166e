//! Several archiver processes on one stream (`workers = "shared"` on the `kinesis` source):
//! each shard is leased to one worker at a time with conditional writes in the archive, as the
//! stream is in the single-worker mode ([`super::lease`]). Correctness does not rest on these
//! leases either: checkpoints are per shard and every commit is a conditional write (see
//! docs/archive-format.md, "Exactly once"); the leases only spread the shards over the workers
//! and keep two of them from reading one shard.
//!
//! Objects, all under `_flux/` beside the checkpoints:
//! - `workers/stream=<stream>/<worker>.json`: a worker's heartbeat ([`Holder`]), rewritten every
//!   third of `lease_ttl`; it tells the others how many share the stream (a worker that holds no
//!   shard yet counts too) and which shards it holds, and keeps that worker's shard leases alive;
//! - `leases/stream=<stream>/<shard_id>.json`: a shard's lease ([`ShardLease`]), written when
//!   the shard is taken and deleted when it is given back, never renewed: it holds while its
//!   worker's heartbeat does. One PUT per worker keeps any number of shards (the PUTs are what
//!   leases cost on S3);
//! - `ends/stream=<stream>/<shard_id>.json`: a closed shard read to its end ([`ShardEnd`]). The
//!   shard is finished once its checkpoint reaches the end's last record: then its children
//!   may be read.
//!
//! [`plan`] decides what a worker takes and gives up; [`Workers`] reads and writes the objects.

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::lease::{LeaseBody, hold, lease_key, release_if_ours, unhold};
use crate::names::{ShardId, StreamName};
use crate::record::{SequenceNumber, format_ts, parse_ts};
use crate::store::{ObjectStore, PutCondition, StoreError};

pub use plan::{Look, Plan, ShardView};

/// A worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The worker: its run id.
    pub worker: String,
    /// That run's pipeline.
    pub pipeline: String,
    /// When it lapses unless renewed (UTC).
    pub expires_at: String,
    /// The shards whose lease the worker holds, as of this heartbeat: the others learn the
    /// leases from the heartbeats (one GET per worker) instead of reading every lease.
    #[serde(default)]
    pub shards: Vec<String>,
}

impl Holder {
    fn live(&self) -> bool {
        self.live_at(Utc::now())
    }

    /// Whether the heartbeat has not lapsed at `now`.
    pub fn live_at(&self, now: chrono::DateTime<Utc>) -> bool {
        parse_ts(&self.expires_at).is_ok_and(|t| t > now)
    }
}

/// A shard lease's content: live while its worker's heartbeat is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardLease {
    /// The worker holding it (a run id).
    pub worker: String,
    /// That run's pipeline.
    pub pipeline: String,
    /// When the worker took it (UTC).
    pub taken_at: String,
}

/// A closed shard read to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEnd {
    /// The stream.
    pub stream: String,
    /// The shard.
    pub shard_id: String,
    /// The shard's last record (none: the shard never had one).
    pub last_sequence_number: Option<String>,
    /// When the worker that read it found the end (UTC).
    pub found_at: String,
}

/// The prefix of a stream's shard leases.
pub fn shard_lease_prefix(stream: &StreamName) -> String {
    format!("_flux/leases/stream={stream}/")
}

/// The key of a shard's lease.
pub fn shard_lease_key(stream: &StreamName, shard: &ShardId) -> String {
    format!("{}{shard}.json", shard_lease_prefix(stream))
}

/// The prefix of a stream's worker heartbeats.
pub fn worker_prefix(stream: &StreamName) -> String {
    format!("_flux/workers/stream={stream}/")
}

/// The prefix of a stream's shard ends.
pub fn end_prefix(stream: &StreamName) -> String {
    format!("_flux/ends/stream={stream}/")
}

/// The name a key under `prefix` has, when it is a direct `<name>.json` child.
fn child_name<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let name = key.strip_prefix(prefix)?.strip_suffix(".json")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Reads the direct `<name>.json` children of `prefix` as `T`; a corrupt one is an error
/// naming it, one deleted between listing and reading is skipped.
async fn read_children<T: serde::de::DeserializeOwned>(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, (T, String)>> {
    let mut out = BTreeMap::new();
    for meta in store.list(prefix).await? {
        let Some(name) = child_name(prefix, &meta.key) else {
            continue;
        };
        let (body, etag) = match store.get_with_etag(&meta.key).await {
            Ok(x) => x,
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let value: T = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("{}/{}: corrupt: {e}", store.url(), meta.key))?;
        out.insert(name.to_owned(), (value, etag));
    }
    Ok(out)
}

/// The live workers sharing `stream` (their heartbeats have not lapsed).
pub async fn live_workers(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
) -> anyhow::Result<Vec<Holder>> {
    Ok(read_children::<Holder>(store, &worker_prefix(stream))
        .await?
        .into_values()
        .map(|(h, _)| h)
        .filter(Holder::live)
        .collect())
}

/// Every heartbeat (lapsed ones included) and shard lease of `stream`, for the `status` report:
/// (heartbeats, shard → lease).
pub async fn read_all(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
) -> anyhow::Result<(Vec<Holder>, BTreeMap<String, ShardLease>)> {
    let beats = read_children::<Holder>(store, &worker_prefix(stream))
        .await?
        .into_values()
        .map(|(h, _)| h)
        .collect();
    let leases = read_children::<ShardLease>(store, &shard_lease_prefix(stream))
        .await?
        .into_iter()
        .map(|(shard, (l, _))| (shard, l))
        .collect();
    Ok((beats, leases))
}

/// One worker's side of a shared stream: its heartbeat and the shard leases it holds, each
/// with the entity tag it wrote last (also registered with [`super::lease::release_held_by`],
/// so a run that ends any way but SIGKILL gives them back).
pub struct Workers {
    store: Arc<dyn ObjectStore>,
    stream: StreamName,
    me: String,
    pipeline: String,
    ttl: Duration,
    beat: Arc<Mutex<String>>,
    held: BTreeMap<String, Arc<Mutex<String>>>,
    /// Shards known to be finished (their end is archived).
    done: BTreeSet<String>,
}

impl Workers {
    /// Joins the workers of `stream` as `me` (the run id): refuses while a single-worker run
    /// holds the stream's lease, then writes the first heartbeat.
    pub async fn join(
        store: Arc<dyn ObjectStore>,
        stream: StreamName,
        me: &str,
        pipeline: &str,
        ttl: Duration,
    ) -> anyhow::Result<Workers> {
        if let Some(body) = store.get_opt(&lease_key(&stream)).await? {
            let holder: LeaseBody = serde_json::from_slice(&body).map_err(|e| {
                anyhow::anyhow!("{}/{}: corrupt lease: {e}", store.url(), lease_key(&stream))
            })?;
            if parse_ts(&holder.expires_at).is_ok_and(|t| t > Utc::now()) {
                anyhow::bail!(
                    "stream {stream} is being archived by run {} of pipeline {} with workers = \"single\" (its lease {}/{} holds until {}); \
                     workers = \"shared\" and \"single\" cannot archive one stream at once: give every archiver of the stream the same `workers`",
                    holder.run_id,
                    holder.pipeline,
                    store.url(),
                    lease_key(&stream),
                    holder.expires_at
                );
            }
        }
        let workers = Workers {
            store,
            stream,
            me: me.to_owned(),
            pipeline: pipeline.to_owned(),
            ttl,
            beat: Arc::new(Mutex::new(String::new())),
            held: BTreeMap::new(),
            done: BTreeSet::new(),
        };
        hold(me, &workers.store, &workers.beat_key(), &workers.beat);
        workers.heartbeat().await?;
        Ok(workers)
    }

    /// This worker's name (its run id).
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The store the leases and checkpoints are in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn beat_key(&self) -> String {
        format!("{}{}.json", worker_prefix(&self.stream), self.me)
    }

    fn body(&self) -> anyhow::Result<Bytes> {
        let holder = Holder {
            worker: self.me.clone(),
            pipeline: self.pipeline.clone(),
            expires_at: format_ts(
                &(Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or_default()),
            ),
            shards: self.held.keys().cloned().collect(),
        };
        Ok(Bytes::from(serde_json::to_vec_pretty(&holder)?))
    }

    /// Rewrites this worker's heartbeat with a new expiry.
    pub async fn heartbeat(&self) -> anyhow::Result<()> {
        let key = self.beat_key();
        let etag = self
            .store
            .put_if(&key, self.body()?, PutCondition::None)
            .await?;
        if let Ok(mut e) = self.beat.lock() {
            *e = etag;
        }
        Ok(())
    }

    /// Whether `worker`'s heartbeat is live now. A look can be older than a lease it did not
    /// see (its worker joined since); but a worker writes its heartbeat before its first lease,
    /// so reading the heartbeat after the lease tells whether that lease still holds.
    async fn beats(&self, worker: &str) -> anyhow::Result<bool> {
        if crate::names::name_problem(worker).is_some() {
            return Ok(false); // not a run id: a corrupt lease, free to take over
        }
        let key = format!("{}{worker}.json", worker_prefix(&self.stream));
        Ok(match self.store.get_opt(&key).await? {
            Some(body) => serde_json::from_slice::<Holder>(&body).is_ok_and(|h| h.live()),
            None => false,
        })
    }

    /// Whether this worker holds `shard`'s lease.
    pub fn holds(&self, shard: &str) -> bool {
        self.held.contains_key(shard)
    }

    /// Looks at the stream: the shards (as listed), which are finished, the live leases and
    /// the live workers. The leases are read from the live workers' heartbeats (each lists the
    /// shards its worker holds), so a look costs a LIST and a GET per worker, not per shard; a
    /// shard two heartbeats claim (one of them is stale) is settled by reading its lease.
    /// Heartbeats that lapsed (their workers were killed) are deleted on the way, so they do
    /// not pile up; a worker that was only paused writes its heartbeat again when it goes on.
    ///
    /// `closed` are the listed shards that are closed: the recorded ends are looked at only
    /// while one of them is not known to be finished.
    pub async fn look(
        &mut self,
        shards: Vec<ShardView>,
        closed: &[String],
    ) -> anyhow::Result<Look> {
        let mut workers = BTreeSet::new();
        let mut claims: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let prefix = worker_prefix(&self.stream);
        for (name, (beat, etag)) in read_children::<Holder>(&self.store, &prefix).await? {
            if name == self.me {
                continue; // this worker's own leases are the ones it holds
            }
            if beat.live() {
                for shard in &beat.shards {
                    claims
                        .entry(shard.clone())
                        .or_default()
                        .push(beat.worker.clone());
                }
                workers.insert(beat.worker);
            } else {
                let key = format!("{prefix}{name}.json");
                release_if_ours(&self.store, &key, &etag).await?;
            }
        }
        workers.insert(self.me.clone());
        for shard in self.held.keys() {
            claims
                .entry(shard.clone())
                .or_default()
                .push(self.me.clone());
        }
        let mut leases = BTreeMap::new();
        for (shard, mut by) in claims {
            let holder = if by.len() == 1 {
                by.pop()
            } else {
                let id = ShardId::parse(&shard).map_err(anyhow::Error::msg)?;
                let key = shard_lease_key(&self.stream, &id);
                match self.store.get_opt(&key).await? {
                    Some(body) => Some(
                        serde_json::from_slice::<ShardLease>(&body)
                            .map_err(|e| {
                                anyhow::anyhow!("{}/{key}: corrupt lease: {e}", self.store.url())
                            })?
                            .worker,
                    ),
                    None => None,
                }
            };
            if let Some(h) = holder.filter(|h| workers.contains(h)) {
                leases.insert(shard, h);
            }
        }
        if closed.iter().any(|c| !self.done.contains(c)) {
            self.find_done().await?;
        }
        Ok(Look {
            shards,
            done: self.done.clone(),
            leases,
            workers,
        })
    }

    /// Adds to the finished shards those whose end was recorded and whose checkpoint has
    /// reached it (a finished shard stays finished, so each is read once).
    async fn find_done(&mut self) -> anyhow::Result<()> {
        let prefix = end_prefix(&self.stream);
        for meta in self.store.list(&prefix).await? {
            let Some(shard) = child_name(&prefix, &meta.key) else {
                continue;
            };
            if self.done.contains(shard) {
                continue;
            }
            let Some(body) = self.store.get_opt(&meta.key).await? else {
                continue;
            };
            let end: ShardEnd = serde_json::from_slice(&body)
                .map_err(|e| anyhow::anyhow!("{}/{}: corrupt: {e}", self.store.url(), meta.key))?;
            let last = end
                .last_sequence_number
                .as_deref()
                .map(SequenceNumber::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            if self.archived_to(shard, last.as_ref()).await? {
                self.done.insert(shard.to_owned());
            }
        }
        Ok(())
    }

    /// Tries to take `shard`'s lease: free (no lease) or lapsed. False when another worker
    /// holds it or won the race.
    /// `live` are the live workers of the last look.
    pub async fn take(&mut self, shard: &str, live: &BTreeSet<String>) -> anyhow::Result<bool> {
        let id = ShardId::parse(shard).map_err(anyhow::Error::msg)?;
        let key = shard_lease_key(&self.stream, &id);
        let condition = match self.store.get_with_etag(&key).await {
            Ok((body, etag)) => {
                let lease: ShardLease = serde_json::from_slice(&body).map_err(|e| {
                    anyhow::anyhow!("{}/{key}: corrupt lease: {e}", self.store.url())
                })?;
                if lease.worker == self.me {
                    return Ok(false); // being given up by this worker
                }
                if live.contains(&lease.worker) || self.beats(&lease.worker).await? {
                    return Ok(false);
                }
                tracing::warn!(stream = %self.stream, shard, previous = %lease.worker, "taking over a lapsed shard lease (its worker's heartbeat lapsed)");
                PutCondition::IfMatch(etag)
            }
            Err(StoreError::NotFound(_)) => PutCondition::IfAbsent,
            Err(e) => return Err(e.into()),
        };
        let lease = ShardLease {
            worker: self.me.clone(),
            pipeline: self.pipeline.clone(),
            taken_at: format_ts(&Utc::now()),
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&lease)?);
        match self.store.put_if(&key, body, condition).await {
            Ok(etag) => {
                let etag = Arc::new(Mutex::new(etag));
                hold(&self.me, &self.store, &key, &etag);
                self.held.insert(shard.to_owned(), etag);
                Ok(true)
            }
            Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The shards this worker holds whose lease `look` shows held by another worker (taken
    /// after this worker's heartbeat lapsed: it was paused or cut off for longer than
    /// `lease_ttl`; the other's heartbeat claims the shard and the lease names it): they are
    /// this worker's no longer, and it must stop reading them.
    pub fn lost(&mut self, look: &Look) -> Vec<String> {
        let lost: Vec<String> = self
            .held
            .keys()
            .filter(|s| look.leases.get(*s) != Some(&self.me))
            .cloned()
            .collect();
        for shard in &lost {
            if let Some(etag) = self.held.remove(shard) {
                unhold(&etag);
            }
            tracing::warn!(stream = %self.stream, shard = %shard, "lost a shard lease to another worker (this worker's heartbeat lapsed: was it paused for longer than lease_ttl?); stopped reading the shard");
        }
        lost
    }

    /// Gives `shard`'s lease back (only if it is still ours).
    pub async fn release(&mut self, shard: &str) -> anyhow::Result<()> {
        let Some(etag) = self.held.remove(shard) else {
            return Ok(());
        };
        unhold(&etag);
        let id = ShardId::parse(shard).map_err(anyhow::Error::msg)?;
        let ours = etag.lock().map(|e| e.clone()).unwrap_or_default();
        release_if_ours(&self.store, &shard_lease_key(&self.stream, &id), &ours).await?;
        Ok(())
    }

    /// Records that `shard` was read to its end, `last` being its last record.
    pub async fn record_end(
        &self,
        shard: &str,
        last: Option<&SequenceNumber>,
    ) -> anyhow::Result<()> {
        let end = ShardEnd {
            stream: self.stream.to_string(),
            shard_id: shard.to_owned(),
            last_sequence_number: last.map(|s| s.to_string()),
            found_at: format_ts(&Utc::now()),
        };
        let key = format!("{}{shard}.json", end_prefix(&self.stream));
        self.store
            .put(&key, Bytes::from(serde_json::to_vec_pretty(&end)?))
            .await?;
        Ok(())
    }

    /// Whether `shard`'s checkpoint has reached `last` (everything read of it is archived).
    pub async fn archived_to(
        &self,
        shard: &str,
        last: Option<&SequenceNumber>,
    ) -> anyhow::Result<bool> {
        let Some(last) = last else {
            return Ok(true);
        };
        let id = ShardId::parse(shard).map_err(anyhow::Error::msg)?;
        Ok(
            match super::state::read_checkpoint(&self.store, &self.stream, &id).await? {
                Some(cp) => cp.checkpoint.sequence().map_err(anyhow::Error::msg)? >= *last,
                None => false,
            },
        )
    }
}

#[cfg(test)]
mod tests;
