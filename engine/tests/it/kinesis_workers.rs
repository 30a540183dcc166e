//! Several archiver processes on one stream (`workers = "shared"`), through the real binary
//! against kinesis-local, archiving into a local directory: they share the shards fairly, a
//! killed one's shards are taken over, a new one gets its share, a split and a merge keep
//! parents before children, and every record is archived exactly once, in per-key order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::kinesis_archive::{Put, normalise, records_of, seq};
use crate::support::emulators::{self, Emulators, unique};
use crate::support::records::n_payload;
use crate::support::run::{files_under, gunzip_lines, kill};
use crate::support::{Flux, Pipeline};
use aws_sdk_kinesis::primitives::Blob;

/// Short, for a quick takeover; long enough that a worker starved of CPU for a few seconds on a
/// loaded machine does not lose its shards (every third of it, it rewrites its heartbeat).
const LEASE_TTL: Duration = Duration::from_secs(5);

struct Shared {
    emu: Emulators,
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    dir: tempfile::TempDir,
    pipeline: PathBuf,
    put: Put,
    /// Per partition key, the put order of the records' numbers.
    order: BTreeMap<String, Vec<u64>>,
    n: u64,
}

impl Shared {
    async fn new(shards: i32) -> Shared {
        let emu = emulators::get();
        let kinesis = emu.kinesis().await;
        let stream = unique("workers");
        emulators::create_stream(&kinesis, &stream, shards).await;
        let dir = tempfile::tempdir().unwrap();
        let pipeline = Pipeline::kinesis_archiver("shared-archiver", &stream, "file://./archive")
            .stage("stream")
            .set("workers", "shared")
            .set("lease_ttl", &*format!("{}s", LEASE_TTL.as_secs()))
            .set("stop", "never")
            .set("checkpoint_interval", "1s")
            .stage("archive")
            .set("max_records", 30)
            .write(dir.path());
        Shared {
            emu,
            kinesis,
            stream,
            dir,
            pipeline,
            put: Put::new(),
            order: BTreeMap::new(),
            n: 0,
        }
    }

    /// Puts `count` records over 40 partition keys (so every shard gets some).
    async fn put_some(&mut self, count: usize) {
        for _ in 0..count {
            let key = format!("k-{}", self.n % 40);
            let data = n_payload(self.n);
            let out = self
                .kinesis
                .put_record()
                .stream_name(&self.stream)
                .partition_key(&key)
                .data(Blob::new(data.clone()))
                .send()
                .await
                .unwrap();
            self.put.insert(
                (out.shard_id().to_owned(), seq(out.sequence_number())),
                (key.clone(), data),
            );
            self.order.entry(key).or_default().push(self.n);
            self.n += 1;
        }
    }

    /// Starts one worker (logging at info into `worker-N.log`).
    fn worker(&self, n: usize) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("worker-{n}.log"))).unwrap();
        Flux::run_pipeline(&self.pipeline)
            .emulators(&self.emu)
            .env("RUST_LOG", "info")
            .current_dir(self.dir.path())
            .command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for f in files_under(self.dir.path()) {
            if f.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out += &format!(
                    "--- {} (last 40 lines)\n{}\n",
                    f.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        out
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    /// The live workers: run id → run id (their heartbeats have not lapsed).
    fn live_workers(&self) -> BTreeMap<String, String> {
        json_children(
            &self
                .root()
                .join(format!("_flux/workers/stream={}", self.stream)),
        )
        .into_iter()
        .filter(|(_, v)| {
            v["expires_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > chrono::Utc::now())
        })
        .map(|(name, v)| (name, v["worker"].as_str().unwrap().to_owned()))
        .collect()
    }

    /// The live shard leases (their worker's heartbeat has not lapsed): shard → worker.
    fn leases(&self) -> BTreeMap<String, String> {
        let live = self.live_workers();
        json_children(
            &self
                .root()
                .join(format!("_flux/leases/stream={}", self.stream)),
        )
        .into_iter()
        .map(|(shard, v)| (shard, v["worker"].as_str().unwrap().to_owned()))
        .filter(|(_, w)| live.contains_key(w))
        .collect()
    }

    /// How many shards each live worker holds, sorted.
    fn shares(&self) -> Vec<usize> {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for w in self.leases().values() {
            *by.entry(w.clone()).or_default() += 1;
        }
        let mut c: Vec<usize> = by.into_values().collect();
        c.sort();
        c
    }

    async fn open_shards(&self) -> usize {
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
            .filter(|s| {
                s.sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_none()
            })
            .count()
    }

    fn archived(&self) -> Put {
        let objects = files_under(&self.root().join(format!("stream={}", self.stream)))
            .into_iter()
            .map(|f| {
                let envs = gunzip_lines(&f)
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                (f.display().to_string(), envs)
            })
            .collect();
        records_of("the shared archive", objects)
    }

    /// Waits (generously: the machine is shared) until `what` holds; returns how long it took.
    fn wait(&self, what: &str, ok: impl Fn(&Shared) -> bool) -> Duration {
        let start = Instant::now();
        while !ok(self) {
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "timed out waiting for {what}; leases {:?}\n{}",
                self.leases(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        start.elapsed()
    }

    fn wait_archived(&self) {
        let want = normalise(&self.put).len();
        self.wait("every record archived", |s| s.archived().len() >= want);
    }
}

/// The `<name>.json` files of `dir`: name → content (files being rewritten are skipped).
fn json_children(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            out.insert(name.to_owned(), v);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_workers_split_a_stream_take_over_rebalance_and_archive_each_record_once() {
    let mut s = Shared::new(12).await;
    s.put_some(240).await;
    let mut workers: Vec<Child> = (0..3).map(|n| s.worker(n)).collect();

    // Three workers on 12 shards: 4 each.
    s.wait("3 workers holding 4 shards each", |s| {
        s.shares() == [4, 4, 4]
    });
    s.wait_archived();
    // `status` shows them.
    let status = Flux::new()
        .args(["status", "archive", "--stream", &s.stream, "--json"])
        .current_dir(s.dir.path())
        .run();
    let report: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let shown = report["streams"][0]["workers"].as_array().unwrap().clone();
    let live: Vec<usize> = shown
        .iter()
        .filter(|w| w["live"] == true)
        .map(|w| w["shards"].as_array().unwrap().len())
        .collect();
    assert_eq!(live, [4, 4, 4], "{shown:?}");

    // One is killed: its shards are taken over once its leases lapse.
    let mut killed = workers.remove(2);
    kill(&killed, "KILL");
    killed.wait().unwrap();
    let took = s.wait("the killed worker's shards taken over", |s| {
        s.shares() == [6, 6]
    });
    eprintln!(
        "taken over {:.1} s after SIGKILL (lease_ttl {} s, renewed every {:.1} s)",
        took.as_secs_f64(),
        LEASE_TTL.as_secs(),
        LEASE_TTL.as_secs_f64() / 3.0
    );
    s.put_some(120).await;
    s.wait_archived();

    // A fourth joins: 3 shards each.
    workers.push(s.worker(3));
    s.wait("the newcomer getting its share: 4 shards each", |s| {
        s.shares() == [4, 4, 4]
    });
    s.put_some(120).await;
    s.wait_archived();

    // A split, then a merge of the two children, while the workers run.
    let parent = emulators::split_first_shard(&s.kinesis, &s.stream).await;
    emulators::wait_active(&s.kinesis, &s.stream).await;
    s.put_some(120).await;
    let children: Vec<String> = s
        .kinesis
        .list_shards()
        .stream_name(&s.stream)
        .send()
        .await
        .unwrap()
        .shards()
        .iter()
        .filter(|sh| sh.parent_shard_id() == Some(parent.shard_id()))
        .map(|sh| sh.shard_id().to_owned())
        .collect();
    assert_eq!(children.len(), 2, "two children of the split");
    s.kinesis
        .merge_shards()
        .stream_name(&s.stream)
        .shard_to_merge(&children[0])
        .adjacent_shard_to_merge(&children[1])
        .send()
        .await
        .unwrap();
    emulators::wait_active(&s.kinesis, &s.stream).await;
    s.put_some(120).await;
    s.wait_archived();
    assert_eq!(s.open_shards().await, 12);
    s.wait("the 12 open shards shared by 3 workers", |s| {
        s.shares() == [4, 4, 4]
    });

    // A single-worker archiver of the same stream and archive is refused while they run.
    let single = Flux::run_pipeline(
        Pipeline::kinesis_archiver("single", &s.stream, "file://./archive").write(s.dir.path()),
    )
    .emulators(&s.emu)
    .current_dir(s.dir.path())
    .run();
    assert_eq!(single.code, Some(1), "{}", single.stderr);
    assert!(
        single
            .stderr
            .contains("workers = \"shared\" and \"single\" cannot archive one stream at once"),
        "{}",
        single.stderr
    );

    // A clean stop (SIGTERM: exit code 130, everything read committed) gives every lease and
    // heartbeat back.
    for w in &workers {
        kill(w, "TERM");
    }
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{:?}\n{}",
            out.status,
            s.logs()
        );
    }
    let left =
        |what: &str| json_children(&s.root().join(format!("_flux/{what}/stream={}", s.stream)));
    assert!(left("leases").is_empty(), "{:?}", left("leases"));
    assert!(left("workers").is_empty(), "{:?}", left("workers"));

    // Every record exactly once, byte for byte (records_of refuses duplicates)…
    assert_eq!(normalise(&s.archived()), normalise(&s.put), "{}", s.logs());
    // …and per key in put order, read as a reader does: by arrival time, then shard and
    // sequence (parents before children).
    let mut by_arrival: Vec<(String, String, String, u64)> = Vec::new();
    for f in files_under(&s.root().join(format!("stream={}", s.stream))) {
        for line in gunzip_lines(&f) {
            let e: serde_json::Value = serde_json::from_str(&line).unwrap();
            by_arrival.push((
                e["arrival_ts"].as_str().unwrap().to_owned(),
                e["shard_id"].as_str().unwrap().to_owned(),
                seq(e["sequence_number"].as_str().unwrap()),
                e["data"]["n"].as_u64().unwrap(),
            ));
        }
    }
    by_arrival.sort();
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, _, _, n) in &by_arrival {
        seen.entry(format!("k-{}", n % 40)).or_default().push(*n);
    }
    assert_eq!(seen, s.order);
    let _ = s
        .kinesis
        .delete_stream()
        .stream_name(&s.stream)
        .send()
        .await;
}
