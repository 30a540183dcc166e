//! Search: the preview before a replay. A pipeline is built in memory — the engine's own
//! `archive` source, a `filter` (pushed down into the source as `run` does) and a sink that
//! hands records to the client — compiled and run through [`crate::runtime::start_with`]. The
//! answer is streamed as JSON lines as records are found: `record` lines (the first `limit`
//! matches, as envelopes), `progress` lines with the counts, and one `end` line. It is bounded
//! in time (`timeout_seconds`), in memory (`limit` records, [`MAX_RESULT_BYTES`]) and cancelled
//! when the client goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::api::ApiError;
use super::found::{ResultSink, counts};
use crate::runtime::{self, Monitor, ProvidedSinks, RunOptions};

/// The most records a search returns.
pub const MAX_LIMIT: usize = 1000;
/// The longest a search may run.
pub const MAX_TIMEOUT_SECONDS: u64 = 600;
/// The most envelope bytes a search returns; records past it are counted, not returned.
pub const MAX_RESULT_BYTES: usize = 16 << 20;
/// Seconds between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A search request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The archive root (`file://./archive`, `s3://bucket/prefix`).
    pub archive: String,
    /// The stream.
    pub stream: String,
    /// Arrival time from (RFC 3339, inclusive).
    #[serde(default)]
    pub from: Option<String>,
    /// Arrival time to (RFC 3339, exclusive).
    #[serde(default)]
    pub to: Option<String>,
    /// Only these shards.
    #[serde(default)]
    pub shards: Option<Vec<String>>,
    /// A filter expression (as the `filter` stage's `where`); all records when absent.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// How many matches to return (default 100, at most [`MAX_LIMIT`]).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Stop reading once `limit` matches are found (default false: read on to count every
    /// match).
    #[serde(default)]
    pub stop_at_limit: bool,
    /// Give up after this many seconds (default 60, at most [`MAX_TIMEOUT_SECONDS`]).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl SearchRequest {
    /// The pipeline's TOML text, written with the `toml` crate so that no value can change
    /// its structure; loaded without template rendering.
    fn pipeline_text(&self) -> Result<String, ApiError> {
        use toml::Value;
        let mut source = toml::Table::new();
        source.insert("type".into(), "archive".into());
        source.insert("url".into(), self.archive.clone().into());
        source.insert("stream".into(), self.stream.clone().into());
        for (k, v) in [("from", &self.from), ("to", &self.to)] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                source.insert(k.into(), v.clone().into());
            }
        }
        if let Some(shards) = &self.shards
            && !shards.is_empty()
        {
            if shards.len() > 10_000 {
                return Err(ApiError::bad_request("at most 10000 shards"));
            }
            source.insert(
                "shards".into(),
                Value::Array(shards.iter().cloned().map(Value::from).collect()),
            );
        }
        let mut sink = toml::Table::new();
        sink.insert("type".into(), "file".into());
        // A placeholder: the server provides this sink (it is never built).
        sink.insert("path".into(), "/dev/null".into());
        let mut root = toml::Table::new();
        let mut meta = toml::Table::new();
        meta.insert("name".into(), "search".into());
        root.insert("pipeline".into(), meta.into());
        root.insert(
            "sources".into(),
            toml::Table::from_iter([("archive".to_owned(), Value::Table(source))]).into(),
        );
        let input = match self.filter.as_ref().filter(|f| !f.trim().is_empty()) {
            Some(f) => {
                let mut filter = toml::Table::new();
                filter.insert("type".into(), "filter".into());
                filter.insert("inputs".into(), Value::Array(vec!["archive".into()]));
                filter.insert("where".into(), f.clone().into());
                root.insert(
                    "transforms".into(),
                    toml::Table::from_iter([("match".to_owned(), Value::Table(filter))]).into(),
                );
                "match"
            }
            None => "archive",
        };
        sink.insert("inputs".into(), Value::Array(vec![input.into()]));
        root.insert(
            "sinks".into(),
            toml::Table::from_iter([("results".to_owned(), Value::Table(sink))]).into(),
        );
        toml::to_string(&root).map_err(|e| ApiError::bad_request(format!("search: {e}")))
    }
}

/// Starts a search; the answer streams its lines. Bad input is a 4xx (with the pipeline's
/// diagnostics as JSON when it does not compile), and nothing is started.
pub async fn start(
    req: SearchRequest,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response, ApiError> {
    let limit = req.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_LIMIT}"
        )));
    }
    let timeout = req.timeout_seconds.unwrap_or(60);
    if timeout == 0 || timeout > MAX_TIMEOUT_SECONDS {
        return Err(ApiError::bad_request(format!(
            "`timeout_seconds` must be 1 to {MAX_TIMEOUT_SECONDS}"
        )));
    }
    if req.filter.as_ref().is_some_and(|f| f.len() > 8192) {
        return Err(ApiError::bad_request("`where` is longer than 8192 bytes"));
    }
    let text = req.pipeline_text()?;
    let checked = crate::compile::check(crate::config::load::load_generated("search", &text));
    let Some(pipeline) = checked.pipeline else {
        let diags = super::pipelines::diagnostics_json(&checked.diagnostics);
        let first = checked
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| {
                let key = d
                    .field
                    .as_deref()
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default();
                format!("{key}{}", d.message)
            })
            .unwrap_or_else(|| "invalid search".into());
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_search",
            first,
        )
        .with_details(serde_json::json!({ "diagnostics": diags })));
    };
    let (tx, rx) = mpsc::channel::<Box<serde_json::value::RawValue>>(limit);
    let returned = Arc::new(AtomicU64::new(0));
    let sink = ResultSink {
        tx: Some(tx),
        limit: limit as u64,
        bytes: 0,
        returned: returned.clone(),
        stop_at_limit: req.stop_at_limit,
        monitor: Arc::new(std::sync::OnceLock::new()),
    };
    let monitor_slot = sink.monitor.clone();
    let mut provided = ProvidedSinks::default();
    provided.insert("results", Box::new(sink));
    let handle = tokio::task::spawn_blocking(move || {
        runtime::start_with(
            &pipeline,
            RunOptions {
                run_id: runtime::new_run_id(),
                dry_run: false,
                offline_shards: None,
            },
            provided,
        )
    })
    .await
    .map_err(|e| ApiError::bad_request(format!("search: {e}")))?
    .map_err(|e| ApiError::bad_request(format!("search: {e}")))?;
    let monitor = handle.monitor();
    let _ = monitor_slot.set(monitor.clone());
    let (lines_tx, lines_rx) = mpsc::channel::<String>(64);
    tokio::spawn(
        Running {
            monitor,
            records: rx,
            lines: lines_tx,
            returned,
            timeout: Duration::from_secs(timeout),
            limit,
            _permit: permit,
        }
        .drive(handle),
    );
    let stream = futures_util::stream::unfold(lines_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|l| (Ok::<_, std::convert::Infallible>(l), rx))
    });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/x-ndjson"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A search in flight: its run, what it found and where the answer goes.
struct Running {
    monitor: Monitor,
    records: mpsc::Receiver<Box<serde_json::value::RawValue>>,
    lines: mpsc::Sender<String>,
    returned: Arc<AtomicU64>,
    timeout: Duration,
    limit: usize,
    /// Held until the search ends (the server's limit on searches at once).
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Running {
    /// Forwards records and progress to the client until the run ends; cancels the run when
    /// the deadline passes or the client goes away (its line channel closes).
    async fn drive(self, handle: runtime::RunHandle) {
        let Running {
            monitor,
            mut records,
            lines,
            returned,
            timeout,
            limit,
            _permit,
        } = self;
        drive(
            handle,
            monitor,
            &mut records,
            &lines,
            &returned,
            timeout,
            limit,
        )
        .await;
    }
}

async fn drive(
    handle: runtime::RunHandle,
    monitor: Monitor,
    records: &mut mpsc::Receiver<Box<serde_json::value::RawValue>>,
    lines: &mpsc::Sender<String>,
    returned: &Arc<AtomicU64>,
    timeout: Duration,
    limit: usize,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reason = None;
    let mut wait = Box::pin(handle.wait());
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let progress_line = |m: &Monitor| {
        serde_json::json!({
            "type": "progress",
            "counts": counts(&m.snapshot(), returned.load(Ordering::Relaxed)),
        })
        .to_string()
            + "\n"
    };
    let summary = loop {
        tokio::select! {
            summary = &mut wait => break summary,
            Some(r) = records.recv() => {
                let line = format!("{{\"type\":\"record\",\"envelope\":{}}}\n", r.get());
                if lines.send(line).await.is_err() {
                    reason.get_or_insert("cancelled");
                    monitor.cancel();
                }
            }
            _ = tick.tick() => {
                if lines.send(progress_line(&monitor)).await.is_err() {
                    reason.get_or_insert("cancelled");
                    monitor.cancel();
                }
            }
            _ = tokio::time::sleep_until(deadline), if reason.is_none() => {
                reason = Some("timeout");
                monitor.cancel();
            }
        }
    };
    while let Ok(r) = records.try_recv() {
        let line = format!("{{\"type\":\"record\",\"envelope\":{}}}\n", r.get());
        let _ = lines.send(line).await;
    }
    let c = counts(&monitor.snapshot(), returned.load(Ordering::Relaxed));
    let reason = match (reason, summary.outcome) {
        (Some(r), _) => r,
        (None, runtime::Outcome::Succeeded) => "end",
        (None, runtime::Outcome::Interrupted) if c.returned as usize >= limit => "limit",
        (None, runtime::Outcome::Interrupted) => "cancelled",
        (None, _) => "failed",
    };
    let end = serde_json::json!({
        "type": "end",
        "reason": reason,
        "complete": reason == "end",
        "error": summary.error,
        "counts": c,
    });
    let _ = lines.send(end.to_string() + "\n").await;
}
