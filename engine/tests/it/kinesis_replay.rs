//! Replay into Kinesis through the real binary, against kinesis-local: archive envelopes →
//! `annotate` (replay) → `kinesis` sink into a fresh 3-shard stream, read back with GetRecords.
//! Every record arrives exactly once with its bytes and key, in per-key order, between an
//! opening and a closing fence on every shard; throttling and partial failures injected by the
//! fault proxy are survived; oversize records are dead-lettered; `--dry-run` sends nothing.
//! Shards split during a replay carry an opening fence before the replayed records (except the
//! revealing records the sink reports) and a closing fence, and a consumer following the
//! protocol settles on the documented state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::emulators::{self, Emulators, unique};
use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::records::envelope_json;
use crate::support::run::kill;
use crate::support::{Flux, Pipeline, Ran, table};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use flux_stages::record::SequenceNumber;
use flux_stages::replay::{
    DEFAULT_KEY, FencePhase, Marker, Observed, Reconciler, Stamp, parse_marker,
};
use flux_stages::sink::kinesis::shards::hash_key;

/// One archived record: (source shard, sequence number, key, payload).
#[derive(Debug, Clone)]
struct Archived {
    shard: String,
    seq: u64,
    key: String,
    data: String,
}

/// A record read back: (shard, sequence number as padded text, key, bytes, arrival time).
#[derive(Debug, Clone)]
struct ReadBack {
    seq: String,
    key: String,
    data: Vec<u8>,
    arrival: chrono::DateTime<chrono::Utc>,
}

struct Setup {
    emu: Emulators,
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    dir: tempfile::TempDir,
}

async fn setup(shards: i32) -> Setup {
    let emu = emulators::get();
    let kinesis = emu.kinesis().await;
    let stream = unique("replay");
    emulators::create_stream(&kinesis, &stream, shards).await;
    Setup {
        emu,
        kinesis,
        stream,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// `n` records over `keys` keys from two source shards, in archive order.
fn archive(n: usize, keys: usize) -> Vec<Archived> {
    (0..n)
        .map(|i| Archived {
            shard: format!("shardId-00000000000{}", i % 2),
            seq: 1000 + i as u64,
            key: format!("c-{}", i % keys),
            data: format!(r#"{{"order_id":"o-{}","n":{i}}}"#, i % keys),
        })
        .collect()
}

fn envelope(a: &Archived) -> String {
    envelope_json(
        "orders",
        &a.shard,
        a.seq,
        &a.key,
        &format!(
            "2026-11-25T10:00:{:02}.{:03}Z",
            (a.seq / 1000) % 60,
            a.seq % 1000
        ),
        &a.data,
    )
}

impl Setup {
    /// Deletes the stream (the shared emulator limits the shards of all streams).
    async fn cleanup(self) {
        let _ = self
            .kinesis
            .delete_stream()
            .stream_name(&self.stream)
            .enforce_consumer_deletion(true)
            .send()
            .await;
    }

    /// Writes the envelopes (plus `extra` lines) and the replay pipeline (`sink` sets more keys
    /// of the kinesis sink); returns the pipeline path.
    fn pipeline(
        &self,
        records: &[Archived],
        extra: &[String],
        sink: impl FnOnce(Pipeline) -> Pipeline,
    ) -> String {
        self.write_replay(records, extra, false, sink)
    }

    /// [`Setup::pipeline`] with a `compact` transform (on the partition key) before the
    /// annotation.
    fn compacted_pipeline(
        &self,
        records: &[Archived],
        sink: impl FnOnce(Pipeline) -> Pipeline,
    ) -> String {
        self.write_replay(records, &[], true, sink)
    }

    fn write_replay(
        &self,
        records: &[Archived],
        extra: &[String],
        compact: bool,
        sink: impl FnOnce(Pipeline) -> Pipeline,
    ) -> String {
        let input = self.dir.path().join("archive.jsonl");
        let mut lines: Vec<String> = records.iter().map(envelope).collect();
        lines.extend(extra.iter().cloned());
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let replay = Pipeline::new("replay")
            .source("archive", "file")
            .set("path", &input)
            .set("format", "envelope")
            .set("batch_records", 97)
            .when(compact, |p| {
                p.transform("latest", "compact", &["archive"])
                    .set("key", "partition_key")
            })
            .transform(
                "mark",
                "annotate",
                &[if compact { "latest" } else { "archive" }],
            )
            .set("replay", table([("id", "INC-7"), ("mode", "overwrite")]))
            .sink("out", "kinesis", &["mark"])
            .set("stream", &self.stream)
            .set("replay_id", "INC-7")
            .set("mode", "overwrite");
        sink(replay)
            .sink("dlq", "file", &["out.dead_letter"])
            .set("path", "dlq.jsonl")
            .write(self.dir.path())
            .to_string_lossy()
            .into_owned()
    }

    /// `flux-engine run PIPELINE ARGS` against the emulators (Kinesis through `endpoint` when
    /// given).
    fn flux(&self, pipeline: &str, args: &[&str], endpoint: Option<&str>) -> Flux {
        let flux = Flux::new()
            .args(["run", pipeline])
            .args(args)
            .emulators(&self.emu)
            .current_dir(self.dir.path());
        match endpoint {
            Some(e) => flux.env("AWS_ENDPOINT_URL_KINESIS", e),
            None => flux,
        }
    }

    /// Runs the pipeline (through `endpoint` when given); returns (exit code, stdout, stderr).
    async fn run(
        &self,
        pipeline: &str,
        args: &[&str],
        endpoint: Option<&str>,
    ) -> (i32, String, String) {
        let mut flux = self.flux(pipeline, &[], endpoint);
        if args.contains(&"--progress") {
            // Progress lines are logged at info.
            flux = flux.env("RUST_LOG", "info");
        } else {
            flux = flux.args(["--progress", "off"]);
        }
        let flux = flux.args(args);
        // A proxy runs on this runtime's workers while the engine runs.
        let out = tokio::task::spawn_blocking(move || flux.run())
            .await
            .unwrap();
        (out.code_or_signal(), out.stdout, out.stderr)
    }

    /// Starts the pipeline (through `endpoint` when given) without waiting for it.
    fn spawn(&self, pipeline: &str, endpoint: Option<&str>) -> std::process::Child {
        self.flux(pipeline, &["--progress", "off"], endpoint)
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Every shard with its parents (`ParentShardId`, `AdjacentParentShardId`).
    async fn lineage(&self) -> Vec<(String, Vec<String>)> {
        let listed = self
            .kinesis
            .list_shards()
            .stream_name(&self.stream)
            .send()
            .await
            .unwrap();
        listed
            .shards()
            .iter()
            .map(|s| {
                let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect();
                (s.shard_id().to_owned(), parents)
            })
            .collect()
    }

    /// Every record of every shard, in shard order.
    async fn read_back(&self) -> BTreeMap<String, Vec<ReadBack>> {
        let shards = self
            .kinesis
            .list_shards()
            .stream_name(&self.stream)
            .send()
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for s in shards.shards() {
            let mut it = self
                .kinesis
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(s.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap()
                .shard_iterator()
                .map(str::to_owned);
            let mut records = Vec::new();
            let mut empty = 0;
            while let Some(i) = it {
                let page = self
                    .kinesis
                    .get_records()
                    .shard_iterator(i)
                    .send()
                    .await
                    .unwrap();
                for r in page.records() {
                    let at = r.approximate_arrival_timestamp().expect("arrival time");
                    records.push(ReadBack {
                        seq: format!("{:0>60}", r.sequence_number()),
                        key: r.partition_key().unwrap_or_default().to_owned(),
                        data: r.data().as_ref().to_vec(),
                        arrival: chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos())
                            .expect("in range"),
                    });
                }
                if page.records().is_empty() {
                    empty += 1;
                    if empty >= 2 {
                        break;
                    }
                }
                it = page.next_shard_iterator().map(str::to_owned);
            }
            // Sequence numbers increase along a shard.
            assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
            out.insert(s.shard_id().to_owned(), records);
        }
        out
    }
}

/// Checks a finished replay against the archive: fences first and last on every shard with
/// correct counts, every record once with its key and bytes (plus the annotation), per-key order
/// equal to the archive order.
fn check_replay(shards: &BTreeMap<String, Vec<ReadBack>>, archived: &[Archived]) {
    assert_eq!(shards.len(), 3);
    let by_origin: BTreeMap<(String, u64), &Archived> = archived
        .iter()
        .map(|a| ((a.shard.clone(), a.seq), a))
        .collect();
    let mut seen = BTreeSet::new();
    // Per key: the archive sequence numbers in the order they arrived in the target.
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut total = 0u64;
    for (shard, records) in shards {
        assert!(records.len() >= 2, "{shard} has both fences");
        let marker = |r: &ReadBack| parse_marker(&r.data, DEFAULT_KEY).unwrap();
        let Marker::Fence(open) = marker(&records[0]) else {
            panic!("{shard}: the first record is not the opening fence");
        };
        assert_eq!(
            (open.phase, open.replay_id.as_str()),
            (FencePhase::Open, "INC-7")
        );
        let Marker::Fence(close) = marker(records.last().unwrap()) else {
            panic!("{shard}: the last record is not the closing fence");
        };
        assert_eq!(close.phase, FencePhase::Close);
        let middle = &records[1..records.len() - 1];
        let counts = close.counts.unwrap();
        assert_eq!(counts.records, archived.len() as u64);
        assert_eq!(counts.shard_records, middle.len() as u64, "{shard}");
        for r in middle {
            assert!(
                r.data.len() + r.key.len() <= 1024 * 1024,
                "within the API limit"
            );
            let Marker::Replayed(m) = marker(r) else {
                panic!("{shard}: a record without the replay annotation");
            };
            assert_eq!(m.replay.id, "INC-7");
            let origin_seq: u64 = m.origin.sequence_number.as_str().parse().unwrap();
            let a = by_origin[&(m.origin.shard_id.to_string(), origin_seq)];
            assert!(
                seen.insert((a.shard.clone(), a.seq)),
                "{a:?} replayed twice"
            );
            assert_eq!(r.key, a.key, "original partition key");
            // The payload is the archived bytes with the annotation appended before the brace.
            let text = std::str::from_utf8(&r.data).unwrap();
            let prefix = &a.data[..a.data.len() - 1];
            assert!(
                text.starts_with(prefix) && text[prefix.len()..].starts_with(",\"_flux\":"),
                "{text}"
            );
            order.entry(a.key.clone()).or_default().push(a.seq);
            total += 1;
        }
    }
    assert_eq!(total, archived.len() as u64, "every record exactly once");
    for (key, seqs) in order {
        let expected: Vec<u64> = archived
            .iter()
            .filter(|a| a.key == key)
            .map(|a| a.seq)
            .collect();
        assert_eq!(seqs, expected, "per-key order of {key}");
    }
}

/// The report line `sent N records (…) in S s (R records/s; …)`.
fn sent_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("out: sent "))
        .unwrap_or_else(|| panic!("no report line in {stderr}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_arrives_exactly_once_in_key_order_between_fences_at_the_configured_rate() {
    let s = setup(3).await;
    let archived = archive(600, 40);
    let rps = 50;
    let p = s.pipeline(&archived, &[], |p| {
        p.set("records_per_second_per_shard", rps)
    });
    // Build the binary first so the timing is the run's.
    crate::support::flux_engine_bin();
    let started = Instant::now();
    let (code, _, err) = s.run(&p, &[], None).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{err}");
    let shards = s.read_back().await;
    check_replay(&shards, &archived);
    // The busiest shard bounds the time: one second of burst, then `rps` per second.
    let busiest = shards.values().map(|r| r.len() - 2).max().unwrap() as f64;
    let floor = (busiest - f64::from(rps)) / f64::from(rps);
    let line = sent_line(&err);
    eprintln!(
        "{line} (run took {elapsed:.2}s; busiest shard {busiest} records, floor {floor:.2}s)"
    );
    assert!(
        elapsed >= floor * 0.95,
        "{line}: faster than {rps} records/s per shard"
    );
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_the_share_sent_throttles_and_an_eta_once_compaction_is_done() {
    let s = setup(3).await;
    // 300 keys, each archived twice: compaction keeps the second of each.
    let archived = archive(600, 300);
    let p = s.compacted_pipeline(&archived, |p| p.set("records_per_second_per_shard", 15));
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("[transforms.latest]"), "{text}");
    let proxy = FaultProxy::start(&s.emu.kinesis).await;
    proxy.plan(
        "PutRecords",
        vec![Some(Fault::PartialThrottle { every: 2 })],
    );
    let (code, _, err) = s
        .run(
            &p,
            &["--progress", "log", "--progress-interval", "1"],
            Some(&proxy.url),
        )
        .await;
    assert_eq!(code, 0, "{err}");
    check_replay(&s.read_back().await, &archived[300..]);
    // At 15 records/s on each of 3 shards the 300 winners take ~5 s after the first second's
    // burst: the sink's progress lines carry the total, the throttles and an ETA.
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("of 300 records written"))
        .collect();
    eprintln!("{}", progress.join("\n"));
    assert!(
        progress.iter().any(|l| l.contains("ETA ")),
        "no ETA in {progress:#?}\n{err}"
    );
    assert!(
        progress
            .iter()
            .any(|l| l.contains(" throttled, ") && !l.contains(" 0 throttled")),
        "no throttles in {progress:#?}"
    );
    s.cleanup().await;
}

/// Waits for the run to end; returns (exit code, stderr).
async fn wait(child: std::process::Child) -> (Option<i32>, String) {
    let out = tokio::task::spawn_blocking(move || Ran::from(child.wait_with_output().unwrap()))
        .await
        .unwrap();
    (out.code, out.stderr)
}

/// Polls `done` every 10 ms for up to 30 s.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The report's `shard X: N records landed before its opening fence` lines, by shard.
fn reported_before_fence(stderr: &str) -> BTreeMap<String, usize> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("out: shard ")?;
            let (shard, rest) = rest.split_once(": ")?;
            let n = rest.strip_suffix(
                " records landed before its opening fence (created after the sink last listed the shards)",
            )?;
            Some((shard.to_owned(), n.parse().unwrap()))
        })
        .collect()
}

/// What docs/replay.md ("Check the result") says the stream carries after a replay during which
/// the target was resharded: every shard exactly one opening fence of the replay; every shard
/// open at the end a closing fence, last; a parent closed during the replay none; in every shard
/// the replayed records follow the opening fence, except the first `before_fence[shard]`
/// (revealing records the sink reports), which precede it and have distinct partition keys.
/// Every archived record arrives once, in per-key order. Returns the shards' revealing records.
fn check_fences_across_a_split(
    shards: &BTreeMap<String, Vec<ReadBack>>,
    open_at_end: &BTreeSet<String>,
    archived: &[Archived],
    before_fence: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    let marker = |r: &ReadBack| parse_marker(&r.data, DEFAULT_KEY).unwrap();
    let mut seen = BTreeSet::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut revealing = BTreeMap::new();
    // Shard ids grow with creation, so shard id order reads a parent before its children.
    for (shard, records) in shards {
        let opens: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(marker(r), Marker::Fence(f) if f.phase == FencePhase::Open))
            .map(|(i, _)| i)
            .collect();
        let closes: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(marker(r), Marker::Fence(f) if f.phase == FencePhase::Close))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(opens.len(), 1, "{shard}: one opening fence, at {opens:?}");
        let open = opens[0];
        if open_at_end.contains(shard) {
            assert_eq!(
                closes,
                [records.len() - 1],
                "{shard}: the closing fence is last"
            );
        } else {
            assert!(
                closes.is_empty(),
                "{shard} closed during the replay: no closing fence"
            );
        }
        let early: Vec<&ReadBack> = records[..open]
            .iter()
            .filter(|r| matches!(marker(r), Marker::Replayed(_)))
            .collect();
        let keys: BTreeSet<&str> = early.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys.len(),
            early.len(),
            "{shard}: revealing records, one per key"
        );
        assert_eq!(
            early.len(),
            before_fence.get(shard).copied().unwrap_or(0),
            "{shard}: replayed records before the opening fence, as the sink reports them"
        );
        if !early.is_empty() {
            revealing.insert(shard.clone(), early.len());
        }
        for r in records {
            if let Marker::Replayed(m) = marker(r) {
                let seq: u64 = m.origin.sequence_number.as_str().parse().unwrap();
                assert!(
                    seen.insert((m.origin.shard_id.to_string(), seq)),
                    "twice: {seq}"
                );
                order.entry(r.key.clone()).or_default().push(seq);
            }
        }
    }
    assert_eq!(seen.len(), archived.len(), "every record once");
    for (key, seqs) in order {
        let expected: Vec<u64> = archived
            .iter()
            .filter(|a| a.key == key)
            .map(|a| a.seq)
            .collect();
        assert_eq!(seqs, expected, "per-key order of {key} across the split");
    }
    revealing
}

/// A split the sink notices between PutRecords calls: the listing before the next call (held by
/// the proxy until the split is done) shows the children, which get their opening fence before
/// any record goes to them. Before the sink listed the shards before its calls, 18 to 28 records
/// reached the children ahead of their fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_split_between_calls_is_fenced_before_records_go_to_it() {
    let s = setup(2).await;
    // 300 records at 20 records/s on each of 2 shards: ~7 s.
    let archived = archive(300, 60);
    let p = s.pipeline(&archived, &[], |p| {
        p.set("records_per_second_per_shard", 20)
    });
    let proxy = FaultProxy::start(&s.emu.kinesis).await;
    // A 1 ms delay marks the first PutRecords call.
    proxy.plan(
        "PutRecords",
        vec![Some(Fault::Slow(Duration::from_millis(1)))],
    );
    let child = s.spawn(&p, Some(&proxy.url));
    wait_until("a first PutRecords call", || {
        proxy.injected("PutRecords") == 1
    })
    .await;
    // The next listing waits in the proxy while the stream is split.
    proxy.plan(
        "ListShards",
        vec![Some(Fault::Slow(Duration::from_secs(2)))],
    );
    wait_until("a listing after the first call", || {
        proxy.injected("ListShards") == 1
    })
    .await;
    let parent = emulators::split_first_shard(&s.kinesis, &s.stream).await;
    let (code, err) = wait(child).await;
    assert_eq!(code, Some(0), "{err}");
    let line = sent_line(&err);
    assert!(
        line.contains("on each of 3 shards"),
        "the sink noticed the split: {line}"
    );

    let shards = s.read_back().await;
    assert_eq!(
        shards.len(),
        4,
        "the parent, its two children and the other shard"
    );
    let open_at_end: BTreeSet<String> = shards
        .keys()
        .filter(|id| id.as_str() != parent.shard_id())
        .cloned()
        .collect();
    let reported = reported_before_fence(&err);
    let revealing = check_fences_across_a_split(&shards, &open_at_end, &archived, &reported);
    assert!(
        revealing.is_empty(),
        "no record reached a shard before its fence: {revealing:?}\n{err}"
    );
    let children: Vec<&String> = shards
        .keys()
        .filter(|id| id.as_str() > "shardId-000000000001")
        .collect();
    for c in children {
        assert!(
            shards[c]
                .iter()
                .any(|r| matches!(parse_marker(&r.data, DEFAULT_KEY), Ok(Marker::Replayed(_)))),
            "{c} received replayed records after its fence"
        );
    }
    s.cleanup().await;
}

/// A split after the parent's last replayed record: no record reveals the children, yet they
/// carry an opening fence before their closing fence. (They used to get the closing fence
/// only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_after_their_last_replayed_record_get_an_opening_and_a_closing_fence() {
    let s = setup(2).await;
    // Keys that all hash into the second shard's half: nothing goes to the first shard.
    let keys: Vec<String> = (0..)
        .map(|i| format!("c-{i}"))
        .filter(|k| hash_key(k) >= 1u128 << 127)
        .take(30)
        .collect();
    let archived: Vec<Archived> = (0..150)
        .map(|i| Archived {
            shard: "shardId-000000000000".into(),
            seq: 1000 + i as u64,
            key: keys[i % keys.len()].clone(),
            data: format!(r#"{{"order_id":"o-{}","n":{i}}}"#, i % keys.len()),
        })
        .collect();
    let p = s.pipeline(&archived, &[], |p| {
        p.set("records_per_second_per_shard", 20)
    });
    let child = s.spawn(&p, None);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let parent = emulators::split_first_shard(&s.kinesis, &s.stream).await;
    assert_eq!(parent.shard_id(), "shardId-000000000000");
    let (code, err) = wait(child).await;
    assert_eq!(code, Some(0), "{err}");

    let shards = s.read_back().await;
    assert_eq!(shards.len(), 4, "{:?}", shards.keys());
    let open_at_end: BTreeSet<String> = shards
        .keys()
        .filter(|id| id.as_str() != parent.shard_id())
        .cloned()
        .collect();
    check_fences_across_a_split(&shards, &open_at_end, &archived, &BTreeMap::new());
    for (id, records) in &shards {
        if id.as_str() > "shardId-000000000001" {
            assert_eq!(records.len(), 2, "{id}: the two fences only");
        }
    }
    s.cleanup().await;
}

/// A split that completes while a PutRecords call is under way (held by the proxy): Kinesis
/// puts the call's entries for the parent's range on the children, which the sink did not know,
/// ahead of their fence. These revealing records (at most one per key) are what the sink
/// reports; the children are fenced before anything else goes to them. Live records written to
/// the children meanwhile count as after the parent's fence: a consumer following the protocol
/// keeps them over the replay, and holds the replayed record with the newest origin elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_revealing_a_split_precede_the_fence_and_the_documented_state_holds() {
    let s = setup(2).await;
    let archived = archive(300, 60);
    let p = s.pipeline(&archived, &[], |p| {
        p.set("records_per_second_per_shard", 20)
    });
    let proxy = FaultProxy::start(&s.emu.kinesis).await;
    proxy.plan(
        "PutRecords",
        vec![None, Some(Fault::Slow(Duration::from_secs(2)))],
    );
    let child = s.spawn(&p, Some(&proxy.url));
    wait_until("the second PutRecords call", || {
        proxy.injected("PutRecords") == 1
    })
    .await;
    let parent = emulators::split_first_shard(&s.kinesis, &s.stream).await;
    // Live writes during the replay, for every fifth key.
    let live_keys: Vec<usize> = (0..60).step_by(5).collect();
    for k in &live_keys {
        s.kinesis
            .put_record()
            .stream_name(&s.stream)
            .partition_key(format!("c-{k}"))
            .data(Blob::new(format!(r#"{{"order_id":"o-{k}","live":true}}"#)))
            .send()
            .await
            .unwrap();
    }
    let (code, err) = wait(child).await;
    assert_eq!(code, Some(0), "{err}");

    let shards = s.read_back().await;
    assert_eq!(shards.len(), 4, "{:?}", shards.keys());
    let open_at_end: BTreeSet<String> = shards
        .keys()
        .filter(|id| id.as_str() != parent.shard_id())
        .cloned()
        .collect();
    let reported = reported_before_fence(&err);
    let revealing = check_fences_across_a_split(&shards, &open_at_end, &archived, &reported);
    assert!(
        !revealing.is_empty()
            && revealing
                .keys()
                .all(|id| id.as_str() > "shardId-000000000001"),
        "the held call put records on the children before their fence: {revealing:?}\n{err}"
    );
    eprintln!("revealing records per shard: {revealing:?}");

    // A consumer of the stream, reading parents before children.
    let mut reconciler = Reconciler::new(&s.stream);
    for (id, parents) in s.lineage().await {
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        reconciler.add_shard(&id, &parents);
    }
    let mut state: BTreeMap<String, (Stamp, serde_json::Value)> = BTreeMap::new();
    for (shard, records) in &shards {
        for r in records {
            let seq = SequenceNumber::parse(r.seq.trim_start_matches('0')).unwrap();
            let Observed::Record(stamp) =
                reconciler.observe(shard, &seq, r.arrival, &r.data).unwrap()
            else {
                continue;
            };
            let live = !matches!(parse_marker(&r.data, DEFAULT_KEY), Ok(Marker::Replayed(_)));
            assert_eq!(
                stamp.epoch,
                u32::from(live),
                "{shard}: live records follow the replay's fence, replayed ones count it not"
            );
            let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
            let key = v["order_id"].as_str().unwrap().to_owned();
            if reconciler.should_apply(&stamp, state.get(&key).map(|(s, _)| s)) {
                state.insert(key, (stamp, v));
            }
        }
    }
    for k in 0..60 {
        let held = &state[&format!("o-{k}")].1;
        if live_keys.contains(&k) {
            assert_eq!(held["live"], true, "o-{k}: the live record after the fence");
        } else {
            let last = archived
                .iter()
                .rev()
                .find(|a| a.key == format!("c-{k}"))
                .unwrap();
            let n: u64 = last.seq - 1000;
            assert_eq!(
                held["n"], n,
                "o-{k}: the replayed record with the newest origin"
            );
        }
    }
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_partial_failures_keep_every_record_and_the_key_order() {
    let s = setup(3).await;
    let archived = archive(400, 25);
    let p = s.pipeline(&archived, &[], |p| p);
    let proxy = FaultProxy::start(&s.emu.kinesis).await;
    use Fault::*;
    proxy.plan(
        "PutRecords",
        vec![
            Some(PartialThrottle { every: 3 }),
            Some(PartialThrottle { every: 2 }),
            Some(Throttle),
            None,
            Some(PartialThrottle { every: 1 }),
            Some(PartialThrottle { every: 4 }),
            Some(ServerError),
            Some(PartialThrottle { every: 2 }),
            None,
            Some(PartialThrottle { every: 5 }),
        ],
    );
    let (code, _, err) = s.run(&p, &[], Some(&proxy.url)).await;
    assert_eq!(code, 0, "{err}");
    check_replay(&s.read_back().await, &archived);
    assert_eq!(proxy.injected("PutRecords"), 8);
    let line = sent_line(&err);
    assert!(!line.contains(" 0 throttled"), "{line}");
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_record_is_dead_lettered_and_not_sent() {
    let s = setup(3).await;
    let archived = archive(30, 5);
    let big = Archived {
        shard: "shardId-000000000000".into(),
        seq: 5000,
        key: "big".into(),
        data: format!(
            r#"{{"order_id":"big","pad":"{}"}}"#,
            "x".repeat(1024 * 1024)
        ),
    };
    let p = s.pipeline(&archived, &[envelope(&big)], |p| p);
    let (code, _, err) = s.run(&p, &[], None).await;
    assert_eq!(code, 0, "{err}");
    let dlq = std::fs::read_to_string(s.dir.path().join("dlq.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{dlq:.300}");
    assert_eq!(lines[0]["partition_key"], "big");
    let reason = lines[0]["annotations"]["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("record too large for Kinesis"), "{reason}");
    check_replay(&s.read_back().await, &archived);
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unannotated_records_are_refused_when_fences_are_on() {
    let s = setup(3).await;
    let input = s.dir.path().join("plain.jsonl");
    std::fs::write(
        &input,
        archive(5, 2)
            .iter()
            .map(envelope)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let p = Pipeline::new("plain")
        .source("a", "file")
        .set("path", &input)
        .set("format", "envelope")
        .sink("out", "kinesis", &["a"])
        .set("stream", &s.stream)
        .set("replay_id", "INC-7")
        .set("mode", "fill")
        .write(s.dir.path());
    let (code, _, err) = s.run(p.to_str().unwrap(), &[], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("no `_flux.replay` annotation"), "{err}");
    // Only the opening fences were written: no replayed record.
    for records in s.read_back().await.values() {
        assert!(
            records
                .iter()
                .all(|r| matches!(parse_marker(&r.data, DEFAULT_KEY), Ok(Marker::Fence(_))))
        );
    }
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_nothing_and_prints_its_plan() {
    let s = setup(3).await;
    let archived = archive(90, 9);
    let p = s.pipeline(&archived, &[], |p| p);
    let (code, out, err) = s.run(&p, &["--dry-run"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "out: dry run: nothing sent to stream {}",
            s.stream
        )),
        "{out}"
    );
    let mut per_shard = 0;
    for l in out.lines().filter(|l| l.starts_with("out: shard shardId-")) {
        let n: u64 = l
            .split(": ")
            .nth(2)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        per_shard += n;
    }
    assert_eq!(per_shard, 90, "{out}");
    assert!(out.contains("out: total: 90 records"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("out: sample: "))
            .count(),
        3,
        "{out}"
    );
    // Samples are whole payloads as they would be sent, the replay annotation visible.
    for l in out.lines().filter(|l| l.starts_with("out: sample: ")) {
        let payload = l.split_once("bytes): ").unwrap().1;
        let v: serde_json::Value =
            serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["_flux"]["replay"]["id"], "INC-7", "{l}");
    }
    // The plan is printed once: on standard output, not in the log or summary on stderr.
    assert!(
        !err.contains("shard shardId-") && !err.contains("sample:"),
        "{err}"
    );
    assert!(err.contains("the plan is on standard output"), "{err}");
    // A dry run writes nothing: not the dead-letter file either.
    assert!(
        !s.dir.path().join("dlq.jsonl").exists(),
        "the dry run wrote dlq.jsonl"
    );
    assert!(
        err.contains("dlq: dry run: wrote nothing; would write 0 records"),
        "{err}"
    );
    let shards = s.read_back().await;
    assert_eq!(shards.len(), 3);
    assert!(
        shards.values().all(Vec::is_empty),
        "the dry run wrote to the stream"
    );
    s.cleanup().await;
}

/// Ctrl-C during a slow replay (2 records/s) stops the sending within the call in flight: the
/// run exits with 130, reports what it sent and what it did not (adding up to everything it
/// had to send), writes no closing fence, and the stream holds exactly the records it reported
/// as sent after each shard's opening fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_replay_promptly_and_reports_what_was_not_sent() {
    let s = setup(2).await;
    let archived = archive(77, 77);
    let p = s.compacted_pipeline(&archived, |p| p.set("records_per_second_per_shard", 1));
    let child = s.spawn(&p, None);
    // Wait until replayed records arrive (the opening fences, then the first second's burst).
    let start = Instant::now();
    loop {
        let replayed = s
            .read_back()
            .await
            .values()
            .flatten()
            .filter(|r| !String::from_utf8_lossy(&r.data).contains("\"fence\""))
            .count();
        if replayed >= 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no records sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill(&child, "INT");
    let (code, err) = wait(child).await;
    assert_eq!(code, Some(130), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("stopped by a signal: sent "))
        .unwrap_or_else(|| panic!("no stop report in {err}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (sent, not_sent) = (numbers[0], numbers[1]);
    assert_eq!(sent + not_sent, 77, "{line}");
    assert!(not_sent > 0, "it sent everything: {line}");
    assert!(err.contains("replay INC-7 is incomplete"), "{err}");
    let shards = s.read_back().await;
    let mut replayed = 0;
    for records in shards.values() {
        let texts: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect();
        assert!(
            texts
                .first()
                .is_some_and(|t| t.contains("\"phase\":\"open\"")),
            "each shard starts with its opening fence: {texts:?}"
        );
        assert!(
            texts.iter().all(|t| !t.contains("\"phase\":\"close\"")),
            "no closing fence: {texts:?}"
        );
        replayed += texts.iter().filter(|t| !t.contains("\"fence\"")).count() as u64;
    }
    assert_eq!(
        replayed, sent,
        "the stream holds what the report says was sent"
    );
    s.cleanup().await;
}

/// Issue 13: a replay with nothing to send fails before writing a fence when the sink requires
/// records (the replay template's default), dry run or not; without it an empty replay succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_nothing_to_send_fails_before_any_fence_when_records_are_required() {
    let s = setup(2).await;
    let p = s.pipeline(&[], &[], |p| p.set("require_records", true));
    for args in [&["--dry-run"][..], &[]] {
        let (code, _, err) = s.run(&p, args, None).await;
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains("received no records to send to stream") && err.contains(&s.stream),
            "{err}"
        );
    }
    assert!(
        s.read_back().await.values().all(Vec::is_empty),
        "nothing, not even a fence, was written"
    );
    let p = s.pipeline(&[], &[], |p| p);
    let (code, _, err) = s.run(&p, &[], None).await;
    assert_eq!(code, 0, "{err}");
    s.cleanup().await;
}

/// Issue 13: a dry run without Kinesis. `--shards-file` (a saved ListShards response, as the AWS
/// CLI prints it) and `--shards N` (equal ranges, as CreateStream makes them) give the same plan
/// as a dry run that lists the stream, with the Kinesis endpoint unreachable; bad values are
/// usage errors naming the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_dry_run_plans_like_a_listed_one_without_kinesis() {
    let s = setup(4).await;
    let archived = archive(120, 17);
    let p = s.pipeline(&archived, &[], |p| p);
    let plan = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("out: shard ") || l.starts_with("out: total: "))
            .map(str::to_owned)
            .collect()
    };
    let (code, out, err) = s.run(&p, &["--dry-run"], None).await;
    assert_eq!(code, 0, "{err}");
    let listed = plan(&out);
    assert_eq!(listed.len(), 5, "{out}");
    assert!(out.contains("out: total: 120 records"), "{out}");

    // The stream's shards as `aws kinesis list-shards` prints them.
    let shards = s
        .kinesis
        .list_shards()
        .stream_name(&s.stream)
        .send()
        .await
        .unwrap();
    let listing = serde_json::json!({
        "Shards": shards.shards().iter().map(|sh| {
            let range = sh.hash_key_range().unwrap();
            serde_json::json!({
                "ShardId": sh.shard_id(),
                "HashKeyRange": {
                    "StartingHashKey": range.starting_hash_key(),
                    "EndingHashKey": range.ending_hash_key(),
                },
                "SequenceNumberRange": {
                    "StartingSequenceNumber": sh.sequence_number_range().unwrap().starting_sequence_number(),
                },
            })
        }).collect::<Vec<_>>()
    });
    let file = s.dir.path().join("shards.json");
    std::fs::write(&file, serde_json::to_string_pretty(&listing).unwrap()).unwrap();
    // Nothing listens there: any AWS call would fail the run.
    let dead = Some("http://127.0.0.1:9");
    let file_arg = file.to_str().unwrap();
    for args in [
        &["--dry-run", "--shards-file", file_arg][..],
        &["--dry-run", "--shards", "4"],
    ] {
        let (code, out, err) = s.run(&p, args, dead).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(plan(&out), listed, "{args:?}");
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("out: sample: "))
                .count(),
            3,
            "{out}"
        );
    }
    // Usage errors: exit 2, naming the flag (or the file).
    for (args, says) in [
        (&["--shards", "4"][..], "--dry-run"),
        (&["--dry-run", "--shards", "0"], "--shards 0"),
        (
            &["--dry-run", "--shards", "4", "--shards-file", file_arg],
            "cannot be used with",
        ),
        (
            &["--dry-run", "--shards-file", "nope.json"],
            "--shards-file nope.json",
        ),
    ] {
        let (code, _, err) = s.run(&p, args, dead).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    std::fs::write(&file, r#"{"Shards": [{"ShardId": "a", "HashKeyRange": {"StartingHashKey": "5", "EndingHashKey": "9"}}]}"#).unwrap();
    let (code, _, err) = s
        .run(&p, &["--dry-run", "--shards-file", file_arg], dead)
        .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("do not cover"), "{err}");
    let shards_now = s.read_back().await;
    assert!(
        shards_now.values().all(Vec::is_empty),
        "a dry run wrote to the stream"
    );
    s.cleanup().await;
}
