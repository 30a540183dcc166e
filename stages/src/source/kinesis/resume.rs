//! Where each shard starts: the archive's checkpoints, a gap between a checkpoint and the
//! oldest record still in the stream, and the warning when records near their retention.

use super::*;

impl KinesisSource {
    /// A gap: a shard's checkpointed record is no longer in the stream and the oldest record
    /// that is comes after it, so records in between may have expired unarchived. Refuses to go
    /// on unless `allow_gaps`; then records each gap in the archive.
    pub(super) async fn check_gaps(
        &self,
        client: &Client,
        archive: &Arc<dyn store::ObjectStore>,
        stream: &str,
        shards: &[ShardInfo],
        checkpoints: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeSet<String>> {
        let mut gaps = Vec::new();
        for shard in shards {
            let Some(cp) = checkpoints.get(&shard.id) else {
                continue;
            };
            let cp = SequenceNumber::parse(cp).map_err(anyhow::Error::msg)?;
            let Some((oldest, arrived)) = self.oldest_record(client, &shard.id).await? else {
                continue;
            };
            if oldest > cp {
                gaps.push(serde_json::json!({
                    "stream": stream,
                    "shard_id": shard.id,
                    "checkpoint": cp.as_str(),
                    "oldest_available": oldest.as_str(),
                    "oldest_arrival_ts": crate::record::format_ts(&arrived),
                    "found_at": crate::record::format_ts(&chrono::Utc::now()),
                }));
            }
        }
        if gaps.is_empty() {
            return Ok(BTreeSet::new());
        }
        let list: Vec<String> = gaps
            .iter()
            .map(|g| {
                format!(
                    "{} (checkpoint {}, oldest available {} from {})",
                    g["shard_id"].as_str().unwrap_or_default(),
                    g["checkpoint"].as_str().unwrap_or_default(),
                    g["oldest_available"].as_str().unwrap_or_default(),
                    g["oldest_arrival_ts"].as_str().unwrap_or_default()
                )
            })
            .collect();
        if !self.config.allow_gaps {
            anyhow::bail!(
                "GAP: records of stream {stream} expired before they were archived: the checkpointed record is gone from {}; \
                 the archive cannot be completed for that time. Set allow_gaps = true on this source to archive what is left (the gap is recorded under _flux/gaps/)",
                list.join(", ")
            );
        }
        let stream_name = crate::names::StreamName::parse(stream).map_err(anyhow::Error::msg)?;
        for g in &gaps {
            let key = crate::archive::layout::gap_key(
                &stream_name,
                &crate::names::ShardId::parse(g["shard_id"].as_str().unwrap_or_default())
                    .map_err(anyhow::Error::msg)?,
                &crate::record::SequenceNumber::parse(g["checkpoint"].as_str().unwrap_or_default())
                    .map_err(anyhow::Error::msg)?,
            );
            archive
                .put(&key, Bytes::from(serde_json::to_vec_pretty(g)?))
                .await?;
        }
        tracing::error!(
            stream,
            "GAP: records expired before they were archived: {}; archiving what is left (allow_gaps = true), recorded under _flux/gaps/",
            list.join(", ")
        );
        Ok(gaps
            .iter()
            .filter_map(|g| g["shard_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Warns when the archive was last advanced so long ago that, at this pace, records would
    /// expire before a run reads them: later than the stream's retention minus a quarter of it.
    /// A lookup failure only skips the warning (the gap check still catches real loss).
    pub(super) async fn warn_if_retention_near(
        &self,
        client: &Client,
        stream: &str,
        last_run: chrono::DateTime<chrono::Utc>,
    ) {
        let req = self.stream_param(
            client.describe_stream_summary(),
            |b, s| b.stream_name(s),
            |b, s| b.stream_arn(s),
        );
        let hours = match req.send().await {
            Ok(out) => out
                .stream_description_summary()
                .map(|d| d.retention_period_hours()),
            Err(e) => {
                tracing::debug!(stream, "DescribeStreamSummary: {}", describe(&e));
                None
            }
        };
        let Some(hours) = hours.filter(|h| *h > 0) else {
            return;
        };
        let retention = chrono::Duration::hours(i64::from(hours));
        let age = chrono::Utc::now() - last_run;
        if let Some(message) = retention_warning(stream, age, retention) {
            tracing::warn!(stream, "{message}");
        }
    }

    /// The oldest record still in a shard: its sequence number and arrival time.
    async fn oldest_record(
        &self,
        client: &Client,
        shard: &str,
    ) -> anyhow::Result<Option<(SequenceNumber, chrono::DateTime<chrono::Utc>)>> {
        let req = self.stream_param(
            client
                .get_shard_iterator()
                .shard_id(shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon),
            |b, s| b.stream_name(s),
            |b, s| b.stream_arn(s),
        );
        let mut it = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetShardIterator on {shard}: {}", describe(&e)))?
            .shard_iterator()
            .map(str::to_owned);
        // GetRecords may answer empty before reaching data; stop at the tip.
        for _ in 0..50 {
            let Some(i) = it.take() else { return Ok(None) };
            let out = client
                .get_records()
                .shard_iterator(i)
                .limit(1)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("GetRecords on {shard}: {}", describe(&e)))?;
            if let Some(r) = out.records().first() {
                let seq = SequenceNumber::parse(r.sequence_number()).map_err(anyhow::Error::msg)?;
                let ts = ts_from_millis(
                    r.approximate_arrival_timestamp()
                        .map(kinesis_millis)
                        .unwrap_or_default(),
                );
                return Ok(Some((seq, ts)));
            }
            if out.millis_behind_latest() == Some(0) {
                return Ok(None);
            }
            it = out.next_shard_iterator().map(str::to_owned);
            tokio::time::sleep(self.config.poll_interval.0).await;
        }
        Ok(None)
    }
}

/// The warning for an archive last advanced `age` ago on a stream keeping records for
/// `retention`, when that is later than retention minus a quarter of it (the margin that leaves
/// room for one failed night and a retry).
pub(super) fn retention_warning(
    stream: &str,
    age: chrono::Duration,
    retention: chrono::Duration,
) -> Option<String> {
    let margin = retention / 4;
    (age > retention - margin).then(|| {
        format!(
            "the archive of stream {stream} was last advanced {}h ago and the stream keeps records for {}h: \
             records are close to expiring unarchived; run the archive at least every {}h (or raise the stream's retention)",
            age.num_hours(),
            retention.num_hours(),
            (retention - margin).num_hours()
        )
    })
}
