//! Arrival times are Kinesis' own, to the millisecond (issue 10 item 6): Kinesis sends
//! `ApproximateArrivalTimestamp` as epoch seconds with a fraction, which the SDK parses as an
//! f64; the archive must hold the millisecond Kinesis wrote, not one below it.

use std::collections::BTreeMap;
use std::io::Read;

use crate::support::emulators::{self, unique};
use crate::support::{flux_engine, text};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use flux_stages::record::kinesis_millis;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The millisecond an epoch-seconds time in the form Kinesis sends it comes back as, after the
/// SDK's parse (`f64` text parse, then `DateTime::from_secs_f64`).
fn through_the_sdk(ms: i64) -> i64 {
    let seconds = ms as f64 / 1000.0;
    kinesis_millis(&DateTime::from_secs_f64(seconds))
}

fn kinesis_text(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Every millisecond of an hour of today's times and of the ten seconds around a few far
/// epochs, and two million spread over years 1970–9999, convert back to themselves; the f64
/// division stands for the parse of the text Kinesis sends (checked on a sample).
#[test]
fn every_millisecond_kinesis_can_send_converts_back_to_itself() {
    let hour_start = 1_764_061_200_000; // 2025-11-25T09:00:00Z
    let mut checked = 0u64;
    let mut check = |ms: i64| {
        assert_eq!(through_the_sdk(ms), ms, "{}", kinesis_text(ms));
        checked += 1;
    };
    for ms in hour_start..hour_start + 3_600_000 {
        check(ms);
    }
    for centre in [0, 2_147_483_648_000, 4_102_444_800_000, 253_402_300_790_000] {
        for ms in centre - 10_000..centre + 10_000 {
            if ms >= 0 {
                check(ms);
            }
        }
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..2_000_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = (x % 253_402_300_800_000) as i64;
        if i % 64 == 0 {
            let parsed: f64 = kinesis_text(ms).parse().unwrap();
            assert_eq!(parsed, ms as f64 / 1000.0);
        }
        check(ms);
    }
    assert!(checked > 5_000_000);
    // Truncating, as `DateTime::to_millis` does, loses a millisecond on many of them.
    let early = (hour_start..hour_start + 10_000)
        .filter(|&ms| {
            DateTime::from_secs_f64(ms as f64 / 1000.0)
                .to_millis()
                .unwrap()
                != ms
        })
        .count();
    assert!(early > 1_000, "{early}");
}

/// One Kinesis JSON 1.1 call over plain HTTP; returns the answer's body. The SDK is not used
/// so that no float parse of ours or of the SDK's comes between the emulator and the test.
async fn raw_call(endpoint: &str, operation: &str, body: &str) -> Vec<u8> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.{operation}\r\nX-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{operation}: {head}");
            assert!(!head.contains("transfer-encoding: chunked"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if buf.len() >= end + 4 + len {
                return buf[end + 4..end + 4 + len].to_vec();
            }
        }
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "{operation}: the answer ended early");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The milliseconds of a JSON number's text (`1764064800.123`, `1.764064800123E9`, …), by its
/// decimal digits: exact, no float involved. Panics when it is not a whole millisecond.
fn millis_of_decimal(text: &str) -> i64 {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().unwrap()),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let negative = int.starts_with('-');
    let digits: String = format!("{}{frac}", int.trim_start_matches('-'));
    // value = digits × 10^(exponent − len(frac)); milliseconds: × 1000.
    let scale = exponent - frac.len() as i32 + 3;
    let mut value: i128 = digits.parse().unwrap();
    if scale >= 0 {
        value *= 10i128.pow(scale as u32);
    } else {
        let div = 10i128.pow((-scale) as u32);
        assert_eq!(value % div, 0, "{text} is not a whole millisecond");
        value /= div;
    }
    i64::try_from(if negative { -value } else { value }).unwrap()
}

/// A JSON object's members as their raw text.
type RawObject<'a> = BTreeMap<String, &'a RawValue>;

/// Every record of a stream: sequence number → arrival time in milliseconds, from the
/// emulator's own JSON text.
async fn emulator_arrival_times(
    endpoint: &str,
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
) -> BTreeMap<String, i64> {
    let mut times = BTreeMap::new();
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    for shard in shards.shards() {
        let body = serde_json::json!({
            "StreamName": stream,
            "ShardId": shard.shard_id(),
            "ShardIteratorType": "TRIM_HORIZON",
        });
        let answer = raw_call(endpoint, "GetShardIterator", &body.to_string()).await;
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        let mut iterator = answer["ShardIterator"].as_str().map(str::to_owned);
        while let Some(it) = iterator.take() {
            let body = serde_json::json!({"ShardIterator": it, "Limit": 10000});
            let answer = raw_call(endpoint, "GetRecords", &body.to_string()).await;
            let page: RawObject = serde_json::from_slice(&answer).unwrap();
            let records: Vec<RawObject> = serde_json::from_str(page["Records"].get()).unwrap();
            for r in &records {
                let seq: String = serde_json::from_str(r["SequenceNumber"].get()).unwrap();
                let ms = millis_of_decimal(r["ApproximateArrivalTimestamp"].get());
                times.insert(seq, ms);
            }
            let behind: Option<i64> = page
                .get("MillisBehindLatest")
                .and_then(|v| serde_json::from_str(v.get()).ok());
            if records.is_empty() && behind == Some(0) {
                break;
            }
            iterator = page
                .get("NextShardIterator")
                .and_then(|v| serde_json::from_str(v.get()).ok());
        }
    }
    times
}

/// Thousands of records put in small PutRecords calls (so their arrival times spread over
/// hundreds of milliseconds), archived by the kinesis source to a local archive: every archived
/// `arrival_ts` is the emulator's `ApproximateArrivalTimestamp`, to the millisecond, and its
/// hour folder is that time's hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_arrival_times_equal_the_emulators_to_the_millisecond() {
    let emu = emulators::get();
    let kinesis = emu.kinesis().await;
    let stream = unique("arrival");
    emulators::create_stream(&kinesis, &stream, 2).await;
    // 300 calls of 10 records, four at a time.
    let total = 3000;
    let mut puts = tokio::task::JoinSet::new();
    for task in 0..4 {
        let (kinesis, stream) = (kinesis.clone(), stream.clone());
        puts.spawn(async move {
            for batch in (task..total / 10).step_by(4) {
                let entries: Vec<PutRecordsRequestEntry> = (0..10)
                    .map(|i| {
                        let n = batch * 10 + i;
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("k-{n}"))
                            .data(Blob::new(format!("{{\"n\":{n}}}")))
                            .build()
                            .unwrap()
                    })
                    .collect();
                let out = kinesis
                    .put_records()
                    .stream_name(&stream)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(out.failed_record_count(), Some(0));
            }
        });
    }
    while let Some(done) = puts.join_next().await {
        done.unwrap();
    }
    let expected = emulator_arrival_times(&emu.kinesis, &kinesis, &stream).await;
    assert_eq!(expected.len(), total);
    let distinct: std::collections::BTreeSet<i64> = expected.values().copied().collect();
    assert!(
        distinct.len() >= 50,
        "only {} distinct times",
        distinct.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("archive.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.stream]
type = "kinesis"
stream = "{stream}"
poll_interval = "20ms"
idle_interval = "50ms"

[sinks.archive]
type = "archive"
inputs = ["stream"]
url = "file://{root}"
"#,
            root = dir.path().join("archive").display()
        ),
    )
    .unwrap();
    let mut cmd = flux_engine(&["run", pipeline.to_str().unwrap(), "--progress", "off"]);
    emu.apply(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);

    let mut archived = BTreeMap::new();
    let mut wrong_folder = 0;
    let mut stack = vec![dir.path().join("archive").join(format!("stream={stream}"))];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let mut lines = String::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).unwrap())
                .read_to_string(&mut lines)
                .unwrap();
            for line in lines.lines() {
                let env: serde_json::Value = serde_json::from_str(line).unwrap();
                let ts = env["arrival_ts"].as_str().unwrap();
                let time = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
                let folder = time.format("dt=%Y-%m-%d/hour=%H").to_string();
                if !p.to_string_lossy().contains(&folder) {
                    wrong_folder += 1;
                }
                let seq = env["sequence_number"].as_str().unwrap().to_owned();
                archived.insert(seq, time.timestamp_millis());
            }
        }
    }
    assert_eq!(archived.len(), total);
    assert_eq!(wrong_folder, 0);
    let differ: Vec<(&String, i64, i64)> = expected
        .iter()
        .filter_map(|(seq, &want)| {
            let got = archived[seq];
            (got != want).then_some((seq, want, got))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {total} archived arrival times differ from the emulator's, e.g. (seq, emulator ms, archived ms) {:?}",
        differ.len(),
        &differ[..differ.len().min(3)]
    );
}
