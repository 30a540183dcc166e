//! `file` source: JSON Lines from a file or standard input.
//!
//! ```toml
//! [sources.orders]
//! type = "file"
//! path = "examples/orders.jsonl"      # or "-" for stdin; gzip when it ends in .gz
//! format = "data"                     # each line is a payload (default), or "envelope"
//! stream = "orders"
//! partition_key = "$.customer_id"
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use md5::{Digest, Md5};
use schemars::JsonSchema;
use serde::Deserialize;

use super::lines::{Lines, Parsed, buffered, forward, spawn_reader_with};
use crate::expr::ValuePath;
use crate::problems::Problems;
use chrono::SubsecRound;

use crate::record::{Interner, Record, SequenceNumber, parse_ts};
use crate::stage::{Rejected, Source, SourceContext};
use crate::transform::compact::key::exact::select_key;

/// What each line of the file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// A payload, as a producer would put it into Kinesis; position and key are made up.
    #[default]
    Data,
    /// An archive envelope (`{"stream", "shard_id", "sequence_number", …, "data"}`).
    Envelope,
}

/// Reads JSON Lines from a file (`.gz` is decompressed) or from standard input (`-`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Path of the file, relative to the working directory, or `-` for standard input.
    /// A path ending in `.gz` is read as gzip.
    pub path: String,
    /// `data` (default): each line is one payload. `envelope`: each line is an archive envelope.
    #[serde(default)]
    pub format: LineFormat,
    /// `data` format: the stream name given to the records.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// `data` format: the partition key, either a JSONPath into the payload (`"$.customer_id"`)
    /// or a constant string. A path that selects nothing sends the line to `dead_letter` unless
    /// `default_partition_key` is set.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// `data` format: the key for lines whose `partition_key` path selects nothing (non-JSON
    /// lines, missing fields).
    #[serde(default)]
    pub default_partition_key: Option<String>,
    /// `data` format: a JSONPath to an RFC 3339 time in the payload used as arrival time;
    /// by default the time the run started (the same for every line of a run).
    #[serde(default)]
    pub arrival_ts: Option<String>,
    /// `data` format: spread records over this many synthetic shards by the MD5 of their
    /// partition key, as Kinesis does. Default 1.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1))]
    pub shards: u32,
    /// Records per batch. Default 1024.
    #[serde(default = "default_batch")]
    #[schemars(range(min = 1))]
    pub batch_records: usize,
}

fn default_stream() -> String {
    "file".into()
}
fn default_shards() -> u32 {
    1
}
fn default_batch() -> usize {
    1024
}

impl FileSourceConfig {
    /// Checks the settings that serde cannot (paths, counts): every problem, with its key.
    pub fn check(&self, p: &mut Problems) {
        p.check("stream", crate::names::StreamName::parse(&self.stream));
        if self.shards == 0 {
            p.add("shards", "`shards` must be at least 1");
        }
        if self.batch_records == 0 {
            p.add("batch_records", "`batch_records` must be at least 1");
        }
        for (field, path) in [
            ("partition_key", self.partition_key.as_deref()),
            ("arrival_ts", self.arrival_ts.as_deref()),
        ] {
            if let Some(path) = path.filter(|path| path.starts_with('$')) {
                p.check(field, ValuePath::compile(path));
            }
        }
        if self
            .arrival_ts
            .as_deref()
            .is_some_and(|path| !path.starts_with('$'))
        {
            p.add(
                "arrival_ts",
                "`arrival_ts` must be a JSONPath such as \"$.created_at\"",
            );
        }
    }

    /// Builds the source.
    pub fn build(&self) -> Result<Box<dyn Source>, String> {
        Problems::first(|p| self.check(p))?;
        Ok(Box::new(FileSource {
            config: self.clone(),
        }))
    }
}

/// The running `file` source.
pub struct FileSource {
    config: FileSourceConfig,
}

/// The key rule of the `data` format.
enum KeyRule {
    Path(ValuePath),
    Constant(String),
}

struct DataLineParser {
    stream: Arc<str>,
    shard_ids: Vec<Arc<str>>,
    key: KeyRule,
    default_key: Option<String>,
    arrival: Option<ValuePath>,
    started: chrono::DateTime<chrono::Utc>,
}

impl DataLineParser {
    fn parse(&self, line_no: u64, text: &[u8], out: &mut Parsed) {
        let data = Bytes::copy_from_slice(text);
        let json: Option<serde_json::Value> = match (&self.key, &self.arrival) {
            (KeyRule::Constant(_), None) => None,
            _ => serde_json::from_slice(text).ok(),
        };
        let key = match &self.key {
            KeyRule::Constant(c) => Some(c.clone()),
            // Numbers keep their exact text (a parsed value holds big ones as f64).
            KeyRule::Path(p) => json.as_ref().and_then(|j| select_key(p, j, j, text)),
        }
        .or_else(|| self.default_key.clone());
        let arrival = match &self.arrival {
            None => Ok(self.started),
            Some(p) => match json.as_ref().and_then(|j| p.select(j)) {
                // Arrival times are milliseconds (what Kinesis gives and the envelope holds):
                // a finer time reads as its millisecond, so the record archived is the one
                // the transforms saw.
                Some(serde_json::Value::String(s)) => parse_ts(s).map(|t| t.trunc_subsecs(3)),
                Some(other) => Err(format!(
                    "{} is {}, not an RFC 3339 string",
                    p.source(),
                    crate::json::kind(other)
                )),
                None => Err(format!("{} selects nothing", p.source())),
            },
        };
        let shard =
            self.shard_ids[shard_index(key.as_deref().unwrap_or(""), self.shard_ids.len())].clone();
        let record = Record {
            stream: self.stream.clone(),
            shard_id: shard,
            sequence_number: SequenceNumber::from_u64(line_no),
            sub_sequence_number: None,
            partition_key: key.as_deref().unwrap_or_default().into(),
            arrival_ts: arrival.clone().unwrap_or(self.started),
            data,
            annotations: None,
            probed: None,
        };
        let problem = match (&key, arrival) {
            (None, _) => Some(format!(
                "line {line_no}: the partition key path {} selects nothing{}",
                match &self.key {
                    KeyRule::Path(p) => p.source().to_owned(),
                    KeyRule::Constant(c) => c.clone(),
                },
                if json.is_none() {
                    " (the line is not JSON)"
                } else {
                    ""
                }
            )),
            (_, Err(e)) => Some(format!("line {line_no}: arrival time: {e}")),
            _ => None,
        };
        match problem {
            Some(reason) => out.rejected.push(Rejected { record, reason }),
            None => out.records.push(record),
        }
    }
}

/// The shard Kinesis would pick for a key among `n` equal hash ranges: MD5 as a 128-bit number.
pub fn shard_index(key: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let digest = Md5::digest(key.as_bytes());
    let hash = u128::from_be_bytes(digest.into());
    let width = u128::MAX / n as u128 + 1;
    ((hash / width) as usize).min(n - 1)
}

/// The id of the `i`-th synthetic shard, in Kinesis' format.
pub fn shard_id(i: usize) -> String {
    format!("shardId-{i:012}")
}

#[async_trait]
impl Source for FileSource {
    async fn run(&mut self, ctx: &mut SourceContext) -> anyhow::Result<()> {
        let cfg = self.config.clone();
        let path = cfg.path.clone();
        let gzip = path.ends_with(".gz");
        let open = move || -> std::io::Result<Lines> {
            let raw: Box<dyn std::io::Read + Send> = if path == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(std::fs::File::open(&path)?)
            };
            // Standard input may be a pipe that pauses: no chunked read-ahead there.
            let pool = super::read_ahead::ChunkPool::default();
            buffered(raw, gzip, (path != "-").then_some(&pool))
        };
        let what = if cfg.path == "-" {
            "standard input".to_owned()
        } else {
            cfg.path.clone()
        };
        let rx = match cfg.format {
            LineFormat::Envelope => {
                let mut interner = Interner::default();
                let source_name = what.clone();
                let stdin = cfg.path == "-";
                spawn_reader_with(
                    what,
                    open,
                    cfg.batch_records,
                    stdin,
                    move |line_no, text, out| match Record::parse_envelope(text, &mut interner) {
                        Ok(r) => out.records.push(r),
                        Err(e) => out.rejected.push(Rejected {
                            record: unparsed_line(&source_name, line_no, text),
                            reason: format!("{source_name}: line {line_no}: {e}"),
                        }),
                    },
                )
            }
            LineFormat::Data => {
                let parser = DataLineParser {
                    stream: Arc::from(cfg.stream.as_str()),
                    shard_ids: (0..cfg.shards as usize)
                        .map(|i| Arc::from(shard_id(i)))
                        .collect(),
                    key: match &cfg.partition_key {
                        Some(p) if p.starts_with('$') => {
                            KeyRule::Path(ValuePath::compile(p).map_err(anyhow::Error::msg)?)
                        }
                        Some(c) => KeyRule::Constant(c.clone()),
                        None => KeyRule::Constant(String::new()),
                    },
                    default_key: cfg.default_partition_key.clone(),
                    arrival: match &cfg.arrival_ts {
                        Some(p) => Some(ValuePath::compile(p).map_err(anyhow::Error::msg)?),
                        None => None,
                    },
                    started: crate::record::ts_from_millis(chrono::Utc::now().timestamp_millis()),
                };
                let stdin = cfg.path == "-";
                spawn_reader_with(
                    what,
                    open,
                    cfg.batch_records,
                    stdin,
                    move |line_no, text, out| parser.parse(line_no, text, out),
                )
            }
        };
        forward(rx, ctx).await?;
        Ok(())
    }
}

/// A stand-in record for a line that could not be parsed, so it can travel to `dead_letter`
/// with its bytes intact.
pub fn unparsed_line(source: &str, line_no: u64, text: &[u8]) -> Record {
    Record {
        stream: Arc::from(source),
        shard_id: Arc::from("unparsed"),
        sequence_number: SequenceNumber::from_u64(line_no),
        sub_sequence_number: None,
        partition_key: Default::default(),
        arrival_ts: crate::record::ts_from_millis(chrono::Utc::now().timestamp_millis()),
        data: Bytes::copy_from_slice(text),
        annotations: None,
        probed: None,
    }
}

impl crate::registry::StageKind for FileSourceConfig {
    fn validate(&self, p: &mut Problems) {
        self.check(p)
    }

    fn build(
        &self,
        _: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        FileSourceConfig::build(self).map(crate::registry::BuiltStage::Source)
    }

    /// The `data` format's `stream`: envelopes carry their own.
    fn source_stream(&self) -> Option<&str> {
        (self.format == LineFormat::Data).then_some(self.stream.as_str())
    }

    fn place(&self) -> Option<Result<crate::registry::Place, String>> {
        let std = crate::local_path::StdStream::for_reading(&self.path);
        Some(crate::registry::file_place(&self.path, std))
    }
}

#[cfg(test)]
mod tests;
