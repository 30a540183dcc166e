//! A stage's output port: batches to every edge of the main port, rejected records to the
//! dead-letter port, barriers and the end of the output.

use super::*;

/// Where a stage sends its records: every downstream edge of its main port and of its dead-letter
/// port. Fan-out sends the same shared batch to each edge in turn, so the slowest consumer paces
/// the stage.
pub struct Output {
    stage: Arc<str>,
    main: Vec<Sender>,
    dead_letter: Vec<Sender>,
    metrics: Arc<StageMetrics>,
}

/// Records could not be delivered: either downstream is gone, or records were rejected while no
/// stage reads the dead-letter port.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A downstream stage stopped (it failed, or the run is being stopped).
    #[error("a downstream stage stopped")]
    Closed,
    /// Records were rejected and no stage reads this stage's dead-letter port.
    #[error(
        "{count} record(s) could not be processed and no stage reads `{stage}.dead_letter`; first: {first}"
    )]
    Rejected {
        /// The rejecting stage.
        stage: String,
        /// How many records were rejected in the failing batch.
        count: usize,
        /// The first rejected record's position and reason.
        first: String,
    },
}

impl Output {
    /// An output for `stage` with its downstream edges.
    pub fn new(
        stage: Arc<str>,
        main: Vec<Sender>,
        dead_letter: Vec<Sender>,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        Output {
            stage,
            main,
            dead_letter,
            metrics,
        }
    }

    /// The stage's id.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The stage's counters.
    pub fn metrics(&self) -> &Arc<StageMetrics> {
        &self.metrics
    }

    /// True when some stage reads the dead-letter port.
    pub fn has_dead_letter(&self) -> bool {
        !self.dead_letter.is_empty()
    }

    /// Sends a batch to every downstream edge of the main port (no-op for an empty batch).
    pub async fn send(&self, batch: Batch) -> Result<(), OutputError> {
        if batch.is_empty() {
            return Ok(());
        }
        StageMetrics::add(&self.metrics.records_out, batch.len());
        StageMetrics::add(&self.metrics.bytes_out, batch_weight(&batch));
        broadcast(&self.main, Message::Batch(Arc::new(batch))).await
    }

    /// Forwards an already shared batch (pass-through stages avoid a copy).
    pub async fn send_shared(&self, batch: Arc<Batch>) -> Result<(), OutputError> {
        if batch.is_empty() {
            return Ok(());
        }
        StageMetrics::add(&self.metrics.records_out, batch.len());
        StageMetrics::add(&self.metrics.bytes_out, batch_weight(&batch));
        broadcast(&self.main, Message::Batch(batch)).await
    }

    /// Routes rejected records to the dead-letter port, annotated with `error` =
    /// `{stage, reason}`; fails with [`OutputError::Rejected`] when nothing reads that port.
    pub async fn reject(&self, rejected: Vec<Rejected>) -> Result<(), OutputError> {
        let Some(first) = rejected.first() else {
            return Ok(());
        };
        if self.dead_letter.is_empty() {
            return Err(OutputError::Rejected {
                stage: self.stage.to_string(),
                count: rejected.len(),
                first: format!(
                    "{} {} sequence {}: {}",
                    first.record.stream,
                    first.record.shard_id,
                    first.record.sequence_number,
                    first.reason
                ),
            });
        }
        StageMetrics::add(&self.metrics.dead_lettered, rejected.len());
        let batch: Batch = rejected
            .into_iter()
            .map(|r| {
                let mut record = r.record;
                record.annotate(
                    "error",
                    serde_json::json!({ "stage": &*self.stage, "reason": r.reason }),
                );
                record
            })
            .collect();
        broadcast(&self.dead_letter, Message::Batch(Arc::new(batch))).await
    }

    /// Sends a checkpoint barrier on every edge.
    pub async fn barrier(&self, id: u64) -> Result<(), OutputError> {
        broadcast(&self.main, Message::Barrier(id)).await?;
        broadcast(&self.dead_letter, Message::Barrier(id)).await
    }

    /// Signals the end of this stage's output on every edge.
    pub async fn end(&self) -> Result<(), OutputError> {
        broadcast(&self.main, Message::End).await?;
        broadcast(&self.dead_letter, Message::End).await
    }
}

async fn broadcast(edges: &[Sender], msg: Message) -> Result<(), OutputError> {
    for edge in edges {
        edge.send(msg.clone())
            .await
            .map_err(|_| OutputError::Closed)?;
    }
    Ok(())
}
