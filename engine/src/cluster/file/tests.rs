use super::*;
use crate::config::VarOverrides;
use crate::diagnostic::Diagnostic;

const GOOD: &str = r#"
[cluster]
name = "analytics"
release_label = "emr-7.5.0"
service_role = "EMR_DefaultRole"
job_flow_role = "EMR_EC2_DefaultRole"
idle_timeout = "1h"

[instances]
master = { type = "m5.xlarge" }
core = { type = "m5.xlarge", count = 2 }
"#;

fn load(text: &str) -> Result<ClusterFile, Vec<Diagnostic>> {
    load_text("c.toml", text, &VarOverrides::default())
}

#[test]
fn a_minimal_file_loads_with_defaults() {
    let f = load(GOOD).unwrap();
    assert_eq!(f.cluster.applications, vec!["Hive".to_string()]);
    assert_eq!(f.instances.master.count, 1);
    assert_eq!(f.instances.core.unwrap().count, 2);
    assert_eq!(f.cluster.idle_timeout.unwrap().0.as_secs(), 3600);
}

#[test]
fn unknown_keys_are_located_with_their_path() {
    let text = GOOD.replace("idle_timeout", "idle_timout");
    let d = &load(&text).unwrap_err()[0];
    assert_eq!(d.field.as_deref(), Some("cluster.idle_timout"));
    assert_eq!(d.location.as_ref().unwrap().line, 7);
    assert_eq!(d.help.as_deref(), Some("did you mean `idle_timeout`?"));
}

#[test]
fn missing_and_invalid_values_are_reported() {
    let text = GOOD.replace("release_label = \"emr-7.5.0\"\n", "");
    let d = &load(&text).unwrap_err()[0];
    assert_eq!(d.field.as_deref(), Some("cluster.release_label"));
    assert_eq!(d.location.as_ref().unwrap().line, 2);
    let text = GOOD.replace("\"1h\"", "\"soon\"");
    let d = &load(&text).unwrap_err()[0];
    assert!(d.message.contains("invalid duration"), "{d}");
    assert_eq!(d.location.as_ref().unwrap().line, 7);
}

#[test]
fn drill_needs_a_checksum_and_a_prefix() {
    let text = format!("{GOOD}\n[drill]\nversion = \"1.21.2\"\n");
    let errors = load(&text).unwrap_err();
    let fields: Vec<_> = errors.iter().filter_map(|d| d.field.as_deref()).collect();
    assert_eq!(fields, ["drill.sha512", "bootstrap.s3_prefix"]);
}
