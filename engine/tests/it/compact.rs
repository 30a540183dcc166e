//! The `compact` transform end to end through the real binary: archive source → compact → file
//! sink over archives made by the shared benchmark generator (several seeds), compared line for
//! line with a brute-force compaction computed here, with the default memory limit and a tiny one
//! (spilling), with tombstones, and behind a filter and time bounds (exact counts).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::support::run::{files_under, gunzip_lines, read_jsonl};
use crate::support::{Flux, Pipeline, repo_root, text};
use serde_json::Value;

/// One archived line and what the reference needs of it.
#[derive(Clone)]
struct Line {
    text: String,
    env: Value,
}

impl Line {
    fn str(&self, field: &str) -> &str {
        self.env[field].as_str().unwrap()
    }
    /// DESIGN §4 order for monotone times: arrival, then shard, then sequence number.
    fn version_cmp(&self, other: &Line) -> Ordering {
        let seq = |l: &Line| {
            let s = l.str("sequence_number").trim_start_matches('0').to_owned();
            (s.len(), s)
        };
        self.str("arrival_ts")
            .cmp(other.str("arrival_ts"))
            .then_with(|| self.str("shard_id").cmp(other.str("shard_id")))
            .then_with(|| seq(self).cmp(&seq(other)))
    }
}

struct Dataset {
    dir: tempfile::TempDir,
    lines: Vec<Line>,
}

/// The archive generator: a copy of ../shared/bench/gen_archive.py kept in the repository, so
/// the tests do not depend on a folder beside the clone (CI runs on a bare clone).
fn generator() -> PathBuf {
    repo_root().join("tests/fixtures/gen_archive.py")
}

/// Generates an archive with gen_archive.py and reads every line back.
fn generate(seed: u64, records: usize, keys: usize) -> Dataset {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .arg(generator())
        .args(["--records", &records.to_string(), "--shards", "4"])
        .args(["--keys", &keys.to_string(), "--seed", &seed.to_string()])
        .args(["--hours", "2", "--max-per-file", "700", "--out"])
        .arg(dir.path())
        .output()
        .expect("run gen_archive.py");
    assert!(out.status.success(), "{}", text(&out).1);
    let lines: Vec<Line> = files_under(&dir.path().join("archive"))
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
        .flat_map(|p| gunzip_lines(p))
        .map(|l| Line {
            env: serde_json::from_str(&l).unwrap(),
            text: l,
        })
        .collect();
    assert_eq!(lines.len(), records);
    Dataset { dir, lines }
}

/// Brute force: the newest line per key; keys whose newest line is a tombstone are dropped
/// unless kept; output in version order.
fn reference(
    lines: impl Iterator<Item = Line>,
    key: &str,
    tombstone: Option<&dyn Fn(&Value) -> bool>,
    keep: bool,
) -> Vec<String> {
    let mut last: HashMap<String, Line> = HashMap::new();
    for l in lines {
        let k = l.env["data"][key].as_str().unwrap().to_owned();
        match last.get(&k) {
            Some(old) if old.version_cmp(&l) != Ordering::Less => {}
            _ => {
                last.insert(k, l);
            }
        }
    }
    let mut out: Vec<Line> = last
        .into_values()
        .filter(|l| keep || !tombstone.is_some_and(|t| t(&l.env["data"])))
        .collect();
    out.sort_by(Line::version_cmp);
    out.into_iter().map(|l| l.text).collect()
}

/// Runs archive → [filter] → compact → file with the given stage keys (`source` and `compact`
/// set keys of the archive source and of the compact transform); returns the output lines and
/// the dead-lettered lines.
fn run_pipeline(
    d: &Dataset,
    source: impl FnOnce(Pipeline) -> Pipeline,
    filter: Option<&str>,
    compact: impl FnOnce(Pipeline) -> Pipeline,
) -> Result<(Vec<String>, Vec<String>), String> {
    let input = if filter.is_some() { "f" } else { "archive" };
    let source = source(
        Pipeline::new("p")
            .source("archive", "archive")
            .set("url", d.dir.path().join("archive"))
            .set("stream", "orders"),
    );
    let filtered = match filter {
        Some(w) => source
            .transform("f", "filter", &["archive"])
            .set("where", w),
        None => source,
    };
    let p = compact(
        filtered
            .transform("latest", "compact", &[input])
            .set("spill_dir", d.dir.path().join("spill")),
    )
    .sink("out", "file", &["latest"])
    .set("path", "out.jsonl");
    let dead = p.get("latest", "on_missing_key") == Some(&"dead_letter".into());
    let p = p.when(dead, |p| {
        p.sink("dead", "file", &["latest.dead_letter"])
            .set("path", "dead.jsonl")
    });
    let _ = std::fs::remove_file(d.dir.path().join("out.jsonl"));
    std::fs::create_dir_all(d.dir.path().join("spill")).unwrap();
    let out = Flux::run_pipeline(p.write(d.dir.path()))
        .current_dir(d.dir.path())
        .run();
    // Spill folders are gone whether the run succeeded or not.
    let left = std::fs::read_dir(d.dir.path().join("spill"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "spill folder left behind");
    if out.code != Some(0) {
        return Err(out.stderr);
    }
    let read = |name: &str| {
        std::fs::read_to_string(d.dir.path().join(name))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    Ok((read("out.jsonl"), read("dead.jsonl")))
}

#[test]
fn compaction_equals_the_reference_with_and_without_spill() {
    for seed in [1, 7, 42] {
        let d = generate(seed, 4000, 600);
        let expected = reference(d.lines.iter().cloned(), "customer_id", None, false);
        assert!(expected.len() > 300 && expected.len() < 600);
        for limit in [None, Some("64KiB")] {
            let compact = |p: Pipeline| {
                p.set("key", "$.data.customer_id")
                    .set_some("memory_limit", limit)
            };
            let (out, _) = run_pipeline(&d, |p| p, None, compact).unwrap();
            assert_eq!(out.len(), expected.len(), "seed {seed} {limit:?}");
            assert!(out == expected, "seed {seed} {limit:?}: output differs");
        }
        // partition_key is customer_id in these archives: same result by the other fast path.
        let (out, _) = run_pipeline(&d, |p| p, None, |p| p.set("key", "partition_key")).unwrap();
        assert!(out == expected, "seed {seed}: partition_key differs");
    }
}

#[test]
fn tombstones_delete_keys_or_are_kept() {
    let d = generate(3, 4000, 500);
    let cancelled: &dyn Fn(&Value) -> bool = &|data| data["status"] == "cancelled";
    for (keep, limit) in [
        (false, None),
        (false, Some("64KiB")),
        (true, None),
        (true, Some("64KiB")),
    ] {
        let expected = reference(
            d.lines.iter().cloned(),
            "customer_id",
            Some(cancelled),
            keep,
        );
        let compact = |p: Pipeline| {
            p.set("key", "$.data.customer_id")
                .set("tombstone", "@.data.status == 'cancelled'")
                .set("keep_tombstones", keep)
                .set_some("memory_limit", limit)
        };
        let (out, _) = run_pipeline(&d, |p| p, None, compact).unwrap();
        assert!(out == expected, "keep {keep} {limit:?}: output differs");
    }
    let all = reference(d.lines.iter().cloned(), "customer_id", None, false);
    let deleted = reference(
        d.lines.iter().cloned(),
        "customer_id",
        Some(cancelled),
        false,
    );
    assert!(deleted.len() < all.len(), "the data set has tombstones");
}

#[test]
fn bounded_and_filtered_replays_give_exact_counts() {
    let d = generate(11, 5000, 800);
    let (from, to) = ("2026-11-25T20:30:00Z", "2026-11-25T21:15:00Z");
    let bounded = |l: &Line| {
        ("2026-11-25T20:30:00.000Z".."2026-11-25T21:15:00.000Z").contains(&l.str("arrival_ts"))
    };
    let eur = |l: &Line| l.env["data"]["currency"] == "EUR";
    let source = |p: Pipeline| p.set("from", from).set("to", to);
    for limit in [None, Some("64KiB")] {
        let compact = |p: Pipeline| {
            p.set("key", "$.data.customer_id")
                .set_some("memory_limit", limit)
        };
        let expected = reference(
            d.lines.iter().filter(|l| bounded(l)).cloned(),
            "customer_id",
            None,
            false,
        );
        let (out, _) = run_pipeline(&d, source, None, compact).unwrap();
        assert_eq!(out.len(), expected.len());
        assert!(out == expected, "bounded {limit:?}");
        let expected = reference(
            d.lines.iter().filter(|l| bounded(l) && eur(l)).cloned(),
            "customer_id",
            None,
            false,
        );
        let (out, _) = run_pipeline(&d, source, Some("@.data.currency == 'EUR'"), compact).unwrap();
        assert_eq!(out.len(), expected.len());
        assert!(out == expected, "bounded and filtered {limit:?}");
    }
}

#[test]
fn records_without_a_key_are_dead_lettered_or_stop_the_run() {
    let d = generate(5, 2000, 300);
    let with_note = d.lines.iter().filter(|l| l.env["data"]["note"].is_string());
    let expected = reference(with_note.clone().cloned(), "note", None, false);
    let without = d.lines.len() - with_note.count();
    assert!(without > 0 && !expected.is_empty());
    let (out, dead) = run_pipeline(
        &d,
        |p| p,
        None,
        |p| {
            p.set("key", "$.data.note")
                .set("on_missing_key", "dead_letter")
                .set("memory_limit", "64KiB")
        },
    )
    .unwrap();
    assert!(out == expected);
    assert_eq!(dead.len(), without);
    let dl: Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(
        dl["annotations"]["error"]["reason"],
        "key path `$.data.note` selects no value"
    );
    let err = run_pipeline(&d, |p| p, None, |p| p.set("key", "$.data.note")).unwrap_err();
    assert!(
        err.contains("transform `latest` failed: orders shardId-")
            && err.contains("key path `$.data.note` selects no value"),
        "{err}"
    );
}

/// An arrival-order read keeps every shard's reader open at once, each on a blocking thread: a
/// stream of more shards than tokio's default blocking pool (512) must still be read (it used to
/// hang, every thread parked on a full channel while the merge waited for a shard not started).
#[test]
fn an_arrival_order_read_of_600_shards_completes() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .arg(generator())
        .args([
            "--records",
            "60000",
            "--shards",
            "600",
            "--keys",
            "60000",
            "--zipf",
            "0",
        ])
        .args(["--seed", "3", "--hours", "1", "--out"])
        .arg(dir.path())
        .output()
        .expect("run gen_archive.py");
    assert!(out.status.success(), "{}", text(&out).1);
    let p = Pipeline::new("read")
        .source("archive", "archive")
        .set("url", dir.path().join("archive"))
        .set("stream", "orders")
        // ~100 records on every shard: each reader fills its channel and waits.
        .set("batch_records", 10)
        .sink("out", "file", &["archive"])
        .set("path", "out.jsonl")
        .set("format", "envelope")
        .write(dir.path());
    let mut child = Flux::run_pipeline(&p)
        .current_dir(dir.path())
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(180) {
            let _ = child.kill();
            panic!("the run did not finish in 180 s (deadlocked?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success());
    let lines = read_jsonl(dir.path().join("out.jsonl"));
    assert_eq!(lines.len(), 60000);
    let times: Vec<&str> = lines
        .iter()
        .map(|e| e["arrival_ts"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "arrival order");
}

/// Runs file (data lines) → compact → file (payloads) with `key`; returns the kept and the
/// dead-lettered payloads, each as bytes.
fn compact_lines(dir: &Path, key: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let p = Pipeline::new("p")
        .source("in", "file")
        .set("path", "in.jsonl")
        .transform("latest", "compact", &["in"])
        .set("key", key)
        .set("on_missing_key", "dead_letter")
        .sink("out", "file", &["latest"])
        .set("path", "out.jsonl")
        .set("format", "data")
        .sink("dead", "file", &["latest.dead_letter"])
        .set("path", "dead.jsonl")
        .set("format", "data")
        .write(dir);
    for f in ["out.jsonl", "dead.jsonl"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Flux::run_pipeline(&p).current_dir(dir).run().success();
    let read = |name: &str| -> Vec<Vec<u8>> {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
        let mut lines: Vec<Vec<u8>> = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        lines.sort();
        lines
    };
    (read("out.jsonl"), read("dead.jsonl"))
}

/// Issue 10 item 9: a dotted key path (the fast scan) and the same path in brackets (the
/// general JSONPath) keep the same records and dead-letter the same payloads that are not
/// JSON (also where the key comes before the broken part); numbers are keys by their exact
/// text, and the file source's partition key taken from a number keeps it too.
#[test]
fn compact_keys_are_the_same_on_both_paths_and_numbers_keep_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let lines: [&[u8]; 11] = [
        br#"{"k":"a","v":1}"#,
        br#"{"k":"a", BROKEN"#,
        br#"{"k":"a","v":2,"z":[}"#,
        br#"{"k":"a","v":3} trailing"#,
        b"{\"k\":\"a\",\"v\":4,\"name\":\"Zo\xe9\"}",
        br#"{"k":"a","v":5,"z":1e400}"#,
        br#"{"k":12345678901234567890123,"v":6}"#,
        br#"{"k":12345678901234567890124,"v":7}"#,
        br#"{"k":1.50,"v":8}"#,
        br#"{"k":1.5,"v":9}"#,
        br#"{"k":"12345678901234567890123","v":10}"#,
    ];
    std::fs::write(dir.path().join("in.jsonl"), lines.join(&b'\n')).unwrap();
    let fast = compact_lines(dir.path(), "$.data.k");
    let general = compact_lines(dir.path(), "$.data['k']");
    assert!(fast == general, "the two paths differ");
    let sorted = |mut v: Vec<Vec<u8>>| {
        v.sort();
        v
    };
    // The last record of each key ("a" from line 1 only; the big number's text is the same
    // key as the string of its digits), and every payload that is not JSON dead-lettered.
    assert_eq!(
        fast.0,
        sorted(vec![
            lines[0].to_vec(),
            lines[7].to_vec(),
            lines[8].to_vec(),
            lines[9].to_vec(),
            lines[10].to_vec(),
        ])
    );
    assert_eq!(
        fast.1,
        sorted(lines[1..6].iter().map(|l| l.to_vec()).collect())
    );

    // The file source's partition key from a number.
    std::fs::write(dir.path().join("keys.jsonl"), lines[6..].join(&b'\n')).unwrap();
    let p = Pipeline::new("keys")
        .source("in", "file")
        .set("path", "keys.jsonl")
        .set("partition_key", "$.k")
        .sink("out", "file", &["in"])
        .set("path", "out-keys.jsonl")
        .write(dir.path());
    Flux::run_pipeline(&p)
        .current_dir(dir.path())
        .run()
        .success();
    let keys: Vec<String> = read_jsonl(dir.path().join("out-keys.jsonl"))
        .iter()
        .map(|e| e["partition_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "12345678901234567890123",
            "12345678901234567890124",
            "1.50",
            "1.5",
            "12345678901234567890123"
        ]
    );
}
