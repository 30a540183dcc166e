//! Leases and checkpoints: opening a stream (lease, checkpoints, what an interrupted run left),
//! committing an object (stage, checkpoint, promote), and the gaps for the run manifest.

use super::*;

impl ArchiveSink {
    /// Takes a stream's lease, loads its checkpoints and finishes what an interrupted run left:
    /// promotes committed objects still staged, removes staged objects that can never be
    /// committed, and removes objects that an older version of this sink stored past a
    /// checkpoint.
    pub(super) async fn open_stream(&mut self, stream: &StreamName) -> anyhow::Result<()> {
        if self.streams.contains_key(stream.as_arc()) {
            return Ok(());
        }
        let shared = self.shared.contains(stream.as_arc());
        // Take the stream before reading anything, so what is read cannot change under us;
        // unless several workers share it: then its source holds each shard's lease.
        let lease = if shared {
            None
        } else {
            let lease = Lease::acquire(
                &self.store,
                stream,
                &self.run.run_id,
                &self.run.pipeline,
                self.config.lease_ttl.0,
            )
            .await?;
            refuse_shared_workers(&self.store, stream, lease).await?
        };
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
        // Orphans are looked for only with the stream to ourselves: another worker commits and
        // then promotes, so between our reading of the checkpoints and our listing, one of its
        // objects could look like an orphan.
        let data = if shared {
            Vec::new()
        } else {
            self.store.list(&layout::stream_prefix(stream)).await?
        };
        for meta in data {
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
                lease,
                checkpoints,
                manifest,
            },
        );
        Ok(())
    }

    /// For a shard of a shared stream with no open object: reads its checkpoint again (once per
    /// barrier), since another worker may have archived it since this sink last looked.
    pub(super) async fn refresh_if_shared(
        &mut self,
        r: &Record,
        stream: &StreamName,
        shard_id: &ShardId,
    ) -> anyhow::Result<()> {
        let key = (r.stream.clone(), r.shard_id.clone());
        if !self.shared.contains(&r.stream)
            || self.writers.contains_key(&key)
            || self.fresh.contains(&key)
        {
            return Ok(());
        }
        let stored = crate::archive::state::read_checkpoint(&self.store, stream, shard_id).await?;
        if let Some(state) = self.streams.get_mut(stream.as_arc()) {
            match stored {
                Some(s) => {
                    state.checkpoints.insert(shard_id.to_string(), s);
                }
                None => {
                    state.checkpoints.remove(shard_id.as_str());
                }
            }
        }
        self.fresh.insert(key);
        Ok(())
    }

    /// Stages one object, commits it by moving its shard's checkpoint past it, then promotes it
    /// (see the module docs).
    pub(super) async fn flush(&mut self, w: ObjectWriter) -> anyhow::Result<()> {
        let body = w.gz.finish().await?;
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

    pub(super) async fn flush_all(&mut self) -> anyhow::Result<()> {
        self.flush_where(|_| true).await
    }

    /// Stores the open objects `pick` selects, in (stream, shard) order.
    pub(super) async fn flush_where(
        &mut self,
        pick: impl Fn(&ObjectWriter) -> bool,
    ) -> anyhow::Result<()> {
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

    /// Opens the streams the upstream sources named, once.
    pub(super) async fn open_expected(&mut self) -> anyhow::Result<()> {
        for stream in std::mem::take(&mut self.expected) {
            let name = StreamName::parse(&stream).map_err(anyhow::Error::msg)?;
            self.open_stream(&name).await?;
        }
        Ok(())
    }
}

/// The gaps recorded under `_flux/gaps/` for a stream since `since` (by this run's source).
pub(super) async fn gaps_found_since(
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

/// After taking a stream's lease: fails (giving the lease back) when shared workers
/// (`workers = "shared"`) archive the stream, since the two modes cannot run at once.
async fn refuse_shared_workers(
    store: &Arc<dyn ObjectStore>,
    stream: &StreamName,
    lease: Lease,
) -> anyhow::Result<Option<Lease>> {
    let workers = crate::archive::workers::live_workers(store, stream).await?;
    if let Some(w) = workers.first() {
        lease.release().await?;
        anyhow::bail!(
            "stream {stream} is being archived by {} shared worker(s) (workers = \"shared\"; run {} of pipeline {}, until {}); \
             workers = \"shared\" and \"single\" cannot archive one stream at once: give every archiver of the stream the same `workers`",
            workers.len(),
            w.worker,
            w.pipeline,
            w.expires_at
        );
    }
    Ok(Some(lease))
}
