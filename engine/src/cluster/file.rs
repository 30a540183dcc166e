//! The cluster file (`pipelines/clusters/*.toml`): its typed form and a strict loader whose
//! errors name the file, line, column and key path, like the pipeline loader's.
//!
//! The file may use `[vars]` and template expressions like a pipeline file (`--var k=v`).

use std::collections::BTreeMap;
use std::ops::Range;

use flux_stages::aws::AwsSettings;
use flux_stages::sink::ddl::DdlSinkConfig;
use flux_stages::units::HumanDuration;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::VarOverrides;
use crate::config::decode::{self, Scope, TableNames, find_key};
use crate::config::load::render_text;
use crate::config::template::Rendered;
use crate::diagnostic::{Diagnostic, LineIndex};

/// The Drill version installed when `[drill] version` is not set.
pub const DEFAULT_DRILL_VERSION: &str = "1.21.2";

/// A whole cluster file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Template variables (used while rendering; ignored here).
    #[serde(default)]
    pub vars: Option<toml::Table>,
    /// The cluster itself.
    pub cluster: ClusterSection,
    /// Its instance groups.
    pub instances: InstancesSection,
    /// Drill, installed by a generated bootstrap action.
    #[serde(default)]
    pub drill: Option<DrillSection>,
    /// Where generated scripts are uploaded.
    #[serde(default)]
    pub bootstrap: Option<BootstrapSection>,
    /// The `ddl` sink whose Hive tables and Drill views the steps create.
    #[serde(default)]
    pub ddl: Option<DdlSection>,
    /// How to reach EMR and S3 (region, profile, endpoint).
    #[serde(default)]
    pub aws: AwsSettings,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// The cluster's name; also the value of the `flux-engine:cluster` tag that finds it again.
    pub name: String,
    /// The EMR release, e.g. `emr-7.5.0`.
    pub release_label: String,
    /// Where EMR writes logs, `s3://…`.
    #[serde(default)]
    pub log_uri: Option<String>,
    /// The EMR service role, e.g. `EMR_DefaultRole`.
    pub service_role: String,
    /// The EC2 instance profile of the nodes, e.g. `EMR_EC2_DefaultRole`.
    pub job_flow_role: String,
    /// The subnet to launch in (default: EMR's choice in the default VPC).
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// An EC2 key pair for SSH (optional: SSM works without one).
    #[serde(default)]
    pub key_name: Option<String>,
    /// Terminate after this long without work, e.g. "1h" (EMR accepts 1 minute to 7 days).
    #[serde(default)]
    pub idle_timeout: Option<HumanDuration>,
    /// Tags on the cluster (and its instances).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// EMR applications. Default `["Hive"]`; "ZooKeeper" is added when Drill is configured.
    #[serde(default = "default_applications")]
    pub applications: Vec<String>,
}

fn default_applications() -> Vec<String> {
    vec!["Hive".into()]
}

/// `[instances]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancesSection {
    /// The master group.
    pub master: InstanceGroup,
    /// The core group (optional: a single-node cluster has none).
    #[serde(default)]
    pub core: Option<InstanceGroup>,
}

/// One instance group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceGroup {
    /// The EC2 instance type, e.g. `m5.xlarge`.
    #[serde(rename = "type")]
    pub instance_type: String,
    /// How many instances. Default 1.
    #[serde(default = "one")]
    pub count: i32,
    /// "on_demand" (default) or "spot".
    #[serde(default)]
    pub market: Market,
}

fn one() -> i32 {
    1
}

/// How instances are bought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Market {
    /// On-demand instances.
    #[default]
    OnDemand,
    /// Spot instances (may be reclaimed).
    Spot,
}

/// `[drill]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSection {
    /// The Drill release. Default [`DEFAULT_DRILL_VERSION`].
    #[serde(default = "default_drill_version")]
    pub version: String,
    /// SHA-512 of the tarball, hex (this or `sha256` is required).
    #[serde(default)]
    pub sha512: Option<String>,
    /// SHA-256 of the tarball, hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Where the tarball is downloaded from. Default: the Apache archive.
    #[serde(default)]
    pub download_url: Option<String>,
    /// Drill's Hive plugin talks to the cluster's metastore or to the Glue Data Catalog.
    #[serde(default)]
    pub hive_metastore: Metastore,
}

fn default_drill_version() -> String {
    DEFAULT_DRILL_VERSION.into()
}

/// The Hive metastore Drill uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metastore {
    /// The metastore on the master, `thrift://<master>:9083`.
    #[default]
    Cluster,
    /// The AWS Glue Data Catalog.
    Glue,
}

impl DrillSection {
    /// The tarball URL.
    pub fn url(&self) -> String {
        self.download_url.clone().unwrap_or_else(|| {
            format!(
                "https://archive.apache.org/dist/drill/{v}/apache-drill-{v}.tar.gz",
                v = self.version
            )
        })
    }

    /// When the digest is the shipped example's all-zero placeholder: `(key, message)` saying
    /// where to find the real one. A cluster started with it fails in its bootstrap action,
    /// after minutes of billing, so `cluster up` refuses it first.
    pub fn placeholder_digest(&self) -> Option<(&'static str, String)> {
        let (tool, digest) = self.checksum();
        if digest.is_empty() || digest.bytes().any(|b| b != b'0') {
            return None;
        }
        let key = if tool == "sha512sum" {
            "drill.sha512"
        } else {
            "drill.sha256"
        };
        let ext = if tool == "sha512sum" {
            "sha512"
        } else {
            "sha256"
        };
        Some((
            key,
            format!(
                "`{key}` is the all-zero placeholder; copy the real digest from {}.{ext} (the bootstrap action would refuse the download and the cluster would fail after it was started)",
                self.url()
            ),
        ))
    }

    /// The checksum tool (`sha512sum`/`sha256sum`) and the expected digest.
    pub fn checksum(&self) -> (&'static str, &str) {
        match (&self.sha512, &self.sha256) {
            (Some(h), _) => ("sha512sum", h),
            (None, Some(h)) => ("sha256sum", h),
            (None, None) => ("sha512sum", ""),
        }
    }
}

/// `[bootstrap]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSection {
    /// `s3://bucket/prefix` where generated scripts (bootstrap, steps) are uploaded.
    pub s3_prefix: String,
}

/// `[ddl]`: a `ddl` sink of a pipeline file, or one written inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdlSection {
    /// A pipeline file (relative to the cluster file).
    #[serde(default)]
    pub pipeline: Option<String>,
    /// The id of the `ddl` sink in it.
    #[serde(default)]
    pub sink: Option<String>,
    /// Or the sink's configuration itself (`[ddl.inline]`, the keys of a `ddl` sink).
    #[serde(default)]
    pub inline: Option<Box<DdlSinkConfig>>,
}

/// A loaded cluster file, or every problem found.
pub fn load_file(path: &str, overrides: &VarOverrides) -> Result<ClusterFile, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::error(
            path,
            format!("cannot read cluster file: {e}"),
        )]
    })?;
    load_text(path, &text, overrides)
}

/// Loads a cluster file from its text; `file` names it in diagnostics.
pub fn load_text(
    file: &str,
    text: &str,
    overrides: &VarOverrides,
) -> Result<ClusterFile, Vec<Diagnostic>> {
    let rendered = render_text(file, text, overrides).map_err(|d| vec![d])?;
    decode(file, text, &rendered).map_err(|mut diags| {
        // Values read with env("…") are never shown.
        diags.iter_mut().for_each(|d| d.redact(&rendered.secrets));
        diags
    })
}

fn decode(file: &str, text: &str, rendered: &Rendered) -> Result<ClusterFile, Vec<Diagnostic>> {
    let ctx = Ctx {
        source: LineIndex::new(text),
        rendered,
    };
    let (root, errors) = DeTable::parse_recoverable(&rendered.text);
    if !errors.is_empty() {
        return Err(crate::config::load::syntax_errors(file, &errors, |s| {
            ctx.locate(s)
        }));
    }
    let span = root.span();
    let table = root.into_inner();
    let value = Spanned::new(span, DeValue::Table(table.clone()));
    let parsed = match decode::decode_into::<ClusterFile>(value) {
        Ok(f) => f,
        Err(failure) => {
            let scope = Scope {
                prefix: "",
                names: TableNames::Sections("the cluster file"),
                docs: "docs/cluster.md",
                fallback: None,
            };
            let p = decode::translate(&failure.error, &failure.path, &table, &scope);
            let mut d =
                Diagnostic::error_of(p.kind, file, p.message).at(p.span.map(|s| ctx.locate(s)));
            if !p.field.is_empty() {
                d = d.field(p.field);
            }
            d.help = p.help;
            return Err(vec![d]);
        }
    };
    let problems = validate(&parsed);
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems
            .into_iter()
            .map(|(key, message)| {
                let span = find_key(&table, &key).or_else(|| {
                    // a missing key: point at its section
                    let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
                    find_key(&table, parent)
                });
                Diagnostic::error(file, message)
                    .at(span.map(|s| ctx.locate(s)))
                    .field(key)
            })
            .collect())
    }
}

/// Checks what the types cannot: names, counts, checksums, URLs, the timeout's range.
fn validate(f: &ClusterFile) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |k: &str, m: String| out.push((k.to_owned(), m));
    let c = &f.cluster;
    if c.name.trim().is_empty() {
        err("cluster.name", "`name` must not be empty".into());
    }
    if !c.release_label.starts_with("emr-") {
        err(
            "cluster.release_label",
            format!(
                "`release_label` {:?} must look like \"emr-7.5.0\"",
                c.release_label
            ),
        );
    }
    if let Some(uri) = &c.log_uri
        && !uri.starts_with("s3://")
    {
        err(
            "cluster.log_uri",
            format!("`log_uri` {uri:?} must be an s3:// URL"),
        );
    }
    if let Some(t) = c.idle_timeout {
        let secs = t.0.as_secs();
        if !(60..=7 * 24 * 3600).contains(&secs) {
            err(
                "cluster.idle_timeout",
                format!("`idle_timeout` {t} must be between 1 minute and 7 days (EMR's limits)"),
            );
        }
    }
    for (group, g) in [
        ("master", Some(&f.instances.master)),
        ("core", f.instances.core.as_ref()),
    ] {
        if let Some(g) = g
            && g.count < 1
        {
            err(
                &format!("instances.{group}.count"),
                format!("`count` must be at least 1, not {}", g.count),
            );
        }
    }
    if f.instances.master.count != 1 && f.instances.master.count != 3 {
        err(
            "instances.master.count",
            "`count` of the master group must be 1 (or 3 for high availability)".into(),
        );
    }
    if let Some(d) = &f.drill {
        match (&d.sha512, &d.sha256) {
            (None, None) => err(
                "drill.sha512",
                "[drill] needs the tarball's checksum: `sha512` (or `sha256`), hex; the bootstrap script verifies it".into(),
            ),
            (Some(_), Some(_)) => err(
                "drill.sha256",
                "give one of `sha512` and `sha256`, not both".into(),
            ),
            (Some(h), None) if !is_hex(h, 128) => err(
                "drill.sha512",
                "`sha512` must be 128 hexadecimal digits".into(),
            ),
            (None, Some(h)) if !is_hex(h, 64) => err(
                "drill.sha256",
                "`sha256` must be 64 hexadecimal digits".into(),
            ),
            _ => {}
        }
        if !d
            .version
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
            || d.version.is_empty()
        {
            err(
                "drill.version",
                format!("`version` {:?} is not a version like \"1.21.2\"", d.version),
            );
        }
        if let Some(url) = &d.download_url
            && (!url.starts_with("https://") && !url.starts_with("http://")
                || url
                    .chars()
                    .any(|ch| ch.is_whitespace() || "\"'$`\\".contains(ch)))
        {
            err(
                "drill.download_url",
                format!(
                    "`download_url` {url:?} must be an http(s):// URL without quotes, `$` or spaces"
                ),
            );
        }
        if f.bootstrap.is_none() {
            err(
                "bootstrap.s3_prefix",
                "[drill] needs `[bootstrap] s3_prefix`: where the generated install script is uploaded".into(),
            );
        }
    }
    if let Some(b) = &f.bootstrap
        && !b.s3_prefix.starts_with("s3://")
    {
        err(
            "bootstrap.s3_prefix",
            format!("`s3_prefix` {:?} must be an s3:// URL", b.s3_prefix),
        );
    }
    if let Some(d) = &f.ddl {
        match (&d.pipeline, &d.sink, &d.inline) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            (Some(_), None, None) => err(
                "ddl.sink",
                "[ddl] names a `pipeline`; add `sink = \"<id>\"`, the `ddl` sink in it".into(),
            ),
            _ => err(
                "ddl.pipeline",
                "[ddl] takes either `pipeline` and `sink`, or `[ddl.inline]`".into(),
            ),
        }
        if f.bootstrap.is_none() {
            err(
                "bootstrap.s3_prefix",
                "[ddl] needs `[bootstrap] s3_prefix`: where the step scripts are uploaded".into(),
            );
        }
    }
    out.dedup();
    out
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

struct Ctx<'a> {
    source: LineIndex,
    rendered: &'a Rendered,
}

impl Ctx<'_> {
    fn locate(&self, span: Range<usize>) -> crate::diagnostic::Location {
        self.source.locate(self.rendered.source_range(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
