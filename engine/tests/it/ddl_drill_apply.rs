//! Applying the Drill output through Drill's REST API, against a tiny loopback HTTP server that
//! records the requests and answers as Drill does (Drill has no emulator): the storage plugins
//! first (`POST /storage/<name>.json`), then every view (`POST /query.json`), exactly the
//! generated files; and a failing query fails the run with Drill's message.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::support::{run_in, text};

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    body: serde_json::Value,
}

/// Serves `answer(path, body)` on a loopback port; returns the endpoint and the log. The
/// server thread ends when `expect` requests were served (or the test process ends).
fn fake_drill(
    expect: usize,
    answer: fn(&str, &serde_json::Value) -> serde_json::Value,
) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(expect) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let mut length = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let reply = answer(&path, &body).to_string();
            seen.lock().unwrap().push(Request { method, path, body });
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
        }
    });
    (endpoint, log)
}

fn drill_answer(path: &str, body: &serde_json::Value) -> serde_json::Value {
    if path.starts_with("/storage/") {
        serde_json::json!({ "result": "Success" })
    } else if body["query"]
        .as_str()
        .unwrap_or_default()
        .contains("orders_checkpoints` AS")
    {
        serde_json::json!({ "queryId": "q2", "queryState": "FAILED", "errorMessage": "VALIDATION ERROR: Schema [flux.checkpoints] is not valid" })
    } else {
        serde_json::json!({ "queryId": "q1", "columns": ["ok", "summary"], "rows": [{"ok": "true", "summary": "View created"}], "queryState": "COMPLETED" })
    }
}

fn ok_answer(path: &str, _body: &serde_json::Value) -> serde_json::Value {
    if path.starts_with("/storage/") {
        serde_json::json!({ "result": "Success" })
    } else {
        serde_json::json!({ "queryId": "q", "rows": [], "queryState": "COMPLETED" })
    }
}

fn pipeline(dir: &std::path::Path, endpoint: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("records.jsonl"),
        r#"{"stream":"orders","shard_id":"shardId-000000000000","sequence_number":"1","partition_key":"k","arrival_ts":"2026-11-25T10:00:00.000Z","data":{"id":"a"}}
"#,
    )
    .unwrap();
    let p = dir.join("views.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[sources.records]
type = "file"
path = "records.jsonl"
format = "envelope"

[sinks.views]
type = "ddl"
inputs = ["records"]
archive = "s3://acme-archive/kinesis"
stream = "orders"
out = "sql"
engines = ["drill"]
columns = {{ id = "data.id" }}
live_key = "id"
drill = {{ endpoint = "{endpoint}" }}
"#
        ),
    )
    .unwrap();
    p
}

#[test]
fn the_drill_output_is_applied_through_the_rest_api() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, log) = fake_drill(5, ok_answer);
    let p = pipeline(dir.path(), &endpoint);
    let out = run_in(
        dir.path(),
        &["run", p.to_str().unwrap(), "--progress", "off"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("2 storage plugins, 3 views"),
        "{stdout}{stderr}"
    );
    let requests = log.lock().unwrap().clone();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/storage/flux.json",
            "/storage/hive.json",
            "/query.json",
            "/query.json",
            "/query.json"
        ]
    );
    assert!(requests.iter().all(|r| r.method == "POST"));
    // The bodies are exactly the generated files.
    let file = |rel: &str| std::fs::read_to_string(dir.path().join("sql").join(rel)).unwrap();
    let plugin: serde_json::Value = serde_json::from_str(&file("drill/storage-flux.json")).unwrap();
    assert_eq!(requests[0].body, plugin);
    assert_eq!(
        requests[0].body["config"]["connection"],
        "s3a://acme-archive"
    );
    let views = file("drill/views.sql");
    for r in &requests[2..] {
        assert_eq!(r.body["queryType"], "SQL");
        let q = r.body["query"].as_str().unwrap();
        assert!(q.starts_with("CREATE OR REPLACE VIEW"), "{q}");
        assert!(views.contains(&format!("{q};")), "{q}");
    }
}

#[test]
fn a_failing_drill_query_fails_the_run_with_drills_message() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, log) = fake_drill(4, drill_answer);
    let p = pipeline(dir.path(), &endpoint);
    let out = run_in(
        dir.path(),
        &["run", p.to_str().unwrap(), "--progress", "off"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "Drill query failed (FAILED): VALIDATION ERROR: Schema [flux.checkpoints] is not valid"
        ),
        "{stderr}"
    );
    // It stopped at the failing view: two plugins, two queries, nothing after.
    assert_eq!(log.lock().unwrap().len(), 4);
}
