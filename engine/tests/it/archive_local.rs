//! The archive on a local directory, end to end through the real binary: layout, exactly-once
//! across reruns and simulated crashes, lossless payloads, bounded reads that prune by folder,
//! dead letters, and Ctrl-C.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::records::{
    envelope_b64 as envelope, n_payload, quickstart, sample_orders as sample,
};
use crate::support::run::{
    count_lines_if_any, files_under, gunzip_lines, gzip, kill, read_jsonl, read_lines,
};
use crate::support::{Flux, Pipeline, Ran, repo_root, table};

struct Archive {
    dir: tempfile::TempDir,
}

impl Archive {
    fn new() -> Self {
        Archive {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("archive")
    }
    fn url(&self) -> String {
        format!("file://{}", self.root().display())
    }
    /// Every data object, key → lines.
    fn objects(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for p in files_under(&self.root()) {
            let key = p
                .strip_prefix(self.root())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if key.starts_with("stream=") && key.ends_with(".json.gz") {
                out.insert(key, gunzip_lines(&p));
            }
        }
        out
    }
    /// Every archived envelope, parsed.
    fn envelopes(&self) -> Vec<serde_json::Value> {
        self.objects()
            .values()
            .flatten()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    /// Writes `lines` to `in.jsonl` in the test's directory.
    fn input(&self, lines: &[String]) -> PathBuf {
        let input = self.path("in.jsonl");
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        input
    }
    /// A file in the test's directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// Writes `pipeline` into the test's directory and runs it there.
    fn run(&self, pipeline: &Pipeline) -> Ran {
        Flux::run_pipeline(pipeline.write(self.dir.path()))
            .current_dir(self.dir.path())
            .run()
    }
    /// A pipeline whose source reads this archive's stream `stream`.
    fn reader(&self, name: &str, stream: &str) -> Pipeline {
        Pipeline::new(name)
            .source("archive", "archive")
            .set("url", self.url())
            .set("stream", stream)
    }
}

fn sample_lines() -> Vec<String> {
    read_lines(sample())
}

fn run_quickstart(a: &Archive, input: &Path) -> (i32, String, String) {
    run_template(a, &quickstart(), input)
}

/// Runs a pipeline with the quickstart's variables (`archive`, `input`).
fn run_template(a: &Archive, pipeline: &Path, input: &Path) -> (i32, String, String) {
    let ran = Flux::run_pipeline(pipeline)
        .var("archive", a.url())
        .var("input", input.display())
        .current_dir(a.dir.path())
        .run();
    (ran.code_or_signal(), ran.stdout, ran.stderr)
}

/// The data of each archived envelope as the exact text it was given.
fn archived_payloads(a: &Archive) -> Vec<String> {
    let mut v: Vec<String> = a
        .objects()
        .values()
        .flatten()
        .map(|l| {
            let raw: BTreeMap<String, Box<serde_json::value::RawValue>> =
                serde_json::from_str(l).unwrap();
            raw["data"].get().to_owned()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn quickstart_archives_every_record_once_in_the_layout() {
    let a = Archive::new();
    let (code, _, err) = run_quickstart(&a, &sample());
    assert_eq!(code, 0, "{err}");
    let objects = a.objects();
    for key in objects.keys() {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0], "stream=orders", "{key}");
        assert!(parts[1].starts_with("dt=2026-11-25"), "{key}");
        assert!(
            ["hour=09", "hour=10", "hour=11"].contains(&parts[2]),
            "{key}"
        );
        assert!(parts[3].starts_with("shard=shardId-00000000000"), "{key}");
    }
    // Every JSON line of the input is archived exactly once, byte for byte.
    let mut expected: Vec<String> = sample_lines()
        .into_iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 2995);
    assert_eq!(archived_payloads(&a), expected);
    // Partitions follow arrival time (here: created_at); per-hour counts match the sample.
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("examples/orders.summary.json")).unwrap(),
    )
    .unwrap();
    let mut per_hour: BTreeMap<String, u64> = BTreeMap::new();
    for (key, lines) in &objects {
        let hour = key
            .split('/')
            .nth(2)
            .unwrap()
            .trim_start_matches("hour=")
            .to_owned();
        *per_hour.entry(format!("2026-11-25T{hour}")).or_default() += lines.len() as u64;
    }
    for (hour, n) in summary["per_hour"].as_object().unwrap() {
        assert_eq!(per_hour[hour], n.as_u64().unwrap(), "{hour}");
    }
    // Within each object, one shard, sequence numbers increasing, named first-last.
    for (key, lines) in &objects {
        let seqs: Vec<u64> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["sequence_number"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}");
        let name = key.rsplit('/').next().unwrap();
        assert_eq!(
            name,
            format!("{}-{}.json.gz", seqs[0], seqs[seqs.len() - 1])
        );
    }
    // Checkpoints per shard and a run manifest.
    let cps: Vec<_> = std::fs::read_dir(a.root().join("_flux/checkpoints/stream=orders"))
        .unwrap()
        .collect();
    assert_eq!(cps.len(), 4);
    let runs: Vec<_> = std::fs::read_dir(a.root().join("_flux/runs/stream=orders"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&runs[0]).unwrap()).unwrap();
    assert_eq!(manifest["records"], 2995);
    assert_eq!(manifest["status"], "completed");
    assert_eq!(manifest["objects"].as_array().unwrap().len(), objects.len());
    // The 5 non-JSON lines could not be timed: they went to the rejects file, not lost.
    let rejects = std::fs::read_to_string(a.path("archive-rejects.jsonl")).unwrap();
    assert_eq!(rejects.lines().count(), 5);
    for l in rejects.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["annotations"]["error"]["stage"], "orders");
        assert!(v["data_b64"].is_string(), "{l}");
    }
}

#[test]
fn a_rerun_archives_nothing_twice() {
    let a = Archive::new();
    assert_eq!(run_quickstart(&a, &sample()).0, 0);
    let before = a.objects();
    let (code, _, err) = run_quickstart(&a, &sample());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("archived 0 records in 0 objects, skipped 2995 already archived"),
        "{err}"
    );
    // The summary counts them as skipped, not as written.
    let sink: Vec<&str> = err
        .lines()
        .find(|l| l.starts_with("sink") && l.contains(" archive "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!((sink[4], sink[10]), ("0", "2995"), "{err}");
    // Nothing written is no bytes out either (docs/running.md, the summary's columns).
    assert_eq!((sink[7], sink[8]), ("0", "B"), "{err}");
    assert_eq!(a.objects(), before);
}

#[test]
fn new_records_are_appended_after_the_checkpoint() {
    let a = Archive::new();
    let lines = sample_lines();
    let partial = a.path("partial.jsonl");
    std::fs::write(&partial, lines[..1200].join("\n") + "\n").unwrap();
    assert_eq!(run_quickstart(&a, &partial).0, 0);
    let first = a.envelopes().len();
    // The file grows (as a stream does); the rerun archives only what is new.
    std::fs::write(&partial, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = run_quickstart(&a, &partial);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("skipped {first} already archived")),
        "{err}"
    );
    assert_eq!(a.envelopes().len(), 2995);
    let mut expected: Vec<String> = lines
        .into_iter()
        .filter(|l| l.starts_with("{\"event_id\""))
        .collect();
    expected.sort();
    assert_eq!(archived_payloads(&a), expected);
}

/// A crash between storing objects and moving the checkpoint leaves objects past the
/// checkpoint. The rerun removes them and writes their records again: nothing lost, nothing
/// doubled.
#[test]
fn objects_left_past_a_checkpoint_by_a_crash_are_replaced() {
    let a = Archive::new();
    assert_eq!(run_quickstart(&a, &sample()).0, 0);
    let cp_dir = a.root().join("_flux/checkpoints/stream=orders");
    // Shard 0: roll its checkpoint back to the end of its first object (the later objects are
    // now "written past the checkpoint"). Shard 1: lose its checkpoint entirely.
    let shard0 = cp_dir.join("shardId-000000000000.json");
    let mut cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&shard0).unwrap()).unwrap();
    let mut shard0_objects: Vec<(u64, String)> = a
        .objects()
        .keys()
        .filter(|k| k.contains("shard=shardId-000000000000"))
        .map(|k| {
            let name = k.rsplit('/').next().unwrap();
            (name.split('-').next().unwrap().parse().unwrap(), k.clone())
        })
        .collect();
    shard0_objects.sort();
    assert!(shard0_objects.len() >= 2);
    let first_key = &shard0_objects[0].1;
    let last_seq = first_key
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".json.gz")
        .split('-')
        .nth(1)
        .unwrap()
        .to_owned();
    cp["sequence_number"] = last_seq.into();
    std::fs::write(&shard0, serde_json::to_vec(&cp).unwrap()).unwrap();
    std::fs::remove_file(cp_dir.join("shardId-000000000001.json")).unwrap();
    // Also leave a partially rolled object: same first sequence, different last (a crash with
    // different roll settings), which must not survive as a duplicate.
    let (_, second_key) = &shard0_objects[1];
    let lines = a.objects()[second_key].clone();
    let first_seq: u64 = second_key
        .rsplit('/')
        .next()
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let half: Vec<String> = lines[..lines.len() / 2].to_vec();
    let half_last: u64 =
        serde_json::from_str::<serde_json::Value>(half.last().unwrap()).unwrap()["sequence_number"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let odd = a
        .root()
        .join(second_key)
        .with_file_name(format!("{first_seq}-{half_last}.json.gz"));
    std::fs::write(&odd, gzip((half.join("\n") + "\n").as_bytes())).unwrap();

    let (code, _, err) = run_quickstart(&a, &sample());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed"), "{err}");
    let mut expected: Vec<String> = sample_lines()
        .into_iter()
        .filter(|l| l.starts_with("{\"event_id\""))
        .collect();
    expected.sort();
    assert_eq!(
        archived_payloads(&a),
        expected,
        "exactly once after the crash"
    );
}

#[test]
fn payloads_round_trip_byte_for_byte_whatever_they_are() {
    let a = Archive::new();
    let input = a.path("mixed.jsonl");
    let lines = sample_lines();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    a.run(
        &Pipeline::new("roundtrip")
            .source("in", "file")
            .set("path", &input)
            .set("stream", "mixed")
            .set("partition_key", "$.order_id")
            .set("default_partition_key", "none")
            .set("shards", 3)
            .sink("archive", "archive", &["in"])
            .set("url", a.url())
            .set("max_records", 400),
    )
    .success();
    a.run(
        &a.reader("back", "mixed")
            .sink("out", "file", &["archive"])
            .set("path", "back.jsonl")
            .set("format", "data"),
    )
    .success();
    let mut got = read_lines(a.path("back.jsonl"));
    let mut want = lines.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every line, JSON or not, comes back exactly");
    let b64 = a
        .objects()
        .values()
        .flatten()
        .filter(|l| l.contains("\"data_b64\":"))
        .count();
    assert_eq!(b64, 5);
}

fn archived_sample() -> Archive {
    let a = Archive::new();
    let (code, _, err) = run_quickstart(&a, &sample());
    assert_eq!(code, 0, "{err}");
    a
}

/// Reads stream `orders` back into `read.jsonl`, with `bounds` setting keys of the archive
/// source: (exit code, lines read, stderr).
fn read_back(a: &Archive, bounds: impl FnOnce(Pipeline) -> Pipeline) -> (i32, usize, String) {
    let ran = a.run(
        &bounds(a.reader("read", "orders"))
            .sink("out", "file", &["archive"])
            .set("path", "read.jsonl"),
    );
    let n = count_lines_if_any(a.path("read.jsonl"));
    (ran.code_or_signal(), n, ran.stderr)
}

#[test]
fn bounded_reads_are_exact_and_prune_by_folder() {
    let a = archived_sample();
    let (code, n, err) = read_back(&a, |p| {
        p.set("from", "2026-11-25T10:00:00Z")
            .set("to", "2026-11-25T11:00:00Z")
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(n, 1000);
    // Exact inside an hour, too.
    let expected = sample_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            let t = v["created_at"].as_str().unwrap();
            ("2026-11-25T10:30:00.000Z"..="2026-11-25T11:15:00.000Z").contains(&t)
                && t < "2026-11-25T11:15:00.000Z"
        })
        .count();
    let (code, n, err) = read_back(&a, |p| {
        p.set("from", "2026-11-25T10:30:00Z")
            .set("to", "2026-11-25T11:15:00Z")
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(n, expected);
    // Corrupt every object of hour 09: a read of hours 10–11 never opens them…
    for key in a.objects().keys().filter(|k| k.contains("hour=09")) {
        std::fs::write(a.root().join(key), b"this is not gzip").unwrap();
    }
    let (code, n, err) = read_back(&a, |p| p.set("from", "2026-11-25T10:00:00Z"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(n, 1999);
    // …while a full read fails, naming the object.
    let (code, _, err) = read_back(&a, |p| p);
    assert_eq!(code, 1);
    assert!(err.contains("hour=09"), "{err}");
}

#[test]
fn shard_bounds_select_shards() {
    let a = archived_sample();
    let want = a
        .envelopes()
        .iter()
        .filter(|v| v["shard_id"] == "shardId-000000000002")
        .count();
    let (code, n, err) = read_back(&a, |p| p.set("shards", ["shardId-000000000002"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(n, want);
    assert!(n > 0);
}

#[test]
fn rejected_records_stop_the_run_when_no_dead_letter_route_exists() {
    let a = Archive::new();
    let input = a.path("in.jsonl");
    std::fs::write(&input, "{\"a\":1}\nnot json\n[2]\n").unwrap();
    let p = Pipeline::new("dl")
        .source("in", "file")
        .set("path", &input)
        .transform("mark", "annotate", &["in"])
        .set("fields", table([("ticket", "T-1")]))
        .sink("out", "file", &["mark"])
        .set("path", "out.jsonl");
    let err = a.run(&p).failure(1).stderr;
    assert!(err.contains("transform `mark` failed: 2 record(s) could not be processed and no stage reads `mark.dead_letter`"), "{err}");
    assert!(err.contains("payload is not JSON"), "{err}");
    assert!(
        !a.path("out.jsonl").exists(),
        "no partial output under the real name"
    );

    // With a dead-letter route, the run succeeds and keeps both.
    a.run(
        &p.sink("rejects", "file", &["mark.dead_letter"])
            .set("path", "rejects.jsonl"),
    )
    .success();
    let rejects = std::fs::read_to_string(a.path("rejects.jsonl")).unwrap();
    assert_eq!(rejects.lines().count(), 2);
    assert!(
        rejects.contains("\"reason\":\"payload is JSON but not an object\""),
        "{rejects}"
    );
    assert_eq!(read_lines(a.path("out.jsonl")).len(), 1);
}

#[test]
fn ctrl_c_drains_commits_and_exits_130() {
    let a = Archive::new();
    let p = Pipeline::new("stdin")
        .source("in", "file")
        .set("path", "-")
        .set("stream", "live")
        .set("batch_records", 1)
        .sink("archive", "archive", &["in"])
        .set("url", a.url())
        .write(a.dir.path());
    let mut child = Flux::run_pipeline(&p)
        .current_dir(a.dir.path())
        .command()
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..50 {
        std::io::Write::write_all(&mut stdin, &[n_payload(i), b"\n".to_vec()].concat()).unwrap();
    }
    std::io::Write::flush(&mut stdin).unwrap();
    // Wait until the records were read, then interrupt while stdin is still open.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(kill(&child, "INT").success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    // What was read before the interrupt is archived and checkpointed.
    let n = a.envelopes().len();
    assert_eq!(n, 50, "{err}");
    assert!(
        a.root()
            .join("_flux/checkpoints/stream=live/shardId-000000000000.json")
            .exists()
    );
}

/// A filter that is its source's only reader is pushed down: lines that cannot match are
/// skipped before parsing. The result must equal the unoptimised run (two readers, no push-down).
/// `archive → filter (where) → file (out)`; with `second_reader` a second file sink reads the
/// source too, which keeps the filter from being pushed down into it.
fn filter_pipeline(
    a: &Archive,
    name: &str,
    stream: &str,
    filter: &str,
    out: &str,
    second_reader: bool,
) -> Pipeline {
    a.reader(name, stream)
        .transform("hits", "filter", &["archive"])
        .set("where", filter)
        .sink("out", "file", &["hits"])
        .set("path", out)
        .when(second_reader, |p| {
            p.sink("all", "file", &["archive"]).set("path", "all.jsonl")
        })
}

#[test]
fn a_pushed_down_filter_gives_the_same_records() {
    let a = archived_sample();
    let pipeline = |second_reader: bool| {
        filter_pipeline(
            &a,
            &format!("p-{second_reader}"),
            "orders",
            "@.data.status == 'cancelled' && @.data.total > 100",
            &format!("hits-{second_reader}.jsonl"),
            second_reader,
        )
    };
    let mut outputs = Vec::new();
    for second in [false, true] {
        let err = a.run(&pipeline(second)).success().stderr;
        let source_line = err
            .lines()
            .find(|l| l.starts_with("source"))
            .unwrap()
            .to_owned();
        let skipped: u64 = source_line
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        if second {
            assert_eq!(
                skipped, 0,
                "no push-down with a second reader: {source_line}"
            );
        } else {
            assert!(skipped > 2000, "push-down skips most lines: {source_line}");
        }
        let mut lines = read_lines(a.path(&format!("hits-{second}.jsonl")));
        lines.sort();
        outputs.push(lines);
    }
    assert_eq!(outputs[0].len(), 88);
    assert_eq!(outputs[0], outputs[1]);
}

/// Reads the sample archive back as envelopes, with `settings` added to the archive source.
fn read_envelopes(
    a: &Archive,
    settings: impl FnOnce(Pipeline) -> Pipeline,
) -> Vec<serde_json::Value> {
    a.run(
        &settings(a.reader("read-envelopes", "orders"))
            .sink("out", "file", &["archive"])
            .set("path", "envelopes.jsonl")
            .set("format", "envelope")
            .sink("bad", "file", &["archive.dead_letter"])
            .set("path", "bad.jsonl")
            .set("format", "envelope"),
    )
    .success();
    read_jsonl(a.path("envelopes.jsonl"))
}

fn seq_of(v: &serde_json::Value) -> u128 {
    v["sequence_number"].as_str().unwrap().parse().unwrap()
}

/// Within each shard, sequence numbers strictly increase.
fn assert_shard_order(envs: &[serde_json::Value]) {
    let mut last: BTreeMap<String, u128> = BTreeMap::new();
    for e in envs {
        let shard = e["shard_id"].as_str().unwrap().to_owned();
        let s = seq_of(e);
        if let Some(prev) = last.insert(shard.clone(), s) {
            assert!(prev < s, "{shard}: {prev} then {s}");
        }
    }
}

#[test]
fn records_come_in_arrival_order_or_shard_by_shard() {
    let a = archived_sample();
    let mut all: Vec<(String, u128)> = a
        .envelopes()
        .iter()
        .map(|e| (e["shard_id"].as_str().unwrap().to_owned(), seq_of(e)))
        .collect();
    all.sort();

    // Default: merged by arrival time across the 4 shards.
    let envs = read_envelopes(&a, |p| p);
    let mut got: Vec<(String, u128)> = envs
        .iter()
        .map(|e| (e["shard_id"].as_str().unwrap().to_owned(), seq_of(e)))
        .collect();
    got.sort();
    assert_eq!(got, all, "every record once");
    assert_shard_order(&envs);
    let times: Vec<&str> = envs
        .iter()
        .map(|e| e["arrival_ts"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "arrival order across shards"
    );
    let shards_seen = envs
        .windows(2)
        .filter(|w| w[0]["shard_id"] != w[1]["shard_id"])
        .count();
    assert!(shards_seen > 100, "shards interleave: {shards_seen}");

    // Shard after shard, each in sequence order, even with one shard read at a time.
    for concurrency in [1, 3] {
        let envs = read_envelopes(&a, |p| {
            p.set("order", "shard")
                .set("concurrency", concurrency)
                .set("prefetch", 1)
                .set("batch_records", 7)
        });
        assert_eq!(envs.len(), all.len());
        assert_shard_order(&envs);
        let shards: Vec<&str> = envs
            .iter()
            .map(|e| e["shard_id"].as_str().unwrap())
            .collect();
        let mut runs = shards.clone();
        runs.dedup();
        assert_eq!(
            runs,
            vec![
                "shardId-000000000000",
                "shardId-000000000001",
                "shardId-000000000002",
                "shardId-000000000003"
            ]
        );
    }
}

#[test]
fn interleaved_order_keeps_each_shard_in_sequence() {
    let a = archived_sample();
    let mut all: Vec<(String, u128)> = a
        .envelopes()
        .iter()
        .map(|e| (e["shard_id"].as_str().unwrap().to_owned(), seq_of(e)))
        .collect();
    all.sort();
    for concurrency in [1, 2, 4] {
        let envs = read_envelopes(&a, |p| {
            p.set("order", "interleaved")
                .set("concurrency", concurrency)
                .set("prefetch", 1)
                .set("batch_records", 5)
        });
        let mut got: Vec<(String, u128)> = envs
            .iter()
            .map(|e| (e["shard_id"].as_str().unwrap().to_owned(), seq_of(e)))
            .collect();
        got.sort();
        assert_eq!(got, all, "every record once (concurrency {concurrency})");
        assert_shard_order(&envs);
        if concurrency == 1 {
            // One reader at a time. The output may still mix the end of one shard (batches
            // its reader queued before it finished) with the start of the next, so what holds
            // is: at no point are more than two shards in progress.
            let mut span: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
            for (i, e) in envs.iter().enumerate() {
                let s = e["shard_id"].as_str().unwrap();
                span.entry(s).and_modify(|v| v.1 = i).or_insert((i, i));
            }
            let most = (0..envs.len())
                .map(|i| span.values().filter(|(a, b)| *a <= i && i <= *b).count())
                .max()
                .unwrap();
            assert!(
                most <= 2,
                "{most} shards in progress at once with concurrency = 1"
            );
        }
    }
    // `limit` counts the records sent, in whatever order they came.
    assert_eq!(
        read_envelopes(&a, |p| p
            .set("order", "interleaved")
            .set("limit", 10)
            .set("batch_records", 3))
        .len(),
        10
    );
}

#[test]
fn limit_and_sequence_bounds_are_exact() {
    let a = archived_sample();
    let everything = read_envelopes(&a, |p| p);
    // `limit` keeps the first records of the output order.
    let first = read_envelopes(&a, |p| p.set("limit", 100).set("batch_records", 33));
    assert_eq!(first.len(), 100);
    assert_eq!(first[..], everything[..100]);
    let first = read_envelopes(&a, |p| p.set("limit", 100).set("order", "shard"));
    assert_eq!(first.len(), 100);
    assert!(
        first
            .iter()
            .all(|e| e["shard_id"] == "shardId-000000000000")
    );

    // Sequence bounds on one shard (inclusive at both ends); other shards are read whole.
    let shard2: Vec<u128> = everything
        .iter()
        .filter(|e| e["shard_id"] == "shardId-000000000002")
        .map(seq_of)
        .collect();
    let (from, to) = (shard2[10], shard2[20]);
    let envs = read_envelopes(&a, |p| {
        let bounds = table([("from", from.to_string()), ("to", to.to_string())]);
        p.set(
            "sequences",
            table([("shardId-000000000002", toml::Value::from(bounds))]),
        )
    });
    let got2: Vec<u128> = envs
        .iter()
        .filter(|e| e["shard_id"] == "shardId-000000000002")
        .map(seq_of)
        .collect();
    assert_eq!(got2, shard2[10..=20]);
    assert_eq!(envs.len(), everything.len() - shard2.len() + 11);
}

#[test]
fn a_corrupt_line_goes_to_the_dead_letter_route_with_its_object_and_line() {
    let a = archived_sample();
    let (key, lines) = a.objects().into_iter().next().unwrap();
    let mut broken = lines.clone();
    broken.insert(2, "{\"stream\": \"orders\", truncated".to_owned());
    std::fs::write(
        a.root().join(&key),
        gzip((broken.join("\n") + "\n").as_bytes()),
    )
    .unwrap();

    let envs = read_envelopes(&a, |p| p);
    assert_eq!(envs.len(), 2995, "every good line is still read");
    let bad = std::fs::read_to_string(a.path("bad.jsonl")).unwrap();
    assert_eq!(bad.lines().count(), 1, "{bad}");
    let bad: serde_json::Value = serde_json::from_str(bad.trim()).unwrap();
    let reason = bad["annotations"]["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&key) && reason.contains("line 3"),
        "{reason}"
    );
}

#[test]
fn hourly_windows_over_the_archive_hold_each_hours_records() {
    let a = archived_sample();
    a.run(
        &a.reader("windows", "orders")
            .transform("hourly", "window", &["archive"])
            .set("size", "1h")
            .transform("sliding", "window", &["archive"])
            .set("size", "2h")
            .set("slide", "1h")
            .sink("hours", "file", &["hourly"])
            .set("path", "hours.jsonl")
            .set("format", "envelope")
            .sink("slides", "file", &["sliding"])
            .set("path", "slides.jsonl")
            .set("format", "envelope"),
    )
    .success();
    let windows = |file: &str| {
        let mut per: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut order = Vec::new();
        for e in read_jsonl(a.path(file)) {
            let w = &e["annotations"]["window"];
            let key = (
                w["start"].as_str().unwrap().to_owned(),
                w["end"].as_str().unwrap().to_owned(),
            );
            let t = e["arrival_ts"].as_str().unwrap();
            assert!(key.0.as_str() <= t && t < key.1.as_str(), "{t} in {key:?}");
            if order.last() != Some(&key) {
                order.push(key.clone());
            }
            *per.entry(key).or_default() += 1;
        }
        // Each window's records leave together: a window never reappears.
        assert_eq!(order.len(), per.len(), "{order:?}");
        per
    };
    let hours = windows("hours.jsonl");
    let h = |x: &str| format!("2026-11-25T{x}:00:00.000Z");
    assert_eq!(
        hours.into_iter().collect::<Vec<_>>(),
        vec![
            ((h("09"), h("10")), 996),
            ((h("10"), h("11")), 1000),
            ((h("11"), h("12")), 999)
        ],
        "the sample's per-hour counts (examples/orders.summary.json)"
    );
    let slides = windows("slides.jsonl");
    assert_eq!(
        slides.into_iter().collect::<Vec<_>>(),
        vec![
            ((h("08"), h("10")), 996),
            ((h("09"), h("11")), 1996),
            ((h("10"), h("12")), 1999),
            ((h("11"), h("13")), 999)
        ]
    );
}

#[test]
fn an_archive_sink_rolls_one_object_per_window_and_shard() {
    let a = archived_sample();
    let original = a.envelopes().len();
    let windowed = a.path("windowed");
    let per_window = |window: Pipeline, out: &Path| {
        window
            .sink("windowed", "archive", &["quarter"])
            .set("url", format!("file://{}", out.display()))
            .set("roll_per_window", true)
    };
    let quarter = a
        .reader("per-window", "orders")
        .transform("quarter", "window", &["archive"])
        .set("size", "15m");
    a.run(&per_window(quarter, &windowed)).success();
    let mut objects = 0;
    let mut records = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    for path in files_under(&windowed) {
        let name = path.to_string_lossy();
        if !name.contains("stream=orders") || !name.ends_with(".json.gz") {
            continue;
        }
        objects += 1;
        let lines = gunzip_lines(&path);
        let envs: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let first = &envs[0];
        for e in &envs {
            assert_eq!(
                e["annotations"]["window"], first["annotations"]["window"],
                "{name}: one window per object"
            );
            assert_eq!(e["shard_id"], first["shard_id"], "{name}");
            assert!(records.insert((
                e["shard_id"].as_str().unwrap().to_owned(),
                e["sequence_number"].as_str().unwrap().to_owned()
            )));
        }
        pairs.insert((
            first["shard_id"].to_string(),
            first["annotations"]["window"].to_string(),
        ));
    }
    assert_eq!(records.len(), original, "every record once");
    assert_eq!(objects, pairs.len(), "one object per (shard, window)");
    // 3 hours of records in 15-minute windows on 4 shards.
    assert!(objects >= 40, "{objects} objects");

    // Sliding windows put each record in two windows: the second copy would go back in its
    // shard's sequence, which the sink refuses instead of skipping it as archived.
    let sliding = a
        .reader("per-window", "orders")
        .transform("quarter", "window", &["archive"])
        .set("size", "30m")
        .set("slide", "15m");
    let out = PathBuf::from(format!("{}-sliding", windowed.display()));
    let err = a.run(&per_window(sliding, &out)).failure(1).stderr;
    assert!(
        err.contains("roll_per_window = true, each shard's records must come in sequence order"),
        "{err}"
    );
}

#[test]
fn max_age_never_closes_an_object_inside_a_kpl_aggregate() {
    // De-aggregated user records share their aggregate's sequence number; a file source cuts
    // batches anywhere (here every 2 lines), so a batch often ends inside an aggregate.
    let a = Archive::new();
    let mut lines = Vec::new();
    let mut expected = BTreeSet::new();
    let mut add = |seq: u64, sub: Option<u64>| {
        let sub_field = sub.map_or(String::new(), |n| format!(r#","sub_sequence_number":{n}"#));
        lines.push(format!(
            r#"{{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"{seq}"{sub_field},"partition_key":"k{seq}","arrival_ts":"2026-11-25T10:00:0{seq}.000Z","data":{{"n":{seq}}}}}"#
        ));
        expected.insert((seq.to_string(), sub));
    };
    for sub in 0..5 {
        add(1, Some(sub));
    }
    add(2, None);
    for sub in 0..3 {
        add(3, Some(sub));
    }
    std::fs::write(a.path("kpl.jsonl"), lines.join("\n") + "\n").unwrap();
    a.run(
        &Pipeline::new("kpl")
            .source("in", "file")
            .set("path", "kpl.jsonl")
            .set("format", "envelope")
            .set("batch_records", 2)
            .sink("archive", "archive", &["in"])
            .set("url", a.url())
            .set("max_age", "1ns"),
    )
    .success();
    let got: BTreeSet<(String, Option<u64>)> = a
        .envelopes()
        .iter()
        .map(|e| {
            (
                e["sequence_number"].as_str().unwrap().to_owned(),
                e["sub_sequence_number"].as_u64(),
            )
        })
        .collect();
    assert_eq!(got, expected, "every user record of every aggregate");
    assert_eq!(a.envelopes().len(), expected.len());
    // Objects never split an aggregate: no sequence number is the last of one object and the
    // first of the next.
    for (name, _) in a.objects() {
        let stem = name
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".json.gz");
        let (first, last) = stem.split_once('-').unwrap();
        assert!(first <= last, "{name}");
    }
    let bounds: Vec<(String, String)> = a
        .objects()
        .keys()
        .map(|name| {
            let stem = name
                .rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".json.gz");
            let (f, l) = stem.split_once('-').unwrap();
            (f.to_owned(), l.to_owned())
        })
        .collect();
    for w in bounds.windows(2) {
        assert_ne!(
            w[0].1, w[1].0,
            "an aggregate split across objects: {bounds:?}"
        );
    }
}

#[test]
fn max_age_rolls_objects_that_stay_open_too_long() {
    let a = Archive::new();
    let quickstart = std::fs::read_to_string(quickstart()).unwrap();
    // The quickstart pipeline with objects that may stay open for no time at all: every batch
    // that reaches the sink closes the objects open before it.
    let aged = quickstart.replacen(
        "max_records = 1000\n",
        "max_records = 1000\nmax_age = \"1ns\"\n",
        1,
    );
    assert_ne!(aged, quickstart);
    let p = a.path("aged.toml");
    std::fs::write(&p, &aged).unwrap();
    let (code, _, err) = run_template(&a, &p, &sample());
    assert_eq!(code, 0, "{err}");
    let aged_objects = a.objects().len();
    assert_eq!(a.envelopes().len(), 2995, "every record once");

    let b = archived_sample();
    assert!(
        aged_objects > b.objects().len(),
        "max_age rolled more objects: {aged_objects} vs {}",
        b.objects().len()
    );
    assert_eq!(archived_payloads(&a), archived_payloads(&b));
}

/// Archives an envelope file (records that cannot be stored go to `rejects.jsonl`).
fn archive_envelopes(a: &Archive, input: &Path) -> (i32, String) {
    let ran = a.run(
        &Pipeline::new("envelopes")
            .source("in", "file")
            .set("path", input)
            .set("format", "envelope")
            .sink("archive", "archive", &["in"])
            .set("url", a.url())
            .set("max_records", 3)
            .sink(
                "rejects",
                "file",
                &["in.dead_letter", "archive.dead_letter"],
            )
            .set("path", "rejects.jsonl"),
    );
    (ran.code_or_signal(), ran.stderr)
}

/// Reads one stream back as (shard, sequence, payload bytes), in any order, sorted.
fn read_stream(a: &Archive, stream: &str) -> Vec<(String, String, Vec<u8>)> {
    use base64::Engine as _;
    let ran = a.run(
        &a.reader("read-stream", stream)
            .sink("out", "file", &["archive"])
            .set("path", "read-stream.jsonl")
            .set("format", "envelope"),
    );
    assert_eq!(ran.code, Some(0), "{stream}: {}", ran.stderr);
    let mut got: Vec<(String, String, Vec<u8>)> = read_lines(a.path("read-stream.jsonl"))
        .iter()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(e["stream"], stream);
            // The payload as the line carries it: `data`'s exact text, or `data_b64` decoded.
            let raw: BTreeMap<String, Box<serde_json::value::RawValue>> =
                serde_json::from_str(l).unwrap();
            let data = match (raw.get("data"), &e["data_b64"]) {
                (_, serde_json::Value::String(b)) => {
                    base64::engine::general_purpose::STANDARD.decode(b).unwrap()
                }
                (Some(d), _) => d.get().as_bytes().to_vec(),
                (None, _) => panic!("neither data nor data_b64: {l}"),
            };
            (
                e["shard_id"].as_str().unwrap().to_owned(),
                e["sequence_number"].as_str().unwrap().to_owned(),
                data,
            )
        })
        .collect();
    got.sort();
    got
}

/// Every stream name and shard id Kinesis allows works — names that start with a dot or are
/// made of dots and dashes, 128 characters, sequence numbers of 129 digits — through archive,
/// rerun and read; names that are not path segments (`a/b`, empty, `orders/x`, `..`) are
/// dead-lettered, never stored, and never make a rerun delete or skip anything.
#[test]
fn every_legal_kinesis_name_archives_exactly_once_and_others_are_dead_lettered() {
    let a = Archive::new();
    let long_shard = "S".repeat(128);
    let long_stream = format!("o{}", ".-_".repeat(42)) + "z";
    let legal = [
        ("orders", "shardId-000000000000"),
        ("orders", ".hidden"),
        ("orders", "..."),
        ("orders", "-.-"),
        ("orders", long_shard.as_str()),
        ("orders.x", "shardId-000000000000"),
        (".orders", "s"),
        ("...", "s"),
        (long_stream.as_str(), "s"),
    ];
    let illegal = [
        ("orders", "a/b"),
        ("orders", ""),
        ("orders", ".."),
        ("orders", "a~b"),
        ("orders/x", "s"),
        ("", "s"),
        ("..", "s"),
    ];
    let long_seq = |n: u32| format!("{}{:06}", "9".repeat(123), n);
    let mut lines = Vec::new();
    let mut want: BTreeMap<String, Vec<(String, String, Vec<u8>)>> = BTreeMap::new();
    for round in 0..2 {
        for (i, (stream, shard)) in legal.iter().chain(illegal.iter()).enumerate() {
            for j in 0..4u32 {
                let n = round * 10 + j;
                let seq = if i % 2 == 0 {
                    long_seq(n)
                } else {
                    (100 + n).to_string()
                };
                let data = format!("{{\"i\":{i},\"n\":{n}}}").into_bytes();
                lines.push(envelope(
                    stream,
                    shard,
                    &seq,
                    "2026-11-25T10:00:00.001Z",
                    &data,
                ));
                if i < legal.len() {
                    want.entry(stream.to_string()).or_default().push((
                        shard.to_string(),
                        seq,
                        data,
                    ));
                }
            }
        }
        let input = a.input(&lines);
        // Archive twice: the rerun stores, removes and skips nothing it should not.
        for _ in 0..2 {
            let (code, err) = archive_envelopes(&a, &input);
            assert_eq!(code, 0, "{err}");
            assert!(!err.contains("removing"), "{err}");
            let rejects = std::fs::read_to_string(a.path("rejects.jsonl")).unwrap();
            assert_eq!(
                rejects.lines().count(),
                illegal.len() * 4 * (round as usize + 1),
                "{rejects}"
            );
        }
        for (stream, records) in &mut want {
            records.sort();
            assert_eq!(&read_stream(&a, stream), records, "stream {stream:?}");
        }
    }
    // Nothing was written outside the stream folders and `_flux/`.
    for entry in std::fs::read_dir(a.root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("stream=") || name == "_flux" || name.contains('~'),
            "{name}"
        );
    }
}

/// Folders that are not the layout's (`stream=orders/x/…`, left by another tool or an old
/// version) are neither read as the stream's records nor deleted by its archiver.
#[test]
fn folders_outside_the_layout_are_neither_read_nor_deleted() {
    let a = Archive::new();
    let mine = envelope("orders", "s1", "5", "2026-11-25T10:00:00Z", b"{\"mine\":1}");
    let input = a.input(&[mine]);
    let foreign = a
        .root()
        .join("stream=orders/x/dt=2026-11-25/hour=10/shard=s1/1-9.json.gz");
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    let other = envelope(
        "orders",
        "s1",
        "7",
        "2026-11-25T10:00:00Z",
        b"{\"other\":1}",
    );
    std::fs::write(&foreign, gzip(format!("{other}\n").as_bytes())).unwrap();
    for _ in 0..2 {
        let (code, err) = archive_envelopes(&a, &input);
        assert_eq!(code, 0, "{err}");
    }
    assert!(foreign.exists(), "the archiver deleted a foreign object");
    assert_eq!(
        read_stream(&a, "orders"),
        vec![("s1".into(), "5".into(), b"{\"mine\":1}".to_vec())]
    );
}

/// Payloads of every shape come back byte for byte: JSON scalars and `null`, JSON with invalid
/// UTF-8 inside a string, BOMs, CRLF, surrounding whitespace, empty.
#[test]
fn payloads_of_every_shape_round_trip_exactly() {
    let a = Archive::new();
    let payloads: Vec<&[u8]> = vec![
        b"null",
        b"true",
        b"0",
        b"-1.5e300",
        b"12345678901234567890123",
        b"\"text\"",
        b"{\"name\":\"Zo\xe9\"}",
        b"[\"\xff\"]",
        b"\xef\xbb\xbf{\"a\":1}",
        b"{\"a\":1}\r\n",
        b" {\"a\":1}",
        b"{\"a\":1}\n",
        b"",
        b"\x00\x01",
        b"{\"s\":\"\\ud800\"}",
    ];
    let lines: Vec<String> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            envelope(
                "shapes",
                "s",
                &(i + 1).to_string(),
                "2026-11-25T10:00:00Z",
                p,
            )
        })
        .collect();
    let input = a.input(&lines);
    let (code, err) = archive_envelopes(&a, &input);
    assert_eq!(code, 0, "{err}");
    // Every archived line is valid UTF-8 JSON.
    for line in a.objects().values().flatten() {
        serde_json::from_str::<Box<serde_json::value::RawValue>>(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let want: Vec<(String, String, Vec<u8>)> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| ("s".to_owned(), (i + 1).to_string(), p.to_vec()))
        .collect();
    let mut want = want;
    want.sort();
    assert_eq!(read_stream(&a, "shapes"), want);
}

/// Arrival times taken from a payload that fall outside the years 0000–9999 in UTC are
/// dead-lettered (the `dt=` folders and RFC 3339 cannot hold them), the others archived.
#[test]
fn arrival_times_the_layout_cannot_hold_are_dead_lettered() {
    let a = Archive::new();
    let input = a.path("in.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"k":"a","at":"9999-12-31T23:30:00-01:00"}"#,
            r#"{"k":"b","at":"0000-01-01T00:30:00+01:00"}"#,
            r#"{"k":"c","at":"9999-12-31T23:59:59.999Z"}"#,
            r#"{"k":"d","at":"0000-01-01T00:00:00Z"}"#,
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    a.run(
        &Pipeline::new("times")
            .source("in", "file")
            .set("path", &input)
            .set("stream", "times")
            .set("partition_key", "$.k")
            .set("arrival_ts", "$.at")
            .sink("archive", "archive", &["in"])
            .set("url", a.url())
            .sink("rejects", "file", &["in.dead_letter"])
            .set("path", "rejects.jsonl"),
    )
    .success();
    let rejects = std::fs::read_to_string(a.path("rejects.jsonl")).unwrap();
    assert_eq!(rejects.lines().count(), 2, "{rejects}");
    assert!(rejects.contains("0000–9999"), "{rejects}");
    let back = read_stream(&a, "times");
    assert_eq!(back.len(), 2);
    let dts: BTreeSet<String> = a
        .objects()
        .keys()
        .map(|k| k.split('/').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        dts,
        BTreeSet::from(["dt=0000-01-01".to_owned(), "dt=9999-12-31".to_owned()])
    );
}

/// A filter pushed down into the archive source keeps exactly what the filter keeps when the
/// payloads are stored as `data_b64` (JSON with surrounding whitespace or line breaks).
#[test]
fn push_down_keeps_records_stored_as_base64() {
    let a = Archive::new();
    let payloads: [&[u8]; 6] = [
        b"{\"status\":\"cancelled\"}",
        b"{\"status\":\"cancelled\"}\n",
        b" {\"status\":\"cancelled\"}",
        b"{\"status\":\"cancelled\"}\r\n",
        b"{\"status\":\"paid\"}\n",
        b"{\"status\":\"paid\"}",
    ];
    let lines: Vec<String> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| envelope("b64", "s", &(i + 1).to_string(), "2026-11-25T10:00:00Z", p))
        .collect();
    let input = a.input(&lines);
    assert_eq!(archive_envelopes(&a, &input).0, 0);
    let mut counts = Vec::new();
    for second_reader in [false, true] {
        a.run(&filter_pipeline(
            &a,
            "b64",
            "b64",
            "@.data.status == 'cancelled'",
            "hits.jsonl",
            second_reader,
        ))
        .success();
        counts.push(read_lines(a.path("hits.jsonl")).len());
    }
    assert_eq!(counts, [4, 4], "with push-down, without push-down");
}

/// A run that fails after its sink took the stream's lease releases the lease on the way out,
/// so the next run can start at once instead of waiting for `lease_ttl`.
#[test]
fn a_failed_run_releases_its_lease() {
    let a = Archive::new();
    let good = envelope("orders", "s1", "1", "2026-11-25T10:00:00Z", b"{\"a\":1}");
    let input = a.input(&[good]);
    // A corrupt checkpoint: the sink fails right after it took the lease.
    let cp = a.root().join("_flux/checkpoints/stream=orders/s1.json");
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(&cp, "not json").unwrap();
    for attempt in 0..2 {
        let (code, err) = archive_envelopes(&a, &input);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("corrupt checkpoint"),
            "attempt {attempt}: {err}"
        );
        assert!(
            !err.contains("is being archived by run"),
            "attempt {attempt}: {err}"
        );
    }
    assert!(!a.root().join("_flux/leases/stream=orders.json").exists());
}

/// `flux-engine lease release` refuses a live lease unless forced (saying what forcing risks),
/// and releases a lapsed one.
#[test]
fn lease_release_refuses_a_live_lease_unless_forced() {
    let a = Archive::new();
    let lease = a.root().join("_flux/leases/stream=orders.json");
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    let write = |expires: &str| {
        std::fs::write(
            &lease,
            format!(
                "{{\"run_id\":\"20261203T020000Z-abcd1234\",\"pipeline\":\"nightly\",\"expires_at\":\"{expires}\"}}"
            ),
        )
        .unwrap()
    };
    let release = |force: bool| {
        let url = a.url();
        let mut args = vec!["lease", "release", &url, "--stream", "orders"];
        if force {
            args.push("--force");
        }
        let ran = Flux::new().args(args).current_dir(a.dir.path()).run();
        (ran.code, ran.stderr)
    };
    write("2999-01-01T00:00:00.000Z");
    let (code, err) = release(false);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("20261203T020000Z-abcd1234") && err.contains("--force"),
        "{err}"
    );
    let (code, err) = release(true);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("released the live lease"), "{err}");
    write("2020-01-01T00:00:00.000Z");
    let (code, err) = release(false);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("had lapsed"), "{err}");
    // Either way the next archiver takes the stream at once.
    let good = envelope("orders", "s1", "1", "2026-11-25T10:00:00Z", b"{\"a\":1}");
    let input = a.input(&[good]);
    assert_eq!(archive_envelopes(&a, &input).0, 0);
    let (code, err) = release(false);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("no lease is held"), "{err}");
}

/// A read of stream `stream` from the archive at `url` (records `from` a time, when given)
/// into `read.jsonl`: (exit code, lines, stderr).
fn read_stream_lines(
    a: &Archive,
    url: &str,
    stream: &str,
    from: Option<&str>,
) -> (i32, usize, String) {
    let p = Pipeline::new("read-stream")
        .source("archive", "archive")
        .set("url", url)
        .set("stream", stream)
        .set_some("from", from)
        .sink("out", "file", &["archive"])
        .set("path", "read.jsonl");
    let _ = std::fs::remove_file(a.path("read.jsonl"));
    let ran = a.run(&p);
    let n = count_lines_if_any(a.path("read.jsonl"));
    (ran.code_or_signal(), n, ran.stderr)
}

#[test]
fn a_missing_archive_root_is_an_error_and_an_empty_read_warns() {
    let a = archived_sample();
    // A mistyped root (absolute, and relative as `file://./…`): an error naming it.
    let missing = a.path("archvie");
    for url in [
        format!("file://{}", missing.display()),
        "file://./archvie".to_owned(),
    ] {
        let (code, n, err) = read_stream_lines(&a, &url, "orders", None);
        assert_eq!(code, 1, "{url}: {err}");
        assert_eq!(n, 0);
        assert!(err.contains("the archive root does not exist"), "{err}");
        assert!(err.contains("archvie"), "{err}");
    }
    // A root that is a file.
    std::fs::write(&missing, b"").unwrap();
    let (code, _, err) =
        read_stream_lines(&a, &format!("file://{}", missing.display()), "orders", None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a directory"), "{err}");
    // A window that holds nothing: it succeeds, with a warning that says so.
    let (code, n, err) = read_stream_lines(&a, &a.url(), "orders", Some("2031-01-01T00:00:00Z"));
    assert_eq!((code, n), (0, 0), "{err}");
    assert!(err.contains("falls within the bounds"), "{err}");
    // A stream the archive does not hold: a warning naming the stream.
    let (code, n, err) = read_stream_lines(&a, &a.url(), "ordrs", None);
    assert_eq!((code, n), (0, 0), "{err}");
    assert!(err.contains("holds no objects of stream ordrs"), "{err}");
    // A read that finds records warns of nothing.
    let (code, n, err) = read_stream_lines(&a, &a.url(), "orders", None);
    assert_eq!(code, 0, "{err}");
    assert!(n > 0);
    assert!(!err.contains("WARN"), "{err}");
}

/// Issue 13: an archive of a stream that received replays holds their fences; `skip_fences`
/// leaves them out (counted as skipped, and said in the log), the default keeps the archive as
/// it is. Replayed copies are records like any other.
#[test]
fn skip_fences_leaves_out_the_fences_of_earlier_replays() {
    let a = Archive::new();
    let fence = br#"{"_flux":{"fence":{"replay_id":"INC-7","phase":"open","mode":"overwrite","opened_at":"2026-11-25T12:00:00.000Z"}}}"#;
    let close = br#"{"_flux":{"fence":{"replay_id":"INC-7","phase":"close","mode":"overwrite","opened_at":"2026-11-25T12:00:00.000Z","counts":{"records":1,"shard_records":1}}}}"#;
    let replayed = br#"{"id":"o-1","_flux":{"replay":{"id":"INC-7","mode":"overwrite"},"origin":{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"1","arrival_ts":"2026-11-25T10:00:00.000Z"}}}"#;
    // A payload that mentions fences without being one stays.
    let live = br#"{"id":"o-1","note":"\"fence\" is just a word here","_flux":{"ticket":"T-1"}}"#;
    let (s0, s1) = ("shardId-000000000000", "shardId-000000000001");
    let lines: Vec<String> = [
        (s0, "1", "2026-11-25T10:00:00.000Z", &live[..]),
        (s0, "2", "2026-11-25T12:00:00.000Z", &fence[..]),
        (s0, "3", "2026-11-25T12:00:01.000Z", &replayed[..]),
        (s0, "4", "2026-11-25T12:00:02.000Z", &close[..]),
        (s1, "5", "2026-11-25T12:00:00.000Z", &fence[..]),
    ]
    .iter()
    .map(|(shard, seq, at, data)| envelope("orders", shard, seq, at, data))
    .collect();
    let input = a.input(&lines);
    let (code, err) = archive_envelopes(&a, &input);
    assert_eq!(code, 0, "{err}");
    let read = |skip_fences: Option<bool>| {
        let p = a
            .reader("read-fences", "orders")
            .set_some("skip_fences", skip_fences)
            .sink("out", "file", &["archive"])
            .set("path", "out.jsonl")
            .set("format", "envelope")
            .write(a.dir.path());
        // The note on the fences left out is an INFO line.
        let err = Flux::run_pipeline(&p)
            .env("RUST_LOG", "info")
            .current_dir(a.dir.path())
            .run()
            .success()
            .stderr;
        let seqs: Vec<String> = read_jsonl(a.path("out.jsonl"))
            .iter()
            .map(|e| e["sequence_number"].as_str().unwrap().to_owned())
            .collect();
        (seqs, err)
    };
    let (all, _) = read(None);
    assert_eq!(all, ["1", "2", "5", "3", "4"]);
    let (kept, err) = read(Some(true));
    assert_eq!(kept, ["1", "3"]);
    assert!(
        err.contains("left out 3 fences of earlier replays"),
        "{err}"
    );
    // The summary's skipped column of the source counts them.
    let source_row = err
        .lines()
        .find(|l| l.starts_with("source") && l.contains("archive"))
        .unwrap_or_else(|| panic!("{err}"));
    let columns: Vec<&str> = source_row.split_whitespace().collect();
    assert_eq!(columns[columns.len() - 2], "3", "{source_row}");
}

/// Issue 13: compacting an archive that received replays ranks each replayed copy by its origin
/// (a copy of an old state never outranks a newer original write), leaves fences out (counted
/// as the compact stage's skipped), and a copy replayed again keeps its origin.
#[test]
fn compacting_a_replayed_archive_ranks_copies_by_origin() {
    let a = Archive::new();
    let copy = |id: &str, status: &str, origin_stream: &str, shard: &str, seq: &str, at: &str| {
        format!(
            r#"{{"id":"{id}","status":"{status}","_flux":{{"replay":{{"id":"INC-7","mode":"overwrite"}},"origin":{{"stream":"{origin_stream}","shard_id":"{shard}","sequence_number":"{seq}","arrival_ts":"{at}"}}}}}}"#
        )
    };
    let fence = r#"{"_flux":{"fence":{"replay_id":"INC-7","phase":"open","mode":"overwrite","opened_at":"2026-11-25T12:00:00.000Z"}}}"#;
    let s0 = "shardId-000000000000";
    let s1 = "shardId-000000000001";
    let lines = [
        // o-1: paid (10:00), then lost (11:00); the replay at 12:00 wrote a copy of `paid`.
        (
            s0,
            "1",
            "2026-11-25T10:00:00.000Z",
            r#"{"id":"o-1","status":"paid"}"#.to_owned(),
        ),
        (s0, "2", "2026-11-25T12:00:00.000Z", fence.to_owned()),
        (
            s0,
            "3",
            "2026-11-25T12:00:01.000Z",
            copy("o-1", "paid", "orders", s0, "1", "2026-11-25T10:00:00.000Z"),
        ),
        (
            s1,
            "4",
            "2026-11-25T11:00:00.000Z",
            r#"{"id":"o-1","status":"lost"}"#.to_owned(),
        ),
        (s1, "5", "2026-11-25T12:00:00.000Z", fence.to_owned()),
        // o-3: only a copy, of a record that arrived in another stream.
        (
            s1,
            "6",
            "2026-11-25T12:00:02.000Z",
            copy(
                "o-3",
                "new",
                "orders-2025",
                "shardId-000000000009",
                "77",
                "2025-01-02T03:04:05.006Z",
            ),
        ),
    ];
    let envelopes: Vec<String> = lines
        .iter()
        .map(|(shard, seq, at, data)| envelope("orders", shard, seq, at, data.as_bytes()))
        .collect();
    let input = a.input(&envelopes);
    let (code, err) = archive_envelopes(&a, &input);
    assert_eq!(code, 0, "{err}");
    let err = a
        .run(
            &a.reader("compact-replayed", "orders")
                .transform("latest", "compact", &["archive"])
                .set("key", "$.data.id")
                .transform("mark", "annotate", &["latest"])
                .set("replay", table([("id", "INC-8"), ("mode", "overwrite")]))
                .sink("out", "file", &["mark"])
                .set("path", "out.jsonl")
                .set("format", "envelope"),
        )
        .success()
        .stderr;
    let rows = read_jsonl(a.path("out.jsonl"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Output in version order: o-3's origin (2025) first, then o-1's `lost` (11:00).
    let o3 = &rows[0]["data"];
    assert_eq!((&o3["id"], &o3["status"]), (&"o-3".into(), &"new".into()));
    assert_eq!(o3["_flux"]["replay"]["id"], "INC-8");
    assert_eq!(o3["_flux"]["origin"]["stream"], "orders-2025");
    assert_eq!(o3["_flux"]["origin"]["sequence_number"], "77");
    let o1 = &rows[1]["data"];
    assert_eq!((&o1["id"], &o1["status"]), (&"o-1".into(), &"lost".into()));
    assert_eq!(o1["_flux"]["origin"]["shard_id"], s1);
    assert_eq!(o1["_flux"]["origin"]["sequence_number"], "4");
    // The two fences: skipped by compact, no dead letters.
    let compact_row = err
        .lines()
        .find(|l| l.starts_with("transform") && l.contains("latest"))
        .unwrap_or_else(|| panic!("{err}"));
    let columns: Vec<&str> = compact_row.split_whitespace().collect();
    assert_eq!(columns[columns.len() - 2], "2", "{compact_row}");
    assert_eq!(columns[columns.len() - 3], "0", "{compact_row}");
}
