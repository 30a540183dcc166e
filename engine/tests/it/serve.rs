//! `flux-engine serve` through real HTTP, against the real binary on a free loopback port: every
//! endpoint, the error cases (bad JSON, unknown fields, unknown pipeline, `..`, oversized body,
//! bad run ids, tokens), a search whose results equal `run` with the same filter, runs (output,
//! progress events, queue and concurrency limit, cancel), the history across a restart with an
//! in-flight run shown as interrupted, and a replay into kinesis-local equal to the CLI's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::http::Client;
use crate::support::server::{Served, quickstart_dir, start, wait_run};
use crate::support::{run_in, text};
use serde_json::{Value, json};

const FILTER: &str = "@.data.status == 'cancelled' && @.data.total > 100";

fn post_ok(c: &Client, path: &str, body: Value) -> Value {
    let a = c.post(path, &body);
    assert!(a.status < 300, "{path}: {} {}", a.status, a.text());
    a.json()
}

/// Asserts a 4xx JSON error with `code`.
fn assert_error(a: &crate::support::http::Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert_eq!(a.header("content-type"), Some("application/json"));
    let v = a.json();
    assert_eq!(v["code"], code, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
}

#[test]
fn endpoints_answer_and_bad_requests_get_json_errors() {
    let dir = quickstart_dir();
    let served = start(dir.path(), &[], &[]);
    let c = served.client();
    assert_eq!(c.get("/healthz").text(), "ok\n");
    let page = c.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<html"), "{}", page.text());
    assert!(page.header("content-security-policy").is_some());
    assert!(c.get("/app.js").status == 200 && c.get("/app.css").status == 200);
    let info = c.get("/api/server").json();
    assert_eq!(info["auth"], false);
    assert_eq!(info["who"], "local");

    // The list: descriptions, variables, required ones, validity with defaults.
    let list = c.get("/api/pipelines").json();
    let names: Vec<&str> = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"quickstart.toml") && names.contains(&"replay.toml.j2"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("clusters/")),
        "cluster files are not pipelines"
    );
    let replay = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "replay.toml.j2")
        .unwrap();
    assert_eq!(replay["valid"], false);
    let var = |n: &str| {
        replay["vars"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(var("incident")["required"], true);
    assert_eq!(var("rate")["default"], 800);
    assert_eq!(var("stream")["required"], false);

    // Check: the CLI's diagnostics as JSON, at their line.
    let checked = post_ok(
        &c,
        "/api/pipelines/check",
        json!({"pipeline": "replay.toml.j2", "vars": {"incident": "INC-1"}}),
    );
    assert_eq!(checked["ok"], false);
    let d = &checked["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 41);
    assert!(
        d["message"].as_str().unwrap().contains("`from` and `to`"),
        "{d}"
    );
    let cli = run_in(
        dir.path(),
        &[
            "validate",
            "pipelines/replay.toml.j2",
            "--var",
            "incident=INC-1",
        ],
    );
    assert!(
        text(&cli).1.contains(d["message"].as_str().unwrap()),
        "the CLI says the same"
    );
    let bad_rate = post_ok(
        &c,
        "/api/pipelines/check",
        json!({"pipeline": "replay.toml.j2",
        "vars": {"incident": "I", "from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z", "rate": "fast"}}),
    );
    assert!(
        bad_rate["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`--var rate` must be"),
        "{bad_rate}"
    );
    let good = post_ok(
        &c,
        "/api/pipelines/check",
        json!({"pipeline": "replay.toml.j2",
        "vars": {"incident": "I", "from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z", "rate": 50}}),
    );
    assert_eq!(good["ok"], true, "{good}");
    assert_eq!(good["targets"], json!(["orders"]));
    assert!(
        good["rendered"]
            .as_str()
            .unwrap()
            .contains("records_per_second_per_shard = 50")
    );

    // Errors: 4xx with a JSON body, nothing started.
    assert_error(
        &c.request("POST", "/api/pipelines/check", b"{not json"),
        400,
        "bad_json",
    );
    assert_error(
        &c.post(
            "/api/runs",
            &json!({"pipeline": "quickstart.toml", "extra": 1}),
        ),
        400,
        "bad_json",
    );
    assert_error(
        &c.post("/api/runs", &json!({"pipeline": "nope.toml"})),
        404,
        "not_found",
    );
    assert_error(
        &c.post(
            "/api/runs",
            &json!({"pipeline": "../pipelines/quickstart.toml"}),
        ),
        400,
        "bad_request",
    );
    assert_error(
        &c.post("/api/runs", &json!({"pipeline": "/etc/passwd"})),
        400,
        "bad_request",
    );
    assert_error(
        &c.post(
            "/api/runs",
            &json!({"pipeline": "quickstart.toml", "vars": {"a b": "1"}}),
        ),
        400,
        "bad_request",
    );
    let many: BTreeMap<String, Value> = (0..100).map(|i| (format!("v{i}"), json!(1))).collect();
    assert_error(
        &c.post(
            "/api/runs",
            &json!({"pipeline": "quickstart.toml", "vars": many}),
        ),
        400,
        "bad_request",
    );
    let big = format!("{{\"pipeline\":\"{}\"}}", "x".repeat(100_000));
    assert_error(
        &c.request("POST", "/api/runs", big.as_bytes()),
        413,
        "body_too_large",
    );
    assert_error(
        &c.post("/api/runs", &json!({"pipeline": "replay.toml.j2"})),
        422,
        "invalid_pipeline",
    );
    assert_error(&c.get("/api/runs/..%2f..%2fetc"), 400, "bad_request");
    assert_error(
        &c.get("/api/runs/20261125T100000Z-00000000"),
        404,
        "not_found",
    );
    assert_error(
        &c.post("/api/runs/20261125T100000Z-00000000/cancel", &json!({})),
        404,
        "not_found",
    );
    assert_error(&c.get("/api/nothing"), 404, "no_route");
    assert_error(
        &c.request("DELETE", "/api/runs", b""),
        405,
        "method_not_allowed",
    );
    assert_error(
        &c.post(
            "/api/search",
            &json!({"archive": "file://./archive", "stream": "orders", "limit": 100000}),
        ),
        400,
        "bad_request",
    );
    let bad_filter = c.post(
        "/api/search",
        &json!({"archive": "file://./archive", "stream": "orders", "where": "@.data.x =="}),
    );
    assert_error(&bad_filter, 422, "invalid_search");
    assert!(
        bad_filter.json()["details"]["diagnostics"][0]["field"] == "transforms.match.where",
        "{}",
        bad_filter.text()
    );
    assert_error(
        &c.post(
            "/api/search",
            &json!({"archive": "file://./archive", "stream": "bad/name"}),
        ),
        422,
        "invalid_search",
    );
    assert_error(
        &c.post(
            "/api/archive/status",
            &json!({"archive": "file://./nothing-here"}),
        ),
        404,
        "not_found",
    );
    assert_eq!(
        c.get("/api/runs").json()["runs"],
        json!([]),
        "nothing was started"
    );

    // Archive health: the `status` report.
    let health = post_ok(
        &c,
        "/api/archive/status",
        json!({"archive": "file://./archive"}),
    );
    let cli = run_in(dir.path(), &["status", "file://./archive", "--json"]);
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(health["streams"][0]["stream"], cli["streams"][0]["stream"]);
    assert_eq!(health["healthy"], cli["healthy"]);
    assert_eq!(health["streams"][0]["shards"].as_array().unwrap().len(), 4);

    let metrics = c.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text()
            .contains("flux_serve_runs{state=\"running\"} 0"),
        "{}",
        metrics.text()
    );
}

#[test]
fn the_openapi_description_matches_the_router() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::repo_root().join("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut documented = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post"].contains(&method.as_str()) {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = flux_engine::serve::routes::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(
        documented, routes,
        "docs/openapi.json lists every route, and only those"
    );
    // And the router has each of them (none falls through to `no_route`).
    let dir = quickstart_dir();
    let served = start(dir.path(), &[], &[]);
    let c = served.client();
    for (method, path) in &routes {
        let path = path.replace("{id}", "20261125T100000Z-00000000");
        let a = c.request(method, &path, b"{}");
        let code = serde_json::from_slice::<Value>(&a.body)
            .ok()
            .map(|v| v["code"].clone());
        assert!(
            code != Some(json!("no_route")) && code != Some(json!("method_not_allowed")),
            "{method} {path}: {}",
            a.text()
        );
    }
}

#[test]
fn tokens_are_required_beyond_loopback_and_compared() {
    let dir = quickstart_dir();
    let refused = run_in(
        dir.path(),
        &["serve", "--pipelines", "pipelines", "--listen", "0.0.0.0:0"],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused).1.contains("needs --token-file"),
        "{}",
        text(&refused).1
    );
    let secret = "s3cr3t-token-0123456789";
    std::fs::write(
        dir.path().join("tokens"),
        format!("# ops\nalice:{secret}\n"),
    )
    .unwrap();
    let state = dir.path().join("state");
    let served = start(
        dir.path(),
        &[
            "--token-file",
            "tokens",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    let mut c = served.client();
    assert_eq!(c.get("/healthz").status, 200, "health needs no token");
    assert_eq!(
        c.get("/").status,
        200,
        "the page needs no token (it asks for one)"
    );
    assert_error(&c.get("/api/pipelines"), 401, "unauthorized");
    assert_error(&c.get("/metrics"), 401, "unauthorized");
    c.token = Some("s3cr3t-token-0123456780".into());
    assert_error(&c.get("/api/pipelines"), 401, "unauthorized");
    c.token = Some(secret.into());
    assert_eq!(c.get("/api/server").json()["who"], "alice");
    let run = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "quickstart-replay.toml", "vars": {"ticket": "INC-9"}}),
    );
    let id = run["id"].as_str().unwrap();
    assert_eq!(wait_run(&c, id)["who"], "alice");
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    let line: Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(line["audit"], "run_started");
    assert_eq!(line["who"], "alice");
    assert_eq!(line["pipeline"], "quickstart-replay.toml");
    assert_eq!(line["vars"]["ticket"], "INC-9");
    assert!(served.log_text().contains("\"audit\":\"run_started\""));
    assert!(
        !served.log_text().contains(secret),
        "the token is never logged"
    );
    assert!(!audit.contains(secret));
}

#[test]
fn a_search_finds_what_run_finds_with_the_same_filter() {
    let dir = quickstart_dir();
    std::fs::write(
        dir.path().join("find.toml"),
        format!(
            "[sources.archive]\ntype = \"archive\"\nurl = \"file://./archive\"\nstream = \"orders\"\n\n[transforms.f]\ntype = \"filter\"\ninputs = [\"archive\"]\nwhere = \"{FILTER}\"\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"f\"]\npath = \"found.jsonl\"\n"
        ),
    )
    .unwrap();
    let out = run_in(dir.path(), &["run", "find.toml", "--progress", "off"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let mut expected: Vec<Value> = std::fs::read_to_string(dir.path().join("found.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(expected.len() > 10);
    let served = start(dir.path(), &["--archive", "file://./archive"], &[]);
    let c = served.client();
    let body =
        json!({"archive": "file://./archive", "stream": "orders", "where": FILTER, "limit": 1000});
    let lines = c.lines("POST", "/api/search", body.to_string().as_bytes());
    assert_eq!(lines.status, 200);
    let mut found = Vec::new();
    let mut end = Value::Null;
    for l in lines {
        let v: Value = serde_json::from_str(&l).unwrap();
        match v["type"].as_str().unwrap() {
            "record" => found.push(v["envelope"].clone()),
            "progress" => {}
            "end" => end = v,
            other => panic!("{other}"),
        }
    }
    let key = |v: &Value| format!("{}/{}", v["shard_id"], v["sequence_number"]);
    expected.sort_by_key(key);
    found.sort_by_key(key);
    assert_eq!(found, expected, "the same records, whole");
    assert_eq!(end["reason"], "end");
    assert_eq!(end["complete"], true);
    let counts = &end["counts"];
    assert_eq!(counts["matched"], expected.len());
    assert_eq!(counts["returned"], expected.len());
    assert_eq!(counts["records_scanned"], 2995);
    assert_eq!(counts["objects_listed"], 12);
    assert_eq!(counts["objects_read"], 12);
    assert!(counts["bytes_read"].as_u64().unwrap() > 0);

    // The first N, with every match still counted; and a time window prunes objects.
    let first = c.lines(
        "POST",
        "/api/search",
        json!({"archive": "file://./archive", "stream": "orders",
        "where": FILTER, "limit": 5, "from": "2026-11-25T09:00:00Z", "to": "2026-11-25T10:00:00Z"})
        .to_string()
        .as_bytes(),
    );
    let all: Vec<Value> = first.map(|l| serde_json::from_str(&l).unwrap()).collect();
    assert_eq!(all.iter().filter(|v| v["type"] == "record").count(), 5);
    let end = all.last().unwrap();
    assert!(end["counts"]["matched"].as_u64().unwrap() >= 5, "{end}");
    assert!(
        end["counts"]["objects_pruned"].as_u64().unwrap() > 0,
        "{end}"
    );
    // Another archive than --archive allows is refused.
    assert_error(
        &c.post(
            "/api/search",
            &json!({"archive": "file:///", "stream": "orders"}),
        ),
        403,
        "archive_not_allowed",
    );
    // A client that goes away cancels its search; the server goes on serving.
    let gone = c.lines("POST", "/api/search", body.to_string().as_bytes());
    gone.close();
    assert_eq!(c.get("/healthz").status, 200);
}

/// A FIFO that a run reads forever (the test holds it open for writing).
fn endless_pipeline(dir: &std::path::Path, name: &str) -> std::fs::File {
    let fifo = dir.join(format!("{name}.fifo"));
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(
        dir.join("pipelines").join(format!("{name}.toml")),
        format!("[pipeline]\nname = \"{name}\"\n[sources.in]\ntype = \"file\"\npath = \"{name}.fifo\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{name}.out\"\n"),
    )
    .unwrap();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap()
}

fn wait_state(c: &Client, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = c.get(&format!("/api/runs/{id}")).json();
        if v["state"] == state {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} never became {state}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn runs_queue_finish_stream_progress_and_cancel() {
    let dir = quickstart_dir();
    let _w1 = endless_pipeline(dir.path(), "endless");
    let served = start(dir.path(), &["--max-runs", "1"], &[]);
    let c = served.client();
    // The first run holds the only slot; the next waits in the queue.
    let a = post_ok(&c, "/api/runs", json!({"pipeline": "endless.toml"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_state(&c, &a, "running");
    let b = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "quickstart-replay.toml", "dry_run": false}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "quickstart-replay.toml"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(c.get(&format!("/api/runs/{b}")).json()["state"], "queued");
    // A queued run cancelled ends at once; cancelling it again is a conflict.
    assert_eq!(
        post_ok(&c, &format!("/api/runs/{q}/cancel"), json!({}))["state"],
        "cancelled"
    );
    assert_error(
        &c.post(&format!("/api/runs/{q}/cancel"), &json!({})),
        409,
        "conflict",
    );
    // Cancelling the running one frees the slot: the queued one runs to its end.
    let events = c.lines("GET", &format!("/api/runs/{b}/events"), b"");
    post_ok(&c, &format!("/api/runs/{a}/cancel"), json!({}));
    assert_eq!(wait_run(&c, &a)["state"], "cancelled");
    let mut states = Vec::new();
    let mut last = Value::Null;
    for l in events {
        if let Some(data) = l.strip_prefix("data: ") {
            last = serde_json::from_str(data).unwrap();
            states.push(last["state"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{states:?}"
    );
    assert_eq!(last["progress"]["fraction"], 1.0);
    // Its output is what `run` prints on standard output.
    let cli = run_in(
        dir.path(),
        &[
            "run",
            "pipelines/quickstart-replay.toml",
            "--progress",
            "off",
        ],
    );
    let cli_lines: Vec<Value> = text(&cli)
        .0
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let api_lines: Vec<Value> = last["output"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(api_lines, cli_lines);
    assert_eq!(last["summary"]["outcome"], "succeeded");
    let out = last["summary"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "out")
        .unwrap();
    assert_eq!(out["records_in"], cli_lines.len());
    // The list, newest first.
    let list = c.get("/api/runs").json();
    let ids: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [q.as_str(), b.as_str(), a.as_str()]);
    // A dry run writes nothing and says what it would write.
    let d = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "quickstart-replay.toml", "dry_run": true}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = wait_run(&c, &d);
    assert_eq!(d["state"], "succeeded");
    assert_eq!(d["dry_run"], true);
    assert!(d["output"].is_null(), "{d}");
    assert!(
        d["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("dry run: wrote nothing")),
        "{d}"
    );
}

#[test]
fn a_restart_keeps_the_history_and_shows_in_flight_runs_interrupted() {
    let dir = quickstart_dir();
    let _w = endless_pipeline(dir.path(), "endless");
    let state = dir.path().join("state");
    let args = ["--state-dir", state.to_str().unwrap()];
    let mut served: Served = start(dir.path(), &args, &[]);
    let c = served.client();
    let done = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "quickstart-replay.toml"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_run(&c, &done)["state"], "succeeded");
    let flying = post_ok(&c, "/api/runs", json!({"pipeline": "endless.toml"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_state(&c, &flying, "running");
    served.kill();
    let served = start(dir.path(), &args, &[]);
    let c = served.client();
    assert_eq!(
        c.get(&format!("/api/runs/{done}")).json()["state"],
        "succeeded"
    );
    let v = c.get(&format!("/api/runs/{flying}")).json();
    assert_eq!(v["state"], "interrupted", "{v}");
    assert_eq!(
        c.get("/api/runs").json()["runs"].as_array().unwrap().len(),
        2
    );
    let files = std::fs::read_dir(state.join("runs")).unwrap().count();
    assert_eq!(files, 2, "one file per run, no leftovers");
}

/// Every record of a stream, per shard in order: (shard, partition key, payload).
async fn read_stream(k: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let shards = k.list_shards().stream_name(stream).send().await.unwrap();
    for shard in shards.shards() {
        let mut it = k
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(i) = it {
            let r = k
                .get_records()
                .shard_iterator(&i)
                .limit(10_000)
                .send()
                .await
                .unwrap();
            for rec in r.records() {
                out.push((
                    shard.shard_id().to_owned(),
                    rec.partition_key().unwrap_or_default().to_owned(),
                    rec.data().as_ref().to_vec(),
                ));
            }
            if r.records().is_empty() && r.millis_behind_latest() == Some(0) {
                break;
            }
            it = r.next_shard_iterator().map(str::to_owned);
        }
    }
    out
}

/// Fences as (shard, phase, replay id, counts) and the other records as (shard, key, payload),
/// sorted: what two replays of the same records must share (fences carry their start time).
type Fences = Vec<(String, String, String, String)>;
fn split_fences(
    records: Vec<(String, String, Vec<u8>)>,
) -> (Fences, Vec<(String, String, Vec<u8>)>) {
    use flux_stages::replay::{DEFAULT_KEY, Marker, parse_marker};
    let mut fences = Vec::new();
    let mut rest = Vec::new();
    for (shard, key, data) in records {
        match parse_marker(&data, DEFAULT_KEY) {
            Ok(Marker::Fence(f)) => fences.push((
                shard,
                format!("{:?}", f.phase),
                f.replay_id,
                format!("{:?}", f.counts),
            )),
            _ => rest.push((shard, key, data)),
        }
    }
    fences.sort();
    rest.sort();
    (fences, rest)
}

fn replay_vars(target: &str, rate: u32) -> Value {
    json!({"incident": "INC-API", "archive": "file://./archive", "stream": "orders", "target": target,
        "from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z", "rate": rate})
}

#[test]
fn a_replay_through_the_api_equals_the_cli_and_a_cancel_stops_it() {
    let emu = crate::support::emulators::get();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let k = rt.block_on(emu.kinesis());
    let unique = crate::support::emulators::unique;
    let (api_stream, cli_stream, slow, other) = (
        unique("api"),
        unique("cli"),
        unique("slow"),
        unique("slow2"),
    );
    for s in [&api_stream, &cli_stream] {
        rt.block_on(crate::support::emulators::create_stream(&k, s, 2));
    }
    for s in [&slow, &other] {
        rt.block_on(crate::support::emulators::create_stream(&k, s, 1));
    }
    let dir = quickstart_dir();
    let served = start(dir.path(), &[], &[]);
    let c = served.client();

    // The same replay through the API and through the CLI: the same records and fences.
    let id = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "replay.toml.j2", "vars": replay_vars(&api_stream, 800)}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = wait_run(&c, &id);
    assert_eq!(run["state"], "succeeded", "{run}");
    let mut cmd =
        crate::support::flux_engine(&["run", "pipelines/replay.toml.j2", "--progress", "off"]);
    for (k, v) in replay_vars(&cli_stream, 800).as_object().unwrap() {
        cmd.args([
            "--var",
            &format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_owned)),
        ]);
    }
    emu.apply(&mut cmd);
    let out = cmd.current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let (api_fences, api_records) = split_fences(rt.block_on(read_stream(&k, &api_stream)));
    let (cli_fences, cli_records) = split_fences(rt.block_on(read_stream(&k, &cli_stream)));
    assert!(!api_records.is_empty());
    assert_eq!(api_records, cli_records);
    assert_eq!(api_fences, cli_fences);
    assert_eq!(
        api_fences.len(),
        4,
        "an opening and a closing fence per shard: {api_fences:?}"
    );

    // A slow replay and a second one into the same stream: the second waits (one replay per
    // target stream); a replay into another stream runs beside them.
    let a = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "replay.toml.j2", "vars": replay_vars(&slow, 5)}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_state(&c, &a, "running");
    let b = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "replay.toml.j2", "vars": replay_vars(&slow, 5)}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = post_ok(
        &c,
        "/api/runs",
        json!({"pipeline": "replay.toml.j2", "vars": replay_vars(&other, 5)}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_state(&c, &o, "running");
    assert_eq!(c.get(&format!("/api/runs/{b}")).json()["state"], "queued");
    // Cancel mid-replay: once records are being delivered.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = c.get(&format!("/api/runs/{a}")).json();
        let delivered = v["progress"]["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == "stream"))
            .map_or(0, |s| s["delivered"].as_u64().unwrap());
        if delivered > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing delivered: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = Instant::now();
    post_ok(&c, &format!("/api/runs/{a}/cancel"), json!({}));
    let v = wait_run(&c, &a);
    let took = asked.elapsed();
    eprintln!("cancel to end of the replay: {took:?}");
    assert_eq!(v["state"], "cancelled");
    let sink = v["summary"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "stream")
        .unwrap()
        .clone();
    let sent = sink["delivered"].as_u64().unwrap();
    assert!(
        sink["skipped"].as_u64().unwrap() > 0,
        "it stopped before sending everything: {sink}"
    );
    // It sent nothing after it ended: the stream holds its opening fence and what it sent.
    // The replay queued behind it (b) starts as soon as it ends, and may have written already:
    // only what precedes a second opening fence in the (one-shard) stream is this replay's.
    let mut openings = 0;
    let ours: Vec<_> = rt
        .block_on(read_stream(&k, &slow))
        .into_iter()
        .take_while(|(_, _, data)| {
            use flux_stages::replay::{DEFAULT_KEY, Marker, parse_marker};
            if let Ok(Marker::Fence(f)) = parse_marker(data, DEFAULT_KEY)
                && format!("{:?}", f.phase) == "Open"
            {
                openings += 1;
            }
            openings < 2
        })
        .collect();
    let (fences, records) = split_fences(ours);
    let before_b = (fences.len(), records.len());
    assert_eq!(records.len() as u64, sent, "{fences:?}");
    assert!(before_b.0 >= 1);
    // The queued replay into that stream starts now; cancel it and the other.
    wait_state(&c, &b, "running");
    for id in [&b, &o] {
        post_ok(&c, &format!("/api/runs/{id}/cancel"), json!({}));
        assert_eq!(wait_run(&c, id)["state"], "cancelled");
    }
    let audit: Vec<String> = served
        .log_text()
        .lines()
        .filter(|l| l.contains("\"audit\":\"run_cancelled\""))
        .map(str::to_owned)
        .collect();
    assert_eq!(audit.len(), 3, "{audit:?}");
    for s in [&api_stream, &cli_stream, &slow, &other] {
        let _ = rt.block_on(
            k.delete_stream()
                .stream_name(s)
                .enforce_consumer_deletion(true)
                .send(),
        );
    }
}
