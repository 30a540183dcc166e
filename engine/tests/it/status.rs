//! `flux-engine status` through the real binary: on archives written by real runs (a local
//! directory, and S3 on moto), after crashes at the crash points, with a deleted checkpoint,
//! a lapsed lease and a recorded gap; with `--kinesis` against kinesis-local (lag, expiry,
//! a gap about to be found). Exit codes: 0 healthy, 1 needs action, 2 usage or unreachable.

use std::path::{Path, PathBuf};

use crate::support::emulators::{self, Emulators, unique};
use crate::support::records::{quickstart, sample_orders};
use crate::support::{Flux, Pipeline};
use aws_sdk_kinesis::primitives::Blob;

/// Runs `status … --json` (plus `args`) and returns the exit code, the report and stderr.
fn status(dir: &Path, args: &[&str], emu: Option<&Emulators>) -> (i32, serde_json::Value, String) {
    let out = with_emulators(Flux::new().arg("status").args(args).arg("--json"), emu)
        .current_dir(dir)
        .run();
    let code = out.code_or_signal();
    let (stdout, stderr) = (out.stdout, out.stderr);
    let json = if stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    (code, json, stderr)
}

/// `flux` pointed at the emulators, when given.
fn with_emulators(flux: Flux, emu: Option<&Emulators>) -> Flux {
    match emu {
        Some(e) => flux.emulators(e),
        None => flux,
    }
}

/// The problem kinds of the first stream.
fn problems(report: &serde_json::Value) -> Vec<String> {
    report["streams"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Archives the sample orders with a small pipeline (file source, 4 shards; the sink with a
/// 1 s lease) into `archive`; `fault` sets FLUX_FAULT.
fn archive_sample(dir: &Path, archive: &str, fault: Option<&str>, emu: Option<&Emulators>) -> i32 {
    let p = Pipeline::new("archive")
        .source("orders", "file")
        .set("path", sample_orders())
        .set("stream", "orders")
        .set("partition_key", "$.customer_id")
        .set("default_partition_key", "unkeyed")
        .set("arrival_ts", "$.created_at")
        .set("shards", 4)
        .sink("archive", "archive", &["orders"])
        .set("url", archive)
        .set("max_records", 400)
        .set("lease_ttl", "1s")
        .sink("rejects", "file", &["orders.dead_letter"])
        .set("path", "rejects.jsonl")
        .write(dir);
    with_emulators(Flux::run_pipeline(&p).fault(fault), emu)
        .current_dir(dir)
        .run()
        .code_or_signal()
}

fn checkpoint_files(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("_flux/checkpoints/stream=orders"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The quickstart's archive, as a real run leaves it: healthy, every shard with the checkpoint
/// its file holds, the run's manifest; the table for people says the same.
#[test]
fn a_fresh_archive_is_healthy_and_reports_every_shard_and_the_run() {
    let dir = tempfile::tempdir().unwrap();
    Flux::run_pipeline(quickstart())
        .var("input", sample_orders().display())
        .current_dir(dir.path())
        .run()
        .success();
    let (code, report, err) = status(dir.path(), &["file://./archive"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["version"], 1);
    assert_eq!(report["healthy"], true);
    let stream = &report["streams"][0];
    assert_eq!(stream["stream"], "orders");
    assert_eq!(stream["lease"]["state"], "none");
    let shards = stream["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 4);
    for (shard, file) in shards
        .iter()
        .zip(checkpoint_files(&dir.path().join("archive")))
    {
        let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(shard["shard_id"], cp["shard_id"]);
        assert_eq!(
            shard["checkpoint"]["sequence_number"],
            cp["sequence_number"]
        );
        assert_eq!(shard["checkpoint"]["arrival_ts"], cp["arrival_ts"]);
        assert!(shard["checkpoint"]["age_seconds"].as_i64().unwrap() > 0);
        assert_eq!(shard["objects"], 3);
        assert_eq!(
            shard["closed"],
            serde_json::Value::Null,
            "unknown without --kinesis"
        );
    }
    let runs = stream["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["records"], 2995);
    assert_eq!(runs[0]["objects"], 12);
    for empty in ["gaps", "staged", "orphans", "temporary", "problems"] {
        assert_eq!(stream[empty].as_array().unwrap().len(), 0, "{empty}");
    }
    let out = Flux::new()
        .args(["status", "archive", "--stream", "orders"])
        .current_dir(dir.path())
        .run();
    let table = out.stdout;
    assert_eq!(out.code, Some(0));
    assert!(table.contains("stream orders: OK"), "{table}");
    assert!(table.contains("shardId-000000000003"), "{table}");
    assert!(table.contains("2995 records"), "{table}");
}

/// A run killed between a commit and its promotion leaves a staged object the checkpoint names
/// and its lease; once the lease lapses, status needs action, says how to release it, and is
/// healthy again after `lease release` and a rerun.
#[test]
fn a_killed_run_leaves_a_lapsed_lease_and_a_staged_object() {
    let dir = tempfile::tempdir().unwrap();
    let code = archive_sample(
        dir.path(),
        "file://./archive",
        Some("after_checkpoint:2"),
        None,
    );
    assert_ne!(code, 0);
    // The lease lasts 1 s; wait (bounded) until status sees it lapsed.
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, report, err) = status(dir.path(), &["archive"], None);
        assert!(!report.is_null(), "{err}");
        last = report;
        if last["streams"][0]["lease"]["state"] == "lapsed" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stream = &last["streams"][0];
    assert_eq!(stream["lease"]["state"], "lapsed", "{last:#}");
    assert!(stream["lease"]["expires_in_seconds"].as_i64().unwrap() <= 0);
    assert_eq!(
        stream["runs"].as_array().unwrap().len(),
        0,
        "a killed run writes no manifest"
    );
    let staged = stream["staged"].as_array().unwrap();
    assert_eq!(staged.len(), 1, "{last:#}");
    assert_eq!(staged[0]["state"], "awaiting_promotion");
    let committing = stream["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["checkpoint"]["awaiting_promotion"] == true)
        .count();
    assert_eq!(committing, 1);
    let (code, report, _) = status(dir.path(), &["archive"], None);
    assert_eq!(code, 1);
    assert_eq!(problems(&report), ["lease_lapsed"]);
    let message = report["streams"][0]["problems"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("lease release"), "{message}");

    Flux::new()
        .args(["lease", "release", "archive", "--stream", "orders"])
        .current_dir(dir.path())
        .run()
        .success();
    let (code, report, _) = status(dir.path(), &["archive"], None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["streams"][0]["lease"]["state"], "released");

    assert_eq!(
        archive_sample(dir.path(), "file://./archive", None, None),
        0
    );
    let (code, report, _) = status(dir.path(), &["archive"], None);
    assert_eq!(code, 0, "{report:#}");
    let stream = &report["streams"][0];
    assert_eq!(
        stream["staged"].as_array().unwrap().len(),
        0,
        "promoted by the rerun"
    );
    assert_eq!(stream["runs"][0]["status"], "completed");
}

/// A staged object above its checkpoint (a run killed before its commit) is `pending`; a
/// temporary file is listed; a deleted checkpoint turns its shard's objects into orphans that the
/// next run would delete: that needs action.
#[test]
fn pending_staged_temporary_and_orphaned_objects_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    assert_ne!(
        archive_sample(dir.path(), "archive", Some("after_object:3"), None),
        0
    );
    let (_, report, err) = status(dir.path(), &["archive"], None);
    let stream = &report["streams"][0];
    let states: Vec<&str> = stream["staged"]
        .as_array()
        .unwrap_or_else(|| panic!("{err}"))
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending"], "{report:#}");

    let dir = tempfile::tempdir().unwrap();
    assert_eq!(archive_sample(dir.path(), "archive", None, None), 0);
    let root_ok = dir.path().join("archive");
    let shard_dir = std::fs::read_dir(root_ok.join("stream=orders"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let hour = std::fs::read_dir(&shard_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let shard = std::fs::read_dir(&hour)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(shard.join("~tmp-99999-0"), b"half").unwrap();
    let (code, report, _) = status(dir.path(), &["archive"], None);
    assert_eq!(code, 0, "a temporary file needs no action: {report:#}");
    let temporary = report["streams"][0]["temporary"].as_array().unwrap();
    assert_eq!(temporary.len(), 1);
    assert!(
        temporary[0]["key"]
            .as_str()
            .unwrap()
            .ends_with("/~tmp-99999-0")
    );
    assert_eq!(temporary[0]["bytes"], 4);

    let deleted = checkpoint_files(&root_ok).remove(0);
    let shard_id = deleted.file_stem().unwrap().to_string_lossy().into_owned();
    std::fs::remove_file(&deleted).unwrap();
    let (code, report, _) = status(dir.path(), &["archive"], None);
    assert_eq!(code, 1);
    assert_eq!(problems(&report), ["orphans"]);
    let orphans = report["streams"][0]["orphans"].as_array().unwrap();
    assert!(!orphans.is_empty());
    assert!(
        orphans
            .iter()
            .all(|o| o.as_str().unwrap().contains(&format!("shard={shard_id}/"))),
        "{orphans:?}"
    );
}

/// Bad arguments and missing archives: exit 2 with a message naming the argument; nothing
/// printed on standard output.
#[test]
fn bad_input_is_a_usage_error_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(archive_sample(dir.path(), "archive", None, None), 0);
    for (args, says) in [
        (vec!["file://./archvie"], "no archive there"),
        (vec!["gs://bucket/x"], "the archive URL"),
        (vec!["archive", "--stream", "../etc"], "--stream"),
        (vec!["archive", "--stream", "nosuch"], "--stream nosuch"),
        (
            vec!["archive", "--expiry-margin", "1h"],
            "--expiry-margin needs --kinesis",
        ),
        (
            vec!["archive", "--kinesis", "--expiry-margin", "soon"],
            "--expiry-margin",
        ),
        (
            vec!["archive", "--ack-gaps-until", "yesterday"],
            "--ack-gaps-until",
        ),
        (
            vec!["archive", "--kinesis-endpoint", "127.0.0.1:1"],
            "--kinesis-endpoint",
        ),
    ] {
        let (code, report, err) = status(dir.path(), &args, None);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(report.is_null(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // An empty directory is no archive either.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let (code, _, err) = status(dir.path(), &["empty"], None);
    assert_eq!(code, 2);
    assert!(err.contains("no archive there"), "{err}");
    // An unreachable Kinesis is exit 2 too, naming Kinesis.
    let (code, _, err) = status(
        dir.path(),
        &["archive", "--kinesis-endpoint", "http://127.0.0.1:1"],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Kinesis"), "{err}");
}

/// On S3 (moto): the same report from a real run's archive; an incomplete multipart upload is
/// listed as temporary; a missing bucket is exit 2 saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_archive_is_reported_with_its_incomplete_uploads() {
    let emu = emulators::get();
    let s3 = emu.s3().await;
    let bucket = unique("status");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}/archive");
    assert_eq!(archive_sample(dir.path(), &url, None, Some(&emu)), 0);
    s3.create_multipart_upload()
        .bucket(&bucket)
        .key("archive/stream=orders/dt=2026-11-25/hour=10/shard=shardId-000000000000/1-2.json.gz")
        .send()
        .await
        .unwrap();
    let (code, report, err) = status(dir.path(), &[&url], Some(&emu));
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["archive"], url);
    let stream = &report["streams"][0];
    assert_eq!(stream["shards"].as_array().unwrap().len(), 4);
    assert_eq!(stream["runs"][0]["records"], 2995);
    let temporary = stream["temporary"].as_array().unwrap();
    assert_eq!(temporary.len(), 1, "{stream:#}");
    assert!(
        temporary[0]["key"]
            .as_str()
            .unwrap()
            .ends_with("/1-2.json.gz")
    );
    assert!(temporary[0]["since"].is_string());

    let (code, _, err) = status(dir.path(), &[&format!("s3://{bucket}-gone/x")], Some(&emu));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");
    let (code, _, err) = status(
        dir.path(),
        &[&format!("s3://{bucket}/elsewhere")],
        Some(&emu),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no archive there"), "{err}");
}

/// With `--kinesis` (kinesis-local): open shards, the lag and the time left for unarchived
/// records; expiry within the margin needs action; a checkpoint older than the stream's oldest
/// record is a gap about to be found, and a recorded gap needs action until acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kinesis_it_reports_lag_expiry_and_gaps() {
    let emu = emulators::get();
    let kinesis = emu.kinesis().await;
    let stream = unique("status");
    emulators::create_stream(&kinesis, &stream, 2).await;
    let put = |n: usize| {
        let (kinesis, stream) = (kinesis.clone(), stream.clone());
        async move {
            let mut firsts = std::collections::BTreeMap::new();
            for i in 0..n {
                let out = kinesis
                    .put_record()
                    .stream_name(&stream)
                    .partition_key(format!("k-{i}"))
                    .data(Blob::new(format!("{{\"i\":{i}}}")))
                    .send()
                    .await
                    .unwrap();
                firsts
                    .entry(out.shard_id().to_owned())
                    .or_insert_with(|| out.sequence_number().to_owned());
            }
            firsts
        }
    };
    put(20).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let run = |allow_gaps: bool| {
        let url = format!("file://{}", archive.display());
        let p = Pipeline::kinesis_archiver("k", &stream, &url)
            .stage("stream")
            .set("allow_gaps", allow_gaps)
            .write(dir.path());
        let out = Flux::run_pipeline(&p)
            .emulators(&emu)
            .current_dir(dir.path())
            .run();
        (out.code, out.stderr)
    };
    let (code, err) = run(false);
    assert_eq!(code, Some(0), "{err}");
    let url = archive.to_str().unwrap().to_owned();
    let (code, report, err) = status(dir.path(), &[&url, "--kinesis"], Some(&emu));
    assert_eq!(code, 0, "{err}");
    let s = &report["streams"][0];
    assert_eq!(s["kinesis"]["open_shards"], 2);
    assert_eq!(s["kinesis"]["retention_hours"], 24);
    for shard in s["shards"].as_array().unwrap() {
        assert_eq!(shard["closed"], false);
        assert_eq!(shard["kinesis"]["behind_ms"], 0, "caught up: {shard:#}");
        assert!(shard["kinesis"]["expires_in_seconds"].is_null());
    }

    // New records: each shard's oldest unarchived record is the first one put after the run.
    let firsts = put(10).await;
    let (code, report, err) = status(dir.path(), &[&url, "--kinesis"], Some(&emu));
    assert_eq!(code, 0, "{err}");
    for shard in report["streams"][0]["shards"].as_array().unwrap() {
        let id = shard["shard_id"].as_str().unwrap();
        let live = &shard["kinesis"];
        assert_eq!(
            live["oldest_unarchived_sequence_number"].as_str(),
            firsts.get(id).map(String::as_str),
            "{shard:#}"
        );
        let left = live["expires_in_seconds"].as_i64().unwrap();
        assert!(left > 0 && left <= 24 * 3600, "{left}");
    }
    // Within a 24 h margin, every unarchived record needs action.
    let (code, report, _) = status(
        dir.path(),
        &[&url, "--kinesis", "--expiry-margin", "24h"],
        Some(&emu),
    );
    assert_eq!(code, 1);
    assert!(
        problems(&report).iter().all(|k| k == "expiry"),
        "{report:#}"
    );
    // The table for people shows the lag columns.
    let table = Flux::new()
        .args(["status", &url, "--kinesis"])
        .emulators(&emu)
        .run()
        .stdout;
    assert!(
        table.contains("behind") && table.contains("expires in"),
        "{table}"
    );

    // A checkpoint before the oldest record still in the stream: a gap the next run will find.
    let cp = checkpoint_files_of(&archive, &stream).remove(0);
    let mut body: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    body["sequence_number"] = "1".into();
    std::fs::write(&cp, serde_json::to_vec(&body).unwrap()).unwrap();
    let (code, report, _) = status(dir.path(), &[&url, "--kinesis"], Some(&emu));
    assert_eq!(code, 1);
    assert!(
        problems(&report).contains(&"gap_pending".to_owned()),
        "{report:#}"
    );
    // The run with allow_gaps records it; the recorded gap needs action until acknowledged.
    let (code, err) = run(true);
    assert_eq!(code, Some(0), "{err}");
    let (code, report, _) = status(dir.path(), &[&url], None);
    assert_eq!(code, 1);
    assert_eq!(problems(&report), ["gap"]);
    let found = report["streams"][0]["gaps"][0]["found_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, report, _) = status(dir.path(), &[&url, "--ack-gaps-until", &found], None);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["streams"][0]["gaps"][0]["acknowledged"], true);

    // A stream of the archive that Kinesis does not have needs action.
    let other = dir.path().join("other");
    let moved = other.join(format!("_flux/checkpoints/stream={stream}-gone"));
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::copy(&cp, moved.join(cp.file_name().unwrap())).unwrap();
    let mut fixed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    fixed["stream"] = format!("{stream}-gone").into();
    std::fs::write(
        moved.join(cp.file_name().unwrap()),
        serde_json::to_vec(&fixed).unwrap(),
    )
    .unwrap();
    let (code, report, err) = status(
        dir.path(),
        &[other.to_str().unwrap(), "--kinesis"],
        Some(&emu),
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(problems(&report), ["stream_missing"]);
}

fn checkpoint_files_of(root: &Path, stream: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(root.join(format!("_flux/checkpoints/stream={stream}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    v.sort();
    v
}
