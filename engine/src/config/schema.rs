//! The JSON Schema of the pipeline format, generated from the stage config types (their doc
//! comments become descriptions). `schemas/pipeline.schema.json` is this output, committed; a
//! test keeps it current. Editors pick it up from the `#:schema` line of a pipeline file.

use flux_stages::registry::{Role, StageConfig};

use super::engine_keys::EngineKeys;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The schema as a JSON value.
pub fn pipeline_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let mut defs = Map::new();
    let mut sections = Map::new();
    let engine_keys = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<EngineKeys>()
        .to_value()["properties"]
        .clone();
    for role in [Role::Source, Role::Transform, Role::Sink] {
        let mut variants = Vec::new();
        for kind in role.kinds() {
            let Some(schema) = StageConfig::schema(role, kind, &mut generator) else {
                continue;
            };
            let mut schema = schema.to_value();
            add_engine_keys(&mut schema, &engine_keys, role, kind);
            let name = format!("{}-{kind}", role.noun());
            variants.push(json!({ "$ref": format!("#/$defs/{name}") }));
            defs.insert(name, schema);
        }
        defs.insert(role.noun().to_owned(), json!({ "oneOf": variants }));
        sections.insert(
            role.section().to_owned(),
            json!({
                "type": "object",
                "description": format!("The pipeline's {}s, by id.", role.noun()),
                "additionalProperties": { "$ref": format!("#/$defs/{}", role.noun()) }
            }),
        );
    }
    defs.extend(generator.take_definitions(true));
    let mut properties = Map::new();
    properties.insert(
        "pipeline".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "description": "The pipeline's name (may use template variables)." },
                "description": { "type": "string", "description": "What the pipeline is for." }
            }
        }),
    );
    properties.insert(
        "vars".into(),
        json!({
            "type": "object",
            "description": "Template variables with their defaults (plain TOML); `--vars-file` and `--var key=value` override them."
        }),
    );
    properties.extend(sections);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://flux-engine.dev/schemas/pipeline.schema.json",
        "title": "flux-engine pipeline",
        "description": "A flux-engine pipeline file: sources, transforms and sinks wired into a DAG by `inputs`.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "$defs": defs
    })
}

/// Adds the engine's keys ([`EngineKeys`]: their descriptions, bounds and defaults) to a
/// stage kind's schema, `type` as the kind's constant, `inputs` only where the role has them.
fn add_engine_keys(schema: &mut Value, engine_keys: &Value, role: Role, kind: &str) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    obj.remove("$schema");
    obj.insert("title".into(), json!(format!("{} `{kind}`", role.noun())));
    let props = obj
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("properties is an object");
    for (key, schema) in engine_keys.as_object().into_iter().flatten() {
        if key == "inputs" && role == Role::Source {
            continue;
        }
        let mut schema = schema.clone();
        if key == "type" {
            schema = json!({ "const": kind, "description": format!("The stage type: `{kind}`.") });
        }
        props.insert(key.clone(), schema);
    }
    let required = obj
        .entry("required")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("required is an array");
    required.insert(0, json!("type"));
    if role != Role::Source {
        required.insert(1, json!("inputs"));
    }
    obj.insert("additionalProperties".into(), json!(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{VarOverrides, load_text};

    /// A pipeline with `stage` (a `[role.x]` table without its value line) and `line` in it.
    fn pipeline(stage: &str, line: &str) -> String {
        let (src, sink) = if stage.starts_with("[sources.") {
            (
                format!("{stage}\n{line}\n"),
                "[sinks.o]\ntype = \"file\"\ninputs = [\"x\"]\npath = \"o.jsonl\"\n".to_owned(),
            )
        } else {
            (
                "[sources.in]\ntype = \"file\"\npath = \"in.jsonl\"\n".to_owned(),
                format!("{stage}\n{line}\n"),
            )
        };
        format!("{src}\n{sink}")
    }

    /// Every number range the schema states is the range the engine accepts: each bound is
    /// accepted and each value just past it is refused, naming the key; and every bounded key
    /// of the schema is listed here, so a new bound cannot go unchecked.
    #[test]
    fn the_schema_states_the_ranges_the_engine_enforces() {
        let stages = [
            (
                "source-archive",
                "[sources.x]\ntype = \"archive\"\nurl = \"file://./a\"\nstream = \"orders\"",
            ),
            (
                "source-file",
                "[sources.x]\ntype = \"file\"\npath = \"in.jsonl\"",
            ),
            (
                "source-kinesis",
                "[sources.x]\ntype = \"kinesis\"\nstream = \"orders\"",
            ),
            (
                "sink-archive",
                "[sinks.x]\ntype = \"archive\"\ninputs = [\"in\"]\nurl = \"file://./a\"",
            ),
            (
                "sink-kinesis",
                "[sinks.x]\ntype = \"kinesis\"\ninputs = [\"in\"]\nstream = \"orders\"\nfences = false",
            ),
        ];
        let schema = pipeline_schema();
        let defs = schema["$defs"].as_object().expect("$defs");
        let mut checked = 0;
        for (name, def) in defs {
            let Some(props) = def["properties"].as_object() else {
                continue;
            };
            for (key, p) in props {
                let (min, max) = (p["minimum"].as_i64(), p["maximum"].as_i64());
                if key == "buffer_records" || (min.unwrap_or(0) == 0 && max.is_none()) {
                    continue; // engine keys are checked by the loader's own tests; 0.. is no bound
                }
                let stage = stages
                    .iter()
                    .find(|(n, _)| n == name)
                    .unwrap_or_else(|| panic!("{name}.{key} is bounded: add {name} to this test"))
                    .1;
                let accepts = |v: i64| {
                    let text = pipeline(stage, &format!("{key} = {v}"));
                    let loaded = load_text("p.toml", &text, &VarOverrides::default());
                    let bad: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
                    assert!(
                        bad.iter().all(|d| d.message.contains(key.as_str())
                            || d.field
                                .as_deref()
                                .is_some_and(|f| f.ends_with(key.as_str()))),
                        "{name}.{key} = {v}: an error about something else: {bad:?}"
                    );
                    bad.is_empty()
                };
                if let Some(min) = min {
                    assert!(
                        accepts(min),
                        "{name}.{key}: the schema's minimum {min} is refused"
                    );
                    assert!(!accepts(min - 1), "{name}.{key}: {} is accepted", min - 1);
                }
                if let Some(max) = max {
                    assert!(
                        accepts(max),
                        "{name}.{key}: the schema's maximum {max} is refused"
                    );
                    assert!(!accepts(max + 1), "{name}.{key}: {} is accepted", max + 1);
                }
                checked += 1;
            }
        }
        assert!(checked >= 11, "only {checked} bounded keys checked");
    }
}
