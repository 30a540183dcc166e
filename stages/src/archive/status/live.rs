//! The Kinesis side of a status report (`--kinesis`): which shards the stream has and whether
//! they are closed, how far each shard's archive is behind the stream's tip, and how long the
//! oldest unarchived record has left before Kinesis deletes it (retention minus its age).
//!
//! Per shard: the oldest record still in the shard (`TRIM_HORIZON`) tells whether a gap is
//! waiting for the next run (the same rule as the `kinesis` source's gap check); the first
//! record after the checkpoint (`AFTER_SEQUENCE_NUMBER`) is the oldest unarchived one, and its
//! GetRecords call's `MillisBehindLatest` the lag behind the tip. Two GetShardIterator and a few
//! GetRecords calls (limit 1) per shard; nothing is consumed or written.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Problem, ShardStatus, StatusError, StreamStatus};
use crate::aws::{AwsSettings, describe, sdk_config};
use crate::record::{SequenceNumber, format_ts, kinesis_millis, ts_from_millis};

/// How to reach Kinesis, and when expiry needs action.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// Region, profile, endpoint.
    pub aws: AwsSettings,
    /// Records expiring within this need action. Default: a quarter of the stream's retention
    /// (what the `kinesis` source warns at).
    pub expiry_margin: Option<Duration>,
}

/// What Kinesis says about a stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamLive {
    /// The stream's retention period.
    pub retention_hours: i64,
    /// Records expiring within this many seconds need action.
    pub expiry_margin_seconds: i64,
    /// Open shards.
    pub open_shards: usize,
    /// Closed shards still listed (split or merged, within the retention period).
    pub closed_shards: usize,
}

/// What Kinesis says about a shard.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardLive {
    /// False when Kinesis no longer lists the shard (it was closed and its records expired).
    pub in_stream: bool,
    /// The last sequence number of a closed shard.
    pub ending_sequence_number: Option<String>,
    /// True for a closed shard archived to its end.
    pub fully_archived: bool,
    /// Milliseconds the first unarchived record is behind the tip (`MillisBehindLatest`); 0
    /// when everything is archived.
    pub behind_ms: Option<i64>,
    /// The oldest record not archived yet.
    pub oldest_unarchived_sequence_number: Option<String>,
    /// Its arrival time.
    pub oldest_unarchived_arrival_ts: Option<String>,
    /// Seconds until Kinesis deletes it (retention minus its age); `None` when nothing is
    /// unarchived.
    pub expires_in_seconds: Option<i64>,
    /// True when the shard's checkpointed record is gone and older records than the oldest
    /// available may have expired unarchived: the next archival run stops with `GAP`.
    pub gap_pending: bool,
}

/// A Kinesis client for these settings.
pub async fn client(options: &LiveOptions) -> Client {
    Client::new(&sdk_config(&options.aws).await)
}

/// An SDK error: `Ok(message)` for "the stream does not exist", `Err` for everything that
/// means Kinesis could not be asked (no endpoint, no credentials, access denied).
fn classify<E, R>(what: &str, e: &aws_sdk_s3::error::SdkError<E, R>) -> Result<String, StatusError>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = describe(e);
    if message.starts_with("ResourceNotFoundException") {
        Ok(message)
    } else {
        Err(StatusError::Kinesis(format!("Kinesis {what}: {message}")))
    }
}

/// Adds what Kinesis says to a stream's status.
pub async fn probe(
    client: &Client,
    options: &LiveOptions,
    status: &mut StreamStatus,
    now: DateTime<Utc>,
) -> Result<(), StatusError> {
    let stream = status.stream.clone();
    let summary = match client
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let message = classify(&format!("DescribeStreamSummary on {stream}"), &e)?;
            status.problems.push(Problem {
                kind: "stream_missing",
                shard_id: None,
                message: format!(
                    "Kinesis has no stream {stream} ({message}): deleted, or another region or account? Its archive stays readable"
                ),
            });
            return Ok(());
        }
    };
    let hours = summary
        .stream_description_summary()
        .map(|d| i64::from(d.retention_period_hours()))
        .unwrap_or(24);
    let retention = chrono::Duration::hours(hours);
    let margin = options
        .expiry_margin
        .and_then(|m| chrono::Duration::from_std(m).ok())
        .unwrap_or(retention / 4);
    let listed = list_shards(client, &stream).await?;
    for (id, _) in &listed {
        if !status.shards.iter().any(|s| &s.shard_id == id) {
            status.shards.push(ShardStatus {
                shard_id: id.clone(),
                checkpoint: None,
                objects: 0,
                bytes: 0,
                closed: None,
                kinesis: None,
            });
        }
    }
    status.shards.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    let mut problems = Vec::new();
    for shard in &mut status.shards {
        let Some((_, ending)) = listed.iter().find(|(id, _)| *id == shard.shard_id) else {
            shard.closed = Some(true);
            shard.kinesis = Some(ShardLive::default());
            continue;
        };
        shard.closed = Some(ending.is_some());
        let live = probe_shard(client, &stream, shard, ending.as_ref(), retention, now).await?;
        if live.gap_pending {
            problems.push(Problem {
                kind: "gap_pending",
                shard_id: Some(shard.shard_id.clone()),
                message: format!(
                    "shard {}: the checkpointed record has expired from Kinesis and the oldest record left ({}) comes after it; \
                     records in between may be lost, and the next archival run stops with GAP (allow_gaps = true archives what is left)",
                    shard.shard_id,
                    live.oldest_unarchived_sequence_number.as_deref().unwrap_or("?")
                ),
            });
        } else if let Some(left) = live.expires_in_seconds
            && left <= margin.num_seconds()
        {
            problems.push(Problem {
                kind: "expiry",
                shard_id: Some(shard.shard_id.clone()),
                message: format!(
                    "shard {}: the oldest unarchived record (arrived {}) expires from Kinesis in {}s, within the margin of {}s; run the archive now",
                    shard.shard_id,
                    live.oldest_unarchived_arrival_ts.as_deref().unwrap_or("?"),
                    left,
                    margin.num_seconds()
                ),
            });
        }
        shard.kinesis = Some(live);
    }
    status.problems.extend(problems);
    status.kinesis = Some(StreamLive {
        retention_hours: hours,
        expiry_margin_seconds: margin.num_seconds(),
        open_shards: listed.iter().filter(|(_, e)| e.is_none()).count(),
        closed_shards: listed.iter().filter(|(_, e)| e.is_some()).count(),
    });
    Ok(())
}

/// Every shard of the stream with its ending sequence number (closed shards).
async fn list_shards(
    client: &Client,
    stream: &str,
) -> Result<Vec<(String, Option<String>)>, StatusError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let page = req.send().await.map_err(|e| {
            StatusError::Kinesis(format!("Kinesis ListShards on {stream}: {}", describe(&e)))
        })?;
        for s in page.shards() {
            let ending = s
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .map(str::to_owned);
            out.push((s.shard_id().to_owned(), ending));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(out);
        }
    }
}

async fn probe_shard(
    client: &Client,
    stream: &str,
    shard: &ShardStatus,
    ending: Option<&String>,
    retention: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<ShardLive, StatusError> {
    let checkpoint = shard
        .checkpoint
        .as_ref()
        .and_then(|c| SequenceNumber::parse(&c.sequence_number).ok());
    let mut live = ShardLive {
        in_stream: true,
        ending_sequence_number: ending.cloned(),
        ..Default::default()
    };
    let end = ending.and_then(|e| SequenceNumber::parse(e).ok());
    if let (Some(cp), Some(end)) = (&checkpoint, &end)
        && cp >= end
    {
        live.fully_archived = true;
        live.behind_ms = Some(0);
        return Ok(live);
    }
    let id = &shard.shard_id;
    let (oldest, behind) = first_record(client, stream, id, None).await?;
    let unarchived = match (&checkpoint, oldest) {
        (None, oldest) => (oldest, behind),
        (Some(cp), Some((seq, ts))) if seq > *cp => {
            live.gap_pending = true;
            (Some((seq, ts)), behind)
        }
        (Some(cp), _) => first_record(client, stream, id, Some(cp)).await?,
    };
    let (first, behind) = unarchived;
    live.behind_ms = Some(if first.is_some() {
        behind.unwrap_or(0)
    } else {
        0
    });
    if let Some((seq, ts)) = first {
        live.oldest_unarchived_sequence_number = Some(seq.to_string());
        live.oldest_unarchived_arrival_ts = Some(format_ts(&ts));
        live.expires_in_seconds = Some((retention - (now - ts)).num_seconds());
    }
    Ok(live)
}

/// The first record of a shard (`after`: `None`) or after a sequence number, and the
/// `MillisBehindLatest` of the call that found it (or that reached the tip without one).
async fn first_record(
    client: &Client,
    stream: &str,
    shard: &str,
    after: Option<&SequenceNumber>,
) -> Result<(Option<(SequenceNumber, DateTime<Utc>)>, Option<i64>), StatusError> {
    let req = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    let req = match after {
        Some(seq) => req
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq.as_str()),
        None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let mut iterator = req
        .send()
        .await
        .map_err(|e| {
            StatusError::Kinesis(format!(
                "Kinesis GetShardIterator on {shard}: {}",
                describe(&e)
            ))
        })?
        .shard_iterator()
        .map(str::to_owned);
    let mut behind = None;
    // GetRecords may answer empty pages before it reaches data (sparse or trimmed shards);
    // a bounded number of calls, stopping at the tip or the end of a closed shard.
    for _ in 0..25 {
        let Some(it) = iterator.take() else {
            return Ok((None, Some(0)));
        };
        let out = client
            .get_records()
            .shard_iterator(it)
            .limit(1)
            .send()
            .await
            .map_err(|e| {
                StatusError::Kinesis(format!("Kinesis GetRecords on {shard}: {}", describe(&e)))
            })?;
        behind = out.millis_behind_latest();
        if let Some(r) = out.records().first() {
            let seq = SequenceNumber::parse(r.sequence_number())
                .map_err(|e| StatusError::Kinesis(format!("Kinesis GetRecords on {shard}: {e}")))?;
            let ts = ts_from_millis(
                r.approximate_arrival_timestamp()
                    .map(kinesis_millis)
                    .unwrap_or_default(),
            );
            return Ok((Some((seq, ts)), behind));
        }
        if behind == Some(0) {
            return Ok((None, behind));
        }
        iterator = out.next_shard_iterator().map(str::to_owned);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((None, behind))
}
