//! The cluster file (`pipelines/clusters/*.toml`): its typed form and a strict loader whose
//! errors name the file, line, column and key path, like the pipeline loader's.
//!
//! The file may use `[vars]` and template expressions like a pipeline file (`--var k=v`).

use std::collections::BTreeMap;

use flux_stages::aws::AwsSettings;
use flux_stages::sink::ddl::DdlSinkConfig;
use flux_stages::units::HumanDuration;
use serde::Deserialize;

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

mod load;

pub use load::{load_file, load_text};

#[cfg(test)]
mod tests;
