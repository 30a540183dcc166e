//! A fault-injecting HTTP proxy between the AWS SDK and an emulator, for the faults emulators do
//! not produce: throttling (`ProvisionedThroughputExceededException`), expired iterators, 500s
//! and slow answers, on a schedule the test sets per operation (the `X-Amz-Target` header); and
//! PutRecords calls in which some entries fail ([`Fault::PartialThrottle`]).
//!
//! Each client connection carries one request: the proxy reads it, either answers with the
//! scheduled fault or forwards it to the emulator, relays the answer with `Connection: close`,
//! and closes. Listens on 127.0.0.1 only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer 400 `ProvisionedThroughputExceededException`.
    Throttle,
    /// Answer 400 `ExpiredIteratorException`.
    ExpiredIterator,
    /// Answer 500 `InternalFailure`.
    ServerError,
    /// Forward after a delay.
    Slow(Duration),
    /// Forward, then relay the answer `chunk` bytes at a time with `pause` between chunks (a
    /// slow download: the client waits in the middle of the body). S3 requests carry no
    /// `X-Amz-Target`: plan them under the operation `""`.
    Trickle {
        /// Bytes per chunk.
        chunk: usize,
        /// Pause after each chunk.
        pause: Duration,
    },
    /// PutRecords only: answer entries 0, `every`, 2·`every`, … with `ErrorCode`
    /// `ProvisionedThroughputExceededException` and forward the others, as Kinesis does when
    /// some shards of a call are over their limit (a partial failure, HTTP 200).
    PartialThrottle {
        /// Every how many entries one fails (1: all of them).
        every: usize,
    },
}

/// Per operation (e.g. `GetRecords`), the faults for its 1st, 2nd, … request; requests beyond
/// the list, and operations without one, pass through.
#[derive(Debug, Default)]
struct Schedule {
    plans: HashMap<String, Vec<Option<Fault>>>,
    seen: HashMap<String, usize>,
    injected: HashMap<String, usize>,
    /// Answers being trickled to a client right now.
    trickling: usize,
}

/// A running proxy.
#[derive(Clone)]
pub(crate) struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    schedule: Arc<Mutex<Schedule>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub(crate) async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let schedule = Arc::new(Mutex::new(Schedule::default()));
        let sched = schedule.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let sched = sched.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &upstream, &sched).await;
                });
            }
        });
        FaultProxy { url, schedule }
    }

    /// Sets the faults for the next requests of `operation` (counting restarts from now).
    pub(crate) fn plan(&self, operation: &str, faults: Vec<Option<Fault>>) {
        let mut s = self.schedule.lock().expect("schedule");
        s.plans.insert(operation.to_owned(), faults);
        s.seen.insert(operation.to_owned(), 0);
    }

    /// How many [`Fault::Trickle`] answers are being sent right now (a client that stops
    /// reading and closes its connection ends its answer at the next chunk).
    pub(crate) fn trickling(&self) -> usize {
        self.schedule.lock().expect("schedule").trickling
    }

    /// How many faults were injected into `operation`'s requests.
    pub(crate) fn injected(&self, operation: &str) -> usize {
        let s = self.schedule.lock().expect("schedule");
        s.injected.get(operation).copied().unwrap_or(0)
    }
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(buf);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn serve(
    mut conn: TcpStream,
    upstream: &str,
    schedule: &Mutex<Schedule>,
) -> std::io::Result<()> {
    let request = read_request(&mut conn).await?;
    let head_end = find(&request, b"\r\n\r\n").unwrap_or(request.len());
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let operation = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-amz-target")
                .then(|| v.trim().rsplit('.').next().unwrap_or_default().to_owned())
        })
        .unwrap_or_default();
    let fault = {
        let mut s = schedule.lock().expect("schedule");
        let i = *s.seen.get(&operation).unwrap_or(&0);
        s.seen.insert(operation.clone(), i + 1);
        let fault = s
            .plans
            .get(&operation)
            .and_then(|p| p.get(i).cloned())
            .flatten();
        if fault.is_some() {
            *s.injected.entry(operation.clone()).or_default() += 1;
        }
        fault
    };
    let canned = |status: &str, kind: &str, message: &str| {
        let body = format!(r#"{{"__type":"{kind}","message":"{message}"}}"#);
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let answer = match fault {
        Some(Fault::Throttle) => Some(canned(
            "400 Bad Request",
            "ProvisionedThroughputExceededException",
            "Rate exceeded for shard",
        )),
        Some(Fault::ExpiredIterator) => Some(canned(
            "400 Bad Request",
            "ExpiredIteratorException",
            "Iterator expired",
        )),
        Some(Fault::ServerError) => Some(canned(
            "500 Internal Server Error",
            "InternalFailure",
            "injected",
        )),
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::Trickle { chunk, pause }) => {
            let mut up = TcpStream::connect(upstream).await?;
            up.write_all(&rewrite_connection_close(&request, head_end))
                .await?;
            let response = read_response(&mut up).await?;
            schedule.lock().expect("schedule").trickling += 1;
            let mut sent = Ok(());
            for part in response.chunks(chunk.max(1)) {
                sent = conn.write_all(part).await;
                if sent.is_ok() {
                    sent = conn.flush().await;
                }
                if sent.is_err() {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            schedule.lock().expect("schedule").trickling -= 1;
            sent?;
            return conn.shutdown().await;
        }
        Some(Fault::PartialThrottle { every }) => {
            let response = partial_put_records(&request, head_end, upstream, every.max(1)).await?;
            conn.write_all(&response).await?;
            return conn.shutdown().await;
        }
        None => None,
    };
    if let Some(answer) = answer {
        conn.write_all(answer.as_bytes()).await?;
        return conn.shutdown().await;
    }
    // Forward with `Connection: close` so the upstream ends its answer by closing.
    let mut up = TcpStream::connect(upstream).await?;
    let forwarded = rewrite_connection_close(&request, head_end);
    up.write_all(&forwarded).await?;
    let response = read_response(&mut up).await?;
    conn.write_all(&response).await?;
    conn.shutdown().await
}

/// Reads one HTTP response: to the end of its `Content-Length` body (emulators may keep the
/// connection open despite `Connection: close`), or to the end of the stream without one.
async fn read_response(up: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                && buf.len() >= end + 4 + len
            {
                buf.truncate(end + 4 + len);
                return Ok(buf);
            }
        }
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn rewrite_connection_close(request: &[u8], head_end: usize) -> Vec<u8> {
    let head = String::from_utf8_lossy(&request[..head_end]);
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&request[(head_end + 4).min(request.len())..]);
    bytes
}

/// A PutRecords call in which entries `i % every == 0` fail with throttling: forwards the other
/// entries to the emulator and merges its results with the failures, in the original order.
async fn partial_put_records(
    request: &[u8],
    head_end: usize,
    upstream: &str,
    every: usize,
) -> std::io::Result<Vec<u8>> {
    let invalid = |e: serde_json::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let body = &request[(head_end + 4).min(request.len())..];
    let mut call: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    let entries = call["Records"].as_array().cloned().unwrap_or_default();
    let failed = |i: usize| i.is_multiple_of(every);
    let forwarded: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !failed(*i))
        .map(|(_, e)| e.clone())
        .collect();
    let mut written = std::collections::VecDeque::new();
    if !forwarded.is_empty() {
        call["Records"] = serde_json::Value::Array(forwarded);
        let new_body = serde_json::to_vec(&call).map_err(invalid)?;
        let head = String::from_utf8_lossy(&request[..head_end]);
        let mut out = String::new();
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("connection:") || lower.starts_with("content-length:") {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            new_body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&new_body);
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&bytes).await?;
        let response = read_response(&mut up).await?;
        let end = find(&response, b"\r\n\r\n").unwrap_or(response.len());
        let status_ok = response.starts_with(b"HTTP/1.1 200");
        if !status_ok {
            // Pass the emulator's error through as it is.
            return Ok(response);
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&response[(end + 4).min(response.len())..]).map_err(invalid)?;
        written.extend(answer["Records"].as_array().cloned().unwrap_or_default());
    }
    let mut results = Vec::new();
    let mut failures = 0;
    for i in 0..entries.len() {
        if failed(i) {
            failures += 1;
            results.push(serde_json::json!({
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": "Rate exceeded for shard (injected)"
            }));
        } else {
            let r = written.pop_front().unwrap_or(serde_json::Value::Null);
            if r.get("ErrorCode").is_some() {
                failures += 1;
            }
            results.push(r);
        }
    }
    let body = serde_json::json!({"FailedRecordCount": failures, "Records": results}).to_string();
    Ok(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes())
}
