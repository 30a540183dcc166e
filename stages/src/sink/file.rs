//! `file` sink: JSON Lines to a file or standard output.
//!
//! ```toml
//! [sinks.out]
//! type = "file"
//! inputs = ["mark"]
//! path = "-"              # standard output; a path ending in .gz is gzip-compressed
//! format = "data"         # payloads only; "envelope" (default) keeps position, key and time
//! ```
//!
//! A file is written under a temporary name and renamed into place when the run ends cleanly,
//! so a failed run never leaves a truncated file behind under the real name.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use flate2::write::GzEncoder;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::record::Batch;
use crate::source::file::LineFormat;
use crate::stage::{Rejected, Sink, SinkReport};

/// Writes records as JSON Lines to a file or standard output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Path of the output file (relative to the working directory), or `-` for standard output.
    /// A path ending in `.gz` is gzip-compressed.
    pub path: String,
    /// `envelope` (default): archive envelopes, lossless. `data`: the payloads alone, one per
    /// line (payloads with line breaks go to `dead_letter`).
    #[serde(default = "default_format")]
    pub format: LineFormat,
}

fn default_format() -> LineFormat {
    LineFormat::Envelope
}

impl FileSinkConfig {
    /// Builds the sink (the file is created when the first record arrives, or at the end).
    pub fn build(&self) -> Result<Box<dyn Sink>, String> {
        if self.path.is_empty() {
            return Err("`path` must not be empty".into());
        }
        Ok(Box::new(FileSink {
            config: self.clone(),
            out: None,
            records: 0,
            bytes: 0,
            line: Vec::with_capacity(4096),
        }))
    }
}

struct Open {
    writer: Box<dyn Write + Send>,
    temp: Option<PathBuf>,
}

/// The running `file` sink.
pub struct FileSink {
    config: FileSinkConfig,
    out: Option<Open>,
    records: u64,
    bytes: u64,
    line: Vec<u8>,
}

impl FileSink {
    fn open(&mut self) -> anyhow::Result<&mut Open> {
        if self.out.is_none() {
            let path = &self.config.path;
            let (raw, temp): (Box<dyn Write + Send>, Option<PathBuf>) = if path == "-" {
                (Box::new(std::io::stdout()), None)
            } else {
                let target = PathBuf::from(path);
                if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
                }
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let temp = target.with_file_name(format!(".{name}.partial-{}", std::process::id()));
                let f = std::fs::File::create(&temp)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", temp.display()))?;
                (Box::new(f), Some(temp))
            };
            let buffered = std::io::BufWriter::with_capacity(256 * 1024, raw);
            let writer: Box<dyn Write + Send> = if path.ends_with(".gz") {
                Box::new(GzEncoder::new(buffered, flate2::Compression::default()))
            } else {
                Box::new(buffered)
            };
            self.out = Some(Open { writer, temp });
        }
        Ok(self.out.as_mut().expect("opened above"))
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(
        &mut self,
        batch: Arc<Batch>,
        rejected: &mut Vec<Rejected>,
    ) -> anyhow::Result<()> {
        let format = self.config.format;
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        for r in batch.iter() {
            match format {
                LineFormat::Envelope => r.write_envelope(&mut line),
                LineFormat::Data => {
                    if r.data.contains(&b'\n') || r.data.contains(&b'\r') {
                        rejected.push(Rejected {
                            record: r.clone(),
                            reason: "payload contains a line break; use format = \"envelope\""
                                .into(),
                        });
                        continue;
                    }
                    line.extend_from_slice(&r.data);
                    line.push(b'\n');
                }
            }
            self.records += 1;
        }
        self.bytes += line.len() as u64;
        let path = self.config.path.clone();
        self.open()?
            .writer
            .write_all(&line)
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        self.line = line;
        Ok(())
    }

    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        let path = self.config.path.clone();
        let open = self.open()?;
        open.writer
            .flush()
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let Open { writer, temp } = self.out.take().expect("opened above");
        // Dropping the writer finishes the gzip stream and closes the file.
        drop(writer);
        if let Some(temp) = temp {
            std::fs::rename(&temp, &path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        }
        Ok(vec![format!(
            "wrote {} records ({} bytes) to {}",
            self.records,
            self.bytes,
            if path == "-" {
                "standard output"
            } else {
                &path
            }
        )])
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // A run that failed leaves no partial file under a temporary name.
        if let Some(Open {
            temp: Some(temp), ..
        }) = self.out.take()
        {
            let _ = std::fs::remove_file(temp);
        }
    }
}
