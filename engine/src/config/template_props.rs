//! Property: whatever a `--var` value is, the shipped templates keep their structure. For every
//! template in `pipelines/` and every variable it uses, a random value either arrives intact
//! (the parsed TOML has the same tables, keys and types as with a plain value, and the value
//! appears exactly where the plain one did) or is refused with a diagnostic that names the
//! variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::escape::jsonpath_literal;
use super::load::{load_text, render_text};
use super::template::{is_template, variables};
use super::vars::{VarOverrides, file_vars};

/// The payload from issue 11: closes the string and adds a sink writing every record to a path
/// of the caller's choosing.
const ISSUE_PAYLOAD: &str = "x\"\n[sinks.evil]\ntype=\"file\"\ninputs=[\"orders\"]\npath=\"/tmp/evil.jsonl\"\n[sources.more]\ntype=\"file\"\npath=\"x";

fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines")
}

/// Every shipped file with template syntax: (path for diagnostics, text).
fn shipped_templates() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in [pipelines_dir(), pipelines_dir().join("clusters")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let text = std::fs::read_to_string(&path).unwrap();
                if is_template(&text) {
                    files.push((path.display().to_string(), text));
                }
            }
        }
    }
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

/// Every leaf of a TOML document by path, and every table and array path (with its length).
fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(t) => {
            out.insert(
                format!("{prefix}{{}}"),
                toml::Value::Integer(t.len() as i64),
            );
            for (k, v) in t {
                flatten(&format!("{prefix}.{k:?}"), v, out);
            }
        }
        toml::Value::Array(items) => {
            out.insert(
                format!("{prefix}[]"),
                toml::Value::Integer(items.len() as i64),
            );
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

fn parsed(
    file: &str,
    text: &str,
    pairs: &[(String, String)],
) -> Result<BTreeMap<String, toml::Value>, super::super::diagnostic::Diagnostic> {
    let overrides = VarOverrides {
        files: vec![],
        pairs: pairs.to_vec(),
    };
    let rendered = render_text(file, text, &overrides)?;
    let table: toml::Table = toml::from_str(&rendered.text).unwrap_or_else(|e| {
        panic!(
            "{file}: the rendered text is not TOML: {e}\n{}",
            rendered.text
        )
    });
    let mut flat = BTreeMap::new();
    flatten("", &toml::Value::Table(table), &mut flat);
    Ok(flat)
}

fn values() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"'\\\\\n\r\t\\[\\]{}=#,. /a-z0-9:\u{0}\u{7f}\u{e000}\u{e001}-]{1,24}",
        "-?[0-9]{1,18}",
        Just(ISSUE_PAYLOAD.to_owned()),
        Just("../../x".to_owned()),
        Just("eu' || @.data.region != 'eu".to_owned()),
    ]
    // An empty value switches `{% if %}` blocks off, which changes the structure on purpose.
    .prop_filter("empty values switch blocks off", |v| !v.is_empty())
}

#[test]
fn a_var_value_never_changes_the_pipeline_structure() {
    let mut checked = 0;
    for (file, text) in shipped_templates() {
        let defaults = file_vars(&file, &text).unwrap();
        let names: Vec<String> = variables(&text).into_iter().collect();
        // Distinct plain values, so each one can be found in the output.
        let plain: Vec<(String, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let v = match defaults.get(n) {
                    Some(toml::Value::Integer(_)) => format!("{}", 7_777_700 + i),
                    Some(toml::Value::Boolean(b)) => b.to_string(),
                    _ => format!("Sentinel{i}Q"),
                };
                (n.clone(), v)
            })
            .collect();
        let baseline = parsed(&file, &text, &plain)
            .unwrap_or_else(|d| panic!("{file} does not render with plain values: {d}"));
        for (i, name) in names.iter().enumerate() {
            // A boolean takes only `true` or `false` (any other value is refused before
            // rendering, see `vars`), and switching it is meant to change the pipeline.
            if matches!(defaults.get(name), Some(toml::Value::Boolean(_))) {
                continue;
            }
            let sentinel = plain[i].1.clone();
            let mut runner = TestRunner::new(Config {
                cases: 48,
                failure_persistence: None,
                ..Config::default()
            });
            let result = runner.run(&values(), |v| {
                let mut pairs = plain.clone();
                pairs[i].1 = v.clone();
                let flat = match parsed(&file, &text, &pairs) {
                    Ok(flat) => flat,
                    Err(d) => {
                        // Refused: the diagnostic names the variable.
                        prop_assert!(
                            d.message.contains(name.as_str()),
                            "the refusal does not name `{}`: {}",
                            name,
                            d
                        );
                        return Ok(());
                    }
                };
                prop_assert_eq!(
                    baseline.keys().collect::<Vec<_>>(),
                    flat.keys().collect::<Vec<_>>(),
                    "the structure changed"
                );
                for (path, before) in &baseline {
                    let after = &flat[path];
                    let expected = match before {
                        toml::Value::String(s) if s.contains(&sentinel) => {
                            let text = s.replace(&sentinel, &v);
                            let quoted =
                                s.replace(&jsonpath_literal(&sentinel), &jsonpath_literal(&v));
                            if after.as_str() == Some(quoted.as_str()) && quoted != *s {
                                check_filter(&v)?;
                                continue;
                            }
                            toml::Value::String(text)
                        }
                        toml::Value::Integer(n) if n.to_string() == sentinel => {
                            toml::Value::Integer(v.trim().parse().map_err(|_| {
                                TestCaseError::fail(format!("{path}: accepted {v:?} as a number"))
                            })?)
                        }
                        other => other.clone(),
                    };
                    prop_assert_eq!(after, &expected, "{} with {} = {:?}", path, name, v);
                }
                Ok(())
            });
            if let Err(e) = result {
                panic!("{file}: `{name}`: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} variables checked");
}

/// A value written into a filter with `jsonpath_literal` compares equal to exactly itself.
fn check_filter(v: &str) -> Result<(), TestCaseError> {
    let expr = format!("@.data.region == {}", jsonpath_literal(v));
    let p = flux_stages::expr::Predicate::compile(&expr)
        .map_err(|e| TestCaseError::fail(format!("{expr:?} does not compile: {e}")))?;
    let view = |region: &str| serde_json::json!({"data": {"region": region}});
    prop_assert!(p.matches(view(v)), "{expr:?} does not match {v:?}");
    let other = format!("{v}x");
    prop_assert!(!p.matches(view(&other)), "{expr:?} matches {other:?}");
    Ok(())
}

/// The exact payload from issue 11 adds no stage: it arrives as the input path.
#[test]
fn the_issue_payload_adds_no_sink() {
    let file = pipelines_dir().join("quickstart.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let loaded = load_text(
        "quickstart.toml",
        &text,
        &VarOverrides {
            files: vec![],
            pairs: vec![("input".into(), ISSUE_PAYLOAD.into())],
        },
    );
    let spec = loaded.spec.expect("loads");
    let ids: Vec<&str> = spec.stages.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["orders", "archive", "rejects"]);
    assert!(
        !spec.rendered.contains("\n[sinks.evil]"),
        "{}",
        spec.rendered
    );
    let table: toml::Table = toml::from_str(&spec.rendered).unwrap();
    assert_eq!(
        table["sources"]["orders"]["path"].as_str(),
        Some(ISSUE_PAYLOAD)
    );
}
