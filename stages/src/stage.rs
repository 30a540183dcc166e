//! The contracts every stage kind implements, and what the runtime hands them.
//!
//! A [`Source`] produces batches into its [`Output`]; a [`RecordTransform`] decides about each
//! record of a batch on its own; a [`StatefulTransform`] keeps state across batches and emits it
//! on barriers and at the end (on a blocking-pool thread of its own); a [`Sink`] writes batches
//! somewhere and makes them durable on barriers and at the end. Every stage may route records it cannot process to its `dead_letter` port
//! (`inputs = ["<stage>.dead_letter"]` downstream); when nothing reads that port the run stops
//! with an error that counts the rejected records and shows the first. Nothing is dropped silently.

mod output;
pub use output::{Output, OutputError};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::channel::{Message, Sender};
use crate::record::{Batch, Record, batch_weight};

/// The name of the port that carries records a stage could not process.
pub const DEAD_LETTER_PORT: &str = "dead_letter";

/// Counters of one stage, read by progress reporting and the final summary.
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Records received from upstream (sources: records read).
    pub records_in: AtomicU64,
    /// Bytes (payload and key) received from upstream.
    pub bytes_in: AtomicU64,
    /// Records sent downstream (sinks: records written).
    pub records_out: AtomicU64,
    /// Bytes sent downstream (sinks: bytes written).
    pub bytes_out: AtomicU64,
    /// Records sent to the dead-letter port.
    pub dead_lettered: AtomicU64,
    /// Records skipped on purpose and counted (e.g. already archived before a rerun).
    pub skipped: AtomicU64,
    /// Sinks: records the destination refused for lack of throughput (and that were retried).
    pub throttled: AtomicU64,
    /// Sinks: records sent again after a failure.
    pub retried: AtomicU64,
    /// Sinks that queue what they receive and deliver it later (the `kinesis` sink): records
    /// delivered so far. `records_out` counts what the sink accepted. Progress shows this one
    /// when `counts_delivered` is set.
    pub delivered: AtomicU64,
    /// Set by sinks that count `delivered`.
    pub counts_delivered: std::sync::atomic::AtomicBool,
    /// How many records the stage will have sent downstream in all, plus one, once it knows
    /// (0: not known). See [`StageMetrics::expected_out`].
    expected_out: AtomicU64,
    /// Lag behind the stream's tip in milliseconds, plus one (0: not known).
    behind_ms: AtomicU64,
    /// Sinks: when the last checkpoint barrier completed (everything received before it was
    /// made durable), in milliseconds since the Unix epoch (0: none yet).
    checkpointed_at_ms: AtomicU64,
    /// Set by the runtime once the stage has sent everything it will send.
    pub finished: std::sync::atomic::AtomicBool,
    /// Sources reading stored objects (`archive`): what they listed, pruned and read.
    pub objects: ObjectCounters,
}

/// What a source reading stored objects did with them (the `archive` source), for search
/// previews and progress: counted as it goes.
#[derive(Debug, Default)]
pub struct ObjectCounters {
    /// Data objects of the stream listed.
    pub listed: AtomicU64,
    /// Listed objects left unread because their folders fall outside the bounds.
    pub pruned: AtomicU64,
    /// Objects opened and read.
    pub read: AtomicU64,
    /// Stored (compressed) bytes of the objects read.
    pub bytes: AtomicU64,
}

impl StageMetrics {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records the number of records the stage will send downstream in all (e.g. `compact`,
    /// once it knows its winners), for progress estimates.
    pub fn set_expected_out(&self, n: u64) {
        self.expected_out
            .store(n.saturating_add(1), Ordering::Relaxed);
    }

    /// Lowers the expected number by one (a record the stage will not send after all).
    pub fn expect_one_less(&self) {
        let _ = self
            .expected_out
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v > 1).then(|| v - 1)
            });
    }

    /// Sources reading a stream: how far behind its tip they are (the largest
    /// `MillisBehindLatest` of the open shards), or `None` when not known.
    pub fn set_behind_ms(&self, millis: Option<u64>) {
        let v = millis.map_or(0, |m| m.saturating_add(1));
        self.behind_ms.store(v, Ordering::Relaxed);
    }

    /// See [`StageMetrics::set_behind_ms`].
    pub fn behind_ms(&self) -> Option<u64> {
        self.behind_ms.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Records that a checkpoint barrier has just completed (see
    /// [`StageMetrics::checkpointed_at_ms`]).
    pub fn set_checkpointed_now(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| (d.as_millis() as u64).max(1));
        self.checkpointed_at_ms.store(now, Ordering::Relaxed);
    }

    /// When the stage last completed a checkpoint barrier, in milliseconds since the Unix
    /// epoch; `None` before the first.
    pub fn checkpointed_at_ms(&self) -> Option<u64> {
        match self.checkpointed_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// The number of records the stage will send downstream in all, when it knows.
    pub fn expected_out(&self) -> Option<u64> {
        self.expected_out.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// A record the stage could not process, with the reason.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The record as it was received.
    pub record: Record,
    /// Why it was rejected, e.g. "payload is not JSON: expected value at line 1 column 1".
    pub reason: String,
}

/// What a source gets to run: its output and the run's stop signal.
pub struct SourceContext {
    /// Where the source sends its batches.
    pub output: Output,
    /// Cancelled when the run is asked to stop (Ctrl-C): finish the current batch and return.
    pub stop: CancellationToken,
}

/// A stage that reads records from outside the pipeline.
#[async_trait]
pub trait Source: Send {
    /// Reads until the input is exhausted or `ctx.stop` is cancelled, sending batches to
    /// `ctx.output`. The runtime sends [`Message::End`] after it returns `Ok`.
    async fn run(&mut self, ctx: &mut SourceContext) -> anyhow::Result<()>;
}

/// Collects what a transform produces from one batch.
#[derive(Default)]
pub struct Emit {
    /// Records for the main port.
    pub records: Batch,
    /// Records for the dead-letter port.
    pub rejected: Vec<Rejected>,
    /// Records dropped on purpose and counted (the `skipped` column), e.g. late records.
    pub skipped: usize,
}

/// A transform that decides about each record on its own (`filter`, `annotate`): no state
/// across batches, no blocking work. The runtime calls it on its async workers, batch by batch,
/// and forwards barriers and the end of the input itself.
pub trait RecordTransform: Send {
    /// Processes one batch. [`Pass::Unchanged`] forwards the input batch as it is (shared).
    fn process(&mut self, batch: &Arc<Batch>, emit: &mut Emit) -> anyhow::Result<Pass>;
}

/// A transform with state across batches (`compact`, `window`): its calls may block (a
/// compaction spills to disk and merges from it), so the runtime runs it on a thread of its
/// blocking pool, never on an async worker. What it emits is forwarded by the runtime.
pub trait StatefulTransform: Send + 'static {
    /// Takes one batch into the state; emits what is complete. A transform that keeps
    /// records may take them out of a batch that no other stage shares
    /// ([`Arc::try_unwrap`]) instead of cloning them.
    fn process(&mut self, batch: Arc<Batch>, emit: &mut Emit) -> anyhow::Result<()>;

    /// Called on a checkpoint barrier, before it is forwarded: emit or persist what the barrier
    /// closes.
    fn barrier(&mut self, id: u64, emit: &mut Emit) -> anyhow::Result<()>;

    /// Called when every input has ended; emits the remaining state. Much state is emitted a
    /// batch at a time with [`Drain::More`]: the runtime forwards each batch (downstream paces
    /// it) and calls again until [`Drain::Done`].
    fn finish(&mut self, emit: &mut Emit) -> anyhow::Result<Drain>;
}

/// Whether a transform has more to emit at the end of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Everything has been emitted.
    Done,
    /// Call `finish` again for more.
    More,
}

/// What a transform did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Its output is in [`Emit`].
    Emitted,
    /// Every record passes unchanged: the runtime forwards the shared input batch.
    Unchanged,
}

/// What a sink reports at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Lines for the run summary: what it wrote (objects, checkpoints, …).
    pub lines: Vec<String>,
    /// The run manifests it wrote, as URLs (the `archive` sink: one per stream).
    pub manifests: Vec<String>,
    /// A dry run's plan (the `kinesis` sink: per shard, samples of payloads): printed once, on
    /// standard output, and never logged.
    pub plan: Vec<String>,
}

impl From<Vec<String>> for SinkReport {
    fn from(lines: Vec<String>) -> Self {
        SinkReport {
            lines,
            manifests: Vec::new(),
            plan: Vec::new(),
        }
    }
}

/// Records a sink skipped on purpose, and their weight ([`crate::record::Record::weight`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// How many.
    pub records: usize,
    /// Their weight in all.
    pub bytes: usize,
}

impl Skipped {
    /// Counts one more record of `weight`.
    pub fn add(&mut self, records: usize, bytes: usize) {
        self.records += records;
        self.bytes += bytes;
    }
}

/// A stage that writes records outside the pipeline.
#[async_trait]
pub trait Sink: Send {
    /// Writes (or buffers) one batch. Records it cannot write go to `rejected`.
    async fn write(
        &mut self,
        batch: Arc<Batch>,
        rejected: &mut Vec<Rejected>,
    ) -> anyhow::Result<()>;

    /// Records of the batches written so far that the sink skipped on purpose (e.g. archived
    /// already) since the last call, with their weight: counted as skipped, not as written.
    fn take_skipped(&mut self) -> Skipped {
        Skipped::default()
    }

    /// Makes everything received so far durable (checkpoint barrier).
    async fn barrier(&mut self, _id: u64) -> anyhow::Result<()> {
        Ok(())
    }

    /// Flushes and commits at the end of the input; returns lines for the run summary.
    async fn finish(&mut self) -> anyhow::Result<SinkReport>;
}
