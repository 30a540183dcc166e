//! Putting the per-shard record streams of the `archive` source into one output order.
//!
//! Each shard's records come from its own reader, in sequence order, through a bounded channel
//! (the prefetch). [`Emitter`] sends them on, counting and stopping at `limit`; [`by_shard`] sends
//! one shard after another; [`interleaved`] sends every shard's batches as they are ready;
//! [`by_arrival`] merges all shards by arrival time (k-way merge on
//! `(arrival_ts, shard)`), which never reorders the records of one shard: the next record of a
//! shard always comes from the head of that shard's stream.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::lines::Parsed;
use crate::record::{Batch, Record};
use crate::stage::{SourceContext, StageMetrics};

/// One shard's stream of parsed batches.
pub type ShardStream = mpsc::Receiver<Result<Parsed, String>>;

/// Sends records to the source's output in batches, up to `limit` records in all.
pub struct Emitter<'a> {
    ctx: &'a mut SourceContext,
    batch: Batch,
    batch_records: usize,
    limit: Option<u64>,
    sent: u64,
}

impl<'a> Emitter<'a> {
    /// An emitter for `ctx`, batching `batch_records` records, stopping after `limit`.
    pub fn new(ctx: &'a mut SourceContext, batch_records: usize, limit: Option<u64>) -> Self {
        Emitter {
            ctx,
            batch: Vec::with_capacity(batch_records),
            batch_records,
            limit,
            sent: 0,
        }
    }

    /// Whether the limit is reached or the run is stopping: nothing more should be read.
    pub fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.sent >= l) || self.ctx.stop.is_cancelled()
    }

    /// Queues one record (a batch is sent when full).
    async fn push(&mut self, r: Record) -> anyhow::Result<()> {
        self.batch.push(r);
        self.sent += 1;
        if self.batch.len() >= self.batch_records {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends a whole batch as it is, as far as the limit allows.
    async fn push_batch(&mut self, mut records: Batch) -> anyhow::Result<()> {
        if let Some(limit) = self.limit {
            records.truncate(usize::try_from(limit - self.sent.min(limit)).unwrap_or(usize::MAX));
        }
        if records.len() >= self.batch_records / 2 {
            // A batch of fair size goes as it is, after the records queued before it (as a
            // batch of their own): were it added to them record by record, a queue left by one
            // short batch (an object's last) would have every later batch copied once more.
            self.flush().await?;
            self.sent += records.len() as u64;
            return self.send(records).await;
        }
        for r in records {
            self.push(r).await?;
        }
        Ok(())
    }

    /// Counts what a parsed batch skipped and routes what it rejected.
    async fn side(&mut self, parsed: &mut Parsed) -> anyhow::Result<()> {
        StageMetrics::add(&self.ctx.output.metrics().skipped, parsed.skipped);
        self.ctx
            .output
            .reject(std::mem::take(&mut parsed.rejected))
            .await?;
        Ok(())
    }

    /// Sends the queued records.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_records));
        self.send(batch).await
    }

    async fn send(&mut self, batch: Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let metrics = self.ctx.output.metrics();
        StageMetrics::add(&metrics.records_in, batch.len());
        StageMetrics::add(&metrics.bytes_in, crate::record::batch_weight(&batch));
        self.ctx.output.send(batch).await?;
        Ok(())
    }
}

/// Receives a shard's next parsed batch; `None` at its end.
async fn next(stream: &mut ShardStream) -> anyhow::Result<Option<Parsed>> {
    match stream.recv().await {
        Some(parsed) => parsed.map(Some).map_err(anyhow::Error::msg),
        None => Ok(None),
    }
}

/// One shard after another, each in sequence order.
pub async fn by_shard(streams: Vec<ShardStream>, out: &mut Emitter<'_>) -> anyhow::Result<()> {
    for mut stream in streams {
        while !out.done() {
            let Some(mut parsed) = next(&mut stream).await? else {
                break;
            };
            out.side(&mut parsed).await?;
            out.push_batch(parsed.records).await?;
        }
    }
    out.flush().await
}

/// All shards at once, each shard's batches in sequence order, shards interleaved as their
/// batches are ready (round robin among the ready ones, so no shard starves).
pub async fn interleaved(
    mut streams: Vec<ShardStream>,
    out: &mut Emitter<'_>,
) -> anyhow::Result<()> {
    let mut start = 0usize;
    while !streams.is_empty() && !out.done() {
        let (i, next) = std::future::poll_fn(|cx| {
            for k in 0..streams.len() {
                let i = (start + k) % streams.len();
                if let std::task::Poll::Ready(next) = streams[i].poll_recv(cx) {
                    return std::task::Poll::Ready((i, next));
                }
            }
            std::task::Poll::Pending
        })
        .await;
        match next {
            Some(parsed) => {
                let mut parsed = parsed.map_err(anyhow::Error::msg)?;
                out.side(&mut parsed).await?;
                out.push_batch(parsed.records).await?;
                start = i + 1;
            }
            None => {
                streams.remove(i);
                start = i;
            }
        }
    }
    out.flush().await
}

/// A shard's position in the merge: its buffered records and its stream.
struct Cursor {
    records: std::vec::IntoIter<Record>,
    head: Option<Record>,
    stream: ShardStream,
}

impl Cursor {
    /// Makes sure `head` holds the shard's next record, receiving batches as needed; false at
    /// the shard's end.
    async fn fill(&mut self, out: &mut Emitter<'_>) -> anyhow::Result<bool> {
        loop {
            if self.head.is_none() {
                self.head = self.records.next();
            }
            if self.head.is_some() {
                return Ok(true);
            }
            match next(&mut self.stream).await? {
                Some(mut parsed) => {
                    out.side(&mut parsed).await?;
                    self.records = parsed.records.into_iter();
                }
                None => return Ok(false),
            }
        }
    }
}

/// The merge key: arrival time, then the shard's place in the plan (shard id order).
type Key = Reverse<(DateTime<Utc>, usize)>;

/// All shards merged by arrival time; ties go to the shard listed first. Each shard's own order
/// is kept even where its arrival times go backwards.
pub async fn by_arrival(streams: Vec<ShardStream>, out: &mut Emitter<'_>) -> anyhow::Result<()> {
    let mut cursors: Vec<Cursor> = streams
        .into_iter()
        .map(|stream| Cursor {
            records: Vec::new().into_iter(),
            head: None,
            stream,
        })
        .collect();
    let mut heap: BinaryHeap<Key> = BinaryHeap::with_capacity(cursors.len());
    for (i, c) in cursors.iter_mut().enumerate() {
        if c.fill(out).await? {
            let ts = c.head.as_ref().map(|r| r.arrival_ts).unwrap_or_default();
            heap.push(Reverse((ts, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        if out.done() {
            break;
        }
        // Take a run from shard i while it stays at or before the next shard's head.
        let bound = heap.peek().map(|Reverse(k)| *k);
        let cursor = &mut cursors[i];
        loop {
            let Some(r) = cursor.head.take() else { break };
            out.push(r).await?;
            if out.done() || !cursor.fill(out).await? {
                break;
            }
            let ts = cursor
                .head
                .as_ref()
                .map(|r| r.arrival_ts)
                .unwrap_or_default();
            if bound.is_some_and(|b| (ts, i) > b) {
                heap.push(Reverse((ts, i)));
                break;
            }
        }
    }
    out.flush().await
}
