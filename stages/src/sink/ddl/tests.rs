use super::config::all_engines;
use super::*;

fn config(extra: &str) -> Result<DdlSinkConfig, String> {
    let text = format!(
        "archive = \"s3://acme/kinesis\"\nstream = \"orders\"\nout = \"sql\"\ncolumns = {{ id = \"data.id\", total = \"data.total:double\" }}\n{extra}"
    );
    let c: DdlSinkConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    crate::problems::Problems::first(|p| c.check(p)).map(|_| c)
}

#[test]
fn validation_names_the_key() {
    assert!(config("").is_ok());
    let err = |extra: &str| config(extra).unwrap_err();
    assert!(err("live_key = \"nope\"").contains("`live_key`"));
    assert!(err("engines = [\"hive\", \"hive\"]").contains("twice"));
    assert!(err("engines = []").contains("`engines`"));
    assert!(err("drill = { filesystem = \"gs\" }").contains("`drill`"));
    assert!(err("drill = { endpoint = \"https://d:8047\" }").contains("https"));
    assert!(err("athena = { since = \"2026-13-01\" }").contains("YYYY-MM-DD"));
    assert!(err("names = { archive = \"orders-all\" }").contains("`names`"));
    assert!(err("shards = [\"a,b\"]").contains("`shards`"));
}

#[test]
fn the_model_takes_names_shards_and_settings() {
    let c =
        config("names = { live = \"orders_now\" }\nshards = [\"s-2\"]\nlive_key = \"id\"").unwrap();
    let m = c
        .model(BTreeSet::from(["s-1".to_owned()]), "2026-01-01".into())
        .unwrap();
    assert_eq!(m.names.live, "orders_now");
    assert_eq!(m.names.archive, "orders_archive");
    assert_eq!(m.shards, ["s-1", "s-2"]);
    // The user's two columns, then the replay protocol's.
    let names: Vec<&str> = m.projections.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["id", "total", "replay_id", "is_fence"]);
    assert!(!m.include_fences);
    assert!(m.fence_filter().is_some());
    let files = generate(&m, &all_engines());
    let paths: Vec<&str> = files.iter().map(GeneratedFile::path).collect();
    assert_eq!(
        paths,
        [
            "duckdb/views.sql",
            "drill/storage-flux.json",
            "drill/storage-hive.json",
            "drill/views.sql",
            "hive/archive.sql",
            "hive/live.sql",
            "hive/unified.sql",
            "athena/archive.sql"
        ]
    );
    // The EMR step for `flux-engine cluster` runs the whole Hive script.
    let step = hive::step(&m, "s3://acme/sql/hive.sql");
    assert_eq!(step.jar, "command-runner.jar");
    assert_eq!(step.args.last().unwrap(), "s3://acme/sql/hive.sql");
    let script = hive::step_script(&m);
    assert!(script.contains("MSCK REPAIR TABLE `default`.`orders_archive_raw`;"));
    assert!(script.contains("STORED BY 'com.amazon.emr.kinesis.hive.KinesisStorageHandler'"));
    assert!(script.contains("CREATE VIEW `default`.`orders_unified`"));
}

#[test]
fn without_live_key_or_snapshot_there_is_no_unified_view() {
    let m = config("")
        .unwrap()
        .model(BTreeSet::new(), "2026-01-01".into())
        .unwrap();
    let text: String = generate(&m, &all_engines())
        .iter()
        .map(GeneratedFile::text)
        .collect();
    assert!(!text.contains("orders_unified\" AS") && !text.contains("orders_unified` AS"));
    assert!(text.contains("No `snapshot` is configured"));
}
