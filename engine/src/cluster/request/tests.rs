use super::*;
use crate::cluster::file::load_text;
use crate::config::VarOverrides;

const FILE: &str = r#"
[cluster]
name = "a"
release_label = "emr-7.5.0"
service_role = "S"
job_flow_role = "J"
applications = ["Hive", "Spark", "hive"]
tags = { "flux-engine:cluster" = "spoofed", team = "t" }

[instances]
master = { type = "m5.xlarge" }

[drill]
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
hive_metastore = "glue"

[bootstrap]
s3_prefix = "s3://b/p"
"#;

#[test]
fn applications_tags_and_glue() {
    let f = load_text("c.toml", FILE, &VarOverrides::default()).unwrap();
    let r = RunJobFlow::new(&f, Some("s3://b/p/install-drill-1.21.2.sh"), &[]);
    let apps: Vec<_> = r.applications.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(apps, ["Hive", "Spark", "ZooKeeper"]);
    let tags: Vec<_> = r
        .tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    assert_eq!(tags, [("team", "t"), (NAME_TAG, "a")]);
    assert_eq!(r.configurations[0].classification, "hive-site");
    assert_eq!(
        r.configurations[0].properties["hive.metastore.client.factory.class"],
        GLUE_FACTORY
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["Configurations"][0]["Classification"], "hive-site");
    assert!(json.get("AutoTerminationPolicy").is_none());
    assert!(json.get("Steps").is_none());
}

#[test]
fn without_drill_no_zookeeper_and_no_bootstrap_action() {
    let text = FILE.split("[drill]").next().unwrap();
    let f = load_text("c.toml", text, &VarOverrides::default()).unwrap();
    let r = RunJobFlow::new(&f, None, &[]);
    let apps: Vec<_> = r.applications.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(apps, ["Hive", "Spark"]);
    assert!(r.bootstrap_actions.is_empty());
    assert!(r.configurations.is_empty());
}
