//! Clean exits: a failed run shuts its runtime down in order (no task or reader thread left
//! using it).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flux_tests::emulators::{self, unique};
use flux_tests::fault_proxy::{Fault, FaultProxy};
use flux_tests::flux_engine;

/// Envelope lines of one archived object of `shard`, `n` records from sequence `first`.
fn object(stream: &str, shard: &str, first: u64, n: u64) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            r#"{{"stream":"{stream}","shard_id":"{shard}","sequence_number":"{}","partition_key":"k{i}","arrival_ts":"2026-01-01T00:00:{:02}.000Z","data":{{"i":{i},"pad":"{}"}}}}"#,
            first + i,
            i % 60,
            "x".repeat(200)
        ));
        text.push('\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// Panics seen on tokio's threads (worker and blocking pool) while installed.
fn record_tokio_panics() -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or_default();
        if name.starts_with("tokio") {
            record
                .lock()
                .unwrap()
                .push(format!("thread {name} panicked: {info}"));
        }
        previous(info);
    }));
    seen
}

/// A failing archive read over slow S3: one shard's object is corrupt, the other shards'
/// objects trickle through a proxy (a batch of records takes seconds to arrive), so when the
/// run fails their readers are in the middle of downloads. The proxy and the test's own S3 calls
/// run on `harness`, which outlives the pipeline's runtime.
struct SlowFailingRead {
    proxy: FaultProxy,
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

fn slow_failing_read(harness: &tokio::runtime::Runtime) -> SlowFailingRead {
    let emu = emulators::get();
    let bucket = unique("clean-exit");
    let stream = "orders";
    let proxy = harness.block_on(async {
        let s3 = emu.s3().await;
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        for shard in 0..4u64 {
            let shard_id = format!("shardId-00000000000{shard}");
            let body = if shard == 0 {
                b"not gzip".to_vec()
            } else {
                object(stream, &shard_id, 1, 3000)
            };
            s3.put_object()
                .bucket(&bucket)
                .key(format!(
                    "arch/stream={stream}/dt=2026-01-01/hour=00/shard={shard_id}/1-3000.json.gz"
                ))
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
        let proxy = FaultProxy::start(&emu.s3).await;
        proxy.plan(
            "",
            vec![
                Some(Fault::Trickle {
                    chunk: 4 * 1024,
                    pause: Duration::from_millis(50),
                });
                10_000
            ],
        );
        proxy
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("failing.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[sources.archive]
type = "archive"
url = "s3://{bucket}/arch"
stream = "{stream}"
aws = {{ endpoint = "{}", region = "us-east-1" }}

[sinks.out]
type = "file"
inputs = ["archive"]
path = "{}"
"#,
            proxy.url,
            dir.path().join("out.jsonl").display()
        ),
    )
    .unwrap();
    SlowFailingRead { proxy, dir, file }
}

/// The run must stop its readers before it returns: a reader thread still using the runtime
/// after the `run` command shuts it down panicked ("A Tokio 1.x context was found, but it is
/// being shutdown") about one run in three. Checked twice: no download is still open once `run`
/// has returned (before, readers went on until their next batch), and no panic after the
/// runtime is shut down as the command does.
#[test]
fn a_failed_archive_read_leaves_nothing_running_on_the_runtime() {
    let harness = tokio::runtime::Runtime::new().unwrap();
    let SlowFailingRead {
        proxy,
        file,
        dir: _dir,
    } = slow_failing_read(&harness);
    // Credentials come from the environment `tests/emulators.sh env` sets.
    let loaded = flux_engine::config::load_file(file.to_str().unwrap(), &Default::default());
    let spec = loaded.spec.expect("the pipeline loads");
    let (pipeline, diags) = flux_engine::compile::compile(&spec);
    let pipeline = pipeline.unwrap_or_else(|| panic!("{diags:?}"));

    let panics = record_tokio_panics();
    for attempt in 0..3 {
        // The runtime as the `run` command builds and ends it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .max_blocking_threads(flux_stages::source::archive::BLOCKING_THREADS)
            .build()
            .unwrap();
        let report = rt
            .block_on(flux_engine::runtime::run(
                &pipeline,
                &format!("clean-exit-{attempt}"),
                Default::default(),
                |_| {},
            ))
            .expect("the stages build");
        let error = report.error.expect("the corrupt object fails the run");
        assert!(error.contains("shardId-000000000000"), "{error}");
        // The proxy notices a closed connection at its next chunk (every 50 ms).
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            proxy.trickling(),
            0,
            "downloads still open after the run returned (attempt {attempt})"
        );
        rt.shutdown_background();
        // A process lives on for a moment after its runtime is gone (printing the summary,
        // exiting): anything still reading would use the runtime now.
        std::thread::sleep(Duration::from_millis(500));
    }
    let seen = panics.lock().unwrap().clone();
    assert!(
        seen.is_empty(),
        "panics after the run ended:\n{}",
        seen.join("\n")
    );
}

/// The same failing read, run by the binary several times: exit code 1 with the cause, never a
/// panic.
#[test]
fn a_failed_archive_read_never_panics_on_exit() {
    let harness = tokio::runtime::Runtime::new().unwrap();
    let read = slow_failing_read(&harness);
    let emu = emulators::get();
    for attempt in 0..5 {
        let mut cmd = flux_engine(&["run", read.file.to_str().unwrap()]);
        emu.apply(&mut cmd);
        let out = cmd.current_dir(read.dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "attempt {attempt}: {stderr}");
        assert_eq!(out.status.code(), Some(1), "attempt {attempt}: {stderr}");
        assert!(stderr.contains("shardId-000000000000"), "{stderr}");
    }
}
