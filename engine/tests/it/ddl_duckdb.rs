//! The DuckDB views of the `ddl` sink, executed by DuckDB (the pinned package of
//! tests/emulators.sh) over archives the real binary writes: counts by partition, typed
//! projections, pruning, checkpoints, a compaction query equal to a brute-force reference,
//! and the unified view (archive + local snapshot of the live stream) holding every record
//! exactly once, also while records are being archived; and every engine's unified view (the
//! Hive and Drill statements run unchanged by DuckDB) exact on an archive with objects past a
//! checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::duckdb;
use crate::support::sql_grammar::code_blocks;
use crate::support::{Flux, Pipeline, repo_root, table};

/// One generated record, as the test knows it.
#[derive(Debug, Clone)]
struct Rec {
    shard: String,
    seq: String,
    arrival: String,
    dt: String,
    hour: String,
    /// `None` for a payload that is not JSON (archived under `data_b64`).
    order_id: Option<String>,
    total: f64,
    n: u64,
}

const SHARDS: [&str; 3] = [
    "shardId-000000000000",
    "shardId-000000000001",
    "shardId-000000000002",
];

/// `count` records over three shards and, with 37 s between arrivals, several hours across
/// midnight. Shard 0's sequence numbers cross digit counts (9 → 10 → 100); shards 1 and 2 have
/// 56-digit ones, far beyond 128 bits. Order ids repeat within and across shards.
fn records(count: usize) -> Vec<Rec> {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-25T22:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut next_seq = [7u128, 1, 1];
    (0..count)
        .map(|i| {
            let s = (i * 7 + i / 5) % 3;
            let seq = if s == 0 {
                next_seq[0].to_string()
            } else {
                format!("4959033827149025{s}{:039}", next_seq[s])
            };
            next_seq[s] += if s == 0 {
                3
            } else {
                1_000_000_000_000_000_000_007
            };
            let t = start + chrono::Duration::milliseconds(37_000 * i as i64 + 123);
            Rec {
                shard: SHARDS[s].to_owned(),
                seq,
                arrival: t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                dt: t.format("%Y-%m-%d").to_string(),
                hour: t.format("%H").to_string(),
                order_id: (i % 11 != 10).then(|| format!("o-{:03}", (i * 13) % 40)),
                total: (i % 97) as f64 + 0.25,
                n: i as u64,
            }
        })
        .collect()
}

fn envelope(r: &Rec) -> String {
    let mut v = serde_json::json!({
        "stream": "orders",
        "shard_id": r.shard,
        "sequence_number": r.seq,
        "partition_key": format!("k-{}", r.n % 5),
        "arrival_ts": r.arrival,
    });
    match &r.order_id {
        Some(id) => {
            v["data"] = serde_json::json!({"order_id": id, "customer_id": customer(id), "status": "paid", "total": r.total, "seq": r.n})
        }
        // "plain text n" in base64 is not needed exactly: any non-JSON payload goes to data_b64.
        None => v["data_b64"] = serde_json::Value::String(base64(&format!("plain text {}", r.n))),
    }
    v.to_string()
}

/// The customer of an order (the same for every record of the order).
fn customer(order_id: &str) -> String {
    let n: u64 = order_id.trim_start_matches("o-").parse().unwrap_or(0);
    format!("c-{}", n % 7)
}

fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (c as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn write_envelopes(path: &Path, recs: &[Rec]) {
    let text: String = recs.iter().map(|r| envelope(r) + "\n").collect();
    std::fs::write(path, text).unwrap();
}

/// Numeric order of decimal strings (leading zeros do not matter).
fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then(a.cmp(b))
}

/// `archive.toml`: the envelopes of `input` → the archive `./archive`, `max_records` a object.
fn archive_pipeline(input: &str, max_records: i64) -> Pipeline {
    Pipeline::new("archive")
        .source("records", "file")
        .set("path", input)
        .set("format", "envelope")
        .sink("archive", "archive", &["records"])
        .set("url", "file://./archive")
        .set("max_records", max_records)
}

/// Writes `pipeline` into `dir` and runs it there; it must succeed.
fn run_pipeline(dir: &Path, pipeline: &Pipeline) {
    let p = pipeline.write(dir);
    let out = Flux::run_pipeline(&p).current_dir(dir).run();
    assert!(
        out.code == Some(0),
        "{} failed:\n{}",
        p.file_name().unwrap().display(),
        out.stderr
    );
}

/// The work directory of one test: records, the archive, the views.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn run(&self, pipeline: &Pipeline) {
        run_pipeline(self.path(), pipeline);
    }
    /// Archives `recs` (from `input`), with the ddl sink running after the archive sink has
    /// committed (it reads the archive sink's dead-letter port).
    fn archive(&self, input: &str, recs: &[Rec], views: bool) {
        write_envelopes(&self.path().join(input), recs);
        self.run(&archive_pipeline(input, 25).when(views, |p| {
            p.sink("views", "ddl", &["archive.dead_letter"])
                .set("archive", "file://./archive")
                .set("stream", "orders")
                .set("out", "sql")
                .set("engines", ["duckdb"])
                .set(
                    "columns",
                    table([
                        ("order_id", "data.order_id"),
                        ("customer_id", "data.customer_id"),
                        ("status", "data.status"),
                        ("total", "data.total:double"),
                        ("n", "data.seq:bigint"),
                    ]),
                )
                .set("snapshot", "snapshot/*.jsonl")
        }));
    }
    fn views(&self) -> PathBuf {
        self.path().join("sql/duckdb/views.sql")
    }
    fn query(&self, sql: &str) -> Vec<serde_json::Value> {
        duckdb::query(self.path(), &self.views(), sql).unwrap_or_else(|e| panic!("{sql}\n{e}"))
    }
    fn scalar(&self, sql: &str) -> serde_json::Value {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone()
    }
}

/// The compaction query of docs/sql.md: the last record per order id, where "last" is the
/// highest sequence number within a shard, and across shards the newest arrival.
const COMPACTION: &str = "
SELECT order_id, shard_id, sequence_number
FROM (
  SELECT order_id, shard_id, sequence_number,
         row_number() OVER (PARTITION BY order_id ORDER BY arrival_ts DESC, shard_id DESC) AS pick
  FROM (
    SELECT order_id, shard_id, sequence_number, arrival_ts,
           row_number() OVER (
             PARTITION BY order_id, shard_id
             ORDER BY lpad(regexp_replace(sequence_number, '^0+', ''), 130, '0') DESC) AS rn
    FROM orders_archive
    WHERE order_id IS NOT NULL
  ) last_in_shard
  WHERE rn = 1
) last_overall
WHERE pick = 1";

/// Brute-force reference of the `compact` stage's semantics.
fn compact_reference(recs: &[Rec]) -> BTreeSet<(String, String, String)> {
    let mut last: BTreeMap<String, &Rec> = BTreeMap::new();
    for r in recs {
        let Some(id) = &r.order_id else { continue };
        let newer = match last.get(id) {
            None => true,
            Some(cur) if cur.shard == r.shard => seq_cmp(&r.seq, &cur.seq).is_gt(),
            Some(cur) => r.arrival > cur.arrival,
        };
        if newer {
            last.insert(id.clone(), r);
        }
    }
    last.values()
        .map(|r| (r.order_id.clone().unwrap(), r.shard.clone(), r.seq.clone()))
        .collect()
}

/// An object holding more than one gzip member's worth of envelopes (1 MiB) is a file of
/// several members. DuckDB's views and the `archive` source both read every record of it.
#[test]
fn objects_of_many_gzip_members_are_read_whole_by_duckdb_and_the_archive_source() {
    let w = Work::new();
    // One shard, one hour: all 36,000 records (about 9 MB of envelopes) go into one object.
    let recs: Vec<Rec> = (0..36_000u64)
        .map(|i| Rec {
            shard: SHARDS[1].to_owned(),
            seq: format!("4959033827149025{:040}", i + 1),
            arrival: format!(
                "2026-11-25T22:{:02}:{:02}.{:03}Z",
                i / 600,
                i / 10 % 60,
                i % 10 * 100
            ),
            dt: "2026-11-25".into(),
            hour: "22".into(),
            order_id: Some(format!("o-{i}")),
            total: i as f64 + 0.5,
            n: i,
        })
        .collect();
    write_envelopes(&w.path().join("records.jsonl"), &recs);
    w.run(
        &archive_pipeline("records.jsonl", 1_000_000)
            .sink("views", "ddl", &["archive.dead_letter"])
            .set("archive", "file://./archive")
            .set("stream", "orders")
            .set("out", "sql")
            .set("engines", ["duckdb"])
            .set("columns", table([("n", "data.seq:bigint")])),
    );
    let objects: Vec<PathBuf> = crate::support::run::files_under(&w.path().join("archive"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let members = gzip_members(&std::fs::read(&objects[0]).unwrap());
    assert!(members >= 5, "{members} gzip members");

    assert_eq!(w.scalar("SELECT count(*) FROM orders_archive"), 36_000);
    assert_eq!(
        w.scalar("SELECT sum(n) FROM orders_archive"),
        (0..36_000u64).sum::<u64>()
    );

    w.run(
        &Pipeline::new("read")
            .source("archive", "archive")
            .set("url", "file://./archive")
            .set("stream", "orders")
            .sink("out", "file", &["archive"])
            .set("path", "read.jsonl"),
    );
    let read = crate::support::run::read_jsonl(w.path().join("read.jsonl"));
    let seqs: Vec<&str> = read
        .iter()
        .map(|e| e["sequence_number"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = recs.iter().map(|r| r.seq.as_str()).collect();
    assert!(seqs == expected, "{} records read back", seqs.len());
}

/// The number of gzip members of a file.
fn gzip_members(mut body: &[u8]) -> usize {
    let mut n = 0;
    while !body.is_empty() {
        let mut one = flate2::bufread::GzDecoder::new(body);
        std::io::copy(&mut one, &mut std::io::sink()).unwrap();
        body = one.into_inner();
        n += 1;
    }
    n
}

#[test]
fn duckdb_views_over_a_generated_archive_return_the_expected_rows() {
    let w = Work::new();
    let recs = records(300);
    w.archive("records.jsonl", &recs, true);
    // The snapshot glob must match something for the live views to bind.
    std::fs::create_dir_all(w.path().join("snapshot")).unwrap();
    std::fs::write(w.path().join("snapshot/empty.jsonl"), "").unwrap();

    assert_eq!(w.scalar("SELECT count(*) FROM orders_archive"), 300);
    // Counts per partition, from the folders.
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for r in &recs {
        *expected
            .entry((r.dt.clone(), r.hour.clone(), r.shard.clone()))
            .or_default() += 1;
    }
    assert!(expected.keys().map(|k| &k.0).collect::<BTreeSet<_>>().len() == 2);
    let got: BTreeMap<(String, String, String), u64> = w
        .query("SELECT dt, hour, shard, count(*) AS n FROM orders_archive GROUP BY ALL")
        .iter()
        .map(|r| {
            (
                (
                    r["dt"].as_str().unwrap().to_owned(),
                    r["hour"].as_str().unwrap().to_owned(),
                    r["shard"].as_str().unwrap().to_owned(),
                ),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // Typed projections and non-JSON payloads.
    let json: Vec<&Rec> = recs.iter().filter(|r| r.order_id.is_some()).collect();
    assert_eq!(
        w.scalar("SELECT count(*) FROM orders_archive WHERE data_b64 IS NOT NULL"),
        (recs.len() - json.len()) as u64
    );
    let total: f64 = json.iter().map(|r| r.total).sum();
    let got = w
        .scalar("SELECT sum(total) FROM orders_archive")
        .as_f64()
        .unwrap();
    assert!((got - total).abs() < 1e-6, "{got} != {total}");
    assert_eq!(
        w.scalar("SELECT typeof(n) FROM orders_archive WHERE n IS NOT NULL LIMIT 1"),
        "BIGINT"
    );
    assert_eq!(
        w.scalar("SELECT max(n) FROM orders_archive"),
        json.iter().map(|r| r.n).max().unwrap()
    );
    // arrival_ts is a UTC timestamp.
    assert_eq!(
        w.scalar("SELECT strftime(min(arrival_ts), '%Y-%m-%dT%H:%M:%S.%gZ') FROM orders_archive"),
        recs[0].arrival
    );
    // A partition filter reads only that hour's objects and returns exactly its rows.
    let (dt, hour) = (&recs[150].dt, &recs[150].hour);
    let in_hour = recs
        .iter()
        .filter(|r| &r.dt == dt && &r.hour == hour)
        .count() as u64;
    assert_eq!(
        w.scalar(&format!(
            "SELECT count(*) FROM orders_archive WHERE dt = '{dt}' AND hour = '{hour}'"
        )),
        in_hour
    );
    // Checkpoints: each shard's last (numerically highest) sequence number.
    for shard in SHARDS {
        let last = recs
            .iter()
            .filter(|r| r.shard == shard)
            .map(|r| r.seq.as_str())
            .max_by(|a, b| seq_cmp(a, b))
            .unwrap();
        assert_eq!(
            w.scalar(&format!(
                "SELECT sequence_number FROM orders_checkpoints WHERE shard_id = '{shard}'"
            )),
            last
        );
    }
    // Compaction: the query equals the brute-force reference of the compact stage.
    let reference = compact_reference(&recs);
    assert!(reference.len() == 40, "{}", reference.len());
    let got: BTreeSet<(String, String, String)> = w
        .query(COMPACTION)
        .iter()
        .map(|r| {
            (
                r["order_id"].as_str().unwrap().to_owned(),
                r["shard_id"].as_str().unwrap().to_owned(),
                r["sequence_number"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, reference);
    // The `compact` stage over the same archive keeps the same records: the SQL and the stage
    // agree (records without an order_id go to its dead-letter port, as the query skips them).
    w.run(
        &Pipeline::new("compact")
            .source("archive", "archive")
            .set("url", "file://./archive")
            .set("stream", "orders")
            .transform("latest", "compact", &["archive"])
            .set("key", "$.data.order_id")
            .set("on_missing_key", "dead_letter")
            .sink("out", "file", &["latest"])
            .set("path", "compacted.jsonl")
            .set("format", "envelope")
            .sink("keyless", "file", &["latest.dead_letter"])
            .set("path", "keyless.jsonl")
            .set("format", "envelope"),
    );
    let staged: BTreeSet<(String, String, String)> =
        std::fs::read_to_string(w.path().join("compacted.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    e["data"]["order_id"].as_str().unwrap().to_owned(),
                    e["shard_id"].as_str().unwrap().to_owned(),
                    e["sequence_number"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    assert_eq!(
        staged, got,
        "the compact stage and the SQL compaction agree"
    );
}

/// Every (shard, sequence) in the unified view, asserting none appears twice.
fn unified_positions(w: &Work) -> (BTreeMap<(String, String), String>, u64) {
    let rows = w.query("SELECT shard_id, sequence_number, origin FROM orders_unified");
    let mut seen = BTreeMap::new();
    for r in &rows {
        let key = (
            r["shard_id"].as_str().unwrap().to_owned(),
            r["sequence_number"].as_str().unwrap().to_owned(),
        );
        let origin = r["origin"].as_str().unwrap().to_owned();
        if let Some(first) = seen.insert(key.clone(), origin.clone()) {
            panic!("{key:?} appears twice in the unified view ({first} and {origin})");
        }
    }
    (seen, rows.len() as u64)
}

#[test]
fn unified_view_holds_each_record_once_while_records_are_archived() {
    let w = Work::new();
    let recs = records(240);
    // The local snapshot of the live stream: every record (as a `file` sink writes them).
    std::fs::create_dir_all(w.path().join("snapshot")).unwrap();
    write_envelopes(&w.path().join("snapshot/live.jsonl"), &recs);
    // The first part is archived, then the views are written.
    w.archive("part-0.jsonl", &recs[..40], true);
    let (first, _) = unified_positions(&w);
    assert_eq!(first.len(), 240);
    assert_eq!(first.values().filter(|o| *o == "archive").count(), 40);

    // More is archived in the background, run after run (each run starts as a query ends, so
    // runs and queries overlap), while the unified view is queried.
    let queries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dir = w.path().to_owned();
    let more = recs.clone();
    let done = queries.clone();
    let archiver = std::thread::spawn(move || {
        for (i, end) in (50..=200).step_by(10).enumerate() {
            let seen = done.load(std::sync::atomic::Ordering::SeqCst);
            while done.load(std::sync::atomic::Ordering::SeqCst) == seen {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let input = format!("part-{}.jsonl", i + 1);
            write_envelopes(&dir.join(&input), &more[..end]);
            run_pipeline(&dir, &archive_pipeline(&input, 3));
        }
    });
    let mut archived_seen = BTreeSet::new();
    while !archiver.is_finished() {
        let (positions, rows) = unified_positions(&w);
        // Never twice, at most every record. A query that overlaps a commit may miss the
        // records of the object committed while it ran (docs/sql.md), never count one twice.
        assert!(rows <= 240, "{rows} rows");
        archived_seen.insert(positions.values().filter(|o| *o == "archive").count());
        queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    archiver.join().unwrap();
    // At rest: every record exactly once, the first 200 from the archive, the rest live.
    let (positions, rows) = unified_positions(&w);
    assert_eq!(rows, 240);
    let expected: BTreeSet<(String, String)> = recs
        .iter()
        .map(|r| (r.shard.clone(), r.seq.clone()))
        .collect();
    assert_eq!(positions.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let archived: BTreeSet<(String, String)> = recs[..200]
        .iter()
        .map(|r| (r.shard.clone(), r.seq.clone()))
        .collect();
    for (key, origin) in &positions {
        assert_eq!(
            origin,
            if archived.contains(key) {
                "archive"
            } else {
                "live"
            },
            "{key:?}"
        );
    }
    let queries = queries.load(std::sync::atomic::Ordering::SeqCst);
    assert!(queries >= 16, "only {queries} queries ran while archiving");
    assert!(archived_seen.len() >= 5, "{archived_seen:?}");
    eprintln!(
        "{queries} unified queries during archival; archived counts seen: {archived_seen:?}; DuckDB {}",
        duckdb::version()
    );
}

#[test]
fn unified_view_drops_archived_objects_past_the_checkpoint() {
    // An object a crashed run left past its shard's checkpoint (an orphan) is not counted:
    // those records come from the snapshot.
    let w = Work::new();
    let recs = records(60);
    std::fs::create_dir_all(w.path().join("snapshot")).unwrap();
    write_envelopes(&w.path().join("snapshot/live.jsonl"), &recs);
    w.archive("records.jsonl", &recs[..30], true);
    // Forge an orphan: a copy of the shard-0 records 30..60 in an object past the checkpoint.
    let shard0: Vec<&Rec> = recs[30..].iter().filter(|r| r.shard == SHARDS[0]).collect();
    let first = shard0.first().unwrap();
    let last = shard0.last().unwrap();
    let dir = w.path().join(format!(
        "archive/stream=orders/dt={}/hour={}/shard={}",
        first.dt, first.hour, first.shard
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    use std::io::Write;
    for r in &shard0 {
        writeln!(gz, "{}", envelope(r)).unwrap();
    }
    std::fs::write(
        dir.join(format!("{}-{}.json.gz", first.seq, last.seq)),
        gz.finish().unwrap(),
    )
    .unwrap();
    assert_eq!(
        w.scalar("SELECT count(*) FROM orders_archive"),
        30 + shard0.len() as u64
    );
    let (positions, rows) = unified_positions(&w);
    assert_eq!(rows, 60);
    assert_eq!(positions.values().filter(|o| *o == "archive").count(), 30);
}

/// Each engine's unified view, as the ddl sink writes it, executed by DuckDB: `duckdb` is the
/// DuckDB view itself; `hive` and `drill` are the Hive and Drill `CREATE VIEW … unified`
/// statements run unchanged (DuckDB accepts their backticks and functions) over stand-ins for
/// the tables they read, in the catalogs and schemas they name: the archive and checkpoints
/// are DuckDB's views over the same archive, the live table is the payloads of the live records
/// (what EMR's Kinesis handler exposes: no shard, no sequence number). Athena has no unified
/// view. Returns the init file.
fn unified_views_of_every_engine(w: &Work) -> PathBuf {
    let statements = |file: &str| -> Vec<String> {
        std::fs::read_to_string(w.path().join("sql").join(file))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .split(";\n")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let hive = statements("hive/unified.sql");
    let drill: Vec<String> = statements("drill/views.sql")
        .into_iter()
        .filter(|s| s.starts_with("CREATE OR REPLACE VIEW `dfs`.`tmp`.`orders_unified`"))
        .collect();
    assert_eq!(hive.len(), 2, "{hive:?}");
    assert_eq!(drill.len(), 1, "drill/views.sql has no unified view");
    let live = "read_json('live_payloads.jsonl', format = 'newline_delimited', columns = {'order_id': 'VARCHAR', 'seq': 'VARCHAR', 'total': 'VARCHAR', '_flux': 'STRUCT(fence STRUCT(replay_id VARCHAR), replay STRUCT(id VARCHAR))'})";
    let mut init = std::fs::read_to_string(w.views()).unwrap();
    init.push_str(&format!(
        r#"
CREATE SCHEMA "default";
CREATE VIEW "default".orders_archive AS SELECT * FROM memory.main.orders_archive;
CREATE VIEW "default".orders_checkpoints AS SELECT shard_id, sequence_number FROM memory.main.orders_checkpoints;
CREATE VIEW "default".orders_live AS SELECT * FROM {live};
ATTACH ':memory:' AS dfs;
CREATE SCHEMA dfs.tmp;
CREATE VIEW dfs.tmp.orders_archive AS SELECT * FROM memory.main.orders_archive;
CREATE VIEW dfs.tmp.orders_checkpoints AS SELECT * FROM memory.main.orders_checkpoints;
ATTACH ':memory:' AS hive;
CREATE SCHEMA hive."default";
CREATE VIEW hive."default".orders_live AS SELECT * FROM {live};
"#
    ));
    for s in hive.iter().chain(&drill) {
        init.push_str(s);
        init.push_str(";\n");
    }
    let path = w.path().join("all-unified.sql");
    std::fs::write(&path, init).unwrap();
    path
}

#[test]
fn every_engines_unified_view_counts_each_record_once_with_an_orphan_past_the_checkpoint() {
    // The state a crashed archival run leaves: objects stored past their shard's checkpoint
    // (the run stored them, then died before moving the checkpoint). The rule of every
    // unified view: a record comes from the archive iff it is at or below its shard's
    // checkpoint, else from the live stream if it is still there; so each record once.
    let w = Work::new();
    let mut recs = records(75);
    for r in &mut recs {
        // Hive and Drill match live records by a key of the payload: every payload is JSON.
        r.order_id.get_or_insert_with(|| format!("o-{}", r.n % 40));
    }
    let archive = |input: &str, upto: usize| {
        write_envelopes(&w.path().join(input), &recs[..upto]);
        w.run(&archive_pipeline(input, 4));
    };
    let checkpoint = |s: usize| {
        w.path().join(format!(
            "archive/_flux/checkpoints/stream=orders/{}.json",
            SHARDS[s]
        ))
    };
    archive("part-1.jsonl", 30);
    let first = std::fs::read(checkpoint(0)).unwrap();
    archive("part-2.jsonl", 60);
    // Shard 0's second run "crashed" before its checkpoint: that run's objects are orphans.
    std::fs::write(checkpoint(0), first).unwrap();
    // Shard 2 as a first run that crashed before any checkpoint: every object is an orphan.
    std::fs::remove_file(checkpoint(2)).unwrap();
    let archived = |i: usize| match SHARDS.iter().position(|s| *s == recs[i].shard) {
        Some(0) => i < 30,
        Some(1) => i < 60,
        _ => false,
    };
    // The live stream: records 0..10 have expired, 60..75 are not archived; it overlaps both
    // the checkpointed records and the orphans.
    let live = 10..75;
    std::fs::create_dir_all(w.path().join("snapshot")).unwrap();
    write_envelopes(&w.path().join("snapshot/live.jsonl"), &recs[live.clone()]);
    let payloads: String = recs[live.clone()]
        .iter()
        .map(|r| {
            let e: serde_json::Value = serde_json::from_str(&envelope(r)).unwrap();
            format!("{}\n", e["data"])
        })
        .collect();
    std::fs::write(w.path().join("live_payloads.jsonl"), payloads).unwrap();
    let orphans = (0..60).filter(|&i| !archived(i)).count();
    assert!(orphans >= 5, "{orphans}");
    assert!(
        (0..60)
            .filter(|&i| archived(i) && live.contains(&i))
            .count()
            >= 20
    );

    let columns = || {
        table([
            ("event_id", "data.seq"),
            ("order_id", "data.order_id"),
            ("total", "data.total:double"),
        ])
    };
    w.run(
        &Pipeline::new("views")
            .source("records", "file")
            .set("path", "snapshot/live.jsonl")
            .set("format", "envelope")
            .sink("views", "ddl", &["records"])
            .set("archive", "file://./archive")
            .set("stream", "orders")
            .set("out", "sql")
            .set("engines", ["duckdb"])
            .set("columns", columns())
            .set("snapshot", "snapshot/*.jsonl")
            // Hive reads archives on S3 only; the unified statements do not depend on where it is.
            .sink("cluster_views", "ddl", &["records"])
            .set("archive", "s3://acme-archive/kinesis")
            .set("stream", "orders")
            .set("out", "sql")
            .set("engines", ["hive", "drill"])
            .set("columns", columns())
            .set("live_key", "event_id"),
    );
    let init = unified_views_of_every_engine(&w);
    let run =
        |sql: &str| duckdb::query(w.path(), &init, sql).unwrap_or_else(|e| panic!("{sql}\n{e}"));
    // The archive really holds the orphans (60 records, of which `orphans` past the checkpoint).
    assert_eq!(
        run("SELECT count(*) AS n FROM orders_archive")[0]["n"],
        60,
        "the archive holds every stored record"
    );
    let by_position: BTreeMap<(String, String), usize> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.shard.clone(), r.seq.clone()), i))
        .collect();
    let engines = [
        (
            "duckdb",
            "SELECT shard_id || '/' || sequence_number AS id, origin FROM orders_unified",
        ),
        (
            "hive",
            "SELECT event_id AS id, origin FROM \"default\".orders_unified",
        ),
        (
            "drill",
            "SELECT event_id AS id, origin FROM dfs.tmp.orders_unified",
        ),
    ];
    let mut failures = Vec::new();
    for (engine, sql) in engines {
        let mut seen: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for row in run(sql) {
            let id = row["id"].as_str().unwrap();
            let i = if engine == "duckdb" {
                let (shard, seq) = id.split_once('/').unwrap();
                by_position[&(shard.to_owned(), seq.to_owned())]
            } else {
                id.parse().unwrap()
            };
            seen.entry(i)
                .or_default()
                .push(row["origin"].as_str().unwrap().to_owned());
        }
        for (i, r) in recs.iter().enumerate() {
            let expected = if archived(i) {
                vec!["archive".to_owned()]
            } else if live.contains(&i) {
                vec!["live".to_owned()]
            } else {
                vec![]
            };
            let got = seen.remove(&i).unwrap_or_default();
            if got != expected {
                failures.push(format!(
                    "{engine}: record {i} ({} {}): {got:?}, expected {expected:?}",
                    r.shard, r.seq
                ));
            }
        }
        for (i, got) in seen {
            failures.push(format!("{engine}: unknown record {i}: {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_example_queries_of_docs_sql_give_the_right_answers_in_duckdb() {
    // docs/sql.md's example queries (which tests/sql_docs.rs checks against every engine's
    // grammar) and its Python way of opening the views, run as written over a generated
    // archive, against references computed here.
    let doc = std::fs::read_to_string(repo_root().join("docs/sql.md")).unwrap();
    let w = Work::new();
    let recs = records(300);
    std::fs::create_dir_all(w.path().join("snapshot")).unwrap();
    write_envelopes(&w.path().join("snapshot/live.jsonl"), &recs);
    w.archive("records.jsonl", &recs[..200], true);
    let archived = &recs[..200];

    let examples = code_blocks(&doc, "Example queries (both routes)", "sql");
    let mut checked = BTreeSet::new();
    for (caption, sql) in &examples {
        let rows = w.query(sql.trim().trim_end_matches(';'));
        let text = |r: &serde_json::Value, c: &str| r[c].as_str().unwrap().to_owned();
        if caption.starts_with("Records per hour") {
            let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
            for r in archived.iter().filter(|r| r.dt == "2026-11-25") {
                *expected.entry(r.hour.parse().unwrap()).or_default() += 1;
            }
            assert!(expected.len() >= 2, "{expected:?}");
            let got: BTreeMap<u64, u64> = rows
                .iter()
                .map(|r| {
                    assert_eq!(r["dt"], "2026-11-25");
                    let n = |c: &str| {
                        r[c].as_u64()
                            .unwrap_or_else(|| panic!("{caption}: no integer {c} in {r}"))
                    };
                    (n("arrival_hour"), n("records"))
                })
                .collect();
            assert_eq!(got, expected, "{caption}");
        } else if caption.starts_with("Top customers by revenue") {
            // Each order once, at its latest state (the compaction rule).
            let mut revenue: BTreeMap<String, f64> = BTreeMap::new();
            for (order, shard, seq) in compact_reference(archived) {
                let r = archived
                    .iter()
                    .find(|r| r.shard == shard && r.seq == seq)
                    .unwrap();
                *revenue.entry(customer(&order)).or_default() += r.total;
            }
            let mut top: Vec<f64> = revenue.values().copied().collect();
            top.sort_by(|a, b| b.total_cmp(a));
            top.truncate(10);
            let mut got: Vec<f64> = Vec::new();
            for r in &rows {
                let c = text(r, "customer_id");
                let v = r["revenue"].as_f64().unwrap();
                assert!(
                    (v - revenue[&c]).abs() < 1e-6,
                    "{caption}: {c}: {v} != {}",
                    revenue[&c]
                );
                got.push(v);
            }
            got.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(got.len(), top.len(), "{caption}");
            for (g, t) in got.iter().zip(&top) {
                assert!((g - t).abs() < 1e-6, "{caption}: {got:?} != {top:?}");
            }
            // Summing every record instead of every order gives other numbers.
            let every_record: f64 = archived
                .iter()
                .filter(|r| r.order_id.is_some())
                .map(|r| r.total)
                .sum();
            assert!((got.iter().sum::<f64>() - every_record).abs() > 1.0);
        } else if caption.starts_with("The last record of each order") {
            let got: BTreeSet<(String, String, String)> = rows
                .iter()
                .map(|r| {
                    (
                        text(r, "order_id"),
                        text(r, "shard_id"),
                        text(r, "sequence_number"),
                    )
                })
                .collect();
            assert_eq!(got, compact_reference(archived), "{caption}");
        } else if caption.starts_with("Archived and live records") {
            let got: BTreeMap<String, u64> = rows
                .iter()
                .map(|r| (text(r, "origin"), r["records"].as_u64().unwrap()))
                .collect();
            let expected: BTreeMap<String, u64> =
                [("archive".to_owned(), 200), ("live".to_owned(), 100)].into();
            assert_eq!(got, expected, "{caption}");
        } else if caption.starts_with("How far each shard is archived") {
            assert_eq!(rows.len(), SHARDS.len(), "{caption}: {rows:?}");
        } else {
            panic!("docs/sql.md has a new example ({caption}): check its answer here");
        }
        checked.insert(caption.clone());
    }
    assert_eq!(checked.len(), 5, "{checked:?}");

    // The Python way of opening the views, as written.
    let python = code_blocks(&doc, "Route 1: DuckDB on one machine", "python");
    assert_eq!(python.len(), 1, "{python:?}");
    let out = std::process::Command::new(duckdb::python())
        .args(["-c", &python[0].1])
        .current_dir(w.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("archive") && stdout.contains("200") && stdout.contains("100"),
        "{stdout}"
    );
}
