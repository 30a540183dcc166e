//! The command line as users meet it: the committed schema, plans, rendering, exit codes.

use flux_tests::{flux_engine, repo_root, run_in, text};

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
    let out = flux_engine(&[
        "--log-format",
        "json",
        "run",
        repo_root()
            .join("pipelines/quickstart.toml")
            .to_str()
            .unwrap(),
        "--var",
        &format!(
            "input={}",
            repo_root().join("examples/orders.jsonl").display()
        ),
        "--progress",
        "off",
    ])
    .env("RUST_LOG", "info")
    .current_dir(dir.path())
    .output()
    .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let first = stderr.lines().next().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(v["fields"]["message"], "starting");
    assert!(
        !stderr.contains("\"order_id\""),
        "payloads are never logged at info level"
    );
}
