//! One shard's reader: GetRecords in a loop, paced, with iterator renewal and KPL
//! de-aggregation; and where the readers' time went.

use super::*;

/// Where the readers' time went, summed over shards (for the end-of-run log line and the
/// archive benchmark's "share of time waiting on Kinesis").
#[derive(Default)]
pub(super) struct Timing {
    /// GetRecords calls made.
    pub(super) calls: std::sync::atomic::AtomicU64,
    /// Nanoseconds spent inside GetRecords calls (waiting on the service).
    pub(super) in_calls: std::sync::atomic::AtomicU64,
    /// Nanoseconds the readers existed.
    pub(super) alive: std::sync::atomic::AtomicU64,
}

impl Timing {
    pub(super) fn add(counter: &std::sync::atomic::AtomicU64, d: Duration) {
        counter.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    pub(super) fn secs(counter: &std::sync::atomic::AtomicU64) -> f64 {
        counter.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9
    }
}

/// Adds the time from its creation to its drop to `alive`: also when the reader holding it is
/// aborted at the end of the run (its calls' time is counted as they end, so its life must be
/// too, or the waiting share could pass 100 %).
pub(super) struct Alive {
    timing: Arc<Timing>,
    started: Instant,
}

impl Alive {
    pub(super) fn new(timing: Arc<Timing>) -> Alive {
        Alive {
            timing,
            started: Instant::now(),
        }
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        Timing::add(&self.timing.alive, self.started.elapsed());
    }
}

pub(super) struct Reader {
    pub(super) timing: Arc<Timing>,
    pub(super) client: Client,
    pub(super) config: Arc<KinesisSourceConfig>,
    pub(super) stream: Arc<str>,
    pub(super) shard: ShardInfo,
    pub(super) start: (ShardIteratorType, Option<String>),
    pub(super) tx: mpsc::Sender<Event>,
    /// Stops the reader (the shard is given to another worker): it drops what it was doing,
    /// sends [`Event::Stopped`] and ends. Everything it sent before comes before that event.
    pub(super) stop: tokio_util::sync::CancellationToken,
}

impl Reader {
    /// Tells the scheduler this shard is finished (and which children it found).
    async fn done(&self, children: Vec<ShardInfo>, closed: bool) {
        let _ = self
            .tx
            .send(Event::Done {
                shard: self.shard.id.clone(),
                children,
                closed,
            })
            .await;
    }

    pub(super) async fn run(self) {
        let tx = self.tx.clone();
        let stop = self.stop.clone();
        let shard = self.shard.id.clone();
        let alive = Alive::new(self.timing.clone());
        let result = tokio::select! {
            r = self.read() => Some(r),
            _ = stop.cancelled() => None,
        };
        drop(alive);
        match result {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                let _ = tx.send(Event::Failed(e)).await;
            }
            None => {
                let _ = tx.send(Event::Stopped { shard }).await;
            }
        }
    }

    async fn iterator(
        &self,
        ty: ShardIteratorType,
        seq: Option<&str>,
    ) -> Result<Option<String>, String> {
        let mut req = self
            .client
            .get_shard_iterator()
            .shard_id(&self.shard.id)
            .shard_iterator_type(ty.clone());
        req = if self.config.stream.starts_with("arn:") {
            req.stream_arn(&self.config.stream)
        } else {
            req.stream_name(&self.config.stream)
        };
        if let Some(seq) = seq {
            req = req.starting_sequence_number(seq);
        }
        if ty == ShardIteratorType::AtTimestamp
            && let Some(ts) = self.config.timestamp
        {
            req = req.timestamp(aws_smithy_types::DateTime::from_millis(
                ts.0.timestamp_millis(),
            ));
        }
        let out = req.send().await.map_err(|e| {
            format!(
                "GetShardIterator on {} {}: {}",
                self.stream,
                self.shard.id,
                describe(&e)
            )
        })?;
        Ok(out.shard_iterator().map(str::to_owned))
    }

    async fn read(self) -> Result<(), String> {
        let (start_ty, start_seq) = self.start.clone();
        let mut iterator = self
            .iterator(start_ty.clone(), start_seq.as_deref())
            .await?;
        let mut last_seq: Option<String> = None;
        let mut throttled = 0u32;
        let mut next_call = Instant::now();
        let shard_id: Arc<str> = Arc::from(self.shard.id.as_str());
        while let Some(it) = iterator.take() {
            tokio::time::sleep_until(next_call.into()).await;
            let called = Instant::now();
            let answer = self
                .client
                .get_records()
                .shard_iterator(&it)
                .limit(self.config.limit)
                .send()
                .await;
            Timing::add(&self.timing.in_calls, called.elapsed());
            self.timing
                .calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut out = match answer {
                Ok(out) => {
                    throttled = 0;
                    out
                }
                Err(e) => {
                    let service = e.as_service_error();
                    if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                        tracing::debug!(shard = %self.shard.id, "iterator expired; renewing");
                        iterator = match &last_seq {
                            Some(seq) => {
                                self.iterator(ShardIteratorType::AfterSequenceNumber, Some(seq))
                                    .await?
                            }
                            None => {
                                self.iterator(start_ty.clone(), start_seq.as_deref())
                                    .await?
                            }
                        };
                        continue;
                    }
                    if service.is_some_and(|s| {
                        s.is_provisioned_throughput_exceeded_exception()
                            || s.is_kms_throttling_exception()
                    }) {
                        throttled += 1;
                        if throttled > 30 {
                            return Err(format!(
                                "GetRecords on {} {}: throttled {throttled} times in a row",
                                self.stream, self.shard.id
                            ));
                        }
                        // The SDK retried already; back off further, with jitter.
                        let base = Duration::from_millis(500) * throttled.min(10);
                        let jitter =
                            Duration::from_millis(u64::from(called.elapsed().subsec_nanos() % 250));
                        tracing::warn!(shard = %self.shard.id, "throttled; backing off {:?}", base + jitter);
                        next_call = Instant::now() + base + jitter;
                        iterator = Some(it);
                        continue;
                    }
                    return Err(format!(
                        "GetRecords on {} {}: {}",
                        self.stream,
                        self.shard.id,
                        describe(&e)
                    ));
                }
            };
            let records = take_records(&mut out, &self.stream, &shard_id)
                .map_err(|e| format!("GetRecords on {} {}: {e}", self.stream, self.shard.id))?;
            let bytes: usize = records.iter().map(|r| r.data.len()).sum();
            let empty = records.is_empty();
            if let Some(r) = records.last() {
                last_seq = Some(r.sequence_number.to_string());
            }
            if let Some(millis) = out
                .millis_behind_latest()
                .and_then(|m| u64::try_from(m).ok())
                && self
                    .tx
                    .send(Event::Behind {
                        shard: self.shard.id.clone(),
                        millis,
                    })
                    .await
                    .is_err()
            {
                return Ok(());
            }
            let (records, rejected) = if self.config.deaggregate {
                split_aggregates(records)
            } else {
                (records, Vec::new())
            };
            if !empty
                && self
                    .tx
                    .send(Event::Records(records, rejected))
                    .await
                    .is_err()
            {
                return Ok(());
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
            if iterator.is_none() {
                // The shard is closed and read to its end; its children may start.
                let children = out
                    .child_shards()
                    .iter()
                    .map(|c| ShardInfo {
                        id: c.shard_id().to_owned(),
                        parents: c.parent_shards().to_vec(),
                        closed: false,
                    })
                    .collect();
                self.done(children, true).await;
                return Ok(());
            }
            // Caught up: at the tip of an open shard. Records that keep arriving are for the next
            // run; a busy shard must not keep a caught_up run going forever.
            let caught_up = out.millis_behind_latest() == Some(0);
            if caught_up && self.config.stop == StopAt::CaughtUp && !self.shard.closed {
                self.done(Vec::new(), false).await;
                return Ok(());
            }
            // 5 calls/s and 2 MB/s per shard.
            let pace = self
                .config
                .poll_interval
                .0
                .max(Duration::from_secs_f64(bytes as f64 / 2_000_000.0));
            let wait = if empty {
                self.config.idle_interval.0.max(pace)
            } else {
                pace
            };
            next_call = called + wait;
        }
        self.done(Vec::new(), true).await;
        Ok(())
    }
}

/// Moves the records out of a GetRecords answer: payloads and keys are taken, not copied.
pub(super) fn take_records(
    out: &mut aws_sdk_kinesis::operation::get_records::GetRecordsOutput,
    stream: &Arc<str>,
    shard_id: &Arc<str>,
) -> Result<Vec<Record>, String> {
    std::mem::take(&mut out.records)
        .into_iter()
        .map(|r| {
            Ok(Record {
                stream: stream.clone(),
                shard_id: shard_id.clone(),
                sequence_number: SequenceNumber::parse(&r.sequence_number)?,
                sub_sequence_number: None,
                partition_key: r.partition_key.unwrap_or_default().into(),
                arrival_ts: ts_from_millis(
                    r.approximate_arrival_timestamp
                        .as_ref()
                        .map(kinesis_millis)
                        .unwrap_or_default(),
                ),
                data: Bytes::from(r.data.into_inner()),
                annotations: None,
                probed: None,
            })
        })
        .collect()
}

/// De-aggregates KPL records; the sub-records of one aggregate stay together and in order.
pub(super) fn split_aggregates(records: Vec<Record>) -> (Vec<Record>, Vec<Rejected>) {
    if !records.iter().any(|r| kpl::is_aggregated(&r.data)) {
        return (records, Vec::new());
    }
    let mut out = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for r in records {
        match kpl::deaggregate(r) {
            Ok(users) => out.extend(users),
            Err(r) => rejected.push(*r),
        }
    }
    (out, rejected)
}
