//! Sending: PutRecords batches within each shard's rate, retries of what failed or was
//! throttled, listing the shards again (and fencing new ones) after a reshard.

use super::*;

impl KinesisSink {
    /// Sleeps for `wait` unless the run is asked to stop first; false when it was.
    pub(super) async fn pause(&self, wait: Duration) -> bool {
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
    pub(super) async fn send_batch(&mut self) -> anyhow::Result<()> {
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
    pub(super) fn requeue(&mut self, entries: Vec<Entry>) {
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
    pub(super) async fn relist(&mut self, why: Relist) -> anyhow::Result<bool> {
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
    pub(super) async fn drain(&mut self) -> anyhow::Result<()> {
        while !self.pending.is_empty() && !self.stopped() {
            self.send_batch().await?;
        }
        Ok(())
    }
}
