//! SQL over the archive: the statements that make an archive queryable — DuckDB views for one
//! machine, Drill storage plugins and views, Hive tables (archive, live stream through EMR's
//! Kinesis storage handler, unified view) and Athena tables with partition projection
//! (DESIGN §6).
//!
//! The SQL is generated from a small typed model ([`model::Model`]) by one renderer per engine.
//! The `ddl` sink ([`crate::sink::ddl`]), `flux-engine ddl` and `flux-engine cluster` all use
//! this module.

pub mod athena;
pub mod columns;
pub mod drill;
pub mod drill_rest;
pub mod duckdb;
pub mod hive;
pub mod model;
pub mod text;

use std::collections::BTreeSet;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::archive::layout;
use crate::archive::state::read_checkpoints;
use crate::names::StreamName;
use crate::store::ObjectStore;
use model::Model;
use text::GeneratedFile;

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

impl Engine {
    /// Every engine, in output order.
    pub fn all() -> Vec<Engine> {
        vec![Engine::Duckdb, Engine::Drill, Engine::Hive, Engine::Athena]
    }

    /// Parses a lowercase engine name (`duckdb`, `drill`, `hive`, `athena`).
    pub fn parse(name: &str) -> Result<Engine, String> {
        match name {
            "duckdb" => Ok(Engine::Duckdb),
            "drill" => Ok(Engine::Drill),
            "hive" => Ok(Engine::Hive),
            "athena" => Ok(Engine::Athena),
            other => Err(format!(
                "unknown engine {other:?}; expected duckdb, drill, hive or athena"
            )),
        }
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

/// What the archive knows that Athena's projection needs: the shard ids of the stream's
/// checkpoints, and the first day (`YYYY-MM-DD`) of its data objects (`None` without any).
pub async fn survey(
    archive: &Arc<dyn ObjectStore>,
    stream: &StreamName,
) -> anyhow::Result<(BTreeSet<String>, Option<String>)> {
    let shards = read_checkpoints(archive, stream)
        .await?
        .into_keys()
        .collect();
    let first = archive
        .list(&layout::stream_prefix(stream))
        .await?
        .iter()
        .filter_map(|o| layout::parse_data_key(stream, &o.key))
        .map(|o| o.hour)
        .min()
        .map(|t| t.format("%Y-%m-%d").to_string());
    Ok((shards, first))
}
