//! The `ddl` sink's settings: engines, names, projections, per-engine options.

use super::*;
use crate::problems::Problems;

pub(super) fn all_engines() -> Vec<Engine> {
    Engine::all()
}

/// Names of the generated tables and views (defaults: `<stream>_archive`, …).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamesConfig {
    /// The external table over the objects (Hive, Athena). Default `<stream>_archive_raw`.
    pub raw: Option<String>,
    /// The typed view over the archive. Default `<stream>_archive`.
    pub archive: Option<String>,
    /// Each shard's archived checkpoint. Default `<stream>_checkpoints`.
    pub checkpoints: Option<String>,
    /// The live stream (Hive Kinesis table; DuckDB view over the snapshot). Default `<stream>_live`.
    pub live: Option<String>,
    /// Archive plus live records, each once. Default `<stream>_unified`.
    pub unified: Option<String>,
}

/// Drill settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Drill's REST endpoint, `http://host:8047`: when set, the sink creates the storage
    /// plugins and the views there.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Name of the archive's storage plugin. Default "flux".
    #[serde(default = "default_plugin")]
    pub plugin: String,
    /// File system for S3: "s3a" (Hadoop's S3A) or "s3" (EMRFS on EMR). Default "s3a".
    #[serde(default = "default_filesystem")]
    pub filesystem: String,
    /// The writable workspace holding the views. Default "dfs.tmp".
    #[serde(default = "default_views")]
    pub views: String,
    /// Name of the Hive storage plugin. Default "hive".
    #[serde(default = "default_hive_plugin")]
    pub hive_plugin: String,
    /// The Hive metastore. Default "thrift://localhost:9083" (on the EMR master).
    #[serde(default = "default_metastore")]
    pub metastore: String,
}

impl Default for DrillConfig {
    fn default() -> Self {
        DrillConfig {
            endpoint: None,
            plugin: default_plugin(),
            filesystem: default_filesystem(),
            views: default_views(),
            hive_plugin: default_hive_plugin(),
            metastore: default_metastore(),
        }
    }
}

fn default_plugin() -> String {
    "flux".into()
}
fn default_filesystem() -> String {
    "s3a".into()
}
fn default_views() -> String {
    "dfs.tmp".into()
}
fn default_hive_plugin() -> String {
    "hive".into()
}
fn default_metastore() -> String {
    "thrift://localhost:9083".into()
}
fn default_database() -> String {
    "default".into()
}

/// Hive settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HiveConfig {
    /// The database. Default "default".
    #[serde(default = "default_database")]
    pub database: String,
}

impl Default for HiveConfig {
    fn default() -> Self {
        HiveConfig {
            database: default_database(),
        }
    }
}

/// Athena settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AthenaConfig {
    /// The database. Default "default".
    #[serde(default = "default_database")]
    pub database: String,
    /// First day of the `dt` projection, `YYYY-MM-DD`. Default: the archive's first day.
    #[serde(default)]
    pub since: Option<String>,
}

impl Default for AthenaConfig {
    fn default() -> Self {
        AthenaConfig {
            database: default_database(),
            since: None,
        }
    }
}

/// Writes SQL DDL for the archive of one stream, for DuckDB, Drill, Hive and Athena.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DdlSinkConfig {
    /// The archive root: `s3://bucket/prefix`, `file://./dir` or a path (the `url` of the
    /// archive sink).
    pub archive: String,
    /// The stream whose archive the tables cover (one table per stream).
    pub stream: String,
    /// Where the files go: a folder or `s3://bucket/prefix`.
    pub out: String,
    /// The engines to write for. Default: all four.
    #[serde(default = "all_engines")]
    pub engines: Vec<Engine>,
    /// Typed columns read from payload fields: `{ customer_id = "data.customer_id", total =
    /// "data.total:double" }`.
    #[serde(default)]
    pub columns: BTreeMap<ColumnName, ColumnSpec>,
    /// Names of the tables and views.
    #[serde(default)]
    pub names: NamesConfig,
    /// DuckDB: the local snapshot of the live stream, envelope JSON Lines written by a `file`
    /// sink (a path or glob, e.g. "snapshot/orders.jsonl"). Enables the live and unified views.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Hive and Drill: the column (of `columns`) whose value is unique per record; the unified
    /// view drops live records whose value is archived. Without it, no Hive/Drill unified view.
    #[serde(default)]
    pub live_key: Option<String>,
    /// Keep the replay protocol's fences in the archive and unified views. Default false: the
    /// views hold records only (the `is_fence` column tells fences apart when kept).
    #[serde(default)]
    pub include_fences: bool,
    /// Shard ids for Athena's shard projection, besides those found in the archive's
    /// checkpoints and in the records the sink receives.
    #[serde(default)]
    pub shards: Vec<String>,
    /// Drill settings; `endpoint` applies the output.
    #[serde(default)]
    pub drill: DrillConfig,
    /// Hive settings.
    #[serde(default)]
    pub hive: HiveConfig,
    /// Athena settings.
    #[serde(default)]
    pub athena: AthenaConfig,
    /// How to reach S3 for `s3://` URLs (the archive's checkpoints, `out`).
    #[serde(default)]
    pub aws: crate::aws::AwsSettings,
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10
}

impl DdlSinkConfig {
    /// The projections: the user's in column-name order, then the replay protocol's columns
    /// (`replay_id`, `is_fence`).
    pub fn projections(&self) -> Vec<Projection> {
        self.columns
            .iter()
            .map(|(name, spec)| Projection {
                name: name.0.clone(),
                spec: spec.clone(),
            })
            .chain(columns::protocol_projections())
            .collect()
    }

    pub(super) fn has(&self, engine: Engine) -> bool {
        self.engines.contains(&engine)
    }

    /// Checks what serde cannot: every problem, with the key it is about.
    pub fn check(&self, p: &mut Problems) {
        let root = p.check("archive", ArchiveRoot::parse(&self.archive));
        p.check("out", store::check_url(&self.out));
        p.check("stream", crate::names::StreamName::parse(&self.stream));
        if self.engines.is_empty() {
            p.add(
                "engines",
                "`engines` must name at least one of \"duckdb\", \"drill\", \"hive\", \"athena\"",
            );
        }
        let unique: BTreeSet<_> = self.engines.iter().collect();
        if unique.len() != self.engines.len() {
            p.add("engines", "`engines` lists an engine twice");
        }
        for (engine, name, who) in [
            (Engine::Hive, "hive", "Hive on EMR"),
            (Engine::Athena, "athena", "Athena"),
        ] {
            if self.has(engine) && root.as_ref().is_some_and(|r| !r.is_s3()) {
                p.add(
                    "archive",
                    format!(
                        "`archive`: {who} reads the archive from S3, but {:?} is a local directory; use an s3:// archive or leave \"{name}\" out of `engines`",
                        self.archive
                    ),
                );
            }
        }
        p.check_as_is("columns", columns::check_paths(&self.projections()));
        if let Some(key) = &self.live_key
            && !self.columns.keys().any(|c| &c.0 == key)
        {
            p.add(
                "live_key",
                format!(
                    "`live_key` {key:?} is not one of `columns` ({}); declare the payload field that identifies a record there",
                    self.columns
                        .keys()
                        .map(|c| c.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let names = &self.names;
        for (key, value) in [
            ("raw", &names.raw),
            ("archive", &names.archive),
            ("checkpoints", &names.checkpoints),
            ("live", &names.live),
            ("unified", &names.unified),
        ] {
            if let Some(v) = value
                && !is_identifier(v)
            {
                p.add(
                    "names",
                    format!(
                        "`names`: {key} = {v:?} must be letters, digits and `_`, not starting with a digit"
                    ),
                );
            }
        }
        if matches!(&self.snapshot, Some(s) if s.is_empty()) {
            p.add("snapshot", "`snapshot` must not be empty");
        }
        if let Some(s) = self
            .shards
            .iter()
            .find(|s| s.is_empty() || s.contains([',', '\'']))
        {
            p.add("shards", format!("`shards`: {s:?} is not a shard id"));
        }
        let d = &self.drill;
        if let Some(endpoint) = &d.endpoint
            && let Err(e) = drill_rest::check_endpoint(endpoint)
        {
            p.add(
                "drill",
                e.replacen("`drill.endpoint`", "`drill`: endpoint", 1),
            );
        }
        if !["s3a", "s3"].contains(&d.filesystem.as_str()) {
            p.add(
                "drill",
                format!(
                    "`drill`: filesystem must be \"s3a\" or \"s3\" (EMRFS), not {:?}",
                    d.filesystem
                ),
            );
        }
        for (key, value) in [("plugin", &d.plugin), ("hive_plugin", &d.hive_plugin)] {
            if !is_identifier(value) {
                p.add(
                    "drill",
                    format!("`drill`: {key} = {value:?} must be letters, digits and `_`"),
                );
            }
        }
        if !d.views.split('.').all(is_identifier) {
            p.add(
                "drill",
                format!(
                    "`drill`: views = {:?} must be a workspace such as \"dfs.tmp\"",
                    d.views
                ),
            );
        }
        for (key, db) in [
            ("hive", &self.hive.database),
            ("athena", &self.athena.database),
        ] {
            if !is_identifier(db) {
                p.add(
                    key,
                    format!("`{key}`: database = {db:?} must be letters, digits and `_`"),
                );
            }
        }
        if let Some(since) = &self.athena.since
            && !is_date(since)
        {
            p.add(
                "athena",
                format!("`athena`: since = {since:?} must be a date, YYYY-MM-DD"),
            );
        }
    }

    /// The model the renderers use, given the shard ids known and Athena's first day.
    pub fn model(&self, shards: BTreeSet<String>, athena_since: String) -> Result<Model, String> {
        Problems::first(|p| self.check(p))?;
        let defaults = Names::for_stream(&self.stream);
        let n = &self.names;
        let pick = |v: &Option<String>, d: String| v.clone().unwrap_or(d);
        let mut shards = shards;
        shards.extend(self.shards.iter().cloned());
        Ok(Model {
            stream: self.stream.clone(),
            archive: ArchiveRoot::parse(&self.archive)?,
            names: Names {
                raw: pick(&n.raw, defaults.raw),
                archive: pick(&n.archive, defaults.archive),
                checkpoints: pick(&n.checkpoints, defaults.checkpoints),
                live: pick(&n.live, defaults.live),
                unified: pick(&n.unified, defaults.unified),
            },
            projections: self.projections(),
            include_fences: self.include_fences,
            snapshot: self.snapshot.clone(),
            live_key: self.live_key.clone(),
            shards: shards.into_iter().collect(),
            athena_since,
            athena_database: self.athena.database.clone(),
            hive_database: self.hive.database.clone(),
            drill: DrillModel {
                plugin: self.drill.plugin.clone(),
                filesystem: self.drill.filesystem.clone(),
                views_workspace: self.drill.views.clone(),
                hive_plugin: self.drill.hive_plugin.clone(),
                metastore: self.drill.metastore.clone(),
            },
            duckdb_s3: model::DuckdbS3 {
                region: self.aws.region.clone(),
                endpoint: self.aws.endpoint.clone(),
            },
            duckdb_views_path: None,
        })
    }

    /// Builds the sink.
    pub fn build(&self, stage: &str) -> Result<Box<dyn Sink>, String> {
        Problems::first(|p| self.check(p))?;
        Ok(Box::new(DdlSink {
            config: self.clone(),
            stage: stage.to_owned(),
            shards: BTreeSet::new(),
            records: 0,
        }))
    }
}

impl crate::registry::StageKind for DdlSinkConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        DdlSinkConfig::build(self, &ctx.stage).map(crate::registry::BuiltStage::Sink)
    }
}
