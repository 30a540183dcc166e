//! The local unified view over a real stream (kinesis-local): part of the stream is archived,
//! then one run snapshots the whole stream with the `kinesis` source into a `file` sink and
//! writes the DuckDB views with the `ddl` sink; DuckDB's unified view then holds every record
//! of the stream exactly once (archived ones from the archive, the rest from the snapshot).

use std::collections::BTreeSet;

use crate::support::emulators::{self, unique};
use crate::support::{duckdb, flux_engine, text};
use aws_sdk_kinesis::primitives::Blob;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unified_view_holds_each_record_of_the_stream_once() {
    let emu = emulators::get();
    let kinesis = emu.kinesis().await;
    let stream = unique("orders");
    emulators::create_stream(&kinesis, &stream, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut put = BTreeSet::new();
    let put_records = |from: usize, to: usize| {
        let kinesis = kinesis.clone();
        let stream = stream.clone();
        async move {
            let mut out = Vec::new();
            for i in from..to {
                let r = kinesis
                    .put_record()
                    .stream_name(&stream)
                    .partition_key(format!("c-{}", i % 7))
                    .data(Blob::new(
                        format!(
                            r#"{{"event_id":"e-{i}","order_id":"o-{}","total":{i}.5}}"#,
                            i % 9
                        )
                        .into_bytes(),
                    ))
                    .send()
                    .await
                    .unwrap();
                out.push((r.shard_id().to_owned(), r.sequence_number().to_owned()));
            }
            out
        }
    };
    put.extend(put_records(0, 30).await);

    let run = |name: &str, body: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let mut cmd = flux_engine(&["run", p.to_str().unwrap(), "--progress", "off"]);
        emu.apply(&mut cmd);
        let out = cmd.current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out).1);
    };
    // Archive what is in the stream now.
    run(
        "archive.toml",
        format!(
            r#"
[sources.stream]
type = "kinesis"
stream = "{stream}"
start = "checkpoint"
checkpoints = "file://./archive"
poll_interval = "20ms"
idle_interval = "50ms"

[sinks.archive]
type = "archive"
inputs = ["stream"]
url = "file://./archive"
max_records = 8
"#
        ),
    );
    // More records arrive that are not archived.
    let later = put_records(30, 50).await;
    put.extend(later.iter().cloned());
    // One run: the snapshot of the whole stream, and the views.
    run(
        "views.toml",
        format!(
            r#"
[sources.live]
type = "kinesis"
stream = "{stream}"
start = "trim_horizon"
poll_interval = "20ms"
idle_interval = "50ms"

[sinks.snapshot]
type = "file"
inputs = ["live"]
path = "snapshot/{stream}.jsonl"
format = "envelope"

[sinks.views]
type = "ddl"
inputs = ["live"]
archive = "file://./archive"
stream = "{stream}"
out = "sql"
engines = ["duckdb"]
columns = {{ event_id = "data.event_id", total = "data.total:double" }}
snapshot = "snapshot/*.jsonl"
names = {{ archive = "orders_archive", live = "orders_live", unified = "orders_unified", checkpoints = "orders_checkpoints" }}
"#
        ),
    );
    let views = dir.path().join("sql/duckdb/views.sql");
    let rows = duckdb::query(
        dir.path(),
        &views,
        "SELECT shard_id, sequence_number, origin, event_id FROM orders_unified",
    )
    .unwrap();
    let mut seen = BTreeSet::new();
    for r in &rows {
        let key = (
            r["shard_id"].as_str().unwrap().to_owned(),
            r["sequence_number"].as_str().unwrap().to_owned(),
        );
        assert!(seen.insert(key.clone()), "{key:?} twice");
        let archived = !later.contains(&key);
        assert_eq!(
            r["origin"],
            if archived { "archive" } else { "live" },
            "{key:?}"
        );
    }
    assert_eq!(rows.len(), 50);
    assert_eq!(seen, put);
    let ids: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 50);
    // The snapshot holds the whole stream; the archive the first 30.
    let count = |sql: &str| duckdb::query(dir.path(), &views, sql).unwrap()[0]["n"].clone();
    assert_eq!(count("SELECT count(*) AS n FROM orders_live"), 50);
    assert_eq!(count("SELECT count(*) AS n FROM orders_archive"), 30);
}
