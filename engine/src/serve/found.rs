//! What a search found: the sink it provides to its run (the first `limit` records, as
//! envelopes, handed to the answer; the rest counted) and the counts it reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use flux_stages::record::Batch;
use flux_stages::stage::{Rejected, Sink, SinkReport};
use serde::Serialize;
use tokio::sync::mpsc;

use super::search::MAX_RESULT_BYTES;
use crate::runtime::{Monitor, Snapshot};

/// The counts of a search.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Data objects of the stream listed.
    pub objects_listed: u64,
    /// Objects left unread (outside the time window or shards).
    pub objects_pruned: u64,
    /// Objects read so far.
    pub objects_read: u64,
    /// Stored bytes of the objects read.
    pub bytes_read: u64,
    /// Records looked at: passed on by the source plus those it skipped (outside the bounds,
    /// ruled out by the pushed-down filter before parsing).
    pub records_scanned: u64,
    /// Records that matched.
    pub matched: u64,
    /// Records returned.
    pub returned: u64,
    /// Seconds since the search started.
    pub elapsed_seconds: f64,
}

pub(super) fn counts(snap: &Snapshot, returned: u64) -> Counts {
    let mut c = Counts {
        returned,
        elapsed_seconds: snap.elapsed_seconds,
        ..Default::default()
    };
    for s in &snap.stages {
        if let Some(o) = s.objects {
            c.objects_listed += o.listed;
            c.objects_pruned += o.pruned;
            c.objects_read += o.read;
            c.bytes_read += o.bytes;
        }
        match s.role {
            flux_stages::registry::Role::Source => {
                c.records_scanned += s.counters.records_out + s.counters.skipped;
            }
            flux_stages::registry::Role::Sink => c.matched += s.counters.records_in,
            flux_stages::registry::Role::Transform => {}
        }
    }
    c
}

/// The sink the search provides: hands the first `limit` records (as envelopes) to the
/// stream, counts the rest; with `stop_at_limit`, stops the run at the limit.
pub(super) struct ResultSink {
    /// Where the records go; dropped at the limit.
    pub(super) tx: Option<mpsc::Sender<Box<serde_json::value::RawValue>>>,
    /// How many records to hand on.
    pub(super) limit: u64,
    /// Envelope bytes handed on so far.
    pub(super) bytes: usize,
    /// Records handed on so far.
    pub(super) returned: Arc<AtomicU64>,
    /// Stop the run at the limit.
    pub(super) stop_at_limit: bool,
    /// The run, once started (to stop it at the limit).
    pub(super) monitor: Arc<std::sync::OnceLock<Monitor>>,
}

#[async_trait]
impl Sink for ResultSink {
    async fn write(&mut self, batch: Arc<Batch>, _: &mut Vec<Rejected>) -> anyhow::Result<()> {
        let mut line = Vec::new();
        for r in batch.iter() {
            let Some(tx) = &self.tx else { break };
            line.clear();
            r.write_envelope(&mut line);
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            self.bytes += text.len();
            if self.bytes > MAX_RESULT_BYTES {
                self.tx = None;
                break;
            }
            let raw = serde_json::value::RawValue::from_string(text)?;
            // The channel holds `limit` records, so this never waits on a slow client for long.
            if tx.send(raw).await.is_err() {
                self.tx = None;
                break;
            }
            if self.returned.fetch_add(1, Ordering::Relaxed) + 1 >= self.limit {
                self.tx = None;
            }
        }
        if self.tx.is_none()
            && self.stop_at_limit
            && let Some(m) = self.monitor.get()
        {
            m.cancel();
        }
        Ok(())
    }

    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        self.tx = None;
        Ok(SinkReport::default())
    }
}
