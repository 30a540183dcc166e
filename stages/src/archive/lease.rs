//! One archiver per stream: a lease object `_flux/leases/stream=<stream>.json`, taken with a
//! conditional write (`If-None-Match: *`, or `If-Match` to take over an expired one), renewed
//! while the run writes, released at the end. A second archiver started on the same stream
//! fails at once instead of wasting work on it (correctness does not depend on the lease: see
//! the commit protocol in docs/archive-format.md).
//!
//! Every lease this process holds is also in a registry, so that an exit path that never
//! reaches the sink's end (a failed run, a second Ctrl-C) can still release it
//! ([`release_held`]); [`release_manually`] is the operator's release.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::StreamName;
use crate::record::{format_ts, parse_ts};
use crate::store::{ObjectStore, PutCondition, StoreError};

/// The lease's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBody {
    /// The run holding it.
    pub run_id: String,
    /// The pipeline of that run.
    pub pipeline: String,
    /// When it lapses unless renewed.
    pub expires_at: String,
}

/// The leases this process holds: (run id, store, key, the entity tag last written).
type Held = (
    String,
    Arc<dyn ObjectStore>,
    String,
    Arc<std::sync::Mutex<String>>,
);

static HELD: std::sync::Mutex<Vec<Held>> = std::sync::Mutex::new(Vec::new());

/// Registers an object this process holds (a lease, a worker's heartbeat) under `run_id`, with
/// the entity tag it wrote last (kept up to date by the holder), so that [`release_held`] and
/// [`release_held_by`] delete it if the run ends without doing so.
pub(crate) fn hold(
    run_id: &str,
    store: &Arc<dyn ObjectStore>,
    key: &str,
    etag: &Arc<std::sync::Mutex<String>>,
) {
    if let Ok(mut held) = HELD.lock() {
        held.push((
            run_id.to_owned(),
            store.clone(),
            key.to_owned(),
            etag.clone(),
        ));
    }
}

/// Forgets an object registered with [`hold`] (it was released, or is no longer ours).
pub(crate) fn unhold(etag: &Arc<std::sync::Mutex<String>>) {
    if let Ok(mut held) = HELD.lock() {
        held.retain(|(.., e)| !Arc::ptr_eq(e, etag));
    }
}

/// Releases every lease this process still holds (each only if it is still ours), for exit
/// paths that never reach the sink's end: a second Ctrl-C. Errors are logged.
pub async fn release_held() {
    release_where(|_| true).await;
}

/// Releases the leases that run `run_id` still holds (each only if it is still ours), for a
/// run that ended without reaching its sinks' end (a failed run); other runs of the process
/// keep theirs. Errors are logged.
pub async fn release_held_by(run_id: &str) {
    release_where(|r| r == run_id).await;
}

async fn release_where(which: impl Fn(&str) -> bool) {
    let held = HELD
        .lock()
        .map(|mut h| {
            let (take, keep) = std::mem::take(&mut *h)
                .into_iter()
                .partition(|(run, ..)| which(run));
            *h = keep;
            take
        })
        .unwrap_or_default();
    for (_, store, key, etag) in held {
        let ours = etag.lock().map(|e| e.clone()).unwrap_or_default();
        match release_if_ours(&store, &key, &ours).await {
            Ok(true) => tracing::info!(lease = %key, "released a lease this run held"),
            Ok(false) => {}
            Err(e) => tracing::warn!(lease = %key, "could not release the archive lease: {e}"),
        }
    }
}

/// Deletes the lease at `key` if its entity tag is still `ours`; true when it was deleted.
pub(crate) async fn release_if_ours(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    ours: &str,
) -> anyhow::Result<bool> {
    let (_, etag) = match store.get_with_etag(key).await {
        Ok(x) => x,
        Err(StoreError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if etag != ours {
        return Ok(false);
    }
    store.delete(key).await?;
    Ok(true)
}

/// What [`release_manually`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualRelease {
    /// No lease was held.
    NotHeld,
    /// The lease had lapsed already (its run ended without releasing it); it was released.
    Lapsed(LeaseBody),
    /// The lease was live and `force` was given: it was released under its holder.
    Forced(LeaseBody),
}

/// Releases a stream's lease by hand: one that lapsed always; a live one (its holder is
/// renewing it) only with `force`. The release is a conditional write of a lapsed lease over
/// the one read (so a run that took the lease in between is not touched), which any run then
/// takes over; the holder of a forced lease fails its next renewal and stops.
pub async fn release_manually(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    force: bool,
) -> anyhow::Result<ManualRelease> {
    let key = lease_key(stream);
    let (body, etag) = match store.get_with_etag(&key).await {
        Ok(x) => x,
        Err(StoreError::NotFound(_)) => return Ok(ManualRelease::NotHeld),
        Err(e) => return Err(e.into()),
    };
    let holder: LeaseBody = serde_json::from_slice(&body)
        .map_err(|e| anyhow::anyhow!("{}/{key}: corrupt lease: {e}", store.url()))?;
    let expires = parse_ts(&holder.expires_at).map_err(anyhow::Error::msg)?;
    let live = expires > Utc::now();
    if live && !force {
        anyhow::bail!(
            "stream {stream} is held by run {} of pipeline {} until {} and that run is renewing it (every third of its lease_ttl); \
             stop that run, or wait: a lease that is not renewed lapses by itself. \
             --force releases it anyway: the run holding it stops at its next renewal or commit (nothing is lost or archived twice), \
             and another archiver can start at once",
            holder.run_id,
            holder.pipeline,
            holder.expires_at
        );
    }
    let released = LeaseBody {
        run_id: format!("released:{}", holder.run_id),
        pipeline: holder.pipeline.clone(),
        expires_at: format_ts(&(Utc::now() - chrono::Duration::milliseconds(1))),
    };
    match store
        .put_if(
            &key,
            Bytes::from(serde_json::to_vec_pretty(&released)?),
            PutCondition::IfMatch(etag),
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => anyhow::bail!(
            "stream {stream}: the lease changed while it was being released (a run took it or renewed it); nothing was changed, look again"
        ),
        Err(e) => return Err(e.into()),
    }
    Ok(if live {
        ManualRelease::Forced(holder)
    } else {
        ManualRelease::Lapsed(holder)
    })
}

/// A held lease, renewed in the background every third of its time to live. If a renewal
/// finds the lease taken (it lapsed: the process was paused or cut off for longer than the
/// lease time), the lease is marked lost and [`Lease::check`] fails, so the run stops before
/// writing anything more.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    key: String,
    etag: Arc<std::sync::Mutex<String>>,
    lost: Arc<std::sync::Mutex<Option<String>>>,
    renewer: tokio::task::JoinHandle<()>,
}

/// The key of a stream's lease.
pub fn lease_key(stream: &StreamName) -> String {
    format!("_flux/leases/stream={stream}.json")
}

fn body_for(run_id: &str, pipeline: &str, ttl: Duration) -> LeaseBody {
    LeaseBody {
        run_id: run_id.to_owned(),
        pipeline: pipeline.to_owned(),
        expires_at: format_ts(&(Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default())),
    }
}

impl Lease {
    /// Takes the lease of `stream`, or fails naming the run that holds it.
    pub async fn acquire(
        store: &Arc<dyn ObjectStore>,
        stream: &StreamName,
        run_id: &str,
        pipeline: &str,
        ttl: Duration,
    ) -> anyhow::Result<Lease> {
        let key = lease_key(stream);
        let body = body_for(run_id, pipeline, ttl);
        let json = Bytes::from(serde_json::to_vec_pretty(&body)?);
        let etag = match store
            .put_if(&key, json.clone(), PutCondition::IfAbsent)
            .await
        {
            Ok(etag) => etag,
            Err(StoreError::Conflict(_)) => {
                let (current, current_tag) = store.get_with_etag(&key).await?;
                let holder: LeaseBody = serde_json::from_slice(&current)
                    .map_err(|e| anyhow::anyhow!("{}/{key}: corrupt lease: {e}", store.url()))?;
                let expires: DateTime<Utc> =
                    parse_ts(&holder.expires_at).map_err(anyhow::Error::msg)?;
                if expires > Utc::now() {
                    anyhow::bail!(
                        "stream {stream} is being archived by run {} of pipeline {} (its lease {}/{key} holds until {}); \
                         run one archiver per stream — if that run died, this one can start after the lease lapses",
                        holder.run_id,
                        holder.pipeline,
                        store.url(),
                        holder.expires_at
                    );
                }
                tracing::warn!(stream = %stream, previous = %holder.run_id, "taking over a lapsed archive lease (its run ended without releasing it)");
                match store
                    .put_if(&key, json, PutCondition::IfMatch(current_tag))
                    .await
                {
                    Ok(etag) => etag,
                    Err(StoreError::Conflict(_)) => anyhow::bail!(
                        "stream {stream}: another archiver took the lapsed lease {}/{key} at the same moment; run one archiver per stream",
                        store.url()
                    ),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let etag = Arc::new(std::sync::Mutex::new(etag));
        hold(run_id, store, &key, &etag);
        let lost = Arc::new(std::sync::Mutex::new(None));
        let renewer = tokio::spawn(renew_forever(
            store.clone(),
            key.clone(),
            body,
            ttl,
            etag.clone(),
            lost.clone(),
        ));
        Ok(Lease {
            store: store.clone(),
            key,
            etag,
            lost,
            renewer,
        })
    }

    /// Fails when the lease was lost (another run holds the stream now).
    pub fn check(&self) -> anyhow::Result<()> {
        match self.lost.lock().map(|l| l.clone()) {
            Ok(None) => Ok(()),
            Ok(Some(why)) => anyhow::bail!(why),
            Err(_) => anyhow::bail!("the archive lease state is unavailable"),
        }
    }

    /// Gives the lease up (only if it is still ours).
    pub async fn release(self) -> anyhow::Result<()> {
        self.renewer.abort();
        unhold(&self.etag);
        let ours = self.etag.lock().map(|e| e.clone()).unwrap_or_default();
        release_if_ours(&self.store, &self.key, &ours).await?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew_forever(
    store: Arc<dyn ObjectStore>,
    key: String,
    body: LeaseBody,
    ttl: Duration,
    etag: Arc<std::sync::Mutex<String>>,
    lost: Arc<std::sync::Mutex<Option<String>>>,
) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        let next = body_for(&body.run_id, &body.pipeline, ttl);
        let Ok(json) = serde_json::to_vec_pretty(&next) else {
            return;
        };
        let current = etag.lock().map(|e| e.clone()).unwrap_or_default();
        match store
            .put_if(&key, Bytes::from(json), PutCondition::IfMatch(current))
            .await
        {
            Ok(new) => {
                if let Ok(mut e) = etag.lock() {
                    *e = new;
                }
            }
            // Any answer that means "not yours" — changed (412/409) or gone (404: another run
            // took the lapsed lease and released it) — means the lease is lost for good.
            Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {
                if let Ok(mut l) = lost.lock() {
                    *l = Some(format!(
                        "the archive lease {}/{key} was taken by another run (it lapsed: was this run paused or cut off for longer than lease_ttl?); stopping",
                        store.url()
                    ));
                }
                return;
            }
            // A failed renewal is retried at the next tick; the lease still has time left.
            Err(e) => tracing::warn!(lease = %key, "renewing the archive lease failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
