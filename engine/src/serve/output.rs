//! What a run's `file` sinks would write to the server's standard output or error (`path =
//! "-"`, as `pipelines/quickstart-replay.toml` does): kept for the client instead, the first
//! [`MAX_LINES`] lines (at most [`MAX_BYTES`]) and a count of the rest, never written to the
//! server's own streams or logs. The sink formats lines as the `file` sink does.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flux_stages::record::Batch;
use flux_stages::registry::StageConfig;
use flux_stages::sink::file::append_line;
use flux_stages::source::file::LineFormat;
use flux_stages::stage::{Rejected, Sink, SinkReport};

use crate::compile::Pipeline;
use crate::runtime::ProvidedSinks;

/// The most lines kept per run.
pub const MAX_LINES: usize = 500;
/// The most bytes kept per run.
pub const MAX_BYTES: usize = 512 * 1024;

/// The lines a run wrote to its output, bounded.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct OutputTail {
    /// The first lines.
    pub lines: Vec<String>,
    /// Lines written in all (kept or not).
    pub total: u64,
}

/// A run's captured output, shared with its sinks.
pub type SharedOutput = Arc<Mutex<OutputTail>>;

/// Sinks for every `file` sink of the pipeline that writes to standard output or error.
pub fn provided(pipeline: &Pipeline, out: &SharedOutput, dry_run: bool) -> ProvidedSinks {
    let mut sinks = ProvidedSinks::default();
    for node in pipeline.graph.node_weights() {
        if let StageConfig::FileSink(c) = &node.config
            && flux_stages::local_path::StdStream::for_writing(&c.path).is_some()
        {
            sinks.insert(
                node.id.clone(),
                Box::new(OutputSink {
                    format: c.format,
                    out: out.clone(),
                    dry_run,
                    records: 0,
                    bytes: 0,
                }),
            );
        }
    }
    sinks
}

struct OutputSink {
    format: LineFormat,
    out: SharedOutput,
    dry_run: bool,
    records: u64,
    bytes: u64,
}

#[async_trait]
impl Sink for OutputSink {
    async fn write(
        &mut self,
        batch: Arc<Batch>,
        rejected: &mut Vec<Rejected>,
    ) -> anyhow::Result<()> {
        let mut line = Vec::new();
        let mut out = self
            .out
            .lock()
            .map_err(|_| anyhow::anyhow!("output lock"))?;
        let mut kept: usize = out.lines.iter().map(String::len).sum();
        for r in batch.iter() {
            line.clear();
            if let Err(reason) = append_line(self.format, r, &mut line) {
                rejected.push(Rejected {
                    record: r.clone(),
                    reason,
                });
                continue;
            }
            self.records += 1;
            self.bytes += line.len() as u64;
            if self.dry_run {
                continue;
            }
            out.total += 1;
            if out.lines.len() < MAX_LINES && kept + line.len() <= MAX_BYTES {
                kept += line.len();
                let text = String::from_utf8_lossy(&line);
                out.lines.push(text.trim_end_matches('\n').to_owned());
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        Ok(vec![if self.dry_run {
            format!(
                "dry run: wrote nothing; would write {} records ({} bytes) to the run's output",
                self.records, self.bytes
            )
        } else {
            format!(
                "wrote {} records ({} bytes) to the run's output (standard output of `run`)",
                self.records, self.bytes
            )
        }]
        .into())
    }
}
