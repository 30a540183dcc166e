//! The command line as users meet it: the committed schema, plans, rendering, exit codes.

use crate::support::records::{quickstart, sample_orders};
use crate::support::run::read_jsonl;
use crate::support::{Flux, Pipeline, flux_engine, repo_root, run_in, text};

#[test]
fn the_committed_schema_is_current() {
    let out = run_in(&repo_root(), &["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(repo_root().join("schemas/pipeline.schema.json")).unwrap();
    assert_eq!(
        text(&out).0,
        committed,
        "schemas/pipeline.schema.json is stale: cargo run -p flux-engine -- schema > schemas/pipeline.schema.json"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    for def in [
        "source-file",
        "source-archive",
        "transform-filter",
        "transform-annotate",
        "sink-file",
        "sink-archive",
    ] {
        assert!(
            schema["$defs"][def]["properties"]["type"]["const"].is_string(),
            "{def}"
        );
    }
    assert_eq!(
        schema["$defs"]["sink-archive"]["additionalProperties"],
        false
    );
    assert_eq!(schema["$defs"]["transform-filter"]["required"][1], "inputs");
}

#[test]
fn every_shipped_pipeline_starts_with_the_schema_line() {
    for entry in std::fs::read_dir(repo_root().join("pipelines")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.starts_with("#:schema ../schemas/pipeline.schema.json"),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn plan_prints_text_and_dot() {
    let out = run_in(&repo_root(), &["plan", "pipelines/quickstart-replay.toml"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "pipeline quickstart-replay");
    let order: Vec<&str> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(order, ["archive", "big_cancellations", "mark", "out"]);
    assert!(stdout.contains("inputs=[big_cancellations]"), "{stdout}");

    let out = run_in(
        &repo_root(),
        &["plan", "pipelines/quickstart.toml", "--format", "dot"],
    );
    let (dot, _) = text(&out);
    assert!(dot.starts_with("digraph \"quickstart\" {"), "{dot}");
    assert!(dot.contains("\"orders\" -> \"archive\";"), "{dot}");
    assert!(
        dot.contains("\"orders\" -> \"rejects\" [style=dashed, label=\"dead_letter\"];"),
        "{dot}"
    );
}

#[test]
fn render_applies_vars_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("vars.toml");
    std::fs::write(
        &vars,
        "ticket = \"FROM-FILE\"\nto = \"2026-11-25T11:00:00Z\"\n",
    )
    .unwrap();
    let out = flux_engine(&[
        "render",
        repo_root()
            .join("pipelines/quickstart-replay.toml")
            .to_str()
            .unwrap(),
        "--vars-file",
        vars.to_str().unwrap(),
        "--var",
        "ticket=FIRST",
        "--var",
        "ticket=INC-9",
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("fields = { ticket = \"INC-9\""), "{stdout}");
    assert!(stdout.contains("to = \"2026-11-25T11:00:00Z\""), "{stdout}");
    assert!(
        stdout.contains("from = \"2026-11-25T09:00:00Z\""),
        "[vars] default: {stdout}"
    );
    // The per-record template survives rendering of the file.
    assert!(
        stdout.contains("shard = \"{{ record.shard_id }}\""),
        "{stdout}"
    );
}

/// Issue 11: a `--var` value is pasted into the file as a value, never as TOML: the payload
/// that used to add a sink writing every record to a path of the caller's choosing now arrives
/// as the input path, and the plan has the file's three stages.
#[test]
fn a_var_value_cannot_add_a_sink() {
    let payload = "x\"\n[sinks.evil]\ntype=\"file\"\ninputs=[\"orders\"]\npath=\"/tmp/evil.jsonl\"\n[sources.more]\ntype=\"file\"\npath=\"x";
    let root = repo_root();
    let out = run_in(
        &root,
        &[
            "plan",
            "pipelines/quickstart.toml",
            "--var",
            &format!("input={payload}"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let ids: Vec<&str> = stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(ids, ["orders", "rejects", "archive"], "{stdout}");
    assert!(!stdout.contains("evil"), "{stdout}");
    let out = run_in(
        &root,
        &[
            "render",
            "pipelines/quickstart.toml",
            "--var",
            &format!("input={payload}"),
        ],
    );
    let (stdout, _) = text(&out);
    let table: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(table["sources"]["orders"]["path"].as_str(), Some(payload));
    assert!(table["sinks"].get("evil").is_none());
}

/// Issue 11: values that go inside other syntax are checked for it: an incident id that is not
/// one file name is refused (it names the rejects file), a number stays a number, and a `--var`
/// the template does not use draws a warning.
#[test]
fn replay_vars_are_checked_for_where_they_go() {
    let root = repo_root();
    let base = [
        "render",
        "pipelines/replay.toml.j2",
        "--var",
        "from=2026-11-25T10:00:00Z",
        "--var",
        "to=2026-11-25T14:00:00Z",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = run_in(&root, &args);
        let (stdout, stderr) = text(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, _, stderr) = with(&["--var", "incident=../../x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`{{ incident | path_segment }}`: the value is not a usable file name"),
        "{stderr}"
    );
    let (code, _, stderr) = with(&["--var", "incident=INC-1", "--var", "rate=5\n[sinks.evil]"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`--var rate` must be a whole number"),
        "{stderr}"
    );
    let (code, stdout, stderr) = with(&[
        "--var",
        "incident=INC-1",
        "--var",
        "rate=500",
        "--var",
        "region=eu' || @.data.region != 'eu",
        "--var",
        "regoin=us",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: `--var regoin` is not used by this file"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `--var region`?"), "{stderr}");
    let table: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(
        table["sinks"]["stream"]["records_per_second_per_shard"].as_integer(),
        Some(500)
    );
    assert_eq!(
        table["transforms"]["scope"]["where"].as_str(),
        Some("@.data.region == 'eu\\' || @.data.region != \\'eu'")
    );
}

#[test]
fn exit_codes() {
    let root = repo_root();
    assert_eq!(
        run_in(&root, &["validate", "pipelines/quickstart.toml"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        run_in(&root, &["validate", "no/such/file.toml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run_in(&root, &["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        run_in(
            &root,
            &["run", "pipelines/quickstart.toml", "--var", "nonsense"]
        )
        .status
        .code(),
        Some(2)
    );
    let out = run_in(&root, &["validate", "no/such/file.toml"]);
    assert!(
        text(&out).1.contains("no/such/file.toml"),
        "{}",
        text(&out).1
    );
}

#[test]
fn logs_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = Flux::new()
        .args(["--log-format", "json", "run"])
        .arg(quickstart())
        .var("input", sample_orders().display())
        .args(["--progress", "off"])
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .run()
        .success()
        .stderr;
    let first = stderr.lines().next().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(v["fields"]["message"], "starting");
    assert!(
        !stderr.contains("\"order_id\""),
        "payloads are never logged at info level"
    );
}

/// Issue 11: a dead-letter reason, and the error that stops a run, say where a value was and
/// what was expected, never the value: a card number in a wrong-type envelope field, in a bad
/// time, and a secret in a wrong-type payload field never show up.
#[test]
fn payload_values_never_appear_in_reasons_or_errors() {
    const SECRETS: [&str; 4] = ["4111111111111111", "SUPERSECRET", "CARD-", "U1VQRVJ"];
    let dir = tempfile::tempdir().unwrap();
    let envelope = |fields: &str| {
        format!(
            "{{\"stream\":\"orders\",\"shard_id\":\"shardId-000000000001\",\"sequence_number\":\"1\",\"partition_key\":\"k\",\"arrival_ts\":\"2026-11-25T10:00:00Z\",{fields}}}\n"
        )
    };
    let lines = [
        envelope("\"sub_sequence_number\":\"CARD-4111111111111111\",\"data\":{}"),
        envelope("\"data\":{}").replace("2026-11-25T10:00:00Z", "CARD-4111111111111111"),
        envelope("\"data\":{}").replace(
            "\"partition_key\":\"k\"",
            "\"partition_key\":4111111111111111",
        ),
        envelope("\"annotations\":\"SUPERSECRET\",\"data\":{}"),
        envelope("\"data_b64\":\"SUPERSECRET!!\""),
    ];
    std::fs::write(dir.path().join("envelopes.jsonl"), lines.concat()).unwrap();
    std::fs::write(
        dir.path().join("data.jsonl"),
        [
            r#"{"k":"a","t":"CARD-4111111111111111"}"#,
            r#"{"k":"a","t":4111111111111111}"#,
            r#"{"k":"a","t":{"card":"4111111111111111"}}"#,
            r#"{"k":"a","t":"2026-11-25T10:00:00Z","when":"CARD-4111111111111111"}"#,
            r#"{"k":"b","t":"2026-11-25T10:00:00Z","when":4111111111111111.5}"#,
            r#"{"k":"c","t":"2026-11-25T10:00:00Z","when":{"x":"SUPERSECRET"}}"#,
            r#"{"k":"d","t":"2026-11-25T10:00:00Z","when":"2026-11-25T10:00:00Z"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let envelopes = |name: &str| {
        Pipeline::new(name)
            .source("envelopes", "file")
            .set("path", "envelopes.jsonl")
            .set("format", "envelope")
    };
    envelopes("p")
        .source("lines", "file")
        .set("path", "data.jsonl")
        .set("stream", "orders")
        .set("partition_key", "$.k")
        .set("arrival_ts", "$.t")
        .transform("w", "window", &["lines"])
        .set("size", "1h")
        .set("time", "$.data.when")
        .sink("out", "file", &["w", "envelopes"])
        .set("path", "out.jsonl")
        .sink(
            "rejects",
            "file",
            &[
                "envelopes.dead_letter",
                "lines.dead_letter",
                "w.dead_letter",
            ],
        )
        .set("path", "rejects.jsonl")
        .set("format", "envelope")
        .write(dir.path());
    let stderr = Flux::run_pipeline("p.toml")
        .current_dir(dir.path())
        .run()
        .success()
        .stderr;
    let reasons: Vec<String> = read_jsonl(dir.path().join("rejects.jsonl"))
        .iter()
        .map(|v| {
            v["annotations"]["error"]["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(reasons.len(), 11, "{reasons:#?}");
    for reason in &reasons {
        for secret in SECRETS {
            assert!(!reason.contains(secret), "{reason}");
        }
    }
    // The reasons still say where and what was expected.
    let all = reasons.join("\n");
    for expected in [
        "invalid envelope: invalid type: expected u64, found a string",
        "invalid envelope: not an RFC 3339 time",
        "invalid envelope: invalid type: expected a string, found an integer",
        "invalid envelope: invalid type: expected a map, found a string",
        "invalid envelope: data_b64 is not valid base64",
        "arrival time: not an RFC 3339 time",
        "arrival time: $.t is a number, not an RFC 3339 string",
        "arrival time: $.t is an object, not an RFC 3339 string",
        "event time at $.data.when: not an RFC 3339 time",
        "event time at $.data.when: the number is not whole epoch milliseconds",
        "event time at $.data.when: expected an RFC 3339 string or epoch milliseconds, found an object",
    ] {
        assert!(all.contains(expected), "{expected:?} in\n{all}");
    }
    for secret in SECRETS {
        assert!(!stderr.contains(secret), "{stderr}");
    }

    // Without a dead-letter reader the run stops with the first reason: no value either.
    let stop = envelopes("stop")
        .sink("out", "file", &["envelopes"])
        .set("path", "out2.jsonl");
    let ran = Flux::run_pipeline(stop.write(dir.path()))
        .current_dir(dir.path())
        .run();
    let stderr = ran.stderr;
    assert_ne!(ran.code, Some(0), "{stderr}");
    assert!(stderr.contains("could not be processed"), "{stderr}");
    for secret in SECRETS {
        assert!(!stderr.contains(secret), "{stderr}");
    }
}

/// Issue 11: a value read with `env()` that lands in a key of the wrong type, or one that does
/// not validate, is not repeated in the diagnostic (the caret shows the template's line).
#[test]
fn env_values_never_show_in_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        r#"[sources.orders]
type = "file"
path = "in.jsonl"

[sinks.archive]
type = "archive"
inputs = ["orders"]
url = "file://./archive"
max_records = {{ env("FLUX_TEST_SECRET_A") }}

[sinks.other]
type = "archive"
inputs = ["orders"]
url = "file://./other"
max_bytes = "{{ env('FLUX_TEST_SECRET_B') }}"

[transforms.f]
type = "filter"
inputs = ["orders"]
where = "{{ env('FLUX_TEST_SECRET_C') }}"

[sinks.out]
type = "file"
inputs = ["f"]
path = "-"
"#,
    )
    .unwrap();
    let secrets = [
        "SUPERSECRET-A-9f8e",
        "SUPERSECRET-B \"quoted\"",
        "@.data.token == 'SUPERSECRET-C' &&",
    ];
    let out = flux_engine(&["validate", "p.toml"])
        .current_dir(dir.path())
        .env("FLUX_TEST_SECRET_A", secrets[0])
        .env("FLUX_TEST_SECRET_B", secrets[1])
        .env("FLUX_TEST_SECRET_C", secrets[2])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in [
        "sinks.archive.max_records",
        "sinks.other.max_bytes",
        "transforms.f.where",
    ] {
        assert!(stderr.contains(&format!("key: {key}")), "{key}: {stderr}");
    }
    assert!(!stderr.contains("SUPERSECRET"), "{stderr}");
    assert!(stderr.contains("[value of env()]"), "{stderr}");
}

/// Issue 13: the replay template takes the region from the environment unless `aws_region` is
/// given, and requires records unless `allow_empty=true`.
#[test]
fn the_replay_template_defers_to_the_environment_region_and_requires_records() {
    let root = repo_root();
    let render = |extra: &[&str]| {
        let mut args = vec![
            "render",
            "pipelines/replay.toml.j2",
            "--var",
            "incident=INC-1",
            "--var",
            "from=2026-11-25T10:00:00Z",
            "--var",
            "to=2026-11-25T14:00:00Z",
        ];
        args.extend_from_slice(extra);
        let out = run_in(&root, &args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        toml::from_str::<toml::Table>(&stdout).unwrap()
    };
    let t = render(&[]);
    assert!(t["sources"]["archive"].get("aws").is_none());
    assert!(t["sinks"]["stream"].get("aws").is_none());
    assert_eq!(
        t["sinks"]["stream"]["require_records"].as_bool(),
        Some(true)
    );
    let t = render(&["--var", "aws_region=eu-west-1", "--var", "allow_empty=true"]);
    assert_eq!(
        t["sources"]["archive"]["aws"]["region"].as_str(),
        Some("eu-west-1")
    );
    assert_eq!(
        t["sinks"]["stream"]["aws"]["region"].as_str(),
        Some("eu-west-1")
    );
    assert_eq!(
        t["sinks"]["stream"]["require_records"].as_bool(),
        Some(false)
    );
}

/// `run --summary-json`: the run's summary as one JSON object, from the summary as data.
mod summary_json {
    use std::io::{BufRead, Write};
    use std::process::Stdio;

    use crate::support::records;
    use crate::support::run::{kill, read_lines};
    use crate::support::{Flux, Pipeline, flux_engine, table};

    /// Every stderr line of a `--log-format json` run is a JSON object.
    fn events(stderr: &str) -> Vec<serde_json::Value> {
        stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn stage<'a>(summary: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
        summary["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no stage {id}: {summary}"))
    }

    fn quickstart(dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
        let ran = Flux::run_pipeline(records::quickstart())
            .var("input", records::sample_orders().display())
            .args(extra)
            .current_dir(dir)
            .run();
        (ran.code, ran.stderr)
    }

    /// `p.toml` with a file source `in` reading `input`.
    fn reading(input: &str) -> Pipeline {
        Pipeline::new("p").source("in", "file").set("path", input)
    }

    #[test]
    fn a_successful_run_writes_its_summary_to_a_file_and_as_json_events() {
        let dir = tempfile::tempdir().unwrap();
        let (code, stderr) = quickstart(dir.path(), &["--summary-json", "out/summary.json"]);
        assert_eq!(code, Some(2), "the folder must exist: {stderr}");
        assert!(
            stderr.contains("--summary-json out/summary.json: cannot use folder out"),
            "{stderr}"
        );
        assert!(!dir.path().join("archive").exists(), "nothing ran");

        let (code, stderr) = quickstart(dir.path(), &["--summary-json", "summary.json"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("total "),
            "the table is still printed: {stderr}"
        );
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(s["version"], 1);
        assert_eq!(s["outcome"], "succeeded");
        assert_eq!(s["pipeline"], "quickstart");
        assert_eq!(s["dry_run"], false);
        assert!(s["error"].is_null());
        assert!(s["seconds"].as_f64().unwrap() > 0.0);
        let orders = stage(&s, "orders");
        assert_eq!(orders["role"], "source");
        assert_eq!(orders["type"], "file");
        assert_eq!(orders["records_out"], 2995);
        assert_eq!(orders["dead_lettered"], 5);
        assert_eq!(stage(&s, "archive")["records_in"], 2995);
        let manifest = s["manifests"][0].as_str().unwrap();
        let run_id = s["run_id"].as_str().unwrap();
        assert_eq!(
            manifest,
            format!("file://./archive/_flux/runs/stream=orders/{run_id}.json")
        );
        assert!(dir.path().join(&manifest["file://./".len()..]).is_file());
        assert_eq!(stage(&s, "archive")["manifests"][0], manifest);

        // JSON logs: the table becomes events carrying the counters as numbers, and the
        // summary is stderr's last line.
        let (code, stderr) =
            quickstart(dir.path(), &["--log-format", "json", "--summary-json", "-"]);
        assert_eq!(code, Some(0), "{stderr}");
        let events = events(&stderr);
        let last = events.last().unwrap();
        assert_eq!(last["outcome"], "succeeded", "{stderr}");
        assert_eq!(
            stage(last, "archive")["skipped"],
            2995,
            "a rerun archives nothing twice"
        );
        let archive = events
            .iter()
            .find(|e| e["fields"]["event"] == "stage_summary" && e["fields"]["stage"] == "archive")
            .unwrap_or_else(|| panic!("{stderr}"));
        assert_eq!(archive["fields"]["records_in"], 2995);
        assert_eq!(archive["fields"]["type"], "archive");
        let run = events
            .iter()
            .find(|e| e["fields"]["event"] == "run_summary")
            .unwrap();
        assert_eq!(run["fields"]["outcome"], "succeeded");
        assert_eq!(run["fields"]["run_id"], last["run_id"]);
        assert!(
            !stderr.contains("total "),
            "no table in JSON mode: {stderr}"
        );
    }

    #[test]
    fn a_failed_run_reports_its_error_as_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), "{\"n\":1}\nnot json\n").unwrap();
        reading("in.jsonl")
            .transform("mark", "annotate", &["in"])
            .set("fields", table([("a", "b")]))
            .sink("out", "file", &["mark"])
            .set("path", "out.jsonl")
            .write(dir.path());
        let stderr = Flux::new()
            .args(["--log-format", "json", "run", "p.toml"])
            .args(["--progress", "off", "--summary-json", "-"])
            .current_dir(dir.path())
            .run()
            .failure(1)
            .stderr;
        let events = events(&stderr);
        let summary = events.last().unwrap();
        assert_eq!(summary["outcome"], "failed");
        let error = summary["error"].as_str().unwrap();
        assert!(error.starts_with("transform `mark` failed:"), "{error}");
        // The `error:` line is an ERROR event, just before the summary.
        let e = &events[events.len() - 2];
        assert_eq!(e["level"], "ERROR");
        assert_eq!(e["fields"]["event"], "error");
        assert_eq!(e["fields"]["message"], error);
        assert!(
            !stderr.contains("not json"),
            "no payload in errors: {stderr}"
        );
    }

    #[test]
    fn a_dry_run_summary_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
        reading("in.jsonl")
            .sink("out", "file", &["in"])
            .set("path", "out.jsonl")
            .write(dir.path());
        let stderr = Flux::run_pipeline("p.toml")
            .args(["--dry-run", "--summary-json", "-"])
            .current_dir(dir.path())
            .run()
            .success()
            .stderr;
        let summary: serde_json::Value =
            serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
        assert_eq!(summary["dry_run"], true);
        assert_eq!(summary["outcome"], "succeeded");
        assert_eq!(stage(&summary, "out")["records_in"], 2);
        // Target shards are for kinesis sinks: without one they are a usage error.
        let stderr = Flux::new()
            .args(["run", "p.toml", "--dry-run", "--shards", "2"])
            .current_dir(dir.path())
            .run()
            .failure(2)
            .stderr;
        assert!(
            stderr.contains("p.toml has no kinesis sink: --shards and --shards-file"),
            "{stderr}"
        );
    }

    /// SIGINT while a source waits on standard input: the run drains, exits 130, and the
    /// summary says `interrupted`; the JSON progress events carry the counters as fields.
    #[cfg(unix)]
    #[test]
    fn an_interrupted_run_summary_says_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        reading("-")
            .sink("out", "file", &["in"])
            .set("path", "out.jsonl")
            .write(dir.path());
        let mut child = flux_engine(&[
            "--log-format",
            "json",
            "run",
            "p.toml",
            "--progress",
            "log",
            "--progress-interval",
            "1",
            "--summary-json",
            "summary.json",
        ])
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"{\"n\":1}\n{\"n\":2}\n").unwrap();
        stdin.flush().unwrap();
        // Wait (however long a loaded machine takes) for the source's progress event to count
        // both records, then interrupt; standard input stays open.
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut progress = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            let e: serde_json::Value = serde_json::from_str(&line).unwrap();
            if e["fields"]["stage"] == "in" && e["fields"]["records"] == 2 {
                progress = Some(e);
                break;
            }
        }
        let progress = progress.expect("a progress event with 2 records");
        assert!(
            progress["fields"]["bytes"].as_u64().unwrap() > 0,
            "{progress}"
        );
        assert!(progress["fields"]["rate"].is_number(), "{progress}");
        assert!(
            progress["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("2 records")
        );
        assert!(kill(&child, "INT").success());
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let status = child.wait().unwrap();
        drop(stdin);
        assert_eq!(status.code(), Some(130), "{rest:?}");
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(s["outcome"], "interrupted");
        assert!(s["error"].is_null());
        assert_eq!(stage(&s, "out")["records_out"], 2);
        assert!(
            rest.iter().any(|l| l.contains("\"event\":\"interrupted\"")),
            "{rest:?}"
        );
        assert_eq!(read_lines(dir.path().join("out.jsonl")).len(), 2);
    }
}

/// `--metrics-listen` is bound before the run starts: a busy port or a malformed address is a
/// clear error naming the option, and nothing runs.
#[test]
fn metrics_listen_errors_come_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let run = || {
        Flux::new()
            .arg("run")
            .arg(quickstart())
            .current_dir(dir.path())
    };
    let stderr = run()
        .args(["--metrics-listen", &addr])
        .env("RUST_LOG", "info")
        .run()
        .failure(2)
        .stderr;
    assert!(
        stderr.starts_with(&format!("error: --metrics-listen {addr}: cannot listen: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("starting"), "{stderr}");
    assert!(!dir.path().join("archive").exists());

    let stderr = run()
        .args(["--metrics-listen", "localhost"])
        .run()
        .failure(2)
        .stderr;
    assert!(
        stderr.contains("invalid value 'localhost' for '--metrics-listen <ADDR>'"),
        "{stderr}"
    );
    drop(busy);
}

/// Issue 13: `--progress-interval 0` is refused before anything runs, as the docs say.
#[test]
fn a_progress_interval_of_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = Flux::new()
        .arg("run")
        .arg(quickstart())
        .args(["--progress-interval", "0"])
        .current_dir(dir.path())
        .run()
        .failure(2)
        .stderr;
    assert!(stderr.contains("--progress-interval"), "{stderr}");
    assert!(!dir.path().join("archive").exists(), "it ran");
}

/// Issue 13: every `flux-engine` command in the README's and docs' shell blocks that can run
/// here (no AWS, no placeholders, no shell variables) runs, in document order, in a fresh copy
/// of the repository's pipelines and examples per document where the quickstart has run (the
/// docs are read after it), and succeeds: the docs cannot drift
/// from the binary unnoticed.
mod docs_commands {
    use std::path::Path;

    use crate::support::{repo_root, run_in, text};

    /// Subcommands that run here without AWS; `run` only for pipelines that stay local.
    const OFFLINE: &[&str] = &[
        "validate", "plan", "render", "schema", "status", "ddl", "run",
    ];

    /// The `flux-engine …` lines of the `sh`/`bash`/`console` blocks of a Markdown text, with
    /// `\` continuations joined.
    fn commands(markdown: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut in_block = false;
        let mut shell = false;
        let mut pending = String::new();
        for line in markdown.lines() {
            let t = line.trim_start();
            if t.starts_with("```") {
                shell = !in_block
                    && matches!(
                        t.trim_start_matches('`').trim(),
                        "sh" | "bash" | "console" | "shell"
                    );
                in_block = !in_block;
                pending.clear();
                continue;
            }
            if !in_block || !shell {
                continue;
            }
            let t = t.trim_start_matches("$ ");
            if let Some(head) = t.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            let full = format!("{pending}{t}");
            pending.clear();
            if full.starts_with("flux-engine ") {
                out.push(full);
            } else if full.starts_with("cargo run ")
                && let Some((_, args)) = full.split_once(" -- ")
            {
                // `cargo run … -p flux-engine -- ARGS` is the binary with ARGS.
                out.push(format!("flux-engine {args}"));
            }
        }
        out
    }

    /// Splits a command line as a POSIX shell would for the simple lines docs hold: quotes,
    /// a trailing `# comment`, and stops at `|`, `>`, `&&` and `;` (what follows is not ours).
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut has = false;
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => cur.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    has = true;
                }
                (None, c) if c.is_whitespace() => {
                    if has {
                        words.push(std::mem::take(&mut cur));
                        has = false;
                    }
                }
                (None, '#' | '|' | '>' | ';' | '&') if !has => break,
                (None, c) => {
                    cur.push(c);
                    has = true;
                }
            }
        }
        if has {
            words.push(cur);
        }
        words
    }

    /// Why a documented command cannot run here, if it cannot.
    fn offline_problem(args: &[String], dir: &Path) -> Option<&'static str> {
        let joined = args.join(" ");
        if !OFFLINE.contains(&args.first().map(String::as_str).unwrap_or_default()) {
            return Some("needs AWS or a running cluster");
        }
        let touches_data = ["run", "status", "ddl"].contains(&args[0].as_str());
        if (touches_data && joined.contains("s3://")) || joined.contains("--metrics-listen") {
            return Some("needs AWS or a network port");
        }
        if joined.contains('$') || joined.contains('…') || joined.contains('<') {
            return Some("holds a placeholder");
        }
        if args[0] == "run" && !args.iter().any(|a| a.contains("quickstart")) {
            return Some("runs against AWS");
        }
        // A `--vars-file` or pipeline the docs assume the reader wrote.
        let missing = args
            .windows(2)
            .any(|w| w[0] == "--vars-file" && !dir.join(&w[1]).exists())
            || args
                .get(1)
                .is_some_and(|f| f.ends_with(".toml") && !f.contains('*') && !dir.join(f).exists());
        missing.then_some("uses a file the reader writes")
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }

    /// Expands the one glob docs use (`pipelines/*.toml`).
    fn expand(args: Vec<String>, dir: &Path) -> Vec<String> {
        args.into_iter()
            .flat_map(|a| match a.strip_suffix("*.toml") {
                Some(folder) => {
                    let mut files: Vec<String> = std::fs::read_dir(dir.join(folder))
                        .unwrap()
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".toml"))
                        .map(|n| format!("{folder}{n}"))
                        .collect();
                    files.sort();
                    files
                }
                None => vec![a],
            })
            .collect()
    }

    #[test]
    fn every_documented_command_that_can_run_here_succeeds() {
        let root = repo_root();
        let mut docs = vec![root.join("README.md")];
        let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        pages.sort();
        docs.extend(pages);
        let (mut ran, mut skipped) = (Vec::new(), Vec::new());
        for doc in docs {
            let dir = tempfile::tempdir().unwrap();
            for sub in ["pipelines", "examples", "schemas"] {
                copy_dir(&root.join(sub), &dir.path().join(sub));
            }
            let name = doc.strip_prefix(&root).unwrap().display().to_string();
            // The docs are read after the README's quickstart: its archive exists.
            let out = run_in(dir.path(), &["run", "pipelines/quickstart.toml"]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "the quickstart: {}",
                text(&out).1
            );
            for line in commands(&std::fs::read_to_string(&doc).unwrap()) {
                let args: Vec<String> = words(&line).into_iter().skip(1).collect();
                if let Some(why) = offline_problem(&args, dir.path()) {
                    skipped.push(format!("{name}: {line} ({why})"));
                    continue;
                }
                let args = expand(args, dir.path());
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = run_in(dir.path(), &argv);
                let (stdout, stderr) = text(&out);
                // A template without its variables is documented to fail, with a message.
                let expected_failure = argv[0] == "validate"
                    && args.iter().any(|a| a.ends_with(".j2"))
                    && !args.iter().any(|a| a == "--var");
                if !expected_failure {
                    assert_eq!(
                        out.status.code(),
                        Some(0),
                        "{name}: `{line}` failed:\n{stdout}\n{stderr}"
                    );
                }
                ran.push(format!("{name}: {line}"));
            }
        }
        // What ran and what could not, for whoever reads the test's output.
        eprintln!(
            "ran:\n  {}\nskipped:\n  {}",
            ran.join("\n  "),
            skipped.join("\n  ")
        );
        assert!(
            ran.len() >= 10,
            "only {} documented commands ran",
            ran.len()
        );
    }

    #[test]
    fn the_line_splitter_reads_what_docs_write() {
        assert_eq!(
            words(r#"flux-engine render p.toml --var ticket="INC 42" --var a='b c'  # note"#),
            [
                "flux-engine",
                "render",
                "p.toml",
                "--var",
                "ticket=INC 42",
                "--var",
                "a=b c"
            ]
        );
        assert_eq!(
            words("flux-engine plan p.toml --format dot | dot -Tsvg > replay.svg"),
            ["flux-engine", "plan", "p.toml", "--format", "dot"]
        );
        let found = commands(
            "```sh\nflux-engine render a \\\n  --var b=c\nls\n```\n```toml\nflux-engine x\n```\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            words(&found[0]),
            ["flux-engine", "render", "a", "--var", "b=c"]
        );
    }
}
