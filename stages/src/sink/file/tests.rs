use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use super::*;
use crate::record::{Record, SequenceNumber, ts_from_millis};

fn rec(n: u64) -> Record {
    Record {
        stream: "orders".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: SequenceNumber::from_u64(n),
        sub_sequence_number: None,
        partition_key: "k".into(),
        arrival_ts: ts_from_millis(0),
        data: bytes::Bytes::from(format!("{{\"n\":{n}}}")),
        annotations: None,
        probed: None,
    }
}

/// Runs a `data`-format sink on `path` with records 1..=n; the sink's result.
async fn write(path: &Path, n: u64) -> anyhow::Result<SinkReport> {
    let config = FileSinkConfig {
        path: path.to_str().unwrap().to_owned(),
        format: LineFormat::Data,
    };
    let mut sink = config.build(false).map_err(anyhow::Error::msg)?;
    let mut rejected = Vec::new();
    sink.write(Arc::new((1..=n).map(rec).collect()), &mut rejected)
        .await?;
    sink.finish().await
}

fn lines(n: u64) -> String {
    (1..=n).map(|i| format!("{{\"n\":{i}}}\n")).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_symlink_is_written_through_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.jsonl");
    std::fs::write(&real, "old\n").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink("real.jsonl", &link).unwrap();
    write(&link, 3).await.unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced"
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("real.jsonl"));
    assert_eq!(std::fs::read_to_string(&real).unwrap(), lines(3));
    // A link whose target does not exist yet: the target is created, the link kept.
    let dangling = dir.path().join("dangling.jsonl");
    std::os::unix::fs::symlink("sub/later.jsonl", &dangling).unwrap();
    write(&dangling, 2).await.unwrap();
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sub/later.jsonl")).unwrap(),
        lines(2)
    );
    assert_eq!(
        names(dir.path()),
        ["dangling.jsonl", "link.jsonl", "real.jsonl", "sub"]
    );
}

#[tokio::test]
async fn a_fifo_is_written_in_place_and_stays_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    // mkfifo(1): the crate forbids `unsafe`, and libc's mkfifo needs it.
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    // The sink's open blocks until the reader has opened the FIFO: not on this runtime's
    // only thread.
    let path = fifo.clone();
    let report = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(write(&path, 5))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(report.lines[0].starts_with("wrote 5 records"), "{report:?}");
    // Checked before joining the reader, which waits forever if the FIFO was replaced.
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );
    assert_eq!(reader.join().unwrap(), lines(5));
    assert_eq!(names(dir.path()), ["pipe"]);
}

#[tokio::test]
async fn a_device_node_is_written_in_place_and_stays_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let null = dir.path().join("null");
    // The null device (1, 3) under our own name, where replacing it harms nobody. Needs
    // CAP_MKNOD (the suite runs as root); skipped without it.
    let made = std::process::Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mknod is not permitted here");
        return;
    }
    write(&null, 3).await.unwrap();
    assert!(
        std::fs::metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert_eq!(names(dir.path()), ["null"]);
}

#[test]
fn system_paths_and_standard_streams_are_never_replaced() {
    assert_eq!(
        Target::of("/dev/null").unwrap(),
        Target::InPlace("/dev/null".into())
    );
    assert_eq!(
        Target::of("/dev/stdout").unwrap(),
        Target::Std(StdStream::Stdout)
    );
    assert_eq!(Target::of("-").unwrap(), Target::Std(StdStream::Stdout));
    assert_eq!(
        Target::of("/dev/stderr").unwrap(),
        Target::Std(StdStream::Stderr)
    );
    assert!(Target::of("/dev/stdin").is_err());
    // Not there: still never created under /dev.
    assert_eq!(
        Target::of("/dev/flux-no-such-device").unwrap(),
        Target::InPlace("/dev/flux-no-such-device".into())
    );
}

#[tokio::test]
async fn temporary_names_never_replace_user_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    // Names a temporary file of this process could have had before.
    let mine = dir
        .path()
        .join(format!(".out.jsonl.partial-{}", std::process::id()));
    std::fs::write(&mine, "user data\n").unwrap();
    write(&out, 2).await.unwrap();
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "user data\n");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), lines(2));
    assert_eq!(names(dir.path()).len(), 2, "{:?}", names(dir.path()));
}

#[tokio::test]
async fn a_replaced_file_keeps_its_permissions_and_a_failed_run_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    std::fs::write(&out, "old\n").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    write(&out, 2).await.unwrap();
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // A sink dropped without finishing (the run failed): no temporary file is left and the
    // old content stays.
    let config = FileSinkConfig {
        path: out.to_str().unwrap().to_owned(),
        format: LineFormat::Data,
    };
    let mut sink = config.build(false).unwrap();
    sink.write(Arc::new(vec![rec(9)]), &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(names(dir.path()).len(), 2, "the temporary file is there");
    drop(sink);
    assert_eq!(names(dir.path()), ["out.jsonl"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), lines(2));
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = write(dir.path(), 1).await.unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
    let slash = format!("{}/new/", dir.path().display());
    let err = write(Path::new(&slash), 1).await.unwrap_err().to_string();
    assert!(err.contains("directory"), "{err}");
}
