//! `flux-engine ddl`: the `ddl` sink's SQL for an existing archive, without a pipeline. The
//! DuckDB views of a local archive written by a real run are executed by DuckDB from another
//! directory (the paths are absolute); files are never overwritten unless asked, nor written
//! outside `--out`; for S3 the DuckDB secret carries the AWS settings' region and endpoint, and
//! DuckDB reads the archive on moto through it.

use std::path::Path;

use crate::support::emulators::{self, unique};
use crate::support::{duckdb, flux_engine, repo_root, text};

fn quickstart(dir: &Path, archive: &str, emu: Option<&emulators::Emulators>) {
    let mut cmd = flux_engine(&[
        "run",
        repo_root()
            .join("pipelines/quickstart.toml")
            .to_str()
            .unwrap(),
        "--var",
        &format!("archive={archive}"),
        "--var",
        &format!(
            "input={}",
            repo_root().join("examples/orders.jsonl").display()
        ),
        "--progress",
        "off",
    ]);
    if let Some(e) = emu {
        e.apply(&mut cmd);
    }
    let out = cmd.current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}

fn ddl(dir: &Path, args: &[&str], emu: Option<&emulators::Emulators>) -> (i32, String, String) {
    let mut all = vec!["ddl"];
    all.extend_from_slice(args);
    let mut cmd = flux_engine(&all);
    if let Some(e) = emu {
        e.apply(&mut cmd);
    }
    let out = cmd.current_dir(dir).output().unwrap();
    let (o, e) = text(&out);
    (out.status.code().unwrap_or(-1), o, e)
}

/// Generated where the archive was written (relative arguments), executed by DuckDB from an
/// unrelated directory: every record, typed columns, each shard's checkpoint.
#[test]
fn duckdb_views_of_a_local_archive_work_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), "file://./archive", None);
    let (code, stdout, err) = ddl(
        dir.path(),
        &[
            "file://./archive",
            "--stream",
            "orders",
            "--out",
            "sql",
            "--column",
            "total=data.total:double",
            "--column",
            "customer_id=data.customer_id",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let views = dir
        .path()
        .join("sql/duckdb/views.sql")
        .canonicalize()
        .unwrap();
    let listed: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        listed.len(),
        4,
        "duckdb and drill for a local archive: {stdout}"
    );
    assert!(listed.contains(&views.to_str().unwrap()), "{stdout}");
    let text = std::fs::read_to_string(&views).unwrap();
    assert!(
        text.contains(&format!("-- Use: duckdb -init {}", views.display())),
        "the header names the file by its absolute path:\n{text}"
    );
    let archive = dir.path().join("archive").canonicalize().unwrap();
    assert!(
        text.contains(&format!("'{}/stream=orders/", archive.display())),
        "{text}"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let rows = duckdb::query(
        elsewhere.path(),
        &views,
        "SELECT count(*) AS n, count(DISTINCT shard) AS shards, count(total) AS typed, \
         (SELECT count(*) FROM orders_checkpoints) AS checkpoints, \
         (SELECT count(DISTINCT customer_id) FROM orders_archive) > 1 AS customers \
         FROM orders_archive",
    )
    .unwrap();
    assert_eq!(
        rows,
        [
            serde_json::json!({"n": 2995, "shards": 4, "typed": 2995, "checkpoints": 4, "customers": true})
        ]
    );
    // The same as the archive's own count (the sample's 3000 lines less the 5 rejects).
    let manifest = std::fs::read_dir(archive.join("_flux/runs/stream=orders"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(m["records"], 2995);
}

/// Existing files are kept unless `--force` (and nothing is written then); a link in --out
/// pointing elsewhere is refused; bad arguments are exit 2 naming the argument.
#[test]
fn existing_files_and_bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), "file://./archive", None);
    let args = [
        "archive",
        "--stream",
        "orders",
        "--out",
        "sql",
        "--engines",
        "duckdb",
    ];
    assert_eq!(ddl(dir.path(), &args, None).0, 0);
    let views = dir.path().join("sql/duckdb/views.sql");
    std::fs::write(&views, "-- mine").unwrap();
    let (code, stdout, err) = ddl(dir.path(), &args, None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--force") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&views).unwrap(), "-- mine");
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(ddl(dir.path(), &forced, None).0, 0);
    assert!(
        std::fs::read_to_string(&views)
            .unwrap()
            .contains("CREATE OR REPLACE VIEW")
    );

    // A folder of --out that links elsewhere.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::create_dir(dir.path().join("sql2")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("sql2/duckdb")).unwrap();
    let (code, _, err) = ddl(
        dir.path(),
        &["archive", "--stream", "orders", "--out", "sql2", "--force"],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("link out of --out"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    for (args, says) in [
        (vec!["archvie", "--stream", "orders"], "no archive there"),
        (vec!["gs://b/x", "--stream", "orders"], "the archive URL"),
        (vec!["archive", "--stream", "../o"], "--stream"),
        (vec!["archive", "--stream", "nosuch"], "--stream nosuch"),
        (
            vec!["archive", "--stream", "orders", "--engines", "duck"],
            "--engines",
        ),
        (
            vec!["archive", "--stream", "orders", "--engines", "hive"],
            "leave \"hive\" out of --engines",
        ),
        (
            vec!["archive", "--stream", "orders", "--column", "x"],
            "--column",
        ),
        (
            vec![
                "archive",
                "--stream",
                "orders",
                "--column",
                "x=data.x:money",
            ],
            "money",
        ),
        (
            vec!["archive", "--stream", "orders", "--live-key", "id"],
            "--live-key",
        ),
    ] {
        let (code, stdout, err) = ddl(dir.path(), &args, None);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            stdout.is_empty() && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// An S3 archive (moto): every engine; the DuckDB secret carries the region and the endpoint
/// of the AWS settings (the environment's here, as the binary reads them); Athena projects the
/// archive's shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_archive_gets_every_engine_and_a_secret_with_endpoint_and_region() {
    let emu = emulators::get();
    let s3 = emu.s3().await;
    let bucket = unique("ddl-cli");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}/archive");
    quickstart(dir.path(), &url, Some(&emu));
    let (code, stdout, err) = ddl(
        dir.path(),
        &[&url, "--stream", "orders", "--out", "out"],
        Some(&emu),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    let duck = std::fs::read_to_string(dir.path().join("out/duckdb/views.sql")).unwrap();
    let host = emu.s3.strip_prefix("http://").unwrap();
    assert!(
        duck.contains(&format!(
            "CREATE SECRET IF NOT EXISTS flux_archive (TYPE s3, PROVIDER credential_chain, REGION 'us-east-1', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false);"
        )),
        "{duck}"
    );
    assert!(
        duck.contains(&format!("'s3://{bucket}/archive/stream=orders/dt=*")),
        "{duck}"
    );
    // The file as generated, run by DuckDB (with its S3 extensions) from another directory:
    // it reads the archive on moto through the secret's endpoint and region.
    let elsewhere = tempfile::tempdir().unwrap();
    let rows = duckdb::query_s3(
        elsewhere.path(),
        &dir.path().join("out/duckdb/views.sql"),
        "SELECT count(*) AS n, count(DISTINCT shard) AS shards, \
         (SELECT count(*) FROM orders_checkpoints) AS checkpoints FROM orders_archive",
    )
    .unwrap();
    assert_eq!(
        rows,
        [serde_json::json!({"n": 2995, "shards": 4, "checkpoints": 4})]
    );
    let athena = std::fs::read_to_string(dir.path().join("out/athena/archive.sql")).unwrap();
    assert!(
        athena.contains("'projection.shard.values' = 'shardId-000000000000,shardId-000000000001,shardId-000000000002,shardId-000000000003'"),
        "{athena}"
    );
    assert!(
        athena.contains("'projection.dt.range' = '2026-11-25,NOW'"),
        "{athena}"
    );
    // --region and --endpoint win over the environment.
    let (code, _, err) = ddl(
        dir.path(),
        &[
            &url,
            "--stream",
            "orders",
            "--out",
            "out2",
            "--engines",
            "duckdb",
            "--region",
            "eu-west-1",
            "--endpoint",
            &emu.s3,
        ],
        Some(&emu),
    );
    assert_eq!(code, 0, "{err}");
    let duck = std::fs::read_to_string(dir.path().join("out2/duckdb/views.sql")).unwrap();
    assert!(duck.contains("REGION 'eu-west-1'"), "{duck}");
    let (code, _, err) = ddl(
        dir.path(),
        &[&format!("s3://{bucket}-gone/a"), "--stream", "orders"],
        Some(&emu),
    );
    assert_eq!(code, 2, "{err}");
}

/// Issue 13: an archive of a stream that received replays. The DuckDB archive view has the
/// protocol's columns (`replay_id` for replayed copies, `is_fence`) and leaves fences out;
/// `--include-fences` keeps them, told apart by `is_fence`.
#[test]
fn archive_views_leave_out_fences_and_name_the_replay_of_copies() {
    let dir = tempfile::tempdir().unwrap();
    let fence = |phase: &str, seq: &str| {
        let data = format!(
            r#"{{"_flux":{{"fence":{{"replay_id":"INC-7","phase":"{phase}","mode":"overwrite","opened_at":"2026-11-25T12:00:00.000Z"}}}}}}"#
        );
        (seq.to_owned(), data)
    };
    let records = [
        ("1".to_owned(), r#"{"id":"o-1","total":5}"#.to_owned()),
        fence("open", "2"),
        (
            "3".to_owned(),
            r#"{"id":"o-1","total":5,"_flux":{"replay":{"id":"INC-7","mode":"overwrite"},"origin":{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"1","arrival_ts":"2026-11-25T10:00:00.000Z"}}}"#.to_owned(),
        ),
        fence("close", "4"),
        ("5".to_owned(), r#"{"id":"o-2","total":7,"_flux":{"ticket":"T-1"}}"#.to_owned()),
        ("6".to_owned(), "not json".to_owned()),
    ];
    let lines: Vec<String> = records
        .iter()
        .map(|(seq, data)| {
            serde_json::json!({
                "stream": "orders",
                "shard_id": "shardId-000000000000",
                "sequence_number": seq,
                "partition_key": "k",
                "arrival_ts": "2026-11-25T12:00:00.000Z",
                "data_b64": base64_of(data.as_bytes()),
            })
            .to_string()
        })
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.path().join("archive.toml"),
        "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\nformat = \"envelope\"\n\n\
         [sinks.archive]\ntype = \"archive\"\ninputs = [\"in\"]\nurl = \"file://./archive\"\n",
    )
    .unwrap();
    let out = flux_engine(&["run", "archive.toml", "--progress", "off"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let query =
        "SELECT sequence_number AS seq, replay_id, is_fence FROM orders_archive ORDER BY seq";
    let rows = |extra: &[&str], out_dir: &str| {
        let mut args = vec!["file://./archive", "--stream", "orders", "--out", out_dir];
        args.extend_from_slice(extra);
        let (code, _, err) = ddl(dir.path(), &args, None);
        assert_eq!(code, 0, "{err}");
        let views = dir.path().join(out_dir).join("duckdb/views.sql");
        duckdb::query(dir.path(), &views, query).unwrap()
    };
    let row = |seq: &str, replay: Option<&str>, is_fence: bool| serde_json::json!({"seq": seq, "replay_id": replay, "is_fence": is_fence});
    assert_eq!(
        rows(&[], "sql"),
        [
            row("1", None, false),
            row("3", Some("INC-7"), false),
            row("5", None, false),
            row("6", None, false),
        ]
    );
    assert_eq!(
        rows(&["--include-fences"], "sql-all"),
        [
            row("1", None, false),
            row("2", None, true),
            row("3", Some("INC-7"), false),
            row("4", None, true),
            row("5", None, false),
            row("6", None, false),
        ]
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
