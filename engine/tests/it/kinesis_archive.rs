//! Archival from Kinesis to S3 through the real binary, against the emulators (kinesis-local
//! and moto_server on loopback): every record lands once, byte for byte, reruns archive only
//! what is new, and per-key order survives resharding.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::support::emulators::{self, Emulators, unique};
use crate::support::records::n_payload;
use crate::support::run::{files_under, gunzip_lines, kill, read_jsonl};
use crate::support::{Flux, Pipeline, Ran, incompressible};
use aws_sdk_kinesis::primitives::Blob;

/// What was put: (shard, sequence number, sub-sequence number) → (partition key, bytes).
type SubPut = BTreeMap<(String, String, Option<u64>), (String, Vec<u8>)>;

/// What was put: (shard, sequence number) → (partition key, bytes).
pub(crate) type Put = BTreeMap<(String, String), (String, Vec<u8>)>;

/// Sequence numbers (up to 128 bits of decimal) padded so string order is numeric order.
pub(crate) fn seq(s: &str) -> String {
    format!("{s:0>60}")
}

struct Setup {
    emu: Emulators,
    kinesis: aws_sdk_kinesis::Client,
    s3: aws_sdk_s3::Client,
    stream: String,
    bucket: String,
    dir: tempfile::TempDir,
}

async fn setup(shards: i32) -> Setup {
    let emu = emulators::get();
    let kinesis = emu.kinesis().await;
    let s3 = emu.s3().await;
    let stream = unique("orders");
    let bucket = unique("archive");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    emulators::create_stream(&kinesis, &stream, shards).await;
    Setup {
        emu,
        kinesis,
        s3,
        stream,
        bucket,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    async fn put(&self, key: &str, data: Vec<u8>, put: &mut Put) {
        let out = self
            .kinesis
            .put_record()
            .stream_name(&self.stream)
            .partition_key(key)
            .data(Blob::new(data.clone()))
            .send()
            .await
            .unwrap();
        put.insert(
            (out.shard_id().to_owned(), seq(out.sequence_number())),
            (key.to_owned(), data),
        );
    }

    /// The archiver of this stream into `s3://BUCKET/archive`.
    fn pipeline(&self) -> Pipeline {
        Pipeline::kinesis_archiver(
            "archive",
            &self.stream,
            &format!("s3://{}/archive", self.bucket),
        )
        .set("max_records", 40)
    }

    /// [`Setup::pipeline`] reading on at the tip (`stop = "never"`, a checkpoint every second),
    /// written into the test's directory.
    fn continuous_pipeline(&self) -> std::path::PathBuf {
        self.pipeline()
            .stage("stream")
            .set("stop", "never")
            .set("checkpoint_interval", "1s")
            .write(self.dir.path())
    }

    /// Starts `flux-engine GLOBAL… run CONTINUOUS-PIPELINE ARGS…` (logging at info) with its
    /// outputs piped.
    fn spawn_continuous(&self, global: &[&str], args: &[&str]) -> std::process::Child {
        Flux::new()
            .args(global)
            .arg("run")
            .arg(self.continuous_pipeline())
            .args(args)
            .emulators(&self.emu)
            .env("RUST_LOG", "info")
            .current_dir(self.dir.path())
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn run(&self) -> (i32, String) {
        let ran = self.flux(&self.pipeline()).run();
        (ran.code_or_signal(), ran.stderr)
    }

    /// A run of `pipeline` (written into the test's directory) against the emulators.
    fn flux(&self, pipeline: &Pipeline) -> Flux {
        Flux::run_pipeline(pipeline.write(self.dir.path()))
            .emulators(&self.emu)
            .current_dir(self.dir.path())
    }

    /// Every envelope in the archive, by object.
    async fn archived(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        self.objects_under("archive").await
    }

    /// Every envelope of this stream's archive under `prefix`, by object.
    async fn objects_under(&self, prefix: &str) -> BTreeMap<String, Vec<serde_json::Value>> {
        let mut out = BTreeMap::new();
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{prefix}/stream={}/", self.stream))
            .send()
            .await
            .unwrap();
        for obj in listed.contents() {
            let key = obj.key().unwrap().to_owned();
            let body = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
            out.insert(
                key,
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect(),
            );
        }
        out
    }

    /// The archive as (shard, sequence) → (key, bytes), asserting no record appears twice.
    async fn archived_records(&self) -> Put {
        self.archived_under("archive").await
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = T.iter().position(|t| *t == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

/// JSON payloads are compared as JSON values (the envelope embeds them verbatim; the test
/// payloads are canonical compact JSON, so the bytes are the same).
fn canonical(data: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) if !data.contains(&b'\n') => serde_json::to_vec(&v).unwrap(),
        _ => data.to_vec(),
    }
}

pub(crate) fn normalise(p: &Put) -> Put {
    p.iter()
        .map(|(k, (key, d))| (k.clone(), (key.clone(), canonical(d))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_archived_once_byte_for_byte_and_reruns_add_only_new_ones() {
    let s = setup(4).await;
    let mut put = Put::new();
    for i in 0..60 {
        let key = ["kunde-Zoë", "клиент-1", "顧客-2", "emoji-🚀", "c-5"][i % 5];
        s.put(
            key,
            format!(r#"{{"order_id":"o-{i}","n":{i},"note":"Zoë 王"}}"#).into_bytes(),
            &mut put,
        )
        .await;
    }
    for i in 0..5u8 {
        s.put(
            &format!("bin-{i}"),
            vec![0xff, 0x00, i, b'\n', 0xc3],
            &mut put,
        )
        .await;
        s.put(
            &format!("text-{i}"),
            format!("plain text {i}\twith tab").into_bytes(),
            &mut put,
        )
        .await;
    }
    // A record at the size limit (1 MiB including the key).
    let big_key = "big";
    let mut big = br#"{"big":""#.to_vec();
    big.resize(1024 * 1024 - big_key.len() - 2, b'x');
    big.extend_from_slice(br#""}"#);
    s.put(big_key, big, &mut put).await;

    let (code, err) = s.run();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        normalise(&s.archived_records().await),
        normalise(&put),
        "the archive equals what was put"
    );
    // Checkpoints exist for every shard that had records.
    let shards: std::collections::BTreeSet<&String> = put.keys().map(|(s, _)| s).collect();
    for shard in shards {
        let cp =
            s.s3.get_object()
                .bucket(&s.bucket)
                .key(format!(
                    "archive/_flux/checkpoints/stream={}/{shard}.json",
                    s.stream
                ))
                .send()
                .await;
        assert!(cp.is_ok(), "checkpoint of {shard}");
    }

    // A second run archives only what arrived since.
    let (code, err) = s.run();
    assert_eq!(code, 0, "{err}");
    let sink = err.lines().find(|l| l.starts_with("sink")).unwrap();
    assert_eq!(
        sink.split_whitespace().nth(3),
        Some("0"),
        "nothing new: {err}"
    );
    // The quiet run still leaves its manifest, saying it archived nothing.
    let listed =
        s.s3.list_objects_v2()
            .bucket(&s.bucket)
            .prefix(format!("archive/_flux/runs/stream={}/", s.stream))
            .send()
            .await
            .unwrap();
    let mut records = Vec::new();
    for o in listed.contents() {
        let body =
            s.s3.get_object()
                .bucket(&s.bucket)
                .key(o.key().unwrap())
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
        let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(m["status"], "completed");
        records.push(m["records"].as_u64().unwrap());
    }
    records.sort_unstable();
    assert_eq!(records.len(), 2, "one manifest per run: {records:?}");
    assert_eq!(records[0], 0, "the quiet run's manifest: {records:?}");
    assert!(records[1] > 0);
    for i in 60..80 {
        s.put(&format!("c-{}", i % 7), n_payload(i), &mut put).await;
    }
    let (code, err) = s.run();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("archived 20 records"), "{err}");
    assert_eq!(normalise(&s.archived_records().await), normalise(&put));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_survives_a_split_and_a_merge() {
    let s = setup(2).await;
    let mut put = Put::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut n = 0u64;
    let mut put_some = |count: usize| {
        let mut batch = Vec::new();
        for _ in 0..count {
            let key = format!("k-{}", n % 9);
            order.entry(key.clone()).or_default().push(n);
            batch.push((key, n_payload(n)));
            n += 1;
        }
        batch
    };
    for (k, d) in put_some(40) {
        s.put(&k, d, &mut put).await;
    }
    // Split the first shard in two.
    let first = emulators::split_first_shard(&s.kinesis, &s.stream).await;
    emulators::wait_active(&s.kinesis, &s.stream).await;
    for (k, d) in put_some(40) {
        s.put(&k, d, &mut put).await;
    }
    // Merge the two children again.
    let open: Vec<_> = s
        .kinesis
        .list_shards()
        .stream_name(&s.stream)
        .send()
        .await
        .unwrap()
        .shards()
        .iter()
        .filter(|sh| {
            sh.sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_none()
        })
        .filter(|sh| sh.parent_shard_id() == Some(first.shard_id()))
        .cloned()
        .collect();
    assert_eq!(open.len(), 2, "two children of the split");
    s.kinesis
        .merge_shards()
        .stream_name(&s.stream)
        .shard_to_merge(open[0].shard_id())
        .adjacent_shard_to_merge(open[1].shard_id())
        .send()
        .await
        .unwrap();
    emulators::wait_active(&s.kinesis, &s.stream).await;
    for (k, d) in put_some(40) {
        s.put(&k, d, &mut put).await;
    }

    let (code, err) = s.run();
    assert_eq!(code, 0, "{err}");
    let archived = s.archived_records().await;
    assert_eq!(normalise(&archived), normalise(&put));
    // Per partition key, the archive's order (object order, then line order, as a reader that
    // reads parents before children sees it) equals the put order.
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut by_arrival: Vec<(String, String, String, u64)> = Vec::new();
    for envs in s.archived().await.values() {
        for e in envs {
            by_arrival.push((
                e["arrival_ts"].as_str().unwrap().to_owned(),
                e["shard_id"].as_str().unwrap().to_owned(),
                seq(e["sequence_number"].as_str().unwrap()),
                e["data"]["n"].as_u64().unwrap(),
            ));
        }
    }
    by_arrival.sort();
    for (_, _, _, n) in &by_arrival {
        seen.entry(format!("k-{}", n % 9)).or_default().push(*n);
    }
    assert_eq!(seen, order);

    // The order in which the source delivers: a file sink keeps it exactly. Parents are read to
    // their end before their children, so each key's records come in put order.
    s.flux(
        &Pipeline::new("to-file")
            .source("stream", "kinesis")
            .set("stream", &s.stream)
            .set("poll_interval", "20ms")
            .set("idle_interval", "50ms")
            .sink("out", "file", &["stream"])
            .set("path", "delivered.jsonl"),
    )
    .run()
    .success();
    let mut delivered: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in read_jsonl(s.dir.path().join("delivered.jsonl")) {
        delivered
            .entry(e["partition_key"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["data"]["n"].as_u64().unwrap());
    }
    assert_eq!(delivered, order, "per-key delivery order equals put order");
}

impl Setup {
    fn run_with(&self, prefix: &str, fault: Option<&str>) -> (Option<i32>, String) {
        let url = format!("s3://{}/{prefix}", self.bucket);
        let ran = self
            .flux(&self.leased_archiver(prefix, &url))
            .fault(fault)
            .run();
        (ran.code, ran.stderr)
    }

    /// An archiver of this stream into `url` writing small uncompressed objects, its lease
    /// lasting 1 s.
    fn leased_archiver(&self, name: &str, url: &str) -> Pipeline {
        Pipeline::kinesis_archiver(name, &self.stream, url)
            .set("max_records", 25)
            .set("max_bytes", "64MiB")
            .set("gzip_level", 0)
            .set("lease_ttl", "1s")
    }

    /// This stream's archive under `prefix` as (shard, sequence) → (key, bytes), asserting no
    /// record appears twice.
    async fn archived_under(&self, prefix: &str) -> Put {
        records_of(prefix, self.objects_under(prefix).await)
    }

    /// An archive run of this stream into `url` (`lease_ttl = "1s"`), not started yet.
    fn archiver(&self, url: &str, fault: Option<&str>) -> std::process::Command {
        let name = format!(
            "archiver-{}",
            url.len() + url.bytes().map(usize::from).sum::<usize>()
        );
        self.flux(&self.leased_archiver(&name, url))
            .fault(fault)
            .command()
    }

    /// This stream's archive in a local directory, as [`Setup::archived_under`] reads S3.
    fn archived_in_dir(&self, root: &Path) -> Put {
        let objects = files_under(&root.join(format!("stream={}", self.stream)))
            .into_iter()
            .map(|f| {
                let envs = gunzip_lines(&f)
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                (f.display().to_string(), envs)
            })
            .collect();
        records_of(&root.display().to_string(), objects)
    }
}

/// The records of an archive's objects as (shard, sequence) → (key, bytes), asserting that no
/// record appears twice.
pub(crate) fn records_of(what: &str, objects: BTreeMap<String, Vec<serde_json::Value>>) -> Put {
    let mut got = Put::new();
    for (key, envs) in objects {
        for e in envs {
            let data = match (&e["data"], &e["data_b64"]) {
                (serde_json::Value::Null, serde_json::Value::String(b)) => base64_decode(b),
                (d, serde_json::Value::Null) => serde_json::to_vec(d).unwrap(),
                _ => panic!("envelope with both data and data_b64 in {key}"),
            };
            let id = (
                e["shard_id"].as_str().unwrap().to_owned(),
                seq(e["sequence_number"].as_str().unwrap()),
            );
            let prev = got.insert(
                id.clone(),
                (e["partition_key"].as_str().unwrap().to_owned(), data),
            );
            assert!(prev.is_none(), "{what}: {id:?} archived twice ({key})");
        }
    }
    got
}

/// Reads a child's standard error on a thread as it comes, showing each line to `on_line`;
/// the thread returns the whole log.
fn read_log(
    child: &mut std::process::Child,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            on_line(&line);
            log.push_str(&line);
            log.push('\n');
        }
        log
    })
}

/// Waits until a process is stopped (state `T` in /proc), or fails if it exits first.
fn wait_stopped(child: &mut std::process::Child) {
    let stat = format!("/proc/{}/stat", child.id());
    for _ in 0..6000 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the paused archiver exited ({status}) before reaching its pause point");
        }
        let state = std::fs::read_to_string(&stat).unwrap_or_default();
        if state
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('T'))
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the archiver did not reach its pause point within a minute");
}

/// A writer that lost its lease without knowing it (SIGSTOP: a GC pause, a frozen VM, a stopped
/// container) at each point of the write path — before its object, between object and
/// checkpoint, inside a multipart upload, between commit and promotion — while another run
/// takes the stream over, archives to the tip and releases the lease; then more records arrive,
/// the paused writer goes on (SIGCONT), and a third run archives. On S3 and on a local
/// directory, every record is in the archive exactly once: no duplicate, no hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_archiver_that_lost_its_lease_leaves_no_duplicate_and_no_hole() {
    // Small records for most points; large incompressible ones (on a stream of their own) only
    // for the pause inside a multipart upload: with gzip_level 0 that shard's first object
    // passes the multipart threshold (16 MiB).
    let small = setup(2).await;
    let big = setup(1).await;
    let mut small_put = Put::new();
    for i in 0..120 {
        small
            .put(&format!("c-{}", i % 7), n_payload(i), &mut small_put)
            .await;
    }
    let mut big_put = Put::new();
    let mut seed = 0x2545_f491_u32;
    for _ in 0..17 {
        big.put("big", incompressible(1_000_000, &mut seed), &mut big_put)
            .await;
    }
    for i in 0..10 {
        big.put("c", n_payload(i), &mut big_put).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for point in ["before_object:2", "after_object:2", "after_checkpoint:2"] {
        let url = format!("s3://{}/pause-{}", small.bucket, cases.len());
        cases.push((&small, point, url, None));
    }
    cases.push((
        &big,
        "mid_multipart:1",
        format!("s3://{}/pause-{}", big.bucket, cases.len()),
        None,
    ));
    for point in ["before_object:2", "after_object:2", "after_checkpoint:2"] {
        let root = dir.path().join(format!("pause-{}", cases.len()));
        cases.push((
            &small,
            point,
            format!("file://{}", root.display()),
            Some(root),
        ));
    }
    let mut puts = [small_put, big_put];
    let mut more = 0;
    for (s, point, url, local) in cases {
        let put = &mut puts[usize::from(std::ptr::eq(s, &big))];
        let mut a = s
            .archiver(&url, Some(&format!("{point}:stop")))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_stopped(&mut a);
        // The stopped run cannot renew its lease (lease_ttl = 1s): it lapses.
        tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
        let b = Ran::from(s.archiver(&url, None).output().unwrap());
        let diag = || {
            let pid = a.id();
            let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect();
            let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                    let wchan = std::fs::read_to_string(e.path().join("wchan")).unwrap_or_default();
                    format!(
                        "{} [{wchan}]",
                        stat.split(' ').take(3).collect::<Vec<_>>().join(" ")
                    )
                })
                .collect();
            let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
            format!("A pid {pid} fds {fds:?} tasks {tasks:?} locks:\n{locks}")
        };
        assert_eq!(
            b.code,
            Some(0),
            "{point} {url}: run B: {}\n{}",
            b.stderr,
            diag()
        );
        for _ in 0..30 {
            s.put(
                &format!("m-{}", more % 5),
                format!(r#"{{"more":{more}}}"#).into_bytes(),
                put,
            )
            .await;
            more += 1;
        }
        kill(&a, "CONT");
        let a_err = Ran::from(a.wait_with_output().unwrap()).stderr;
        assert!(
            a_err.contains("FLUX_FAULT: stopping at"),
            "{point}: {a_err}"
        );
        let c = Ran::from(s.archiver(&url, None).output().unwrap());
        assert_eq!(c.code, Some(0), "{point} {url}: run C: {}", c.stderr);
        let archived = match &local {
            Some(root) => s.archived_in_dir(root),
            None => {
                s.archived_under(url.trim_start_matches(&format!("s3://{}/", s.bucket)))
                    .await
            }
        };
        assert_eq!(
            normalise(&archived),
            normalise(put),
            "{point} {url}: every record exactly once (paused run A: {a_err})"
        );
    }
}

/// The archive run is killed at each crash point (before/after a data object, after a
/// checkpoint, in the middle of a multipart upload, before the manifest); a plain rerun then
/// leaves every record archived exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_point_then_a_rerun_archives_everything_exactly_once() {
    let s = setup(1).await;
    let mut put = Put::new();
    for i in 0..60 {
        s.put(&format!("c-{}", i % 4), n_payload(i), &mut put).await;
    }
    // Large incompressible records: with gzip_level 0 the third object passes the multipart
    // threshold (16 MiB).
    let mut seed = 0x9e37_79b9_u32;
    for i in 0..16 {
        let data = incompressible(1_000_000, &mut seed);
        s.put(&format!("big-{i}"), data, &mut put).await;
    }
    let expected = normalise(&put);
    let points = [
        "before_object:2",
        "after_object:1",
        "after_object:3",
        "after_checkpoint:2",
        "mid_multipart:1",
        "before_manifest:1",
    ];
    for (i, point) in points.iter().enumerate() {
        let prefix = format!("crash{i}");
        let (code, err) = s.run_with(&prefix, Some(point));
        assert_ne!(code, Some(0), "{point}: the run must have crashed: {err}");
        assert!(err.contains("FLUX_FAULT: crashing at"), "{point}: {err}");
        // The crashed run's lease lapses (lease_ttl = 1s) before the rerun takes the stream.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (code, err) = s.run_with(&prefix, None);
        assert_eq!(code, Some(0), "{point}: rerun: {err}");
        assert_eq!(
            normalise(&s.archived_under(&prefix).await),
            expected,
            "{point}: exactly once after the rerun"
        );
    }
}

/// Two archivers started on one stream at the same moment: one holds the lease, the other
/// stops before writing; the archive holds every record once either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_archivers_at_once_still_archive_each_record_once() {
    let s = setup(2).await;
    let mut put = Put::new();
    for i in 0..150 {
        s.put(&format!("c-{}", i % 11), n_payload(i), &mut put)
            .await;
    }
    let expected = normalise(&put);
    for round in 0..3 {
        let prefix = format!("race{round}");
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| s.run_with(&prefix, None));
            let b = scope.spawn(|| s.run_with(&prefix, None));
            (a.join().unwrap(), b.join().unwrap())
        });
        let outcomes = [a, b];
        for (code, err) in &outcomes {
            assert!(
                *code == Some(0)
                    || err.contains("is being archived by run")
                    || err.contains("moved by another archiver"),
                "round {round}: unexpected failure: {err}"
            );
        }
        assert!(
            outcomes.iter().any(|(c, _)| *c == Some(0)),
            "round {round}: one archiver succeeds"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        // Whatever happened, a rerun completes the archive, and nothing is doubled.
        let (code, err) = s.run_with(&prefix, None);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(
            normalise(&s.archived_under(&prefix).await),
            expected,
            "round {round}"
        );
    }
}

/// A checkpoint whose record is gone from the stream (expired) means records may have expired
/// unarchived: the run refuses loudly, or with `allow_gaps = true` records the gap and archives
/// what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_after_the_checkpoint_is_reported_not_papered_over() {
    let s = setup(1).await;
    let mut put = Put::new();
    for i in 0..10 {
        s.put("k", n_payload(i), &mut put).await;
    }
    let shard = put.keys().next().unwrap().0.clone();
    // An archive whose checkpoint points before the oldest record still in the stream, as after
    // a run that came later than the retention period.
    let archive = s.dir.path().join("gapped");
    let cp_dir = archive.join(format!("_flux/checkpoints/stream={}", s.stream));
    std::fs::create_dir_all(&cp_dir).unwrap();
    std::fs::write(
        cp_dir.join(format!("{shard}.json")),
        serde_json::to_vec(&serde_json::json!({
            "stream": s.stream, "shard_id": shard, "sequence_number": "1",
            "arrival_ts": "2026-01-01T00:00:00.000Z", "object": "gone", "run_id": "old",
            "updated_at": "2026-01-01T00:00:00.000Z"
        }))
        .unwrap(),
    )
    .unwrap();
    let run = |allow: bool| {
        let url = format!("file://{}", archive.display());
        let p = Pipeline::kinesis_archiver("gap", &s.stream, &url)
            .stage("stream")
            .set("allow_gaps", allow);
        let ran = s.flux(&p).run();
        (ran.code, ran.stderr)
    };
    let (code, err) = run(false);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("GAP: records of stream"), "{err}");
    // The checkpoint was last moved long ago: the retention warning says so before the gap.
    assert!(
        err.contains("was last advanced") && err.contains("keeps records for 24h"),
        "{err}"
    );
    assert!(err.contains(&shard), "{err}");
    let (code, err) = run(true);
    assert_eq!(code, Some(0), "{err}");
    let gaps: Vec<_> = std::fs::read_dir(archive.join(format!("_flux/gaps/stream={}", s.stream)))
        .unwrap()
        .collect();
    assert_eq!(gaps.len(), 1, "the gap is recorded");
    // ... and named in the run manifest, with per-shard figures.
    let runs: Vec<_> = std::fs::read_dir(archive.join(format!("_flux/runs/stream={}", s.stream)))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&runs[0]).unwrap()).unwrap();
    assert_eq!(manifest["gaps"].as_array().unwrap().len(), 1, "{manifest}");
    assert_eq!(manifest["gaps"][0]["shard_id"], shard.as_str());
    assert_eq!(manifest["shards"][&shard]["records"], 10);
    let seqs: Vec<&String> = put.keys().map(|(_, q)| q).collect();
    assert_eq!(
        seq(manifest["shards"][&shard]["first_sequence_number"]
            .as_str()
            .unwrap()),
        *seqs[0]
    );
    assert_eq!(
        seq(manifest["shards"][&shard]["last_sequence_number"]
            .as_str()
            .unwrap()),
        *seqs[9]
    );
    assert!(
        err.contains("archived 10 records"),
        "what is left is archived: {err}"
    );
}

/// Faults the emulator does not produce, injected by a proxy between the engine and
/// kinesis-local: throttling, 500s, expired iterators and slow answers. The archive still equals
/// what was put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_server_errors_and_expired_iterators_are_survived() {
    use crate::support::fault_proxy::{Fault, FaultProxy};
    let s = setup(2).await;
    let mut put = Put::new();
    for i in 0..60 {
        s.put(&format!("c-{}", i % 5), n_payload(i), &mut put).await;
    }
    let proxy = FaultProxy::start(&s.emu.kinesis).await;
    use Fault::*;
    proxy.plan(
        "GetRecords",
        vec![
            Some(Throttle),
            None,
            Some(ExpiredIterator),
            Some(Throttle),
            Some(Throttle),
            Some(ServerError),
            None,
            Some(ExpiredIterator),
            Some(Slow(std::time::Duration::from_millis(300))),
            Some(Throttle),
        ],
    );
    proxy.plan(
        "GetShardIterator",
        vec![Some(Throttle), None, Some(ServerError)],
    );
    proxy.plan("ListShards", vec![Some(ServerError)]);
    let archive = s.dir.path().join("faulty");
    let url = format!("file://{}", archive.display());
    let run = s
        .flux(&Pipeline::kinesis_archiver("faulty", &s.stream, &url).set("max_records", 7))
        .env("AWS_ENDPOINT_URL_KINESIS", &proxy.url);
    // The proxy runs on this runtime's workers while the engine runs.
    tokio::task::spawn_blocking(move || run.run().success())
        .await
        .unwrap();
    assert!(
        proxy.injected("GetRecords") >= 5,
        "faults were injected: {}",
        proxy.injected("GetRecords")
    );
    assert!(proxy.injected("ListShards") == 1 && proxy.injected("GetShardIterator") >= 2);
    // Read the local archive back.
    let mut got = Put::new();
    let files = files_under(&archive.join(format!("stream={}", s.stream)));
    for f in files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".json.gz"))
    {
        for l in gunzip_lines(f) {
            let e: serde_json::Value = serde_json::from_str(&l).unwrap();
            let id = (
                e["shard_id"].as_str().unwrap().to_owned(),
                seq(e["sequence_number"].as_str().unwrap()),
            );
            let prev = got.insert(
                id.clone(),
                (
                    e["partition_key"].as_str().unwrap().to_owned(),
                    serde_json::to_vec(&e["data"]).unwrap(),
                ),
            );
            assert!(prev.is_none(), "{id:?} twice");
        }
    }
    assert_eq!(normalise(&got), normalise(&put));
}

/// KPL-aggregated records (built here as the KPL builds them) are archived as their user
/// records, each with its own partition key and sub-sequence number; objects never split an
/// aggregate even when `max_records` is reached inside one; reruns skip them; a corrupt aggregate
/// goes to the dead-letter route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpl_aggregates_are_archived_as_their_user_records() {
    use flux_stages::source::kpl;
    let s = setup(2).await;
    // (shard, padded sequence, sub) -> (partition key, bytes)
    let mut expected: SubPut = BTreeMap::new();
    let round = |from: usize| {
        let mut records = Vec::new();
        for a in from..from + 6 {
            let users: Vec<(String, Vec<u8>)> = (0..7)
                .map(|u| {
                    let key = format!("user-{}", (a * 7 + u) % 9);
                    let data = if u == 3 {
                        vec![0xff, 0x00, u as u8, b'\n']
                    } else {
                        format!(r#"{{"agg":{a},"u":{u}}}"#).into_bytes()
                    };
                    (key, data)
                })
                .collect();
            records.push((format!("agg-{a}"), users));
        }
        records
    };
    let put_round = async |from: usize, expected: &mut SubPut| {
        for (agg_key, users) in round(from) {
            let pairs: Vec<(&str, &[u8])> = users
                .iter()
                .map(|(k, d)| (k.as_str(), d.as_slice()))
                .collect();
            let out = s
                .kinesis
                .put_record()
                .stream_name(&s.stream)
                .partition_key(&agg_key)
                .data(Blob::new(kpl::aggregate(&pairs)))
                .send()
                .await
                .unwrap();
            for (i, (k, d)) in users.into_iter().enumerate() {
                expected.insert(
                    (
                        out.shard_id().to_owned(),
                        seq(out.sequence_number()),
                        Some(i as u64),
                    ),
                    (k, d),
                );
            }
            // A plain record between aggregates.
            let plain = format!(r#"{{"plain":"{agg_key}"}}"#).into_bytes();
            let out = s
                .kinesis
                .put_record()
                .stream_name(&s.stream)
                .partition_key(&agg_key)
                .data(Blob::new(plain.clone()))
                .send()
                .await
                .unwrap();
            expected.insert(
                (out.shard_id().to_owned(), seq(out.sequence_number()), None),
                (agg_key, plain),
            );
        }
    };
    put_round(0, &mut expected).await;
    // A corrupt aggregate: right magic, wrong checksum.
    let mut corrupt = kpl::aggregate(&[("x", b"lost?")]);
    let n = corrupt.len();
    corrupt[n - 1] ^= 0x55;
    s.kinesis
        .put_record()
        .stream_name(&s.stream)
        .partition_key("corrupt")
        .data(Blob::new(corrupt.clone()))
        .send()
        .await
        .unwrap();

    let p = Pipeline::kinesis_archiver("kpl", &s.stream, &format!("s3://{}/kpl", s.bucket))
        .set("max_records", 5)
        .sink("corrupt", "file", &["stream.dead_letter"])
        .set("path", "corrupt.jsonl")
        .set("format", "envelope");
    let run = || {
        let ran = s.flux(&p).run();
        (ran.code, ran.stderr)
    };
    let archived = async || {
        let mut got: SubPut = BTreeMap::new();
        for (key, envs) in s.objects_under("kpl").await {
            // An object never splits an aggregate: its name is its first-last sequence numbers.
            let name = key.rsplit('/').next().unwrap();
            let first = envs[0]["sequence_number"].as_str().unwrap();
            let last = envs[envs.len() - 1]["sequence_number"].as_str().unwrap();
            assert_eq!(name, format!("{first}-{last}.json.gz"));
            for e in envs {
                let data = match (&e["data"], &e["data_b64"]) {
                    (serde_json::Value::Null, serde_json::Value::String(b)) => base64_decode(b),
                    (d, serde_json::Value::Null) => serde_json::to_vec(d).unwrap(),
                    _ => panic!("both data and data_b64 in {key}"),
                };
                let id = (
                    e["shard_id"].as_str().unwrap().to_owned(),
                    seq(e["sequence_number"].as_str().unwrap()),
                    e["sub_sequence_number"].as_u64(),
                );
                let prev = got.insert(
                    id.clone(),
                    (e["partition_key"].as_str().unwrap().to_owned(), data),
                );
                assert!(prev.is_none(), "{id:?} archived twice ({key})");
            }
        }
        // Objects of one shard hold disjoint sequence ranges.
        got
    };
    let norm = |m: &SubPut| {
        m.iter()
            .map(|(k, (key, d))| (k.clone(), (key.clone(), canonical(d))))
            .collect::<BTreeMap<_, _>>()
    };

    let (code, err) = run();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(norm(&archived().await), norm(&expected));
    assert_eq!(expected.len(), 6 * 8);
    let dead = std::fs::read_to_string(s.dir.path().join("corrupt.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    let dead: serde_json::Value = serde_json::from_str(dead.trim()).unwrap();
    assert_eq!(dead["partition_key"], "corrupt");
    assert_eq!(base64_decode(dead["data_b64"].as_str().unwrap()), corrupt);
    assert!(
        dead["annotations"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("checksum"),
        "{dead}"
    );

    // A rerun adds nothing; after more aggregates, it adds exactly those.
    let (code, err) = run();
    assert_eq!(code, Some(0), "{err}");
    let sink = err.lines().find(|l| l.starts_with("sink ")).unwrap();
    assert_eq!(sink.split_whitespace().nth(4), Some("0"), "{err}");
    put_round(6, &mut expected).await;
    let (code, err) = run();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("archived 48 records"), "{err}");
    assert_eq!(norm(&archived().await), norm(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_archive_shows_its_lag_behind_the_tip_and_stops_cleanly_on_sigterm() {
    let s = setup(2).await;
    let mut put = Put::new();
    for n in 0..30 {
        s.put(&format!("k-{n}"), n_payload(n), &mut put).await;
    }
    let mut child = s.spawn_continuous(&[], &["--progress", "log", "--progress-interval", "1"]);
    // Stop it once it reports being at the tip (however long a loaded machine takes to get
    // there), reading its log as it comes.
    let (at_tip, seen) = std::sync::mpsc::channel();
    let reader = read_log(&mut child, move |line| {
        if line.contains("stage=stream") && line.contains("at the tip") {
            let _ = at_tip.send(());
        }
    });
    let reached = tokio::task::spawn_blocking(move || {
        seen.recv_timeout(std::time::Duration::from_secs(120))
            .is_ok()
    })
    .await
    .unwrap();
    assert!(kill(&child, "TERM").success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let err = reader.join().unwrap();
    assert!(reached, "never reported being at the tip: {err}");
    assert_eq!(status.code(), Some(130), "{err}");
    // The source's progress line says how far behind the tip it is (at it, once caught up).
    assert!(
        err.lines()
            .any(|l| l.contains("stage=stream") && l.contains("at the tip")),
        "{err}"
    );
    // Everything put was archived before the stop.
    assert_eq!(normalise(&s.archived_records().await), normalise(&put));
}

/// A bucket that does not exist is reported as such, for readers (the `archive` source) and
/// writers (the archive sink, whose first request reads the lease), never as an empty archive or
/// a missing lease object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_does_not_exist_is_named_as_such() {
    let emu = emulators::get();
    let dir = tempfile::tempdir().unwrap();
    let bucket = unique("nosuchbucket");
    std::fs::write(dir.path().join("in.jsonl"), "{\"a\":1}\n").unwrap();
    let url = format!("s3://{bucket}/archive");
    let pipelines = [
        Pipeline::new("p")
            .source("archive", "archive")
            .set("url", &url)
            .set("stream", "orders")
            .sink("out", "file", &["archive"])
            .set("path", "out.jsonl"),
        Pipeline::new("p")
            .source("in", "file")
            .set("path", "in.jsonl")
            .set("stream", "orders")
            .sink("archive", "archive", &["in"])
            .set("url", &url),
    ];
    for p in pipelines {
        let body = p.render();
        let ran = Flux::run_pipeline(p.write(dir.path()))
            .emulators(&emu)
            .current_dir(dir.path())
            .run();
        let err = ran.stderr;
        assert_eq!(ran.code, Some(1), "{body}\n{err}");
        assert!(err.contains("the bucket does not exist"), "{body}\n{err}");
        assert!(err.contains(&format!("s3://{bucket}")), "{err}");
        assert!(!err.contains("no such object"), "{err}");
    }
}

/// Missing credentials and a profile that does not exist are reported as such (the AWS CLI's
/// "Unable to locate credentials", "The config profile (…) could not be found"), not as an
/// endpoint that cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_and_an_unknown_profile_are_named() {
    let emu = emulators::get();
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::new("k")
        .source("s", "kinesis")
        .set("stream", "orders")
        .set("start", "trim_horizon")
        .set("stop", "caught_up")
        .sink("o", "file", &["s"])
        .set("path", "o.jsonl")
        .write(dir.path());
    for (profile, expected) in [
        (None, "no AWS credentials found"),
        (
            Some("nosuch"),
            "no AWS credentials from the profile `nosuch`",
        ),
    ] {
        // No credentials anywhere: not in the environment, no ~/.aws, no metadata service.
        let mut run = Flux::run_pipeline(&p)
            .emulators(&emu)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .env("HOME", dir.path())
            .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-credentials"),
            );
        if let Some(p) = profile {
            run = run.env("AWS_PROFILE", p);
        }
        let err = run.current_dir(dir.path()).run().failure(1).stderr;
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("cannot reach the endpoint"), "{err}");
    }
}

/// `GET url` over loopback with hyper's client: (status, content type, body).
async fn http_get(url: &str) -> (u16, String, String) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, kind, String::from_utf8(body.to_vec()).unwrap())
}

/// Parses Prometheus/OpenMetrics text strictly: every line is a `# TYPE|HELP|UNIT` comment, the
/// final `# EOF`, or `name{label="value",…} number` of a declared family. Returns
/// `name{labels}` → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut families = Vec::new();
    let mut samples = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_default();
            assert!(["TYPE", "HELP", "UNIT"].contains(&kind), "{line}");
            assert!(name_ok(name), "{line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(
                    ["counter", "gauge", "info", "unknown"].contains(&t),
                    "{line}"
                );
                families.push(name.to_owned());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "{line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("{line}"));
            for pair in inner.split("\",") {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                assert!(name_ok(k), "{line}");
                assert!(!v.trim_end_matches('"').contains('"'), "{line}");
            }
        }
        assert!(
            families
                .iter()
                .any(|f| name == f || name.strip_prefix(f.as_str()) == Some("_total")),
            "{name} has no # TYPE: {text}"
        );
        let v: f64 = value.parse().unwrap_or_else(|e| panic!("{e}: {line}"));
        samples.insert(series.to_owned(), v);
    }
    samples
}

/// `run --metrics-listen` on a continuous archiver: /metrics parses as Prometheus text, its
/// counters move as records arrive, the lag and checkpoint age appear, /healthz answers, and
/// SIGINT still ends the run in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_archive_serves_prometheus_metrics_until_stopped() {
    let s = setup(2).await;
    let mut put = Put::new();
    for n in 0..30 {
        s.put(&format!("k-{n}"), n_payload(n), &mut put).await;
    }
    let mut child = s.spawn_continuous(
        &["--log-format", "json"],
        &["--progress", "off", "--metrics-listen", "127.0.0.1:0"],
    );
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let reader = read_log(&mut child, move |line| {
        if let Ok(e) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(addr) = e["fields"]["addr"].as_str()
        {
            let _ = addr_tx.send(addr.to_owned());
        }
    });
    let addr = tokio::task::spawn_blocking(move || {
        addr_rx.recv_timeout(std::time::Duration::from_secs(120))
    })
    .await
    .unwrap()
    .expect("the metrics address is logged");
    let base = format!("http://{addr}");
    let sink = "{stage=\"archive\",role=\"sink\",type=\"archive\"}";
    let source = "{stage=\"stream\",role=\"source\",type=\"kinesis\"}";
    // Scrape until the archive sink has written what was put (however long that takes here).
    let scrape_until = |min: f64| {
        let base = base.clone();
        async move {
            for _ in 0..1200 {
                let (status, kind, body) = http_get(&format!("{base}/metrics")).await;
                assert_eq!(status, 200);
                assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
                let m = parse_metrics(&body);
                if m.get(&format!("flux_stage_records_out_total{sink}"))
                    .copied()
                    >= Some(min)
                    && m.contains_key(&format!("flux_stage_checkpoint_age_seconds{sink}"))
                    && m.contains_key(&format!("flux_stage_behind_tip_ms{source}"))
                {
                    return m;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("the archive sink never reached {min} records");
        }
    };
    let first = scrape_until(30.0).await;
    assert_eq!(first[&format!("flux_stage_records_in_total{source}")], 30.0);
    assert_eq!(first["flux_run_state{state=\"running\"}"], 1.0);
    assert_eq!(first["flux_run_state{state=\"finished\"}"], 0.0);
    assert!(first[&format!("flux_stage_bytes_out_total{sink}")] > 0.0);
    let (status, _, body) = http_get(&format!("{base}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "running\n"));

    for n in 30..40 {
        s.put(&format!("k-{n}"), n_payload(n), &mut put).await;
    }
    let second = scrape_until(40.0).await;
    assert_eq!(
        second[&format!("flux_stage_records_in_total{source}")],
        40.0
    );

    assert!(kill(&child, "INT").success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let log = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{log}");
    assert_eq!(normalise(&s.archived_records().await), normalise(&put));
}
