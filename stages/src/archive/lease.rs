//! One archiver per stream: a lease object `_flux/leases/stream=<stream>.json`, taken with a
//! conditional write (`If-None-Match: *`, or `If-Match` to take over an expired one), renewed
//! while the run writes, released at the end. A second archiver started on the same stream
//! fails at once instead of writing objects that overlap the first one's.

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
        let ours = self.etag.lock().map(|e| e.clone()).unwrap_or_default();
        let (_, etag) = match self.store.get_with_etag(&self.key).await {
            Ok(x) => x,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if etag == ours {
            self.store.delete(&self.key).await?;
        }
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
mod tests {
    use super::*;
    use crate::store::local::LocalStore;

    #[tokio::test]
    async fn one_holder_at_a_time_and_lapsed_leases_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        let orders = StreamName::parse("orders").unwrap();
        let a = Lease::acquire(&store, &orders, "run-a", "p", Duration::from_secs(60))
            .await
            .unwrap();
        let err = Lease::acquire(&store, &orders, "run-b", "p", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("being archived by run run-a"),
            "{err}"
        );
        a.release().await.unwrap();
        // A TTL long enough that a loaded machine's scheduling delays (CI shares 2 cores) cannot
        // make a renewal (every third of it) late by a whole TTL.
        let b = Lease::acquire(&store, &orders, "run-b", "p", Duration::from_millis(1500))
            .await
            .unwrap();
        // b renews in the background: it stays the holder past its first TTL.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert!(b.check().is_ok());
        assert!(
            Lease::acquire(&store, &orders, "run-c", "p", Duration::from_secs(60))
                .await
                .is_err()
        );
        // Someone overwrites the lease (as a run would after it lapsed): b notices and stops.
        store
            .put(&lease_key(&orders), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(b.check().is_err());
    }

    /// A lease that another run took over and then released (deleted) is lost too: the renewal's
    /// `If-Match` on a missing object answers "not found", which means "not yours" as much as a
    /// changed one does.
    #[tokio::test]
    async fn a_lease_deleted_by_another_run_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
        let orders = StreamName::parse("orders").unwrap();
        let a = Lease::acquire(&store, &orders, "run-a", "p", Duration::from_millis(1500))
            .await
            .unwrap();
        store.delete(&lease_key(&orders)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let err = a.check().unwrap_err().to_string();
        assert!(err.contains("taken by another run"), "{err}");
    }
}
