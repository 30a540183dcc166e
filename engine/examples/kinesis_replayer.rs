//! A loopback Kinesis that replays pre-generated records as fast as asked, for
//! `tests/bench/kinesis-source.sh` (issue #15: the `kinesis` source's own cost). Not part of the
//! shipped binary: `cargo build --release -p flux-engine --example kinesis_replayer`.
//!
//! It speaks the Kinesis JSON 1.1 protocol (`X-Amz-Target: Kinesis_20131202.<Op>`) for the
//! operations the `kinesis` source calls: ListShards, GetShardIterator, GetRecords and
//! DescribeStreamSummary. The payloads are the lines of a file, dealt round-robin over `--shards`
//! open shards; the partition key is the line's `customer_id` when it has one. Every record's
//! JSON (base64 `Data`, `SequenceNumber`, `ApproximateArrivalTimestamp`, `PartitionKey`) is
//! serialised once at start; a GetRecords answer is a prefix, one slice of those bytes and a
//! suffix, sent without copying. Up to `Limit` (at most 10,000) records and 10 MiB of payload per
//! answer; `MillisBehindLatest` is 0 on the answer that reaches a shard's last record (so
//! `stop = "caught_up"` ends the run); it never throttles.
//!
//! ```sh
//! kinesis_replayer --input orders.jsonl --shards 8     # prints "listening on http://127.0.0.1:PORT"
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::Parser;
use serde_json::{Value, json};

/// Records per GetRecords answer at most (Kinesis' limit).
const MAX_RECORDS: usize = 10_000;
/// Payload bytes per GetRecords answer at most (Kinesis' limit).
const MAX_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Parser)]
#[command(about = "A loopback Kinesis replaying a file's lines as GetRecords answers")]
struct Args {
    /// The payloads: one per line (JSON Lines; any bytes but a line break).
    #[arg(long)]
    input: std::path::PathBuf,
    /// Open shards to deal the lines over.
    #[arg(long, default_value_t = 8)]
    shards: usize,
    /// The stream's name (any name is answered; this one is reported).
    #[arg(long, default_value = "bench")]
    stream: String,
    /// Where to listen; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// One shard's records, serialised: `{…},{…},…` with `starts[i]..ends[i]` the i-th record.
struct Shard {
    id: String,
    body: Bytes,
    starts: Vec<usize>,
    ends: Vec<usize>,
    /// Payload bytes before record i (`bytes_before[len]` is the shard's total).
    bytes_before: Vec<u64>,
}

struct State {
    stream: String,
    shards: Vec<Shard>,
    get_records: AtomicU64,
}

/// A shard's sequence number for the record at `pos` (56 digits, like Kinesis' own).
fn sequence_number(shard: usize, pos: usize) -> String {
    format!("4959{shard:06}{:046}", pos + 1)
}

/// The position after a sequence number of `sequence_number`'s form.
fn position_after(seq: &str) -> Option<usize> {
    seq.get(10..)?.parse::<usize>().ok()
}

fn load(args: &Args) -> anyhow::Result<Vec<Shard>> {
    anyhow::ensure!(args.shards > 0, "--shards must be at least 1");
    let text = std::fs::read(&args.input)?;
    let mut shards: Vec<Shard> = (0..args.shards)
        .map(|i| Shard {
            id: format!("shardId-{i:012}"),
            body: Bytes::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            bytes_before: vec![0],
        })
        .collect();
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new(); args.shards];
    // Arrival times one millisecond apart, ending now.
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let first_ms = now_ms - lines.len() as i64;
    for (n, line) in lines.iter().enumerate() {
        let (i, shard) = (n % args.shards, &mut shards[n % args.shards]);
        let body = &mut bodies[i];
        let pos = shard.starts.len();
        let key = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("customer_id")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("key-{n}"));
        if pos > 0 {
            body.push(b',');
        }
        shard.starts.push(body.len());
        let ms = first_ms + n as i64;
        let record = json!({
            "SequenceNumber": sequence_number(i, pos),
            "ApproximateArrivalTimestamp": ms as f64 / 1000.0,
            "Data": BASE64.encode(line),
            "PartitionKey": key,
        });
        serde_json::to_writer(&mut *body, &record)?;
        shard.ends.push(body.len());
        let total = shard.bytes_before[pos] + line.len() as u64 + key.len() as u64;
        shard.bytes_before.push(total);
    }
    for (shard, body) in shards.iter_mut().zip(bodies) {
        shard.body = Bytes::from(body);
    }
    Ok(shards)
}

fn answer(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        value.to_string(),
    )
        .into_response()
}

fn error(kind: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        json!({"__type": kind, "message": message}).to_string(),
    )
        .into_response()
}

impl State {
    fn shard(&self, id: &str) -> Option<(usize, &Shard)> {
        self.shards.iter().enumerate().find(|(_, s)| s.id == id)
    }

    fn list_shards(&self) -> Response {
        let step = u128::MAX / self.shards.len() as u128;
        let shards: Vec<Value> = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let low = step * i as u128;
                let high = if i + 1 == self.shards.len() {
                    u128::MAX
                } else {
                    low + step - 1
                };
                json!({
                    "ShardId": s.id,
                    "HashKeyRange": {"StartingHashKey": low.to_string(), "EndingHashKey": high.to_string()},
                    "SequenceNumberRange": {"StartingSequenceNumber": sequence_number(i, 0)},
                })
            })
            .collect();
        answer(json!({ "Shards": shards }))
    }

    fn describe_stream_summary(&self) -> Response {
        answer(json!({"StreamDescriptionSummary": {
            "StreamName": self.stream,
            "StreamARN": format!("arn:aws:kinesis:us-east-1:000000000000:stream/{}", self.stream),
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1_700_000_000.0,
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
            "EncryptionType": "NONE",
            "OpenShardCount": self.shards.len(),
            "ConsumerCount": 0,
        }}))
    }

    fn get_shard_iterator(&self, req: &Value) -> Response {
        let id = req["ShardId"].as_str().unwrap_or_default();
        let Some((i, shard)) = self.shard(id) else {
            return error("ResourceNotFoundException", &format!("no shard {id}"));
        };
        let seq = req["StartingSequenceNumber"].as_str();
        let pos = match req["ShardIteratorType"].as_str().unwrap_or_default() {
            "TRIM_HORIZON" | "AT_TIMESTAMP" => Some(0),
            "LATEST" => Some(shard.starts.len()),
            "AFTER_SEQUENCE_NUMBER" => seq.and_then(position_after),
            "AT_SEQUENCE_NUMBER" => seq.and_then(position_after).map(|p| p.saturating_sub(1)),
            _ => None,
        };
        let Some(pos) = pos else {
            return error("InvalidArgumentException", "unsupported iterator request");
        };
        answer(json!({ "ShardIterator": format!("{i}:{}", pos.min(shard.starts.len())) }))
    }

    fn get_records(&self, req: &Value) -> Response {
        self.get_records.fetch_add(1, Ordering::Relaxed);
        let parsed = req["ShardIterator"].as_str().and_then(|it| {
            let (i, pos) = it.split_once(':')?;
            Some((i.parse::<usize>().ok()?, pos.parse::<usize>().ok()?))
        });
        let Some((i, from)) = parsed.filter(|(i, _)| *i < self.shards.len()) else {
            return error("InvalidArgumentException", "invalid ShardIterator");
        };
        let shard = &self.shards[i];
        let count = shard.starts.len();
        let limit = req["Limit"]
            .as_u64()
            .map_or(MAX_RECORDS, |l| (l as usize).clamp(1, MAX_RECORDS));
        let from = from.min(count);
        // The most records from `from` within the limits (at least one, as Kinesis answers).
        let by_bytes = shard.bytes_before[from..]
            .partition_point(|&b| b - shard.bytes_before[from] <= MAX_BYTES)
            .saturating_sub(1)
            .max(1);
        let to = (from + limit.min(by_bytes)).min(count);
        let behind = if to == count { 0 } else { (count - to) as u64 };
        let suffix =
            format!("],\"NextShardIterator\":\"{i}:{to}\",\"MillisBehindLatest\":{behind}}}");
        let records = if to > from {
            shard.body.slice(shard.starts[from]..shard.ends[to - 1])
        } else {
            Bytes::new()
        };
        let prefix = Bytes::from_static(b"{\"Records\":[");
        let length = prefix.len() + records.len() + suffix.len();
        let chunks = [prefix, records, Bytes::from(suffix)]
            .into_iter()
            .map(Ok::<_, std::convert::Infallible>);
        let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        response
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let op = target.strip_prefix("Kinesis_20131202.").unwrap_or(target);
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error("SerializationException", &e.to_string()),
    };
    match op {
        "GetRecords" => state.get_records(&req),
        "GetShardIterator" => state.get_shard_iterator(&req),
        "ListShards" => state.list_shards(),
        "DescribeStreamSummary" => state.describe_stream_summary(),
        _ => error(
            "UnknownOperationException",
            &format!("the replayer does not serve {op}"),
        ),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shards = load(&args)?;
    let records: usize = shards.iter().map(|s| s.starts.len()).sum();
    let state = Arc::new(State {
        stream: args.stream.clone(),
        shards,
        get_records: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(handle))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "replaying {records} records on {} shards of stream {}",
        args.shards, args.stream
    );
    println!("listening on http://{}", listener.local_addr()?);
    let served = state.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!(
                "served {} GetRecords calls",
                served.get_records.load(Ordering::Relaxed)
            );
        })
        .await?;
    Ok(())
}
