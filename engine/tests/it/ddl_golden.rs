//! Golden files of every statement the `ddl` sink generates, written by the real binary from
//! the pipelines under tests/golden/ddl/<case>/ (`FLUX_BLESS=1` rewrites them), and every
//! statement parsed: by sqlparser-rs with the closest dialect (DuckDB, Hive, Generic for Drill's
//! and Athena's views), and the Hive and Athena DDL also by the strict checker of
//! crate::support::hive_ddl (Hive's clause order, reserved words, STRUCT colons, no trailing
//! commas), since sqlparser accepts what Hive rejects. DuckDB's are also executed
//! (tests/ddl_duckdb.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::{assert_golden, flux_engine, hive_ddl, repo_root, text};
use sqlparser::dialect::{Dialect, DuckDbDialect, GenericDialect, HiveDialect};
use sqlparser::parser::Parser;

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Splits a generated SQL file into statements (they end with `;` at the end of a line).
fn statements(text: &str) -> Vec<String> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse(dialect: &dyn Dialect, file: &str, sql: &str) -> Result<(), String> {
    let parsed = Parser::parse_sql(dialect, sql).map_err(|e| format!("{file}: {e}\n{sql}"))?;
    if parsed.len() != 1 {
        return Err(format!("{file}: {} statements in one\n{sql}", parsed.len()));
    }
    Ok(())
}

/// Checks every statement of one generated file; returns how many were checked by what.
fn check_file(rel: &str, text: &str, counts: &mut Counts) -> Result<(), String> {
    if rel.ends_with(".json") {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("{rel}: {e}"))?;
        if !v["name"].is_string() || !v["config"]["type"].is_string() {
            return Err(format!(
                "{rel}: not a Drill storage plugin ({{name, config{{type}}}})"
            ));
        }
        counts.json += 1;
        return Ok(());
    }
    for sql in statements(text) {
        let engine = rel.split('/').next().unwrap_or_default();
        let upper = sql.to_ascii_uppercase();
        match engine {
            "duckdb" => parse(&DuckDbDialect {}, rel, &sql)?,
            "drill" => parse(&GenericDialect {}, rel, &sql)?,
            "hive" | "athena" => {
                let view =
                    upper.starts_with("CREATE VIEW") || upper.starts_with("CREATE OR REPLACE VIEW");
                if engine == "athena" && view {
                    // Athena's views are Trino SQL (double-quoted names).
                    parse(&GenericDialect {}, rel, &sql)?;
                } else if upper.contains("STORED BY") || upper.contains("STRUCT<") {
                    // sqlparser knows neither STORED BY (storage handlers) nor Hive's
                    // `STRUCT<name:type>`: the strict checker alone.
                    counts.strict_only += 1;
                } else {
                    parse(&HiveDialect {}, rel, &sql)?;
                }
                if hive_ddl::check(&sql).map_err(|e| format!("{rel}: {e}\n{sql}"))? {
                    counts.strict += 1;
                }
            }
            other => return Err(format!("{rel}: unknown engine folder {other}")),
        }
        counts.parsed += 1;
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Counts {
    parsed: usize,
    strict: usize,
    strict_only: usize,
    json: usize,
}

#[test]
fn generated_ddl_matches_the_goldens_and_parses() {
    let root = repo_root();
    let cases_dir = root.join("tests/golden/ddl");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("pipeline.toml").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 2, "{cases:?}");
    let mut failures = Vec::new();
    let mut counts = Counts::default();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let out = tempfile::tempdir().unwrap();
        let pipeline = format!("tests/golden/ddl/{name}/pipeline.toml");
        let run = flux_engine(&[
            "run",
            &pipeline,
            "--var",
            &format!("out={}", out.path().display()),
            "--progress",
            "off",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
        assert!(run.status.success(), "{name}: {}", text(&run).1);
        let golden_dir = case.join("out");
        let generated: BTreeSet<String> = files_below(out.path())
            .iter()
            .map(|p| {
                p.strip_prefix(out.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        if std::env::var_os("FLUX_BLESS").is_some_and(|v| v == "1") {
            let _ = std::fs::remove_dir_all(&golden_dir);
        }
        for rel in &generated {
            let actual = std::fs::read_to_string(out.path().join(rel)).unwrap();
            let golden = golden_dir.join(rel);
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            if let Err(p) = std::panic::catch_unwind(|| assert_golden(&golden, &actual)) {
                failures.push(
                    p.downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| format!("{name}/{rel}: differs")),
                );
            }
            if let Err(e) = check_file(rel, &actual, &mut counts) {
                failures.push(format!("{name}: {e}"));
            }
        }
        if golden_dir.exists() {
            for p in files_below(&golden_dir) {
                let rel = p
                    .strip_prefix(&golden_dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !generated.contains(&rel) {
                    failures.push(format!("{name}: golden {rel} was not generated"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Every engine's output was checked: 4 DuckDB + 5 DuckDB-on-S3 (incl. the extension
    // setup), Drill views, Hive and Athena DDL.
    assert!(counts.parsed >= 30, "{counts:?}");
    assert!(counts.strict >= 12, "{counts:?}");
    // Only the tables with a STRUCT column bypass sqlparser: every Hive and Athena raw table
    // (`data` holds at least the replay protocol's `_flux` members) and the Kinesis table.
    assert_eq!(counts.strict_only, 5, "{counts:?}");
    assert_eq!(counts.json, 2, "{counts:?}");
}

#[test]
fn the_hive_ddl_checker_rejects_the_known_pitfalls() {
    // The checker must be able to fail (the goldens only show it passing).
    let ok = "CREATE EXTERNAL TABLE `d`.`t` (`date` STRING) PARTITIONED BY (`dt` STRING) STORED AS TEXTFILE LOCATION 's3://b/'";
    assert_eq!(hive_ddl::check(ok), Ok(true));
    for (bad, why) in [
        ("CREATE EXTERNAL TABLE t (date STRING)", "reserved"),
        (
            "CREATE EXTERNAL TABLE t (a STRING, b STRING,)",
            "trailing comma",
        ),
        ("CREATE EXTERNAL TABLE t (a STRUCT<x STRING>)", "name:type"),
        (
            "CREATE EXTERNAL TABLE t (a STRING) LOCATION 's3://b/' PARTITIONED BY (dt STRING)",
            "order",
        ),
    ] {
        let err = hive_ddl::check(bad).expect_err(bad);
        assert!(err.contains(why), "{bad}: {err}");
    }
    // sqlparser alone accepts some of them: that is why the checker exists.
    let lenient = Parser::parse_sql(
        &HiveDialect {},
        "CREATE EXTERNAL TABLE t (a STRING) LOCATION 's3://b/' PARTITIONED BY (dt STRING)",
    );
    eprintln!(
        "sqlparser on LOCATION before PARTITIONED BY: {:?}",
        lenient.map(|_| "accepted")
    );
}
