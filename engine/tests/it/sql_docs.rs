//! docs/sql.md's example queries, which it says run unchanged on DuckDB, Drill, Hive and Athena,
//! are valid in each engine's grammar (crate::support::sql_grammar: sqlparser with the closest
//! dialect, plus each engine's reserved words and name quotes). tests/ddl_duckdb.rs also runs
//! them in DuckDB and checks their answers.

use crate::support::repo_root;
use crate::support::sql_grammar::{Engine, sql_blocks};

const SECTION: &str = "Example queries (both routes)";

#[test]
fn every_example_query_of_docs_sql_is_valid_in_each_engines_grammar() {
    let doc = std::fs::read_to_string(repo_root().join("docs/sql.md")).unwrap();
    assert!(
        doc.contains("The same text runs on DuckDB, Drill, Hive and Athena"),
        "docs/sql.md no longer says which engines its examples run on: update this test"
    );
    let examples = sql_blocks(&doc, SECTION);
    assert!(examples.len() >= 5, "{examples:#?}");
    let mut failures = Vec::new();
    for (caption, sql) in &examples {
        for engine in Engine::ALL {
            if let Err(e) = engine.check(sql) {
                failures.push(format!("{caption}\n  {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "docs/sql.md, \"{SECTION}\":\n{}",
        failures.join("\n")
    );
}
