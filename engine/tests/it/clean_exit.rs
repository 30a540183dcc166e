//! Clean exits: a failed run shuts its runtime down in order (no task or reader thread left
//! using it), and a closed standard output or error ends a command quietly, never with a panic.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::emulators::{self, unique};
use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::records::{envelope_json, sample_orders};
use crate::support::{Flux, Pipeline, Ran, repo_root, table};

/// Envelope lines of one archived object of `shard`, `n` records from sequence `first`.
fn object(stream: &str, shard: &str, first: u64, n: u64) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&envelope_json(
            stream,
            shard,
            first + i,
            &format!("k{i}"),
            &format!("2026-01-01T00:00:{:02}.000Z", i % 60),
            &format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(200)),
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
    let file = Pipeline::new("failing")
        .source("archive", "archive")
        .set("url", format!("s3://{bucket}/arch"))
        .set("stream", stream)
        .set(
            "aws",
            table([("endpoint", proxy.url.as_str()), ("region", "us-east-1")]),
        )
        .sink("out", "file", &["archive"])
        .set("path", dir.path().join("out.jsonl"))
        .write(dir.path());
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
        // The runtime as the `run` command gets it: the run's own, shut down when it ends.
        let summary = flux_engine::runtime::start(
            &pipeline,
            flux_engine::runtime::RunOptions {
                run_id: format!("clean-exit-{attempt}"),
                ..Default::default()
            },
        )
        .expect("the stages build")
        .wait_blocking();
        let error = summary.error.expect("the corrupt object fails the run");
        assert!(error.contains("shardId-000000000000"), "{error}");
        // The proxy notices a closed connection at its next chunk (every 50 ms).
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            proxy.trickling(),
            0,
            "downloads still open after the run returned (attempt {attempt})"
        );
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

/// Runs `flux-engine ARGS…` in `dir` with standard output (or error, with `close_stderr`) a pipe
/// whose reader is already gone: (exit code, the other stream's text).
fn with_closed(dir: &Path, args: &[&str], close_stderr: bool) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Flux::new()
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .command();
    if close_stderr {
        cmd.stderr(writer).stdout(Stdio::piped());
    } else {
        cmd.stdout(writer).stderr(Stdio::piped());
    }
    let out = cmd.output().unwrap();
    let other = if close_stderr {
        &out.stdout
    } else {
        &out.stderr
    };
    (
        out.status.code(),
        String::from_utf8_lossy(other).into_owned(),
    )
}

/// A pipeline `NAME.toml` in `dir` copying the payloads of every sample order to `out`.
fn copy_orders(dir: &Path, name: &str, out: &str) -> String {
    Pipeline::new(name)
        .source("orders", "file")
        .set("path", sample_orders())
        .sink("out", "file", &["orders"])
        .set("path", out)
        .set("format", "data")
        .write(dir)
        .display()
        .to_string()
}

/// A pipeline printing every sample order to standard output.
fn to_stdout(dir: &Path) -> String {
    copy_orders(dir, "to-stdout", "-")
}

#[test]
fn a_closed_standard_output_ends_every_command_quietly() {
    let root = repo_root();
    for args in [
        vec!["schema"],
        vec!["plan", "pipelines/quickstart.toml"],
        vec!["plan", "--format", "dot", "pipelines/quickstart.toml"],
        vec!["render", "pipelines/quickstart.toml"],
        vec![
            "validate",
            "pipelines/quickstart.toml",
            "pipelines/sql-views.toml",
        ],
        vec!["--help"],
    ] {
        let (code, stderr) = with_closed(&root, &args, false);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
    // Any other failure to write standard output is reported and fails the command.
    if Path::new("/dev/full").exists() {
        let out = Flux::new()
            .arg("schema")
            .current_dir(&root)
            .command()
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("error: cannot write to standard output"),
            "{stderr}"
        );
    }
    // The command's own result still decides the code.
    let (code, stderr) = with_closed(
        &root,
        &["validate", "tests/golden/bad/11-unknown-input.toml"],
        false,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown input"), "{stderr}");
}

#[test]
fn a_reader_that_goes_away_after_the_first_byte_ends_a_big_plan_quietly() {
    // A plan much longer than a pipe's buffer, so the command is still printing when the
    // reader goes away (`flux-engine plan big.toml | head -c1`).
    let dir = tempfile::tempdir().unwrap();
    let mut big = Pipeline::new("big")
        .source("orders", "file")
        .set("path", "-");
    for i in 0..2000 {
        let stage = format!("stage_with_a_long_name_{i}");
        big = big
            .transform(&stage, "filter", &["orders"])
            .set("where", format!("@.n == {i}"))
            .sink(&format!("sink_with_a_long_name_{i}"), "file", &[&stage])
            .set("path", "-");
    }
    big.write(dir.path());
    let out = with_reader_gone_after_one_byte(dir.path(), &["plan", "big.toml"]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// Runs `flux-engine ARGS…` in `dir` with standard output a pipe whose reader goes away after
/// the first byte (`| head -c1`).
fn with_reader_gone_after_one_byte(dir: &Path, args: &[&str]) -> Ran {
    let mut child = Flux::new()
        .args(args)
        .current_dir(dir)
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    Ran::from(child.wait_with_output().unwrap())
}

#[test]
fn a_closed_standard_error_ends_commands_quietly() {
    let root = repo_root();
    let (code, stdout) = with_closed(
        &root,
        &["validate", "tests/golden/bad/24-several-errors.toml"],
        true,
    );
    assert_eq!(code, Some(2), "{stdout}");
    let (code, stdout) = with_closed(&root, &["validate", "pipelines/quickstart.toml"], true);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("ok"), "{stdout}");
    // A run logs, reports progress and prints its summary on standard error.
    let dir = tempfile::tempdir().unwrap();
    copy_orders(dir.path(), "copy", "copy.jsonl");
    let (code, _) = with_closed(
        dir.path(),
        &[
            "run",
            "--progress",
            "log",
            "--progress-interval",
            "1",
            "copy.toml",
        ],
        true,
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copy.jsonl")).unwrap(),
        std::fs::read_to_string(root.join("examples/orders.jsonl")).unwrap()
    );
}

#[test]
fn a_run_writing_to_a_closed_standard_output_stops_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = to_stdout(dir.path());
    let (code, stderr) = with_closed(dir.path(), &["run", &file], false);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(141), "{stderr}");
    assert!(
        stderr.contains("stopped: standard output was closed by its reader"),
        "{stderr}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    // And with a reader that reads a little first (`| head -c1`): no panic, never a success.
    let out = with_reader_gone_after_one_byte(dir.path(), &["run", &file]);
    let stderr = out.stderr;
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The sample fits a pipe's buffer: all of it may be written before the reader goes.
    assert!(matches!(out.code, Some(0 | 141)), "{stderr}");
}

/// The same failing read, run by the binary several times: exit code 1 with the cause, never a
/// panic.
#[test]
fn a_failed_archive_read_never_panics_on_exit() {
    let harness = tokio::runtime::Runtime::new().unwrap();
    let read = slow_failing_read(&harness);
    let emu = emulators::get();
    for attempt in 0..5 {
        let out = Flux::new()
            .arg("run")
            .arg(&read.file)
            .emulators(&emu)
            .current_dir(read.dir.path())
            .run();
        let stderr = out.stderr;
        assert!(!stderr.contains("panicked"), "attempt {attempt}: {stderr}");
        assert_eq!(out.code, Some(1), "attempt {attempt}: {stderr}");
        assert!(stderr.contains("shardId-000000000000"), "{stderr}");
    }
}
