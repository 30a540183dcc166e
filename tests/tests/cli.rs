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
