//! `ddl` sink: writes (and, given a Drill endpoint, applies) the statements that make the
//! archive queryable with SQL — DuckDB views for one machine, Drill storage plugins and views,
//! Hive tables (archive, live stream through EMR's Kinesis storage handler, unified view) and
//! Athena tables with partition projection (DESIGN §6).
//!
//! ```toml
//! [sinks.views]
//! type = "ddl"
//! inputs = ["live"]                  # any records: the sink learns shard ids from them
//! archive = "s3://acme-archive/kinesis"
//! stream = "orders"
//! out = "sql"                        # a folder or s3://bucket/prefix; one file per statement group
//! engines = ["duckdb", "drill", "hive", "athena"]
//! columns = { customer_id = "data.customer_id", total = "data.total:double" }
//! ```
//!
//! A sink must have inputs; this one accepts any. It does not store records: it counts them and
//! learns the shard ids of `stream` from them (Athena's shard projection), and writes everything
//! when its inputs end. Reading `<archive sink>.dead_letter` makes it run after archival has
//! committed; reading a `kinesis` source next to a `file` sink makes the snapshot and the views
//! in one run.
//!
//! The SQL is generated from a small typed model ([`model::Model`]) by one renderer per engine.

pub mod athena;
pub mod columns;
pub mod drill;
pub mod drill_rest;
pub mod duckdb;
pub mod hive;
pub mod model;
pub mod sql;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::archive::layout;
use crate::archive::state::read_checkpoints;
use crate::record::Batch;
use crate::stage::{Rejected, Sink, SinkReport};
use crate::store;
use columns::{ColumnName, ColumnSpec, Projection};
use model::{ArchiveRoot, DrillModel, Model, Names};
use sql::GeneratedFile;

/// The engines the sink writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// DuckDB views (`duckdb/views.sql`).
    Duckdb,
    /// Drill storage plugins and views (`drill/…`).
    Drill,
    /// Hive tables and views (`hive/…`).
    Hive,
    /// Athena table with partition projection and view (`athena/archive.sql`).
    Athena,
}

fn all_engines() -> Vec<Engine> {
    vec![Engine::Duckdb, Engine::Drill, Engine::Hive, Engine::Athena]
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
    /// The projections, in column-name order.
    pub fn projections(&self) -> Vec<Projection> {
        self.columns
            .iter()
            .map(|(name, spec)| Projection {
                name: name.0.clone(),
                spec: spec.clone(),
            })
            .collect()
    }

    fn has(&self, engine: Engine) -> bool {
        self.engines.contains(&engine)
    }

    /// Checks what serde cannot. The message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let root = ArchiveRoot::parse(&self.archive).map_err(|e| format!("`archive`: {e}"))?;
        store::check_url(&self.out).map_err(|e| format!("`out`: {e}"))?;
        crate::names::StreamName::parse(&self.stream).map_err(|e| format!("`stream`: {e}"))?;
        if self.engines.is_empty() {
            return Err(
                "`engines` must name at least one of \"duckdb\", \"drill\", \"hive\", \"athena\""
                    .into(),
            );
        }
        let unique: BTreeSet<_> = self.engines.iter().collect();
        if unique.len() != self.engines.len() {
            return Err("`engines` lists an engine twice".into());
        }
        for (engine, name, who) in [
            (Engine::Hive, "hive", "Hive on EMR"),
            (Engine::Athena, "athena", "Athena"),
        ] {
            if self.has(engine) && !root.is_s3() {
                return Err(format!(
                    "`archive`: {who} reads the archive from S3, but {:?} is a local directory; use an s3:// archive or leave \"{name}\" out of `engines`",
                    self.archive
                ));
            }
        }
        columns::check_paths(&self.projections())?;
        if let Some(key) = &self.live_key
            && !self.columns.keys().any(|c| &c.0 == key)
        {
            return Err(format!(
                "`live_key` {key:?} is not one of `columns` ({}); declare the payload field that identifies a record there",
                self.columns
                    .keys()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
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
                return Err(format!(
                    "`names`: {key} = {v:?} must be letters, digits and `_`, not starting with a digit"
                ));
            }
        }
        if matches!(&self.snapshot, Some(s) if s.is_empty()) {
            return Err("`snapshot` must not be empty".into());
        }
        if let Some(s) = self
            .shards
            .iter()
            .find(|s| s.is_empty() || s.contains([',', '\'']))
        {
            return Err(format!("`shards`: {s:?} is not a shard id"));
        }
        let d = &self.drill;
        if let Some(endpoint) = &d.endpoint {
            drill_rest::check_endpoint(endpoint)
                .map_err(|e| e.replacen("`drill.endpoint`", "`drill`: endpoint", 1))?;
        }
        if !["s3a", "s3"].contains(&d.filesystem.as_str()) {
            return Err(format!(
                "`drill`: filesystem must be \"s3a\" or \"s3\" (EMRFS), not {:?}",
                d.filesystem
            ));
        }
        for (key, value) in [("plugin", &d.plugin), ("hive_plugin", &d.hive_plugin)] {
            if !is_identifier(value) {
                return Err(format!(
                    "`drill`: {key} = {value:?} must be letters, digits and `_`"
                ));
            }
        }
        if !d.views.split('.').all(is_identifier) {
            return Err(format!(
                "`drill`: views = {:?} must be a workspace such as \"dfs.tmp\"",
                d.views
            ));
        }
        for (key, db) in [
            ("hive", &self.hive.database),
            ("athena", &self.athena.database),
        ] {
            if !is_identifier(db) {
                return Err(format!(
                    "`{key}`: database = {db:?} must be letters, digits and `_`"
                ));
            }
        }
        if let Some(since) = &self.athena.since
            && !is_date(since)
        {
            return Err(format!(
                "`athena`: since = {since:?} must be a date, YYYY-MM-DD"
            ));
        }
        Ok(())
    }

    /// The model the renderers use, given the shard ids known and Athena's first day.
    pub fn model(&self, shards: BTreeSet<String>, athena_since: String) -> Result<Model, String> {
        self.validate()?;
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
        })
    }

    /// Builds the sink.
    pub fn build(&self, stage: &str) -> Result<Box<dyn Sink>, String> {
        self.validate()?;
        Ok(Box::new(DdlSink {
            config: self.clone(),
            stage: stage.to_owned(),
            shards: BTreeSet::new(),
            records: 0,
        }))
    }
}

/// Every file of the chosen engines, in engine order.
pub fn generate(model: &Model, engines: &[Engine]) -> Vec<GeneratedFile> {
    let mut files = Vec::new();
    for engine in engines {
        files.extend(match engine {
            Engine::Duckdb => duckdb::render(model),
            Engine::Drill => drill::render(model),
            Engine::Hive => hive::render(model),
            Engine::Athena => athena::render(model),
        });
    }
    files
}

/// Applies the Drill output: the storage plugins, then the views, in file order.
pub async fn apply_drill(endpoint: &str, model: &Model) -> anyhow::Result<(usize, usize)> {
    let client = drill_rest::DrillClient::new(endpoint).map_err(anyhow::Error::msg)?;
    let mut plugins = 0;
    for plugin in [drill::archive_plugin(model), drill::hive_plugin(model)] {
        client.put_storage(&plugin).await?;
        plugins += 1;
    }
    let views = drill::statements(model);
    for statement in &views {
        client.query(statement).await?;
    }
    Ok((plugins, views.len()))
}

/// The running `ddl` sink.
pub struct DdlSink {
    config: DdlSinkConfig,
    stage: String,
    shards: BTreeSet<String>,
    records: u64,
}

impl DdlSink {
    /// Athena needs the shard ids and a first day: unless both are configured (`shards`,
    /// `athena.since`), from the archive's checkpoints and folders.
    async fn survey_archive(&mut self) -> anyhow::Result<String> {
        if let (false, Some(since)) = (self.config.shards.is_empty(), &self.config.athena.since) {
            return Ok(since.clone());
        }
        let archive = store::open_with(
            &self.config.archive,
            &store::StoreOptions {
                aws: self.config.aws.clone(),
                ..Default::default()
            },
        )
        .map_err(anyhow::Error::msg)?;
        let stream =
            crate::names::StreamName::parse(&self.config.stream).map_err(anyhow::Error::msg)?;
        for shard in read_checkpoints(&archive, &stream).await?.into_keys() {
            self.shards.insert(shard);
        }
        if let Some(since) = &self.config.athena.since {
            return Ok(since.clone());
        }
        let first = archive
            .list(&layout::stream_prefix(&stream))
            .await?
            .iter()
            .filter_map(|o| layout::parse_data_key(&stream, &o.key))
            .map(|o| o.hour)
            .min();
        Ok(first
            .unwrap_or_else(chrono::Utc::now)
            .format("%Y-%m-%d")
            .to_string())
    }
}

#[async_trait]
impl Sink for DdlSink {
    async fn write(
        &mut self,
        batch: Arc<Batch>,
        _rejected: &mut Vec<Rejected>,
    ) -> anyhow::Result<()> {
        self.records += batch.len() as u64;
        for r in batch.iter() {
            if *r.stream == *self.config.stream && !self.shards.contains(&*r.shard_id) {
                self.shards.insert(r.shard_id.to_string());
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> anyhow::Result<SinkReport> {
        let since = if self.config.has(Engine::Athena) {
            let since = self.survey_archive().await?;
            let known: BTreeSet<_> = self.shards.iter().chain(&self.config.shards).collect();
            if known.is_empty() {
                anyhow::bail!(
                    "sink `{}`: no shard of stream {} is known for Athena's shard projection (none in the archive's checkpoints, none in the records received); list them in `shards`",
                    self.stage,
                    self.config.stream
                );
            }
            since
        } else {
            String::new()
        };
        let model = self
            .config
            .model(std::mem::take(&mut self.shards), since)
            .map_err(anyhow::Error::msg)?;
        let files = generate(&model, &self.config.engines);
        let out = store::open_with(
            &self.config.out,
            &store::StoreOptions {
                aws: self.config.aws.clone(),
                ..Default::default()
            },
        )
        .map_err(anyhow::Error::msg)?;
        for file in &files {
            out.put(file.path(), Bytes::from(file.text())).await?;
        }
        let mut report = vec![format!(
            "wrote {} files to {} ({}) after {} records",
            files.len(),
            out.url(),
            files
                .iter()
                .map(GeneratedFile::path)
                .collect::<Vec<_>>()
                .join(", "),
            self.records
        )];
        if let (Some(endpoint), true) =
            (&self.config.drill.endpoint, self.config.has(Engine::Drill))
        {
            let (plugins, views) = apply_drill(endpoint, &model)
                .await
                .map_err(|e| anyhow::anyhow!("applying the Drill output at {endpoint}: {e}"))?;
            report.push(format!(
                "applied to Drill at {endpoint}: {plugins} storage plugins, {views} views"
            ));
        }
        Ok(report.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<DdlSinkConfig, String> {
        let text = format!(
            "archive = \"s3://acme/kinesis\"\nstream = \"orders\"\nout = \"sql\"\ncolumns = {{ id = \"data.id\", total = \"data.total:double\" }}\n{extra}"
        );
        let c: DdlSinkConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        c.validate().map(|_| c)
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
        let c = config("names = { live = \"orders_now\" }\nshards = [\"s-2\"]\nlive_key = \"id\"")
            .unwrap();
        let m = c
            .model(BTreeSet::from(["s-1".to_owned()]), "2026-01-01".into())
            .unwrap();
        assert_eq!(m.names.live, "orders_now");
        assert_eq!(m.names.archive, "orders_archive");
        assert_eq!(m.shards, ["s-1", "s-2"]);
        assert_eq!(m.projections.len(), 2);
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
}
