//! The embeddable API end to end on local files: start, snapshots, cancel, the summary as data.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::{Outcome, RunOptions, RunState, StartError, start};
use crate::compile::Pipeline;

fn compile(dir: &Path, toml: &str) -> Pipeline {
    let file = dir.join("p.toml");
    std::fs::write(&file, toml).unwrap();
    let loaded = crate::config::load_file(file.to_str().unwrap(), &Default::default());
    let spec = loaded
        .spec
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    let (p, diags) = crate::compile::compile(&spec);
    p.unwrap_or_else(|| panic!("{diags:?}"))
}

fn options(run_id: &str) -> RunOptions {
    RunOptions {
        run_id: run_id.into(),
        ..RunOptions::default()
    }
}

#[test]
fn a_finished_run_returns_its_summary_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let p = compile(
        dir.path(),
        &format!(
            r#"
[pipeline]
name = "api"
[sources.in]
type = "file"
path = "{}"
[transforms.keep]
type = "filter"
inputs = ["in"]
where = "@.data.n > 1"
[sinks.out]
type = "file"
inputs = ["keep"]
path = "{}"
"#,
            input.display(),
            out.display(),
        ),
    );
    let summary = start(&p, options("api-1")).unwrap().wait_blocking();
    assert_eq!(summary.outcome, Outcome::Succeeded, "{summary:?}");
    assert_eq!(summary.run_id, "api-1");
    assert_eq!(summary.pipeline, "api");
    let stage = |id: &str| summary.stages.iter().find(|s| s.id == id).unwrap();
    assert_eq!(stage("in").counters.records_out, 3);
    assert_eq!(stage("keep").counters.records_in, 3);
    assert_eq!(stage("keep").counters.records_out, 2);
    assert_eq!(stage("out").counters.records_in, 2);
    assert!(stage("out").report[0].starts_with("wrote 2 records"));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
    assert!(summary.manifests.is_empty());
    let json: serde_json::Value = serde_json::from_str(&summary.to_json_line()).unwrap();
    assert_eq!(json["outcome"], "succeeded");
    assert_eq!(json["stages"][0]["type"], "file");
}

#[test]
fn a_stage_that_cannot_be_built_is_a_start_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = compile(
        dir.path(),
        r#"
[sources.in]
type = "file"
path = "in.jsonl"
[sinks.out]
type = "archive"
inputs = ["in"]
url = "file://./archive"
"#,
    );
    let dry = RunOptions {
        dry_run: true,
        ..options("api-2")
    };
    match start(&p, dry) {
        Err(StartError::Build(e)) => assert!(e.contains("sink `out`"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the archive sink has no dry run"),
    }
}

/// A run reading a FIFO that stays open: its snapshots show records moving, and a cancel ends
/// it in order (what was read is written, the outcome is `interrupted`).
#[cfg(unix)]
#[test]
fn a_cancelled_run_stops_in_order_and_snapshots_show_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = dir.path().join("out.jsonl");
    let p = compile(
        dir.path(),
        &format!(
            r#"
[sources.in]
type = "file"
path = "{}"
batch_records = 2
[sinks.out]
type = "file"
inputs = ["in"]
path = "{}"
"#,
            fifo.display(),
            out.display()
        ),
    );
    let handle = start(&p, options("api-3")).unwrap();
    // The writer stays open until the run has ended: the source never sees the end.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n")
            .unwrap();
        w.flush().unwrap();
        let _ = done_rx.recv();
    });
    let mut seen = None;
    for _ in 0..6000 {
        let snap = handle.snapshot();
        if let Some(s) = snap.stages.iter().find(|s| s.id == "out")
            && s.counters.records_in == 4
        {
            seen = Some(snap);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let snap = seen.expect("the sink received the 4 records");
    assert_eq!(snap.state, RunState::Running);
    assert_eq!(snap.run_id, "api-3");
    assert_eq!(snap.stages[0].counters.records_out, 4);
    let monitor = handle.monitor();
    handle.cancel();
    // Cancelling takes effect at once: the run is no longer running. It may already have
    // finished (its source stops at the cancel), so either later state is right here.
    let state = monitor.state();
    assert!(
        matches!(state, RunState::Stopping | RunState::Finished),
        "{state:?}"
    );
    let summary = handle.wait_blocking();
    assert_eq!(monitor.state(), RunState::Finished);
    done_tx.send(()).unwrap();
    writer.join().unwrap();
    assert_eq!(summary.outcome, Outcome::Interrupted, "{summary:?}");
    assert_eq!(summary.error, None);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);
}
