//! `archive` source: every record of one stream in an archive, optionally bounded.
//!
//! ```toml
//! [sources.archive]
//! type = "archive"
//! url = "file://./archive"
//! stream = "orders"
//! from = "2026-11-25T10:00:00Z"     # inclusive, arrival time
//! to = "2026-11-25T14:00:00Z"       # exclusive
//! ```
//!
//! Objects are chosen by their partition folders first (`dt=`/`hour=` against `from`/`to`,
//! `shard=` against `shards`), so a bounded read never opens an object outside its bounds; the
//! records inside are then filtered exactly. Objects are read in (hour, shard, first sequence)
//! order, so each shard's records come in sequence order.

use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use super::file::unparsed_line;
use super::lines::{buffered, forward, spawn_reader};
use crate::archive::layout::{self, DataObject};
use crate::record::{Interner, Record};
use crate::stage::{Rejected, Source, SourceContext};
use crate::store::{self, ObjectStore};
use crate::units::Timestamp;

/// Reads the records of one stream from an archive (a local directory or, later, S3).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSourceConfig {
    /// The archive root: `file:///abs/dir`, `file://./rel/dir` or a plain path.
    pub url: String,
    /// The stream to read.
    pub stream: String,
    /// Only records that arrived at or after this time (RFC 3339).
    #[serde(default)]
    pub from: Option<Timestamp>,
    /// Only records that arrived before this time (RFC 3339, exclusive).
    #[serde(default)]
    pub to: Option<Timestamp>,
    /// Only these shards (e.g. `["shardId-000000000001"]`); all when absent.
    #[serde(default)]
    pub shards: Option<Vec<String>>,
    /// Records per batch. Default 1024.
    #[serde(default = "default_batch")]
    pub batch_records: usize,
}

fn default_batch() -> usize {
    1024
}

impl ArchiveSourceConfig {
    /// Checks bounds and the URL.
    pub fn validate(&self) -> Result<(), String> {
        store::check_url(&self.url).map_err(|e| format!("`url`: {e}"))?;
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(format!(
                "`from` ({}) must be before `to` ({})",
                crate::record::format_ts(&from.0),
                crate::record::format_ts(&to.0)
            ));
        }
        if self.batch_records == 0 {
            return Err("`batch_records` must be at least 1".into());
        }
        Ok(())
    }

    /// Builds the source.
    pub fn build(&self) -> Result<Box<dyn Source>, String> {
        self.validate()?;
        Ok(Box::new(ArchiveSource {
            store: store::open(&self.url)?,
            config: self.clone(),
        }))
    }
}

/// The running `archive` source.
pub struct ArchiveSource {
    store: Arc<dyn ObjectStore>,
    config: ArchiveSourceConfig,
}

/// The bounds a record must fall in.
#[derive(Clone)]
struct Bounds {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    shards: Option<Vec<String>>,
}

impl Bounds {
    fn object_may_hold(&self, obj: &DataObject) -> bool {
        let hour_end = obj.hour + Duration::hours(1);
        self.from.is_none_or(|f| hour_end > f)
            && self.to.is_none_or(|t| obj.hour < t)
            && self
                .shards
                .as_ref()
                .is_none_or(|s| s.contains(&obj.shard_id))
    }

    fn holds(&self, r: &Record) -> bool {
        self.from.is_none_or(|f| r.arrival_ts >= f)
            && self.to.is_none_or(|t| r.arrival_ts < t)
            && self
                .shards
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| **x == *r.shard_id))
    }
}

/// Lists the data objects of `stream` that may hold records within the bounds, in read order.
async fn plan_objects(
    store: &Arc<dyn ObjectStore>,
    stream: &str,
    bounds: &Bounds,
) -> anyhow::Result<(Vec<DataObject>, usize)> {
    let listed = store.list(&layout::stream_prefix(stream)).await?;
    let all: Vec<DataObject> = listed
        .iter()
        .filter_map(|m| layout::parse_data_key(&m.key))
        .collect();
    let total = all.len();
    let mut chosen: Vec<DataObject> = all
        .into_iter()
        .filter(|o| bounds.object_may_hold(o))
        .collect();
    chosen.sort_by(|a, b| {
        (a.hour, &a.shard_id, a.range.as_ref().map(|r| &r.0))
            .cmp(&(b.hour, &b.shard_id, b.range.as_ref().map(|r| &r.0)))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok((chosen, total))
}

#[async_trait]
impl Source for ArchiveSource {
    async fn run(&mut self, ctx: &mut SourceContext) -> anyhow::Result<()> {
        let bounds = Bounds {
            from: self.config.from.map(|t| t.0),
            to: self.config.to.map(|t| t.0),
            shards: self.config.shards.clone(),
        };
        let (objects, total) = plan_objects(&self.store, &self.config.stream, &bounds).await?;
        tracing::info!(
            stage = ctx.output.stage(),
            stream = %self.config.stream,
            objects = objects.len(),
            pruned = total - objects.len(),
            "reading archive {}",
            self.store.url()
        );
        // Fetch the next object while the current one is being parsed.
        let mut next = objects.first().map(|o| fetch(&self.store, o));
        for i in 0..objects.len() {
            if ctx.stop.is_cancelled() {
                break;
            }
            let obj = objects[i].clone();
            let body = match next.take() {
                Some(handle) => handle.await??,
                None => break,
            };
            next = objects.get(i + 1).map(|o| fetch(&self.store, o));
            let what = format!("{}/{}", self.store.url(), obj.key);
            let gzip = obj.gzip;
            let bounds = bounds.clone();
            let mut interner = Interner::default();
            let key = obj.key.clone();
            let rx = spawn_reader(
                what,
                move || Ok(buffered(Box::new(Cursor::new(body)), gzip)),
                self.config.batch_records,
                move |line_no, text, out| match Record::parse_envelope(text, &mut interner) {
                    Ok(r) => {
                        if bounds.holds(&r) {
                            out.records.push(r);
                        }
                    }
                    Err(e) => out.rejected.push(Rejected {
                        record: unparsed_line(&key, line_no, text),
                        reason: format!("{key}: line {line_no}: {e}"),
                    }),
                },
            );
            forward(rx, ctx).await?;
        }
        Ok(())
    }
}

fn fetch(
    store: &Arc<dyn ObjectStore>,
    obj: &DataObject,
) -> tokio::task::JoinHandle<Result<bytes::Bytes, crate::store::StoreError>> {
    let store = store.clone();
    let key = obj.key.clone();
    tokio::spawn(async move { store.get(&key).await })
}
